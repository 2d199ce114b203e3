//! VHDX (Hyper-V's virtual hard disk v2), fixed and dynamic.
//!
//! Layout ([MS-VHDX]; little-endian): the file type identifier
//! (`vhdxfile`) at 0; two 4 KiB headers at 64 and 128 KiB (`head`, CRC-32C,
//! a sequence number: the valid one with the higher number is current;
//! a non-zero log GUID means a log that must be replayed first); two
//! 64 KiB region tables at 192 and 256 KiB (`regi`) locating the block
//! allocation table (BAT) and the metadata region; the metadata table
//! (`metadata`) holding the block size, whether the disk has a parent, the
//! virtual size and the logical sector size. BAT entries are `u64`: the
//! state in bits 0–2, the file offset in MiB from bit 20. After every
//! `chunk ratio` payload entries comes one sector-bitmap entry, used only
//! by differencing disks, which are refused by name.
//!
//! Why our own reader: no maintained crate reads VHDX (the few on
//! crates.io are unmaintained experiments reading through one cursor).

use crate::error::ImageError;
use crate::read_at::{by_block, check_bounds, ReadAt};
use crc::{Crc, CRC_32_ISCSI};
use std::io;
use std::path::Path;
use std::sync::Arc;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const HEADERS: [u64; 2] = [64 * KIB, 128 * KIB];
const REGION_TABLES: [u64; 2] = [192 * KIB, 256 * KIB];
const HEADER_SIZE: usize = 4096;
const TABLE_SIZE: usize = 64 * 1024;
/// Largest BAT read into memory (8 Mi entries).
const MAX_BAT_BYTES: u64 = 64 << 20;
/// Most entries in a region or metadata table (the spec's limit).
const MAX_TABLE_ENTRIES: usize = 2047;

const BAT_REGION: &str = "2DC27766-F623-4200-9D64-115E9BFD4A08";
const METADATA_REGION: &str = "8B7CA206-4790-4B9A-B8FE-575F050F886E";
const FILE_PARAMETERS: &str = "CAA16737-FA36-4D43-B3B6-33F0AA44E76B";
const VIRTUAL_DISK_SIZE: &str = "2FA54224-CD1B-4876-B211-5DBED83BF4B8";
const LOGICAL_SECTOR_SIZE: &str = "8141BF1D-A96F-4709-BA47-F233A8FAAB5F";
const PARENT_LOCATOR: &str = "A8D35F2D-B30B-454D-ABF7-D3D84834AB0C";
/// Required items that do not change how the disk reads: the physical
/// sector size and the SCSI page 83 identifier.
const INFORMATIONAL: [&str; 2] = [
    "CDA348C7-445D-4471-9CC9-E9885251C556",
    "BECA12AB-B2E6-4523-93EF-C309E000C746",
];

/// BAT payload states: stored, and the ones that read as zeros.
const PAYLOAD_FULLY_PRESENT: u64 = 6;
const PAYLOAD_ZEROS: [u64; 4] = [0, 1, 2, 3];

