//! `verify`: runtime compliance. In agent mode the image's own kernel
//! boots through UEFI firmware with an initramfs bootproof builds in
//! memory (the static agent as `/init`, the kernel modules it needs taken
//! from the image's `/lib/modules/<version>` with their dependencies); in
//! full mode the image boots end to end and a cloud-init or Ignition seed
//! runs the agent (see [`crate::deliver`]). Once per platform variant, in
//! parallel, plus a hotplug boot and a persistence pair; the agent's
//! records become a [`VerifyReport`].

use crate::deliver::{nonce, SeedKind};
use crate::events::Events;
use crate::host::{choose_accel, cores, deadline, default_cpus};
use crate::image::{image_closure, open, pick_entry, resolve_arch};
use crate::launch::{
    all_passed, find_agent, launch, Guest, How, Task, VariantResult, AGENT_MODULES,
};
use crate::memory::MemoryGate;
use crate::mode::{cmdline_needs_agent_mode, Mode, SeedChoice};
use crate::pool::run_pool;
use crate::Error;
use bootproof_agent::{Record, Status};
use bootproof_boot::extract::extract;
use bootproof_boot::modules::Closure;
use bootproof_check::Prediction;
use bootproof_platform::{Arch, Axes, Platform};
use bootproof_vm::accel::{Decision, Probe};
use bootproof_vm::state::{self, RunDir};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The `schema` of a [`VerifyReport`].
pub const VERIFY_SCHEMA: &str = "bootproof.verify/v1";

/// The persistence check's form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Persistence {
    /// Write a variable on one boot, read it on the next (same NVRAM).
    #[default]
    On,
    /// No persistence boots.
    Off,
    /// The second boot gets a fresh store: a negative control that must fail.
    FreshVars,
}

/// What to verify and how.
#[derive(Debug, Clone, Default)]
pub struct VerifyRequest {
    /// The image.
    pub image: PathBuf,
    /// Follow qcow2 backing files.
    pub allow_backing: bool,
    /// The guest architecture (`None`: the image's own).
    pub arch: Option<Arch>,
    /// The platform axes; expanded on the image's architecture.
    pub axes: Axes,
    /// Boot entry N instead of the loader's default (agent mode).
    pub entry: Option<usize>,
    /// Agent or full mode.
    pub mode: Mode,
    /// Full mode's seed.
    pub seed: SeedChoice,
    /// Seconds per boot (default: by accelerator; twice that in full mode).
    pub timeout: Option<u64>,
    /// The persistence pair.
    pub persistence: Persistence,
    /// The hotplug boot.
    pub hotplug: bool,
    /// Agent mode: text appended to the kernel command line.
    pub cmdline_append: Option<String>,
    /// Boots at once (default: the host's cores).
    pub jobs: Option<usize>,
}

/// What `verify` is about to do, for progress displays.
#[derive(Debug, Clone)]
pub struct VerifyPlan {
    /// The image.
    pub image: PathBuf,
    /// Its architecture.
    pub arch: Arch,
    /// `kernel 6.1.0-…`, or `full boot, agent by …`.
    pub booting: String,
    /// Matrix variants.
    pub variants: usize,
    /// Boots at once.
    pub jobs: usize,
    /// KVM or TCG.
    pub accel: Decision,
}

