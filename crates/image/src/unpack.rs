//! Compressed images (`.raw.xz` as Fedora ships them, GCE's `.tar.gz`,
//! zstd): decompressed once into a content-addressed cache, then opened
//! like any file.
//!
//! The key is the SHA-256 of the compressed bytes, so a changed download
//! is a new entry and an unchanged one is reused without decompressing
//! again. Output is written sparsely (runs of zeros become holes), through
//! a temporary file renamed into place only when complete, and stops at
//! [`MAX_UNPACKED`]: a small hostile stream cannot fill the disk. The
//! cache keeps the [`KEEP`] most recently used images.
//!
//! Random access into these streams would need their block indexes (xz
//! blocks, zstd seekable frames), which the distributions' images mostly
//! do not have (one xz block for the whole disk), so one sequential
//! decompression is the honest cost.

use crate::error::ImageError;
use crate::read_at::ReadAt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Largest decompressed image accepted (a disk image, not a bomb).
pub const MAX_UNPACKED: u64 = 1 << 40;
/// Memory liblzma may use (`xz -9` needs 64 MiB; a header may ask for 4 GiB).
const LZMA_MEMLIMIT: u64 = 256 << 20;
const CHUNK: usize = 1 << 20;
/// Unpacked images kept in the cache (the least recently used go first).
pub const KEEP: usize = 4;

/// A compression wrapping a whole image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip (`.gz`, GCE's `.tar.gz`).
    Gzip,
    /// xz (`.xz`).
    Xz,
    /// zstd (`.zst`).
    Zstd,
}

impl Compression {
    /// The compression whose magic `head` starts with.
    pub fn sniff(head: &[u8]) -> Option<Compression> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Some(Compression::Xz)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    /// Its usual name.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }

    /// A reader of `input` decompressed.
    pub fn decoder<'a>(self, input: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(input)?),
            Compression::Xz => {
                let stream = liblzma::stream::Stream::new_stream_decoder(
                    LZMA_MEMLIMIT,
                    liblzma::stream::CONCATENATED,
                )
                .map_err(io::Error::other)?;
                Box::new(liblzma::read::XzDecoder::new_stream(input, stream))
            }
        })
    }
}

/// The decompressed copy of `path` in `cache` (made now when missing).
pub(crate) fn unpacked(
    path: &Path,
    kind: Compression,
    cache: &Path,
) -> Result<PathBuf, ImageError> {
    // The key is the compressed file's digest, remembered per path so a
    // multi-GB `.raw.xz` is not read again on every open.
    let key = crate::digest::sha256_file_remembered(path, &cache.join(".index"))
        .map_err(|e| ImageError::io(path, e))?;
    cached(cache, &format!("{key}.{}", kind.name()), &mut |tmp| {
        let corrupt = |e: io::Error| ImageError::Corrupt {
            path: path.to_path_buf(),
            format: kind.name(),
            detail: e.to_string(),
        };
        let input = io::BufReader::new(File::open(path).map_err(|e| ImageError::io(path, e))?);
        let mut decoder = kind.decoder(input).map_err(corrupt)?;
        write_sparse(&mut decoder, tmp).map_err(|e| match e {
            CopyError::Read(e) => corrupt(e),
            CopyError::Out(e) => ImageError::io(tmp, e),
            CopyError::TooLarge => ImageError::Corrupt {
                path: path.to_path_buf(),
                format: kind.name(),
                detail: format!("decompresses to more than {} GiB", MAX_UNPACKED >> 30),
            },
        })
    })
}

/// A copy of `reader` (a sparse tar member, which QEMU cannot read in
/// place) in `cache` under `name` (made now when missing).
pub(crate) fn materialized(
    reader: &dyn ReadAt,
    cache: &Path,
    name: &str,
    path: &Path,
) -> Result<PathBuf, ImageError> {
    cached(cache, name, &mut |tmp| {
        let mut cursor = Cursor { reader, at: 0 };
        write_sparse(&mut cursor, tmp).map_err(|e| match e {
            CopyError::Read(e) => ImageError::io(path, e),
            CopyError::Out(e) => ImageError::io(tmp, e),
            CopyError::TooLarge => ImageError::Corrupt {
                path: path.to_path_buf(),
                format: "tar",
                detail: format!("a member over {} GiB", MAX_UNPACKED >> 30),
            },
        })
    })
}

/// `cache/name`, made by `make` into a temporary file when missing, then
/// renamed into place; a hit marks it recently used.
fn cached(
    cache: &Path,
    name: &str,
    make: &mut dyn FnMut(&Path) -> Result<(), ImageError>,
) -> Result<PathBuf, ImageError> {
    let out = cache.join(name);
    if out.exists() {
        let _ = File::options()
            .append(true)
            .open(&out)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        return Ok(out);
    }
    std::fs::create_dir_all(cache).map_err(|e| ImageError::io(cache, e))?;
    let tmp = cache.join(format!(".{name}.{}.part", std::process::id()));
    if let Err(e) = make(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &out).map_err(|e| ImageError::io(&out, e))?;
    evict(cache, &out);
    Ok(out)
}

