//! `bootproof verify`: runtime compliance through the engine
//! ([`bootproof_runtime::verify`]), rendered as a check × variant matrix,
//! JSON or JUnit.

use crate::args::{AgentModeArgs, ArchArgs, BootTuningArgs, OutputArgs};
use crate::progress::Progress;
use crate::session::interrupt_flag;
use crate::style::{write_json, SafeStdout, Style};
use bootproof_agent::Status;
use bootproof_platform::{split_axes_and_images, Axes};
use bootproof_runtime::history::record_verify;
use bootproof_runtime::launch::outcome_words;
use bootproof_runtime::render::verify_junit;
use bootproof_runtime::verify::{verify, Persistence, VerifyReport, VerifyRequest};
use bootproof_runtime::Error;
use clap::ValueEnum;
use std::io::Write;
use std::path::PathBuf;

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

Variants: aarch64 gic=2,3 acpi=on,off transport=pci,mmio (default: all); riscv64
acpi, transport (default: all) and aia=off,on (default: off); x86_64: q35 only.

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

/// The persistence check's form.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PersistenceArg {
    /// Write a variable on one boot, read it back on the next.
    On,
    /// No persistence boots.
    Off,
    /// The second boot gets a fresh store (a negative control that must fail).
    FreshVars,
}

/// Everything `bootproof verify` takes.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Disk image: raw, qcow2 (v2/v3; deflate- or zstd-compressed clusters), or
    /// VHD (fixed or dynamic).
    #[arg(value_name = "IMAGE")]
    pub image: Option<PathBuf>,
    /// Follow qcow2 backing files.
    #[arg(long)]
    pub allow_backing: bool,
    #[command(flatten)]
    pub arch: ArchArgs,
    /// Platform axes, each AXIS=V1,V2 (gic=2,3 acpi=on,off transport=pci,mmio aia=off,on); unnamed axes take their defaults. A word without `=` after it is the image.
    #[arg(long, num_args = 1.., value_name = "AXIS=VALUES")]
    pub variants: Vec<String>,
    /// Boot entry N (0 = first) instead of the loader's default.
    #[arg(long, value_name = "N")]
    pub entry: Option<usize>,
    #[command(flatten)]
    pub agent: AgentModeArgs,
    #[command(flatten)]
    pub tuning: BootTuningArgs,
    /// The persistence check: boot once writing an EFI variable, read the
    /// NVRAM file on the host, boot again on the same NVRAM (aarch64: the
    /// other GIC version) and read it back. `fresh-vars` gives the second
    /// boot a fresh store, as firmware without persistent variables would (a
    /// negative control that must fail).
    #[arg(long, value_enum, default_value_t = PersistenceArg::On)]
    pub persistence: PersistenceArg,
    /// Skip the hotplug check (a boot in which bootproof adds a virtio disk
    /// to an empty PCIe root port over QMP and the agent must see it).
    #[arg(long)]
    pub no_hotplug: bool,
    /// Full mode: do not record each boot against the image's prediction
    /// (`bootproof history --predictions` counts them).
    #[arg(long)]
    pub no_history: bool,
    /// Print a JUnit XML report (a suite per variant, a case per check) for CI viewers.
    #[arg(long, conflicts_with = "json")]
    pub junit: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// The request from the arguments: `--variants` words without `=` are the image.
