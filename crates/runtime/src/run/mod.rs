//! `run`: the user's command as root inside every image × kernel ×
//! variant. Rows are planned once ([`plan`], [`prepare`]), cells run on
//! the shared worker pool with retries of infra errors ([`execute`]), each
//! finished boot becomes a verdict ([`cell`]), and the run is recorded in
//! the history.

mod cell;
mod execute;
mod plan;
mod prepare;
mod root;

pub use cell::{
    exit_status, judge, stable_hash, summary, write_evidence, Cell, CellStatus, CellView, Shard,
    Summary,
};
pub use plan::IMAGE_KERNEL;

use crate::events::Events;
use crate::history::{self, ImageFacts};
use crate::mode::{Mode, SeedChoice};
use crate::{exit, Error};
use bootproof_boot::package::ExternalKernel;
use bootproof_platform::{Arch, Axes};
use bootproof_vm::accel::Decision;
use prepare::Prepared;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

/// The `schema` of a [`RunReport`].
pub const RUN_SCHEMA: &str = "bootproof.run/v1";

/// What to run where.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// Images from the command line (rows, after the matrix file's).
    pub images: Vec<PathBuf>,
    /// A matrix file (TOML, docs/matrix.md).
    pub matrix: Option<PathBuf>,
    /// Extra kernels (Debian packages, unpacked trees, kernel files).
    pub kernels: Vec<PathBuf>,
    /// Library kernel sets or library kernels (`--kernel-set`), fetched
    /// and verified into the cache.
    pub kernel_sets: Vec<String>,
    /// The variant axes (when the matrix file names no variants).
    pub axes: Axes,
    /// Whether axes were given (they conflict with `[[variant]]` entries).
    pub axes_given: bool,
    /// Agent or full mode.
    pub mode: Mode,
    /// Full mode's seed.
    pub seed: SeedChoice,
    /// Files shipped into every guest.
    pub binaries: Vec<PathBuf>,
    /// The exit status that means pass.
    pub expect_exit: i32,
    /// Seconds per cell, boot included.
    pub timeout: Option<u64>,
    /// Cells at once (default: cores); VMs start only while their memory
    /// fits ([`crate::memory::MemoryGate`]).
    pub jobs: Option<usize>,
    /// Infra-error retries per cell (default 1).
    pub retries: Option<u32>,
    /// Catalog files for `[[image]] catalog = …`.
    pub catalogs: Vec<PathBuf>,
    /// Only this shard's cells (`K/N`, as given).
    pub shard: Option<String>,
    /// Appended to every cell's kernel command line.
    pub cmdline_append: Option<String>,
    /// Where to write each cell's evidence.
    pub evidence: Option<PathBuf>,
    /// Follow qcow2 backing files.
    pub allow_backing: bool,
    /// Record the run in the history database.
    pub record_history: bool,
    /// The command and its arguments.
    pub command: Vec<String>,
}

/// What `run` is about to do, for progress displays.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// Cells to run (not skipped).
    pub cells: usize,
    /// Distinct images.
    pub images: usize,
    /// Extra kernels.
    pub extra_kernels: usize,
    /// Cells at once.
    pub workers: usize,
    /// MiB the running VMs may hold at once (their `-m` + QEMU's own).
    pub memory_budget_mib: u64,
    /// KVM or TCG per architecture.
    pub accel: Vec<ArchDecision>,
    /// The command.
    pub command: Vec<String>,
}

/// The accelerator chosen for one architecture of the run.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ArchDecision {
    /// The architecture.
    pub arch: Arch,
    /// KVM or TCG, and why.
    pub decision: Decision,
}

/// An extra kernel as the report lists it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct KernelEntry {
    /// The kernel, when it could be had.
    #[serde(flatten)]
    pub kernel: Option<ExternalKernel>,
    /// Its name in cell ids (`<image>@<name>`).
    pub name: String,
    /// Why it could not be had (a library kernel whose archive did not
    /// answer and that was never verified before): its cells are infra
    /// errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// How fast a run went: what a matrix's owner sizes machines by.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Throughput {
    /// The whole run, preparation included, in seconds.
    pub wall_secs: f64,
    /// Cells that booted a VM (at least one attempt).
    pub cells_run: usize,
    /// `cells_run` per hour of wall time (absent when none ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cells_per_hour: Option<f64>,
}

impl Throughput {
    /// From the cells that ran and the wall time.
    pub fn of(cells_run: usize, wall_secs: f64) -> Throughput {
        Throughput {
            wall_secs,
            cells_run,
            cells_per_hour: (cells_run > 0 && wall_secs > 0.0)
                .then(|| cells_run as f64 * 3600.0 / wall_secs),
        }
    }
}

