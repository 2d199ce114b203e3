//! Diagnostics: problems found while reading, as data.

use serde::Serialize;

pub use bootproof_platform::Severity;

/// One problem found in a partition table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Diagnostic {
    /// How bad it is.
    pub severity: Severity,
    /// Stable identifier, e.g. `gpt.primary.header-crc`.
    pub code: String,
    /// What was found, with the numbers.
    pub message: String,
}

impl Diagnostic {
    /// An error-severity diagnostic.
    pub fn error(code: &str, message: impl Into<String>) -> Diagnostic {
        Self::new(Severity::Error, code, message)
    }
    /// A warning-severity diagnostic.
    pub fn warning(code: &str, message: impl Into<String>) -> Diagnostic {
        Self::new(Severity::Warning, code, message)
    }
    /// An info-severity diagnostic.
    pub fn info(code: &str, message: impl Into<String>) -> Diagnostic {
        Self::new(Severity::Info, code, message)
    }
    fn new(severity: Severity, code: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity,
            code: code.to_string(),
            message: message.into(),
        }
    }
}
