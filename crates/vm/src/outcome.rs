//! How a boot ended ([`BootOutcome`]), what it produced ([`BootResult`])
//! and how that reads in one sentence ([`BootResult::summary`]).

use crate::classify::{Event, Stage};
pub use bootproof_platform::Tone;
use serde::Serialize;
use std::path::PathBuf;

/// How a boot ended, as reported.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum BootOutcome {
    /// Userspace was reached and the guest powered off or showed a login prompt.
    Booted,
    /// `--until` was satisfied.
    Reached {
        /// The stage reached.
        stage: Stage,
    },
    /// The boot failed at a stage.
    Failed {
        /// The failing stage.
        stage: Stage,
        /// The cause, in words, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        cause: Option<String>,
    },
    /// The guest stopped (QEMU exited) or waits for a key, without failing
    /// or finishing.
    Stalled {
        /// The last stage reached.
        last: Option<Stage>,
        /// Why, when known.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The kernel started, then the console stayed silent far longer than
    /// a booting kernel ever is, with nothing on it explaining the wait
    /// (not a root device awaited, not a console lost after the EFI stub):
    /// the guest hung. Under TCG emulation this is the shape of QEMU's own
    /// rare hangs, so `run` and `verify` retry it there ([`crate::hang`]).
    Hung {
        /// The last stage reached.
        last: Option<Stage>,
        /// How long the console had been silent when the boot was ended.
        silent_secs: u64,
        /// The last line the guest printed.
        after: String,
    },
    /// The deadline passed.
    Timeout {
        /// The last stage reached.
        last: Option<Stage>,
        /// Why the guest went quiet, when the console shows it
        /// ([`crate::classify::Classifier::silence`]).
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The VM could not run (QEMU failed to start or died).
    InfraError {
        /// What went wrong (QEMU's own words where it gave some).
        message: String,
    },
    /// Interrupted by the user (Ctrl-C) or a signal.
    Interrupted {
        /// The last stage reached.
        last: Option<Stage>,
    },
}

impl BootResult {
    /// How the boot ended, in a sentence (`failed at kernel: …`,
    /// `timed out after 300s at firmware`), and its tone.
    pub fn summary(&self, timeout_secs: u64) -> (Tone, String) {
        let elapsed = self.elapsed;
        let last_and_why = |last: &Option<Stage>, reason: &Option<String>| {
            format!(
                "{}{}",
                last.as_ref().map_or("no recognised stage", |s| s.name()),
                reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )
        };
        match &self.outcome {
            BootOutcome::Booted => (Tone::Good, format!("booted in {elapsed:.1}s")),
            BootOutcome::Reached { stage } => (
                Tone::Good,
                format!("reached {} in {elapsed:.1}s", stage.name()),
            ),
            BootOutcome::Failed { stage, cause } => (
                Tone::Bad,
                format!(
                    "failed at {}{}",
                    stage.name(),
                    cause.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
                ),
            ),
            BootOutcome::Stalled { last, reason } => (
                Tone::Warn,
                format!("stalled after {}", last_and_why(last, reason)),
            ),
            BootOutcome::Hung {
                last,
                silent_secs,
                after,
            } => (
                Tone::Warn,
                format!(
                    "hung after {}: nothing on the console for {silent_secs}s after \"{after}\"",
                    last_and_why(last, &None)
                ),
            ),
            BootOutcome::Timeout { last, reason } => (
                Tone::Warn,
                format!(
                    "timed out after {timeout_secs}s at {}",
                    last_and_why(last, reason)
                ),
            ),
            BootOutcome::InfraError { message } => (Tone::Bad, format!("could not run: {message}")),
            BootOutcome::Interrupted { .. } => {
                (Tone::Warn, "interrupted; the guest was shut down".into())
            }
        }
    }
}

/// Everything a boot produced.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BootResult {
    /// The outcome.
    #[serde(flatten)]
    pub outcome: BootOutcome,
    /// What the console showed going wrong on the way (failed units,
    /// kernel warnings, device timeouts, …), even when the boot succeeded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<crate::health::Problem>,
    /// The stage timeline.
    pub stages: Vec<Event>,
    /// Wall time from QEMU's start to the end, in seconds.
    pub elapsed: f64,
    /// QEMU's exit status, when it exited by itself.
    pub qemu_exit: Option<i32>,
    /// The end of QEMU's stderr.
    pub qemu_stderr: String,
    /// Console bytes seen.
    pub console_bytes: u64,
    /// The console log.
    pub console_log: PathBuf,
}
