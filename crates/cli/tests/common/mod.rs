//! Shared test support for the CLI's tests: the workspace fixtures
//! (`bootproof-testkit`), the built binary, and tree comparison through
//! the fs crate.
#![allow(dead_code)]

pub use bootproof_testkit::*;

mod boots;
#[allow(unused_imports)]
pub use boots::*;

use bootproof_fs::{FileType, FsError, Volume};
use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

/// What a comparison covered, so tests can assert it was not vacuous.
#[derive(Default, Debug)]
pub struct Coverage {
    pub files: usize,
    pub dirs: usize,
    pub symlinks: usize,
    pub bytes: u64,
}

/// Compares the volume under `prefix` with the host tree `src`: every
/// directory's names, every file's bytes, every symlink's target.
pub fn compare_tree(
    vol: &Volume,
    prefix: &str,
    src: &Path,
    skip: &[String],
    extra: &[String],
) -> Coverage {
    let mut cov = Coverage::default();
    walk(vol, prefix, src, src, skip, extra, &mut cov);
    cov
}

fn inside(prefix: &str, rel: &Path) -> Vec<u8> {
    let mut p = prefix.as_bytes().to_vec();
    for c in rel.components() {
        p.push(b'/');
        p.extend_from_slice(c.as_os_str().as_bytes());
    }
    if p.is_empty() {
        p.push(b'/');
    }
    p
}

fn walk(
    vol: &Volume,
    prefix: &str,
    root: &Path,
    dir: &Path,
    skip: &[String],
    extra: &[String],
    cov: &mut Coverage,
) {
    let rel = dir.strip_prefix(root).unwrap();
    let here = inside(prefix, rel);
    let mut expected: BTreeSet<Vec<u8>> = BTreeSet::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if rel.as_os_str().is_empty() && skip.iter().any(|s| s.as_bytes() == name.as_bytes()) {
            continue;
        }
        expected.insert(name.as_bytes().to_vec());
    }
    if rel.as_os_str().is_empty() {
        expected.extend(extra.iter().map(|s| s.as_bytes().to_vec()));
    }
    let got: BTreeSet<Vec<u8>> = vol
        .read_dir(&here)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", String::from_utf8_lossy(&here)))
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        got.iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect::<Vec<_>>(),
        expected
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect::<Vec<_>>(),
        "listing of {}",
        String::from_utf8_lossy(&here)
    );
    cov.dirs += 1;
    for name in expected {
        if extra.iter().any(|x| x.as_bytes() == name.as_slice()) && rel.as_os_str().is_empty() {
            continue;
        }
        let host = dir.join(std::ffi::OsStr::from_bytes(&name));
        let mut path = here.clone();
        if !path.ends_with(b"/") {
            path.push(b'/');
        }
        path.extend_from_slice(&name);
        let meta = std::fs::symlink_metadata(&host).unwrap();
        let shown = String::from_utf8_lossy(&path).into_owned();
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&host).unwrap();
            assert_eq!(
                vol.read_link(&path).unwrap(),
                target.as_os_str().as_bytes(),
                "symlink {shown}"
            );
            assert_eq!(
                vol.symlink_metadata(&path).unwrap().file_type,
                FileType::Symlink,
                "{shown}"
            );
            cov.symlinks += 1;
        } else if meta.is_dir() {
            walk(vol, prefix, root, &host, skip, extra, cov);
        } else {
            let want = std::fs::read(&host).unwrap();
            let got = vol
                .read(&path)
                .unwrap_or_else(|e| panic!("read {shown}: {e}"));
            assert!(
                got == want,
                "content of {shown} differs ({} vs {} bytes)",
                got.len(),
                want.len()
            );
            assert_eq!(
                vol.metadata(&path).unwrap().size,
                want.len() as u64,
                "size of {shown}"
            );
            cov.files += 1;
            cov.bytes += want.len() as u64;
        }
    }
}

/// Runs the built `bootproof` binary.
pub fn bootproof(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .expect("bootproof runs")
}

/// Whether an error is "not found" (for symlink semantics tests).
pub fn is_not_found(e: &FsError) -> bool {
    matches!(e, FsError::NotFound(_))
}

/// Replaces the root's /boot/grub/grub.cfg after `edit` rewrote its text.
pub fn edit_grub_cfg(img: &Path, edit: impl Fn(String) -> String) {
    let out = bootproof(&["cat", img.to_str().unwrap(), "2:/boot/grub/grub.cfg"]);
    let new = edit(String::from_utf8(out.stdout).unwrap());
    let f = img.parent().unwrap().join("grub.cfg");
    std::fs::write(&f, new).unwrap();
    edit_root(
        img,
        &format!(
            "cd /boot/grub\nrm grub.cfg\nwrite {} grub.cfg\n",
            f.display()
        ),
    );
}

/// The HTTP server, killed when the test ends however it ends.
pub struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves `dir` over HTTP on localhost (Python's http.server): the server
/// and its port.
pub fn serve(dir: &Path) -> (Server, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1"])
        .arg(port.to_string())
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (server, port);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("http.server did not start on port {port}");
}
