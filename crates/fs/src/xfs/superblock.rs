//! The XFS superblock (`struct xfs_sb`, big-endian, at byte 0).

use super::corrupt;
use crate::checksum;
use crate::error::FsError;
use crate::FsKind;
use bootproof_image::ReadAt;

/// v5 incompatible feature bits this reader handles.
const INCOMPAT_FTYPE: u32 = 1 << 0;
const INCOMPAT_SPINODES: u32 = 1 << 1;
const INCOMPAT_META_UUID: u32 = 1 << 2;
const INCOMPAT_BIGTIME: u32 = 1 << 3;
const INCOMPAT_NEEDSREPAIR: u32 = 1 << 4;
const INCOMPAT_NREXT64: u32 = 1 << 5;
const INCOMPAT_EXCHRANGE: u32 = 1 << 6;
const INCOMPAT_PARENT: u32 = 1 << 7;
const KNOWN_INCOMPAT: u32 = INCOMPAT_FTYPE
    | INCOMPAT_SPINODES
    | INCOMPAT_META_UUID
    | INCOMPAT_BIGTIME
    | INCOMPAT_NEEDSREPAIR
    | INCOMPAT_NREXT64
    | INCOMPAT_EXCHRANGE
    | INCOMPAT_PARENT;
/// Offset of `sb_crc` in `struct xfs_sb`.
const SB_CRC_OFFSET: usize = 224;
/// v4 `sb_features2` bit for file types in directory entries.
const FEATURES2_FTYPE: u32 = 0x200;

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The superblock fields the reader uses, validated.
#[derive(Debug, Clone)]
pub(crate) struct Superblock {
    pub block_size: u64,
    pub uuid: [u8; 16],
    pub root_ino: u64,
    pub ag_blocks: u64,
    pub ag_count: u64,
    pub inode_size: u16,
    pub label: String,
    pub ag_block_log: u32,
    pub inodes_per_block_log: u32,
    pub dir_block_size: u64,
    /// v5: metadata CRCs and self-describing headers.
    pub v5: bool,
    pub ftype: bool,
    pub bigtime: bool,
    pub nrext64: bool,
    pub device_size: u64,
}

impl Superblock {
    pub(crate) fn read(dev: &dyn ReadAt) -> Result<Superblock, FsError> {
        let mut b = [0u8; 512];
        dev.read_at(0, &mut b)?;
        if &b[..4] != b"XFSB" {
            return Err(corrupt("no XFSB magic"));
        }
        let block_size = u64::from(be32(&b, 4));
        let version = be16(&b, 100) & 0xf;
        let sect_size = be16(&b, 102);
        let inode_size = be16(&b, 104);
        let block_log = u32::from(b[120]);
        let inode_log = u32::from(b[122]);
        let inopb_log = u32::from(b[123]);
        let agblk_log = u32::from(b[124]);
        let dirblk_log = u32::from(b[192]);
        if !(512..=65536).contains(&block_size) || 1u64.checked_shl(block_log) != Some(block_size) {
            return Err(corrupt(format!(
                "block size {block_size} (log {block_log}) is invalid"
            )));
        }
        if !(256..=2048).contains(&inode_size)
            || 1u32.checked_shl(inode_log) != Some(u32::from(inode_size))
        {
            return Err(corrupt(format!("inode size {inode_size} is invalid")));
        }
        if block_log < inode_log || inopb_log != block_log - inode_log {
            return Err(corrupt(
                "inodes-per-block log does not match block and inode sizes",
            ));
        }
        if !(512..=32768).contains(&sect_size) {
            return Err(corrupt(format!("sector size {sect_size} is invalid")));
        }
        let ag_blocks = u64::from(be32(&b, 84));
        let ag_count = u64::from(be32(&b, 88));
        if ag_blocks == 0 || ag_count == 0 || agblk_log > 31 || (1u64 << agblk_log) < ag_blocks {
            return Err(corrupt(format!(
                "allocation groups ({ag_count} × {ag_blocks} blocks, log {agblk_log}) are invalid"
            )));
        }
        if dirblk_log > 6 || (block_size << dirblk_log) > 65536 {
            return Err(corrupt(format!(
                "directory block log {dirblk_log} is invalid"
            )));
        }
        let (v5, ftype, bigtime, nrext64) = match version {
            5 => {
                let incompat = be32(&b, 216);
                if incompat & !KNOWN_INCOMPAT != 0 {
                    return Err(FsError::unsupported(
                        FsKind::Xfs,
                        format!(
                            "incompatible feature bits {:#x}",
                            incompat & !KNOWN_INCOMPAT
                        ),
                    ));
                }
                (
                    true,
                    incompat & INCOMPAT_FTYPE != 0,
                    incompat & INCOMPAT_BIGTIME != 0,
                    incompat & INCOMPAT_NREXT64 != 0,
                )
            }
            4 => {
                let morebits = be16(&b, 100) & 0x8000 != 0;
                let ftype = morebits && be32(&b, 200) & FEATURES2_FTYPE != 0;
                (false, ftype, false, false)
            }
            v => {
                return Err(FsError::unsupported(
                    FsKind::Xfs,
                    format!("superblock version {v}"),
                ));
            }
        };
        if v5 {
            // `sb_crc` covers the whole first sector.
            let mut sector = vec![0u8; usize::from(sect_size)];
            dev.read_at(0, &mut sector)?;
            checksum::xfs_verify(&sector, SB_CRC_OFFSET, || "superblock".into())?;
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[32..48]);
        let label_raw = &b[108..120];
        let label_len = label_raw.iter().position(|&c| c == 0).unwrap_or(12);
        let sb = Superblock {
            block_size,
            uuid,
            root_ino: be64(&b, 56),
            ag_blocks,
            ag_count,
            inode_size,
            label: String::from_utf8_lossy(&label_raw[..label_len]).into_owned(),
            ag_block_log: agblk_log,
            inodes_per_block_log: inopb_log,
            dir_block_size: block_size << dirblk_log,
            v5,
            ftype,
            bigtime,
            nrext64,
            device_size: dev.size(),
        };
        sb.inode_offset(sb.root_ino)?;
        Ok(sb)
    }

