//! On-disk inodes (`struct xfs_dinode`) and their data forks.

use super::bmap::Extent;
use super::superblock::{be16, be32, be64, Superblock};
use super::{corrupt, Xfs};
use crate::checksum;
use crate::error::FsError;
use crate::{FileType, Metadata};

const FORMAT_DEV: u8 = 0;
const FORMAT_LOCAL: u8 = 1;
const FORMAT_EXTENTS: u8 = 2;
const FORMAT_BTREE: u8 = 3;
const DIFLAG_REALTIME: u16 = 1 << 0;
const DIFLAG2_BIGTIME: u64 = 1 << 3;
const DIFLAG2_NREXT64: u64 = 1 << 4;
/// `XFS_BIGTIME_EPOCH_OFFSET`: bigtime counts from 1901-12-13.
const BIGTIME_EPOCH_OFFSET: i64 = 1 << 31;

/// The data fork's content.
#[derive(Debug, Clone)]
pub(crate) enum DataFork {
    /// Device inode: no data.
    Dev,
    /// Data inline in the inode (shortform directory, short symlink).
    Local(Vec<u8>),
    /// Inline extent records.
    Extents(Vec<u8>, u64),
    /// Root of an extent B+tree (`xfs_bmdr_block`), fork bytes.
    Btree(Vec<u8>),
}

/// A parsed inode.
#[derive(Debug, Clone)]
pub(crate) struct Inode {
    pub ino: u64,
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub realtime: bool,
    pub fork: DataFork,
}

impl Inode {
    pub(crate) fn parse(sb: &Superblock, ino: u64, raw: Vec<u8>) -> Result<Inode, FsError> {
        if &raw[..2] != b"IN" {
            return Err(corrupt(format!("inode {ino}: bad magic")));
        }
        let version = raw[4];
        let format = raw[5];
        let core = match version {
            3 => 176,
            1 | 2 => 100,
            v => return Err(corrupt(format!("inode {ino}: version {v}"))),
        };
        if version == 3 {
            // `di_crc` covers the whole inode (core and forks).
            checksum::xfs_verify(&raw, 100, || format!("inode {ino}"))?;
        }
        if version == 3 && be64(&raw, 152) != ino {
            return Err(corrupt(format!(
                "inode {ino}: records inode number {}",
                be64(&raw, 152)
            )));
        }
        let flags = be16(&raw, 90);
        let flags2 = if version == 3 { be64(&raw, 120) } else { 0 };
        let mode = be16(&raw, 2);
        let size = be64(&raw, 56);
        if size > i64::MAX as u64 {
            return Err(corrupt(format!("inode {ino}: size {size}")));
        }
        let mtime = if sb.bigtime && flags2 & DIFLAG2_BIGTIME != 0 {
            (be64(&raw, 40) / 1_000_000_000) as i64 - BIGTIME_EPOCH_OFFSET
        } else {
            i64::from(be32(&raw, 40) as i32)
        };
        let nextents = if sb.nrext64 && flags2 & DIFLAG2_NREXT64 != 0 {
            be64(&raw, 24)
        } else {
            u64::from(be32(&raw, 76))
        };
        let forkoff = usize::from(raw[82]) * 8;
        let literal = raw.len() - core;
        let fork_size = if forkoff == 0 { literal } else { forkoff };
        if fork_size > literal {
            return Err(corrupt(format!(
                "inode {ino}: attribute fork offset {forkoff} beyond the inode"
            )));
        }
        let fork_bytes = raw[core..core + fork_size].to_vec();
        let fork = match format {
            FORMAT_DEV => DataFork::Dev,
            FORMAT_LOCAL => {
                let n = usize::try_from(size).unwrap_or(usize::MAX);
                // A shortform directory's size is its byte length; symlinks too.
                if n > fork_size {
                    return Err(corrupt(format!(
                        "inode {ino}: local data of {size} bytes exceeds its fork ({fork_size})"
                    )));
                }
                DataFork::Local(fork_bytes[..n].to_vec())
            }
            FORMAT_EXTENTS => {
                if nextents.saturating_mul(16) > fork_size as u64 {
                    return Err(corrupt(format!(
                        "inode {ino}: {nextents} extents do not fit the inode fork"
                    )));
                }
                DataFork::Extents(fork_bytes, nextents)
            }
            FORMAT_BTREE => DataFork::Btree(fork_bytes),
            f => return Err(corrupt(format!("inode {ino}: data fork format {f}"))),
        };
        Ok(Inode {
            ino,
            mode,
            uid: be32(&raw, 8),
            gid: be32(&raw, 12),
            size,
            mtime,
            realtime: flags & DIFLAG_REALTIME != 0,
            fork,
        })
    }

    pub(crate) fn file_type(&self) -> FileType {
        FileType::from_mode(u32::from(self.mode))
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.file_type() == FileType::Dir
    }

    pub(crate) fn metadata(&self) -> Metadata {
        Metadata {
            file_type: self.file_type(),
            size: self.size,
            mode: Some(u32::from(self.mode) & 0o7777),
            uid: Some(self.uid),
            gid: Some(self.gid),
            mtime: Some(self.mtime),
            inode: Some(self.ino),
        }
    }
}

/// Reads a symlink target stored in blocks. v5 blocks start with an
/// `XSLM` header (`struct xfs_dsymlink_hdr`, 56 bytes).
pub(crate) fn read_remote_symlink(
    fs: &Xfs,
    node: &Inode,
    extents: &[Extent],
) -> Result<Vec<u8>, FsError> {
    let want = node.size as usize;
    let bs = fs.sb.block_size as usize;
    let mut out = Vec::with_capacity(want);
    'outer: for e in extents {
        for i in 0..e.count {
            if out.len() >= want {
                break 'outer;
            }
            let mut block = vec![0u8; bs];
            let at = fs.sb.fsblock_to_byte(e.disk_block + i)?;
            fs.read(at, &mut block)?;
            let payload = if fs.sb.v5 {
                if &block[..4] != b"XSLM" {
                    return Err(corrupt(format!(
                        "symlink inode {}: block lacks XSLM magic",
                        node.ino
                    )));
                }
                checksum::xfs_verify(&block, 12, || {
                    format!("symlink inode {}: remote block {at:#x}", node.ino)
                })?;
                let bytes = be32(&block, 8) as usize;
                &block[56..(56 + bytes).min(bs)]
            } else {
                &block[..]
            };
            let n = payload.len().min(want - out.len());
            out.extend_from_slice(&payload[..n]);
        }
    }
    if out.len() != want {
        return Err(corrupt(format!(
            "symlink inode {}: target has {} of {want} bytes",
            node.ino,
            out.len()
        )));
    }
    Ok(out)
}
