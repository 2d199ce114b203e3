//! The health of a boot that "succeeded": console lines that show
//! something went wrong on the way to the login prompt, in the spirit of
//! the checks CoreOS's kola harness makes on every test boot — failed
//! units, kernel warnings and oopses, devices that never appeared, OOM
//! kills, ordering cycles, fsck failures, initramfs errors.

use serde::Serialize;

/// Most problems kept per boot (the first ones: the rest repeat them).
const MAX_PROBLEMS: usize = 50;
/// Longest line kept as evidence.
const MAX_LINE: usize = 300;

/// One problem a console line shows.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Problem {
    /// What kind (`failed-unit`, `kernel-warning`, `kernel-bug`,
    /// `call-trace`, `device-timeout`, `oom-kill`, `ordering-cycle`,
    /// `fsck`, `initramfs`, `emergency-shell`).
    pub kind: &'static str,
    /// The line (control characters removed, bounded).
    pub line: String,
    /// Guest time from the line's `[  12.345]` prefix, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_time: Option<f64>,
}

/// The kind of problem a (clean, ANSI-stripped) console line shows.
pub fn problem_kind(line: &str) -> Option<&'static str> {
    let has = |s: &str| line.contains(s);
    Some(if has("[FAILED]") || has("Failed to start ") {
        "failed-unit"
    } else if has("Timed out waiting for device") || has("Dependency failed for") {
        "device-timeout"
    } else if has("Out of memory: Killed process") || has("invoked oom-killer") {
        "oom-kill"
    } else if has("Found ordering cycle on")
        || (has("Job ") && has(" deleted to break ordering cycle"))
    {
        "ordering-cycle"
    } else if has("UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY") || has("fsck failed") {
        "fsck"
    } else if has("dracut: FATAL:")
        || has("dracut Warning: Could not boot")
        || has("initramfs: FATAL")
    {
        "initramfs"
    } else if has("WARNING: CPU: ") || has("------------[ cut here ]------------") {
        "kernel-warning"
    } else if has("BUG: ") || has("Internal error: Oops") || has("Oops: ") {
        "kernel-bug"
    } else if has("Call trace:") || has("Call Trace:") {
        "call-trace"
    } else if has("You are in emergency mode") || has("You are in rescue mode") {
        "emergency-shell"
    } else {
        return None;
    })
}

/// Collects problems line by line (bounded).
#[derive(Debug, Default, Clone)]
pub struct Health {
    problems: Vec<Problem>,
}

impl Health {
    /// Looks at one console line.
    pub fn line(&mut self, line: &str, guest_time: Option<f64>) {
        if self.problems.len() >= MAX_PROBLEMS {
            return;
        }
        if let Some(kind) = problem_kind(line) {
            self.problems.push(Problem {
                kind,
                line: line.trim().chars().take(MAX_LINE).collect(),
                guest_time,
            });
        }
    }

    /// What was found, in console order.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_console_lines_are_named() {
        let cases = [
            ("[FAILED] Failed to start systemd-networkd-wait-online.service - Wait for Network to be Configured.", Some("failed-unit")),
            ("[  OK  ] Started systemd-journald.service - Journal Service.", None),
            ("[ TIME ] Timed out waiting for device dev-disk-by\\x2duuid-1234.device - /dev/disk/by-uuid/1234.", Some("device-timeout")),
            ("[DEPEND] Dependency failed for boot-efi.mount - /boot/efi.", Some("device-timeout")),
            ("[   12.3] Out of memory: Killed process 612 (cloud-init) total-vm:1234kB", Some("oom-kill")),
            ("[    5.0] systemd[1]: foo.service: Found ordering cycle on bar.service/start", Some("ordering-cycle")),
            ("/dev/vda1: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY.", Some("fsck")),
            ("[    3.1] dracut: FATAL: Failed to mount root", Some("initramfs")),
            ("[    2.2] WARNING: CPU: 0 PID: 1 at drivers/base/dd.c:123 really_probe+0x1/0x2", Some("kernel-warning")),
            ("[    2.3] BUG: kernel NULL pointer dereference, address: 0000000000000000", Some("kernel-bug")),
            ("[    2.4] Call trace:", Some("call-trace")),
            ("You are in emergency mode. After logging in, type \"journalctl -xb\"", Some("emergency-shell")),
            ("Debian GNU/Linux 12 debian ttyS0", None),
        ];
        for (line, want) in cases {
            assert_eq!(problem_kind(line), want, "{line}");
        }
    }

    #[test]
    fn a_flood_is_bounded() {
        let mut h = Health::default();
        for _ in 0..10_000 {
            h.line(
                &format!("[FAILED] Failed to start {}", "x".repeat(1000)),
                None,
            );
        }
        assert_eq!(h.problems().len(), MAX_PROBLEMS);
        assert!(h.problems()[0].line.chars().count() <= MAX_LINE);
    }
}
