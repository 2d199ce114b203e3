//! Test fixtures every bootproof crate's tests share (dev-only, never
//! published): the test images built once by real tools
//! (tests/images/make-test-images.py, make-boot-images.py), real Debian
//! boot artifacts, the cloud image, scratch directories, and helpers that
//! run the independent tools the tests use as oracles. It depends on no
//! bootproof crate, so any crate can use it in its tests.

use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The directory with the test images, building them on first use.
/// `BOOTPROOF_TEST_IMAGES` overrides the location.
pub fn images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("BOOTPROOF_TEST_IMAGES")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("target/test-images"));
        std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
        // Several test binaries run at once: one builds, the others wait.
        let lock = File::create(dir.with_extension("lock")).unwrap();
        lock.lock().unwrap();
        let status = Command::new("python3")
            .arg(workspace().join("tests/images/make-test-images.py"))
            .arg(&dir)
            .status()
            .expect("python3 runs");
        assert!(
            status.success(),
            "building test images failed; run scripts/setup-test-deps.sh"
        );
        lock.unlock().unwrap();
        dir
    })
}

pub fn image(name: &str) -> PathBuf {
    images().join(name)
}

pub fn manifest() -> Value {
    serde_json::from_slice(&std::fs::read(images().join("manifest.json")).unwrap()).unwrap()
}

/// The manifest entry of an image, with `same_as` resolved to the slots of
/// the image it copies.
pub fn slots(name: &str) -> Value {
    let m = manifest();
    let images = m["images"].as_array().unwrap();
    let find = |n: &str| images.iter().find(|i| i["name"] == n).cloned().unwrap();
    let mut entry = find(name);
    if let Some(same) = entry["same_as"].as_str() {
        entry = find(same);
    }
    if entry["backing"].as_bool() == Some(true) {
        entry = find("gpt.raw");
    }
    entry["slots"].clone()
}

/// Runs an idempotent setup step (a fetch or build script) under a file
/// lock in target/, so test binaries running at once do it one at a time.
fn setup_step(lock: &Path, what: &str, cmd: &mut Command) {
    let lock = File::create(lock).unwrap();
    lock.lock().unwrap();
    assert!(cmd.status().unwrap().success(), "{what} failed");
    lock.unlock().unwrap();
}

/// The real Debian boot artifacts (tests/artifacts/fetch-debian-artifacts.sh).
pub fn artifacts() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = workspace().join("target/debian-artifacts");
        setup_step(
            &workspace().join("target/debian-artifacts.lock"),
            "fetching Debian artifacts",
            Command::new(workspace().join("tests/artifacts/fetch-debian-artifacts.sh")).arg(&dir),
        );
        dir
    })
}

/// The Debian kernel (`vmlinuz-*`) among the artifacts of `arch` (`amd64`, `arm64`).
pub fn artifact_kernel(arch: &str) -> PathBuf {
    let boot = artifacts().join(arch).join("root/boot");
    std::fs::read_dir(&boot)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("vmlinuz-")
        })
        .unwrap_or_else(|| panic!("a kernel in {}", boot.display()))
}

/// Boot-chain images built from the artifacts (tests/images/make-boot-images.py).
pub fn boot_images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let art = artifacts();
        let dir = workspace().join("target/boot-images");
        setup_step(
            &workspace().join("target/boot-images.lock"),
            "building boot images",
            Command::new("python3")
                .arg(workspace().join("tests/images/make-boot-images.py"))
                .arg(&dir)
                .arg(art),
        );
        dir
    })
}

/// Debian 13 riscv64 boot artifacts (tests/artifacts/fetch-riscv64-artifacts.sh):
/// the kernel, GRUB, systemd-boot and busybox packages unpacked in `root/`.
pub fn riscv64_artifacts() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = workspace().join("target/riscv64-artifacts");
        setup_step(
            &workspace().join("target/riscv64-artifacts.lock"),
            "fetching Debian 13 riscv64 artifacts",
            Command::new(workspace().join("tests/artifacts/fetch-riscv64-artifacts.sh")).arg(&dir),
        );
        dir
    })
}

/// riscv64 boot-chain images built from those artifacts
/// (tests/images/make-riscv64-images.py); `manifest.json` lists them.
pub fn riscv64_images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let art = riscv64_artifacts();
        let dir = workspace().join("target/riscv64-images");
        setup_step(
            &workspace().join("target/riscv64-images.lock"),
            "building riscv64 boot images",
            Command::new("python3")
                .arg(workspace().join("tests/images/make-riscv64-images.py"))
                .arg(&dir)
                .arg(art),
        );
        dir
    })
}

