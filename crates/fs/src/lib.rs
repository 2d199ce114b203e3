//! Read-only filesystems inside disk images.
//!
//! This crate owns the third pipeline stage: given a partition (any
//! [`ReadAt`]), detect its filesystem by superblock and read files from it.
//! Each filesystem implements the small, path-based [`FileSystem`] trait;
//! [`Volume`] wraps one and adds what every caller needs and no filesystem
//! should implement twice: symlink resolution *inside the image only*
//! (depth and loop limits, `..` clamped at the root), bounded whole-file
//! reads, and an API that mirrors `std::fs`.
//!
//! FAT uses the `fatfs` crate and ext2/3/4 the `ext4-view` crate. XFS, Btrfs
//! and ISO9660 have no maintained read-only crates that bound hostile input,
//! so their readers live here, one module per on-disk structure.
#![forbid(unsafe_code)]

mod block_cache;
mod btrfs;
mod checksum;
mod detect;
mod error;
mod ext4;
mod fat;
mod iso9660;
pub mod limits;
mod path;
mod volume;
mod xfs;

pub use detect::{probe, FsKind};
pub use error::FsError;
pub use path::NodePath;
pub use volume::{open_as, open_volume, Volume, DEFAULT_READ_LIMIT, MAX_SYMLINK_FOLLOWS};

use serde::Serialize;
use std::io::Read;

/// What a directory entry or inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
    /// Anything else.
    Other,
}

impl FileType {
    /// From the `S_IFMT` bits of a Unix mode.
    pub fn from_mode(mode: u32) -> FileType {
        match mode & 0o170000 {
            0o100000 => FileType::File,
            0o040000 => FileType::Dir,
            0o120000 => FileType::Symlink,
            0o020000 => FileType::CharDevice,
            0o060000 => FileType::BlockDevice,
            0o010000 => FileType::Fifo,
            0o140000 => FileType::Socket,
            _ => FileType::Other,
        }
    }
    /// From the directory-entry type codes XFS (`XFS_DIR3_FT_*`) and Btrfs
    /// (`BTRFS_FT_*`) share with Linux's `FT_*`: 1 file … 7 symlink.
    pub fn from_dirent_code(code: u8) -> Option<FileType> {
        Some(match code {
            1 => FileType::File,
            2 => FileType::Dir,
            3 => FileType::CharDevice,
            4 => FileType::BlockDevice,
            5 => FileType::Fifo,
            6 => FileType::Socket,
            7 => FileType::Symlink,
            _ => return None,
        })
    }
    /// One-letter form used by `ls -l`.
    pub fn letter(self) -> char {
        match self {
            FileType::File => '-',
            FileType::Dir => 'd',
            FileType::Symlink => 'l',
            FileType::CharDevice => 'c',
            FileType::BlockDevice => 'b',
            FileType::Fifo => 'p',
            FileType::Socket => 's',
            FileType::Other => '?',
        }
    }
}

/// What `stat` says about a file.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Metadata {
    /// The file's type.
    pub file_type: FileType,
    /// Size in bytes (for symlinks: length of the target).
    pub size: u64,
    /// Permission bits (`0o7777`), where the filesystem has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Owner, where the filesystem has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Group, where the filesystem has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Modification time, seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtime: Option<i64>,
    /// Inode number, where the filesystem has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inode: Option<u64>,
}

/// One entry of a directory listing (`.` and `..` are never included).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DirEntry {
    /// The name as stored, in bytes (Linux names need not be UTF-8).
    #[serde(serialize_with = "path::serialize_lossy")]
    #[schemars(with = "String")]
    pub name: Vec<u8>,
    /// The entry's type.
    pub file_type: FileType,
}

/// A read-only filesystem addressed by *resolved* paths: every component is
/// a plain name (no `.`, `..`, or symlinks before the last component).
/// [`Volume`] does the resolving; implementations only look names up.
pub trait FileSystem {
    /// Which filesystem this is.
    fn kind(&self) -> FsKind;
    /// Volume label, if set.
    fn label(&self) -> Option<String>;
    /// Filesystem UUID (or FAT volume serial) as `blkid` prints it.
    fn uuid(&self) -> Option<String>;
    /// Metadata of the entry at `path`, not following a final symlink.
    fn lstat(&self, path: &NodePath) -> Result<Metadata, FsError>;
    /// Entries of the directory at `path`.
    fn read_dir(&self, path: &NodePath) -> Result<Vec<DirEntry>, FsError>;
    /// Target of the symlink at `path`, as stored.
    fn read_link(&self, path: &NodePath) -> Result<Vec<u8>, FsError>;
    /// A sequential reader of the regular file at `path`.
    fn open(&self, path: &NodePath) -> Result<Box<dyn Read + '_>, FsError>;
    /// Volumes embedded in this one that can be opened on their own
    /// (an ISO's El Torito boot images). Empty for most filesystems.
    fn embedded(&self) -> Vec<Embedded> {
        Vec::new()
    }
}

/// A volume stored inside another (byte range relative to the outer volume).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Embedded {
    /// What it is, e.g. "El Torito boot image 1 (EFI)".
    pub name: String,
    /// Byte offset inside the outer volume.
    pub offset: u64,
    /// Size in bytes.
    pub size: u64,
}

/// A 16-byte UUID in the `blkid` form (lower-case, 8-4-4-4-12).
pub(crate) fn format_uuid(u: &[u8; 16]) -> String {
    let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`), for FAT and ISO9660 timestamps.
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
