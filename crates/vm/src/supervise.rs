//! Supervision: starts QEMU so it cannot outlive bootproof, streams its
//! serial console into a log file and the classifier, enforces the deadline,
//! reacts to interrupts and `--until`, and ends the VM through QMP (then
//! SIGKILL) whatever happened.
//!
//! QEMU runs in its own process group (a terminal's Ctrl-C reaches bootproof,
//! which shuts the guest down itself) with `PR_SET_PDEATHSIG = SIGKILL`, so
//! a `kill -9` of bootproof takes QEMU with it. The death signal follows the
//! *thread* that spawned QEMU: call [`boot`] from a thread that outlives the
//! VM (the CLI's main thread does).
//!
//! A QEMU that switches user (`-run-with user=`, when bootproof is root)
//! loses its death signal with its credentials (prctl(2)), so a [`Keeper`]
//! takes over: a `/bin/sh` child holding a pipe from bootproof, which kills
//! that QEMU when the pipe closes without bootproof having dismissed it.

use crate::classify::{Classifier, Event, Outcome, Stage};
use crate::hang;
use crate::machine::VmSpec;
pub use crate::outcome::{BootOutcome, BootResult, Tone};
use crate::qmp::Qmp;
use crate::ready::ReadyPort;
use crate::state::{RunDir, QEMU_PID};
use serde::Serialize;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Most console bytes accepted before the guest is stopped.
const MAX_CONSOLE: u64 = 256 << 20;
/// After a failure stage, how long to keep reading so the log holds the
/// whole message (a panic's backtrace, GRUB's error text).
const FAILURE_GRACE: Duration = Duration::from_secs(2);
/// How long a console that shows it waits for a key must stay silent
/// before the boot is called stalled.
const KEY_WAIT_SILENCE: Duration = Duration::from_secs(5);
/// How long a clean QMP `quit` may take before SIGKILL.
const QUIT_GRACE: Duration = Duration::from_secs(3);
/// Most of QEMU's stderr kept.
const MAX_STDERR: usize = 16 * 1024;

/// A stage at which to stop early (`--until`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Until {
    /// The firmware printed its banner.
    Firmware,
    /// A boot loader started (a firmware boot option or GRUB).
    Bootloader,
    /// The kernel started.
    Kernel,
    /// Userspace (init) started.
    Userspace,
    /// A login prompt appeared.
    Login,
}

impl Until {
    /// Every value, for help and parsing.
    pub const ALL: [(&'static str, Until); 5] = [
        ("firmware", Until::Firmware),
        ("bootloader", Until::Bootloader),
        ("kernel", Until::Kernel),
        ("userspace", Until::Userspace),
        ("login", Until::Login),
    ];

    /// Parses a name from [`Until::ALL`].
    pub fn parse(s: &str) -> Option<Until> {
        Until::ALL.iter().find(|(n, _)| *n == s).map(|(_, u)| *u)
    }

    /// Whether reaching `stage` satisfies this.
    pub fn reached_by(self, stage: &Stage) -> bool {
        match self {
            Until::Firmware => matches!(stage, Stage::FirmwareStarted),
            Until::Bootloader => {
                matches!(stage, Stage::BootOptionStarted(_) | Stage::GrubStarted)
            }
            Until::Kernel => matches!(stage, Stage::KernelStarted),
            Until::Userspace => matches!(
                stage,
                Stage::InitReached | Stage::UserspaceStarted | Stage::LoginPrompt | Stage::Ready
            ),
            Until::Login => matches!(stage, Stage::LoginPrompt | Stage::Ready),
        }
    }
}

/// How to watch one boot.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The whole boot's deadline, from QEMU's start.
    pub deadline: Duration,
    /// Stop as soon as this stage is reached.
    pub until: Option<Until>,
    /// Where the console log goes.
    pub console_log: PathBuf,
    /// Most console bytes written to the log (the classifier still sees all).
    pub max_log_bytes: u64,
    /// End the boot as booted this long after a login prompt (a guest at
    /// its prompt never powers off by itself); `None` keeps it running
    /// (agents that report after login).
    pub end_after_login: Option<Duration>,
}

/// Arranges for the child to die with this thread and sit in its own
/// process group.
#[allow(unsafe_code)]
fn supervised(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    let parent = rustix::process::getpid();
    // SAFETY: the closure runs in the forked child before exec; it only
    // makes two system calls (prctl, getppid) and allocates nothing, so it
    // is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            // The parent may have died before prctl took effect.
            if rustix::process::getppid() != Some(parent) {
                return Err(rustix::io::Errno::SRCH.into());
            }
            Ok(())
        });
    }
}

/// Kills QEMU if bootproof dies without dismissing it: a shell reading a
/// pipe only bootproof writes to. Bootproof's death closes the pipe; the
/// shell then kills the QEMU whose command line names this run directory
/// (so a reused pid is never hit). Dropping the keeper dismisses it first.
struct Keeper {
    shell: Child,
}

