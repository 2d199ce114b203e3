//! `bootproof verify`: runtime compliance. In agent mode the image's own
//! kernel boots through UEFI firmware with an initramfs bootproof builds in
//! memory (the static agent as `/init`, the kernel modules it needs taken
//! from the image's `/lib/modules/<version>` with their dependencies); in
//! full mode the image boots end to end and a cloud-init or Ignition seed
//! runs the agent (see [`crate::deliver`]). Once per platform variant, in
//! parallel; the agent's records become a matrix.

use crate::boot::{cache_dir, choose_accel, deadline, interrupt_flag, EXIT_INTERRUPTED};
use crate::deliver::{self, nonce, SeedKind};
use crate::extract::{pick_entry, resolve_arch};
use crate::style::Style;
use crate::{open, CliError, ImageArgs, OutputArgs, EXIT_ERROR, EXIT_FAIL, EXIT_OK};
use bootproof_agent::{AgentConfig, Record, RecordReader, Status};
use bootproof_boot::extract::extract;
use bootproof_boot::modules::{self, Closure, InImage};
use bootproof_image::ReadAt;
use bootproof_inspect::OpenedImage;
use bootproof_vm::accel::{self, Accel};
use bootproof_vm::machine::{DirectKernel, Platform, Transport};
use bootproof_vm::prepare::{prepare, FirmwareChoice, VmRequest};
use bootproof_vm::state::{self, RunDir};
use bootproof_vm::supervise::{self, BootOutcome, BootResult, WatchOptions};
use serde::Serialize;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

pub const AFTER_HELP: &str = "\
Each variant boots the image's default kernel (as `bootproof extract` finds
it) through UEFI firmware with an initramfs bootproof builds: its static
agent as /init plus the virtio and efivarfs modules from the image's own
/lib/modules/<version> (dependencies from modules.dep or each module's
modinfo). No image userspace runs. The agent checks UEFI and its runtime
services, EFI variables, the RTC, ACPI tables (presence, lengths and
checksums, the SBBR set, HW-reduced FADT, SPCR naming the console UART,
MCFG and IORT where PCI and an ITS are) or the device tree, GIC version,
arch timer, PSCI, the EFI RTC, the PL011 console, CPUs online, PCI host bridge and a
hotplug-capable root port, virtio binding and transport, and a kernel log
free of oops/BUG/WARNING, then powers off. Records travel over a
virtio-serial port and the console, framed with a per-run nonce.

Two more boots follow the matrix: hotplug (bootproof adds a virtio disk to
an empty PCIe root port over QMP while the agent waits; the agent must see
it) and persistence (an EFI variable written on one boot is read from the
NVRAM file on the host and read back by a second boot on the same NVRAM,
aarch64: with the other GIC version).

Full mode (--mode full) boots the image end to end instead: firmware, the
removable path, the image's boot chain, kernel and init. A seed delivers
the agent: a cloud-init NoCloud volume (FAT labelled CIDATA, attached
read-only; its runcmd installs and runs the agent) or, for CoreOS-style
images, an Ignition config in fw_cfg opt/com.coreos/config (--seed; auto
picks from what the image has). Full boots take minutes under TCG, not
seconds: the default timeout doubles.

Variants (aarch64): --variants gic=2,3 acpi=on,off transport=pci,mmio
(default: every combination). x86_64 has one variant (q35, ACPI, PCI).

Exit status: 0 every check passed on every variant; 1 a check failed or a
variant did not report; 2 usage error or the VMs could not run; 130
interrupted.

Examples:
  bootproof verify disk.qcow2
  bootproof verify --variants gic=3 acpi=on,off --json disk.raw
  bootproof verify --junit disk.qcow2 > verify.xml
  bootproof verify --mode full --no-hotplug --persistence off cloud.qcow2
  bootproof verify --variants gic=3 acpi=on transport=pci \\
      --cmdline-append initcall_blacklist=pl011_init disk.raw   # a kernel without PL011";

