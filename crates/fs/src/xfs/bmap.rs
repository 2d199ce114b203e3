//! Block mapping: packed extent records and the extent B+tree (BMBT).

use super::inode::{DataFork, Inode};
use super::superblock::{be16, be64};
use super::{corrupt, Xfs};
use crate::checksum;
use crate::error::FsError;
use std::collections::HashSet;

/// BMBT depth bound (XFS's maximum is 9 for the data fork).
const MAX_LEVELS: u16 = 10;
/// Most extents accepted for one file (bounds memory on hostile input).
const MAX_EXTENTS: usize = 4 << 20;

/// One mapping of file blocks to disk blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    /// First file block.
    pub file_block: u64,
    /// First filesystem block (AG-encoded).
    pub disk_block: u64,
    /// Length in blocks.
    pub count: u64,
    /// Preallocated, reads as zeros.
    pub unwritten: bool,
}

/// Decodes one 16-byte `xfs_bmbt_rec`.
fn decode(rec: &[u8]) -> Extent {
    let l0 = be64(rec, 0);
    let l1 = be64(rec, 8);
    Extent {
        unwritten: l0 >> 63 != 0,
        file_block: (l0 & ((1u64 << 63) - 1)) >> 9,
        disk_block: ((l0 & 0x1ff) << 43) | (l1 >> 21),
        count: l1 & ((1u64 << 21) - 1),
    }
}

fn push_records(bytes: &[u8], n: usize, out: &mut Vec<Extent>) -> Result<(), FsError> {
    if out.len() + n > MAX_EXTENTS {
        return Err(corrupt(format!("file has more than {MAX_EXTENTS} extents")));
    }
    for rec in bytes.chunks_exact(16).take(n) {
        let e = decode(rec);
        if e.count > 0 {
            out.push(e);
        }
    }
    Ok(())
}

/// Long-form BMBT block header size: v5 `BMA3` (with CRC, owner, …) or v4 `BMAP`.
fn header_len(fs: &Xfs) -> usize {
    if fs.sb.v5 {
        72
    } else {
        24
    }
}

fn walk_block(
    fs: &Xfs,
    ino: u64,
    fsb: u64,
    expect_level: u16,
    seen: &mut HashSet<u64>,
    out: &mut Vec<Extent>,
) -> Result<(), FsError> {
    if !seen.insert(fsb) {
        return Err(corrupt(format!(
            "inode {ino}: extent B+tree visits block {fsb:#x} twice"
        )));
    }
    let bs = fs.sb.block_size as usize;
    let mut block = vec![0u8; bs];
    fs.read(fs.sb.fsblock_to_byte(fsb)?, &mut block)?;
    let magic: &[u8] = if fs.sb.v5 { b"BMA3" } else { b"BMAP" };
    if &block[..4] != magic {
        return Err(corrupt(format!(
            "inode {ino}: extent B+tree block {fsb:#x} lacks {} magic",
            String::from_utf8_lossy(magic)
        )));
    }
    if fs.sb.v5 {
        // `bb_crc` of the long-form B+tree block header.
        checksum::xfs_verify(&block, 64, || {
            format!("inode {ino}: extent B+tree block {fsb:#x}")
        })?;
    }
    let level = be16(&block, 4);
    let numrecs = usize::from(be16(&block, 6));
    if level != expect_level {
        return Err(corrupt(format!(
            "inode {ino}: B+tree block {fsb:#x} is level {level}, expected {expect_level}"
        )));
    }
    if fs.sb.v5 && be64(&block, 56) != ino {
        return Err(corrupt(format!(
            "inode {ino}: B+tree block {fsb:#x} is owned by inode {}",
            be64(&block, 56)
        )));
    }
    let h = header_len(fs);
    if level == 0 {
        if h + numrecs * 16 > bs {
            return Err(corrupt(format!(
                "inode {ino}: B+tree leaf claims {numrecs} records"
            )));
        }
        return push_records(&block[h..], numrecs, out);
    }
    let maxrecs = (bs - h) / 16;
    if numrecs > maxrecs {
        return Err(corrupt(format!(
            "inode {ino}: B+tree node claims {numrecs} > {maxrecs} pointers"
        )));
    }
    let ptrs = h + maxrecs * 8;
    for i in 0..numrecs {
        walk_block(fs, ino, be64(&block, ptrs + i * 8), level - 1, seen, out)?;
    }
    Ok(())
}

/// All extents of an inode's data fork, sorted by file block and checked
/// not to overlap.
pub(crate) fn extents(fs: &Xfs, node: &Inode) -> Result<Vec<Extent>, FsError> {
    let mut out = Vec::new();
    match &node.fork {
        DataFork::Dev | DataFork::Local(_) => {}
        DataFork::Extents(bytes, n) => push_records(bytes, *n as usize, &mut out)?,
        DataFork::Btree(root) => {
            // Inode-rooted `xfs_bmdr_block`: level, numrecs, keys[], ptrs[].
            let level = be16(root, 0);
            let numrecs = usize::from(be16(root, 2));
            let maxrecs = (root.len() - 4) / 16;
            if level == 0 || level > MAX_LEVELS || numrecs > maxrecs {
                return Err(corrupt(format!(
                    "inode {}: B+tree root has level {level}, {numrecs} records (max {maxrecs})",
                    node.ino
                )));
            }
            let ptrs = 4 + maxrecs * 8;
            let mut seen = HashSet::new();
            for i in 0..numrecs {
                walk_block(
                    fs,
                    node.ino,
                    be64(root, ptrs + i * 8),
                    level - 1,
                    &mut seen,
                    &mut out,
                )?;
            }
        }
    }
    // Every later computation (file offsets, disk offsets) stays in range
    // once each extent ends below XFS's maximum file size of 2^63 bytes.
    let bs = fs.sb.block_size;
    for e in &out {
        let end = e
            .file_block
            .checked_add(e.count)
            .and_then(|b| b.checked_mul(bs));
        if end.is_none_or(|end| end > i64::MAX as u64)
            || e.disk_block.checked_add(e.count).is_none()
        {
            return Err(corrupt(format!(
                "inode {}: extent at file block {} of {} blocks is out of range",
                node.ino, e.file_block, e.count
            )));
        }
    }
    out.sort_by_key(|e| e.file_block);
    for w in out.windows(2) {
        if w[0].file_block + w[0].count > w[1].file_block {
            return Err(corrupt(format!(
                "inode {}: extents overlap at file block {}",
                node.ino, w[1].file_block
            )));
        }
    }
    Ok(out)
}
