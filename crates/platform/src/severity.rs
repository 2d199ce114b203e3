//! How much a finding matters: one scale for partition-table diagnostics,
//! static check rules and anything else that grades problems; and the tone
//! a reported fact reads in (what human output colours it by).

use serde::{Deserialize, Serialize};

/// How bad a finding is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
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

/// Whether a reported fact is good news, bad news, a warning or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Neutral: a fact, not a verdict.
    Plain,
    /// Good news: booted, intact, accepted.
    Good,
    /// Bad news: failed, could not run, changed after signing.
    Bad,
    /// No verdict, or one to look at: stalled, timed out, not checked.
    Warn,
}
