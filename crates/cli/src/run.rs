//! `bootproof run`: the user's command, as root, inside every cell of a
//! matrix of images × kernels × platform variants. In agent mode each
//! image's own kernel (and each extra kernel of its architecture, from a
//! Debian package, an unpacked one or a kernel file) boots with
//! bootproof's initramfs, the agent mounts the image's
//! root read-only under a tmpfs overlay, chroots and executes the command
//! as an argv (never re-parsed by a shell, on the host or in the guest);
//! in full mode the image boots end to end and a seed starts the agent,
//! which runs the command in the booted system.
//! The verdict is its exit status. Cells run in parallel within CPU and
//! memory budgets; a VM that could not run (QEMU failed or was killed) is
//! retried and, if it keeps failing, reported as an infra error, never as
//! the command's failure.

use crate::boot::{
    choose_accel, deadline, file_component, interrupt_flag, log_path, EXIT_INTERRUPTED,
};
use crate::deliver::{detect_seed, SeedKind};
use crate::extract::{pick_entry, resolve_arch};
use crate::history::{record, ImageFacts};
use crate::matrix::VariantEntry;
use crate::style::Style;
use crate::verify::{
    axes_and_images, module_dir, outcome_words, run_variant, variant_name, variants, Ctx, How,
    Task, VariantResult, AGENT_MODULES,
};
use crate::{open, CliError, ImageArgs, OutputArgs, EXIT_FAIL, EXIT_OK};
use bootproof_agent::{binary_env_var, Record, RunSpec, BINARIES_DIR};
use bootproof_boot::extract::extract;
use bootproof_boot::modules::{self, Closure, HostDir, InImage};
use bootproof_boot::package::{self, ExternalKernel};
use bootproof_fs::FsKind;
use bootproof_image::ReadAt;
use bootproof_inspect::{parse_target, OpenedImage};
use bootproof_vm::accel::Accel;
use bootproof_vm::machine::Platform;
use bootproof_vm::state::{self, RunDir};
use serde::Serialize;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

/// Exit status when infra errors left a required cell without a verdict.
pub const EXIT_INFRA: u8 = 3;

