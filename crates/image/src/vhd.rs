//! VHD (Microsoft Virtual Hard Disk, "vpc" in QEMU): fixed and dynamic.
//!
//! Layout (MS-VHD): every file ends with a 512-byte big-endian footer
//! (cookie `conectix`). A fixed disk is the raw sectors followed by that
//! footer. A dynamic disk has a copy of the footer at byte 0, a dynamic
//! header (`cxsparse`) at the footer's data offset, a block allocation
//! table (BAT: one big-endian sector number per block, `0xFFFFFFFF` for
//! none) and blocks, each a sector bitmap (bit set: the sector is stored)
//! followed by the block's data. Differencing disks (a parent chain by
//! name and GUID) are refused.
//!
//! Why our own reader: the crates that read VHD (`vhd`, `vhd-core`) read
//! through one `Read + Seek` cursor, where bootproof shares one
//! [`ReadAt`] between threads; and the disk's size must be the one QEMU
//! gives the guest, which for Virtual PC and old QEMU files is the CHS
//! geometry, not the footer's size (QEMU's `block/vpc.c` rule, kept here).

use crate::cache::FifoCache;
use crate::error::ImageError;
use crate::read_at::{by_block, check_bounds, ReadAt};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// No BAT entry: the block reads as zeros.
const UNALLOCATED: u32 = 0xFFFF_FFFF;
/// Largest BAT read into memory (16 Mi blocks: 32 TiB of 2 MiB blocks).
const MAX_BAT_BYTES: u64 = 64 << 20;
/// Block bitmaps kept.
const BITMAP_CACHE: usize = 64;

/// The footer's fields bootproof uses.
#[derive(Debug, Clone)]
pub(crate) struct Footer {
    /// Offset of the dynamic header (`u64::MAX` for a fixed disk).
    data_offset: u64,
    /// The four-character creator application.
    creator_app: [u8; 4],
    /// The footer's size field.
    current_size: u64,
    /// Cylinders, heads, sectors per track.
    geometry: (u64, u64, u64),
    /// 2 fixed, 3 dynamic, 4 differencing.
    disk_type: u32,
    /// Non-fatal findings.
    pub(crate) warnings: Vec<String>,
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// One's complement of the byte sum, the checksum field taken as zero.
fn checksum(b: &[u8], field: usize) -> u32 {
    let sum = b.iter().enumerate().fold(0u32, |s, (i, x)| {
        if (field..field + 4).contains(&i) {
            s
        } else {
            s.wrapping_add(u32::from(*x))
        }
    });
    !sum
}

fn corrupt(path: &Path, detail: impl Into<String>) -> ImageError {
    ImageError::Corrupt {
        path: path.to_path_buf(),
        format: "VHD",
        detail: detail.into(),
    }
}

impl Footer {
    /// Parses the footer at the end of `file` (or, when that is damaged,
    /// the dynamic disk's copy at byte 0).
    pub(crate) fn read(file: &dyn ReadAt, path: &Path) -> Result<Footer, ImageError> {
        let size = file.size();
        let mut b = [0u8; 512];
        if size >= 512 {
            file.read_at(size - 512, &mut b)
                .map_err(|e| ImageError::io(path, e))?;
        }
        if &b[..8] != b"conectix" {
            file.read_at(0, &mut b)
                .map_err(|e| ImageError::io(path, e))?;
            if &b[..8] != b"conectix" {
                return Err(corrupt(
                    path,
                    "no `conectix` footer at the end or the start",
                ));
            }
        }
        let mut warnings = Vec::new();
        if checksum(&b, 0x40) != be32(&b, 0x40) {
            warnings.push("footer checksum does not match (QEMU reads it anyway)".into());
        }
        let g = be32(&b, 0x38);
        Ok(Footer {
            data_offset: be64(&b, 0x10),
            creator_app: b[0x1c..0x20].try_into().expect("4 bytes"),
            current_size: be64(&b, 0x30),
            geometry: (
                u64::from(g >> 16),
                u64::from((g >> 8) & 0xff),
                u64::from(g & 0xff),
            ),
            disk_type: be32(&b, 0x3c),
            warnings,
        })
    }