    /// Byte offset of a filesystem block number (AG number in the high
    /// bits, AG-relative block in the low `agblklog` bits).
    pub(crate) fn fsblock_to_byte(&self, fsb: u64) -> Result<u64, FsError> {
        let ag = fsb >> self.ag_block_log;
        let agbno = fsb & ((1u64 << self.ag_block_log) - 1);
        if ag >= self.ag_count || agbno >= self.ag_blocks {
            return Err(corrupt(format!(
                "block number {fsb:#x} (AG {ag}, block {agbno}) is outside the filesystem"
            )));
        }
        let block = ag * self.ag_blocks + agbno;
        let byte = block
            .checked_mul(self.block_size)
            .filter(|&b| b < self.device_size)
            .ok_or_else(|| corrupt(format!("block {block} is past the end of the device")))?;
        Ok(byte)
    }

    /// Byte offset of inode `ino`.
    pub(crate) fn inode_offset(&self, ino: u64) -> Result<u64, FsError> {
        let shift = self.ag_block_log + self.inodes_per_block_log;
        let ag = ino.checked_shr(shift).unwrap_or(u64::MAX);
        let agbno = (ino >> self.inodes_per_block_log) & ((1u64 << self.ag_block_log) - 1);
        let index = ino & ((1u64 << self.inodes_per_block_log) - 1);
        if ag >= self.ag_count || agbno >= self.ag_blocks {
            return Err(corrupt(format!(
                "inode number {ino} is outside the filesystem"
            )));
        }
        // Checked: the factors are superblock fields, and their product
        // wrapped silently (or panicked) for crafted ones.
        let inode_size = u64::from(self.inode_size);
        ag.checked_mul(self.ag_blocks)
            .and_then(|b| b.checked_add(agbno))
            .and_then(|b| b.checked_mul(self.block_size))
            .and_then(|b| b.checked_add(index.checked_mul(inode_size)?))
            .filter(|b| {
                b.checked_add(inode_size)
                    .is_some_and(|end| end <= self.device_size)
            })
            .ok_or_else(|| corrupt(format!("inode {ino} lies past the end of the device")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A superblock as a crafted image can make it: the largest AG count
    /// and size the parser accepts, 64 KiB blocks.
    fn huge() -> Superblock {
        Superblock {
            block_size: 65536,
            uuid: [0; 16],
            root_ino: 128,
            ag_blocks: (1 << 31) - 1,
            ag_count: u64::from(u32::MAX),
            inode_size: 512,
            label: String::new(),
            ag_block_log: 31,
            inodes_per_block_log: 7,
            dir_block_size: 65536,
            v5: true,
            ftype: true,
            bigtime: false,
            nrext64: false,
            device_size: 64 << 20,
        }
    }

    #[test]
    fn inode_offsets_never_wrap() {
        let sb = huge();
        // AG 2^32 - 2, last block: the byte offset is beyond u64.
        let ino = ((u64::from(u32::MAX) - 1) << (31 + 7)) | (((1 << 31) - 2) << 7) | 5;
        let e = sb.inode_offset(ino).unwrap_err();
        assert!(e.to_string().contains("past the end"), "{e}");
        // In range: AG 0, block 1, inode 3.
        assert_eq!(sb.inode_offset((1 << 7) | 3).unwrap(), 65536 + 3 * 512);
        // Every inode number either maps inside the device or is an error.
        for ino in [0, u64::MAX, 1 << 63, (1 << 38) - 1, 1 << 38] {
            if let Ok(b) = sb.inode_offset(ino) {
                assert!(b + 512 <= sb.device_size);
            }
        }
    }
}
