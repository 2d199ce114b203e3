//! Limits every filesystem reader shares, so that memory and time depend
//! on what a listing holds, never on sizes or counts an image declares.

use crate::detect::FsKind;
use crate::error::FsError;

/// Most entries one directory listing keeps. Real directories stay far
/// below (a distro's `/usr/lib/x86_64-linux-gnu` holds a few thousand).
pub const MAX_DIR_ENTRIES: usize = 1 << 20;
/// Most name bytes one directory listing keeps (with the entry count this
/// caps a listing at well under 100 MiB of memory).
pub const MAX_DIR_NAME_BYTES: usize = 32 << 20;
/// Most directory metadata one listing reads from the device (repeated
/// extents pointing at the same blocks cannot make a listing read more).
pub const MAX_DIR_DATA_BYTES: u64 = 128 << 20;

/// Longest symlink target read (Linux's PATH_MAX; ext4, XFS and Btrfs
/// store none longer). A crafted inode may declare gigabytes.
pub const MAX_SYMLINK_TARGET: u64 = 4096;

/// Counts one directory listing against the limits above.
#[derive(Debug)]
pub(crate) struct DirBudget {
    kind: FsKind,
    dir: String,
    entries: usize,
    name_bytes: usize,
}

impl DirBudget {
    /// A budget for listing `dir` (named in errors).
    pub(crate) fn new(kind: FsKind, dir: impl Into<String>) -> DirBudget {
        DirBudget {
            kind,
            dir: dir.into(),
            entries: 0,
            name_bytes: 0,
        }
    }

    /// Charges one entry with a name of `name_len` bytes.
    pub(crate) fn charge(&mut self, name_len: usize) -> Result<(), FsError> {
        self.entries += 1;
        self.name_bytes = self.name_bytes.saturating_add(name_len);
        if self.entries > MAX_DIR_ENTRIES || self.name_bytes > MAX_DIR_NAME_BYTES {
            return Err(FsError::corrupt(
                self.kind,
                format!(
                    "{} has over {MAX_DIR_ENTRIES} entries or {} MiB of names",
                    self.dir,
                    MAX_DIR_NAME_BYTES >> 20
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_past_either_limit_is_an_error() {
        let mut b = DirBudget::new(FsKind::Xfs, "directory inode 128");
        for _ in 0..MAX_DIR_ENTRIES {
            b.charge(1).unwrap();
        }
        let e = b.charge(1).unwrap_err().to_string();
        assert!(e.contains("directory inode 128 has over"), "{e}");
        let mut b = DirBudget::new(FsKind::Btrfs, "d");
        b.charge(MAX_DIR_NAME_BYTES).unwrap();
        assert!(b.charge(1).is_err());
    }
}
