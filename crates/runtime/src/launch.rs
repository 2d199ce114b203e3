//! Launching one guest with the agent: the engine's unit of work. A
//! [`Guest`] is what every boot of one image shares (kernel or seed,
//! modules, accelerator, deadline); a [`Task`] is one boot of it (platform,
//! NVRAM, what the agent writes or runs). [`launch`] builds the agent's
//! initramfs or seed, prepares QEMU, supervises it, reads the agent's
//! records from the virtio-serial port or the console, and returns a
//! [`VariantResult`]. `verify` and `run` are pools of such launches.

use crate::deliver::{self, nonce, SeedKind};
use crate::host::cache_dir;
use crate::memory::MemoryGate;
use crate::Error;
use bootproof_agent::{AgentConfig, Record, RecordReader, Status};
use bootproof_boot::modules::Closure;
use bootproof_platform::{Arch, Platform};
use bootproof_vm::accel;
use bootproof_vm::machine::DirectKernel;
use bootproof_vm::prepare::{prepare, BackingDisk, FirmwareChoice, VmRequest};
use bootproof_vm::state::RunDir;
use bootproof_vm::supervise::{self, BootOutcome, BootResult, WatchOptions};
use serde::Serialize;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Modules the agent needs when the kernel has them as modules.
pub const AGENT_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_mmio",
    "virtio_blk",
    "virtio_console",
    "virtio_rng",
    "efivarfs",
];
/// Finds the agent binary for `arch` without the user naming it:
/// `$BOOTPROOF_AGENT_DIR/<arch>/bootproof-agent`, `bootproof-agent-<arch>`
/// beside this executable, `../lib/bootproof/agents/<arch>/` from it (where
/// the Debian package installs them), or the build tree's
/// `target/<triple>/agent/`.
pub fn find_agent(arch: Arch) -> Result<PathBuf, Error> {
    let triple = arch.info().agent_target;
    let mut tried = Vec::new();
    if let Some(d) = std::env::var_os("BOOTPROOF_AGENT_DIR") {
        tried.push(PathBuf::from(d).join(arch.name()).join("bootproof-agent"));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            tried.push(dir.join(format!("bootproof-agent-{arch}")));
            // Installed: /usr/bin/bootproof, /usr/lib/bootproof/agents/<arch>/.
            let installed = dir.join("../lib/bootproof/agents").join(arch.name());
            tried.push(installed.join("bootproof-agent"));
            for up in dir.ancestors().take(4) {
                tried.push(up.join(triple).join("agent/bootproof-agent"));
                tried.push(up.join("target").join(triple).join("agent/bootproof-agent"));
            }
        }
    }
    tried.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        Error::with_hint(
            format!(
                "no bootproof-agent for {arch} (looked in {})",
                tried
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "build it with scripts/build-agent.sh, or set BOOTPROOF_AGENT_DIR",
        )
    })
}

/// One variant's result.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VariantResult {
    /// Short name (`gic3 acpi-on pci`).
    pub name: String,
    /// The platform.
    pub platform: Platform,
    /// Whether the agent reported and every check passed.
    pub passed: bool,
    /// The agent's records.
    pub records: Vec<Record>,
    /// Where they were read: `virtio-serial` or `console`.
    pub channel: String,
    /// Seconds from QEMU's start to the agent's first record.
    pub first_record_secs: Option<f64>,
    /// Seconds from QEMU's start to the agent's last record.
    pub done_secs: Option<f64>,
    /// How the boot ended.
    pub boot: BootResult,
    /// QEMU's arguments (without the binary), and the binary.
    pub qemu: Vec<String>,
    /// The firmware used.
    pub firmware: bootproof_vm::prepare::FirmwareReport,
    /// Why earlier boots of this task were not the verdict (a kernel hung
    /// under TCG, [`bootproof_vm::hang::retry_reason`]); empty on a first try.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retried: Vec<String>,
}

