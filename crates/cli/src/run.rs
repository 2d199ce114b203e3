//! `bootproof run`: the user's command across images × kernels ×
//! variants through the engine ([`bootproof_runtime::run`]), rendered as a
//! table, JSON, JUnit, Markdown or HTML.

use crate::args::{AgentModeArgs, BootTuningArgs, OutputArgs};
use crate::progress::{status_word, Progress};
use crate::session::interrupt_flag;
use crate::style::{write_json, SafeStdout, Style};
use bootproof_platform::{split_axes_and_images, Axes};
use bootproof_runtime::render::{html, run_junit, run_markdown};
use bootproof_runtime::run::{run as run_matrix, CellStatus, CellView, RunReport, RunRequest};
use bootproof_runtime::Error;
use std::io::Write;
use std::path::PathBuf;

pub const AFTER_HELP: &str = "\
Each cell (image × variant) boots the image's default kernel (as `bootproof
extract` finds it, or an extra kernel: --kernel) through UEFI with
bootproof's initramfs: the agent as /init plus the image's own virtio,
filesystem and overlay modules. The agent mounts the image's OS root
read-only under a tmpfs overlay (nothing
is written to the image, not even to the VM's copy-on-write layer), mounts
/proc, /sys, /dev, /run and /tmp in it, chroots, and executes COMMAND as
root with PATH, HOME=/root and:
  BOOTPROOF_ARCH, BOOTPROOF_KERNEL, BOOTPROOF_IMAGE, BOOTPROOF_VARIANT
  BOOTPROOF_BIN_<NAME>   path of each --binary file inside the guest
                         (/run/bootproof/bin/<file name>; NAME is the file
                         name upper-cased, other characters as _)
COMMAND is an argv: no shell parses it on the host or in the guest (use
`sh -c '…'` for shell syntax). Its stdout and stderr are kept (the last
16 KiB of each).

--kernel PATH adds a row per image of that kernel's arch (`<image>@<release>`):
a kernel package (linux-image-*.deb, kernel-core-*.rpm; module packages such
as kernel-modules-*.rpm given beside it join it), a directory with an unpacked
one, or a kernel file (built-in drivers only; a matrix file's [[kernel]] can
name its modules); --kernel-set NAME adds the kernel library's (lts-amd64,
ubuntu-lts-arm64, …). Each boots with its own modules and the image's root.

--mode full boots each image end to end instead (firmware, its boot chain,
its init); cloud-init or Ignition, given a seed like `verify --mode full`'s
(it carries the --binary files too), starts the agent, which runs COMMAND
in the booted system. Minutes per cell under TCG, not seconds.

Statuses: pass (exit status = --expect-exit), fail (another status, a
signal, or the command's timeout), boot-failure (the guest never ran the
command: the stage and cause from the console), infra-error (the VM could
not run after --retries retries), skipped (another shard's,
interrupted, or what agent mode cannot do yet — a root on LVM2 — with
the reason).

--matrix FILE names images (a path, or `catalog = \"NAME\"`: a catalog
image, fetched and verified on first use, see `bootproof fetch`), extra
kernels and variants in TOML (docs/matrix.md), with per-variant cpus,
memory, cmdline, timeout and `required = false` for cells that report
without failing the run.

--shard K/N runs the cells whose id hashes to K of N (stable across runs
and machines), so a CI system's own matrix can spread a large run;
`bootproof report merge` combines the shards' --json outputs.

--html FILE writes a self-contained report: the matrix with filters, and
per cell its output, console log and QEMU command line.

Every run is recorded in the history database (`bootproof history`,
`bootproof compare`; --no-history skips it).

Exit status: 0 every required cell passed; 1 one failed or did not boot; 3
infra errors left required cells without a verdict (and none failed); 2
usage error; 130 interrupted.

Examples:
  bootproof run disk.qcow2 -- uname -r
  bootproof run a.raw b.qcow2 --variants gic=3 acpi=on,off -- sh -c 'test -d /sys/firmware/acpi'
  bootproof run --binary ./probe disk.raw -- sh -c '\"$BOOTPROOF_BIN_PROBE\" --check'
  bootproof run --kernel linux-image-6.12.95+deb12-arm64_6.12.95-1~bpo12+1_arm64.deb disk.qcow2 \\
      -- uname -r
  bootproof run --json --evidence out/ --shard 1/4 *.qcow2 -- ./ci-check.sh
  bootproof run --matrix matrix.toml --markdown -- sh -c 'test -d /sys/fs/bpf'
  bootproof run --html report.html disk.qcow2 -- ./selftest";

