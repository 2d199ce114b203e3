//! Building initramfs images in-process: a `newc` cpio writer (the format
//! the kernel unpacks, `Documentation/driver-api/early-userspace/
//! buffer-format.rst`). Device nodes can be written without root, which is
//! why bootproof writes its own rather than running `cpio`.

/// One entry's kind.
enum Kind<'a> {
    Dir,
    File(&'a [u8], u32),
    Symlink(&'a str),
    CharDev(u32, u32),
}

/// An initramfs being assembled; [`Initramfs::finish`] returns its bytes.
#[derive(Default)]
pub struct Initramfs {
    out: Vec<u8>,
    ino: u32,
    dirs: std::collections::BTreeSet<String>,
}

impl Initramfs {
    /// An empty archive.
    pub fn new() -> Initramfs {
        Initramfs::default()
    }

    fn entry(&mut self, path: &str, kind: Kind) {
        let path = path.trim_start_matches('/');
        self.ino += 1;
        let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match kind {
            Kind::Dir => (0o040755, &[], (0, 0)),
            Kind::File(d, perm) => (0o100000 | (perm & 0o7777), d, (0, 0)),
            Kind::Symlink(t) => (0o120777, t.as_bytes(), (0, 0)),
            Kind::CharDev(maj, min) => (0o020600, &[], (maj, min)),
        };
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            if mode & 0o170000 == 0o040000 { 2 } else { 1 },
            0, // mtime: reproducible archives
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            path.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(path.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// Adds every missing parent directory of `path`.
    fn parents(&mut self, path: &str) {
        let path = path.trim_start_matches('/');
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            let dir = &path[..at + i];
            if self.dirs.insert(dir.to_string()) {
                self.entry(dir, Kind::Dir);
            }
            at += i + 1;
        }
    }

    /// Adds a directory (and its parents).
    pub fn dir(&mut self, path: &str) {
        self.parents(path);
        let p = path.trim_start_matches('/').trim_end_matches('/');
        if self.dirs.insert(p.to_string()) {
            self.entry(p, Kind::Dir);
        }
    }

    /// Adds a regular file with permission bits `perm` (and its parents).
    /// Files are limited to 4 GiB by the format.
    pub fn file(&mut self, path: &str, data: &[u8], perm: u32) {
        self.parents(path);
        self.entry(path, Kind::File(data, perm));
    }

    /// Adds a symbolic link.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.parents(path);
        self.entry(path, Kind::Symlink(target));
    }

    /// Adds a character device node (e.g. `/dev/console`, 5:1, so init has
    /// a console before devtmpfs is mounted).
    pub fn char_dev(&mut self, path: &str, major: u32, minor: u32) {
        self.parents(path);
        self.entry(path, Kind::CharDev(major, minor));
    }

    /// The archive, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.ino = 0;
        self.entry("TRAILER!!!", Kind::File(&[], 0));
        // The kernel accepts any length; pad to 512 like cpio does.
        while !self.out.len().is_multiple_of(512) {
            self.out.push(0);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_reader_sees_what_was_written() {
        let mut i = Initramfs::new();
        i.file("/init", b"#!/bin/sh\n", 0o755);
        i.file("/lib/modules/6.1/kernel/a.ko", b"\x7fELF", 0o644);
        i.symlink("/bin/sh", "busybox");
        i.char_dev("/dev/console", 5, 1);
        let data = i.finish();
        assert_eq!(data.len() % 512, 0);
        let info = crate::initrd::inspect(&data).unwrap();
        assert!(info.has_init);
        for want in [
            "init",
            "lib/modules/6.1/kernel/a.ko",
            "lib/modules",
            "dev/console",
            "bin/sh",
        ] {
            assert!(
                info.paths.iter().any(|p| p == want),
                "{want} in {:?}",
                info.paths
            );
        }
        assert!(info.modules.contains("a"));
        assert_eq!(info.segments.len(), 1);
        assert_eq!(info.segments[0].entries, info.paths.len());
    }
}
