//! Errors of the image layer.

use std::path::PathBuf;

/// Why an image could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The host file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The image's metadata is inconsistent or hostile.
    #[error("{}: corrupt {format} image: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The format being parsed.
        format: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A format (or feature of a format) bootproof recognises but cannot read.
    #[error("{}: {format} is not supported yet ({detail}); convert it first, e.g. `qemu-img convert -O qcow2 IN OUT`", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The format's name (VDI, QED, a VMDK delta disk …).
        format: String,
        /// More about what was found.
        detail: String,
    },
    /// The image (or its data) is encrypted: nothing can be read without
    /// the key, and bootproof takes no keys.
    #[error("{}: {what} is encrypted ({detail}); bootproof reads images without keys, so it cannot look inside: check and boot an unencrypted build of the image", path.display())]
    Encrypted {
        /// The file.
        path: PathBuf,
        /// What is encrypted (`a LUKS container`, `qcow2 data`).
        what: String,
        /// More about what was found.
        detail: String,
    },
    /// The image has a backing file and the caller did not allow following it.
    #[error("{}: image is backed by `{backing}`; pass --allow-backing to open the backing chain", path.display())]
    BackingNotAllowed {
        /// The overlay.
        path: PathBuf,
        /// The backing file name as recorded in the image.
        backing: String,
    },
    /// A backing file names a file already in the chain.
    #[error("{}: backing chain loops back to this file", path.display())]
    ChainLoop {
        /// The file seen twice.
        path: PathBuf,
    },
    /// The chain is deeper than [`crate::MAX_CHAIN_DEPTH`].
    #[error("{}: backing chain deeper than {limit} layers", path.display())]
    ChainTooDeep {
        /// The layer where the limit was hit.
        path: PathBuf,
        /// The limit.
        limit: usize,
    },
}

impl ImageError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> ImageError {
        ImageError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn corrupt(path: &std::path::Path, detail: impl Into<String>) -> ImageError {
        ImageError::Corrupt {
            path: path.to_path_buf(),
            format: "qcow2",
            detail: detail.into(),
        }
    }
}
