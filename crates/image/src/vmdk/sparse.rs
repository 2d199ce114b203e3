//! A hosted sparse extent (`KDMV`): monolithicSparse, the extents of
//! twoGbMaxExtentSparse, and streamOptimized (deflate-compressed grains
//! behind markers, the grain directory at the end, found through the
//! footer).
//!
//! Layout (VMware "Virtual Disk Format 5.0"; little-endian): a 512-byte
//! header (magic `KDMV`, version, flags, capacity and grain size in
//! sectors, the embedded descriptor's place, grain-table entries per
//! table, the grain directory's sector), then a grain directory of `u32`
//! sector offsets of grain tables, each table `u32` sector offsets of
//! grains (0: not stored, reads as zeros; 1 with the zeroed-grain flag:
//! zeros). A compressed grain starts with a marker: the grain's LBA
//! (`u64`) and the compressed length (`u32`), then a zlib stream.

use super::corrupt;
use crate::cache::FifoCache;
use crate::error::ImageError;
use crate::read_at::{by_block, check_bounds, ReadAt};
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

const FLAG_ZERO_GRAIN: u32 = 1 << 2;
const FLAG_COMPRESSED: u32 = 1 << 16;
const FLAG_MARKERS: u32 = 1 << 17;
/// `gd_offset` of a stream whose directory is at the end (see the footer).
const GD_AT_END: u64 = u64::MAX;
const MARKER_EOS: u32 = 0;
const MARKER_FOOTER: u32 = 3;
/// Largest grain directory read into memory.
const MAX_GD_BYTES: u64 = 64 << 20;
/// Grain sizes accepted, in sectors (VMware writes 128: 64 KiB).
const GRAIN_SECTORS: std::ops::RangeInclusive<u64> = 1..=4096;
/// Grain tables kept (2 KiB each at 512 entries).
const GT_CACHE: usize = 256;
/// Bytes of decompressed grains kept.
const GRAIN_CACHE_BYTES: u64 = 8 << 20;

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The sparse header's fields bootproof uses.
#[derive(Debug, Clone)]
pub(crate) struct SparseHeader {
    /// Format version (1–3).
    pub(crate) version: u32,
    flags: u32,
    /// Disk size in sectors.
    pub(crate) capacity: u64,
    /// Grain size in sectors.
    pub(crate) grain: u64,
    /// Embedded descriptor: sector and length in sectors.
    pub(crate) descriptor: (u64, u64),
    gtes_per_gt: u64,
    gd_offset: u64,
    /// Whether grains are deflate-compressed (streamOptimized).
    pub(crate) compressed: bool,
}

impl SparseHeader {
    /// Parses a header sector (magic included).
    fn parse(b: &[u8; 512], path: &Path) -> Result<SparseHeader, ImageError> {
        if &b[..4] != b"KDMV" {
            return Err(corrupt(path, "no `KDMV` sparse extent header"));
        }
        let h = SparseHeader {
            version: le32(b, 4),
            flags: le32(b, 8),
            capacity: le64(b, 12),
            grain: le64(b, 20),
            descriptor: (le64(b, 28), le64(b, 36)),
            gtes_per_gt: u64::from(le32(b, 44)),
            gd_offset: le64(b, 56),
            compressed: u16::from_le_bytes([b[77], b[78]]) == 1,
        };
        if !(1..=3).contains(&h.version) {
            return Err(ImageError::Unsupported {
                path: path.to_path_buf(),
                format: "VMDK".into(),
                detail: format!("sparse extent version {}", h.version),
            });
        }
        Ok(h)
    }

    /// Reads the header of `file`; a stream's real header is its footer.
    pub(crate) fn read(file: &dyn ReadAt, path: &Path) -> Result<SparseHeader, ImageError> {
        let mut b = [0u8; 512];
        if file.size() < 512 {
            return Err(corrupt(path, "shorter than its header"));
        }
        file.read_at(0, &mut b)
            .map_err(|e| ImageError::io(path, e))?;
        let head = SparseHeader::parse(&b, path)?;
        if head.gd_offset != GD_AT_END {
            return Ok(head);
        }
        // Footer marker, footer (a header), end-of-stream marker.
        let size = file.size();
        if size < 512 + 1536 {
            return Err(corrupt(path, "a stream without room for its footer"));
        }
        let mut tail = vec![0u8; 1536];
        file.read_at(size - 1536, &mut tail)
            .map_err(|e| ImageError::io(path, e))?;
        let marker_ok =
            |at: usize, kind: u32| le32(&tail, at + 8) == 0 && le32(&tail, at + 12) == kind;
        if !marker_ok(0, MARKER_FOOTER) || !marker_ok(1024, MARKER_EOS) || le64(&tail, 1024) != 0 {
            return Err(corrupt(
                path,
                "the grain directory is at the end but no footer and end-of-stream marker end the file",
            ));
        }
        let footer: [u8; 512] = tail[512..1024].try_into().expect("512 bytes");
        let foot = SparseHeader::parse(&footer, path)?;
        if foot.gd_offset == GD_AT_END {
            return Err(corrupt(
                path,
                "the footer, too, puts the grain directory at the end",
            ));
        }
        Ok(foot)
    }
}

/// One sparse extent's sectors.
pub(crate) struct SparseExtent {
    file: Arc<dyn ReadAt>,
    header: SparseHeader,
    size: u64,
    grain_bytes: u64,
    gd: Vec<u32>,
    tables: FifoCache<Vec<u32>>,
    grains: FifoCache<Vec<u8>>,
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("corrupt VMDK: {msg}"))
}