    /// The disk size QEMU gives the guest: the CHS geometry's for files
    /// Virtual PC or old QEMU wrote (unless the geometry is the maximum,
    /// which cannot hold the disk), else the footer's size.
    pub(crate) fn virtual_size(&self) -> u64 {
        let (c, h, s) = self.geometry;
        let chs_app = matches!(&self.creator_app, b"vpc " | b"qemu");
        if chs_app && (c, h, s) != (65535, 16, 255) {
            c * h * s * 512
        } else {
            self.current_size
        }
    }

    /// `fixed` or `dynamic`.
    pub(crate) fn kind(&self) -> &'static str {
        if self.disk_type == 2 {
            "fixed"
        } else {
            "dynamic"
        }
    }
}

/// A dynamic disk's block map.
struct Dynamic {
    block_size: u64,
    /// Bytes of each block's sector bitmap (whole sectors).
    bitmap_size: u64,
    bat: Vec<u32>,
    bitmaps: FifoCache<Vec<u8>>,
}

/// A VHD's virtual disk.
pub(crate) struct VhdReader {
    file: Arc<dyn ReadAt>,
    size: u64,
    dynamic: Option<Dynamic>,
}

impl VhdReader {
    /// Opens a fixed or dynamic VHD whose footer is `footer`.
    pub(crate) fn new(
        file: Arc<dyn ReadAt>,
        footer: &Footer,
        path: &Path,
    ) -> Result<VhdReader, ImageError> {
        let size = footer.virtual_size();
        match footer.disk_type {
            2 => {
                if size > file.size().saturating_sub(512) {
                    return Err(corrupt(
                        path,
                        format!("fixed disk of {size} bytes in a {}-byte file", file.size()),
                    ));
                }
                Ok(VhdReader {
                    file,
                    size,
                    dynamic: None,
                })
            }
            3 => {
                let dynamic = Dynamic::read(&*file, footer, size, path)?;
                Ok(VhdReader {
                    file,
                    size,
                    dynamic: Some(dynamic),
                })
            }
            4 => Err(ImageError::Unsupported {
                path: path.to_path_buf(),
                format: "VHD".into(),
                detail: "differencing disk (a parent chain)".into(),
            }),
            t => Err(corrupt(path, format!("disk type {t}"))),
        }
    }
}

impl Dynamic {
    fn read(
        file: &dyn ReadAt,
        footer: &Footer,
        size: u64,
        path: &Path,
    ) -> Result<Dynamic, ImageError> {
        let mut h = [0u8; 1024];
        let at = footer.data_offset;
        if at.checked_add(1024).is_none_or(|end| end > file.size()) {
            return Err(corrupt(
                path,
                format!("dynamic header offset {at} outside the file"),
            ));
        }
        file.read_at(at, &mut h)
            .map_err(|e| ImageError::io(path, e))?;
        if &h[..8] != b"cxsparse" {
            return Err(corrupt(path, "no `cxsparse` dynamic header"));
        }
        let table = be64(&h, 0x10);
        let entries = u64::from(be32(&h, 0x1c));
        let block_size = u64::from(be32(&h, 0x20));
        if !block_size.is_power_of_two() || !(512..=(256 << 20)).contains(&block_size) {
            return Err(corrupt(path, format!("block size {block_size}")));
        }
        if entries.saturating_mul(block_size) < size {
            return Err(corrupt(
                path,
                format!("{entries} blocks of {block_size} bytes cannot hold {size} bytes"),
            ));
        }
        // Only the blocks the disk uses are read, and the table must be in
        // the file: its size is bounded by real bytes, not by a field.
        let used = size.div_ceil(block_size);
        let bytes = used * 4;
        if bytes > MAX_BAT_BYTES || table.checked_add(bytes).is_none_or(|e| e > file.size()) {
            return Err(corrupt(
                path,
                format!("block table of {bytes} bytes at {table}"),
            ));
        }
        let mut raw = vec![0u8; bytes as usize];
        file.read_at(table, &mut raw)
            .map_err(|e| ImageError::io(path, e))?;
        let bat = raw.chunks_exact(4).map(|c| be32(c, 0)).collect();
        Ok(Dynamic {
            block_size,
            bitmap_size: (block_size / 512).div_ceil(8).div_ceil(512) * 512,
            bat,
            bitmaps: FifoCache::new(BITMAP_CACHE),
        })
    }