fn request(args: &VerifyArgs) -> Result<VerifyRequest, Error> {
    let (axes, mut stray) = split_axes_and_images(&args.variants);
    stray.extend(args.image.iter().map(|p| p.display().to_string()));
    if stray.len() != 1 {
        return Err(Error::with_hint(
            if stray.is_empty() {
                "no image to verify".to_string()
            } else {
                format!("one image at a time ({} given)", stray.len())
            },
            "bootproof verify [OPTIONS] IMAGE (`bootproof run` takes several)",
        ));
    }
    let image = match (&args.image, stray.pop()) {
        (Some(p), _) => p.clone(),
        (None, s) => PathBuf::from(s.unwrap_or_default()),
    };
    Ok(VerifyRequest {
        image,
        allow_backing: args.allow_backing,
        arch: args.arch.arch.0,
        axes: Axes::parse(&axes)?,
        entry: args.entry,
        mode: args.agent.mode.into(),
        seed: args.agent.seed.into(),
        timeout: args.tuning.timeout,
        persistence: match args.persistence {
            PersistenceArg::On => Persistence::On,
            PersistenceArg::Off => Persistence::Off,
            PersistenceArg::FreshVars => Persistence::FreshVars,
        },
        hotplug: !args.no_hotplug,
        cmdline_append: args.tuning.cmdline_append.clone(),
        jobs: args.tuning.jobs,
    })
}

pub fn run(args: &VerifyArgs) -> Result<u8, Error> {
    let req = request(args)?;
    let interrupted = interrupt_flag();
    let progress = Progress::new(
        Style::stderr(args.output.color),
        args.output.json || args.junit,
    );
    let report = verify(&req, &progress, &interrupted)?;
    if let Err(e) = (!args.no_history)
        .then(|| record_verify(&report, &interrupted))
        .transpose()
    {
        eprintln!("warning: {}", e.message());
    }
    let code = report.exit_status();
    let mut stdout = SafeStdout::default();
    if args.junit {
        stdout
            .write_all(verify_junit(&report.image, &report.variants, &report.errors).as_bytes())?;
    } else if args.output.json {
        let doc = serde_json::to_value(&report).map_err(std::io::Error::other)?;
        write_json(&mut stdout, &doc)?;
    } else {
        human(&mut stdout, &report, Style::stdout(args.output.color))?;
    }
    Ok(code)
}

/// The matrix (checks down, variants across), then each failure, and the verdict.
fn human(out: &mut impl Write, r: &VerifyReport, so: Style) -> std::io::Result<()> {
    if let Some(closure) = r.modules.as_ref().filter(|c| !c.missing.is_empty()) {
        writeln!(
            out,
            "{} modules not found in the image: {} ({})",
            so.yellow("note:"),
            closure.missing.join(", "),
            closure.dependency_source
        )?;
    }
    let ids = r.check_ids();
    let width = ids.iter().map(|i| i.len()).max().unwrap_or(5).max(5);
    write!(out, "{:width$}", "check")?;
    for v in &r.variants {
        write!(out, "  {:>16}", v.name)?;
    }
    writeln!(out)?;
    for id in &ids {
        write!(out, "{id:width$}")?;
        for v in &r.variants {
            let (text, styled) = match v.status(id) {
                Some(Status::Pass) => ("pass", so.green("pass")),
                Some(Status::Fail) => ("FAIL", so.red_bold("FAIL")),
                Some(Status::Skip) => ("skip", so.dim("skip")),
                None => ("–", "–".to_string()),
            };
            write!(out, "  {}{styled}", " ".repeat(16 - text.chars().count()))?;
        }
        writeln!(out)?;
    }
    let fail = so.red_bold("FAIL");
    for v in &r.variants {
        for (id, evidence) in v.failures() {
            writeln!(out, "{fail} {id} [{}]: {evidence}", v.name)?;
        }
        if !v.finished() {
            let why = outcome_words(&v.boot.outcome);
            let log = v.boot.console_log.display();
            let name = &v.name;
            writeln!(
                out,
                "{fail} [{name}]: the agent did not finish ({why}); console log {log}"
            )?;
        }
    }
    for e in &r.errors {
        writeln!(out, "{} {e}", so.red_bold("error:"))?;
    }
    let verdict = if r.passed {
        so.green("every check passed on every variant")
    } else {
        so.red_bold("failures above")
    };
    writeln!(out, "{} {verdict}", so.bold("Verdict"))
}