impl SparseExtent {
    /// Opens the extent in `file` with header `header`.
    pub(crate) fn new(
        file: Arc<dyn ReadAt>,
        header: SparseHeader,
        path: &Path,
    ) -> Result<SparseExtent, ImageError> {
        let h = &header;
        if !h.grain.is_power_of_two() || !GRAIN_SECTORS.contains(&h.grain) {
            return Err(corrupt(path, format!("grain of {} sectors", h.grain)));
        }
        if !(1..=512).contains(&h.gtes_per_gt) {
            return Err(corrupt(
                path,
                format!("{} entries per grain table", h.gtes_per_gt),
            ));
        }
        let size = h
            .capacity
            .checked_mul(512)
            .ok_or_else(|| corrupt(path, format!("capacity of {} sectors", h.capacity)))?;
        let per_table = h.gtes_per_gt * h.grain;
        // The directory must be in the file: its size is bounded by real
        // bytes, not by the capacity field.
        let gd_bytes = h.capacity.div_ceil(per_table) * 4;
        let at = h.gd_offset.checked_mul(512);
        if gd_bytes > MAX_GD_BYTES
            || at
                .and_then(|a| a.checked_add(gd_bytes))
                .is_none_or(|end| end > file.size())
        {
            return Err(corrupt(
                path,
                format!(
                    "grain directory of {gd_bytes} bytes at sector {}",
                    h.gd_offset
                ),
            ));
        }
        let mut raw = vec![0u8; gd_bytes as usize];
        file.read_at(at.unwrap_or_default(), &mut raw)
            .map_err(|e| ImageError::io(path, e))?;
        let grain_bytes = h.grain * 512;
        Ok(SparseExtent {
            gd: raw.chunks_exact(4).map(|c| le32(c, 0)).collect(),
            file,
            size,
            grain_bytes,
            tables: FifoCache::new(GT_CACHE),
            grains: FifoCache::new((GRAIN_CACHE_BYTES / grain_bytes).max(4) as usize),
            header,
        })
    }

    /// The sector where grain `index` is stored (0: not stored, 1: zeroed).
    fn grain_sector(&self, index: u64) -> io::Result<u32> {
        let per = self.header.gtes_per_gt;
        let table = self.gd[(index / per) as usize];
        if table == 0 {
            return Ok(0);
        }
        let entries = self.tables.get_or_load(u64::from(table), || {
            let mut raw = vec![0u8; per as usize * 4];
            let at = u64::from(table) * 512;
            if at.saturating_add(raw.len() as u64) > self.file.size() {
                return Err(bad(format!("grain table at sector {table} past the end")));
            }
            self.file.read_at(at, &mut raw)?;
            Ok(raw.chunks_exact(4).map(|c| le32(c, 0)).collect())
        })?;
        Ok(entries[(index % per) as usize])
    }

    /// A compressed grain, decompressed (and cached).
    fn inflated(&self, index: u64, sector: u32) -> io::Result<Arc<Vec<u8>>> {
        self.grains.get_or_load(u64::from(sector), || {
            let at = u64::from(sector) * 512;
            let file_size = self.file.size();
            let markers = self.header.flags & FLAG_MARKERS != 0;
            let head = if markers { 12 } else { 0 };
            if at.saturating_add(head) > file_size {
                return Err(bad(format!(
                    "grain {index} at sector {sector} past the end"
                )));
            }
            let most = 2 * self.grain_bytes + 4096;
            let len = if markers {
                let mut m = [0u8; 12];
                self.file.read_at(at, &mut m)?;
                let lba = le64(&m, 0);
                if lba != index * self.header.grain {
                    return Err(bad(format!(
                        "grain {index}'s marker names sector {lba}, not {}",
                        index * self.header.grain
                    )));
                }
                u64::from(le32(&m, 8))
            } else {
                most
            };
            let len = len.min(most).min(file_size - at - head);
            let mut packed = vec![0u8; len as usize];
            self.file.read_at(at + head, &mut packed)?;
            let mut out = Vec::with_capacity(self.grain_bytes as usize);
            flate2::read::ZlibDecoder::new(&packed[..])
                .take(self.grain_bytes)
                .read_to_end(&mut out)
                .map_err(|e| bad(format!("grain {index} does not inflate: {e}")))?;
            Ok(out)
        })
    }

    /// Reads `buf` at `offset` within one grain.
    fn read_in_grain(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let index = offset / self.grain_bytes;
        let within = offset % self.grain_bytes;
        let sector = self.grain_sector(index)?;
        let zeroed = sector == 1 && self.header.flags & FLAG_ZERO_GRAIN != 0;
        if sector == 0 || zeroed {
            buf.fill(0);
            return Ok(());
        }
        if self.header.flags & FLAG_COMPRESSED != 0 || self.header.compressed {
            let data = self.inflated(index, sector)?;
            let end = within as usize + buf.len();
            if end > data.len() {
                return Err(bad(format!(
                    "grain {index} inflates to {} bytes, fewer than the {end} read",
                    data.len()
                )));
            }
            buf.copy_from_slice(&data[within as usize..end]);
            return Ok(());
        }
        let at = u64::from(sector) * 512 + within;
        if at.saturating_add(buf.len() as u64) > self.file.size() {
            return Err(bad(format!(
                "grain {index} at sector {sector} past the end"
            )));
        }
        self.file.read_at(at, buf)
    }
}

impl ReadAt for SparseExtent {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.size)?;
        by_block(offset, buf, self.grain_bytes, |at, part| {
            self.read_in_grain(at, part)
        })
    }
}