/// Everything `bootproof verify` takes.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Disk image: raw, or qcow2 (v2/v3; deflate- or zstd-compressed clusters).
    #[arg(value_name = "IMAGE")]
    pub image: Option<PathBuf>,
    /// Follow qcow2 backing files.
    #[arg(long)]
    pub allow_backing: bool,
    /// Guest architecture: auto (from the removable path or root partition type), aarch64, x86_64.
    #[arg(long, default_value = "auto")]
    pub arch: String,
    /// Platform axes, each AXIS=V1,V2 (gic=2,3 acpi=on,off transport=pci,mmio); unnamed axes take every value. A word without `=` after it is the image.
    #[arg(long, num_args = 1.., value_name = "AXIS=VALUES")]
    pub variants: Vec<String>,
    /// Boot entry N (0 = first) instead of the loader's default.
    #[arg(long, value_name = "N")]
    pub entry: Option<usize>,
    /// agent: the image's kernel with bootproof's initramfs (seconds per
    /// variant); full: the image boots end to end and a seed runs the agent.
    #[arg(long, default_value = "agent", value_parser = ["agent", "full"])]
    pub mode: String,
    /// Full mode's seed: auto (from the image: cloud-init or Ignition),
    /// nocloud, ignition.
    #[arg(long, default_value = "auto", value_parser = ["auto", "nocloud", "ignition"])]
    pub seed: String,
    /// Seconds each variant may take [default: 60 with KVM, 300 with TCG; twice that in full mode].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// The persistence check: boot once writing an EFI variable, read the
    /// NVRAM file on the host, boot again on the same NVRAM (aarch64: the
    /// other GIC version) and read it back. `fresh-vars` gives the second
    /// boot a fresh store, as firmware without persistent variables would (a
    /// negative control that must fail).
    #[arg(long, default_value = "on", value_parser = ["on", "off", "fresh-vars"])]
    pub persistence: String,
    /// Skip the hotplug check (a boot in which bootproof adds a virtio disk
    /// to an empty PCIe root port over QMP and the agent must see it).
    #[arg(long)]
    pub no_hotplug: bool,
    /// Agent mode: text appended to the kernel command line (e.g.
    /// `initcall_blacklist=efi_rtc_driver_init` to see a kernel without its
    /// EFI RTC driver fail `rtc.efi`).
    #[arg(long, value_name = "TEXT")]
    pub cmdline_append: Option<String>,
    /// Variants booted at once [default: the number of host cores].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Print a JUnit XML report (a suite per variant, a case per check) for CI viewers.
    #[arg(long, conflicts_with = "json")]
    pub junit: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Modules the agent needs when the kernel has them as modules.
pub(crate) const AGENT_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_mmio",
    "virtio_blk",
    "virtio_console",
    "virtio_rng",
    "efivarfs",
];

/// Parses `--variants` into platforms (every combination).
pub(crate) fn variants(arch: &str, axes: &[String]) -> Result<Vec<Platform>, CliError> {
    let mut gic = vec![3u8, 2];
    let mut acpi = vec![true, false];
    let mut transport = vec![Transport::Pci, Transport::Mmio];
    for a in axes {
        let (k, v) = a.split_once('=').ok_or_else(|| {
            CliError::with_hint(
                format!("bad variant axis `{a}`"),
                "write AXIS=V1,V2, e.g. gic=2,3",
            )
        })?;
        let vals: Vec<&str> = v.split(',').filter(|s| !s.is_empty()).collect();
        let bad = || {
            CliError::with_hint(
                format!("bad values in `{a}`"),
                "gic=2,3 acpi=on,off transport=pci,mmio",
            )
        };
        match k {
            "gic" => {
                gic = vals
                    .iter()
                    .map(|x| match *x {
                        "2" => Ok(2),
                        "3" => Ok(3),
                        _ => Err(bad()),
                    })
                    .collect::<Result<_, _>>()?
            }
            "acpi" => {
                acpi = vals
                    .iter()
                    .map(|x| match *x {
                        "on" => Ok(true),
                        "off" => Ok(false),
                        _ => Err(bad()),
                    })
                    .collect::<Result<_, _>>()?
            }
            "transport" => {
                transport = vals
                    .iter()
                    .map(|x| match *x {
                        "pci" => Ok(Transport::Pci),
                        "mmio" => Ok(Transport::Mmio),
                        _ => Err(bad()),
                    })
                    .collect::<Result<_, _>>()?
            }
            _ => return Err(bad()),
        }
    }
    if arch != "aarch64" {
        return Ok(vec![Platform::default()]);
    }
    let mut out = Vec::new();
    for &g in &gic {
        for &a in &acpi {
            for &t in &transport {
                out.push(Platform {
                    gic: g,
                    acpi: a,
                    transport: t,
                });
            }
        }
    }
    Ok(out)
}

pub(crate) fn variant_name(p: &Platform, arch: &str) -> String {
    if arch != "aarch64" {
        return "q35".into();
    }
    format!(
        "gic{} acpi-{} {}",
        p.gic,
        if p.acpi { "on" } else { "off" },
        match p.transport {
            Transport::Pci => "pci",
            Transport::Mmio => "mmio",
        }
    )
}

fn musl_triple(arch: &str) -> String {
    format!("{arch}-unknown-linux-musl")
}