impl VariantResult {
    /// The status of check `id` in this boot, when the agent reported it.
    pub fn status(&self, id: &str) -> Option<Status> {
        self.records.iter().find_map(|r| match r {
            Record::Check { id: i, status, .. } if i == id => Some(*status),
            _ => None,
        })
    }

    /// The failed checks: (id, evidence).
    pub fn failures(&self) -> impl Iterator<Item = (&str, &str)> {
        self.records.iter().filter_map(|r| match r {
            Record::Check {
                id,
                status: Status::Fail,
                evidence,
            } => Some((id.as_str(), evidence.as_str())),
            _ => None,
        })
    }

    /// Whether the agent finished (sent its last record).
    pub fn finished(&self) -> bool {
        self.records
            .iter()
            .any(|r| matches!(r, Record::Done { .. }))
    }
}

pub fn outcome_words(outcome: &BootOutcome) -> String {
    let v = serde_json::to_value(outcome).unwrap_or_default();
    let mut words = v["outcome"].as_str().unwrap_or("unknown").to_string();
    for key in ["stage", "last"] {
        if let Some(stage) = v[key]["stage"].as_str().or(v[key].as_str()) {
            words.push_str(&format!(" at {stage}"));
        }
    }
    for key in ["cause", "reason", "message"] {
        if let Some(why) = v[key].as_str() {
            words.push_str(&format!(": {why}"));
        }
    }
    if let (Some(secs), Some(after)) = (v["silent_secs"].as_u64(), v["after"].as_str()) {
        words.push_str(&format!(
            ": nothing on the console for {secs}s after \"{after}\""
        ));
    }
    words
}

/// Whether a variant's records show the agent finished with no failure.
pub fn all_passed(records: &[Record]) -> bool {
    records.iter().any(|r| matches!(r, Record::Done { .. }))
        && !records.iter().any(|r| {
            matches!(
                r,
                Record::Check {
                    status: Status::Fail,
                    ..
                }
            )
        })
}