/// A real Debian 12 cloud image (mmdebstrap: systemd, cloud-init, the
/// distro kernel, GRUB at the removable path) for `arch` (`amd64`, or
/// `arm64` through qemu-user-static: 30+ minutes, opt-in tests only).
/// Built once by tests/images/make-cloud-image.sh into target/cloud-images.
pub fn cloud_image(arch: &str) -> PathBuf {
    let dir = workspace().join("target/cloud-images");
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join(format!("debian-{arch}.raw"));
    setup_step(
        &dir.join(format!("{arch}.lock")),
        &format!("building the {arch} cloud image"),
        Command::new(workspace().join("tests/images/make-cloud-image.sh"))
            .arg(arch)
            .arg(&img),
    );
    img
}

/// Debian's bookworm-backports kernel package for `arch` (`arm64`,
/// `amd64`): a newer kernel line than the images' own, as a .deb
/// (tests/artifacts/fetch-backports-kernels.sh, into target/backports-kernels).
pub fn backports_kernel(arch: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = workspace().join("target/backports-kernels");
        setup_step(
            &workspace().join("target/backports-kernels.lock"),
            "fetching the backports kernels",
            Command::new(workspace().join("tests/artifacts/fetch-backports-kernels.sh")).arg(&dir),
        );
        dir
    })
    .join(format!("{arch}.deb"))
}

/// Builds `<name>-6.1.0-1.aarch64.rpm` (`kernel-core`, `kernel-modules`)
/// with `rpmbuild` from the files under `tree` (every top-level directory
/// there is packaged), its payload compressed as `payload` says
/// (`w9.gzdio`, `w2.xzdio`, `w19.zstdio`), in `dir/top-<name>-<payload>`;
/// returns the package's path.
pub fn build_rpm(name: &str, tree: &Path, dir: &Path, payload: &str) -> PathBuf {
    let spec = dir.join(format!("{name}.spec"));
    let files: Vec<String> = std::fs::read_dir(tree)
        .unwrap()
        .map(|e| format!("/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    std::fs::write(
        &spec,
        format!(
            "Name: {name}\nVersion: 6.1.0\nRelease: 1\nSummary: test\nLicense: GPL\nAutoReqProv: no\n\
             %define __os_install_post %{{nil}}\n%define debug_package %{{nil}}\n%define _build_id_links none\n\
             %description\ntest\n%install\nmkdir -p %{{buildroot}}\ncp -a %{{tree}}/. %{{buildroot}}/\n\
             %files\n{}\n",
            files.join("\n")
        ),
    )
    .unwrap();
    let top = dir.join(format!("top-{name}-{payload}"));
    let ok = Command::new("rpmbuild")
        .args(["-bb", "--quiet", "--target", "aarch64"])
        .arg("--define")
        .arg(format!("_topdir {}", top.display()))
        .arg("--define")
        .arg(format!("tree {}", tree.display()))
        .arg("--define")
        .arg(format!("_binary_payload {payload}"))
        .arg(&spec)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "rpmbuild ({payload})");
    top.join(format!("RPMS/aarch64/{name}-6.1.0-1.aarch64.rpm"))
}

/// Pipes `data` through a command (a real compressor) and returns its output.
pub fn pipe(tool: &[&str], data: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool[0])
        .args(&tool[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "{tool:?} failed");
    out.stdout
}

/// A scratch directory for one test case, emptied first and removed when
/// dropped (also when the test panics), so a run's copies of disk images do
/// not pile up on a small CI disk. `BOOTPROOF_KEEP_TEST_DIRS=1` keeps them.
pub struct Scratch {
    path: PathBuf,
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("BOOTPROOF_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A fresh [`Scratch`] directory named after the suite and the case.
pub fn scratch(suite: &str, name: &str) -> Scratch {
    let path =
        std::env::temp_dir().join(format!("bootproof-{suite}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).unwrap();
    Scratch { path }
}

/// A sparse copy of a boot image to break, in its own scratch directory
/// (removed on drop); derefs to the disk's path.
pub struct Variant {
    disk: PathBuf,
    _dir: Scratch,
}

impl std::ops::Deref for Variant {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.disk
    }
}

impl AsRef<std::ffi::OsStr> for Variant {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.disk.as_os_str()
    }
}

impl AsRef<std::ffi::OsStr> for Scratch {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.path.as_os_str()
    }
}

/// Copies boot image `base` for case `name`.
pub fn variant(suite: &str, base: &str, name: &str) -> Variant {
    let dir = scratch(suite, name);
    let disk = dir.join("disk.raw");
    assert!(Command::new("cp")
        .arg("--sparse=always")
        .arg(boot_images().join(base))
        .arg(&disk)
        .status()
        .unwrap()
        .success());
    Variant { disk, _dir: dir }
}

/// Runs a command that must succeed.
pub fn ok(cmd: &mut Command) {
    let out = cmd.stdout(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs debugfs commands on the image's ext4 root (partition 2).
pub fn edit_root(img: &Path, commands: &str) {
    let info = Command::new("sgdisk").arg("-i2").arg(img).output().unwrap();
    let text = String::from_utf8_lossy(&info.stdout).into_owned();
    let start: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("First sector: "))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let dir = img.parent().unwrap();
    let part = dir.join("root.ext4");
    ok(Command::new("dd").args([
        format!("if={}", img.display()),
        format!("of={}", part.display()),
        "bs=512".into(),
        format!("skip={start}"),
        "conv=sparse".into(),
        "status=none".into(),
    ]));
    let script = dir.join("debugfs.cmds");
    std::fs::write(&script, commands).unwrap();
    ok(Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&script)
        .arg(&part)
        .stderr(Stdio::null()));
    ok(Command::new("dd").args([
        format!("if={}", part.display()),
        format!("of={}", img.display()),
        "bs=512".into(),
        format!("seek={start}"),
        // Not sparse: skipped zero blocks would leave old bytes behind.
        "conv=notrunc".into(),
        "status=none".into(),
    ]));
}

/// The `mtools` image spec of a boot image's ESP (partition 1 at 1 MiB).
pub fn esp(img: &Path) -> String {
    format!("{}@@1M", img.display())
}

/// (status, evidence) of the agent check `id` in a `verify --json` variant.
pub fn check<'a>(variant: &'a Value, id: &str) -> Option<(&'a str, &'a str)> {
    variant["records"].as_array().unwrap().iter().find_map(|r| {
        (r["type"] == "check" && r["id"] == id).then(|| {
            (
                r["status"].as_str().unwrap(),
                r["evidence"].as_str().unwrap(),
            )
        })
    })
}