/// Finds the agent binary for `arch` without the user naming it:
/// `$BOOTPROOF_AGENT_DIR/<arch>/bootproof-agent`, `bootproof-agent-<arch>`
/// beside this executable, or the build tree's `target/<triple>/agent/`.
pub fn find_agent(arch: &str) -> Result<PathBuf, CliError> {
    let mut tried = Vec::new();
    if let Some(d) = std::env::var_os("BOOTPROOF_AGENT_DIR") {
        tried.push(PathBuf::from(d).join(arch).join("bootproof-agent"));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            tried.push(dir.join(format!("bootproof-agent-{arch}")));
            for up in dir.ancestors().take(4) {
                tried.push(up.join(musl_triple(arch)).join("agent/bootproof-agent"));
                tried.push(
                    up.join("target")
                        .join(musl_triple(arch))
                        .join("agent/bootproof-agent"),
                );
            }
        }
    }
    tried.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        CliError::with_hint(
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

/// The image's `/lib/modules/<version>` (or `/usr/lib/...`): the slot and path.
pub(crate) fn module_dir(img: &OpenedImage, version: &str) -> Option<(usize, String)> {
    for (i, s) in img.slots.iter().enumerate() {
        let Some(v) = s.volume.as_ref() else { continue };
        for base in ["/lib/modules", "/usr/lib/modules"] {
            let dir = format!("{base}/{version}");
            if v.metadata(dir.as_bytes())
                .is_ok_and(|m| m.file_type == bootproof_fs::FileType::Dir)
            {
                return Some((i, dir));
            }
        }
    }
    None
}

/// One variant's result.
#[derive(Debug, Clone, Serialize)]
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
}

/// Splits `--variants` words into axes and an image: the option takes every
/// word up to the next option, so `--variants gic=3 disk.raw` must still
/// find the image.
pub(crate) fn axes_and_images(variants: &[String]) -> (Vec<String>, Vec<PathBuf>) {
    let (axes, stray): (Vec<String>, Vec<String>) =
        variants.iter().cloned().partition(|a| a.contains('='));
    (axes, stray.into_iter().map(PathBuf::from).collect())
}