/// The result of `verify` (schema `bootproof.verify/v1`, docs/json.md).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct VerifyReport {
    /// The document's schema id, [`VERIFY_SCHEMA`].
    #[schemars(extend("const" = VERIFY_SCHEMA))]
    pub schema: &'static str,
    /// The image.
    pub image: PathBuf,
    /// Its architecture.
    pub arch: Arch,
    /// Agent or full mode.
    pub mode: Mode,
    /// Full mode's seed.
    pub seed: Option<SeedKind>,
    /// The kernel booted (full mode: as the agent saw it).
    pub kernel_version: Option<String>,
    /// KVM or TCG, and why.
    pub accel: Decision,
    /// The KVM probe, when one ran.
    pub kvm_probe: Option<Probe>,
    /// The agent binary used.
    pub agent: PathBuf,
    /// Agent mode: the modules put in the initramfs.
    pub modules: Option<Closure>,
    /// Every boot, in a fixed order (matrix, hotplug, persistence).
    pub variants: Vec<VariantResult>,
    /// Boots that could not run (infra errors).
    pub errors: Vec<String>,
    /// No error, and every boot passed.
    pub passed: bool,
    /// Ctrl-C or a signal stopped it.
    #[serde(skip)]
    pub interrupted: bool,
    /// Full mode (the image's own boot chain): what `check` predicts of
    /// its firmware boot; each boot's outcome goes to the ledger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prediction: Option<Prediction>,
    /// Milliseconds that `check` took.
    #[serde(skip)]
    pub check_ms: f64,
}

impl VerifyReport {
    /// The exit status `bootproof verify` documents: interrupted, an infra
    /// error, every check passed, or a failure.
    pub fn exit_status(&self) -> u8 {
        if self.interrupted {
            crate::exit::INTERRUPTED
        } else if !self.errors.is_empty() {
            crate::exit::ERROR
        } else if self.passed {
            crate::exit::OK
        } else {
            crate::exit::FAIL
        }
    }

    /// Every check id the boots reported, in first-seen order.
    pub fn check_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = Vec::new();
        for v in &self.variants {
            for r in &v.records {
                if let Record::Check { id, .. } = r {
                    if !ids.contains(&id.as_str()) {
                        ids.push(id);
                    }
                }
            }
        }
        ids
    }
}

/// One unit of work for the boot pool.
enum Job {
    /// A matrix variant.
    Variant(Platform),
    /// The hotplug boot.
    Hotplug,
    /// The persistence pair (two boots, in order).
    Persistence,
}

/// Verifies one image. `interrupted` stops it (running guests are shut
/// down; the report says `interrupted`).
pub fn verify(
    req: &VerifyRequest,
    events: &dyn Events,
    interrupted: &AtomicBool,
) -> Result<VerifyReport, Error> {
    let img = open(&req.image, req.allow_backing)?;
    let arch = resolve_arch(&img, req.arch)?;
    let platforms = req.axes.platforms(arch);
    let agent_path = find_agent(arch)?;
    let agent = std::fs::read(&agent_path)?;
    let base = state::base_dir();
    state::clean_stale(&base);
    let work = RunDir::create(&base)?;
    let full = req.mode == Mode::Full;
    if full && req.cmdline_append.is_some() {
        return Err(cmdline_needs_agent_mode());
    }
    let started = std::time::Instant::now();
    let prediction = full.then(|| bootproof_check::check(&img, arch).prediction);
    let check_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (how, closure, version) = if full {
        let seed = req.seed.resolve(&img)?;
        (How::Full { seed }, None, None)
    } else {
        let (kernel, closure, version) = agent_kernel(&img, arch, req.entry, work.path())?;
        let how = How::Agent {
            kernel,
            cmdline_append: req.cmdline_append.clone(),
        };
        (how, Some(closure), Some(version))
    };
    let (decision, probe) = choose_accel(arch);
    let timeout = match (req.timeout, full) {
        (None, true) => deadline(None, decision.accel) * 2,
        (t, _) => deadline(t, decision.accel),
    };
    let jobs = req.jobs.unwrap_or_else(cores).max(1);
    // One pool for every boot: the persistence pair (two boots in order,
    // so one job, and the longest: first), the hotplug boot and the
    // matrix run side by side; results come back in a fixed order.
    let job_list = jobs_for(req, &platforms);
    events.verify_started(&VerifyPlan {
        image: req.image.clone(),
        arch,
        booting: match (&how, &version) {
            (How::Full { seed }, _) => format!("full boot, agent by {}", seed.describe()),
            (_, Some(v)) => format!("kernel {v}"),
            _ => String::new(),
        },
        variants: platforms.len(),
        jobs: jobs.min(job_list.len()),
        accel: decision.clone(),
    });
    let memory = MemoryGate::for_host();
    let guest = Guest {
        image: &req.image,
        disk: crate::image::backing_disk(&img.image),
        arch,
        agent: &agent,
        how: &how,
        closure: closure.as_ref(),
        version: version.as_deref(),
        cpus: default_cpus(),
        decision: decision.clone(),
        timeout,
        base,
        interrupted,
        memory: &memory,
    };
    let fresh = req.persistence == Persistence::FreshVars;
    let order: Vec<usize> = job_list.iter().map(|(i, _)| *i).collect();
    let jobs_only: Vec<Job> = job_list.into_iter().map(|(_, j)| j).collect();
    let results = run_pool(jobs_only, jobs, interrupted, |job| {
        let r = match job {
            Job::Variant(platform) => {
                launch(&guest, &Task::new(platform.name(arch), platform)).map(|v| vec![v])
            }
            Job::Hotplug => hotplug(&guest).map(|v| vec![v]),
            Job::Persistence => persistence(&guest, work.path(), fresh),
        };
        match &r {
            Ok(vs) => vs
                .iter()
                .for_each(|v| events.variant_finished(&v.name, Ok(v.passed))),
            Err(e) => events.variant_finished("boot", Err(e)),
        }
        r
    });
    let (done, errors) = in_report_order(order, results);
    let passed = errors.is_empty() && done.iter().all(|v| v.passed);
    // Full mode: the kernel the image booted, as the agent saw it.
    let kernel_version = version.or_else(|| {
        done.iter().flat_map(|v| &v.records).find_map(|r| match r {
            Record::Hello { kernel, .. } => Some(kernel.clone()),
            _ => None,
        })
    });
    Ok(VerifyReport {
        schema: VERIFY_SCHEMA,
        image: req.image.clone(),
        arch,
        mode: req.mode,
        seed: match how {
            How::Full { seed } => Some(seed),
            How::Agent { .. } => None,
        },
        kernel_version,
        accel: decision,
        kvm_probe: probe,
        agent: agent_path,
        modules: closure,
        variants: done,
        errors,
        passed,
        interrupted: interrupted.load(Ordering::Relaxed),
        prediction,
        check_ms,
    })
}

