//! Metadata checksums, verified before a structure is believed.
//!
//! XFS v5 stamps every metadata block with a CRC32C over the block with its
//! checksum field read as zeros (`xfs_cksum.h`); Btrfs stamps its
//! superblock and every tree block with a checksum of the bytes after the
//! 32-byte checksum area, of the kind the superblock names
//! (`btrfs_csum_type`: CRC32C, xxHash64, SHA-256 or BLAKE2b-256). Both store
//! the value little-endian. A damaged or crafted block then fails with an
//! error naming the structure instead of being parsed.
//!
//! Fuzz builds (`cfg(fuzzing)`, set by cargo-fuzz) accept every checksum,
//! so mutated inputs reach the parsers behind them instead of stopping here.

use crate::detect::FsKind;
use crate::error::FsError;
use blake2::digest::consts::U32;
use blake2::Blake2b;
use crc::{Crc, CRC_32_ISCSI};
use sha2::{Digest, Sha256};

/// CRC32C (Castagnoli), as Linux's `crc32c()` with the usual inversions.
const CASTAGNOLI: Crc<u32> = Crc::<u32>::new(&CRC_32_ISCSI);

/// Whether the CRC32C stored little-endian at `field` in `block` matches
/// the block's content with those four bytes read as zeros.
pub(crate) fn crc32c_matches(block: &[u8], field: usize) -> bool {
    let Some(stored) = block.get(field..field + 4) else {
        return false;
    };
    if cfg!(fuzzing) {
        return true;
    }
    let mut d = CASTAGNOLI.digest();
    d.update(&block[..field]);
    d.update(&[0; 4]);
    d.update(&block[field + 4..]);
    d.finalize().to_le_bytes() == stored
}

/// Checks an XFS v5 structure's CRC; `what` names it in the error.
pub(crate) fn xfs_verify(
    block: &[u8],
    field: usize,
    what: impl FnOnce() -> String,
) -> Result<(), FsError> {
    if crc32c_matches(block, field) {
        Ok(())
    } else {
        Err(FsError::corrupt(
            FsKind::Xfs,
            format!("{}: CRC32C checksum mismatch", what()),
        ))
    }
}

/// The checksum kinds a Btrfs superblock can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BtrfsCsum {
    /// `BTRFS_CSUM_TYPE_CRC32` (CRC32C despite the name).
    Crc32c,
    /// `BTRFS_CSUM_TYPE_XXHASH`.
    XxHash64,
    /// `BTRFS_CSUM_TYPE_SHA256`.
    Sha256,
    /// `BTRFS_CSUM_TYPE_BLAKE2` (BLAKE2b with a 256-bit digest).
    Blake2b,
}

impl BtrfsCsum {
    /// Decodes `csum_type`; `None` for a kind Linux does not define.
    pub(crate) fn from_type(t: u16) -> Option<BtrfsCsum> {
        Some(match t {
            0 => BtrfsCsum::Crc32c,
            1 => BtrfsCsum::XxHash64,
            2 => BtrfsCsum::Sha256,
            3 => BtrfsCsum::Blake2b,
            _ => return None,
        })
    }

    /// The name `btrfs inspect-internal dump-super` prints.
    pub(crate) fn name(self) -> &'static str {
        match self {
            BtrfsCsum::Crc32c => "crc32c",
            BtrfsCsum::XxHash64 => "xxhash64",
            BtrfsCsum::Sha256 => "sha256",
            BtrfsCsum::Blake2b => "blake2b",
        }
    }

    /// Whether the checksum in `block[..32]` matches `block[32..]`.
    pub(crate) fn matches(self, block: &[u8]) -> bool {
        let Some((stored, data)) = block.split_at_checked(32) else {
            return false;
        };
        if cfg!(fuzzing) {
            return true;
        }
        match self {
            BtrfsCsum::Crc32c => stored[..4] == CASTAGNOLI.checksum(data).to_le_bytes(),
            BtrfsCsum::XxHash64 => {
                stored[..8] == twox_hash::XxHash64::oneshot(0, data).to_le_bytes()
            }
            BtrfsCsum::Sha256 => stored[..] == Sha256::digest(data)[..],
            BtrfsCsum::Blake2b => stored[..] == Blake2b::<U32>::digest(data)[..],
        }
    }

    /// Checks a Btrfs superblock or tree block; `what` names it.
    pub(crate) fn verify(self, block: &[u8], what: impl FnOnce() -> String) -> Result<(), FsError> {
        if self.matches(block) {
            Ok(())
        } else {
            Err(FsError::corrupt(
                FsKind::Btrfs,
                format!("{}: {} checksum mismatch", what(), self.name()),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3720's CRC32C check value and Linux's convention for a zeroed field.
    #[test]
    fn crc32c_is_castagnoli_with_the_field_zeroed() {
        assert_eq!(CASTAGNOLI.checksum(b"123456789"), 0xe306_9283);
        let mut block = b"head\0\0\0\0tail".to_vec();
        let crc = CASTAGNOLI.checksum(&block);
        block[4..8].copy_from_slice(&crc.to_le_bytes());
        assert!(crc32c_matches(&block, 4));
        block[9] ^= 1;
        assert!(!crc32c_matches(&block, 4));
        assert!(
            !crc32c_matches(&block, block.len() - 2),
            "field past the end"
        );
    }

    #[test]
    fn btrfs_kinds_check_the_bytes_after_the_checksum_area() {
        for kind in [
            BtrfsCsum::Crc32c,
            BtrfsCsum::XxHash64,
            BtrfsCsum::Sha256,
            BtrfsCsum::Blake2b,
        ] {
            let mut block = vec![0u8; 4096];
            block[100] = 7;
            assert!(!kind.matches(&block), "{kind:?}: zeros are not a checksum");
            let sum: Vec<u8> = match kind {
                BtrfsCsum::Crc32c => CASTAGNOLI.checksum(&block[32..]).to_le_bytes().to_vec(),
                BtrfsCsum::XxHash64 => twox_hash::XxHash64::oneshot(0, &block[32..])
                    .to_le_bytes()
                    .to_vec(),
                BtrfsCsum::Sha256 => Sha256::digest(&block[32..]).to_vec(),
                BtrfsCsum::Blake2b => Blake2b::<U32>::digest(&block[32..]).to_vec(),
            };
            block[..sum.len()].copy_from_slice(&sum);
            assert!(kind.matches(&block), "{kind:?}");
            block[4000] ^= 0x80;
            let e = kind
                .verify(&block, || "tree block 0x1000".into())
                .unwrap_err();
            assert!(e.to_string().contains("tree block 0x1000"), "{e}");
        }
        assert_eq!(BtrfsCsum::from_type(4), None);
    }
}
