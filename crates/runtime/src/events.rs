//! Progress from the engine to whoever embeds it. The CLI draws bars and
//! lines from these; a service can stream them; [`NoEvents`] ignores them.
//! Every method has a default that does nothing, so an implementation
//! picks what it shows. Calls come from worker threads.

use crate::catalog::Fetched;
use crate::run::{Cell, RunPlan};
use crate::verify::VerifyPlan;
use bootproof_platform::Arch;
use bootproof_vm::accel::Decision;
use bootproof_vm::classify::Event;
use std::path::Path;

/// Receives the engine's progress.
pub trait Events: Sync {
    /// `boot`: QEMU is about to start.
    fn boot_started(&self, _image: &Path, _arch: Arch, _mode: &str, _accel: &Decision) {}
    /// `boot`: a stage was recognised on the console.
    fn boot_stage(&self, _event: &Event) {}
    /// `boot`: QEMU ended (before the report is built).
    fn boot_ended(&self) {}
    /// `verify`: the boots are about to start.
    fn verify_started(&self, _plan: &VerifyPlan) {}
    /// `verify`: one boot finished: passed or not, or why it could not run.
    fn variant_finished(&self, _name: &str, _result: Result<bool, &str>) {}
    /// `run`: the cells are about to start.
    fn run_started(&self, _plan: &RunPlan) {}
    /// `run`: a cell started.
    fn cell_started(&self, _id: &str) {}
    /// `run`: a cell finished.
    fn cell_finished(&self, _cell: &Cell) {}
    /// `run`: every cell finished.
    fn run_ended(&self) {}
    /// A catalog download started (`total` bytes when the server said).
    fn download_started(&self, _name: &str, _total: Option<u64>) {}
    /// Bytes of the download so far.
    fn download_progress(&self, _name: &str, _done: u64) {}
    /// The download ended (verified or not).
    fn download_ended(&self, _name: &str) {}
    /// A catalog image is in the cache, verified.
    fn fetched(&self, _fetched: &Fetched) {}
    /// Something went wrong that the engine worked around.
    fn warning(&self, _message: &str) {}
}

/// Ignores every event.
pub struct NoEvents;

impl Events for NoEvents {}
