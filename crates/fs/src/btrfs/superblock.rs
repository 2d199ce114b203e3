//! The Btrfs superblock (`struct btrfs_super_block`, little-endian, at 64 KiB).

use super::corrupt;
use crate::checksum::BtrfsCsum;
use crate::error::FsError;
use crate::FsKind;
use bootproof_image::ReadAt;

pub(crate) const SUPER_OFFSET: u64 = 0x10000;

pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Superblock fields the reader uses, validated.
pub(crate) struct Superblock {
    /// The filesystem UUID (what `blkid` shows).
    pub fsid: [u8; 16],
    /// The UUID tree blocks carry (differs with METADATA_UUID).
    pub tree_fsid: [u8; 16],
    pub sector_size: u32,
    pub root: u64,
    pub chunk_root: u64,
    pub node_size: u32,
    pub root_level: u8,
    pub chunk_root_level: u8,
    pub label: String,
    pub sys_chunk_array: Vec<u8>,
    /// How the superblock and every tree block are checksummed.
    pub csum: BtrfsCsum,
}

impl Superblock {
    pub(crate) fn read(dev: &dyn ReadAt) -> Result<Superblock, FsError> {
        let mut b = vec![0u8; 4096];
        dev.read_at(SUPER_OFFSET, &mut b)?;
        if &b[0x40..0x48] != b"_BHRfS_M" {
            return Err(corrupt("no _BHRfS_M magic at 64 KiB"));
        }
        let csum_type = le16(&b, 0xc4);
        let csum = BtrfsCsum::from_type(csum_type).ok_or_else(|| {
            FsError::unsupported(FsKind::Btrfs, format!("checksum type {csum_type}"))
        })?;
        csum.verify(&b, || "superblock".into())?;
        let num_devices = le64(&b, 0x88);
        if num_devices != 1 {
            return Err(FsError::unsupported(
                FsKind::Btrfs,
                format!("filesystem spans {num_devices} devices; only single-device Btrfs is read"),
            ));
        }
        let sector = le32(&b, 0x90);
        let node_size = le32(&b, 0x94);
        // Btrfs sectors are 4 KiB to 64 KiB (the page sizes Linux has); a
        // larger one sized allocations for inline extents by the gigabyte.
        if !(4096..=65536).contains(&node_size)
            || !node_size.is_power_of_two()
            || !sector.is_power_of_two()
            || !(4096..=65536).contains(&sector)
        {
            return Err(corrupt(format!(
                "node size {node_size} / sector size {sector} invalid"
            )));
        }
        let sys_len = le32(&b, 0xa0) as usize;
        if sys_len > 2048 {
            return Err(corrupt(format!(
                "sys_chunk_array_size {sys_len} exceeds 2048"
            )));
        }
        let root_level = b[0xc6];
        let chunk_root_level = b[0xc7];
        if root_level > 7 || chunk_root_level > 7 {
            return Err(corrupt("tree root level above BTRFS_MAX_LEVEL"));
        }
        let label_raw = &b[0x12b..0x12b + 256];
        let label_len = label_raw.iter().position(|&c| c == 0).unwrap_or(256);
        let mut fsid = [0u8; 16];
        fsid.copy_from_slice(&b[0x20..0x30]);
        // With the METADATA_UUID feature, tree blocks carry metadata_uuid instead.
        let mut tree_fsid = fsid;
        let incompat = le64(&b, 0xbc);
        if incompat & (1 << 10) != 0 {
            tree_fsid.copy_from_slice(&b[0x23b..0x24b]);
        }
        Ok(Superblock {
            fsid,
            tree_fsid,
            sector_size: sector,
            root: le64(&b, 0x50),
            chunk_root: le64(&b, 0x58),
            node_size,
            root_level,
            chunk_root_level,
            label: String::from_utf8_lossy(&label_raw[..label_len]).into_owned(),
            sys_chunk_array: b[0x32b..0x32b + sys_len].to_vec(),
            csum,
        })
    }
}