/// The boots of one verify, each with its place in the report: the
/// matrix, then hotplug, then persistence. The persistence pair (two boots
/// in order, so one job, and the longest) is queued first.
fn jobs_for(req: &VerifyRequest, platforms: &[Platform]) -> Vec<(usize, Job)> {
    let n = platforms.len();
    let mut jobs: Vec<(usize, Job)> = Vec::new();
    if req.persistence != Persistence::Off {
        jobs.push((n + 1, Job::Persistence));
    }
    if req.hotplug {
        jobs.push((n, Job::Hotplug));
    }
    jobs.extend(platforms.iter().cloned().map(Job::Variant).enumerate());
    jobs
}

/// The boots in report order, and the errors of jobs that could not run
/// (jobs an interrupt left unstarted are neither).
fn in_report_order(
    order: Vec<usize>,
    results: Vec<Option<Result<Vec<VariantResult>, String>>>,
) -> (Vec<VariantResult>, Vec<String>) {
    let mut keyed: Vec<(usize, Result<Vec<VariantResult>, String>)> = order
        .into_iter()
        .zip(results)
        .filter_map(|(i, r)| Some((i, r?)))
        .collect();
    keyed.sort_by_key(|(i, _)| *i);
    let (mut done, mut errors) = (Vec::new(), Vec::new());
    for (_, r) in keyed {
        match r {
            Ok(v) => done.extend(v),
            Err(e) => errors.push(e),
        }
    }
    (done, errors)
}

