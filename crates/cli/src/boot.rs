//! `bootproof boot`: boots an image under QEMU (firmware or direct kernel
//! boot), watches the console and reports how far it got.

use crate::extract::{pick_entry, resolve_arch};
use crate::style::Style;
use crate::{open, CliError, ImageArgs, OutputArgs, EXIT_ERROR, EXIT_FAIL, EXIT_OK};
use bootproof_boot::extract::extract;
use bootproof_image::ReadAt;
use bootproof_vm::accel::{self, Accel};
use bootproof_vm::classify::Event;
use bootproof_vm::machine::{DirectKernel, Platform, Transport};
use bootproof_vm::prepare::{prepare, FirmwareChoice, VmRequest};
use bootproof_vm::state::{self, RunDir};
use bootproof_vm::supervise::{self, BootOutcome, Until, WatchOptions};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Exit status: interrupted (Ctrl-C), as shells report SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

pub const AFTER_HELP: &str = "\
Modes:
  firmware  UEFI firmware (from QEMU's firmware descriptors) boots the image's
            own removable path (\\EFI\\BOOT\\BOOTAA64.EFI / BOOTX64.EFI): the
            real end-to-end path
  direct    the default entry's kernel, initrd and command line (as `bootproof
            extract` finds them) are passed to QEMU with -kernel; `quiet` and
            `splash` are dropped so the console shows each stage

The disk is attached through a qcow2 overlay in a per-run directory: the
image is never written. KVM is used only when the guest is the host's
architecture and a probe guest runs under it; otherwise TCG (the report says
why). QEMU cannot outlive bootproof (it is killed with it, even by kill -9),
and the next run removes state a killed run left behind.

Stages (--until): firmware, bootloader, kernel, userspace, login

Exit status:
  0    booted (userspace reached and powered off or showed a login prompt),
       or the --until stage was reached
  1    the boot failed, stalled or timed out (the report names the stage)
  2    usage error, unreadable image, or the VM could not run (QEMU or
       firmware missing, QEMU failed to start)
  130  interrupted (Ctrl-C); the guest was shut down and state removed

Examples:
  bootproof boot disk.qcow2
  bootproof boot --mode direct --cmdline-append 'systemd.log_level=debug' disk.raw
  bootproof boot --until kernel --timeout 120 --json disk.raw
  bootproof boot --firmware /usr/share/AAVMF/AAVMF_CODE.fd,/usr/share/AAVMF/AAVMF_VARS.fd disk.raw";

/// Boot mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// UEFI firmware boots the image's removable path.
    Firmware,
    /// The image's kernel and initrd through QEMU's -kernel.
    Direct,
}

/// Everything `bootproof boot` takes.
#[derive(clap::Args)]
pub struct BootArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    /// Guest architecture: auto (from the removable path or root partition type), aarch64, x86_64.
    #[arg(long, default_value = "auto")]
    pub arch: String,
    /// firmware: the image's own boot chain; direct: its kernel via -kernel.
    #[arg(long, value_enum, default_value_t = Mode::Firmware)]
    pub mode: Mode,
    /// auto (UEFI from QEMU's firmware descriptors), none (direct mode only:
    /// no UEFI), or CODE[,VARS] pflash files.
    #[arg(long, default_value = "auto", value_name = "auto|none|CODE[,VARS]")]
    pub firmware: String,
    /// Use firmware with Secure Boot enabled (keys enrolled where the descriptor says so).
    #[arg(long)]
    pub secure_boot: bool,
    /// Direct mode: boot entry N (0 = first) instead of the loader's default.
    #[arg(long, value_name = "N")]
    pub entry: Option<usize>,
    /// Direct mode: text appended to the kernel command line.
    #[arg(long, value_name = "TEXT")]
    pub cmdline_append: Option<String>,
    /// Seconds before the boot is declared timed out [default: 60 with KVM, 300 with TCG].
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Stop successfully once this stage is reached.
    #[arg(long, value_name = "STAGE", value_parser = parse_until)]
    pub until: Option<Until>,
    /// Keep the run directory (overlay, NVRAM, sockets) and print its path.
    #[arg(long)]
    pub keep: bool,
    /// Write the console log here [default: ~/.cache/bootproof/logs/IMAGE-TIME.log].
    #[arg(long, value_name = "FILE")]
    pub console_log: Option<PathBuf>,
    /// vCPUs [default: 2, or fewer on a smaller host].
    #[arg(long)]
    pub cpus: Option<u32>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    pub memory: u64,
    /// aarch64: GIC version (2 or 3).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub gic: u8,
    /// aarch64: offer ACPI tables (off leaves only the device tree).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub acpi: String,
    /// aarch64: virtio transport.
    #[arg(long, default_value = "pci", value_parser = ["pci", "mmio"])]
    pub transport: String,
    /// Attach a user-mode network card (off by default: firmware would try
    /// network boot first).
    #[arg(long)]
    pub network: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_until(s: &str) -> Result<Until, String> {
    Until::parse(s).ok_or_else(|| {
        let names: Vec<&str> = Until::ALL.iter().map(|(n, _)| *n).collect();
        format!("expected one of: {}", names.join(", "))
    })
}

/// KVM or TCG for a guest architecture on this host (the probe, when one
/// ran, is cached per host boot and returned for the report).
pub fn choose_accel(guest_arch: &str) -> (accel::Decision, Option<accel::Probe>) {
    let host_arch = std::env::consts::ARCH;
    let mut probe = None;
    let decision = accel::decide(host_arch, guest_arch, || {
        let p = accel::probe_kvm_cached(host_arch, &cache_dir());
        probe = Some(p.clone());
        p
    });
    (decision, probe)
}

/// A boot's deadline: as given, else 60 s with KVM and 300 s with TCG.
pub fn deadline(secs: Option<u64>, accel: Accel) -> Duration {
    Duration::from_secs(secs.unwrap_or(match accel {
        Accel::Kvm => 60,
        Accel::Tcg => 300,
    }))
}

/// A flag set by Ctrl-C, SIGTERM or SIGHUP; supervision polls it and shuts
/// the guests down.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    // Fails only if a handler is already set (never, in this binary).
    let _ = ctrlc::set_handler(move || f.store(true, Ordering::Relaxed));
    flag
}

/// `~/.cache/bootproof` (or `$XDG_CACHE_HOME/bootproof`), else the temp dir.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("bootproof")
}

/// Keeps the newest `keep` console logs in `dir`.
fn prune_logs(dir: &Path, keep: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut logs: Vec<(std::time::SystemTime, PathBuf)> = rd
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    logs.sort();
    let n = logs.len().saturating_sub(keep);
    for (_, p) in logs.into_iter().take(n) {
        let _ = std::fs::remove_file(p);
    }
}

fn default_log_path(image: &Path) -> PathBuf {
    let stem = image
        .file_stem()
        .map_or("image".into(), |s| s.to_string_lossy().into_owned());
    log_path(&stem)
}

/// Free text as one safe file-name component: letters, digits, `.` and
/// `-` kept, everything else `_` (no `/`, no spaces).
pub(crate) fn file_component(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A fresh path for a console log in the log cache (`~/.cache/bootproof/
/// logs`, the newest 100 kept), named after `label`.
pub(crate) fn log_path(label: &str) -> PathBuf {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = cache_dir().join("logs");
    let _ = std::fs::create_dir_all(&dir);
    prune_logs(&dir, 100);
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let label = file_component(label);
    match SEQ.fetch_add(1, Ordering::Relaxed) {
        0 => dir.join(format!("{label}-{secs}-{}.log", std::process::id())),
        n => dir.join(format!("{label}-{secs}-{}-{n}.log", std::process::id())),
    }
}

/// The image's command line made to show its boot on the console: `quiet`
/// and `splash` hide the kernel's messages the classifier reads.
fn direct_cmdline(cmdline: &str, append: Option<&str>) -> (String, Vec<String>) {
    let mut removed = Vec::new();
    let mut words: Vec<&str> = Vec::new();
    for w in cmdline.split_whitespace() {
        if w == "quiet" || w == "splash" {
            removed.push(w.to_string());
        } else {
            words.push(w);
        }
    }
    let mut out = words.join(" ");
    if let Some(a) = append.filter(|a| !a.trim().is_empty()) {
        out.push(' ');
        out.push_str(a.trim());
    }
    (out, removed)
}

fn firmware_choice(arg: &str) -> FirmwareChoice {
    match arg {
        "auto" => FirmwareChoice::Auto,
        "none" => FirmwareChoice::None,
        files => {
            let mut it = files.splitn(2, ',');
            FirmwareChoice::Files {
                code: PathBuf::from(it.next().unwrap_or_default()),
                vars: it.next().filter(|v| !v.is_empty()).map(PathBuf::from),
            }
        }
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Firmware => "firmware",
        Mode::Direct => "direct",
    }
}

fn stage_text(e: &Event) -> String {
    match e.stage.detail() {
        Some(d) => format!("{}: {d}", e.stage.name()),
        None => e.stage.name().to_string(),
    }
}

pub fn run(args: &BootArgs) -> Result<u8, CliError> {
    let prep_started = Instant::now();
    let img = open(&args.image)?;
    let arch = resolve_arch(&img, &args.arch)?;
    let firmware = firmware_choice(&args.firmware);
    if args.mode == Mode::Firmware {
        if firmware == FirmwareChoice::None {
            return Err(CliError::with_hint(
                "--firmware none needs --mode direct",
                "firmware mode boots the image's removable path, which needs UEFI",
            ));
        }
        if args.cmdline_append.is_some() || args.entry.is_some() {
            return Err(CliError::with_hint(
                "--cmdline-append and --entry work in direct mode only",
                "in firmware mode the image's own boot loader builds the command line; use --mode direct",
            ));
        }
    }
    let platform = Platform {
        gic: args.gic,
        acpi: args.acpi == "on",
        transport: if args.transport == "mmio" {
            Transport::Mmio
        } else {
            Transport::Pci
        },
    };
    let base = state::base_dir();
    let cleanup = state::clean_stale(&base);
    let mut run_dir = RunDir::create(&base).map_err(|e| {
        CliError::with_hint(
            format!("cannot create run state under {}: {e}", base.display()),
            "set BOOTPROOF_STATE_DIR to a writable directory",
        )
    })?;
    if args.keep {
        run_dir.keep();
    }

    let mut direct_info = serde_json::Value::Null;
    let kernel = if args.mode == Mode::Direct {
        let (chain, picked, fallback) = pick_entry(&img, arch, args.entry)?;
        let out = run_dir.path().join("direct");
        let m = extract(&img, &chain, &picked, &out).map_err(|e| {
            CliError::with_hint(
                e,
                "`bootproof extract IMAGE -o DIR` shows what direct boot would use",
            )
        })?;
        let (cmdline, removed) = direct_cmdline(&m.cmdline, args.cmdline_append.as_deref());
        direct_info = json!({
            "entry": picked.title,
            "entry_source": picked.source,
            "fallback_to_boot_dir": fallback,
            "kernel_version": m.kernel_version,
            "kernel_format": m.kernel_format,
            "cmdline": cmdline,
            "cmdline_added": m.cmdline_added,
            "cmdline_removed": removed,
        });
        Some(DirectKernel {
            kernel: out.join("kernel"),
            initrd: m.initrd.as_ref().map(|_| out.join("initrd")),
            cmdline,
        })
    } else {
        None
    };

    let (decision, probe) = choose_accel(arch.name());
    let cpus = args.cpus.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(2) as u32)
    });
    let req = VmRequest {
        arch: arch.name().to_string(),
        image: args.image.image.clone(),
        image_format: img.image.format().to_string(),
        image_size: img.image.size(),
        firmware,
        secure_boot: Some(args.secure_boot),
        platform,
        kernel,
        cpus,
        memory_mib: args.memory,
        accel: decision.clone(),
        network: args.network,
        cache_dir: Some(cache_dir()),
        nvram: None,
        hotplug_ports: 0,
        agent_channel: None,
        seed_disk: None,
        fw_cfg: Vec::new(),
    };
    let prepared = prepare(&req, &run_dir).map_err(|e| {
        use bootproof_vm::prepare::PrepareError as P;
        let hint = match &e {
            P::Qemu(_) => "install QEMU's system emulators (scripts/install-qemu.sh does)",
            P::Firmware(_) | P::FirmwareFile(_) => {
                "install the firmware packages (qemu-efi-aarch64, ovmf; scripts/install-qemu.sh does), or name files with --firmware CODE[,VARS]"
            }
            P::Io(_) => "check the state directory (BOOTPROOF_STATE_DIR) is writable and short",
        };
        CliError::with_hint(e, hint)
    });
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) if args.output.json => {
            // CI reads the report: the VM could not run is an outcome too.
            let doc = json!({
                "schema": "bootproof.boot/v1",
                "image": args.image.image,
                "arch": arch.name(),
                "mode": mode_name(args.mode),
                "accel": decision,
                "result": { "outcome": "infra-error", "message": e.to_string() },
            });
            println!("{doc:#}");
            eprintln!("error: {e}");
            return Ok(EXIT_ERROR);
        }
        Err(e) => return Err(e),
    };
    let prepare_ms = prep_started.elapsed().as_secs_f64() * 1000.0;
    let timeout = deadline(args.timeout, decision.accel);
    let console_log = args
        .console_log
        .clone()
        .unwrap_or_else(|| default_log_path(&args.image.image));
    let opts = WatchOptions {
        deadline: timeout,
        until: args.until,
        console_log,
        max_log_bytes: 64 << 20,
    };

    let interrupted = interrupt_flag();
    let human = !args.output.json;
    let st = Style::stderr(args.output.color);
    let mode = mode_name(args.mode);
    if human {
        eprintln!(
            "{} {} ({}, {} mode, {})",
            st.bold("Booting"),
            args.image.image.display(),
            arch.name(),
            mode,
            match decision.accel {
                Accel::Kvm => "KVM",
                Accel::Tcg => "TCG",
            }
        );
    }
    let spinner = if human && std::io::stderr().is_terminal() {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        pb.enable_steady_tick(Duration::from_millis(120));
        pb.set_message("starting QEMU");
        Some(pb)
    } else {
        None
    };
    let mut on_stage = |e: &Event| {
        if let Some(pb) = &spinner {
            pb.set_message(stage_text(e));
        }
    };
    let result = supervise::boot(
        &prepared.qemu.binary,
        &prepared.spec,
        &run_dir,
        &opts,
        &interrupted,
        supervise::Hooks {
            on_stage: &mut on_stage,
            on_console: &mut |_| {},
        },
    )
    .map_err(|e| CliError::with_hint(e, "re-run with --keep to inspect the run directory"))?;
    if let Some(pb) = spinner {
        pb.finish_and_clear();
    }

    let code = match &result.outcome {
        BootOutcome::Booted | BootOutcome::Reached { .. } => EXIT_OK,
        BootOutcome::InfraError { .. } => EXIT_ERROR,
        BootOutcome::Interrupted { .. } => EXIT_INTERRUPTED,
        _ => EXIT_FAIL,
    };
    let mut stdout = std::io::stdout().lock();
    if args.output.json {
        let doc = json!({
            "schema": "bootproof.boot/v1",
            "image": args.image.image,
            "arch": arch.name(),
            "mode": mode,
            "accel": decision,
            "kvm_probe": probe,
            "firmware": prepared.firmware,
            "machine": prepared.spec.machine,
            "platform": prepared.spec.platform,
            "cpus": prepared.spec.cpus,
            "memory_mib": prepared.spec.memory_mib,
            "direct": direct_info,
            "qemu": {
                "binary": prepared.qemu.binary,
                "args": prepared.spec.qemu_args(),
            },
            "timeout_secs": timeout.as_secs(),
            "host_prepare_ms": prepare_ms,
            "result": result,
            "run_dir": args.keep.then(|| run_dir.path().to_path_buf()),
            "stale_cleanup": cleanup,
        });
        serde_json::to_writer_pretty(&mut stdout, &doc).map_err(std::io::Error::other)?;
        writeln!(stdout)?;
        return Ok(code);
    }
    let so = Style::stdout(args.output.color);
    writeln!(
        stdout,
        "{} {}",
        so.bold("Accel   "),
        match decision.accel {
            Accel::Kvm => format!("KVM: {}", decision.reason),
            Accel::Tcg => format!("TCG: {}", decision.reason),
        }
    )?;
    let fw = &prepared.firmware;
    writeln!(
        stdout,
        "{} {}{}",
        so.bold("Firmware"),
        fw.description,
        fw.descriptor
            .as_ref()
            .map(|d| so.dim(&format!(" ({})", d.display())))
            .unwrap_or_default()
    )?;
    if let Some(cmdline) = direct_info["cmdline"].as_str() {
        writeln!(stdout, "{} {}", so.bold("Cmdline "), cmdline)?;
    }
    writeln!(stdout, "{}", so.bold("Stages"))?;
    if result.stages.is_empty() {
        writeln!(stdout, "  {}", so.dim("(none seen on the console)"))?;
    }
    for e in &result.stages {
        let host = e.host_time.map_or("     ".into(), |t| format!("{t:5.1}s"));
        let guest = e
            .guest_time
            .map_or(String::new(), |t| so.dim(&format!(" (guest {t:.2}s)")));
        writeln!(stdout, "  {host}  {}{guest}", stage_text(e))?;
    }
    let verdict = match &result.outcome {
        BootOutcome::Booted => so.green(&format!("booted in {:.1}s", result.elapsed)),
        BootOutcome::Reached { stage } => so.green(&format!(
            "reached {} in {:.1}s",
            stage.name(),
            result.elapsed
        )),
        BootOutcome::Failed { stage, cause } => so.red_bold(&format!(
            "failed at {}{}",
            stage.name(),
            cause.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
        )),
        BootOutcome::Stalled { last, reason } => so.yellow(&format!(
            "stalled after {}{}",
            last.as_ref().map_or("no recognised stage", |s| s.name()),
            reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )),
        BootOutcome::Timeout { last, reason } => so.yellow(&format!(
            "timed out after {}s at {}{}",
            timeout.as_secs(),
            last.as_ref().map_or("no recognised stage", |s| s.name()),
            reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        )),
        BootOutcome::InfraError { message } => so.red_bold(&format!("could not run: {message}")),
        BootOutcome::Interrupted { .. } => so.yellow("interrupted; the guest was shut down"),
    };
    writeln!(stdout, "{} {}", so.bold("Outcome "), verdict)?;
    writeln!(
        stdout,
        "{} {}",
        so.bold("Console "),
        result.console_log.display()
    )?;
    if args.keep {
        writeln!(
            stdout,
            "{} {}",
            so.bold("Run dir "),
            run_dir.path().display()
        )?;
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_cmdline_drops_quiet_and_appends() {
        let (c, removed) =
            direct_cmdline("root=UUID=x ro quiet splash console=ttyS0", Some(" debug "));
        assert_eq!(c, "root=UUID=x ro console=ttyS0 debug");
        assert_eq!(removed, ["quiet", "splash"]);
    }

    #[test]
    fn firmware_argument_forms() {
        assert_eq!(firmware_choice("auto"), FirmwareChoice::Auto);
        assert_eq!(firmware_choice("none"), FirmwareChoice::None);
        assert_eq!(
            firmware_choice("/a/CODE.fd,/a/VARS.fd"),
            FirmwareChoice::Files {
                code: "/a/CODE.fd".into(),
                vars: Some("/a/VARS.fd".into())
            }
        );
        assert_eq!(
            firmware_choice("/a/CODE.fd"),
            FirmwareChoice::Files {
                code: "/a/CODE.fd".into(),
                vars: None
            }
        );
    }
}