    /// Block `index`'s sector bitmap, cached.
    fn bitmap(&self, file: &dyn ReadAt, index: u32, sector: u32) -> io::Result<Arc<Vec<u8>>> {
        self.bitmaps.get_or_load(u64::from(index), || {
            let mut b = vec![0u8; self.bitmap_size as usize];
            file.read_at(u64::from(sector) * 512, &mut b)?;
            Ok(b)
        })
    }

    /// Reads `buf` at guest `offset` within one block.
    fn read_in_block(&self, file: &dyn ReadAt, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let index = offset / self.block_size;
        let within = offset % self.block_size;
        let sector = self.bat[index as usize];
        if sector == UNALLOCATED {
            buf.fill(0);
            return Ok(());
        }
        let bad =
            |m: String| io::Error::new(io::ErrorKind::InvalidData, format!("corrupt VHD: {m}"));
        let data = (u64::from(sector) * 512)
            .checked_add(self.bitmap_size)
            .ok_or_else(|| bad(format!("block {index} at sector {sector}")))?;
        if data.saturating_add(self.block_size) > file.size() {
            return Err(bad(format!(
                "block {index} at sector {sector} past the end"
            )));
        }
        let bitmap = self.bitmap(file, index as u32, sector)?;
        // Runs of sectors alike: stored ones are read, others are zeros.
        let stored = |s: u64| bitmap[(s / 8) as usize] & (0x80 >> (s % 8)) != 0;
        let mut done = 0usize;
        while done < buf.len() {
            let at = within + done as u64;
            let first = at / 512;
            let state = stored(first);
            let mut end = (first + 1) * 512;
            while end < within + buf.len() as u64 && stored(end / 512) == state {
                end += 512;
            }
            let n = (end.min(within + buf.len() as u64) - at) as usize;
            let part = &mut buf[done..done + n];
            if state {
                file.read_at(data + at, part)?;
            } else {
                part.fill(0);
            }
            done += n;
        }
        Ok(())
    }
}