impl Keeper {
    fn start(qemu_pid: u32, run: &Path) -> io::Result<Keeper> {
        use std::os::unix::process::CommandExt;
        let script = r#"read -r _ || true
if grep -qaF -- "$2" "/proc/$1/cmdline" 2>/dev/null; then kill -KILL "$1"; fi"#;
        let shell = Command::new("/bin/sh")
            .args(["-c", script, "bootproof-keeper", &qemu_pid.to_string()])
            .arg(run)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        Ok(Keeper { shell })
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        // Killed before its pipe closes, it never acts.
        let _ = self.shell.kill();
        let _ = self.shell.wait();
    }
}

/// QEMU's stderr without its own informational lines (the console
/// socket's "waiting for connection").
fn stderr_tail(buf: &std::sync::Mutex<Vec<u8>>) -> String {
    let b = buf.lock().map(|b| b.clone()).unwrap_or_default();
    String::from_utf8_lossy(&b)
        .lines()
        .filter(|l| !l.contains(": info: "))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

fn qemu_error(stderr: &str) -> String {
    let lines = || stderr.lines();
    lines()
        .find(|l| l.contains("qemu-system") || l.contains("error") || l.contains("Error"))
        .or_else(|| lines().next())
        .unwrap_or("QEMU exited before the guest started")
        .trim()
        .to_string()
}

/// What the caller hears while a guest runs.
pub struct Hooks<'a> {
    /// Every stage as it is reached (for progress).
    pub on_stage: &'a mut dyn FnMut(&Event),
    /// Every console chunk as it arrives (for readers of agent records).
    pub on_console: &'a mut dyn FnMut(&[u8]),
}

