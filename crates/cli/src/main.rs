//! `bootproof`: the command-line front end. Each subcommand is clap →
//! a typed request → a library call (`bootproof_runtime` for the engine,
//! the pipeline crates for static work) → rendering (human, JSON, JUnit,
//! Markdown, HTML). This file only parses arguments, dispatches and maps
//! errors to exit codes.

mod args;
mod boot;
mod cat;
mod check;
mod extract;
mod fetch;
mod history;
mod inspect;
mod ls;
mod manual;
mod progress;
mod prove;
mod report;
mod run;
mod session;
mod style;
mod verify;

use args::{ArchArgs, ImageArgs, OutputArgs};
use bootproof_runtime::exit;
use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Exit status:
  0    success
  1    `check`: a rule of severity error failed; `boot`: the boot failed,
       stalled or timed out
  2    usage error, unreadable image, a path that does not exist, or a VM
       that could not run
  130  `boot` interrupted (Ctrl-C)

Images are always opened read-only; no root, loop devices or mounts are used.
QEMU runs under its seccomp sandbox; when bootproof runs as root, QEMU switches
to 65534:65534 before the guest starts (BOOTPROOF_QEMU_USER=uid:gid, a user
name, or root to keep it privileged).
Run `bootproof COMMAND --help` for examples.";

