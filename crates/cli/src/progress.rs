//! The engine's progress on stderr: a spinner naming the boot stage, one
//! line per finished verify boot, a bar naming the running `run` cells
//! with each result printed above it, and download bars. Bars only on a
//! terminal; nothing at all when the output is machine-readable (`quiet`).

use crate::style::{human_size, Style};
use bootproof_platform::Arch;
use bootproof_runtime::catalog::Fetched;
use bootproof_runtime::render::escape::{terminal, terminal_keep_colours};
use bootproof_runtime::run::{Cell, CellStatus, RunPlan};
use bootproof_runtime::verify::VerifyPlan;
use bootproof_runtime::Events;
use bootproof_vm::accel::Decision;
use bootproof_vm::classify::Event;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A cell's status, styled.
pub fn status_word(st: &Style, s: &CellStatus) -> String {
    match s {
        CellStatus::Pass => st.green("pass"),
        CellStatus::Fail => st.red_bold("FAIL"),
        CellStatus::BootFailure => st.red_bold("BOOT FAILURE"),
        CellStatus::InfraError => st.yellow("INFRA ERROR"),
        CellStatus::Skipped => st.dim("skipped"),
    }
}

/// Progress on stderr for every command that boots or downloads.
pub struct Progress {
    st: Style,
    quiet: bool,
    tty: bool,
    bar: Mutex<Option<ProgressBar>>,
    running: Mutex<Vec<String>>,
    done: AtomicUsize,
    total: AtomicUsize,
}

impl Progress {
    /// Progress styled by `st`; `quiet` shows nothing (machine-readable output).
    pub fn new(st: Style, quiet: bool) -> Progress {
        Progress {
            st,
            quiet,
            tty: std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
            running: Mutex::new(Vec::new()),
            done: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
        }
    }

    fn start_bar(&self, template: &str, len: Option<u64>, message: &str) {
        if self.quiet || !self.tty {
            return;
        }
        let pb = match len {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        pb.set_style(
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.enable_steady_tick(Duration::from_millis(120));
        pb.set_message(message.to_string());
        if let Ok(mut b) = self.bar.lock() {
            *b = Some(pb);
        }
    }

    fn end_bar(&self) {
        if let Some(pb) = self.bar.lock().ok().and_then(|mut b| b.take()) {
            pb.finish_and_clear();
        }
    }

    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        if let Some(pb) = self.bar.lock().ok().as_ref().and_then(|b| b.as_ref()) {
            f(pb);
        }
    }

    /// A line above the bar (or plain, without one), made safe for the
    /// terminal (cell details carry guest text).
    fn line(&self, text: String) {
        if self.quiet {
            return;
        }
        let text = terminal_keep_colours(&text).into_owned();
        let mut printed = false;
        self.with_bar(|pb| {
            pb.println(&text);
            printed = true;
        });
        if !printed {
            eprintln!("{text}");
        }
    }

    fn show_running(&self, running: &[String]) {
        self.with_bar(|pb| pb.set_message(format!("running: {}", running.join(", "))));
    }
}

impl Events for Progress {
    fn boot_started(&self, image: &Path, arch: Arch, mode: &str, accel: &Decision) {
        if self.quiet {
            return;
        }
        eprintln!(
            "{} {} ({arch}, {mode} mode, {})",
            self.st.bold("Booting"),
            image.display(),
            accel.accel
        );
        self.start_bar("{spinner} {elapsed:>4} {msg}", None, "starting QEMU");
    }

    fn boot_stage(&self, event: &Event) {
        self.with_bar(|pb| pb.set_message(event.stage.text()));
    }

    fn boot_ended(&self) {
        self.end_bar();
    }

    fn verify_started(&self, p: &VerifyPlan) {
        if self.quiet {
            return;
        }
        eprintln!(
            "{} {} ({}, {}, {} variant(s), {} at a time, {})",
            self.st.bold("Verifying"),
            p.image.display(),
            p.arch,
            terminal(&p.booting),
            p.variants,
            p.jobs,
            p.accel.accel
        );
    }

    fn variant_finished(&self, name: &str, result: Result<bool, &str>) {
        if self.quiet {
            return;
        }
        match result {
            Ok(true) => eprintln!("  {name}: {}", self.st.green("pass")),
            Ok(false) => eprintln!("  {name}: {}", self.st.red_bold("fail")),
            Err(e) => eprintln!("  {name}: {}", self.st.red_bold(&terminal(e))),
        }
    }

    fn run_started(&self, p: &RunPlan) {
        self.total.store(p.cells, Ordering::Relaxed);
        if self.quiet {
            return;
        }
        eprintln!(
            "{} {} cell(s) ({} image(s){}), {} at a time (VMs within {:.1} GiB), {}: {}",
            self.st.bold("Running"),
            p.cells,
            p.images,
            if p.extra_kernels > 0 {
                format!(", {} extra kernel(s)", p.extra_kernels)
            } else {
                String::new()
            },
            p.workers,
            p.memory_budget_mib as f64 / 1024.0,
            p.accel
                .iter()
                .map(|d| format!("{} {}", d.arch, d.decision.accel))
                .collect::<Vec<_>>()
                .join(", "),
            bootproof_runtime::render::shell_words(&p.command)
        );
        if p.cells > 0 {
            self.start_bar(
                "{spinner} {elapsed:>4} [{bar:24}] {pos}/{len} {wide_msg}",
                Some(p.cells as u64),
                "",
            );
        }
    }

    fn cell_started(&self, id: &str) {
        if let Ok(mut r) = self.running.lock() {
            r.push(id.to_string());
            self.show_running(&r);
        }
    }

    fn cell_finished(&self, cell: &Cell) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Ok(mut r) = self.running.lock() {
            r.retain(|x| *x != cell.id);
            self.show_running(&r);
        }
        self.line(format!(
            "  [{n}/{}] {}: {} ({}, {:.1} s)",
            self.total.load(Ordering::Relaxed),
            cell.id,
            status_word(&self.st, &cell.status),
            cell.detail,
            cell.secs
        ));
        self.with_bar(|pb| pb.inc(1));
    }

    fn run_ended(&self) {
        self.end_bar();
    }

    fn download_started(&self, name: &str, total: Option<u64>) {
        self.start_bar(
            "{spinner} {msg} [{bar:24}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            Some(total.unwrap_or(0)),
            name,
        );
    }

    fn download_progress(&self, _name: &str, done: u64) {
        self.with_bar(|pb| pb.set_position(done));
    }

    fn download_ended(&self, _name: &str) {
        self.end_bar();
    }

    fn fetched(&self, f: &Fetched) {
        if !self.quiet {
            eprintln!(
                "fetched {} ({}, {} verified)",
                f.name,
                human_size(f.size),
                f.algorithm
            );
        }
    }

    fn warning(&self, message: &str) {
        eprintln!("{} {message}", self.st.yellow("warning:"));
    }
}
