//! Filesystem detection by superblock, as `blkid` does it.

use crate::error::FsError;
use bootproof_image::ReadAt;
use serde::Serialize;
use std::fmt;

/// What lives on a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FsKind {
    /// FAT with 12-bit entries.
    Fat12,
    /// FAT with 16-bit entries.
    Fat16,
    /// FAT with 32-bit entries.
    Fat32,
    /// ext2.
    Ext2,
    /// ext3 (has a journal).
    Ext3,
    /// ext4 (extents, 64-bit, …).
    Ext4,
    /// XFS v4 or v5.
    Xfs,
    /// Btrfs.
    Btrfs,
    /// ISO9660 (with Joliet / Rock Ridge).
    Iso9660,
    /// Linux swap (not a filesystem; recognised, not read).
    Swap,
    /// LUKS encrypted volume (recognised, not read).
    Luks,
    /// LVM2 physical volume (recognised, not read).
    Lvm2,
    /// NTFS (recognised, not read).
    Ntfs,
    /// exFAT (recognised, not read).
    Exfat,
    /// SquashFS (recognised, not read).
    Squashfs,
    /// Nothing recognised.
    Unknown,
}

impl FsKind {
    /// Whether bootproof can read files from it.
    pub fn is_readable(self) -> bool {
        matches!(
            self,
            FsKind::Fat12
                | FsKind::Fat16
                | FsKind::Fat32
                | FsKind::Ext2
                | FsKind::Ext3
                | FsKind::Ext4
                | FsKind::Xfs
                | FsKind::Btrfs
                | FsKind::Iso9660
        )
    }
    /// Whether this is one of the FAT variants.
    pub fn is_fat(self) -> bool {
        matches!(self, FsKind::Fat12 | FsKind::Fat16 | FsKind::Fat32)
    }
    /// The name `blkid` uses for TYPE=.
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Fat12 | FsKind::Fat16 | FsKind::Fat32 => "vfat",
            FsKind::Ext2 => "ext2",
            FsKind::Ext3 => "ext3",
            FsKind::Ext4 => "ext4",
            FsKind::Xfs => "xfs",
            FsKind::Btrfs => "btrfs",
            FsKind::Iso9660 => "iso9660",
            FsKind::Swap => "swap",
            FsKind::Luks => "crypto_LUKS",
            FsKind::Lvm2 => "LVM2_member",
            FsKind::Ntfs => "ntfs",
            FsKind::Exfat => "exfat",
            FsKind::Squashfs => "squashfs",
            FsKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for FsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsKind::Fat12 => f.write_str("FAT12"),
            FsKind::Fat16 => f.write_str("FAT16"),
            FsKind::Fat32 => f.write_str("FAT32"),
            other => f.write_str(other.name()),
        }
    }
}

fn has(dev: &dyn ReadAt, offset: u64, magic: &[u8]) -> Result<bool, FsError> {
    let end = offset + magic.len() as u64;
    if end > dev.size() {
        return Ok(false);
    }
    let mut buf = vec![0u8; magic.len()];
    dev.read_at(offset, &mut buf)?;
    Ok(buf == magic)
}

/// Identifies the filesystem (or other content) of `dev`. Reads a handful
/// of sectors.
pub fn probe(dev: &dyn ReadAt) -> Result<FsKind, FsError> {
    if has(dev, 0, b"XFSB")? {
        return Ok(FsKind::Xfs);
    }
    if has(dev, 0x10040, b"_BHRfS_M")? {
        return Ok(FsKind::Btrfs);
    }
    if has(dev, 1024 + 56, &[0x53, 0xef])? {
        let mut sb = [0u8; 1024];
        dev.read_at(1024, &mut sb)?;
        let compat = u32::from_le_bytes(sb[0x5c..0x60].try_into().expect("4"));
        let incompat = u32::from_le_bytes(sb[0x60..0x64].try_into().expect("4"));
        let ro_compat = u32::from_le_bytes(sb[0x64..0x68].try_into().expect("4"));
        // blkid's rule: any ext4-only feature makes it ext4; a journal, ext3.
        let ext4_incompat = incompat & !(0x0002 | 0x0004 | 0x0010) != 0; // beyond FILETYPE, RECOVER, META_BG
        let ext4_ro = ro_compat & !(0x0001 | 0x0002 | 0x0004) != 0; // beyond SPARSE_SUPER, LARGE_FILE, BTREE_DIR
        return Ok(if ext4_incompat || ext4_ro {
            FsKind::Ext4
        } else if compat & 0x0004 != 0 {
            FsKind::Ext3
        } else {
            FsKind::Ext2
        });
    }
    if has(dev, 0x8001, b"CD001")? {
        return Ok(FsKind::Iso9660);
    }
    if has(dev, 0, b"LUKS\xba\xbe")? {
        return Ok(FsKind::Luks);
    }
    if has(dev, 512, b"LABELONE")? {
        return Ok(FsKind::Lvm2);
    }
    if has(dev, 0, b"hsqs")? {
        return Ok(FsKind::Squashfs);
    }
    if has(dev, 3, b"NTFS    ")? {
        return Ok(FsKind::Ntfs);
    }
    if has(dev, 3, b"EXFAT   ")? {
        return Ok(FsKind::Exfat);
    }
    for page in [4096u64, 8192, 16384, 65536] {
        if has(dev, page - 10, b"SWAPSPACE2")? || has(dev, page - 10, b"SWAP-SPACE")? {
            return Ok(FsKind::Swap);
        }
    }
    if let Some(kind) = crate::fat::probe_bpb(dev)? {
        return Ok(kind);
    }
    Ok(FsKind::Unknown)
}
