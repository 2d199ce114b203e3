//! Executing a prepared run: every cell laid out in matrix order (those
//! another shard owns, or that cannot exist on their image, decided at
//! once), the rest on the worker pool, each booted until a verdict or its
//! retries run out, while a thread hashes the images for the history.

use super::cell::{write_evidence, Cell, CellStatus, Shard};
use super::plan::{Plan, Row};
use super::prepare::Prepared;
use super::RunRequest;
use crate::events::Events;
use crate::history;
use crate::host::{default_cpus, file_component, log_path};
use crate::launch::{launch, Guest, Task};
use crate::memory::MemoryGate;
use crate::pool::run_pool;
use bootproof_agent::RunSpec;
use bootproof_vm::accel::Decision;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Each image's SHA-256 (when it could be read before the run ended).
pub(super) type Digests = Vec<(PathBuf, Option<String>)>;

/// A cell waiting for a worker.
struct Pending {
    idx: usize,
    row: usize,
    plan: usize,
    id: String,
}

/// Orders cells longest first by their last recorded seconds, so the pool
/// does not end waiting on one long cell started last; a cell never
/// recorded counts as long as the longest known one (it may be long, and
/// the run learns it). Stable: ties keep matrix order. Results are placed
/// by each cell's index, so reports keep matrix order.
fn longest_first(jobs: &mut [Pending], costs: &std::collections::HashMap<String, f64>) {
    let longest = costs.values().copied().fold(0.0, f64::max);
    let cost = |j: &Pending| costs.get(&j.id).copied().unwrap_or(longest);
    jobs.sort_by(|a, b| cost(b).total_cmp(&cost(a)));
}

fn cell_id(row: &Row, plan: &Plan) -> String {
    format!("{} / {}", row.name, plan.variant)
}

/// Row and plan of the cell at `idx` in matrix order.
fn locate(rows: &[Row], mut idx: usize) -> (usize, usize) {
    for (r, row) in rows.iter().enumerate() {
        if idx < row.plans.len() {
            return (r, idx);
        }
        idx -= row.plans.len();
    }
    unreachable!("cell index within the matrix")
}

/// Every cell in matrix order: skipped ones (impossible on their image, or
/// another shard's) already decided, the rest pending.
fn lay_out(rows: &[Row], shard: Option<Shard>) -> (Vec<Option<Cell>>, Vec<Pending>) {
    let mut cells = Vec::new();
    let mut pending = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        for (p, plan) in row.plans.iter().enumerate() {
            let id = cell_id(row, plan);
            let skip = match (&plan.skip, shard) {
                (Some(why), _) => Some(why.clone()),
                (None, Some(s)) if !s.has(&id) => Some(format!("another shard's ({s})")),
                _ => None,
            };
            match skip {
                Some(why) => {
                    let mut cell = Cell::new(row, plan, id);
                    cell.detail = why;
                    cells.push(Some(cell));
                }
                None => {
                    pending.push(Pending {
                        idx: cells.len(),
                        row: r,
                        plan: p,
                        id,
                    });
                    cells.push(None);
                }
            }
        }
    }
    (cells, pending)
}

/// Runs every cell of `p`; returns the cells in matrix order and the
/// images' digests (when the run is recorded).
pub(super) fn execute(
    p: &Prepared,
    req: &RunRequest,
    events: &dyn Events,
    interrupted: &AtomicBool,
) -> (Vec<Cell>, Digests) {
    let (mut cells, mut pending) = lay_out(&p.rows, p.shard);
    if req.record_history {
        longest_first(&mut pending, &history::cell_costs());
    }
    let mut images: Vec<&Path> = p.rows.iter().map(|r| r.image.as_path()).collect();
    images.dedup();
    let memory = MemoryGate::for_host();
    events.run_started(&super::RunPlan {
        cells: pending.len(),
        images: images.len(),
        extra_kernels: p.kernels.len(),
        workers: p.workers.min(pending.len().max(1)),
        memory_budget_mib: memory.budget_mib(),
        accel: p.accel.clone(),
        command: req.command.clone(),
    });
    let guests: Vec<Guest> = p
        .rows
        .iter()
        .map(|row| Guest {
            image: &row.image,
            disk: row.disk.clone(),
            arch: row.arch,
            agent: p.agent(row.arch),
            how: &row.how,
            closure: Some(&row.closure),
            version: row.version.as_deref(),
            cpus: default_cpus(),
            decision: p.decision(row.arch),
            timeout: p.timeout,
            base: p.base.clone(),
            interrupted,
            memory: &memory,
        })
        .collect();
    let shared = CellRun {
        req,
        files: &p.files,
        names: &p.names,
        retries: p.retries,
        timeout: p.timeout,
        interrupted,
    };
    // The images' digests for the history, read while the cells run (and
    // cached in the history database by size and mtime).
    let digests: Mutex<Digests> = Mutex::new(Vec::new());
    let finished = std::thread::scope(|scope| {
        if req.record_history {
            scope.spawn(|| {
                for image in &images {
                    let d = history::file_sha256(image, interrupted);
                    if let Ok(mut v) = digests.lock() {
                        v.push((image.to_path_buf(), d));
                    }
                }
            });
        }
        run_pool(pending, p.workers, interrupted, |job| {
            events.cell_started(&job.id);
            let row = &p.rows[job.row];
            let plan = &row.plans[job.plan];
            let cell = shared.run_cell(&guests[job.row], row, plan, job.id, &p.decision(row.arch));
            events.cell_finished(&cell);
            (job.idx, cell)
        })
    });
    events.run_ended();
    for (idx, cell) in finished.into_iter().flatten() {
        cells[idx] = Some(cell);
    }
    // Cells an interrupt left unstarted.
    for (idx, slot) in cells.iter_mut().enumerate() {
        if slot.is_none() {
            let (r, pi) = locate(&p.rows, idx);
            let (row, plan) = (&p.rows[r], &p.rows[r].plans[pi]);
            let mut cell = Cell::new(row, plan, cell_id(row, plan));
            cell.detail = "interrupted".into();
            *slot = Some(cell);
        }
    }
    let cells = cells.into_iter().flatten().collect();
    (cells, digests.into_inner().unwrap_or_default())
}

