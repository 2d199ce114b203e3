//! Per-run state: every VM gets its own directory (overlay, NVRAM copy,
//! sockets, QEMU's pid) under one base directory. A run holds an exclusive
//! lock on its directory for its whole life; a directory whose lock is free
//! belongs to a run that died (`kill -9`), so the next run kills any QEMU it
//! left (if pdeathsig somehow missed it) and removes the directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const LOCK: &str = "lock";
const KEPT: &str = "kept";
/// The file a run writes QEMU's pid to.
pub const QEMU_PID: &str = "qemu.pid";

/// The base directory for run state: `$BOOTPROOF_STATE_DIR`, else
/// `$XDG_RUNTIME_DIR/bootproof`, else `$TMPDIR/bootproof-<uid>` (kept short:
/// unix socket paths are limited to 107 bytes).
pub fn base_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BOOTPROOF_STATE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        let d = PathBuf::from(d);
        if d.is_dir() {
            return d.join("bootproof");
        }
    }
    let uid = rustix::process::getuid().as_raw();
    std::env::temp_dir().join(format!("bootproof-{uid}"))
}

/// A live run's directory, removed on drop unless kept.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    _lock: File,
    keep: bool,
}

impl RunDir {
    /// Creates a fresh run directory under `base/runs`, locked by this process.
    pub fn create(base: &Path) -> io::Result<RunDir> {
        let runs = base.join("runs");
        std::fs::create_dir_all(&runs)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = runs.join(format!("{}-{:x}", std::process::id(), nanos));
        std::fs::create_dir(&path)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path.join(LOCK))?;
        lock.try_lock().map_err(|e| match e {
            TryLockError::Error(e) => e,
            TryLockError::WouldBlock => io::Error::other("fresh run directory already locked"),
        })?;
        Ok(RunDir {
            path,
            _lock: lock,
            keep: false,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory after the run (`--keep`); stale-state cleanup
    /// leaves kept directories alone.
    pub fn keep(&mut self) {
        self.keep = true;
        let _ = File::create(self.path.join(KEPT));
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// What stale-state cleanup did.
#[derive(Debug, Default, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Cleanup {
    /// Directories of dead runs removed.
    pub removed: Vec<PathBuf>,
    /// QEMU processes of dead runs killed.
    pub killed: Vec<u32>,
}

/// Removes the state of runs that died: directories under `base/runs`
/// whose lock nobody holds and that were not kept. A QEMU still running
/// from such a run (its pid file names it and its command line mentions the
/// directory, so a recycled pid is never hit) is killed first.
pub fn clean_stale(base: &Path) -> Cleanup {
    let mut done = Cleanup::default();
    let Ok(entries) = std::fs::read_dir(base.join("runs")) else {
        return done;
    };
    for e in entries.flatten() {
        let dir = e.path();
        if dir.join(KEPT).exists() {
            continue;
        }
        let lock = match OpenOptions::new().write(true).open(dir.join(LOCK)) {
            Ok(f) => f,
            // No lock file: a directory mid-creation or foreign; leave it
            // unless it is old enough that its creator is surely gone.
            Err(_) => {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 60);
                if old && std::fs::remove_dir_all(&dir).is_ok() {
                    done.removed.push(dir);
                }
                continue;
            }
        };
        if lock.try_lock().is_err() {
            continue; // a live run
        }
        if let Some(pid) = stale_qemu(&dir) {
            if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                if rustix::process::kill_process(p, rustix::process::Signal::KILL).is_ok() {
                    done.killed.push(pid);
                }
            }
        }
        if std::fs::remove_dir_all(&dir).is_ok() {
            done.removed.push(dir);
        }
    }
    done
}

/// The pid of a QEMU that still runs for `dir`, if any.
fn stale_qemu(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join(QEMU_PID))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let needle = dir.to_string_lossy();
    String::from_utf8_lossy(&cmdline)
        .contains(needle.as_ref())
        .then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_runs_are_kept_dead_ones_removed() {
        let base = std::env::temp_dir().join(format!("bp-state-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let live = RunDir::create(&base).unwrap();
        let mut kept = RunDir::create(&base).unwrap();
        kept.keep();
        let kept_path = kept.path().to_path_buf();
        drop(kept);
        // A dead run: its directory exists, nobody holds its lock, and its
        // pid file names a process that is not QEMU for it.
        let dead = base.join("runs/1-dead");
        std::fs::create_dir_all(&dead).unwrap();
        File::create(dead.join(LOCK)).unwrap();
        std::fs::write(dead.join(QEMU_PID), std::process::id().to_string()).unwrap();
        let c = clean_stale(&base);
        assert_eq!(c.removed, vec![dead.clone()]);
        assert!(c.killed.is_empty(), "our own pid is not a QEMU of that run");
        assert!(live.path().exists() && kept_path.exists() && !dead.exists());
        let live_path = live.path().to_path_buf();
        drop(live);
        assert!(!live_path.exists(), "a finished run removes its directory");
        let _ = std::fs::remove_dir_all(&base);
    }
}
