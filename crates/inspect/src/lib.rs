//! One image, opened through every static stage at once.
//!
//! [`OpenedImage`] ties the pipeline's first three stages together: the
//! image file, its partition table, and a filesystem per partition (or the
//! whole disk when there is no table). It answers the questions later
//! stages and the CLI ask: which filesystem does `LABEL=boot` name, which
//! one has `/etc/os-release`, what does the ESP hold. [`inspect`] builds the
//! versioned report behind `bootproof inspect`.
#![forbid(unsafe_code)]

mod access;
mod opened;
mod report;
mod selector;

pub use access::{FileRef, ListEntry};
pub use opened::{LvName, OpenedImage, Slot};
pub use report::{inspect, FsReport, InspectReport, Problem, INSPECT_SCHEMA};
pub use selector::{parse_target, PartSelector, Target};

/// Why an image could not be opened at all.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The image file could not be opened.
    #[error(transparent)]
    Image(#[from] bootproof_image::ImageError),
    /// Its first sector could not be read.
    #[error(transparent)]
    Disk(#[from] bootproof_disk::DiskError),
}

/// Why a path inside an image could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// No partition matches the selector.
    #[error("no partition matches `{0}`; run `bootproof inspect` to list them")]
    NoSuchPartition(String),
    /// The selected partition has no readable filesystem.
    #[error("partition {number} has no readable filesystem ({detail})")]
    Unreadable {
        /// Partition number (0 for the whole disk).
        number: u32,
        /// What was found instead.
        detail: String,
    },
    /// No readable filesystem has the path.
    #[error("`{0}` is not on any readable filesystem of this image")]
    NotOnAnyFilesystem(String),
    /// The filesystem returned an error.
    #[error(transparent)]
    Fs(#[from] bootproof_fs::FsError),
}