/// What every cell of one run shares.
struct CellRun<'a> {
    req: &'a RunRequest,
    files: &'a [(String, Vec<u8>)],
    names: &'a [String],
    retries: u32,
    timeout: Duration,
    interrupted: &'a AtomicBool,
}

impl CellRun<'_> {
    /// Runs one cell: boots until a verdict or the retries run out, then
    /// writes its evidence.
    fn run_cell(
        &self,
        guest: &Guest,
        row: &Row,
        plan: &Plan,
        id: String,
        accel: &Decision,
    ) -> Cell {
        let started = Instant::now();
        let variant = plan.variant.clone();
        let evidence = self.req.evidence.as_ref().map(|d| {
            d.join(file_component(&row.name))
                .join(file_component(&variant))
        });
        let mut cell = Cell::new(row, plan, id);
        cell.status = CellStatus::InfraError;
        cell.evidence = evidence.clone();
        let cell_timeout = plan
            .timeout
            .or(row.timeout)
            .map(Duration::from_secs)
            .unwrap_or(self.timeout);
        if let Some(why) = &row.unsupported {
            cell.status = CellStatus::Skipped;
            cell.detail = why.clone();
        } else if let Some(why) = &row.unavailable {
            cell.status = CellStatus::InfraError;
            cell.detail = why.clone();
            cell.infra_errors.push(why.clone());
        } else if let Some(problem) = &row.problem {
            cell.status = CellStatus::BootFailure;
            cell.detail = problem.clone();
        } else {
            let image_name = row
                .image
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let mut env = vec![
                ("BOOTPROOF_IMAGE".to_string(), image_name),
                ("BOOTPROOF_VARIANT".to_string(), variant.clone()),
            ];
            env.sort();
            let spec = RunSpec {
                argv: self.req.command.clone(),
                env,
                root_device: row.root_device.clone(),
                root_fstype: row.root_fstype.clone(),
                binaries: self.names.to_vec(),
                timeout_secs: (cell_timeout.as_secs() * 3 / 4).max(10),
            };
            let console_copy = Some(match &evidence {
                Some(d) => {
                    let _ = std::fs::create_dir_all(d);
                    d.join("console.log")
                }
                None => log_path(&format!("run-{}-{variant}", row.name)),
            });
            loop {
                if self.interrupted.load(Ordering::Relaxed) {
                    cell.status = CellStatus::Skipped;
                    cell.detail = "interrupted".into();
                    break;
                }
                cell.attempts += 1;
                let task = Task {
                    run: Some(spec.clone()),
                    files: self.files.to_vec(),
                    keep_console: console_copy.clone(),
                    cpus: plan.cpus,
                    memory_mib: plan.memory_mib,
                    cmdline_append: plan.cmdline.clone(),
                    timeout: Some(cell_timeout),
                    disk_window: row.root_window.clone(),
                    ..Task::new(variant.clone(), plan.platform.clone())
                };
                match launch(guest, &task) {
                    Ok(v) => {
                        cell.take_boot(v, self.req.expect_exit);
                        break;
                    }
                    Err(e) => {
                        cell.infra_errors.push(e.clone());
                        cell.detail = e;
                        if cell.attempts > self.retries {
                            break;
                        }
                    }
                }
            }
        }
        cell.secs = started.elapsed().as_secs_f64();
        if let Some(dir) = &evidence {
            let accel = serde_json::to_value(accel).unwrap_or_default();
            if let Err(e) = write_evidence(dir, &cell, &accel) {
                cell.detail
                    .push_str(&format!(" (evidence not written: {e})"));
            }
        }
        cell
    }
}

impl Cell {
    /// A cell not yet run (`skipped` until it is).
    fn new(row: &Row, plan: &Plan, id: String) -> Cell {
        Cell {
            id,
            name: row.name.clone(),
            image: row.image.clone(),
            arch: row.arch,
            kernel: row.kernel.clone(),
            kernel_version: row.version.clone(),
            variant: plan.variant.clone(),
            platform: plan.platform.clone(),
            required: row.required && plan.required,
            status: CellStatus::Skipped,
            detail: String::new(),
            exit_code: None,
            signal: None,
            timed_out: false,
            stdout: String::new(),
            stderr: String::new(),
            command_secs: None,
            secs: 0.0,
            attempts: 0,
            infra_errors: Vec::new(),
            evidence: None,
            run: None,
        }
    }
}

#[cfg(test)]
mod order_tests {
    use super::{longest_first, Pending};

    #[test]
    fn cells_run_longest_first_and_new_ones_with_the_longest() {
        let job = |idx: usize, id: &str| Pending {
            idx,
            row: 0,
            plan: idx,
            id: id.into(),
        };
        let mut jobs = vec![
            job(0, "a"),
            job(1, "b"),
            job(2, "new"),
            job(3, "c"),
            job(4, "d"),
        ];
        let costs = [("a", 10.0), ("b", 40.0), ("c", 25.0), ("d", 40.0)]
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        longest_first(&mut jobs, &costs);
        let order: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(order, ["b", "new", "d", "c", "a"]);
        // Without a history nothing moves.
        longest_first(&mut jobs, &Default::default());
        assert_eq!(
            jobs.iter().map(|j| j.idx).collect::<Vec<_>>(),
            [1, 2, 4, 3, 0]
        );
    }
}
