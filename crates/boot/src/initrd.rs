//! Initramfs images: one or more cpio (newc) archives, each optionally
//! compressed, concatenated (early microcode first, then the main archive).

use crate::decompress::{reader, Compression, DecompressError};
use serde::Serialize;
use std::collections::BTreeSet;
use std::io::{self, Read};

/// Largest decompressed segment accepted (real initramfs images inflate
/// to a few hundred MiB at most).
pub const MAX_INITRD: u64 = 1 << 30;
/// Most entries listed (bounds memory on hostile archives).
pub const MAX_ENTRIES: usize = 500_000;
/// Longest member name (Linux's PATH_MAX, which its unpacker enforces).
const MAX_NAME: usize = 4096;
/// Nesting of compressed-inside-compressed segments followed.
const MAX_DEPTH: usize = 2;

/// One archive of the concatenation.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Segment {
    /// Byte offset in the (outer) file.
    pub offset: u64,
    /// Compression of this segment, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// Entries in it.
    pub entries: usize,
}

/// What an initramfs holds.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct InitrdInfo {
    /// The archives, in order.
    pub segments: Vec<Segment>,
    /// Every path (without a leading `./`), in archive order.
    #[serde(skip)]
    pub paths: Vec<String>,
    /// Kernel modules (`*.ko`, `*.ko.xz`, `*.ko.zst`, `*.ko.gz`) by file name stem.
    pub modules: BTreeSet<String>,
    /// Kernel versions that have `lib/modules/<version>/` inside.
    pub module_versions: BTreeSet<String>,
    /// Whether `/init` exists.
    pub has_init: bool,
}

/// Why an initramfs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InitrdError {
    /// A segment does not decompress.
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    /// A cpio header is malformed.
    #[error("corrupt cpio archive at byte {offset}: {detail}")]
    Corrupt {
        /// Where.
        offset: u64,
        /// What.
        detail: String,
    },
    /// The initrd file itself could not be read.
    #[error("reading the initramfs at byte {offset}: {detail}")]
    Read {
        /// Where.
        offset: u64,
        /// The I/O error.
        detail: String,
    },
    /// Something other than cpio or a known compression.
    #[error("unrecognised data at byte {0} (not cpio newc and no known compression)")]
    Unknown(u64),
}

fn hex(b: &[u8]) -> Option<u64> {
    u64::from_str_radix(std::str::from_utf8(b).ok()?, 16).ok()
}

/// A reader that can look ahead: magic bytes decide between cpio and a
/// compressed segment before anything is consumed. Holds one 64 KiB buffer.
struct Peek<'a> {
    inner: Box<dyn Read + 'a>,
    buf: Vec<u8>,
    start: usize,
    /// Bytes consumed so far (offsets in errors are relative to this stream).
    pos: u64,
    /// The compression this stream decodes, for decoder errors.
    format: Option<Compression>,
    /// Where skipped file data is decoded to (empty until the first skip
    /// past the buffer).
    scratch: Vec<u8>,
}

const PEEK_BUF: usize = 64 << 10;

/// How much file data [`Peek::skip`] decodes per read.
const SKIP_BLOCK: usize = 256 << 10;