pub fn run(args: &VerifyArgs) -> Result<u8, CliError> {
    let (axes, mut stray) = axes_and_images(&args.variants);
    stray.extend(args.image.clone());
    if stray.len() != 1 {
        return Err(CliError::with_hint(
            if stray.is_empty() {
                "no image to verify".to_string()
            } else {
                format!("one image at a time ({} given)", stray.len())
            },
            "bootproof verify [OPTIONS] IMAGE (`bootproof run` takes several)",
        ));
    }
    let image_args = ImageArgs {
        image: stray.remove(0),
        allow_backing: args.allow_backing,
    };
    let img = open(&image_args)?;
    let arch = resolve_arch(&img, &args.arch)?;
    let arch_name = arch.name();
    let platforms = variants(arch_name, &axes)?;
    let agent_path = find_agent(arch_name)?;
    let agent = std::fs::read(&agent_path)?;
    let base = state::base_dir();
    state::clean_stale(&base);
    let work = RunDir::create(&base)?;
    let full = args.mode == "full";
    if full && args.cmdline_append.is_some() {
        return Err(CliError::with_hint(
            "--cmdline-append applies to agent mode: in full mode the image's boot chain owns the kernel command line",
            "drop --mode full, or change the command line in the image",
        ));
    }
    let (how, closure, version) = if full {
        let seed = match SeedKind::parse(&args.seed) {
            Some(k) => k,
            None => deliver::detect_seed(&img).ok_or_else(|| {
                CliError::with_hint(
                    "full mode needs cloud-init or Ignition in the image, and it has neither \
                     (no /usr/bin/cloud-init, no Ignition dracut module)",
                    "agent mode (the default) needs neither; --seed nocloud|ignition overrides the detection",
                )
            })?,
        };
        (How::Full { seed }, None, None)
    } else {
        let (chain, picked, _) = pick_entry(&img, arch, args.entry)?;
        let manifest =
            extract(&img, &chain, &picked, &work.path().join("kernel")).map_err(|e| {
                CliError::with_hint(e, "`bootproof extract IMAGE -o DIR` shows what would boot")
            })?;
        let version = manifest.kernel_version.clone().ok_or_else(|| {
            CliError::with_hint(
                "the kernel's version is unknown, so its modules cannot be found",
                "`bootproof extract --json IMAGE -o DIR` shows what was found",
            )
        })?;
        let closure = match module_dir(&img, &version) {
            Some((slot, dir)) => {
                let vol = img.slots[slot].volume.as_ref().expect("checked");
                modules::resolve(&InImage { volume: vol, dir }, AGENT_MODULES)
            }
            None => Closure {
                missing: AGENT_MODULES.iter().map(|s| s.to_string()).collect(),
                dependency_source: format!("none: no /lib/modules/{version} in the image"),
                ..Closure::default()
            },
        };
        (
            How::Agent {
                kernel: work.path().join("kernel/kernel"),
                cmdline_append: args.cmdline_append.clone(),
            },
            Some(closure),
            Some(version),
        )
    };
    let (decision, probe) = choose_accel(arch_name);
    let timeout = match (args.timeout, full) {
        (None, true) => deadline(None, decision.accel) * 2,
        (t, _) => deadline(t, decision.accel),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args.jobs.unwrap_or(cores).max(1);
    let cpus = 2u32.min(cores as u32).max(1);
    let console = if arch_name == "aarch64" {
        "ttyAMA0"
    } else {
        "ttyS0"
    };

    let interrupted = interrupt_flag();
    let st = Style::stderr(args.output.color);
    if !args.output.json {
        eprintln!(
            "{} {} ({arch_name}, {}, {} variant(s), {} at a time, {})",
            st.bold("Verifying"),
            image_args.image.display(),
            match (&how, &version) {
                (How::Full { seed }, _) => format!("full boot, agent by {}", seed.describe()),
                (_, Some(v)) => format!("kernel {v}"),
                _ => String::new(),
            },
            platforms.len(),
            jobs.min(
                platforms.len()
                    + usize::from(!args.no_hotplug)
                    + usize::from(args.persistence != "off")
            ),
            match decision.accel {
                Accel::Kvm => "KVM",
                Accel::Tcg => "TCG",
            }
        );
    }
    // One pool for every boot: the matrix, the hotplug boot and the
    // persistence pair (two boots in order, so one job) run side by side
    // up to --jobs; the pair goes first, being the longest. Results are
    // reported in a fixed order whatever finishes first.
    let mut jobs_list: Vec<(usize, Job)> = Vec::new();
    if args.persistence != "off" {
        jobs_list.push((platforms.len() + 1, Job::Persistence));
    }
    if !args.no_hotplug {
        jobs_list.push((platforms.len(), Job::Hotplug));
    }
    jobs_list.extend(
        platforms
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, p)| (i, Job::Variant(p))),
    );
    jobs_list.reverse(); // popped from the end
    let workers = jobs.min(jobs_list.len()).max(1);
    let queue = Mutex::new(jobs_list);
    let results: Mutex<Vec<(usize, JobResult)>> = Mutex::new(Vec::new());
    let ctx = Ctx {
        image: &image_args.image,
        image_format: img.image.format().to_string(),
        image_size: img.image.size(),
        arch: arch_name,
        agent: &agent,
        how: &how,
        closure: closure.as_ref(),
        version: version.as_deref(),
        console,
        cpus,
        decision: decision.clone(),
        timeout,
        base: base.clone(),
        interrupted: &interrupted,
    };
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                if interrupted.load(Ordering::Relaxed) {
                    return;
                }
                let Some((idx, job)) = queue.lock().ok().and_then(|mut q| q.pop()) else {
                    return;
                };
                let r = match job {
                    Job::Variant(platform) => run_variant(
                        &ctx,
                        &Task::new(variant_name(&platform, arch_name), platform.clone()),
                    )
                    .map(|v| vec![v]),
                    Job::Hotplug => hotplug(&ctx).map(|v| vec![v]),
                    Job::Persistence => {
                        persistence(&ctx, work.path(), args.persistence == "fresh-vars")
                    }
                };
                match &r {
                    Ok(vs) => {
                        for v in vs {
                            progress(args.output.json, &st, &v.name, Ok(v.passed));
                        }
                    }
                    Err(e) => progress(args.output.json, &st, "boot", Err(e)),
                }
                if let Ok(mut res) = results.lock() {
                    res.push((idx, r));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_default();
    results.sort_by_key(|(i, _)| *i);
    let mut done: Vec<VariantResult> = Vec::new();
    let mut errors = Vec::new();
    for (_, r) in results {
        match r {
            Ok(v) => done.extend(v),
            Err(e) => errors.push(e),
        }
    }
    let all_passed = errors.is_empty() && done.iter().all(|v| v.passed);
    let code = if interrupted.load(Ordering::Relaxed) {
        EXIT_INTERRUPTED
    } else if !errors.is_empty() {
        EXIT_ERROR
    } else if all_passed {
        EXIT_OK
    } else {
        EXIT_FAIL
    };
    let mut stdout = std::io::stdout().lock();
    if args.junit {
        stdout.write_all(junit(&image_args.image, &done, &errors).as_bytes())?;
        return Ok(code);
    }
    if args.output.json {
        // Full mode: the kernel the image booted, as the agent saw it.
        let version = version.clone().or_else(|| {
            done.iter().flat_map(|v| &v.records).find_map(|r| match r {
                Record::Hello { kernel, .. } => Some(kernel.clone()),
                _ => None,
            })
        });
        let doc = json!({
            "schema": "bootproof.verify/v1",
            "image": image_args.image,
            "arch": arch_name,
            "mode": args.mode,
            "seed": match how { How::Full { seed } => Some(seed), How::Agent { .. } => None },
            "kernel_version": version,
            "accel": decision,
            "kvm_probe": probe,
            "agent": agent_path,
            "modules": closure,
            "variants": done,
            "errors": errors,
            "passed": all_passed,
        });
        serde_json::to_writer_pretty(&mut stdout, &doc).map_err(std::io::Error::other)?;
        writeln!(stdout)?;
        return Ok(code);
    }
    let so = Style::stdout(args.output.color);
    if let Some(closure) = closure.as_ref().filter(|c| !c.missing.is_empty()) {
        writeln!(
            stdout,
            "{} modules not found in the image: {} ({})",
            so.yellow("note:"),
            closure.missing.join(", "),
            closure.dependency_source
        )?;
    }
    // The matrix: checks down, variants across.
    let mut ids: Vec<String> = Vec::new();
    for v in &done {
        for r in &v.records {
            if let Record::Check { id, .. } = r {
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
        }
    }
    let header: Vec<String> = done.iter().map(|v| v.name.clone()).collect();
    let width = ids.iter().map(|i| i.len()).max().unwrap_or(5).max(5);
    write!(stdout, "{:width$}", "check")?;
    for h in &header {
        write!(stdout, "  {:>16}", h)?;
    }
    writeln!(stdout)?;
    for id in &ids {
        write!(stdout, "{id:width$}")?;
        for v in &done {
            let cell = v.records.iter().find_map(|r| match r {
                Record::Check { id: i, status, .. } if i == id => Some(*status),
                _ => None,
            });
            let (text, styled) = match cell {
                Some(Status::Pass) => ("pass", so.green("pass")),
                Some(Status::Fail) => ("FAIL", so.red_bold("FAIL")),
                Some(Status::Skip) => ("skip", so.dim("skip")),
                None => ("–", "–".to_string()),
            };
            write!(
                stdout,
                "  {}{styled}",
                " ".repeat(16 - text.chars().count())
            )?;
        }
        writeln!(stdout)?;
    }
    for v in &done {
        for r in &v.records {
            if let Record::Check {
                id,
                status: Status::Fail,
                evidence,
            } = r
            {
                writeln!(
                    stdout,
                    "{} {} [{}]: {evidence}",
                    so.red_bold("FAIL"),
                    id,
                    v.name
                )?;
            }
        }
        if !v.records.iter().any(|r| matches!(r, Record::Done { .. })) {
            writeln!(
                stdout,
                "{} [{}]: the agent did not finish ({}); console log {}",
                so.red_bold("FAIL"),
                v.name,
                outcome_words(&v.boot.outcome),
                v.boot.console_log.display()
            )?;
        }
    }
    for e in &errors {
        writeln!(stdout, "{} {e}", so.red_bold("error:"))?;
    }
    writeln!(
        stdout,
        "{} {}",
        so.bold("Verdict"),
        if all_passed {
            so.green("every check passed on every variant")
        } else {
            so.red_bold("failures above")
        }
    )?;
    Ok(code)
}

fn junit(image: &Path, done: &[VariantResult], errors: &[String]) -> String {
    use crate::junit::{render, Case, CaseOutcome, Suite};
    let mut suites: Vec<Suite> = done
        .iter()
        .map(|v| {
            let mut cases: Vec<Case> = v
                .records
                .iter()
                .filter_map(|r| match r {
                    Record::Check {
                        id,
                        status,
                        evidence,
                    } => Some(Case {
                        class: format!(
                            "bootproof.verify.{}",
                            id.split('.').next().unwrap_or("check")
                        ),
                        name: id.clone(),
                        outcome: match status {
                            Status::Pass => CaseOutcome::Pass(evidence.clone()),
                            Status::Skip => CaseOutcome::Skip(evidence.clone()),
                            Status::Fail => CaseOutcome::Fail {
                                kind: "check".into(),
                                message: evidence.clone(),
                                body: evidence.clone(),
                            },
                        },
                    }),
                    _ => None,
                })
                .collect();
            let finished = v.records.iter().any(|r| matches!(r, Record::Done { .. }));
            cases.push(Case {
                class: "bootproof.verify.agent".into(),
                name: "agent.finished".into(),
                outcome: if finished {
                    CaseOutcome::Pass(format!(
                        "{:.1} s to the last record",
                        v.done_secs.unwrap_or(0.0)
                    ))
                } else {
                    CaseOutcome::Fail {
                        kind: "agent".into(),
                        message: "the agent did not finish".into(),
                        body: format!("console log: {}", v.boot.console_log.display()),
                    }
                },
            });
            Suite {
                name: format!("{} [{}]", image.display(), v.name),
                cases,
            }
        })
        .collect();
    for e in errors {
        suites.push(Suite {
            name: format!("{} [could not run]", image.display()),
            cases: vec![Case {
                class: "bootproof.verify.infra".into(),
                name: "vm.started".into(),
                outcome: CaseOutcome::Fail {
                    kind: "infra".into(),
                    message: e.clone(),
                    body: e.clone(),
                },
            }],
        });
    }
    render("bootproof verify", &suites)
}

/// One progress line on stderr per finished boot (not with `--json`).
fn progress(json: bool, st: &Style, name: &str, r: Result<bool, &str>) {
    if json {
        return;
    }
    match r {
        Ok(true) => eprintln!("  {name}: {}", st.green("pass")),
        Ok(false) => eprintln!("  {name}: {}", st.red_bold("fail")),
        Err(e) => eprintln!("  {name}: {}", st.red_bold(e)),
    }
}

/// A boot outcome in words: its name, the stage, and the cause or reason
/// when the console showed one.
pub(crate) fn outcome_words(outcome: &BootOutcome) -> String {
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
    words
}

/// Whether a variant's records show the agent finished with no failure.
fn all_passed(records: &[Record]) -> bool {
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

/// The persistence pair: boot 1 writes bootproof's variable into a kept
/// NVRAM; the host reads the store file; boot 2 (aarch64: on the other GIC
/// version, as vmspec-boot did) reads it back.
fn persistence(ctx: &Ctx, work: &Path, fresh: bool) -> Result<Vec<VariantResult>, String> {
    use bootproof_agent::{PERSIST_VARIABLE, VENDOR_GUID};
    let value = format!("bootproof-{}", nonce());
    let nv = work.join("persist-vars.fd");
    let (first, second) = if ctx.arch == "aarch64" {
        (
            Platform {
                gic: 3,
                ..Platform::default()
            },
            Platform {
                gic: 2,
                ..Platform::default()
            },
        )
    } else {
        (Platform::default(), Platform::default())
    };
    let gic = |p: &Platform| {
        if ctx.arch == "aarch64" {
            format!(" gic{}", p.gic)
        } else {
            String::new()
        }
    };
    let mut w = run_variant(
        ctx,
        &Task {
            nvram: Some(nv.clone()),
            persist_write: Some(value.clone()),
            ..Task::new(format!("persist-w{}", gic(&first)), first)
        },
    )?;
    // The store as the firmware left it, read on the host.
    let found = std::fs::read(&nv)
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
            Some(v) => (Status::Fail, format!("{PERSIST_VARIABLE} holds {:?}", String::from_utf8_lossy(&v.data))),
            None => (Status::Fail, format!("{PERSIST_VARIABLE} not in the NVRAM file ({} variables)", vars.len())),
        },
        Err(e) => (Status::Fail, format!("NVRAM file: {e}")),
    };
    let at = w.records.len().saturating_sub(1);
    w.records.insert(
        at,
        Record::Check {
            id: "uefi.nvram-on-host".into(),
            status,
            evidence,
        },
    );
    w.passed = all_passed(&w.records);
    let read_from = if fresh {
        work.join("fresh-vars.fd")
    } else {
        nv
    };
    let r = run_variant(
        ctx,
        &Task {
            nvram: Some(read_from),
            persist_expect: Some(value),
            ..Task::new(format!("persist-r{}", gic(&second)), second)
        },
    )?;
    Ok(vec![w, r])
}