impl RunReport {
    /// One line for people: the cells per status and the throughput
    /// (`4 cells: 3 pass, 1 fail · 2.1 min, 114 cells/hour`).
    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let counts: Vec<String> = [
            (s.pass, "pass"),
            (s.fail, "fail"),
            (s.boot_failure, "boot-failure"),
            (s.infra_error, "infra-error"),
            (s.skipped, "skipped"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, w)| format!("{n} {w}"))
        .collect();
        let t = &self.throughput;
        let rate = t
            .cells_per_hour
            .map_or(String::new(), |r| format!(", {r:.0} cells/hour"));
        let n = self.cells.len();
        format!(
            "{n} cell{}: {} · {:.1} min{rate}",
            if n == 1 { "" } else { "s" },
            counts.join(", "),
            t.wall_secs / 60.0
        )
    }
}

/// The result of `run` (schema `bootproof.run/v1`, docs/json.md).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RunReport {
    /// The document's schema id, [`RUN_SCHEMA`].
    #[schemars(extend("const" = RUN_SCHEMA))]
    pub schema: &'static str,
    /// The command.
    pub command: Vec<String>,
    /// The exit status that means pass.
    pub expect_exit: i32,
    /// `K/N` when sharded.
    pub shard: Option<String>,
    /// The shipped files' names.
    pub binaries: Vec<String>,
    /// Extra kernels.
    pub kernels: Vec<KernelEntry>,
    /// KVM or TCG per architecture.
    pub accel: Vec<ArchDecision>,
    /// Every cell, skipped ones included, in matrix order.
    pub cells: Vec<Cell>,
    /// Cells per status.
    pub summary: Summary,
    /// How fast the cells ran.
    pub throughput: Throughput,
    /// The exit status is 0.
    pub passed: bool,
    /// The history database's id for this run.
    pub history_run: Option<i64>,
    /// 0, 1 (a required cell failed), 3 (infra errors) or 130 (interrupted).
    #[serde(skip)]
    pub exit_code: u8,
}

/// Runs the command across the matrix. `interrupted` stops it: running
/// guests are shut down and cells not run are `skipped` ("interrupted").
pub fn run(
    req: &RunRequest,
    events: &dyn Events,
    interrupted: &AtomicBool,
) -> Result<RunReport, Error> {
    let started = (SystemTime::now(), Instant::now());
    let prepared = prepare::prepare(req, events)?;
    let (cells, digests) = execute::execute(&prepared, req, events, interrupted);
    let views: Vec<CellView> = cells.iter().map(CellView::from).collect();
    let was_interrupted = interrupted.load(Ordering::Relaxed);
    let exit_code = if was_interrupted {
        exit::INTERRUPTED
    } else {
        exit_status(&views)
    };
    let history_run = (req.record_history && !was_interrupted)
        .then(|| {
            let elapsed = started.1.elapsed().as_secs_f64();
            let facts = image_facts(&prepared, &digests);
            history::record(
                &req.command,
                req.shard.as_deref(),
                started.0,
                elapsed,
                exit_code,
                &cells,
                &facts,
            )
            .map_err(|e| events.warning(&format!("the run was not recorded: {e}")))
            .ok()
        })
        .flatten();
    let Prepared {
        names,
        kernels,
        accel,
        ..
    } = prepared;
    Ok(RunReport {
        schema: RUN_SCHEMA,
        command: req.command.clone(),
        expect_exit: req.expect_exit,
        shard: req.shard.clone(),
        binaries: names,
        kernels: kernels
            .into_iter()
            .map(|k| {
                let (kernel, unavailable) = match k.kernel {
                    Ok(kernel) => (Some(kernel), None),
                    Err((_, why)) => (None, Some(why)),
                };
                KernelEntry {
                    kernel,
                    name: k.label,
                    unavailable,
                }
            })
            .collect(),
        accel,
        summary: summary(&views),
        throughput: Throughput::of(
            cells.iter().filter(|c| c.attempts > 0).count(),
            started.1.elapsed().as_secs_f64(),
        ),
        cells,
        passed: exit_code == exit::OK,
        history_run,
        exit_code,
    })
}

/// What the history records of each row's image and kernel.
fn image_facts(p: &Prepared, digests: &[(PathBuf, Option<String>)]) -> Vec<ImageFacts> {
    p.rows
        .iter()
        .map(|r| ImageFacts {
            name: r.name.clone(),
            size: r.disk.size,
            image_sha256: digests
                .iter()
                .find(|(path, _)| *path == r.image)
                .and_then(|(_, d)| d.clone()),
            kernel_sha256: r.kernel_sha256.clone(),
            prediction: r.prediction.clone(),
        })
        .collect()
}

#[cfg(test)]
mod throughput_tests {
    use super::Throughput;

    #[test]
    fn the_rate_is_cells_run_per_hour_of_wall_time() {
        let t = Throughput::of(3, 90.0);
        assert_eq!(t.cells_per_hour, Some(120.0));
        assert_eq!(Throughput::of(0, 90.0).cells_per_hour, None);
        assert_eq!(Throughput::of(2, 0.0).cells_per_hour, None);
    }
}