impl<'a> Peek<'a> {
    fn new(inner: Box<dyn Read + 'a>, format: Option<Compression>) -> Peek<'a> {
        Peek {
            inner,
            buf: Vec::with_capacity(PEEK_BUF),
            start: 0,
            pos: 0,
            format,
            scratch: Vec::new(),
        }
    }

    fn io_error(&self, base: u64, e: io::Error) -> InitrdError {
        if let Some(d) = e.get_ref().and_then(|d| d.downcast_ref::<Exceeded>()) {
            return InitrdError::Decompress(DecompressError::TooLarge {
                format: d.0,
                limit: MAX_INITRD,
            });
        }
        match self.format {
            Some(c) => InitrdError::Decompress(DecompressError::Corrupt {
                format: c.name(),
                detail: e.to_string(),
            }),
            None => InitrdError::Read {
                offset: base + self.pos,
                detail: e.to_string(),
            },
        }
    }

    /// Buffers up to `n` (≤ 64 KiB) bytes ahead, fewer only at the end.
    /// The decoder writes straight into the buffer's free tail.
    fn fill(&mut self, n: usize) -> io::Result<()> {
        if self.buf.len() - self.start < n {
            self.buf.drain(..self.start);
            self.start = 0;
            while self.buf.len() < n {
                let have = self.buf.len();
                self.buf.resize(PEEK_BUF, 0);
                let got = self.inner.read(&mut self.buf[have..]);
                self.buf.truncate(have + *got.as_ref().unwrap_or(&0));
                match got {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Up to `n` (≤ 64 KiB) bytes ahead, fewer only at the end of input.
    fn peek(&mut self, n: usize, base: u64) -> Result<&[u8], InitrdError> {
        if let Err(e) = self.fill(n) {
            return Err(self.io_error(base, e));
        }
        let end = (self.start + n).min(self.buf.len());
        Ok(&self.buf[self.start..end])
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.pos += n as u64;
    }

    /// Skips `n` bytes; returns how many there were. What is buffered is
    /// dropped; the rest is decoded into a scratch block that is never
    /// copied (file data is most of an initramfs, and only names matter).
    fn skip(&mut self, n: u64, base: u64) -> Result<u64, InitrdError> {
        let buffered = (self.buf.len() - self.start).min(usize::try_from(n).unwrap_or(usize::MAX));
        self.consume(buffered);
        let mut left = n - buffered as u64;
        if left == 0 {
            return Ok(n);
        }
        self.scratch.resize(SKIP_BLOCK, 0);
        while left > 0 {
            let want = left.min(SKIP_BLOCK as u64) as usize;
            match self.inner.read(&mut self.scratch[..want]) {
                Ok(0) => break,
                Ok(k) => {
                    self.pos += k as u64;
                    left -= k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(base, e)),
            }
        }
        Ok(n - left)
    }
}

impl Read for Peek<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.buf.len() {
            let n = self.inner.read(out)?;
            self.pos += n as u64;
            return Ok(n);
        }
        let n = out.len().min(self.buf.len() - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.consume(n);
        Ok(n)
    }
}

/// The decompressed-size limit, carried through `io::Error`.
#[derive(Debug)]
struct Exceeded(&'static str);

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} data inflates past {MAX_INITRD} bytes", self.0)
    }
}

impl std::error::Error for Exceeded {}

/// Fails the read that would take a decoder's output past [`MAX_INITRD`].
struct Capped<'a> {
    inner: Box<dyn Read + 'a>,
    left: u64,
    format: &'static str,
}

impl Read for Capped<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self
            .left
            .checked_sub(n as u64)
            .ok_or_else(|| io::Error::other(Exceeded(self.format)))?;
        Ok(n)
    }
}

/// Parses one newc archive; returns its entry count after its trailer.
fn cpio(s: &mut Peek<'_>, base: u64, info: &mut InitrdInfo) -> Result<usize, InitrdError> {
    let mut count = 0;
    loop {
        let at = s.pos;
        let corrupt = |detail: &str| InitrdError::Corrupt {
            offset: base + at,
            detail: detail.into(),
        };
        let h = s.peek(110, base)?;
        if h.len() < 110 {
            return Err(corrupt("header truncated"));
        }
        if &h[..6] != b"070701" && &h[..6] != b"070702" {
            return Err(corrupt("bad magic"));
        }
        let mode = hex(&h[14..22]).ok_or_else(|| corrupt("bad mode"))?;
        let size = hex(&h[54..62]).ok_or_else(|| corrupt("bad file size"))?;
        let name_size = hex(&h[94..102]).ok_or_else(|| corrupt("bad name size"))? as usize;
        if name_size > MAX_NAME {
            return Err(corrupt(&format!(
                "name of {name_size} bytes exceeds PATH_MAX ({MAX_NAME})"
            )));
        }
        s.consume(110);
        let name_raw = s.peek(name_size, base)?;
        if name_raw.len() < name_size {
            return Err(corrupt("name truncated"));
        }
        let name =
            String::from_utf8_lossy(name_raw.strip_suffix(&[0]).unwrap_or(name_raw)).into_owned();
        s.consume(name_size);
        // Names and data are 4-byte aligned relative to the stream's start.
        let pad = |pos: u64| pos.div_ceil(4) * 4 - pos;
        let data_and_pad = pad(s.pos)
            .checked_add(size)
            .ok_or_else(|| corrupt("file size overflows"))?;
        if s.skip(data_and_pad, base)? < data_and_pad {
            return Err(corrupt("file data truncated"));
        }
        s.skip(pad(s.pos), base)?;
        if name == "TRAILER!!!" {
            return Ok(count);
        }
        count += 1;
        record(info, &name, mode);
    }
}

