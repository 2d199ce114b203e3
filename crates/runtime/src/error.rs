//! The engine's error: what went wrong, and the user's next step when
//! there is one. Every lower crate's error converts into it with a hint
//! fitting that error, so a front end prints both and exits.

use bootproof_image::ImageError;
use bootproof_inspect::{LookupError, OpenError};
use std::fmt;

/// A failure with an optional next step for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    hint: Option<String>,
}

impl Error {
    /// An error without a hint.
    pub fn new(message: impl ToString) -> Error {
        Error {
            message: message.to_string(),
            hint: None,
        }
    }

    /// An error with a hint (an empty hint is none).
    pub fn with_hint(message: impl ToString, hint: impl Into<String>) -> Error {
        let hint: String = hint.into();
        Error {
            message: message.to_string(),
            hint: (!hint.is_empty()).then_some(hint),
        }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What to do next, when known.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Error {
        let hint = match &e {
            OpenError::Image(ImageError::Corrupt { .. }) => {
                "check the file with `qemu-img check IMAGE`"
            }
            _ => "",
        };
        Error::with_hint(e, hint)
    }
}

impl From<LookupError> for Error {
    fn from(e: LookupError) -> Error {
        let hint = match &e {
            LookupError::NotOnAnyFilesystem(_)
            | LookupError::Fs(bootproof_fs::FsError::NotFound(_)) => {
                "list a directory with `bootproof ls IMAGE [PART:]DIR`, or name the partition as PART:PATH"
            }
            LookupError::Unreadable { .. } | LookupError::NoSuchPartition(_) => {
                "`bootproof inspect IMAGE` lists the partitions and their filesystems"
            }
            _ => "",
        };
        Error::with_hint(e, hint)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::new(e)
    }
}

impl From<bootproof_fs::FsError> for Error {
    fn from(e: bootproof_fs::FsError) -> Error {
        LookupError::Fs(e).into()
    }
}

impl From<bootproof_platform::AxisError> for Error {
    fn from(e: bootproof_platform::AxisError) -> Error {
        Error::with_hint(e.message, e.hint)
    }
}

impl From<bootproof_platform::UnknownArch> for Error {
    fn from(e: bootproof_platform::UnknownArch) -> Error {
        Error::with_hint(
            e,
            format!("use one of {}", bootproof_platform::Arch::names()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_follow_the_error() {
        let e = Error::from(LookupError::NoSuchPartition("9".into()));
        assert!(e.hint().unwrap().contains("bootproof inspect"));
        assert_eq!(Error::with_hint("x", "").hint(), None);
        let axis = bootproof_platform::Axes::parse(&["gic=9"]).unwrap_err();
        let e = Error::from(axis);
        assert_eq!(e.message(), "bad values in `gic=9`");
        assert!(e.hint().unwrap().contains("gic=2,3"));
    }
}
