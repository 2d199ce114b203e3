//! `bootproof prove`: `check`'s prediction, then a real firmware boot, and
//! whether the boot stopped where the prediction said.

use crate::args::{ArchArgs, ImageArgs, OutputArgs, VmArgs};
use crate::progress::Progress;
use crate::session::interrupt_flag;
use crate::style::{write_json, SafeStdout, Style};
use bootproof_runtime::boot::BootError;
use bootproof_runtime::history::record_prediction;
use bootproof_runtime::prove::{prove, ProveReport};
use bootproof_runtime::render::{prove_junit, prove_page};
use bootproof_runtime::Error;
use std::io::Write;

pub const AFTER_HELP: &str = "\
`check` predicts where a firmware boot stops (firmware, loader, kernel,
initramfs, userspace) or that it reaches a login prompt; the image is then
booted through its own removable path, as `bootproof boot` does, and the
stage the console shows is compared with the prediction.

Exit status:
  0    the prediction held and the image booted (and --verify's checks passed)
  1    the prediction held and the boot failed where it said, or a check failed
  2    usage error, unreadable image, or the VM could not run
  4    the prediction missed (the report shows the console's evidence)
  130  interrupted (Ctrl-C)

Examples:
  bootproof prove disk.qcow2
  bootproof prove --json --timeout 600 disk.raw
  bootproof prove --verify disk.raw              # then the agent's checks
  bootproof prove --junit --strict disk.qcow2 > prove.xml
  bootproof prove --html prove.html disk.raw     # the boot's timeline as a chart";

/// Everything `bootproof prove` takes.
#[derive(clap::Args)]
pub struct ProveArgs {
    #[command(flatten)]
    pub image: ImageArgs,
    #[command(flatten)]
    pub arch: ArchArgs,
    #[command(flatten)]
    pub vm: VmArgs,
    /// Then run the agent's checks on the booted platform variant (as
    /// `bootproof verify` in agent mode); failed checks fail the prove.
    #[arg(long)]
    pub verify: bool,
    /// Print a JUnit XML report (cases: the prediction, the boot, the
    /// console's health) instead of the human summary.
    #[arg(long, conflicts_with = "json")]
    pub junit: bool,
    /// Also write a self-contained HTML page: the prediction, the verdict
    /// and the boot's stage timeline as a chart, with the console log.
    #[arg(long, value_name = "FILE")]
    pub html: Option<std::path::PathBuf>,
    /// Do not record the prediction and the outcome in the history
    /// (`bootproof history --predictions` counts them).
    #[arg(long)]
    pub no_history: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn run(args: &ProveArgs) -> Result<u8, Error> {
    let req = args.vm.request(&args.image, &args.arch);
    let interrupted = interrupt_flag();
    let quiet = args.output.json || args.junit;
    let progress = Progress::new(Style::stderr(args.output.color), quiet);
    let report =
        prove(&req, args.verify, &progress, &interrupted).map_err(BootError::into_error)?;
    if let Err(e) = (!args.no_history)
        .then(|| record_prediction(&report, &interrupted))
        .transpose()
    {
        eprintln!("warning: {}", e.message());
    }
    let code = report.exit_status(args.vm.strict);
    if let Some(path) = &args.html {
        prove_page::write(path, &report)?;
    }
    let mut stdout = SafeStdout::default();
    if args.junit {
        stdout.write_all(prove_junit(&report, args.vm.strict).as_bytes())?;
    } else if args.output.json {
        write_json(&mut stdout, &report)?;
    } else {
        human(&mut stdout, &report, Style::stdout(args.output.color))?;
    }
    Ok(code)
}

fn human(out: &mut impl Write, r: &ProveReport, st: Style) -> std::io::Result<()> {
    let p = &r.prediction;
    writeln!(out, "{} {}", st.bold("Predicted"), p.summary())?;
    if r.expected != p.stage {
        writeln!(
            out,
            "{} the serial console goes quiet after the {} on this variant",
            st.bold("Expected "),
            r.expected.name()
        )?;
    }
    let stage = r.observed.stage.map_or("no verdict", |s| s.name());
    writeln!(
        out,
        "{} {stage}: {}",
        st.bold("Observed "),
        r.observed.evidence
    )?;
    let verdict = match r.held {
        Some(true) => st.green("the prediction held"),
        Some(false) => st.red_bold("the prediction MISSED"),
        None => st.yellow("no verdict: the boot did not finish"),
    };
    writeln!(out, "{} {verdict}", st.bold("Verdict  "))?;
    if let Some(v) = &r.verify {
        let failed: Vec<&str> = v
            .variants
            .iter()
            .flat_map(|x| x.failures())
            .map(|f| f.0)
            .collect();
        let said = match (v.passed, failed.is_empty()) {
            (true, _) => st.green("the agent's checks passed"),
            (false, true) => st.red_bold("the agent did not finish its checks"),
            (false, false) => st.red_bold(&format!("checks FAILED: {}", failed.join(", "))),
        };
        writeln!(out, "{} {said}", st.bold("Verify   "))?;
    }
    if let Some(e) = &r.verify_error {
        writeln!(out, "{} {}", st.bold("Verify   "), st.yellow(e))?;
    }
    writeln!(
        out,
        "{} check {:.0} ms, boot {:.1} s ({}); console log {}",
        st.bold("Time     "),
        r.check_ms,
        r.boot.result.elapsed,
        r.boot.accel.accel,
        r.boot.result.console_log.display()
    )
}
