//! SHA-256 of whole files: the one hasher behind every content-addressed
//! cache key (unpacked images, unpacked kernel packages) and every recorded
//! image digest, and the one hex spelling they all write.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::UNIX_EPOCH;

/// A reader that hashes (SHA-256) what passes through it: the digest of a
/// stream read once for something else.
pub struct HashingReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> HashingReader<R> {
    /// Hashes what is read from `inner`.
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader {
            inner,
            hash: Sha256::new(),
        }
    }

    /// Reads the rest of the stream, then gives the hex digest of all of it.
    pub fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(hex(self.hash.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Bytes [`HashingWriter`] gathers before one write to its inner writer.
const WRITE_BLOCK: usize = 256 << 10;
/// Blocks waiting for the hashing thread.
const HASH_DEPTH: usize = 4;

/// A buffered writer that hashes (SHA-256) what it passes on: the digest
/// of an output written once. It gathers [`WRITE_BLOCK`] bytes per write
/// to `inner` (extract writes tens of megabytes) and hashes each block on
/// a helper thread while the next one is read and written, so the digest
/// costs no wall time on a machine with a second core. At most
/// [`HASH_DEPTH`] blocks wait for the hasher.
pub struct HashingWriter<W> {
    inner: W,
    block: Vec<u8>,
    to_hasher: std::sync::mpsc::SyncSender<Vec<u8>>,
    hasher: std::thread::JoinHandle<String>,
}

impl<W: Write> HashingWriter<W> {
    /// Hashes what is written to `inner`.
    pub fn new(inner: W) -> HashingWriter<W> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(HASH_DEPTH);
        let hasher = std::thread::spawn(move || {
            let mut hash = Sha256::new();
            for block in rx {
                hash.update(&block);
            }
            hex(hash.finalize())
        });
        HashingWriter {
            inner,
            block: Vec::with_capacity(WRITE_BLOCK),
            to_hasher: tx,
            hasher,
        }
    }

    /// Writes the gathered block to `inner` and hands it to the hasher.
    fn pass_on(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        self.inner.write_all(&self.block)?;
        let block = std::mem::replace(&mut self.block, Vec::with_capacity(WRITE_BLOCK));
        self.to_hasher
            .send(block)
            .map_err(|_| io::Error::other("the hashing thread stopped"))
    }

    /// Writes what is gathered, flushes `inner`, then gives it back with
    /// the hex digest of everything written.
    pub fn finish(mut self) -> io::Result<(W, String)> {
        self.pass_on()?;
        self.inner.flush()?;
        let HashingWriter {
            inner,
            to_hasher,
            hasher,
            ..
        } = self;
        drop(to_hasher); // the hasher's loop ends
        let digest = hasher
            .join()
            .map_err(|_| io::Error::other("the hashing thread panicked"))?;
        Ok((inner, digest))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(WRITE_BLOCK - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == WRITE_BLOCK {
            self.pass_on()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.pass_on()?;
        self.inner.flush()
    }
}

/// Lowercase hex of a digest, as manifests, caches and reports write it.
pub fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of `path`'s content in hex, read in 1 MiB chunks. When
/// `stop` is given and becomes true, hashing ends with an `Interrupted`
/// error (a caller giving up on a multi-GB image does not wait for it).
pub fn sha256_file(path: &Path, stop: Option<&AtomicBool>) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "hashing stopped",
            ));
        }
        match f.read(&mut buf)? {
            0 => break,
            n => h.update(&buf[..n]),
        }
    }
    Ok(hex(h.finalize()))
}

/// The size and modification time (ns since the epoch) that stand for a
/// file's content while neither changes.
pub fn file_stamp(path: &Path) -> io::Result<(u64, u128)> {
    let meta = std::fs::metadata(path)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok((meta.len(), mtime))
}

/// [`sha256_file`] remembered in `index` (a directory; one small record per
/// input path): while the file's size and mtime are what the record says,
/// the recorded digest is returned without reading the file again. The
/// trust is the same as `make`'s; a file rewritten in place with the same
/// size within the same nanosecond is the one change it misses.
pub fn sha256_file_remembered(path: &Path, index: &Path) -> io::Result<String> {
    let stamp = file_stamp(path)?;
    let canonical = std::fs::canonicalize(path)?;
    let record = index.join(hex(Sha256::digest(
        canonical.as_os_str().as_encoded_bytes(),
    )));
    let want = format!("{} {}", stamp.0, stamp.1);
    if let Ok(text) = std::fs::read_to_string(&record) {
        if let Some((seen, digest)) = text.trim_end().rsplit_once(' ') {
            if seen == want && digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(digest.to_string());
            }
        }
    }
    let digest = sha256_file(path, None)?;
    // The record is a cache: failing to write it costs a rehash next time.
    let tmp = record.with_extension(format!("{}.part", std::process::id()));
    let written = std::fs::create_dir_all(index)
        .and_then(|()| std::fs::write(&tmp, format!("{want} {digest}\n")))
        .and_then(|()| std::fs::rename(&tmp, &record));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_sha256sum_and_is_remembered_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"abc").unwrap();
        // sha256("abc") from FIPS 180-2.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(&file, None).unwrap(), abc);
        let index = dir.path().join("index");
        assert_eq!(sha256_file_remembered(&file, &index).unwrap(), abc);
        assert_eq!(std::fs::read_dir(&index).unwrap().count(), 1);
        // A record that disagrees with the content is believed while the
        // stamp holds (that is the point: no read) ...
        let record = std::fs::read_dir(&index)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let text = std::fs::read_to_string(&record).unwrap();
        let forged = text.replace(abc, &"0".repeat(64));
        std::fs::write(&record, forged).unwrap();
        assert_eq!(
            sha256_file_remembered(&file, &index).unwrap(),
            "0".repeat(64)
        );
        // ... and dropped once the file changes.
        std::fs::write(&file, b"abcd").unwrap();
        let abcd = sha256_file(&file, None).unwrap();
        assert_ne!(abcd, abc);
        assert_eq!(sha256_file_remembered(&file, &index).unwrap(), abcd);
    }

    #[test]
    fn a_set_stop_flag_interrupts_hashing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"abc").unwrap();
        let stop = AtomicBool::new(true);
        let e = sha256_file(&file, Some(&stop)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Interrupted);
    }

    /// The hashing reader counts what the reader read and what `finish`
    /// drained; the writer, what passed to its inner writer.
    #[test]
    fn hashing_reader_and_writer_digest_the_whole_stream() {
        let abc = hex(Sha256::digest(b"abc"));
        let mut r = HashingReader::new(&b"abc"[..]);
        let mut first = [0u8; 1];
        r.read_exact(&mut first).unwrap();
        assert_eq!(r.finish().unwrap(), abc);
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"ab").unwrap();
        w.write_all(b"c").unwrap();
        assert_eq!(w.finish().unwrap(), (b"abc".to_vec(), abc));
        // Many blocks, written in pieces that straddle them, with a flush
        // between: the inner writer gets every byte in order and the
        // digest is that of all of them.
        let data: Vec<u8> = (0..3 * WRITE_BLOCK as u32 + 12_345)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut w = HashingWriter::new(Vec::new());
        for (i, piece) in data.chunks(70_001).enumerate() {
            w.write_all(piece).unwrap();
            if i == 3 {
                w.flush().unwrap();
            }
        }
        let (inner, digest) = w.finish().unwrap();
        assert!(inner == data);
        assert_eq!(digest, hex(Sha256::digest(&data)));
    }
}