/// Prove VM images boot. Reads aarch64, x86_64 and riscv64 disk images
/// in-process (raw, qcow2, VHD/VHDX, VMDK; GPT/MBR, LVM2; FAT, ext2/3/4,
/// XFS, Btrfs, ISO9660) without root or mounts, checks and extracts their
/// boot chain, boots them under QEMU, and runs checks and commands inside.
#[derive(Parser)]
#[command(name = "bootproof", version, after_help = AFTER_HELP, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the image format and backing chain, partition table, filesystems,
    /// the ESP's EFI/ tree, os-release and kernels/initrds found.
    #[command(
        after_help = "Examples:\n  bootproof inspect disk.qcow2\n  bootproof inspect --json disk.raw | jq '.filesystems[].type'\n  bootproof inspect --allow-backing overlay.qcow2"
    )]
    Inspect {
        #[command(flatten)]
        image: ImageArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List a directory inside the image (like `ls`).
    #[command(after_help = ls::AFTER_HELP)]
    Ls {
        #[command(flatten)]
        image: ImageArgs,
        /// [PART:]PATH. PART is a partition number or LABEL=, UUID=, PARTLABEL=,
        /// PARTUUID=; without it, the filesystem that has PATH (OS roots first).
        #[arg(default_value = "/")]
        target: String,
        /// Long listing: type, mode, owner, size, modification time, link target.
        #[arg(short, long)]
        long: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Check VM-spec compliance and boot readiness without booting: partition
    /// table, ESP, removable path, boot chain, kernel, command line, drivers.
    #[command(after_help = check::AFTER_HELP)]
    Check {
        #[command(flatten)]
        image: ImageArgs,
        #[command(flatten)]
        arch: ArchArgs,
        /// Print a JUnit XML report (one test case per rule) for CI viewers.
        #[arg(long, conflicts_with = "json")]
        junit: bool,
        /// Predict a Secure Boot boot under STORE: microsoft (the firmware's enrolled
        /// store), snakeoil, microsoft-2011, microsoft-2023 or microsoft-both (db:
        /// Microsoft's UEFI CA of that year, or both), an EDK2 variable store file
        /// (db, dbx, MokList, MokListX, SbatLevel), or a directory of db certificates.
        #[arg(long, value_name = "STORE", num_args = 0..=1, require_equals = true,
              default_missing_value = bootproof_runtime::secure_boot::DEFAULT_STORE)]
        secure_boot: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Write the default boot entry's kernel (loadable form), initrd and command
    /// line to a directory, for direct kernel boot.
    #[command(after_help = extract::AFTER_HELP)]
    Extract {
        #[command(flatten)]
        image: ImageArgs,
        /// Output directory (created if missing).
        #[arg(short, long, value_name = "DIR")]
        out: std::path::PathBuf,
        /// Extract entry N (0 = first) instead of the loader's default.
        #[arg(long, value_name = "N")]
        entry: Option<usize>,
        #[command(flatten)]
        arch: ArchArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Boot the image under QEMU (firmware or direct kernel boot), watch the
    /// console and report the stage reached, its timeline and the console log.
    #[command(after_help = boot::AFTER_HELP)]
    Boot(Box<boot::BootArgs>),
    /// Predict the boot with `check`, boot the image through its firmware,
    /// and report whether the boot stopped where the prediction said.
    #[command(after_help = prove::AFTER_HELP)]
    Prove(Box<prove::ProveArgs>),
    /// Check runtime compliance: boot the image's kernel with bootproof's
    /// agent (or the whole image, --mode full) on each platform variant
    /// (GIC, ACPI, virtio transport) and report a check × variant matrix.
    #[command(after_help = verify::AFTER_HELP)]
    Verify(Box<verify::VerifyArgs>),
    /// Run a command as root inside every image × platform variant (the
    /// image's own kernel and root filesystem, no image init) and report
    /// pass, fail, boot failure or infra error per cell.
    #[command(after_help = run::AFTER_HELP)]
    Run(Box<run::RunArgs>),
    /// Download catalog images (Debian, Ubuntu cloud images…) into the
    /// cache, verified against their publishers' checksums; without NAME,
    /// list the catalog.
    #[command(after_help = fetch::AFTER_HELP)]
    Fetch(fetch::FetchArgs),
    /// Reports from `run --json` files: `merge` combines the shards of one
    /// sharded run into one report.
    #[command(subcommand)]
    Report(ReportCommand),
    /// List recorded `run`s (newest first) from the history database.
    #[command(
        after_help = "The database is $BOOTPROOF_HISTORY, else $XDG_DATA_HOME/bootproof/history.sqlite\n(~/.local/share/bootproof/history.sqlite). `run --no-history` and `prove --no-history` skip recording.\n\nExamples:\n  bootproof history\n  bootproof history --json --limit 5\n  bootproof history --predictions\n  bootproof history --html history.html"
    )]
    History {
        /// Runs to show.
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: usize,
        /// The prediction ledger instead: every `prove` (and `run --mode full`
        /// cell) as a confusion table
        /// (the stage the console was expected to show × the one it showed)
        /// and the misses.
        #[arg(long)]
        predictions: bool,
        /// Write a self-contained HTML page instead: the prediction ledger as
        /// a chart, and each image's cells over the last N runs.
        #[arg(long, value_name = "FILE")]
        html: Option<std::path::PathBuf>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Compare two recorded runs cell by cell: regressed, improved, appeared,
    /// disappeared. Exits 1 when a cell regressed (pass before, fail or boot
    /// failure after), so CI can gate on it.
    #[command(
        after_help = "RUN is a run id from `bootproof history`, `latest`, or `latest~N` (N runs before\nthe latest). Cells match by id (`image / variant`). Infra errors and skipped cells\nhave no verdict: changes to or from them are listed as `no-verdict`, never as\nregressions.\n\nExit status: 0 no regression; 1 a cell regressed; 2 usage error.\n\nExamples:\n  bootproof compare latest~1 latest\n  bootproof compare --json 12 15"
    )]
    Compare {
        /// The earlier run.
        before: String,
        /// The later run.
        after: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Write files from inside the image to stdout, one after another (follows
    /// symlinks inside the image).
    #[command(after_help = cat::AFTER_HELP)]
    Cat {
        #[command(flatten)]
        image: ImageArgs,
        /// [PART:]PATH, one or more. PART is a partition number or LABEL=, UUID=,
        /// PARTLABEL=, PARTUUID=; without it, the filesystem that has PATH (OS
        /// roots first).
        #[arg(required = true)]
        targets: Vec<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Print a completion script for bash, zsh or fish (subcommands, options
    /// and their values).
    #[command(after_help = manual::COMPLETIONS_HELP)]
    Completions {
        /// The shell.
        #[arg(value_parser = ["bash", "zsh", "fish"])]
        shell: String,
    },
    /// Write the JSON Schemas (draft 2020-12) of every --json document and of
    /// the matrix and catalog files into DIR.
    #[command(after_help = manual::SCHEMAS_HELP)]
    Schemas {
        /// Where the schemas go (created when missing).
        dir: std::path::PathBuf,
    },
    /// Write the manual pages (bootproof.1 and bootproof-COMMAND.1) into DIR.
    #[command(hide = true)]
    Manpages {
        /// Where the pages go (created when missing).
        dir: std::path::PathBuf,
    },
}

/// `bootproof report …`.
#[derive(Subcommand)]
enum ReportCommand {
    /// Merge `bootproof run --shard K/N --json` outputs into one report
    /// (a cell run in one shard replaces the others' `skipped` entries).
    #[command(
        after_help = "Exit status: as `run` would have exited for the whole matrix (0, 1 or 3); 2 when\nthe files are not shards of one run.\n\nExamples:\n  bootproof report merge shard-*.json > run.json\n  bootproof report merge --format markdown shard-*.json >> \"$GITHUB_STEP_SUMMARY\""
    )]
    Merge {
        /// The shard reports.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<std::path::PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "json")]
        format: report::Format,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { image, output } => inspect::run(&image, output),
        Command::Ls {
            image,
            target,
            long,
            output,
        } => ls::run(&image, &target, long, output),
        Command::Check {
            image,
            arch,
            junit,
            secure_boot,
            output,
        } => check::run(&image, arch.arch.0, junit, secure_boot.as_deref(), output),
        Command::Extract {
            image,
            out,
            entry,
            arch,
            output,
        } => extract::run(&image, &out, entry, arch.arch.0, output),
        Command::Cat {
            image,
            targets,
            output,
        } => cat::run(&image, &targets, output),
        Command::Boot(args) => boot::run(&args),
        Command::Prove(args) => prove::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Fetch(args) => fetch::fetch(&args),
        Command::Report(ReportCommand::Merge { files, format }) => report::merge(&files, format),
        Command::Completions { shell } => manual::completions(Cli::command(), &shell),
        Command::Manpages { dir } => manual::manpages(Cli::command(), &dir),
        Command::Schemas { dir } => manual::schemas(&dir),
        Command::History {
            html: Some(path),
            limit,
            ..
        } => history::page(&path, limit),
        Command::History {
            predictions: true,
            output,
            ..
        } => history::predictions(output),
        Command::History { limit, output, .. } => history::history(limit, output),
        Command::Compare {
            before,
            after,
            output,
        } => history::compare(&before, &after, output),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            session::report_error(&e);
            ExitCode::from(exit::ERROR)
        }
    }
}