/// The PKCS#7 SignedData of the `n`th (from 1) Authenticode signature of
/// the PE `file`, written to `dir/sig<n>.der`: cut from the security
/// directory here (entries 8-byte aligned), independently of bootproof.
pub fn signature_der(file: &Path, n: usize, dir: &Path) -> PathBuf {
    let d = std::fs::read(file).unwrap();
    let u32_at = |o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap()) as usize;
    let opt = u32_at(0x3c) + 24;
    let dirs = opt
        + if d[opt..opt + 2] == [0x0b, 0x02] {
            112
        } else {
            96
        };
    let mut at = u32_at(dirs + 4 * 8);
    for _ in 1..n {
        at += u32_at(at).div_ceil(8) * 8;
    }
    let p7 = dir.join(format!("sig{n}.der"));
    std::fs::write(&p7, &d[at + 8..at + u32_at(at)]).unwrap();
    p7
}

/// The certificate called `cn` among those the `n`th Authenticode
/// signature of the PE `file` carries, as PEM in `dir/ca.pem` (read by
/// `openssl pkcs7`).
pub fn signature_cert(file: &Path, n: usize, cn: &str, dir: &Path) -> PathBuf {
    let p7 = signature_der(file, n, dir);
    let out = Command::new("openssl")
        .args(["pkcs7", "-inform", "der", "-print_certs", "-in"])
        .arg(&p7)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let block = text
        .split("subject=")
        .find(|b| {
            b.lines()
                .next()
                .unwrap_or("")
                .ends_with(&format!("CN = {cn}"))
        })
        .unwrap_or_else(|| panic!("{cn} in signature {n}: {text}"));
    let pem = &block[block.find("-----BEGIN").unwrap()..=block.rfind("-----").unwrap() + 4];
    let path = dir.join("ca.pem");
    std::fs::write(&path, format!("{pem}\n")).unwrap();
    path
}

/// A copy of Debian's Microsoft-keys variable store for `arch` (`amd64`:
/// OVMF_VARS_4M.ms.fd, `arm64`: AAVMF_VARS.ms.fd) changed by `virt-fw-vars`
/// with `args` (`--add-mok GUID CERT`, `--set-sbat-level FILE`, …), written
/// to `dir/name`: the independent tool writes the variables bootproof reads.
pub fn ms_vars_with(arch: &str, dir: &Path, name: &str, args: &[&std::ffi::OsStr]) -> PathBuf {
    let template = match arch {
        "arm64" => "/usr/share/AAVMF/AAVMF_VARS.ms.fd",
        _ => "/usr/share/OVMF/OVMF_VARS_4M.ms.fd",
    };
    let out = dir.join(name);
    ok(Command::new("virt-fw-vars")
        .args(["-i", template, "-o"])
        .arg(&out)
        .args(args));
    out
}

/// A fresh RSA key and self-signed certificate with common name `cn`
/// (openssl), as `dir/<stem>.key` and `dir/<stem>.pem`.
pub fn signing_key(dir: &Path, stem: &str, cn: &str) -> (PathBuf, PathBuf) {
    let (key, cert) = (
        dir.join(format!("{stem}.key")),
        dir.join(format!("{stem}.pem")),
    );
    ok(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-sha256",
        ])
        .args(["-subj", &format!("/CN={cn}"), "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    (key, cert)
}

/// Signs the PE `input` with `key` and `cert` into `output` (sbsign).
pub fn sbsign(key: &Path, cert: &Path, input: &Path, output: &Path) {
    ok(Command::new("sbsign")
        .arg("--key")
        .arg(key)
        .arg("--cert")
        .arg(cert)
        .arg("--output")
        .arg(output)
        .arg(input));
}