pub const AFTER_HELP: &str = "\
Each cell (image × variant) boots the image's default kernel (as `bootproof
extract` finds it, or an extra kernel: --kernel) through UEFI with bootproof's initramfs: the agent as
/init plus the image's own virtio, filesystem and overlay modules. The
agent mounts the image's OS root read-only under a tmpfs overlay (nothing
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

--kernel PATH adds a row per image of that kernel's architecture
(`<image>@<release>`): a Debian kernel package (linux-image-*.deb, read
in-process and unpacked once into ~/.cache/bootproof/kernels), a
directory with an unpacked one, or a kernel file (built-in drivers only;
a matrix file's [[kernel]] can name its modules). It boots with its own
modules and the image's root, so one userland runs on several kernels.

--mode full boots each image end to end instead (firmware, its boot chain,
its init); cloud-init or Ignition, given a seed like `verify --mode full`'s
(it carries the --binary files too), starts the agent, which runs COMMAND
in the booted system. Minutes per cell under TCG, not seconds.

Statuses: pass (exit status = --expect-exit), fail (another status, a
signal, or the command's timeout), boot-failure (the guest never ran the
command: the stage and cause from the console), infra-error (the VM could
not run after --retries retries), skipped (another shard's, or
interrupted).

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
  bootproof run --kernel linux-image-6.12.95+deb12-arm64_6.12.95-1~bpo12+1_arm64.deb disk.qcow2 -- uname -r
  bootproof run --json --evidence out/ --shard 1/4 *.qcow2 -- ./ci-check.sh
  bootproof run --matrix matrix.toml --markdown -- sh -c 'test -d /sys/fs/bpf'
  bootproof run --html report.html disk.qcow2 -- ./selftest";

/// Everything `bootproof run` takes.
#[derive(clap::Args)]
pub struct RunArgs {
    /// Disk images (raw or qcow2): the matrix rows.
    #[arg(value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Another kernel to boot every image of its architecture with
    /// (repeatable), besides the image's own: a Debian kernel package
    /// (linux-image-*.deb), a directory with an unpacked one, or a kernel
    /// file (built-in drivers only; a matrix file's [[kernel]] can add its
    /// modules).
    #[arg(long = "kernel", value_name = "PATH")]
    pub kernels: Vec<PathBuf>,
    /// Platform axes, each AXIS=V1,V2 (gic=2,3 acpi=on,off transport=pci,mmio), aarch64 images; x86_64 images run on q35. Words without `=` after it are images.
    #[arg(long, num_args = 1.., value_name = "AXIS=VALUES")]
    pub variants: Vec<String>,
    /// agent: the image's kernel, bootproof's initramfs, the command chrooted
    /// into the image's root (seconds per cell); full: the image boots end
    /// to end and its cloud-init or Ignition runs the agent, which runs the
    /// command in the booted system.
    #[arg(long, default_value = "agent", value_parser = ["agent", "full"])]
    pub mode: String,
    /// Full mode's seed: auto (from each image), nocloud, ignition.
    #[arg(long, default_value = "auto", value_parser = ["auto", "nocloud", "ignition"])]
    pub seed: String,
    /// A file to ship into every guest (repeatable); see BOOTPROOF_BIN_<NAME>.
    #[arg(long = "binary", value_name = "FILE")]
    pub binaries: Vec<PathBuf>,
    /// The exit status that means pass.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub expect_exit: i32,
    /// Seconds each cell may take, boot included [default: 60 with KVM, 300 with TCG]; the command gets three quarters of it.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Cells booted at once [default: host cores, within 75% of available memory].
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
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
    /// Text appended to every cell's kernel command line.
    #[arg(long, value_name = "TEXT")]
    pub cmdline_append: Option<String>,
    /// Write each cell's evidence (console log, agent records, command
    /// output, QEMU command line, firmware and accelerator) under DIR/<image>/<variant>/.
    #[arg(long, value_name = "DIR")]
    pub evidence: Option<PathBuf>,
    /// Follow qcow2 backing files.
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

/// A cell's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CellStatus {
    /// The command exited with the expected status.
    Pass,
    /// The command's own verdict was negative.
    Fail,
    /// The guest never ran the command.
    BootFailure,
    /// The VM could not run.
    InfraError,
    /// Not run (another shard's, or interrupted).
    Skipped,
}

/// One cell's result (`bootproof.run/v1` `cells[]`).
#[derive(Debug, Serialize)]
pub struct Cell {
    /// `image / variant`, the id shards hash.
    pub id: String,
    /// Image name (the file name, or the matrix file's `name`).
    pub name: String,
    /// Image path.
    pub image: PathBuf,
    /// `aarch64` or `x86_64`.
    pub arch: String,
    /// Which kernel: `image` (the image's own) or an extra kernel's name.
    pub kernel: String,
    /// The kernel booted.
    pub kernel_version: Option<String>,
    /// Variant name.
    pub variant: String,
    /// The platform.
    pub platform: Platform,
    /// Whether its failure fails the run (matrix file `required`).
    pub required: bool,
    /// Verdict.
    pub status: CellStatus,
    /// In words: the exit status, the stage, or the infra error.
    pub detail: String,
    /// The command's exit status.
    pub exit_code: Option<i32>,
    /// The signal that ended it.
    pub signal: Option<i32>,
    /// Killed at its timeout.
    pub timed_out: bool,
    /// Tail of its stdout.
    pub stdout: String,
    /// Tail of its stderr.
    pub stderr: String,
    /// Seconds the command ran.
    pub command_secs: Option<f64>,
    /// Seconds the whole cell took (all attempts).
    pub secs: f64,
    /// Boots tried.
    pub attempts: u32,
    /// Why earlier attempts could not run.
    pub infra_errors: Vec<String>,
    /// Where the evidence is.
    pub evidence: Option<PathBuf>,
    /// The last attempt's boot (records, stages, QEMU command line, firmware).
    pub run: Option<VariantResult>,
}

/// One column of the matrix for one image.
struct Plan {
    variant: String,
    platform: Platform,
    cpus: Option<u32>,
    memory_mib: Option<u64>,
    cmdline: Option<String>,
    timeout: Option<u64>,
    required: bool,
    /// Why this image cannot have this variant.
    skip: Option<String>,
}

/// Where a row comes from: the command line, or a `[[image]]` entry.
pub(crate) struct RowSource {
    path: PathBuf,
    name: String,
    required: bool,
    timeout: Option<u64>,
    /// Also run with the image's own kernel.
    image_kernel: bool,
    /// The architecture the matrix file declares.
    arch: Option<String>,
}

/// The `kernel` of cells booted with the image's own kernel.
pub const IMAGE_KERNEL: &str = "image";

impl Cell {
    /// A cell not yet run.
    fn new(row: &Row, plan: &Plan, id: String) -> Cell {
        Cell {
            id,
            name: row.name.clone(),
            image: row.image.clone(),
            arch: row.arch.into(),
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

/// An image, prepared once for all its cells.
struct Row {
    image: PathBuf,
    /// Display name (the file name, or the matrix file's `name`; with
    /// another kernel, `<image>@<kernel>`).
    name: String,
    /// Which kernel: [`IMAGE_KERNEL`], or the extra kernel's name.
    kernel: String,
    /// SHA-256 of the kernel booted (agent mode).
    kernel_sha256: Option<String>,
    required: bool,
    timeout: Option<u64>,
    arch: &'static str,
    version: Option<String>,
    format: String,
    size: u64,
    closure: Closure,
    root_device: String,
    root_fstype: String,
    how: How,
    /// Why it cannot run, when it cannot (its cells become boot failures).
    problem: Option<String>,
    plans: Vec<Plan>,
}

/// The filesystem type to mount a root of this kind with.
fn fs_type(kind: FsKind) -> Option<&'static str> {
    match kind {
        FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4 => Some("ext4"),
        FsKind::Xfs => Some("xfs"),
        FsKind::Btrfs => Some("btrfs"),
        _ => None,
    }
}

/// Modules a root of this type needs: the filesystem's own, and the
/// checksum it asks the crypto API for at mount time (a `softdep`, which
/// no symbol dependency pulls in: without it ext4 fails with ENOENT,
/// "Cannot load crc32c driver"). Built-in ones are skipped by the resolver.
fn fs_modules(fstype: &str) -> &'static [&'static str] {
    match fstype {
        "ext4" => &["ext4", "crc32c_generic"],
        "xfs" => &["xfs", "crc32c_generic"],
        "btrfs" => &[
            "btrfs",
            "crc32c_generic",
            "xxhash_generic",
            "blake2b_generic",
            "sha256_generic",
        ],
        _ => &[],
    }
}

/// The columns for an image: the matrix file's variants, or the
/// `--variants` axes.
fn plans(arch: &str, axes: &[String], entries: &[VariantEntry]) -> Result<Vec<Plan>, CliError> {
    if entries.is_empty() {
        return Ok(variants(arch, axes)?
            .into_iter()
            .map(|p| Plan {
                variant: variant_name(&p, arch),
                platform: p,
                cpus: None,
                memory_mib: None,
                cmdline: None,
                timeout: None,
                required: true,
                skip: None,
            })
            .collect());
    }
    Ok(entries
        .iter()
        .map(|e| {
            let platform = e.platform().unwrap_or_default();
            Plan {
                variant: e
                    .name
                    .clone()
                    .unwrap_or_else(|| variant_name(&platform, arch)),
                platform,
                cpus: e.cpus,
                memory_mib: e.memory,
                cmdline: e.cmdline.clone(),
                timeout: e.timeout,
                required: e.required,
                skip: e.unavailable_on(arch),
            }
        })
        .collect())
}

/// A kernel from outside the images (`--kernel`, `[[kernel]]`), opened once.
pub(crate) struct KernelChoice {
    /// Display name: the matrix entry's `name`, else the release.
    label: String,
    kernel: ExternalKernel,
    /// Only these images (by name), else every image of its arch.
    images: Option<Vec<String>>,
    required: bool,
}

/// Opens the `--kernel` paths and the matrix file's `[[kernel]]` entries.
fn open_kernels(
    args: &RunArgs,
    file: Option<&crate::matrix::MatrixFile>,
) -> Result<Vec<KernelChoice>, CliError> {
    let cache = crate::boot::cache_dir();
    let mut out: Vec<KernelChoice> = Vec::new();
    let entries = file.map_or(&[][..], |f| &f.kernels[..]);
    let given = args
        .kernels
        .iter()
        .map(|p| (None, p, None, None, true))
        .chain(entries.iter().map(|k| {
            (
                k.name.clone(),
                &k.path,
                k.modules.as_deref(),
                k.images.clone(),
                k.required,
            )
        }));
    for (name, path, modules, images, required) in given {
        let kernel = package::open(path, modules, &cache).map_err(|e| {
            CliError::with_hint(
                format!("kernel {}: {e}", path.display()),
                "give a Debian kernel package (linux-image-*.deb), a directory with an unpacked one, or a kernel file (with `modules` in a [[kernel]] entry)",
            )
        })?;
        let label = name.unwrap_or_else(|| kernel.version.clone());
        if out.iter().any(|k| k.label == label) {
            return Err(CliError::with_hint(
                format!("two kernels are named {label}"),
                "give each [[kernel]] entry its own `name`",
            ));
        }
        out.push(KernelChoice {
            label,
            kernel,
            images,
            required,
        });
    }
    Ok(out)
}

/// Where an image's OS root is, for the agent to mount.
struct RootFs {
    device: String,
    fstype: &'static str,
}

/// The OS root: the one the kernel command line's `root=` names
/// (`UUID=…`, `PARTUUID=…`, `LABEL=…`), else the filesystem with an
/// os-release.
fn find_root(img: &OpenedImage, cmdline: Option<&str>) -> Result<RootFs, String> {
    let from_cmdline = cmdline
        .and_then(|c| c.split_whitespace().find_map(|t| t.strip_prefix("root=")))
        .and_then(|v| parse_target(&format!("{v}:/")).part)
        .and_then(|sel| img.select(&sel).ok());
    let root = from_cmdline
        .or_else(|| img.slots.iter().find(|s| s.is_root))
        .filter(|s| s.volume.is_some())
        .ok_or("no root filesystem: the kernel's root= names none in the image, and none has /etc/os-release")?;
    let fstype = fs_type(root.kind)
        .ok_or_else(|| format!("the OS root is {}, which `run` cannot mount", root.kind))?;
    Ok(RootFs {
        device: match &root.partition {
            Some(_) => format!("vda{}", root.number),
            None => "vda".into(),
        },
        fstype,
    })
}

/// The modules the agent needs to mount a root of `fstype` and overlay it.
fn wanted_modules(fstype: &str) -> Vec<&'static str> {
    let mut wanted: Vec<&str> = AGENT_MODULES.to_vec();
    wanted.extend(fs_modules(fstype));
    wanted.push("overlay");
    wanted
}

/// An image's rows: its own kernel (unless `image_kernel = false`) and
/// each extra kernel of its architecture, each × the variants.
fn prepare_rows(
    source: &RowSource,
    args: &RunArgs,
    axes: &[String],
    entries: &[VariantEntry],
    kernels: &[KernelChoice],
    work: &Path,
    index: usize,
) -> Result<Vec<Row>, CliError> {
    let path = &source.path;
    let img = open(&ImageArgs {
        image: path.to_path_buf(),
        allow_backing: args.allow_backing,
    })?;
    let arch = match &source.arch {
        None => resolve_arch(&img, "auto")?,
        Some(declared) => {
            let arch = resolve_arch(&img, declared)?;
            match bootproof_boot::chain::detect_arch(&img) {
                Some(found) if found != arch => {
                    return Err(CliError::with_hint(
                        format!(
                            "image {}: the matrix file says arch = {declared:?}, but {} holds a {} system",
                            source.name,
                            path.display(),
                            found.name()
                        ),
                        "fix `arch` or `path` in the [[image]] entry",
                    ))
                }
                _ => arch,
            }
        }
    };
    let arch_name = arch.name();
    let kernel_dir = work.join(format!("kernel-{index}"));
    let base = |name: String, kernel: String| -> Result<Row, CliError> {
        Ok(Row {
            image: path.to_path_buf(),
            name,
            kernel,
            kernel_sha256: None,
            required: source.required,
            timeout: source.timeout,
            arch: arch_name,
            version: None,
            format: img.image.format().to_string(),
            size: img.image.size(),
            closure: Closure::default(),
            root_device: String::new(),
            root_fstype: String::new(),
            how: How::Agent {
                kernel: kernel_dir.join("kernel"),
                cmdline_append: args.cmdline_append.clone(),
            },
            problem: None,
            plans: plans(arch_name, axes, entries)?,
        })
    };
    // A row for an extra kernel: its name, release and `required`.
    let extra_row = |k: &KernelChoice| -> Result<Row, CliError> {
        let mut row = base(format!("{}@{}", source.name, k.label), k.label.clone())?;
        row.version = Some(k.kernel.version.clone());
        row.required &= k.required;
        Ok(row)
    };
    let extra: Vec<&KernelChoice> = kernels
        .iter()
        .filter(|k| {
            k.kernel.arch == arch_name
                && k.images
                    .as_ref()
                    .is_none_or(|names| names.contains(&source.name))
        })
        .collect();
    let mut rows = Vec::new();
    let mut own = base(source.name.clone(), IMAGE_KERNEL.into())?;
    if args.mode == "full" {
        match SeedKind::parse(&args.seed).or_else(|| detect_seed(&img)) {
            Some(seed) => own.how = How::Full { seed },
            None => {
                own.problem = Some(
                    "full mode needs cloud-init or Ignition in the image, and it has neither"
                        .into(),
                )
            }
        }
        for plan in &mut own.plans {
            if plan.cmdline.is_some() && plan.skip.is_none() {
                plan.skip = Some("cmdline additions need agent mode (the image's boot chain owns the command line)".into());
            }
        }
        if source.image_kernel {
            rows.push(own);
        }
        for k in extra {
            let mut row = extra_row(k)?;
            for plan in &mut row.plans {
                plan.skip.get_or_insert_with(|| {
                    "another kernel needs agent mode (full mode boots the image's own boot chain)"
                        .into()
                });
            }
            rows.push(row);
        }
        return Ok(rows);
    }
    let picked = pick_entry(&img, arch, None).and_then(|(chain, entry, _)| {
        extract(&img, &chain, &entry, &kernel_dir).map_err(|e| CliError::with_hint(e, ""))
    });
    let root = find_root(&img, picked.as_ref().ok().map(|m| m.cmdline.as_str()));
    if let Ok(r) = &root {
        own.root_device.clone_from(&r.device);
        own.root_fstype = r.fstype.into();
    }
    if source.image_kernel {
        // (extract hashed the kernel it wrote.)
        if let Ok(manifest) = &picked {
            own.kernel_sha256 = Some(manifest.kernel.sha256.clone());
        }
        match (&picked, &root) {
            (Err(e), _) => own.problem = Some(format!("no kernel to boot: {e}")),
            (_, Err(e)) => own.problem = Some(e.clone()),
            (Ok(manifest), Ok(r)) => {
                own.version.clone_from(&manifest.kernel_version);
                let wanted = wanted_modules(r.fstype);
                own.closure = match own.version.as_deref().and_then(|v| module_dir(&img, v)) {
                    Some((slot, dir)) => {
                        let vol = img.slots[slot].volume.as_ref().expect("checked");
                        modules::resolve(&InImage { volume: vol, dir }, &wanted)
                    }
                    None => no_modules(&wanted, "the kernel's modules are not in the image"),
                };
            }
        }
        rows.push(own);
    }
    for k in extra {
        let mut row = extra_row(k)?;
        row.kernel_sha256 = Some(k.kernel.sha256.clone());
        row.how = How::Agent {
            kernel: k.kernel.kernel.clone(),
            cmdline_append: args.cmdline_append.clone(),
        };
        match &root {
            Err(e) => row.problem = Some(e.clone()),
            Ok(r) => {
                row.root_device.clone_from(&r.device);
                row.root_fstype = r.fstype.into();
                let wanted = wanted_modules(r.fstype);
                row.closure = match &k.kernel.modules {
                    Some(dir) => modules::resolve(&HostDir(dir.clone()), &wanted),
                    None => no_modules(
                        &wanted,
                        "no module directory was given (built-in drivers only)",
                    ),
                };
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The closure when there is no module tree to resolve from: every wanted
/// module missing, and why.
fn no_modules(wanted: &[&str], why: &str) -> Closure {
    Closure {
        missing: wanted.iter().map(|s| s.to_string()).collect(),
        dependency_source: format!("none: {why}"),
        ..Closure::default()
    }
}

/// Cell results as they complete: on a terminal, a progress bar naming
/// the cells running now, with each finished cell printed above it; else
/// one line per finished cell. Silent for machine-readable output.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    running: Mutex<Vec<String>>,
    done: std::sync::atomic::AtomicUsize,
    total: usize,
    quiet: bool,
}

impl Progress {
    fn new(total: usize, quiet: bool) -> Progress {
        use std::io::IsTerminal;
        let bar = (!quiet && total > 0 && std::io::stderr().is_terminal()).then(|| {
            let pb = indicatif::ProgressBar::new(total as u64);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {elapsed:>4} [{bar:24}] {pos}/{len} {wide_msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            pb.enable_steady_tick(std::time::Duration::from_millis(120));
            pb
        });
        Progress {
            bar,
            running: Mutex::new(Vec::new()),
            done: std::sync::atomic::AtomicUsize::new(0),
            total,
            quiet,
        }
    }

    fn show_running(&self, running: &[String]) {
        if let Some(pb) = &self.bar {
            pb.set_message(format!("running: {}", running.join(", ")));
        }
    }

    /// A cell started.
    fn start(&self, id: &str) {
        if let Ok(mut r) = self.running.lock() {
            r.push(id.to_string());
            self.show_running(&r);
        }
    }

    /// A cell finished: `line` says how.
    fn finish(&self, id: &str, line: &str) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Ok(mut r) = self.running.lock() {
            r.retain(|x| x != id);
            self.show_running(&r);
        }
        let text = format!("  [{n}/{}] {line}", self.total);
        match &self.bar {
            Some(pb) => {
                pb.println(text);
                pb.inc(1);
            }
            None if !self.quiet => eprintln!("{text}"),
            None => {}
        }
    }

    fn end(&self) {
        if let Some(pb) = &self.bar {
            pb.finish_and_clear();
        }
    }
}

/// FNV-1a, 64-bit: a hash that is the same on every machine and release
/// (std's hashers are not), for `--shard`.
fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn parse_shard(s: &str) -> Result<(u64, u64), CliError> {
    let bad = || {
        CliError::with_hint(
            format!("bad --shard `{s}`"),
            "write K/N with 1 <= K <= N, e.g. 2/4",
        )
    };
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (u64, u64) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if n == 0 || k == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// VMs that fit in 75% of the memory available now (1 GiB guest + QEMU).
fn memory_slots() -> usize {
    let avail_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(4 << 20);
    ((avail_kib * 3 / 4) / ((1024 + 256) * 1024)).max(1) as usize
}

/// The verdict from one finished boot.
fn judge(v: &VariantResult, expect: i32) -> (CellStatus, String) {
    let command = v.records.iter().find_map(|r| match r {
        Record::Command {
            exit_code,
            signal,
            timed_out,
            error,
            ..
        } => Some((*exit_code, *signal, *timed_out, error.clone())),
        _ => None,
    });
    match command {
        None => (
            CellStatus::BootFailure,
            format!(
                "the agent never reported a command result: {}",
                outcome_words(&v.boot.outcome)
            ),
        ),
        Some((_, _, _, Some(e))) => (
            CellStatus::BootFailure,
            format!("the agent could not run it: {e}"),
        ),
        Some((_, _, true, _)) => (CellStatus::Fail, "timed out and was killed".into()),
        Some((Some(code), _, _, _)) if code == expect => (CellStatus::Pass, format!("exit {code}")),
        Some((Some(code), _, _, _)) => {
            (CellStatus::Fail, format!("exit {code} (expected {expect})"))
        }
        Some((None, Some(sig), _, _)) => (CellStatus::Fail, format!("killed by signal {sig}")),
        Some((None, None, _, _)) => (CellStatus::Fail, "ended with no status".into()),
    }
}

/// Writes one cell's evidence directory.
fn write_evidence(dir: &Path, cell: &Cell, accel: &serde_json::Value) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("stdout.txt"), &cell.stdout)?;
    std::fs::write(dir.join("stderr.txt"), &cell.stderr)?;
    if let Some(v) = &cell.run {
        let mut records = String::new();
        for r in &v.records {
            records.push_str(&serde_json::to_string(r).unwrap_or_default());
            records.push('\n');
        }
        std::fs::write(dir.join("records.jsonl"), records)?;
        std::fs::write(dir.join("qemu-cmdline.txt"), v.qemu.join("\n") + "\n")?;
    }
    let doc = json!({ "cell": cell, "accel": accel });
    std::fs::write(
        dir.join("cell.json"),
        serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?,
    )
}

pub fn run(args: &RunArgs) -> Result<u8, CliError> {
    let run_started = (std::time::SystemTime::now(), std::time::Instant::now());
    let shard = args.shard.as_deref().map(parse_shard).transpose()?;
    if args.mode == "full" && args.cmdline_append.is_some() {
        return Err(CliError::with_hint(
            "--cmdline-append applies to agent mode: in full mode the image's boot chain owns the kernel command line",
            "drop --mode full, or change the command line in the image",
        ));
    }
    // The shipped files, by name (names must be unique: they become
    // BOOTPROOF_BIN_<NAME>).
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for b in &args.binaries {
        let name = b
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                CliError::with_hint(
                    format!("--binary {}: not a file", b.display()),
                    "name a file",
                )
            })?;
        if names
            .iter()
            .any(|n| binary_env_var(n) == binary_env_var(&name))
        {
            return Err(CliError::with_hint(
                format!("two --binary files map to {}", binary_env_var(&name)),
                "rename one of them",
            ));
        }
        let data = std::fs::read(b).map_err(|e| {
            CliError::with_hint(format!("--binary {}: {e}", b.display()), "check the path")
        })?;
        files.push((format!("{BINARIES_DIR}/{name}"), data));
        names.push(name);
    }
    let base = state::base_dir();
    state::clean_stale(&base);
    let work = RunDir::create(&base)?;
    let st = Style::stderr(args.output.color);
    let mut rows = Vec::new();
    // `--variants` takes every word up to the next option; the ones that
    // are not AXIS=VALUES are images (`--variants gic=3 disk.raw`).
    let (axes, stray) = axes_and_images(&args.variants);
    let file = args
        .matrix
        .as_deref()
        .map(crate::matrix::load)
        .transpose()?;
    let name_of = |p: &Path| {
        p.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    let mut sources: Vec<RowSource> = Vec::new();
    let mut catalog: Option<crate::catalog::Catalog> = None;
    for e in file.iter().flat_map(|f| &f.images) {
        let (path, arch) = match (&e.path, &e.catalog) {
            (Some(p), _) => (p.clone(), e.arch.clone()),
            (None, name) => {
                let name = name.as_deref().unwrap_or_default();
                if catalog.is_none() {
                    let mut extra: Vec<PathBuf> =
                        file.iter().filter_map(|f| f.catalog.clone()).collect();
                    extra.extend(args.catalogs.iter().cloned());
                    catalog = Some(crate::catalog::Catalog::load(&extra)?);
                }
                let quiet = args.output.json || args.junit || args.markdown;
                let (path, arch) = crate::catalog::resolve(
                    catalog.as_ref().expect("loaded"),
                    name,
                    e.arch.as_deref(),
                    quiet,
                )?;
                (path, Some(arch))
            }
        };
        sources.push(RowSource {
            name: e
                .name
                .clone()
                .or_else(|| e.catalog.clone())
                .unwrap_or_else(|| name_of(&path)),
            path,
            required: e.required,
            timeout: e.timeout,
            image_kernel: e.image_kernel,
            arch,
        });
    }
    for p in stray.iter().chain(&args.images) {
        sources.push(RowSource {
            name: name_of(p),
            path: p.clone(),
            required: true,
            timeout: None,
            image_kernel: true,
            arch: None,
        });
    }
    if sources.is_empty() {
        return Err(CliError::with_hint(
            "no image to run in",
            "bootproof run IMAGE... -- COMMAND..., or --matrix FILE with [[image]] entries",
        ));
    }
    if file.as_ref().is_some_and(|f| !f.variants.is_empty()) && !axes.is_empty() {
        return Err(CliError::with_hint(
            "--variants and a matrix file's [[variant]] entries both name the columns",
            "use one of them",
        ));
    }
    let entries: &[VariantEntry] = file.as_ref().map_or(&[], |f| &f.variants);
    let retries = args
        .retries
        .or(file.as_ref().and_then(|f| f.retries))
        .unwrap_or(1);
    let file_timeout = file.as_ref().and_then(|f| f.timeout);
    let kernels = open_kernels(args, file.as_ref())?;
    for k in &kernels {
        for name in k.images.iter().flatten() {
            if !sources.iter().any(|s| s.name == *name) {
                return Err(CliError::with_hint(
                    format!(
                        "kernel {}: `images` names {name}, which is no image of the run",
                        k.label
                    ),
                    format!(
                        "images: {}",
                        sources
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
    }
    for (i, source) in sources.iter().enumerate() {
        rows.extend(prepare_rows(
            source,
            args,
            &axes,
            entries,
            &kernels,
            work.path(),
            i,
        )?);
    }
    if rows.is_empty() {
        return Err(CliError::with_hint(
            "no cell to run: every image has image_kernel = false and no kernel of its architecture",
            "add a [[kernel]] for the images' architecture, or drop image_kernel = false",
        ));
    }
    // Agents, one per architecture in the matrix.
    let mut agents: Vec<(&str, Vec<u8>)> = Vec::new();
    for row in &rows {
        if !agents.iter().any(|(a, _)| *a == row.arch) {
            let path = crate::verify::find_agent(row.arch)?;
            agents.push((row.arch, std::fs::read(&path)?));
        }
    }
    let arches: Vec<&str> = agents.iter().map(|(a, _)| *a).collect();
    let decisions: Vec<(&str, bootproof_vm::accel::Decision)> =
        arches.iter().map(|a| (*a, choose_accel(a).0)).collect();
    let decision = |arch: &str| {
        decisions
            .iter()
            .find(|(a, _)| *a == arch)
            .map(|(_, d)| d.clone())
            .expect("every arch has a decision")
    };
    let timeout = match (args.timeout.or(file_timeout), args.mode == "full") {
        (None, true) => deadline(None, decision(rows[0].arch).accel) * 2,
        (t, _) => deadline(t, decision(rows[0].arch).accel),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = args
        .jobs
        .unwrap_or_else(|| cores.min(memory_slots()))
        .max(1);
    let cpus = 2u32.min(cores as u32).max(1);

    // Cells: every image × its variants; another shard's are skipped.
    struct Pending {
        idx: usize,
        row: usize,
        plan: usize,
        id: String,
    }
    let mut pending = Vec::new();
    let mut cells: Vec<Option<Cell>> = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        for (pi, plan) in row.plans.iter().enumerate() {
            let id = format!("{} / {}", row.name, plan.variant);
            let idx = cells.len();
            let mine = shard.is_none_or(|(k, n)| stable_hash(&id) % n == k - 1);
            let skip = match (&plan.skip, mine) {
                (Some(why), _) => Some(why.clone()),
                (None, false) => Some(format!(
                    "another shard's ({})",
                    args.shard.as_deref().unwrap_or("")
                )),
                (None, true) => None,
            };
            match skip {
                Some(why) => {
                    let mut cell = Cell::new(row, plan, id);
                    cell.status = CellStatus::Skipped;
                    cell.detail = why;
                    cells.push(Some(cell));
                }
                None => {
                    cells.push(None);
                    pending.push(Pending {
                        idx,
                        row: r,
                        plan: pi,
                        id,
                    });
                }
            }
        }
    }
    let total = pending.len();
    let quiet = args.output.json || args.junit || args.markdown;
    if !quiet {
        let mut images: Vec<&Path> = rows.iter().map(|r| r.image.as_path()).collect();
        images.dedup();
        let extra = kernels.len();
        eprintln!(
            "{} {} cell(s) ({} image(s){}), {} at a time, {}: {}",
            st.bold("Running"),
            total,
            images.len(),
            if extra > 0 {
                format!(", {extra} extra kernel(s)")
            } else {
                String::new()
            },
            workers.min(total.max(1)),
            decisions
                .iter()
                .map(|(a, d)| format!(
                    "{a} {}",
                    match d.accel {
                        Accel::Kvm => "KVM",
                        Accel::Tcg => "TCG",
                    }
                ))
                .collect::<Vec<_>>()
                .join(", "),
            shell_words(&args.command)
        );
    }
    let interrupted = interrupt_flag();
    pending.reverse();
    let queue = Mutex::new(pending);
    let finished: Mutex<Vec<(usize, Cell)>> = Mutex::new(Vec::new());
    let progress = Progress::new(total, quiet);
    let ctxs: Vec<Ctx> = rows
        .iter()
        .map(|row| Ctx {
            image: &row.image,
            image_format: row.format.clone(),
            image_size: row.size,
            arch: row.arch,
            agent: &agents
                .iter()
                .find(|(a, _)| *a == row.arch)
                .expect("built")
                .1,
            how: &row.how,
            closure: Some(&row.closure),
            version: row.version.as_deref(),
            console: if row.arch == "aarch64" {
                "ttyAMA0"
            } else {
                "ttyS0"
            },
            cpus,
            decision: decision(row.arch),
            timeout,
            base: base.clone(),
            interrupted: &interrupted,
        })
        .collect();
    // The images' digests for the history, read while the cells run (and
    // cached in the history database by size and mtime).
    let digests: Mutex<Vec<(PathBuf, Option<String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        if !args.no_history {
            scope.spawn(|| {
                let mut seen: Vec<&Path> = Vec::new();
                for r in &rows {
                    if !seen.contains(&r.image.as_path()) {
                        seen.push(&r.image);
                        let d = crate::history::file_sha256(&r.image, &interrupted);
                        if let Ok(mut v) = digests.lock() {
                            v.push((r.image.clone(), d));
                        }
                    }
                }
            });
        }
        for _ in 0..workers.min(total.max(1)) {
            scope.spawn(|| loop {
                let Some(job) = queue.lock().ok().and_then(|mut q| q.pop()) else {
                    return;
                };
                let row = &rows[job.row];
                let plan = &row.plans[job.plan];
                let variant = plan.variant.clone();
                let started = std::time::Instant::now();
                let evidence = args.evidence.as_ref().map(|d| {
                    d.join(file_component(&row.name))
                        .join(file_component(&variant))
                });
                progress.start(&job.id);
                let mut cell = Cell::new(row, plan, job.id.clone());
                cell.status = CellStatus::InfraError;
                cell.evidence = evidence.clone();
                let cell_timeout = plan
                    .timeout
                    .or(row.timeout)
                    .map(std::time::Duration::from_secs)
                    .unwrap_or(timeout);
                if let Some(problem) = &row.problem {
                    cell.status = CellStatus::BootFailure;
                    cell.detail = problem.clone();
                } else {
                    let mut env = vec![
                        (
                            "BOOTPROOF_IMAGE".to_string(),
                            row.image
                                .file_name()
                                .unwrap_or_default()
                                .to_string_lossy()
                                .into_owned(),
                        ),
                        ("BOOTPROOF_VARIANT".to_string(), variant.clone()),
                    ];
                    env.sort();
                    let spec = RunSpec {
                        argv: args.command.clone(),
                        env,
                        root_device: row.root_device.clone(),
                        root_fstype: row.root_fstype.clone(),
                        binaries: names.clone(),
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
                        if interrupted.load(Ordering::Relaxed) {
                            cell.status = CellStatus::Skipped;
                            cell.detail = "interrupted".into();
                            break;
                        }
                        cell.attempts += 1;
                        let task = Task {
                            run: Some(spec.clone()),
                            files: files.clone(),
                            keep_console: console_copy.clone(),
                            cpus: plan.cpus,
                            memory_mib: plan.memory_mib,
                            cmdline_append: plan.cmdline.clone(),
                            timeout: Some(cell_timeout),
                            ..Task::new(variant.clone(), plan.platform.clone())
                        };
                        match run_variant(&ctxs[job.row], &task) {
                            Ok(v) => {
                                let (status, detail) = judge(&v, args.expect_exit);
                                cell.status = status;
                                cell.detail = detail;
                                if let Some(Record::Command {
                                    exit_code,
                                    signal,
                                    timed_out,
                                    stdout,
                                    stderr,
                                    secs,
                                    ..
                                }) = v
                                    .records
                                    .iter()
                                    .find(|r| matches!(r, Record::Command { .. }))
                                {
                                    cell.exit_code = *exit_code;
                                    cell.signal = *signal;
                                    cell.timed_out = *timed_out;
                                    cell.stdout = stdout.clone();
                                    cell.stderr = stderr.clone();
                                    cell.command_secs = Some(*secs);
                                }
                                // Full mode: the kernel as the agent saw it.
                                if cell.kernel_version.is_none() {
                                    cell.kernel_version = v.records.iter().find_map(|r| match r {
                                        Record::Hello { kernel, .. } => Some(kernel.clone()),
                                        _ => None,
                                    });
                                }
                                cell.run = Some(v);
                                break;
                            }
                            Err(e) => {
                                cell.infra_errors.push(e.clone());
                                cell.detail = e;
                                if cell.attempts > retries {
                                    break;
                                }
                            }
                        }
                    }
                }
                cell.secs = started.elapsed().as_secs_f64();
                if let Some(dir) = &evidence {
                    let accel = serde_json::to_value(decision(row.arch)).unwrap_or_default();
                    if let Err(e) = write_evidence(dir, &cell, &accel) {
                        cell.detail
                            .push_str(&format!(" (evidence not written: {e})"));
                    }
                }
                progress.finish(
                    &cell.id,
                    &format!(
                        "{}: {} ({}, {:.1} s)",
                        cell.id,
                        status_word(&st, &cell.status),
                        cell.detail,
                        cell.secs
                    ),
                );
                if let Ok(mut f) = finished.lock() {
                    f.push((job.idx, cell));
                }
            });
        }
    });
    progress.end();
    let digests = digests.into_inner().unwrap_or_default();
    for (idx, cell) in finished.into_inner().unwrap_or_default() {
        cells[idx] = Some(cell);
    }
    let cells: Vec<Cell> = cells.into_iter().flatten().collect();
    let views: Vec<CellView> = cells.iter().map(CellView::from).collect();
    let summary = summary(&views);
    let code = if interrupted.load(Ordering::Relaxed) {
        EXIT_INTERRUPTED
    } else {
        exit_status(&views)
    };
    let history_run = if args.no_history || interrupted.load(Ordering::Relaxed) {
        None
    } else {
        let facts: Vec<ImageFacts> = rows
            .iter()
            .map(|r| ImageFacts {
                name: r.name.clone(),
                size: r.size,
                image_sha256: digests
                    .iter()
                    .find(|(p, _)| *p == r.image)
                    .and_then(|(_, d)| d.clone()),
                kernel_sha256: r.kernel_sha256.clone(),
            })
            .collect();
        match record(
            &args.command,
            args.shard.as_deref(),
            run_started.0,
            run_started.1.elapsed().as_secs_f64(),
            code,
            &cells,
            &facts,
        ) {
            Ok(id) => Some(id),
            Err(e) => {
                eprintln!("{} {e}", st.yellow("warning: the run was not recorded:"));
                None
            }
        }
    };
    let doc = json!({
        "schema": "bootproof.run/v1",
        "command": args.command,
        "expect_exit": args.expect_exit,
        "shard": args.shard,
        "binaries": names,
        "kernels": kernels
            .iter()
            .map(|k| {
                let mut v = serde_json::to_value(&k.kernel).unwrap_or_default();
                v["name"] = json!(k.label);
                v
            })
            .collect::<Vec<_>>(),
        "accel": decisions.iter().map(|(a, d)| json!({ "arch": a, "decision": d })).collect::<Vec<_>>(),
        "cells": cells,
        "summary": summary,
        "passed": code == EXIT_OK,
        "history_run": history_run,
    });
    if let Some(path) = &args.html {
        std::fs::write(path, crate::html::render(&doc)).map_err(|e| {
            CliError::with_hint(
                format!("--html {}: {e}", path.display()),
                "check the directory exists and is writable",
            )
        })?;
    }
    let mut out = std::io::stdout().lock();
    if args.junit {
        out.write_all(junit(&views).as_bytes())?;
    } else if args.markdown {
        out.write_all(markdown(&views, &args.command).as_bytes())?;
    } else if args.output.json {
        serde_json::to_writer_pretty(&mut out, &doc).map_err(std::io::Error::other)?;
        writeln!(out)?;
    } else {
        human(&mut out, &cells, args)?;
        if let Some(path) = &args.html {
            writeln!(out, "HTML report: {}", path.display())?;
        }
    }
    Ok(code)
}

/// The command as a user would retype it (for display only; it is never
/// parsed back).
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn status_word(st: &Style, s: &CellStatus) -> String {
    match s {
        CellStatus::Pass => st.green("pass"),
        CellStatus::Fail => st.red_bold("FAIL"),
        CellStatus::BootFailure => st.red_bold("BOOT FAILURE"),
        CellStatus::InfraError => st.yellow("INFRA ERROR"),
        CellStatus::Skipped => st.dim("skipped"),
    }
}

fn human(out: &mut impl Write, cells: &[Cell], args: &RunArgs) -> std::io::Result<()> {
    let so = Style::stdout(args.output.color);
    let width = cells
        .iter()
        .map(|c| c.id.chars().count())
        .max()
        .unwrap_or(4);
    for c in cells {
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
    Ok(())
}

/// What the Markdown and JUnit reports need of a cell: made from a live
/// [`Cell`], or read back from a `bootproof.run/v1` file (`report merge`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct CellView {
    /// `image / variant` (matches cells across shards).
    pub id: String,
    /// Image name.
    pub name: String,
    /// Variant name.
    pub variant: String,
    /// Verdict.
    pub status: CellStatus,
    /// In words.
    pub detail: String,
    /// Output tails.
    #[serde(default)]
    pub stdout: String,
    /// Output tails.
    #[serde(default)]
    pub stderr: String,
    /// The kernel booted.
    #[serde(default)]
    pub kernel_version: Option<String>,
    /// Counts for the exit status.
    #[serde(default = "required_default")]
    pub required: bool,
}

fn required_default() -> bool {
    true
}

impl From<&Cell> for CellView {
    fn from(c: &Cell) -> CellView {
        CellView {
            id: c.id.clone(),
            name: c.name.clone(),
            variant: c.variant.clone(),
            status: c.status.clone(),
            detail: c.detail.clone(),
            stdout: c.stdout.clone(),
            stderr: c.stderr.clone(),
            kernel_version: c.kernel_version.clone(),
            required: c.required,
        }
    }
}

/// The run's exit status from its cells: 1 a required cell failed or did
/// not boot, else 3 a required cell had an infra error, else 0.
pub fn exit_status(cells: &[CellView]) -> u8 {
    let required = |s: CellStatus| cells.iter().any(|c| c.required && c.status == s);
    if required(CellStatus::Fail) || required(CellStatus::BootFailure) {
        EXIT_FAIL
    } else if required(CellStatus::InfraError) {
        EXIT_INFRA
    } else {
        EXIT_OK
    }
}

/// Cells per status, for reports.
pub fn summary(cells: &[CellView]) -> serde_json::Value {
    let count_of = |s: CellStatus| cells.iter().filter(|c| c.status == s).count();
    json!({
        "pass": count_of(CellStatus::Pass),
        "fail": count_of(CellStatus::Fail),
        "boot_failure": count_of(CellStatus::BootFailure),
        "infra_error": count_of(CellStatus::InfraError),
        "skipped": count_of(CellStatus::Skipped),
    })
}

/// The Markdown summary: images × variants.
pub fn markdown(cells: &[CellView], command: &[String]) -> String {
    let mut variants: Vec<&str> = Vec::new();
    let mut images: Vec<&str> = Vec::new();
    for c in cells {
        if !variants.contains(&c.variant.as_str()) {
            variants.push(&c.variant);
        }
        if !images.contains(&c.name.as_str()) {
            images.push(&c.name);
        }
    }
    let mut s = format!(
        "### `bootproof run` — `{}`\n\n| image | kernel |",
        shell_words(command).replace('|', "\\|")
    );
    for v in &variants {
        s.push_str(&format!(" {v} |"));
    }
    s.push_str("\n|---|---|");
    s.push_str(&"---|".repeat(variants.len()));
    s.push('\n');
    for img in &images {
        let row: Vec<&CellView> = cells.iter().filter(|c| c.name == *img).collect();
        s.push_str(&format!(
            "| {} | {} |",
            img,
            row.first()
                .and_then(|c| c.kernel_version.as_deref())
                .unwrap_or("–")
        ));
        for v in &variants {
            let cell = row.iter().find(|c| c.variant == *v);
            let text = match cell {
                None => "–".to_string(),
                Some(c) => {
                    let what = match c.status {
                        CellStatus::Pass => "✅",
                        CellStatus::Fail => "❌",
                        CellStatus::BootFailure => "💥",
                        CellStatus::InfraError => "⚠️",
                        CellStatus::Skipped => "⏭️",
                    };
                    format!("{what} {}", c.detail.replace('|', "\\|"))
                }
            };
            s.push_str(&format!(" {text} |"));
        }
        s.push('\n');
    }
    s.push_str("\n✅ pass · ❌ the command failed · 💥 the guest never ran it · ⚠️ infra error · ⏭️ skipped\n");
    s
}

/// The JUnit report: one test case per cell.
pub fn junit(cells: &[CellView]) -> String {
    use crate::junit::{render, Case, CaseOutcome, Suite};
    let cases = cells
        .iter()
        .map(|c| Case {
            class: c.name.clone(),
            name: c.variant.clone(),
            outcome: match c.status {
                CellStatus::Pass => CaseOutcome::Pass(c.stdout.clone()),
                CellStatus::Skipped => CaseOutcome::Skip(c.detail.clone()),
                CellStatus::Fail | CellStatus::BootFailure | CellStatus::InfraError => {
                    CaseOutcome::Fail {
                        kind: match c.status {
                            CellStatus::Fail => "fail",
                            CellStatus::BootFailure => "boot-failure",
                            _ => "infra-error",
                        }
                        .into(),
                        message: c.detail.clone(),
                        body: format!("stdout:\n{}\nstderr:\n{}", c.stdout, c.stderr),
                    }
                }
            },
        })
        .collect();
    render(
        "bootproof run",
        &[Suite {
            name: "bootproof run".into(),
            cases,
        }],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_cells_stably() {
        let ids: Vec<String> = (0..200)
            .map(|i| format!("img{i}.raw / gic3 acpi-on pci"))
            .collect();
        let mut seen = vec![0; ids.len()];
        for k in 1..=4 {
            for (i, id) in ids.iter().enumerate() {
                if stable_hash(id) % 4 == k - 1 {
                    seen[i] += 1;
                }
            }
        }
        assert!(
            seen.iter().all(|&n| n == 1),
            "every cell in exactly one shard"
        );
        // The hash is FNV-1a: fixed across machines and releases.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert!(
            parse_shard("0/4").is_err() && parse_shard("5/4").is_err() && parse_shard("x").is_err()
        );
        assert_eq!(parse_shard("2/4").unwrap(), (2, 4));
    }

    #[test]
    fn shell_words_quote_for_display() {
        assert_eq!(
            shell_words(&["sh".into(), "-c".into(), "echo 'x' $(id)".into()]),
            "sh -c 'echo '\\''x'\\'' $(id)'"
        );
    }
}