/// Removes the least recently used unpacked images beyond [`KEEP`]
/// (never `keep`, the one just made).
fn evict(cache: &Path, keep: &Path) {
    let Ok(dir) = std::fs::read_dir(cache) else {
        return;
    };
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = dir
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .filter(|(_, p)| p != keep)
        .collect();
    entries.sort();
    let excess = (entries.len() + 1).saturating_sub(KEEP);
    for (_, p) in entries.into_iter().take(excess) {
        let _ = std::fs::remove_file(p);
    }
}

/// Why a sparse copy failed.
enum CopyError {
    Read(io::Error),
    Out(io::Error),
    TooLarge,
}

/// Copies `input` to a new file `tmp`, runs of zeros as holes, at most
/// [`MAX_UNPACKED`] bytes.
fn write_sparse(input: &mut dyn Read, tmp: &Path) -> Result<(), CopyError> {
    let mut out = File::create(tmp).map_err(CopyError::Out)?;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = read_up_to(input, &mut buf).map_err(CopyError::Read)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_UNPACKED {
            return Err(CopyError::TooLarge);
        }
        if buf[..n].iter().all(|b| *b == 0) {
            out.seek(SeekFrom::Current(n as i64))
                .map_err(CopyError::Out)?;
        } else {
            out.write_all(&buf[..n]).map_err(CopyError::Out)?;
        }
    }
    out.set_len(total).map_err(CopyError::Out)?;
    out.sync_all().map_err(CopyError::Out)
}

/// A [`ReadAt`] read front to back.
struct Cursor<'a> {
    reader: &'a dyn ReadAt,
    at: u64,
}

impl Read for Cursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.reader.size() - self.at).min(buf.len() as u64) as usize;
        self.reader.read_at(self.at, &mut buf[..n])?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Reads until `buf` is full or the stream ends; the bytes read. (Shared
/// with the boot crate's package readers.)
pub fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_compression_unpacks_once_and_sparsely() {
        let dir = std::env::temp_dir().join(format!("bootproof-unpack-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut disk = vec![0u8; 3 << 20];
        disk[(2 << 20) + 5..(2 << 20) + 9].copy_from_slice(b"data");
        let packed: [(Compression, Vec<u8>); 3] = [
            (Compression::Gzip, {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&disk).unwrap();
                e.finish().unwrap()
            }),
            (Compression::Zstd, zstd::encode_all(&disk[..], 1).unwrap()),
            (Compression::Xz, {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
                e.write_all(&disk).unwrap();
                e.finish().unwrap()
            }),
        ];
        for (kind, bytes) in packed {
            assert_eq!(Compression::sniff(&bytes), Some(kind));
            let src = dir.join(format!("disk.{}", kind.name()));
            std::fs::write(&src, &bytes).unwrap();
            let cache = dir.join("cache");
            let out = unpacked(&src, kind, &cache).unwrap();
            assert!(std::fs::read(&out).unwrap() == disk, "{kind:?}");
            use std::os::unix::fs::MetadataExt;
            let inode = std::fs::metadata(&out).unwrap().ino();
            assert_eq!(unpacked(&src, kind, &cache).unwrap(), out, "reused");
            assert_eq!(
                std::fs::metadata(&out).unwrap().ino(),
                inode,
                "not rewritten"
            );
            // A stream cut short is an error and leaves nothing behind.
            let cut = dir.join(format!("cut.{}", kind.name()));
            std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
            assert!(unpacked(&cut, kind, &cache).is_err(), "{kind:?} cut");
        }
        let left: Vec<_> = std::fs::read_dir(dir.join("cache"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_cache_keeps_the_most_recently_used() {
        let dir = std::env::temp_dir().join(format!("bootproof-evict-{}", std::process::id()));
        let cache = dir.join("cache");
        std::fs::create_dir_all(&dir).unwrap();
        let mut outs = Vec::new();
        for i in 0..KEEP + 1 {
            let src = dir.join(format!("{i}.zst"));
            std::fs::write(&src, zstd::encode_all(&[i as u8; 100][..], 1).unwrap()).unwrap();
            outs.push(unpacked(&src, Compression::Zstd, &cache).unwrap());
            if i == 0 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            // The first is used again after the second: the second is older.
            if i == 1 {
                std::thread::sleep(std::time::Duration::from_millis(20));
                unpacked(&dir.join("0.zst"), Compression::Zstd, &cache).unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let kept: Vec<bool> = outs.iter().map(|p| p.exists()).collect();
        let images = std::fs::read_dir(&cache).unwrap().flatten();
        let images = images.filter(|e| !e.file_name().to_string_lossy().starts_with('.'));
        assert_eq!(images.count(), KEEP, "(`.index` holds the inputs' digests)");
        // Each input's digest was remembered, once.
        assert_eq!(
            std::fs::read_dir(cache.join(".index")).unwrap().count(),
            KEEP + 1
        );
        assert!(
            kept[0] && !kept[1] && kept[2..].iter().all(|k| *k),
            "{kept:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