/// Hotplugs the blank 16 MiB disk QEMU opened at start (block node
/// `hotplug0`) as a virtio disk in root port `rp1`, over QMP.
pub(crate) fn hotplug_disk(qmp: &Path) -> Result<(), String> {
    let mut q =
        bootproof_vm::qmp::Qmp::connect(qmp, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    q.execute(
        "device_add",
        json!({ "driver": "virtio-blk-pci", "bus": "rp1", "drive": "hotplug0", "id": "hotplug-disk0" }),
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// What every boot of one image shares.
pub struct Guest<'a> {
    /// The image file, as the user named it.
    pub image: &'a Path,
    /// What QEMU opens read-only under an overlay.
    pub disk: BackingDisk,
    /// Guest architecture.
    pub arch: Arch,
    /// The agent binary for `arch`.
    pub agent: &'a [u8],
    /// How the agent gets in.
    pub how: &'a How,
    /// Agent mode: the modules to load and the kernel's version.
    pub closure: Option<&'a Closure>,
    /// The kernel's release (agent mode).
    pub version: Option<&'a str>,
    /// vCPUs per boot, unless a task says otherwise.
    pub cpus: u32,
    /// KVM or TCG, and why.
    pub decision: accel::Decision,
    /// Each boot's deadline, unless a task says otherwise.
    pub timeout: Duration,
    /// Where run directories are made.
    pub base: PathBuf,
    /// Set to stop: running guests are shut down.
    pub interrupted: &'a AtomicBool,
    /// The memory budget each boot draws its guest's RAM from while QEMU runs.
    pub memory: &'a MemoryGate,
}

/// How the agent gets into the guest.
pub enum How {
    /// The image's kernel (extracted here) with bootproof's initramfs.
    Agent {
        /// The extracted kernel.
        kernel: PathBuf,
        /// Added to the kernel command line.
        cmdline_append: Option<String>,
    },
    /// The image boots end to end; a seed runs the agent.
    Full {
        /// Which seed.
        seed: SeedKind,
    },
}

/// One boot: a platform, and for the persistence check, a kept NVRAM and
/// what the agent writes or expects.
pub struct Task {
    /// The boot's name in reports (`gic3 acpi-on pci`, `hotplug`).
    pub name: String,
    /// The platform variant.
    pub platform: Platform,
    /// A kept NVRAM file (created from the template when missing).
    pub nvram: Option<PathBuf>,
    /// The agent writes this value to bootproof's persistence variable.
    pub persist_write: Option<String>,
    /// The agent expects this value in the persistence variable.
    pub persist_expect: Option<String>,
    /// The agent waits for a hotplugged disk; bootproof adds one over QMP.
    pub hotplug: bool,
    /// `bootproof run`: the command for the agent to run instead of the checks.
    pub run: Option<bootproof_agent::RunSpec>,
    /// Extra initramfs files (`bootproof run --binary`), path and contents.
    pub files: Vec<(String, Vec<u8>)>,
    /// Copy the console log here, whatever the outcome.
    pub keep_console: Option<PathBuf>,
    /// vCPUs, when not the run's default.
    pub cpus: Option<u32>,
    /// Memory in MiB [default: 1024].
    pub memory_mib: Option<u64>,
    /// More kernel command line for this boot (agent mode).
    pub cmdline_append: Option<String>,
    /// This boot's deadline, when not the run's.
    pub timeout: Option<Duration>,
    /// A read-only window of the image's disk for the guest (a root on an
    /// LVM2 logical volume, [`bootproof_agent::ROOT_WINDOW_SERIAL`]).
    pub disk_window: Option<bootproof_vm::prepare::DiskWindow>,
}

impl Task {
    /// A plain boot of `platform`: fresh NVRAM, checks only.
    pub fn new(name: String, platform: Platform) -> Task {
        Task {
            name,
            platform,
            nvram: None,
            persist_write: None,
            persist_expect: None,
            hotplug: false,
            run: None,
            files: Vec::new(),
            keep_console: None,
            cpus: None,
            memory_mib: None,
            cmdline_append: None,
            timeout: None,
            disk_window: None,
        }
    }
}

/// How the agent reaches one boot: a kernel with bootproof's initramfs,
/// or a seed for the image's own boot.
fn delivery(
    ctx: &Guest,
    task: &Task,
    cfg: &AgentConfig,
    nonce: &str,
    dir: &Path,
) -> Result<(Option<DirectKernel>, deliver::SeedAttachment), String> {
    match ctx.how {
        How::Agent {
            kernel,
            cmdline_append,
        } => {
            let initrd = dir.join("agent.cpio");
            let empty = Closure::default();
            let cpio = deliver::agent_initramfs(
                ctx.agent,
                ctx.closure.unwrap_or(&empty),
                ctx.version.unwrap_or_default(),
                cfg,
                nonce,
                &task.files,
            );
            std::fs::write(&initrd, cpio).map_err(|e| e.to_string())?;
            let cmdline = [
                Some(format!("console={} rdinit=/init", ctx.arch.console())),
                cmdline_append.clone(),
                task.cmdline_append.clone(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
            let kernel = DirectKernel {
                kernel: kernel.clone(),
                initrd: Some(initrd),
                cmdline,
            };
            Ok((Some(kernel), deliver::SeedAttachment::default()))
        }
        How::Full { seed } => {
            let attached = deliver::write_seed(*seed, dir, ctx.agent, cfg, nonce, &task.files)
                .map_err(|e| format!("{}: writing the seed: {e}", task.name))?;
            Ok((None, attached))
        }
    }
}

/// The agent's records: from the virtio-serial port (no console noise
/// reaches it) when the agent finished there, with the console's own
/// records from before the port opened (hello, modules); else the
/// console's. Returns the records and the channel they came from.
fn merge_records(
    console: &RecordReader,
    port_file: &Path,
    nonce: &str,
) -> (Vec<Record>, &'static str) {
    let mut port = RecordReader::new(nonce);
    feed_file(&mut port, port_file);
    port.feed(b"\n");
    if !port.done() {
        return (console.records().to_vec(), "console");
    }
    let mut r: Vec<Record> = console
        .records()
        .iter()
        .take_while(|r| !matches!(r, Record::Check { id, .. } if id == "agent.virtio-serial"))
        .cloned()
        .collect();
    r.extend(port.records().iter().cloned());
    (r, "virtio-serial")
}

/// Most bytes of the agent's port file read: records past the reader's
/// own limits are dropped anyway, so a guest that floods the port costs
/// bounded memory and time.
const MAX_PORT_FILE: u64 = 64 << 20;

/// Feeds a file to a record reader in chunks, at most [`MAX_PORT_FILE`].
fn feed_file(reader: &mut RecordReader, file: &Path) {
    use std::io::Read;
    let Ok(f) = std::fs::File::open(file) else {
        return;
    };
    let mut f = f.take(MAX_PORT_FILE);
    let mut buf = vec![0u8; 64 << 10];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        reader.feed(&buf[..n]);
    }
}

/// The run directory (and its log) goes away: keeps the console log where
/// the task asks, or in the log cache when the boot failed.
fn keep_console_log(boot: &mut BootResult, task: &Task, passed: bool, nonce: &str) {
    let keep = match &task.keep_console {
        Some(keep) => keep.clone(),
        None if !passed => {
            let name = format!("verify-{}-{nonce}.log", task.name.replace(' ', "-"));
            let keep = cache_dir().join("logs").join(name);
            let _ = std::fs::create_dir_all(keep.parent().unwrap_or(Path::new(".")));
            keep
        }
        None => return,
    };
    if std::fs::copy(&boot.console_log, &keep).is_ok() {
        boot.console_log = keep;
    }
}

/// What the console hook learns while the guest runs.
struct Watch<'a> {
    reader: RecordReader,
    started: std::time::Instant,
    first_record_secs: Option<f64>,
    done_secs: Option<f64>,
    /// The hotplug request, once made.
    plugged: Option<Result<(), String>>,
    hotplug: Option<&'a Path>,
}

impl Watch<'_> {
    /// Console bytes arrived: records, their timing, and the hotplug
    /// request once the agent says it waits.
    fn feed(&mut self, bytes: &[u8]) {
        self.reader.feed(bytes);
        let now = || Some(self.started.elapsed().as_secs_f64());
        if self.first_record_secs.is_none() && !self.reader.records().is_empty() {
            self.first_record_secs = now();
        }
        if self.done_secs.is_none() && self.reader.done() {
            self.done_secs = now();
        }
        if let Some(qmp) = self.hotplug {
            if self.plugged.is_none()
                && self
                    .reader
                    .records()
                    .iter()
                    .any(|r| matches!(r, Record::Waiting { .. }))
            {
                self.plugged = Some(hotplug_disk(qmp));
            }
        }
    }
}

/// Boots one task of a guest and collects the agent's records. `Err` is
/// an infra error: the VM could not run (retryable), not a verdict. A
/// kernel that hangs under TCG is booted once more
/// ([`bootproof_vm::hang`]); the result keeps why in `retried`.
pub fn launch(ctx: &Guest, task: &Task) -> Result<VariantResult, String> {
    let tcg = ctx.decision.accel == accel::Accel::Tcg;
    let first = launch_once(ctx, task)?;
    match bootproof_vm::hang::retry_reason(&first.boot.outcome, tcg) {
        Some(why) if !ctx.interrupted.load(std::sync::atomic::Ordering::Relaxed) => {
            let mut again = launch_once(ctx, task)?;
            again.retried.push(why);
            Ok(again)
        }
        _ => Ok(first),
    }
}

fn launch_once(ctx: &Guest, task: &Task) -> Result<VariantResult, String> {
    let platform = &task.platform;
    let cpus = task.cpus.unwrap_or(ctx.cpus);
    let run = RunDir::create(&ctx.base).map_err(|e| e.to_string())?;
    let n = nonce();
    let cfg = AgentConfig {
        arch: ctx.arch,
        cpus,
        gic: platform.gic,
        acpi: platform.acpi,
        transport: platform.transport,
        aia: platform.aia,
        persist_write: task.persist_write.clone(),
        persist_expect: task.persist_expect.clone(),
        hotplug: task.hotplug,
        virtio_serial: true,
        run: task.run.clone(),
    };
    let (kernel, seed) = delivery(ctx, task, &cfg, &n, run.path())?;
    let req = VmRequest {
        arch: ctx.arch,
        disk: ctx.disk.clone(),
        firmware: FirmwareChoice::Auto,
        secure_boot: Some(false),
        platform: platform.clone(),
        kernel,
        cpus,
        memory_mib: task.memory_mib.unwrap_or(1024),
        accel: ctx.decision.clone(),
        network: false,
        cache_dir: Some(cache_dir()),
        nvram: task.nvram.clone(),
        // Every PCI variant gets one root port: the agent checks it is
        // hotplug-capable; the hotplug task fills it.
        hotplug_ports: 1,
        agent_channel: Some(run.path().join("agent.out")),
        ready_port: false,
        seed_disk: seed.disk,
        fw_cfg: seed.fw_cfg,
        hotplug_disk_bytes: task.hotplug.then_some(16 << 20),
        disk_window: task.disk_window.clone(),
        run_as: crate::host::qemu_run_as().map_err(|e| e.to_string())?,
    };
    let prepared = prepare(&req, &run).map_err(|e| e.to_string())?;
    // Prepared without memory held: the guest's share is taken only now.
    let Some(_share) = ctx.memory.acquire(req.memory_mib, ctx.interrupted) else {
        return Err(format!(
            "{}: interrupted while waiting for memory",
            task.name
        ));
    };
    let opts = WatchOptions {
        deadline: task.timeout.unwrap_or(ctx.timeout),
        until: None,
        console_log: run.path().join("console.log"),
        max_log_bytes: 16 << 20,
        // The agent (full mode: run by cloud-init after the prompt) ends it.
        end_after_login: None,
    };
    let mut watch = Watch {
        reader: RecordReader::new(&n),
        started: std::time::Instant::now(),
        first_record_secs: None,
        done_secs: None,
        plugged: None,
        hotplug: task.hotplug.then_some(prepared.spec.qmp_socket.as_path()),
    };
    let mut boot = supervise::boot(
        &prepared.qemu.binary,
        &prepared.spec,
        &run,
        &opts,
        ctx.interrupted,
        supervise::Hooks {
            on_stage: &mut |_| {},
            on_console: &mut |b| watch.feed(b),
        },
    )
    .map_err(|e| e.to_string())?;
    if let BootOutcome::InfraError { message } = &boot.outcome {
        return Err(format!("{}: {message}", task.name));
    }
    let (mut records, channel) = merge_records(&watch.reader, &run.path().join("agent.out"), &n);
    if let Some(Err(e)) = &watch.plugged {
        let at = records.len().saturating_sub(1);
        records.insert(
            at,
            Record::Check {
                id: "pci.hotplug-request".into(),
                status: Status::Fail,
                evidence: format!("QMP device_add failed: {e}"),
            },
        );
    }
    let passed = all_passed(&records);
    keep_console_log(&mut boot, task, passed, &n);
    Ok(VariantResult {
        name: task.name.clone(),
        platform: platform.clone(),
        passed,
        records,
        channel: channel.into(),
        first_record_secs: watch.first_record_secs,
        done_secs: watch.done_secs,
        boot,
        qemu: std::iter::once(prepared.qemu.binary.display().to_string())
            .chain(prepared.spec.qemu_args())
            .collect(),
        firmware: prepared.firmware.clone(),
        retried: Vec::new(),
    })
}
