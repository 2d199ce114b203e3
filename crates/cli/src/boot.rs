//! `bootproof boot`: boots an image under QEMU (firmware or direct kernel
//! boot), watches the console and reports how far it got.

use crate::args::{ArchArgs, ImageArgs, OutputArgs, VmArgs};
use crate::progress::Progress;
use crate::session::interrupt_flag;
use crate::style::{write_json, SafeStdout, Style};
use bootproof_runtime::boot::{boot, BootError, BootMode, BootReport};
use bootproof_runtime::{exit, Error};
use bootproof_vm::supervise::Until;
use std::io::Write;

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

An image with cloud-init gets an empty NoCloud seed (a read-only CIDATA volume:
an instance id, no user data), so its datasource search ends at once instead of
waiting on every cloud's metadata service; --no-seed boots the image as it is.

With --secure-boot[=STORE], the report sets `check --secure-boot=STORE`'s
prediction beside what the boot showed, agreeing or not.

Stages (--until): firmware, bootloader, kernel, userspace, login

Exit status:
  0    booted (userspace reached and powered off or showed a login prompt),
       or the --until stage was reached (with --strict: and no problems —
       failed units, kernel warnings, device timeouts, OOM kills — on the way)
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

impl From<Mode> for BootMode {
    fn from(m: Mode) -> BootMode {
        match m {
            Mode::Firmware => BootMode::Firmware,
            Mode::Direct => BootMode::Direct,
        }
    }
}

/// Everything `bootproof boot` takes.
#[derive(clap::Args)]
pub struct BootArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    #[command(flatten)]
    pub arch: ArchArgs,
    /// firmware: the image's own boot chain; direct: its kernel via -kernel.
    #[arg(long, value_enum, default_value_t = Mode::Firmware)]
    pub mode: Mode,
    /// Direct mode: boot entry N (0 = first) instead of the loader's default.
    #[arg(long, value_name = "N")]
    pub entry: Option<usize>,
    /// Direct mode: text appended to the kernel command line.
    #[arg(long, value_name = "TEXT")]
    pub cmdline_append: Option<String>,
    /// Stop successfully once this stage is reached.
    #[arg(long, value_name = "STAGE", value_parser = parse_until)]
    pub until: Option<Until>,
    #[command(flatten)]
    pub vm: VmArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_until(s: &str) -> Result<Until, String> {
    Until::parse(s).ok_or_else(|| {
        let names: Vec<&str> = Until::ALL.iter().map(|(n, _)| *n).collect();
        format!("expected one of: {}", names.join(", "))
    })
}

pub fn run(args: &BootArgs) -> Result<u8, Error> {
    let mut req = args.vm.request(&args.image, &args.arch);
    req.mode = args.mode.into();
    req.entry = args.entry;
    req.cmdline_append = args.cmdline_append.clone();
    req.until = args.until;
    let interrupted = interrupt_flag();
    let progress = Progress::new(Style::stderr(args.output.color), args.output.json);
    let report = match boot(&req, &progress, &interrupted) {
        Ok(r) => r,
        Err(BootError::NotStarted(doc, e)) if args.output.json => {
            // CI reads the report: the VM could not run is an outcome too.
            let doc = serde_json::to_value(&doc).map_err(std::io::Error::other)?;
            println!("{doc:#}");
            eprintln!("error: {e}");
            return Ok(exit::ERROR);
        }
        Err(e) => return Err(e.into_error()),
    };
    let code = report.exit_status(args.vm.strict);
    let mut stdout = SafeStdout::default();
    if args.output.json {
        let doc = serde_json::to_value(&report).map_err(std::io::Error::other)?;
        write_json(&mut stdout, &doc)?;
        return Ok(code);
    }
    human(&mut stdout, &report, Style::stdout(args.output.color))?;
    Ok(code)
}

/// The boot in words: accelerator, firmware, command line, stages, outcome.
fn human(out: &mut impl Write, r: &BootReport, so: Style) -> std::io::Result<()> {
    writeln!(
        out,
        "{} {}: {}",
        so.bold("Accel   "),
        r.accel.accel,
        r.accel.reason
    )?;
    let fw = &r.firmware;
    writeln!(
        out,
        "{} {}{}",
        so.bold("Firmware"),
        fw.description,
        fw.descriptor
            .as_ref()
            .map(|d| so.dim(&format!(" ({})", d.display())))
            .unwrap_or_default()
    )?;
    if let Some(d) = &r.direct {
        writeln!(out, "{} {}", so.bold("Cmdline "), d.cmdline)?;
    }
    if let Some(s) = &r.seed {
        writeln!(out, "{} {}", so.bold("Seed    "), s.reason)?;
    }
    writeln!(out, "{}", so.bold("Stages"))?;
    if r.result.stages.is_empty() {
        writeln!(out, "  {}", so.dim("(none seen on the console)"))?;
    }
    for e in &r.result.stages {
        let host = e.host_time.map_or("     ".into(), |t| format!("{t:5.1}s"));
        let guest = e
            .guest_time
            .map_or(String::new(), |t| so.dim(&format!(" (guest {t:.2}s)")));
        writeln!(out, "  {host}  {}{guest}", e.stage.text())?;
    }
    let (tone, words) = r.result.summary(r.timeout_secs);
    let verdict = so.toned(tone, &words);
    writeln!(out, "{} {verdict}", so.bold("Outcome "))?;
    if let Some(sb) = &r.secure_boot {
        let (tone, words) = sb.summary();
        writeln!(out, "{} {}", so.bold("SecBoot "), so.toned(tone, &words))?;
    }
    for p in &r.result.problems {
        writeln!(out, "{} {}: {}", so.yellow("Problem "), p.kind, p.line)?;
    }
    writeln!(
        out,
        "{} {}",
        so.bold("Console "),
        r.result.console_log.display()
    )?;
    if let Some(dir) = &r.run_dir {
        writeln!(out, "{} {}", so.bold("Run dir "), dir.display())?;
    }
    Ok(())
}