/// Boots `spec` with QEMU at `qemu`, state in `run`, and watches it.
/// `interrupted` is polled (set it from a Ctrl-C handler).
pub fn boot(
    qemu: &Path,
    spec: &VmSpec,
    run: &RunDir,
    opts: &WatchOptions,
    interrupted: &AtomicBool,
    hooks: Hooks,
) -> io::Result<BootResult> {
    let mut cmd = Command::new(qemu);
    cmd.args(spec.qemu_args())
        .current_dir(run.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    supervised(&mut cmd);
    File::create(&spec.console_file)?;
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start {}: {e}", qemu.display())))?;
    std::fs::write(run.path().join(QEMU_PID), child.id().to_string())?;
    let _keeper = match spec.run_as.map(|_| Keeper::start(child.id(), run.path())) {
        Some(Err(e)) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        Some(Ok(k)) => Some(k),
        None => None,
    };
    let stderr_buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    if let Some(mut err) = child.stderr.take() {
        let buf = stderr_buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = err.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                if let Ok(mut b) = buf.lock() {
                    b.extend_from_slice(&chunk[..n]);
                    if b.len() > MAX_STDERR {
                        let cut = b.len() - MAX_STDERR;
                        b.drain(..cut);
                    }
                }
            }
        });
    }
    let mut log = File::create(&opts.console_log)?;
    let mut result = BootResult {
        outcome: BootOutcome::Timeout {
            last: None,
            reason: None,
        },
        problems: Vec::new(),
        stages: Vec::new(),
        elapsed: 0.0,
        qemu_exit: None,
        qemu_stderr: String::new(),
        console_bytes: 0,
        console_log: opts.console_log.clone(),
    };

    // QEMU appends the console to a file, which never blocks the guest's
    // UART (a socket that is not drained fast enough on a loaded host makes
    // QEMU drop bytes and EDK2's serial writes time out mid-line). A thread
    // tails it; `qemu_gone` tells it when an empty read means the end.
    let qemu_gone = std::sync::Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(64);
    {
        let mut console = File::open(&spec.console_file)?;
        let gone = qemu_gone.clone();
        std::thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                // Read the flag first: an empty read after QEMU exited is EOF.
                let done = gone.load(Ordering::Acquire);
                match console.read(&mut chunk) {
                    Ok(0) if done => break,
                    Ok(0) => std::thread::sleep(Duration::from_millis(20)),
                    Ok(n) => {
                        if tx.send(chunk[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
    }

    let mut classifier = Classifier::new();
    let mut ready = spec.ready_channel.clone().map(ReadyPort::new);
    let mut logged = 0u64;
    let mut failed_at: Option<Instant> = None;
    let mut console_closed = false;
    let mut last_output = Instant::now();
    let hang_limit = hang::silence_limit(opts.deadline);
    let outcome = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(bytes) => {
                last_output = Instant::now();
                result.console_bytes += bytes.len() as u64;
                (hooks.on_console)(&bytes);
                if logged < opts.max_log_bytes {
                    let take = (opts.max_log_bytes - logged).min(bytes.len() as u64) as usize;
                    log.write_all(&bytes[..take])?;
                    logged += take as u64;
                }
                let at = started.elapsed().as_secs_f64();
                let before = classifier.events().len();
                classifier.feed_at(&bytes, at);
                for e in &classifier.events()[before..] {
                    (hooks.on_stage)(e);
                }
                if let Some(u) = opts.until {
                    if let Some(e) = classifier.events()[before..]
                        .iter()
                        .find(|e| u.reached_by(&e.stage))
                    {
                        break BootOutcome::Reached {
                            stage: e.stage.clone(),
                        };
                    }
                }
                if failed_at.is_none() && matches!(classifier.outcome(), Outcome::Failed { .. }) {
                    failed_at = Some(Instant::now());
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => console_closed = true,
        }
        if let Some(line) = ready.as_mut().and_then(ReadyPort::poll) {
            classifier.ready(&line, started.elapsed().as_secs_f64());
            if let Some(e) = classifier.events().last() {
                (hooks.on_stage)(e);
            }
            if opts.until.is_some_and(|u| u.reached_by(&Stage::Ready)) {
                break BootOutcome::Reached {
                    stage: Stage::Ready,
                };
            }
        }
        if !qemu_gone.load(Ordering::Relaxed) {
            if let Some(status) = child.try_wait()? {
                result.qemu_exit = status.code();
                qemu_gone.store(true, Ordering::Release);
            }
        }
        let last = classifier.events().last().map(|e| e.stage.clone());
        if result.console_bytes > MAX_CONSOLE {
            break BootOutcome::Stalled {
                last,
                reason: Some(format!(
                    "the guest flooded the console (over {} MiB)",
                    MAX_CONSOLE >> 20
                )),
            };
        }
        if interrupted.load(Ordering::Relaxed) {
            break BootOutcome::Interrupted { last };
        }
        if failed_at.is_some_and(|t| t.elapsed() >= FAILURE_GRACE) {
            break from_console(&classifier, last);
        }
        if let Some(settle) = opts.end_after_login {
            let login = classifier
                .events()
                .iter()
                .find(|e| matches!(e.stage, Stage::LoginPrompt | Stage::Ready))
                .and_then(|e| e.host_time);
            if login.is_some_and(|t| started.elapsed().as_secs_f64() >= t + settle.as_secs_f64()) {
                break BootOutcome::Booted;
            }
        }
        if let Some(hung) =
            hang_limit.and_then(|l| hang::check(&classifier, last_output.elapsed(), l))
        {
            break hung;
        }
        if let Some(why) = classifier.waiting_for_key() {
            if last_output.elapsed() >= KEY_WAIT_SILENCE {
                break BootOutcome::Stalled {
                    last,
                    reason: Some(why.to_string()),
                };
            }
        }
        if console_closed {
            // QEMU exited (the guest powered off, or QEMU died) and its
            // console was read to the end.
            let status = child.wait()?;
            result.qemu_exit = status.code();
            // Killed from outside (OOM killer, an operator, a dying host):
            // nothing the guest did, whatever the console shows.
            if let Some(sig) = std::os::unix::process::ExitStatusExt::signal(&status) {
                break BootOutcome::InfraError {
                    message: format!(
                        "QEMU was killed by signal {sig} (not by the guest){}",
                        match stderr_tail(&stderr_buf) {
                            t if t.trim().is_empty() => String::new(),
                            t => format!("; it said: {}", t.trim()),
                        }
                    ),
                };
            }
            if matches!(classifier.outcome(), Outcome::NoOutput) && !status.success() {
                std::thread::sleep(Duration::from_millis(50));
                break BootOutcome::InfraError {
                    message: qemu_error(&stderr_tail(&stderr_buf)),
                };
            }
            break from_console(&classifier, last);
        }
        if started.elapsed() >= opts.deadline {
            break match classifier.outcome() {
                Outcome::Failed { stage } => BootOutcome::Failed {
                    stage,
                    cause: classifier.cause(),
                },
                Outcome::Booted => BootOutcome::Booted,
                _ => BootOutcome::Timeout {
                    last,
                    reason: classifier.silence(),
                },
            };
        }
    };
    end_vm(&mut child, spec);
    log.flush()?;
    result.outcome = outcome;
    result.stages = classifier.events().to_vec();
    result.problems = classifier.problems().to_vec();
    result.elapsed = started.elapsed().as_secs_f64();
    result.qemu_stderr = stderr_tail(&stderr_buf);
    Ok(result)
}

fn from_console(classifier: &Classifier, last: Option<Stage>) -> BootOutcome {
    match classifier.outcome() {
        Outcome::Booted => BootOutcome::Booted,
        Outcome::Failed { stage } => BootOutcome::Failed {
            stage,
            cause: classifier.cause(),
        },
        Outcome::Stalled { .. } => BootOutcome::Stalled {
            last,
            reason: Some(match classifier.silence() {
                Some(why) => format!("QEMU exited: {why}"),
                None => "QEMU exited: the guest stopped before the boot finished".into(),
            }),
        },
        Outcome::NoOutput => BootOutcome::Stalled {
            last,
            reason: Some("QEMU exited and the guest printed nothing on the serial console".into()),
        },
    }
}

/// Ends QEMU: QMP `quit` (QEMU closes its files cleanly), then SIGKILL if
/// it lingers. Always reaps the child.
fn end_vm(child: &mut Child, spec: &VmSpec) {
    if let Ok(None) = child.try_wait() {
        if let Ok(mut q) = Qmp::connect(&spec.qmp_socket, Duration::from_secs(1)) {
            let _ = q.execute("quit", serde_json::Value::Null);
        }
        let t = Instant::now();
        while t.elapsed() < QUIT_GRACE {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}
