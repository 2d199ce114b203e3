//! The random-access read interface every later stage reads through.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Positioned, exact reads from something with a fixed size (an image, a
/// partition, a file inside a filesystem). `&self` so one source can be
/// shared by several readers.
pub trait ReadAt: Send + Sync {
    /// Size in bytes.
    fn size(&self) -> u64;
    /// Fill `buf` from `offset`. Reading past [`ReadAt::size`] is an
    /// `UnexpectedEof` error, never a short read.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl<T: ReadAt + ?Sized> ReadAt for Arc<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read_at(offset, buf)
    }
}

/// Checks that `offset..offset+len` lies within `size`: the one bounds
/// check and error every [`ReadAt`] implementation (here and in the disk
/// crate's volume maps) gives for a read past its end.
pub fn check_bounds(offset: u64, len: usize, size: u64) -> io::Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= size => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("read of {len} bytes at offset {offset} is past the end ({size} bytes)"),
        )),
    }
}

/// A window `[start, start+len)` of another reader: a partition of a disk,
/// a boot image inside an ISO.
#[derive(Clone)]
pub struct Slice {
    inner: Arc<dyn ReadAt>,
    start: u64,
    len: u64,
}

impl Slice {
    /// A window over `inner`. The window is clamped to `inner`'s size, so
    /// a partition entry that claims more than the disk holds still reads
    /// only real bytes.
    pub fn new(inner: Arc<dyn ReadAt>, start: u64, len: u64) -> Slice {
        let size = inner.size();
        let start = start.min(size);
        let len = len.min(size - start);
        Slice { inner, start, len }
    }
    /// Offset of the window in the underlying reader.
    pub fn start(&self) -> u64 {
        self.start
    }
}

impl ReadAt for Slice {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.len)?;
        self.inner.read_at(self.start + offset, buf)
    }
}

/// Splits a read of `buf` at `offset` at every multiple of `block` (a
/// cluster, grain or block of a format) and hands each piece to `read`
/// with its own offset: every sparse format reads one block at a time.
pub fn by_block(
    offset: u64,
    buf: &mut [u8],
    block: u64,
    mut read: impl FnMut(u64, &mut [u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let at = offset + done as u64;
        let n = ((block - at % block) as usize).min(buf.len() - done);
        read(at, &mut buf[done..done + n])?;
        done += n;
    }
    Ok(())
}

/// One piece of a [`Spans`] disk: `len` bytes of zeros, or of a reader
/// from an offset.
pub struct Span {
    /// Its length in bytes.
    pub len: u64,
    /// Where its bytes are: a reader and the offset there (`None`: zeros).
    pub source: Option<(Arc<dyn ReadAt>, u64)>,
}

/// Pieces end to end: a VMDK descriptor's extents, a sparse tar member's
/// data segments and holes, an LVM logical volume's segments. Reads find their piece by binary search.
pub struct Spans {
    /// Each piece with its start.
    parts: Vec<(u64, Span)>,
    size: u64,
}

impl Spans {
    /// The pieces in order; `None` when they add up past 2^64 bytes.
    pub fn new(spans: Vec<Span>) -> Option<Spans> {
        let mut parts = Vec::with_capacity(spans.len());
        let mut size = 0u64;
        for s in spans {
            let start = size;
            size = size.checked_add(s.len)?;
            parts.push((start, s));
        }
        Some(Spans { parts, size })
    }
}

impl ReadAt for Spans {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.size)?;
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let i = self.parts.partition_point(|(s, p)| s + p.len <= at);
            let (start, part) = &self.parts[i];
            let within = at - start;
            let n = ((part.len - within) as usize).min(buf.len() - done);
            let out = &mut buf[done..done + n];
            match &part.source {
                None => out.fill(0),
                Some((r, from)) => r.read_at(from + within, out)?,
            }
            done += n;
        }
        Ok(())
    }
}

/// Counts of host I/O, shared by every layer of one image. Used to prove
/// (in tests and benchmarks) that metadata operations read little.
#[derive(Clone, Default, Debug)]
pub struct IoStats(Arc<(AtomicU64, AtomicU64)>);

impl IoStats {
    pub(crate) fn record(&self, bytes: usize) {
        self.0 .0.fetch_add(bytes as u64, Ordering::Relaxed);
        self.0 .1.fetch_add(1, Ordering::Relaxed);
    }
    /// Bytes read from host files.
    pub fn bytes_read(&self) -> u64 {
        self.0 .0.load(Ordering::Relaxed)
    }
    /// Number of read calls made to host files.
    pub fn reads(&self) -> u64 {
        self.0 .1.load(Ordering::Relaxed)
    }
}

/// An image held in memory: for embedders that already have the bytes, for
/// fuzzing, and for tests.
pub struct MemImage(pub Vec<u8>);

impl ReadAt for MemImage {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.size())?;
        let start = offset as usize;
        buf.copy_from_slice(&self.0[start..start + buf.len()]);
        Ok(())
    }
}
