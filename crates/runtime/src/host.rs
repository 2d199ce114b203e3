//! What the engine asks of the host: where caches and logs live, KVM or
//! TCG for a guest (probed, never assumed), how long a boot may take, and
//! how many boots fit side by side.

use bootproof_platform::Arch;
use bootproof_vm::accel::{self, Accel};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// `~/.cache/bootproof` (or `$XDG_CACHE_HOME/bootproof`), else the temp dir.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("bootproof")
}

/// KVM or TCG for a guest architecture on this host (the probe, when one
/// ran, is cached per host boot and returned for the report).
pub fn choose_accel(guest: Arch) -> (accel::Decision, Option<accel::Probe>) {
    let host = Arch::host();
    let mut probe = None;
    let decision = accel::decide(host, guest, || {
        let p = match host {
            Some(h) => accel::probe_kvm_cached(h, &cache_dir()),
            None => accel::Probe::Absent,
        };
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

/// Host cores (at least 1).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// vCPUs per guest by default: 2, or fewer on a smaller host.
pub fn default_cpus() -> u32 {
    2u32.min(cores() as u32).max(1)
}

/// Free text as one safe file-name component: letters, digits, `.` and
/// `-` kept, everything else `_` (no `/`, no spaces).
pub fn file_component(s: &str) -> String {
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

/// A fresh path for a console log in the log cache (`~/.cache/bootproof/
/// logs`, the newest 100 kept), named after `label`.
pub fn log_path(label: &str) -> PathBuf {
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

/// Who QEMU switches to after setup: an unprivileged identity when this
/// process is root (see [`bootproof_vm::privilege`]), `None` otherwise.
pub fn qemu_run_as() -> Result<Option<bootproof_vm::privilege::RunAs>, crate::Error> {
    bootproof_vm::privilege::RunAs::for_this_process().map_err(|e| {
        crate::Error::with_hint(
            e,
            format!(
                "set {} to uid:gid (e.g. 65534:65534), a user name, or root to keep QEMU privileged",
                bootproof_vm::privilege::QEMU_USER_ENV
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_components_cannot_leave_their_directory() {
        assert_eq!(file_component("../etc/passwd x"), ".._etc_passwd_x");
        assert_eq!(file_component("gic3 acpi-on pci"), "gic3_acpi-on_pci");
    }

    #[test]
    fn deadlines_default_by_accelerator() {
        assert_eq!(deadline(None, Accel::Kvm), Duration::from_secs(60));
        assert_eq!(deadline(None, Accel::Tcg), Duration::from_secs(300));
        assert_eq!(deadline(Some(7), Accel::Tcg), Duration::from_secs(7));
    }
}