const CASTAGNOLI: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// A GUID in its on-disk byte order (the first three groups little-endian).
fn guid(text: &str) -> [u8; 16] {
    let hex: Vec<u8> = text
        .split('-')
        .flat_map(|g| {
            (0..g.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&g[i..i + 2], 16).expect("GUID constant"))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut g = [0u8; 16];
    g.copy_from_slice(&hex);
    g[0..4].reverse();
    g[4..6].reverse();
    g[6..8].reverse();
    g
}

/// Whether `b`'s CRC-32C (its checksum field at 4 taken as zero) matches.
fn checksum_ok(b: &[u8]) -> bool {
    let mut d = CASTAGNOLI.digest();
    d.update(&b[..4]);
    d.update(&[0; 4]);
    d.update(&b[8..]);
    d.finalize() == le32(b, 4)
}

fn corrupt(path: &Path, detail: impl Into<String>) -> ImageError {
    ImageError::Corrupt {
        path: path.to_path_buf(),
        format: "VHDX",
        detail: detail.into(),
    }
}

fn unsupported(path: &Path, detail: impl Into<String>) -> ImageError {
    ImageError::Unsupported {
        path: path.to_path_buf(),
        format: "VHDX".into(),
        detail: detail.into(),
    }
}

/// Reads `len` bytes at `at`, which must lie inside the file.
fn read(
    file: &dyn ReadAt,
    at: u64,
    len: usize,
    path: &Path,
    what: &str,
) -> Result<Vec<u8>, ImageError> {
    if at
        .checked_add(len as u64)
        .is_none_or(|end| end > file.size())
    {
        return Err(corrupt(
            path,
            format!("{what} at {at} is past the end of the file"),
        ));
    }
    let mut b = vec![0u8; len];
    file.read_at(at, &mut b)
        .map_err(|e| ImageError::io(path, e))?;
    Ok(b)
}

/// The current header: valid, and of the higher sequence number.
fn current_header(file: &dyn ReadAt, path: &Path) -> Result<Vec<u8>, ImageError> {
    let mut best: Option<Vec<u8>> = None;
    for at in HEADERS {
        let h = read(file, at, HEADER_SIZE, path, "header")?;
        if &h[..4] != b"head" || !checksum_ok(&h) {
            continue;
        }
        if best.as_ref().is_none_or(|b| le64(&h, 8) > le64(b, 8)) {
            best = Some(h);
        }
    }
    let h = best.ok_or_else(|| corrupt(path, "neither header is valid (signature or CRC-32C)"))?;
    if le16(&h, 66) != 1 {
        return Err(unsupported(path, format!("version {}", le16(&h, 66))));
    }
    if h[48..64].iter().any(|b| *b != 0) {
        return Err(unsupported(
            path,
            "its log holds writes not yet applied (a disk not closed cleanly); \
             replay it with `qemu-img check -r all`",
        ));
    }
    Ok(h)
}

/// A region's file offset and length.
type Region = (u64, u64);

/// The BAT's and the metadata region's places.
fn regions(file: &dyn ReadAt, path: &Path) -> Result<(Region, Region), ImageError> {
    for at in REGION_TABLES {
        let t = read(file, at, TABLE_SIZE, path, "region table")?;
        if &t[..4] != b"regi" || !checksum_ok(&t) {
            continue;
        }
        let count = le32(&t, 8) as usize;
        if count > MAX_TABLE_ENTRIES {
            return Err(corrupt(path, format!("{count} region entries")));
        }
        let (mut bat, mut meta) = (None, None);
        for e in t[16..16 + count * 32].chunks_exact(32) {
            let place = (le64(e, 16), u64::from(le32(e, 24)));
            if e[..16] == guid(BAT_REGION) {
                bat = Some(place);
            } else if e[..16] == guid(METADATA_REGION) {
                meta = Some(place);
            } else if le32(e, 28) & 1 != 0 {
                return Err(unsupported(path, "a required region it does not know"));
            }
        }
        return match (bat, meta) {
            (Some(b), Some(m)) => Ok((b, m)),
            _ => Err(corrupt(path, "no BAT or metadata region")),
        };
    }
    Err(corrupt(
        path,
        "neither region table is valid (signature or CRC-32C)",
    ))
}

/// The metadata bootproof needs.
struct Metadata {
    block_size: u64,
    fixed: bool,
    virtual_size: u64,
    sector_size: u64,
}

fn metadata(file: &dyn ReadAt, (at, len): Region, path: &Path) -> Result<Metadata, ImageError> {
    if len < TABLE_SIZE as u64 || len > 16 * MIB {
        return Err(corrupt(path, format!("metadata region of {len} bytes")));
    }
    let t = read(file, at, TABLE_SIZE, path, "metadata table")?;
    if &t[..8] != b"metadata" {
        return Err(corrupt(path, "no `metadata` table signature"));
    }
    let count = usize::from(le16(&t, 10));
    if count > MAX_TABLE_ENTRIES {
        return Err(corrupt(path, format!("{count} metadata entries")));
    }
    let (mut params, mut size, mut sector) = (None, None, None);
    for e in t[32..32 + count * 32].chunks_exact(32) {
        let (offset, length, flags) = (u64::from(le32(e, 16)), le32(e, 20), le32(e, 24));
        let item = |n: usize| -> Result<Vec<u8>, ImageError> {
            if (length as usize) < n || offset.saturating_add(n as u64) > len {
                return Err(corrupt(path, "a metadata item outside its region"));
            }
            read(file, at + offset, n, path, "metadata item")
        };
        if e[..16] == guid(FILE_PARAMETERS) {
            params = Some(item(8)?);
        } else if e[..16] == guid(VIRTUAL_DISK_SIZE) {
            size = Some(le64(&item(8)?, 0));
        } else if e[..16] == guid(LOGICAL_SECTOR_SIZE) {
            sector = Some(u64::from(le32(&item(4)?, 0)));
        } else if e[..16] == guid(PARENT_LOCATOR) {
            return Err(unsupported(path, "a differencing disk (a parent chain)"));
        } else if flags & 0b101 == 0b100 && !INFORMATIONAL.iter().any(|g| e[..16] == guid(g)) {
            // Required, not a user item, and unknown: it may change the disk.
            return Err(unsupported(
                path,
                "a required metadata item it does not know",
            ));
        }
    }
    let (Some(params), Some(virtual_size), Some(sector_size)) = (params, size, sector) else {
        return Err(corrupt(
            path,
            "file parameters, virtual size or sector size missing",
        ));
    };
    if le32(&params, 4) & 2 != 0 {
        return Err(unsupported(path, "a differencing disk (a parent chain)"));
    }
    let block_size = u64::from(le32(&params, 0));
    if !block_size.is_power_of_two() || !(MIB..=256 * MIB).contains(&block_size) {
        return Err(corrupt(path, format!("block size {block_size}")));
    }
    if sector_size != 512 && sector_size != 4096 {
        return Err(corrupt(path, format!("logical sector size {sector_size}")));
    }
    if virtual_size > 64 << 40 {
        return Err(corrupt(
            path,
            format!("virtual size {virtual_size} over 64 TiB"),
        ));
    }
    Ok(Metadata {
        block_size,
        fixed: le32(&params, 4) & 1 != 0,
        virtual_size,
        sector_size,
    })
}

/// A VHDX's virtual disk.
pub(crate) struct VhdxReader {
    file: Arc<dyn ReadAt>,
    size: u64,
    block_size: u64,
    chunk_ratio: u64,
    fixed: bool,
    bat: Vec<u64>,
}

impl VhdxReader {
    /// Opens the VHDX in `file`.
    pub(crate) fn open(file: Arc<dyn ReadAt>, path: &Path) -> Result<VhdxReader, ImageError> {
        current_header(&*file, path)?;
        let (bat_at, meta_at) = regions(&*file, path)?;
        let m = metadata(&*file, meta_at, path)?;
        let chunk_ratio = (m.sector_size << 23) / m.block_size;
        let blocks = m.virtual_size.div_ceil(m.block_size);
        let entries = blocks + blocks.saturating_sub(1) / chunk_ratio;
        let bytes = entries * 8;
        if bytes > MAX_BAT_BYTES || bytes > bat_at.1 {
            return Err(corrupt(
                path,
                format!("a BAT of {} bytes for {entries} entries", bat_at.1),
            ));
        }
        let raw = read(&*file, bat_at.0, bytes as usize, path, "BAT")?;
        Ok(VhdxReader {
            file,
            size: m.virtual_size,
            block_size: m.block_size,
            chunk_ratio,
            fixed: m.fixed,
            bat: raw.chunks_exact(8).map(|c| le64(c, 0)).collect(),
        })
    }

    /// `fixed` when the file parameters keep every block allocated
    /// (`LeaveBlocksAllocated`), else `dynamic`.
    pub(crate) fn kind(&self) -> &'static str {
        if self.fixed {
            "fixed"
        } else {
            "dynamic"
        }
    }

    /// Block size in bytes.
    pub(crate) fn block_size(&self) -> u64 {
        self.block_size
    }

    fn entry(&self, block: u64) -> u64 {
        self.bat[(block + block / self.chunk_ratio) as usize]
    }

    fn read_in_block(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let block = offset / self.block_size;
        let entry = self.entry(block);
        let state = entry & 7;
        if PAYLOAD_ZEROS.contains(&state) {
            buf.fill(0);
            return Ok(());
        }
        let bad =
            |m: String| io::Error::new(io::ErrorKind::InvalidData, format!("corrupt VHDX: {m}"));
        if state != PAYLOAD_FULLY_PRESENT {
            return Err(bad(format!("block {block} in BAT state {state}")));
        }
        let at = (entry >> 20)
            .checked_mul(MIB)
            .and_then(|s| s.checked_add(offset % self.block_size))
            .filter(|a| a.saturating_add(buf.len() as u64) <= self.file.size())
            .ok_or_else(|| bad(format!("block {block} past the end of the file")))?;
        self.file.read_at(at, buf)
    }
}

impl ReadAt for VhdxReader {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.size)?;
        by_block(offset, buf, self.block_size, |at, part| {
            self.read_in_block(at, part)
        })
    }
}

#[cfg(test)]
#[path = "vhdx_tests.rs"]
mod tests;
