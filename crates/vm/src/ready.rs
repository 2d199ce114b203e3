//! The image's own readiness signal. `boot` and `prove` give every guest a
//! virtio-serial port named [`READY_PORT`]; an image that writes a line
//! `READY=1` to it (`/dev/virtio-ports/org.bootproof.ready`, e.g. from a
//! systemd unit ordered after what it waits for) ends the boot as booted
//! at that moment, with no login prompt needed — the same word systemd's
//! notify protocol uses. QEMU records the port to a file (a file backend
//! never blocks the guest); the supervisor polls it here.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

/// The port's name, as the guest sees it under `/dev/virtio-ports/`.
pub const READY_PORT: &str = "org.bootproof.ready";

/// Bytes of the port read at most: a readiness line is short, and a guest
/// flooding the port must not make the host read without end.
const MAX_READ: u64 = 64 * 1024;

/// Follows the readiness port's file.
#[derive(Debug)]
pub struct ReadyPort {
    path: PathBuf,
    /// Opened once QEMU has created it, then kept (the supervisor polls
    /// every 100 ms).
    file: Option<File>,
    read: u64,
    partial: Vec<u8>,
}

impl ReadyPort {
    /// Follows `path` (QEMU creates it when it starts).
    pub fn new(path: PathBuf) -> ReadyPort {
        ReadyPort {
            path,
            file: None,
            read: 0,
            partial: Vec::new(),
        }
    }

    /// The `READY=1` line, once the guest has written one; `None` until
    /// then, when the file is missing, or past [`MAX_READ`] bytes.
    pub fn poll(&mut self) -> Option<String> {
        if self.read >= MAX_READ {
            return None;
        }
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        let f = self.file.as_mut()?;
        f.seek(SeekFrom::Start(self.read)).ok()?;
        let mut fresh = Vec::new();
        f.take(MAX_READ - self.read).read_to_end(&mut fresh).ok()?;
        self.read += fresh.len() as u64;
        self.feed(&fresh)
    }

    /// Looks for a complete `READY=1` line in bytes that arrived on the
    /// port (any chunking; lines past 256 bytes are cut there).
    pub fn feed(&mut self, fresh: &[u8]) -> Option<String> {
        for &b in fresh {
            if b != b'\n' && b != b'\r' {
                if self.partial.len() < 256 {
                    self.partial.push(b);
                }
                continue;
            }
            // Invalid bytes become `?`, not U+FFFD (three bytes each): the
            // line stays within the 256 bytes the guest wrote (found by the
            // vm_classify fuzz target).
            let line = String::from_utf8_lossy(&self.partial)
                .replace('\u{FFFD}', "?")
                .trim()
                .to_string();
            self.partial.clear();
            // sd_notify-style: `READY=1`, possibly among other assignments.
            if line.split_whitespace().any(|w| w == "READY=1") {
                return Some(line);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_ready_line_with_invalid_bytes_stays_within_its_cap() {
        let mut port = ReadyPort::new("/nonexistent".into());
        let mut line = vec![0xffu8; 300];
        line.splice(0..0, b"READY=1 ".iter().copied());
        line.push(b'\n');
        let got = port.feed(&line).unwrap();
        assert!(
            got.len() <= 256 && got.starts_with("READY=1"),
            "{}",
            got.len()
        );
    }

    #[test]
    fn a_ready_line_is_found_across_writes_and_nothing_else_counts() {
        let dir = std::env::temp_dir().join(format!("bootproof-ready-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ready.out");
        let mut port = ReadyPort::new(path.clone());
        assert_eq!(port.poll(), None, "no file yet");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"STATUS=starting\nREADY=0\nREA").unwrap();
        assert_eq!(port.poll(), None);
        f.write_all(b"DY=1 STATUS=up").unwrap();
        assert_eq!(port.poll(), None, "the line is not complete");
        f.write_all(b"\n").unwrap();
        assert_eq!(port.poll().as_deref(), Some("READY=1 STATUS=up"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_flooded_port_is_read_only_so_far() {
        let dir =
            std::env::temp_dir().join(format!("bootproof-ready-flood-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ready.out");
        std::fs::write(&path, vec![b'x'; 200_000]).unwrap();
        let mut port = ReadyPort::new(path.clone());
        assert_eq!(port.poll(), None);
        assert_eq!(port.read, MAX_READ);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"\nREADY=1\n").unwrap();
        assert_eq!(port.poll(), None, "past the bound, the port is ignored");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
