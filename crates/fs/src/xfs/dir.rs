//! Directories: shortform (in the inode) and data blocks (block, leaf and
//! node forms all keep their entries in data blocks below
//! `XFS_DIR2_LEAF_OFFSET`; the leaf/free blocks above it are hash indexes
//! that a full listing does not need).

use super::bmap::extents;
use super::inode::{DataFork, Inode};
use super::superblock::{be16, be32, be64};
use super::{corrupt, Xfs};
use crate::checksum;
use crate::error::FsError;
use crate::limits::{DirBudget, MAX_DIR_DATA_BYTES};
use crate::FileType;
use crate::FsKind;
use std::collections::BTreeSet;

/// `XFS_DIR2_LEAF_OFFSET`: directory data lives below 32 GiB of file offset.
const LEAF_OFFSET: u64 = 32 << 30;

/// One directory entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub name: Vec<u8>,
    pub ino: u64,
    /// From the entry's ftype byte; `None` when the filesystem has no ftype.
    pub file_type: Option<FileType>,
}

fn shortform(fs: &Xfs, dir: &Inode, data: &[u8]) -> Result<Vec<Entry>, FsError> {
    let bad = || {
        corrupt(format!(
            "directory inode {}: shortform data is truncated",
            dir.ino
        ))
    };
    if data.len() < 6 {
        return Err(bad());
    }
    let count = usize::from(data[0]);
    let wide = data[1] != 0;
    let ino_len = if wide { 8 } else { 4 };
    let mut pos = 2 + ino_len;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let namelen = usize::from(*data.get(pos).ok_or_else(bad)?);
        let name_at = pos + 3;
        let after_name = name_at + namelen;
        let ft_len = usize::from(fs.sb.ftype);
        let ino_at = after_name + ft_len;
        if namelen == 0 || ino_at + ino_len > data.len() {
            return Err(bad());
        }
        let ino = if wide {
            be64(data, ino_at) & ((1 << 56) - 1)
        } else {
            u64::from(be32(data, ino_at))
        };
        out.push(Entry {
            name: data[name_at..after_name].to_vec(),
            ino,
            file_type: if fs.sb.ftype {
                FileType::from_dirent_code(data[after_name])
            } else {
                None
            },
        });
        pos = ino_at + ino_len;
    }
    Ok(out)
}

fn parse_data_block(
    fs: &Xfs,
    dir: &Inode,
    blk: &[u8],
    budget: &mut DirBudget,
    out: &mut Vec<Entry>,
) -> Result<(), FsError> {
    let magic = &blk[..4];
    let (hdr, is_block) = match magic {
        b"XDB3" => (64, true),
        b"XDD3" => (64, false),
        b"XD2B" => (16, true),
        b"XD2D" => (16, false),
        _ => {
            return Err(corrupt(format!(
                "directory inode {}: data block has magic {:02x?}",
                dir.ino, magic
            )))
        }
    };
    if hdr == 64 {
        // `xfs_dir3_blk_hdr.crc` covers the whole directory block.
        checksum::xfs_verify(blk, 4, || {
            format!("directory inode {}: data block", dir.ino)
        })?;
    }
    let mut end = blk.len();
    if is_block {
        // `xfs_dir2_block_tail` closes the block; leaf entries precede it.
        let count = be32(blk, blk.len() - 8) as usize;
        end = count
            .checked_mul(8)
            .and_then(|n| blk.len().checked_sub(8 + n))
            .filter(|&e| e >= hdr)
            .ok_or_else(|| {
                corrupt(format!(
                    "directory inode {}: block tail claims {count} leaf entries",
                    dir.ino
                ))
            })?;
    }
    let ft_len = usize::from(fs.sb.ftype);
    let mut pos = hdr;
    while pos + 8 <= end {
        if be16(blk, pos) == 0xffff {
            let len = usize::from(be16(blk, pos + 2));
            if len < 8 || len % 8 != 0 {
                return Err(corrupt(format!(
                    "directory inode {}: free space of length {len}",
                    dir.ino
                )));
            }
            pos += len;
            continue;
        }
        // An entry needs its name length byte inside the data area (a
        // crafted block ending 8 bytes after a free tag indexed past it).
        let namelen = match blk.get(pos + 8) {
            Some(&n) if pos + 9 <= end => usize::from(n),
            _ => 0,
        };
        let len = (8 + 1 + namelen + ft_len + 2).div_ceil(8) * 8;
        if namelen == 0 || pos + len > end {
            return Err(corrupt(format!(
                "directory inode {}: entry at {pos} overruns its block",
                dir.ino
            )));
        }
        let name = &blk[pos + 9..pos + 9 + namelen];
        if name != b"." && name != b".." {
            budget.charge(namelen)?;
            out.push(Entry {
                name: name.to_vec(),
                ino: be64(blk, pos),
                file_type: if fs.sb.ftype {
                    FileType::from_dirent_code(blk[pos + 9 + namelen])
                } else {
                    None
                },
            });
        }
        pos += len;
    }
    Ok(())
}

/// Every entry of a directory except `.` and `..`.
pub(crate) fn read_entries(fs: &Xfs, dir: &Inode) -> Result<Vec<Entry>, FsError> {
    if let DataFork::Local(data) = &dir.fork {
        return shortform(fs, dir, data);
    }
    let map = extents(fs, dir)?;
    let bs = fs.sb.block_size;
    let dbs = fs.sb.dir_block_size;
    let mut starts = BTreeSet::new();
    for e in &map {
        let first = e.file_block * bs;
        let last = (e.file_block + e.count) * bs;
        let mut off = first / dbs * dbs;
        while off < last.min(LEAF_OFFSET) {
            starts.insert(off);
            off += dbs;
            if starts.len() as u64 * dbs > MAX_DIR_DATA_BYTES {
                return Err(corrupt(format!(
                    "directory inode {} maps over {} MiB of directory blocks",
                    dir.ino,
                    MAX_DIR_DATA_BYTES >> 20
                )));
            }
        }
    }
    let mut out = Vec::new();
    let mut budget = DirBudget::new(FsKind::Xfs, format!("directory inode {}", dir.ino));
    let mut blk = vec![0u8; dbs as usize];
    for off in starts {
        fs.read_file_at(dir, &map, off, &mut blk)?;
        parse_data_block(fs, dir, &blk, &mut budget, &mut out)?;
    }
    Ok(out)
}
