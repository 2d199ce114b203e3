//! How much a finding matters: one scale for partition-table diagnostics,
//! static check rules and anything else that grades problems.

use serde::{Deserialize, Serialize};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; never a failure.
    Info,
    /// A SHOULD, or a defect that firmware and tools usually tolerate but
    /// that bites later.
    Warning,
    /// A MUST, or a defect that stops the boot or loses data.
    Error,
}