impl ReadAt for VhdReader {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.size)?;
        let Some(d) = &self.dynamic else {
            return self.file.read_at(offset, buf);
        };
        by_block(offset, buf, d.block_size, |at, part| {
            d.read_in_block(&*self.file, at, part)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_at::MemImage;

    /// A footer of `size` bytes, type `disk_type`, dynamic header at `data`.
    fn footer(size: u64, disk_type: u32, data: u64) -> [u8; 512] {
        let mut f = [0u8; 512];
        f[..8].copy_from_slice(b"conectix");
        f[0x0c..0x10].copy_from_slice(&0x0001_0000u32.to_be_bytes());
        f[0x10..0x18].copy_from_slice(&data.to_be_bytes());
        f[0x1c..0x20].copy_from_slice(b"qem2");
        f[0x28..0x30].copy_from_slice(&size.to_be_bytes());
        f[0x30..0x38].copy_from_slice(&size.to_be_bytes());
        f[0x3c..0x40].copy_from_slice(&disk_type.to_be_bytes());
        let sum = checksum(&f, 0x40);
        f[0x40..0x44].copy_from_slice(&sum.to_be_bytes());
        f
    }

    /// A dynamic disk of two 4 KiB blocks: block 0 stored (its sector 0
    /// marked present, sector 1 not), block 1 unallocated.
    fn dynamic(bat0: u32, block_size: u32) -> Vec<u8> {
        let mut v = footer(8192, 3, 512).to_vec();
        let mut h = [0u8; 1024];
        h[..8].copy_from_slice(b"cxsparse");
        h[0x10..0x18].copy_from_slice(&1536u64.to_be_bytes());
        h[0x1c..0x20].copy_from_slice(&2u32.to_be_bytes());
        h[0x20..0x24].copy_from_slice(&block_size.to_be_bytes());
        v.extend_from_slice(&h);
        let mut bat = [0xffu8; 512];
        bat[..4].copy_from_slice(&bat0.to_be_bytes());
        v.extend_from_slice(&bat);
        let mut bitmap = [0u8; 512];
        bitmap[0] = 0x80;
        v.extend_from_slice(&bitmap);
        v.extend(std::iter::repeat_n(0xabu8, 4096));
        v.extend_from_slice(&footer(8192, 3, 512));
        v
    }

    fn open(bytes: Vec<u8>) -> Result<VhdReader, ImageError> {
        let file: Arc<dyn ReadAt> = Arc::new(MemImage(bytes));
        let f = Footer::read(&*file, Path::new("t.vhd"))?;
        VhdReader::new(file, &f, Path::new("t.vhd"))
    }

    #[test]
    fn stored_sectors_read_and_others_are_zeros() {
        let r = open(dynamic(4, 4096)).unwrap();
        assert_eq!(r.size(), 8192);
        let mut buf = vec![0u8; 8192];
        r.read_at(0, &mut buf).unwrap();
        assert!(buf[..512].iter().all(|b| *b == 0xab), "sector 0 is stored");
        assert!(buf[512..].iter().all(|b| *b == 0), "the rest is not");
        let mut one = [0u8; 3];
        r.read_at(510, &mut one).unwrap();
        assert_eq!(one, [0xab, 0xab, 0]);
    }

    #[test]
    fn hostile_tables_and_types_are_errors_not_panics() {
        // A block past the end of the file.
        let r = open(dynamic(1 << 20, 4096)).unwrap();
        let mut buf = [0u8; 16];
        assert!(r.read_at(0, &mut buf).is_err());
        // Block sizes that are not a power of two, or absurd.
        for bs in [0, 3000, 1 << 30] {
            assert!(open(dynamic(4, bs)).is_err(), "block size {bs}");
        }
        // Differencing disks are refused by name; unknown types are corrupt.
        let mut v = vec![0u8; 4096];
        v.extend_from_slice(&footer(4096, 4, u64::MAX));
        assert!(matches!(open(v), Err(ImageError::Unsupported { .. })));
        let mut v = vec![0u8; 4096];
        v.extend_from_slice(&footer(4096, 9, u64::MAX));
        assert!(matches!(open(v), Err(ImageError::Corrupt { .. })));
        // A fixed disk claiming more than the file holds.
        let mut v = vec![0u8; 4096];
        v.extend_from_slice(&footer(1 << 40, 2, u64::MAX));
        assert!(open(v).is_err());
        // A dynamic header offset outside the file.
        let mut v = vec![0u8; 4096];
        v.extend_from_slice(&footer(4096, 3, u64::MAX - 10));
        assert!(open(v).is_err());
    }

    #[test]
    fn a_bad_checksum_is_a_warning_and_chs_sizes_follow_qemu() {
        let mut v = dynamic(4, 4096);
        let end = v.len() - 512;
        v[end + 0x40] ^= 1;
        let file: Arc<dyn ReadAt> = Arc::new(MemImage(v));
        let f = Footer::read(&*file, Path::new("t.vhd")).unwrap();
        assert_eq!(f.warnings.len(), 1);
        // `qemu` as creator: the CHS geometry gives the size (unless it is
        // the maximum geometry).
        let mut f = f;
        f.creator_app = *b"qemu";
        f.geometry = (16, 4, 17);
        assert_eq!(f.virtual_size(), 16 * 4 * 17 * 512);
        f.geometry = (65535, 16, 255);
        assert_eq!(f.virtual_size(), 8192);
    }
}
