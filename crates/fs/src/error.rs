//! Errors, split as ext4-view does: the path is wrong, the filesystem is
//! corrupt, it uses something unsupported, or the read failed.

use crate::FsKind;

/// Why a filesystem operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// No such file or directory.
    #[error("{0}: no such file or directory")]
    NotFound(String),
    /// A path component that must be a directory is not.
    #[error("{0}: not a directory")]
    NotADirectory(String),
    /// A directory was given where a file was needed.
    #[error("{0}: is a directory")]
    IsADirectory(String),
    /// Not a symlink where one was needed.
    #[error("{0}: not a symbolic link")]
    NotASymlink(String),
    /// Not a regular file (device, fifo …).
    #[error("{0}: not a regular file")]
    NotAFile(String),
    /// Symlinks nest deeper than the limit or loop.
    #[error("{0}: too many levels of symbolic links (limit {limit})", limit = crate::MAX_SYMLINK_FOLLOWS)]
    SymlinkLoop(String),
    /// A file is larger than the caller's read limit.
    #[error("{path}: {size} bytes exceeds the read limit of {limit} bytes")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// On-disk structures are inconsistent.
    #[error("corrupt {fs} filesystem: {detail}")]
    Corrupt {
        /// The filesystem kind.
        fs: FsKind,
        /// What is wrong, with the numbers.
        detail: String,
    },
    /// A valid feature this reader does not implement.
    #[error("unsupported {fs} feature: {detail}")]
    Unsupported {
        /// The filesystem kind.
        fs: FsKind,
        /// What was found.
        detail: String,
    },
    /// Reading the underlying image failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl FsError {
    /// Shorthand for [`FsError::Corrupt`].
    pub fn corrupt(fs: FsKind, detail: impl Into<String>) -> FsError {
        FsError::Corrupt {
            fs,
            detail: detail.into(),
        }
    }
    /// Shorthand for [`FsError::Unsupported`].
    pub fn unsupported(fs: FsKind, detail: impl Into<String>) -> FsError {
        FsError::Unsupported {
            fs,
            detail: detail.into(),
        }
    }
    /// Converts to `std::io::Error` for `Read` implementations.
    pub fn into_io(self) -> std::io::Error {
        match self {
            FsError::Io(e) => e,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other),
        }
    }
}