/// Adds one archive member to what the listing knows.
fn record(info: &mut InitrdInfo, name: &str, mode: u64) {
    let path = name
        .trim_start_matches("./")
        .trim_start_matches('/')
        .to_string();
    if path == "init" {
        info.has_init = true;
    }
    if mode & 0o170000 == 0o100000 {
        let file = path.rsplit('/').next().unwrap_or(&path);
        for ext in [".ko", ".ko.xz", ".ko.zst", ".ko.gz"] {
            if let Some(stem) = file.strip_suffix(ext) {
                if info.modules.len() < MAX_ENTRIES {
                    info.modules.insert(stem.replace('-', "_"));
                }
            }
        }
    }
    if let Some(rest) = path
        .strip_prefix("lib/modules/")
        .or_else(|| path.strip_prefix("usr/lib/modules/"))
    {
        if let Some(v) = rest.split('/').next().filter(|v| !v.is_empty()) {
            if info.module_versions.len() < 64 {
                info.module_versions.insert(v.to_string());
            }
        }
    }
    if info.paths.len() < MAX_ENTRIES {
        info.paths.push(path);
    }
}

/// Parses the archives of one stream; a compressed segment runs to its end
/// and is parsed, streamed, one level deeper.
fn parse(
    s: &mut Peek<'_>,
    base: u64,
    depth: usize,
    info: &mut InitrdInfo,
) -> Result<(), InitrdError> {
    loop {
        // Archives are padded with zeros between them (often to 512 bytes).
        loop {
            let ahead = s.peek(PEEK_BUF, base)?;
            let zeros = ahead.iter().take_while(|&&b| b == 0).count();
            let more = zeros == ahead.len() && zeros > 0;
            s.consume(zeros);
            if !more {
                break;
            }
        }
        let at = s.pos;
        let head = s.peek(16, base)?;
        if head.is_empty() {
            return Ok(());
        }
        if head.starts_with(b"0707") {
            let entries = cpio(s, base, info)?;
            info.segments.push(Segment {
                offset: base + at,
                compression: None,
                entries,
            });
        } else if let Some(c) = Compression::detect(head) {
            if depth >= MAX_DEPTH {
                return Err(InitrdError::Unknown(base + at));
            }
            let decoder = Capped {
                inner: reader(c, &mut *s)?,
                left: MAX_INITRD,
                format: c.name(),
            };
            let mut inner = Peek::new(Box::new(decoder), Some(c));
            let before = info.segments.len();
            parse(&mut inner, base + at, depth + 1, info)?;
            let entries = info.segments[before..].iter().map(|s| s.entries).sum();
            info.segments.truncate(before);
            info.segments.push(Segment {
                offset: base + at,
                compression: Some(c),
                entries,
            });
            return Ok(());
        } else {
            return Err(InitrdError::Unknown(base + at));
        }
    }
}

/// Lists an initramfs held in memory.
pub fn inspect(data: &[u8]) -> Result<InitrdInfo, InitrdError> {
    inspect_reader(data)
}

/// Lists an initramfs as it streams past: memory stays at a few buffers
/// plus the listing (at most [`MAX_ENTRIES`] paths of at most 4 KiB),
/// whatever the archive or its compression declares.
pub fn inspect_reader<'a>(r: impl Read + 'a) -> Result<InitrdInfo, InitrdError> {
    let mut info = InitrdInfo::default();
    let mut s = Peek::new(Box::new(r), None);
    parse(&mut s, 0, 0, &mut info)?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn newc(name: &str, size: usize) -> Vec<u8> {
        let mut h = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            1,
            0o100644,
            0,
            0,
            1,
            0,
            size,
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        )
        .into_bytes();
        h.extend(name.as_bytes());
        h.push(0);
        h
    }

    #[test]
    fn a_name_longer_than_path_max_is_refused_before_reading_it() {
        let long = "a".repeat(5000);
        let e = inspect(&newc(&long, 0)).unwrap_err().to_string();
        assert!(e.contains("exceeds PATH_MAX"), "{e}");
    }

    #[test]
    fn a_declared_size_past_the_data_is_truncation_not_an_allocation() {
        let mut a = newc("init", 0xffff_ffff);
        a.extend([1u8; 100]);
        let e = inspect(&a).unwrap_err().to_string();
        assert!(e.contains("file data truncated"), "{e}");
    }

    /// A 1 MiB gzip stream inflating past the limit fails as a bomb,
    /// streamed (never held whole), and quickly enough for a unit test.
    #[test]
    fn a_gzip_bomb_is_refused_while_streaming() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&vec![0u8; 64 << 20]).unwrap();
        let member = gz.finish().unwrap();
        let count = (MAX_INITRD / (64 << 20)) as usize + 1;
        let bomb: Vec<u8> = member.repeat(count);
        assert!(bomb.len() < 8 << 20);
        let e = inspect(&bomb).unwrap_err();
        assert!(
            matches!(e, InitrdError::Decompress(DecompressError::TooLarge { .. })),
            "{e}"
        );
    }
}