/// Everything `bootproof run` takes.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Disk images (raw, qcow2 or VHD): the matrix rows.
    #[arg(value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Another kernel to boot every image of its architecture with
    /// (repeatable), besides the image's own: a Debian kernel package
    /// (linux-image-*.deb) or an RPM one (kernel-core-*.rpm; module packages
    /// join it), a directory with an unpacked one, or a kernel
    /// file (built-in drivers only; a matrix file's [[kernel]] can add its
    /// modules).
    #[arg(long = "kernel", value_name = "PATH")]
    pub kernels: Vec<PathBuf>,
    /// A kernel set of the kernel library (lts-arm64, …; `bootproof fetch`
    /// lists them) or one of its kernels, fetched and verified (repeatable).
    #[arg(long = "kernel-set", value_name = "NAME")]
    pub kernel_sets: Vec<String>,
    /// Platform axes, each AXIS=V1,V2 (gic=2,3 acpi=on,off transport=pci,mmio aia=off,on), for the images whose machine has them; x86_64 images run on q35. Words without `=` after it are images.
    #[arg(long, num_args = 1.., value_name = "AXIS=VALUES")]
    pub variants: Vec<String>,
    #[command(flatten)]
    pub agent: AgentModeArgs,
    /// A file to ship into every guest (repeatable); see BOOTPROOF_BIN_<NAME>.
    #[arg(long = "binary", value_name = "FILE")]
    pub binaries: Vec<PathBuf>,
    /// The exit status that means pass.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub expect_exit: i32,
    #[command(flatten)]
    pub tuning: BootTuningArgs,
    /// Retries of a cell whose VM could not run (QEMU failed to start or was killed) [default: 1].
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// A catalog file adding entries for a matrix file's `[[image]] catalog
    /// = "NAME"` (repeatable; `bootproof fetch --help` shows the format).
    #[arg(long = "catalog", value_name = "FILE")]
    pub catalogs: Vec<PathBuf>,
    /// A matrix file (TOML): named images and variants, timeouts,
    /// `required`; see `--help` and docs/matrix.md.
    #[arg(long, value_name = "FILE")]
    pub matrix: Option<PathBuf>,
    /// Run only shard K of N (1-based), chosen by a stable hash of each cell's id.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Write each cell's evidence (console log, agent records, command
    /// output, QEMU command line, firmware and accelerator) under DIR/<image>/<variant>/.
    #[arg(long, value_name = "DIR")]
    pub evidence: Option<PathBuf>,
    /// Follow qcow2 backing files (and VMDK extents outside the
    /// descriptor's directory).
    #[arg(long)]
    pub allow_backing: bool,
    /// Also write a self-contained HTML report (matrix, filters, each
    /// cell's output, console log and QEMU command line) to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Do not record this run in the history database (`bootproof history`).
    #[arg(long)]
    pub no_history: bool,
    /// Print a JUnit XML report (one test case per cell).
    #[arg(long, conflicts_with_all = ["json", "markdown"])]
    pub junit: bool,
    /// Print a Markdown summary (images × variants with ✅/❌ and the exit code or stage).
    #[arg(long, conflicts_with = "json")]
    pub markdown: bool,
    #[command(flatten)]
    pub output: OutputArgs,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The request from the arguments: `--variants` words without `=` are images.
fn request(args: &RunArgs) -> Result<RunRequest, Error> {
    let (axes, stray) = split_axes_and_images(&args.variants);
    let mut images: Vec<PathBuf> = stray.into_iter().map(PathBuf::from).collect();
    images.extend(args.images.iter().cloned());
    Ok(RunRequest {
        images,
        matrix: args.matrix.clone(),
        kernels: args.kernels.clone(),
        kernel_sets: args.kernel_sets.clone(),
        axes: Axes::parse(&axes)?,
        axes_given: !axes.is_empty(),
        mode: args.agent.mode.into(),
        seed: args.agent.seed.into(),
        binaries: args.binaries.clone(),
        expect_exit: args.expect_exit,
        timeout: args.tuning.timeout,
        jobs: args.tuning.jobs,
        retries: args.retries,
        catalogs: args.catalogs.clone(),
        shard: args.shard.clone(),
        cmdline_append: args.tuning.cmdline_append.clone(),
        evidence: args.evidence.clone(),
        allow_backing: args.allow_backing,
        record_history: !args.no_history,
        command: args.command.clone(),
    })
}

pub fn run(args: &RunArgs) -> Result<u8, Error> {
    let req = request(args)?;
    let interrupted = interrupt_flag();
    let quiet = args.output.json || args.junit || args.markdown;
    let progress = Progress::new(Style::stderr(args.output.color), quiet);
    let report = run_matrix(&req, &progress, &interrupted)?;
    let views: Vec<CellView> = report.cells.iter().map(CellView::from).collect();
    let doc = serde_json::to_value(&report).map_err(std::io::Error::other)?;
    if let Some(path) = &args.html {
        std::fs::write(path, html::render(&doc, html::Logs::Own)).map_err(|e| {
            Error::with_hint(
                format!("--html {}: {e}", path.display()),
                "check the directory exists and is writable",
            )
        })?;
    }
    let mut out = SafeStdout::default();
    if args.junit {
        out.write_all(run_junit(&views).as_bytes())?;
    } else if args.markdown {
        out.write_all(run_markdown(&views, &args.command).as_bytes())?;
    } else if args.output.json {
        write_json(&mut out, &doc)?;
    } else {
        human(&mut out, &report, Style::stdout(args.output.color))?;
        if let Some(path) = &args.html {
            writeln!(out, "HTML report: {}", path.display())?;
        }
    }
    Ok(report.exit_code)
}

/// One line per cell, the output's last lines, and where a failed boot's
/// console log is.
fn human(out: &mut impl Write, r: &RunReport, so: Style) -> std::io::Result<()> {
    let width = r
        .cells
        .iter()
        .map(|c| c.id.chars().count())
        .max()
        .unwrap_or(4);
    for c in &r.cells {
        writeln!(
            out,
            "{:width$}  {}  {}",
            c.id,
            status_word(&so, &c.status),
            c.detail
        )?;
        // The output's last lines (all of it is in --json and --evidence).
        for (name, text) in [("stdout", &c.stdout), ("stderr", &c.stderr)] {
            let lines: Vec<&str> = text.lines().collect();
            for l in &lines[lines.len().saturating_sub(10)..] {
                writeln!(out, "    {} {l}", so.dim(&format!("{name}|")))?;
            }
        }
        if matches!(c.status, CellStatus::Fail | CellStatus::BootFailure) {
            if let Some(v) = &c.run {
                writeln!(
                    out,
                    "    {} {}",
                    so.dim("console"),
                    v.boot.console_log.display()
                )?;
            }
        }
    }
    writeln!(out, "{}", r.summary_line())
}