/// Agent mode: the image's kernel extracted into `work`, the closure of
/// the modules the agent needs, and the kernel's release.
fn agent_kernel(
    img: &bootproof_inspect::OpenedImage,
    arch: Arch,
    entry: Option<usize>,
    work: &Path,
) -> Result<(PathBuf, Closure, String), Error> {
    let picked = pick_entry(img, arch, entry)?;
    let manifest =
        extract(img, &picked.chain, &picked.entry, &work.join("kernel")).map_err(|e| {
            Error::with_hint(e, "`bootproof extract IMAGE -o DIR` shows what would boot")
        })?;
    let version = manifest.kernel_version.clone().ok_or_else(|| {
        Error::with_hint(
            "the kernel's version is unknown, so its modules cannot be found",
            "`bootproof extract --json IMAGE -o DIR` shows what was found",
        )
    })?;
    let why = format!("no /lib/modules/{version} in the image");
    let closure = image_closure(img, &version, AGENT_MODULES, &why);
    Ok((work.join("kernel/kernel"), closure, version))
}

/// The persistence pair: boot 1 writes bootproof's variable into a kept
/// NVRAM; the host reads the store file; boot 2 (aarch64: on the other GIC
/// version, as vmspec-boot did) reads it back.
fn persistence(ctx: &Guest, work: &Path, fresh: bool) -> Result<Vec<VariantResult>, String> {
    let value = format!("bootproof-{}", nonce());
    let nv = work.join("persist-vars.fd");
    let (first, second) = (
        Platform::default(),
        Platform {
            gic: *ctx.arch.info().gic_versions.last().unwrap_or(&3),
            ..Platform::default()
        },
    );
    let gic = |p: &Platform| {
        if !ctx.arch.info().gic_versions.is_empty() {
            format!(" gic{}", p.gic)
        } else {
            String::new()
        }
    };
    let mut w = launch(
        ctx,
        &Task {
            nvram: Some(nv.clone()),
            persist_write: Some(value.clone()),
            ..Task::new(format!("persist-w{}", gic(&first)), first)
        },
    )?;
    let at = w.records.len().saturating_sub(1);
    w.records.insert(at, nvram_on_host(&nv, &value));
    w.passed = all_passed(&w.records);
    let read_from = if fresh {
        work.join("fresh-vars.fd")
    } else {
        nv
    };
    let r = launch(
        ctx,
        &Task {
            nvram: Some(read_from),
            persist_expect: Some(value),
            ..Task::new(format!("persist-r{}", gic(&second)), second)
        },
    )?;
    Ok(vec![w, r])
}

/// The check `uefi.nvram-on-host`: the variable the first boot wrote, read
/// from the store file as the firmware left it.
fn nvram_on_host(nv: &Path, value: &str) -> Record {
    use bootproof_agent::{PERSIST_VARIABLE, VENDOR_GUID};
    let found = std::fs::read(nv)
        .map_err(|e| e.to_string())
        .and_then(|b| bootproof_vm::nvram::variables(&b).map_err(|e| e.to_string()));
    let (status, evidence) = match &found {
        Ok(vars) => match vars
            .iter()
            .find(|v| v.name == PERSIST_VARIABLE && v.guid == VENDOR_GUID)
        {
            Some(v) if v.data == value.as_bytes() => (
                Status::Pass,
                format!(
                    "{PERSIST_VARIABLE}-{VENDOR_GUID} = {value:?} in the NVRAM file (attributes {:#x}; {} variables)",
                    v.attributes,
                    vars.len()
                ),
            ),
            Some(v) => (
                Status::Fail,
                format!("{PERSIST_VARIABLE} holds {:?}", String::from_utf8_lossy(&v.data)),
            ),
            None => (
                Status::Fail,
                format!("{PERSIST_VARIABLE} not in the NVRAM file ({} variables)", vars.len()),
            ),
        },
        Err(e) => (Status::Fail, format!("NVRAM file: {e}")),
    };
    Record::Check {
        id: "uefi.nvram-on-host".into(),
        status,
        evidence,
    }
}

/// The hotplug check: a boot with an empty PCIe root port; when the agent
/// says it waits, bootproof adds a disk over QMP and the agent must see it.
fn hotplug(ctx: &Guest) -> Result<VariantResult, String> {
    launch(
        ctx,
        &Task {
            hotplug: true,
            ..Task::new("hotplug".into(), Platform::default())
        },
    )
}