/// Hotplugs a fresh 16 MiB virtio disk into root port `rp1` over QMP.
fn hotplug_disk(qmp: &Path, file: &Path) -> Result<(), String> {
    std::fs::File::create(file)
        .and_then(|f| f.set_len(16 << 20))
        .map_err(|e| e.to_string())?;
    let mut q =
        bootproof_vm::qmp::Qmp::connect(qmp, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    q.execute(
        "blockdev-add",
        json!({ "node-name": "hotplug0", "driver": "raw",
                "file": { "driver": "file", "filename": file } }),
    )
    .map_err(|e| e.to_string())?;
    q.execute(
        "device_add",
        json!({ "driver": "virtio-blk-pci", "bus": "rp1", "drive": "hotplug0", "id": "hotplug-disk0" }),
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// The hotplug check: a boot with an empty PCIe root port; when the agent
/// says it waits, bootproof adds a disk over QMP and the agent must see it.
fn hotplug(ctx: &Ctx) -> Result<VariantResult, String> {
    run_variant(
        ctx,
        &Task {
            hotplug: true,
            ..Task::new("hotplug".into(), Platform::default())
        },
    )
}

/// What every variant of one run shares.
pub(crate) struct Ctx<'a> {
    pub(crate) image: &'a Path,
    pub(crate) image_format: String,
    pub(crate) image_size: u64,
    pub(crate) arch: &'a str,
    pub(crate) agent: &'a [u8],
    pub(crate) how: &'a How,
    /// Agent mode: the modules to load and the kernel's version.
    pub(crate) closure: Option<&'a Closure>,
    pub(crate) version: Option<&'a str>,
    pub(crate) console: &'a str,
    pub(crate) cpus: u32,
    pub(crate) decision: accel::Decision,
    pub(crate) timeout: Duration,
    pub(crate) base: PathBuf,
    pub(crate) interrupted: &'a AtomicBool,
}

/// What a job produced: its boots' results, or why it could not run.
type JobResult = Result<Vec<VariantResult>, String>;

/// One unit of work for the boot pool.
enum Job {
    /// A matrix variant.
    Variant(Platform),
    /// The hotplug boot.
    Hotplug,
    /// The persistence pair (two boots, in order).
    Persistence,
}

/// How the agent gets into the guest.
pub(crate) enum How {
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
pub(crate) struct Task {
    pub(crate) name: String,
    pub(crate) platform: Platform,
    pub(crate) nvram: Option<PathBuf>,
    pub(crate) persist_write: Option<String>,
    pub(crate) persist_expect: Option<String>,
    pub(crate) hotplug: bool,
    /// `bootproof run`: the command for the agent to run instead of the checks.
    pub(crate) run: Option<bootproof_agent::RunSpec>,
    /// Extra initramfs files (`bootproof run --binary`), path and contents.
    pub(crate) files: Vec<(String, Vec<u8>)>,
    /// Copy the console log here, whatever the outcome.
    pub(crate) keep_console: Option<PathBuf>,
    /// vCPUs, when not the run's default.
    pub(crate) cpus: Option<u32>,
    /// Memory in MiB [default: 1024].
    pub(crate) memory_mib: Option<u64>,
    /// More kernel command line for this boot (agent mode).
    pub(crate) cmdline_append: Option<String>,
    /// This boot's deadline, when not the run's.
    pub(crate) timeout: Option<Duration>,
}

impl Task {
    /// A plain boot of `platform`: fresh NVRAM, checks only.
    pub(crate) fn new(name: String, platform: Platform) -> Task {
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
        }
    }
}

pub(crate) fn run_variant(ctx: &Ctx, task: &Task) -> Result<VariantResult, String> {
    let (arch, platform) = (ctx.arch, &task.platform);
    let cpus = task.cpus.unwrap_or(ctx.cpus);
    let run = RunDir::create(&ctx.base).map_err(|e| e.to_string())?;
    let n = nonce();
    let cfg = AgentConfig {
        arch: arch.into(),
        cpus,
        gic: platform.gic,
        acpi: platform.acpi,
        transport: match platform.transport {
            Transport::Pci => "pci".into(),
            Transport::Mmio => "mmio".into(),
        },
        persist_write: task.persist_write.clone(),
        persist_expect: task.persist_expect.clone(),
        hotplug: task.hotplug,
        virtio_serial: true,
        run: task.run.clone(),
    };
    let (kernel, seed) = match ctx.how {
        How::Agent {
            kernel,
            cmdline_append,
        } => {
            let initrd = run.path().join("agent.cpio");
            let empty = Closure::default();
            std::fs::write(
                &initrd,
                deliver::agent_initramfs(
                    ctx.agent,
                    ctx.closure.unwrap_or(&empty),
                    ctx.version.unwrap_or_default(),
                    &cfg,
                    &n,
                    &task.files,
                ),
            )
            .map_err(|e| e.to_string())?;
            (
                Some(DirectKernel {
                    kernel: kernel.clone(),
                    initrd: Some(initrd),
                    cmdline: [
                        Some(format!("console={} rdinit=/init", ctx.console)),
                        cmdline_append.clone(),
                        task.cmdline_append.clone(),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" "),
                }),
                deliver::SeedAttachment::default(),
            )
        }
        How::Full { seed } => (
            None,
            deliver::write_seed(*seed, run.path(), ctx.agent, &cfg, &n, &task.files)
                .map_err(|e| format!("{}: writing the seed: {e}", task.name))?,
        ),
    };
    let req = VmRequest {
        arch: arch.into(),
        image: ctx.image.to_path_buf(),
        image_format: ctx.image_format.clone(),
        image_size: ctx.image_size,
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
        seed_disk: seed.disk,
        fw_cfg: seed.fw_cfg,
    };
    let prepared = prepare(&req, &run).map_err(|e| e.to_string())?;
    let log = run.path().join("console.log");
    let opts = WatchOptions {
        deadline: task.timeout.unwrap_or(ctx.timeout),
        until: None,
        console_log: log,
        max_log_bytes: 16 << 20,
    };
    let mut reader = RecordReader::new(&n);
    let mut plugged: Option<Result<(), String>> = None;
    let started = std::time::Instant::now();
    let (mut first_record_secs, mut done_secs) = (None, None);
    let qmp = prepared.spec.qmp_socket.clone();
    let extra_disk = run.path().join("hotplug.raw");
    let boot = supervise::boot(
        &prepared.qemu.binary,
        &prepared.spec,
        &run,
        &opts,
        ctx.interrupted,
        supervise::Hooks {
            on_stage: &mut |_| {},
            on_console: &mut |b| {
                reader.feed(b);
                if first_record_secs.is_none() && !reader.records().is_empty() {
                    first_record_secs = Some(started.elapsed().as_secs_f64());
                }
                if done_secs.is_none() && reader.done() {
                    done_secs = Some(started.elapsed().as_secs_f64());
                }
                if task.hotplug
                    && plugged.is_none()
                    && reader
                        .records()
                        .iter()
                        .any(|r| matches!(r, Record::Waiting { .. }))
                {
                    plugged = Some(hotplug_disk(&qmp, &extra_disk));
                }
            },
        },
    )
    .map_err(|e| e.to_string())?;
    if let BootOutcome::InfraError { message } = &boot.outcome {
        return Err(format!("{}: {message}", task.name));
    }
    // Records from the virtio-serial port (no console noise reaches it)
    // win when the agent finished there; the console's own records before
    // the port opened (hello, modules) are kept.
    let mut port = RecordReader::new(&n);
    port.feed(&std::fs::read(run.path().join("agent.out")).unwrap_or_default());
    port.feed(b"\n");
    let (mut records, channel) = if port.done() {
        let mut r: Vec<Record> = reader
            .records()
            .iter()
            .take_while(|r| !matches!(r, Record::Check { id, .. } if id == "agent.virtio-serial"))
            .cloned()
            .collect();
        r.extend(port.records().iter().cloned());
        (r, "virtio-serial")
    } else {
        (reader.records().to_vec(), "console")
    };
    if let Some(Err(e)) = plugged {
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
    let mut boot = boot;
    // The run directory (and its log) goes away; keep the log where asked,
    // or if it failed.
    if let Some(keep) = &task.keep_console {
        if std::fs::copy(&boot.console_log, keep).is_ok() {
            boot.console_log = keep.clone();
        }
    } else if !passed {
        let keep = cache_dir().join("logs").join(format!(
            "verify-{}-{}.log",
            task.name.replace(' ', "-"),
            n
        ));
        let _ = std::fs::create_dir_all(keep.parent().unwrap_or(Path::new(".")));
        if std::fs::copy(&boot.console_log, &keep).is_ok() {
            boot.console_log = keep;
        }
    }
    Ok(VariantResult {
        name: task.name.clone(),
        platform: platform.clone(),
        passed,
        records,
        channel: channel.into(),
        first_record_secs,
        done_secs,
        boot,
        qemu: std::iter::once(prepared.qemu.binary.display().to_string())
            .chain(prepared.spec.qemu_args())
            .collect(),
        firmware: prepared.firmware.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_axes() {
        assert_eq!(variants("aarch64", &[]).unwrap().len(), 8);
        let v = variants(
            "aarch64",
            &[
                "gic=2".into(),
                "acpi=on,off".into(),
                "transport=mmio".into(),
            ],
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert!(v
            .iter()
            .all(|p| p.gic == 2 && p.transport == Transport::Mmio));
        assert_eq!(variants("x86_64", &[]).unwrap().len(), 1);
        assert!(variants("aarch64", &["gic=4".into()]).is_err());
        assert!(variants("aarch64", &["nope".into()]).is_err());
    }
}
