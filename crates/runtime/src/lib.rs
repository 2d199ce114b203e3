//! bootproof's engine: everything that boots a guest and judges it, as a
//! library. A CI service, a test harness or a dashboard embeds it the way
//! the `bootproof` command line does: build a request, call the engine,
//! render the typed report.
//!
//! - [`boot::boot`]: boot an image (firmware or direct kernel) and
//!   classify how far it got;
//! - [`verify::verify`]: boot the image's kernel (or the whole image) with
//!   the in-guest agent on each platform variant and collect its checks;
//! - [`run::run`]: the user's command across images × kernels × variants,
//!   with retries, shards, evidence and a history;
//! - [`history`], [`catalog`], [`report::merge`], [`render`]: what runs
//!   leave behind and the forms CI reads.
//!
//! Progress arrives through [`Events`]; an interrupt is an `AtomicBool`
//! the caller owns (the CLI sets it from Ctrl-C). Data flows one way:
//! image → disk → fs → inspect → boot → vm → runtime.
//!
//! ```no_run
//! use bootproof_runtime::{verify, NoEvents};
//! use std::sync::atomic::AtomicBool;
//!
//! let req = verify::VerifyRequest {
//!     image: "disk.qcow2".into(),
//!     hotplug: true,
//!     ..Default::default()
//! };
//! let report = verify::verify(&req, &NoEvents, &AtomicBool::new(false))?;
//! println!("{} variants, passed: {}", report.variants.len(), report.passed);
//! # Ok::<(), bootproof_runtime::Error>(())
//! ```

pub mod boot;
pub mod catalog;
pub mod cloud_init;
pub mod contents;
pub mod deliver;
mod error;
mod events;
pub mod history;
pub mod host;
pub mod image;
pub mod inspection;
pub mod kernel_library;
pub mod launch;
pub mod matrix;
pub mod memory;
mod mode;
pub mod pool;
pub mod prove;
pub mod render;
pub mod report;
pub mod run;
pub mod schemas;
pub mod secure_boot;
pub mod verify;

pub use error::Error;
pub use events::{Events, NoEvents};
pub use mode::{Mode, SeedChoice};

/// Exit statuses the engine's verdicts map to (documented in the CLI's
/// `--help`); shared so a merged report exits as its run would have.
pub mod exit {
    /// Success: everything required passed.
    pub const OK: u8 = 0;
    /// A check or a required cell failed, or a boot failed.
    pub const FAIL: u8 = 1;
    /// Usage error, unreadable input, or VMs that could not run.
    pub const ERROR: u8 = 2;
    /// `run`: infra errors left required cells without a verdict.
    pub const INFRA: u8 = 3;
    /// `prove`: the boot did not stop where `check` predicted.
    pub const MISSED: u8 = 4;
    /// Interrupted (Ctrl-C, SIGTERM, SIGHUP).
    pub const INTERRUPTED: u8 = 130;

    /// [`FAIL`] when `failed`, else [`OK`].
    pub fn fail_if(failed: bool) -> u8 {
        if failed {
            FAIL
        } else {
            OK
        }
    }
}
