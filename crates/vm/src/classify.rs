//! The boot-stage classifier: reads a guest's serial console as it streams
//! and names how far the boot got, when (guest time where the kernel prints
//! it), and why it stopped. Table-driven; the guest is untrusted, so lines
//! are bounded and nothing it prints is used as anything but text.

use crate::stage::{after, guest_time};
pub use crate::stage::{classify_line, Event, Outcome, Stage};

/// Longest console line kept (longer lines are cut).
const MAX_LINE: usize = 4096;
/// Longest pending line checked for a prompt (prompt text plus escapes).
const MAX_PROMPT: usize = 256;
/// Most stage events recorded.
const MAX_EVENTS: usize = 1000;

/// Feeds on console bytes, keeps the stage timeline.
#[derive(Debug, Default)]
pub struct Classifier {
    partial: Vec<u8>,
    /// A line whose continuation is awaited ([`Classifier::joined`]).
    held: Option<String>,
    oops: Option<String>,
    grub_errors: Vec<String>,
    key_wait: Option<&'static str>,
    now: Option<f64>,
    events: Vec<Event>,
    saw_output: bool,
    /// The last non-empty console line (bounded), for silence diagnoses.
    last_line: String,
    /// The EFI stub made an empty device tree: the firmware passed none.
    empty_dtb: bool,
    /// Problems on the way (failed units, kernel warnings, …).
    health: crate::health::Health,
}

impl Classifier {
    /// Problems the console showed on the way (whatever the outcome).
    pub fn problems(&self) -> &[crate::health::Problem] {
        self.health.problems()
    }

    /// A fresh classifier.
    pub fn new() -> Classifier {
        Classifier::default()
    }

    /// [`Classifier::feed`] for bytes that arrived `host_time` seconds after
    /// QEMU started; stages reached get that time.
    pub fn feed_at(&mut self, bytes: &[u8], host_time: f64) -> Vec<Stage> {
        self.now = Some(host_time);
        self.feed(bytes)
    }

    /// Feeds console bytes (any chunking); returns stages newly reached.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Stage> {
        let mut new = Vec::new();
        if !bytes.is_empty() {
            self.saw_output = true;
        }
        for &b in bytes {
            // Firmware uses CR and escape sequences; split on both line ends.
            if b == b'\n' || b == b'\r' {
                let line = String::from_utf8_lossy(&self.partial).into_owned();
                self.partial.clear();
                if let Some(s) = self.joined(line).and_then(|l| self.line(&l)) {
                    new.push(s);
                }
            } else if self.partial.len() < MAX_LINE {
                self.partial.push(b);
                // Full-screen menus (GRUB, systemd-boot, the firmware's)
                // move the cursor instead of ending lines: a cursor move
                // ends the text before it.
                if matches!(b, b'H' | b'J' | b'f') {
                    if let Some(at) = cursor_move_start(&self.partial) {
                        let line = String::from_utf8_lossy(&self.partial[..at]).into_owned();
                        self.partial.clear();
                        if let Some(s) = self.line(&line) {
                            new.push(s);
                        }
                    }
                }
            }
        }
        // Prompts arrive without a newline. They are short lines, so only a
        // short pending line is looked at (a long one would make every
        // byte-sized read cost the whole line).
        if self.partial.is_empty() || self.partial.len() > MAX_PROMPT {
            return new;
        }
        let pending = String::from_utf8_lossy(&self.partial).into_owned();
        if pending.trim_start().starts_with("Shell>")
            || pending.contains("grub rescue>")
            || pending.trim_start().starts_with("grub>")
            || pending.trim_end().ends_with("login:")
        {
            self.partial.clear();
            if let Some(s) = self.line(&pending) {
                new.push(s);
            }
        }
        new
    }

    /// A complete line, or `None` while one is held: RISC-V EDK2 breaks
    /// `BdsDxe: failed to load Boot0001 "` from the rest of the option's
    /// description and its status on the next line; the two are joined
    /// (once: the held line is at most [`MAX_LINE`] bytes).
    fn joined(&mut self, line: String) -> Option<String> {
        if let Some(head) = self.held.take() {
            if line.trim().is_empty() {
                self.held = Some(head);
                return None;
            }
            return Some(head + &line);
        }
        if line.contains("BdsDxe: failed to load Boot") && line.matches('"').count() % 2 == 1 {
            self.held = Some(line);
            return None;
        }
        Some(line)
    }

    fn line(&mut self, raw: &str) -> Option<Stage> {
        let line: String = strip_ansi(raw);
        if !line.trim().is_empty() {
            self.last_line = line.trim().chars().take(MAX_PROMPT).collect();
            self.health.line(&line, guest_time(line.trim_start()));
        }
        if line.contains("EFI stub: Generating empty DTB") {
            self.empty_dtb = true;
        }
        if line.contains("to boot the selected OS") {
            self.key_wait = Some("the GRUB menu has no timeout and waits for a key");
        }
        if line.contains("executed automatically in") {
            self.key_wait = None;
        }
        // shim's error dialog: a box titled ERROR with an OK button.
        if line
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .eq("ERROR".chars())
        {
            self.key_wait = Some("a boot loader shows an error dialog and waits for a key");
        }
        if self.oops.is_none()
            && (line.contains("Internal error: Oops")
                || line.contains("Unable to handle kernel")
                || line.contains("BUG: ")
                || line.contains("general protection fault"))
        {
            self.oops = Some(line.trim().to_string());
        }
        if let Some(err) = line.trim().strip_prefix("error: ") {
            if self.grub_errors.len() < 8 {
                self.grub_errors.push(err.to_string());
            }
        }
        let stage = classify_line(&line)?;
        // Some firmware (OVMF) prints no banner on the serial console; its
        // boot manager's first line proves it ran.
        if matches!(
            stage,
            Stage::BootOptionStarted(_) | Stage::BootOptionFailed(_) | Stage::UefiShell
        ) && !self
            .events
            .iter()
            .any(|e| e.stage == Stage::FirmwareStarted)
        {
            self.events.push(Event {
                stage: Stage::FirmwareStarted,
                guest_time: None,
                host_time: self.now,
                line: line.trim().to_string(),
            });
        }
        if stage != Stage::GrubStarted {
            self.key_wait = None;
        }
        // Repeated banners and prompts are one stage; so is the initramfs's
        // second word on a missing root (`ALERT! … does not exist` after
        // `Gave up waiting for root file system device`).
        let again = |e: &Event| {
            e.stage == stage
                || matches!(
                    (&e.stage, &stage),
                    (Stage::RootNotFound(_), Stage::RootNotFound(_))
                )
        };
        if self.events.iter().any(again) || self.events.len() >= MAX_EVENTS {
            return None;
        }
        self.events.push(Event {
            guest_time: guest_time(line.trim_start()),
            host_time: self.now,
            line: line.trim().to_string(),
            stage: stage.clone(),
        });
        Some(stage)
    }

    /// Records the image's readiness signal, which arrived `host_time`
    /// seconds after QEMU started on the readiness port (`line`: what it
    /// wrote, bounded).
    pub fn ready(&mut self, line: &str, host_time: f64) {
        if self.events.iter().any(|e| e.stage == Stage::Ready) || self.events.len() >= MAX_EVENTS {
            return;
        }
        self.events.push(Event {
            stage: Stage::Ready,
            guest_time: None,
            host_time: Some(host_time),
            line: line.chars().take(MAX_LINE).collect(),
        });
    }

    /// Why the boot failed, in words, when the failure stage alone does not
    /// say: a UEFI shell is explained by the boot options the firmware
    /// tried before falling back to it (EDK2 prints each status).
    pub fn cause(&self) -> Option<String> {
        let failure = self.events.iter().find(|e| e.stage.is_failure())?;
        if matches!(failure.stage, Stage::GrubPrompt | Stage::GrubRescue) {
            return (!self.grub_errors.is_empty())
                .then(|| format!("GRUB said: {}", self.grub_errors.join("; ")));
        }
        if let (Stage::KernelPanic(reason), Some(oops)) = (&failure.stage, &self.oops) {
            return Some(format!("{reason} (after: {oops})"));
        }
        if failure.stage != Stage::UefiShell {
            return failure.stage.detail().map(str::to_string);
        }
        let tried: Vec<&str> = self
            .events
            .iter()
            .filter_map(|e| match &e.stage {
                Stage::BootOptionFailed(d) => Some(d.as_str()),
                _ => None,
            })
            .collect();
        let last = tried.last()?;
        let status = last.rsplit(": ").next().unwrap_or(last);
        let meaning = match status {
            "Not Found" => "no boot loader at the removable path (\\EFI\\BOOT\\BOOTAA64.EFI / BOOTX64.EFI)",
            "Unsupported" | "Load Error" => {
                "the removable-path file is not an EFI application the firmware can run (wrong architecture or not PE/COFF)"
            }
            "Access Denied" | "Security Violation" => "Secure Boot refused the boot loader's signature",
            _ => "the boot loader could not be started",
        };
        Some(format!("{meaning}; firmware said: {}", tried.join("; ")))
    }

    /// Why a guest that went quiet (deadline passed, or it stopped) is
    /// quiet, when the console's last words say: a kernel that printed
    /// nothing after the EFI stub left boot services has no console (wrong
    /// `console=`, no driver for the UART) or died before it had one, and
    /// when the firmware passed no device tree, a kernel not using ACPI
    /// (`acpi=off`) has no description of the hardware at all.
    pub fn silence(&self) -> Option<String> {
        if let Some(device) = after(&self.last_line, "Waiting for root device") {
            return Some(format!(
                "the kernel waits for its root device{} (rootwait) and it never appeared: \
                 no driver for its disk, or root= names a device this VM does not have",
                match device.trim_end_matches('.') {
                    "" => String::new(),
                    d => format!(" {d}"),
                }
            ));
        }
        if !self.last_line.contains("Exiting boot services") {
            return None;
        }
        let mut why = String::from(
            "the kernel printed nothing after the EFI stub exited boot services: \
             no console driver for its console=, or it died before its console started",
        );
        if self.empty_dtb {
            why.push_str(
                "; the firmware passed no device tree (the EFI stub generated an empty one), \
                 so a kernel booted with acpi=off or without ACPI has no description of the \
                 hardware (this firmware is ACPI-only on this machine)",
            );
        }
        Some(why)
    }

    /// The last non-empty console line (bounded), for reports of where a
    /// silent guest stopped.
    pub fn last_line(&self) -> &str {
        &self.last_line
    }

    /// Why the guest is waiting for a key press, if the console shows it is
    /// (a GRUB menu without a countdown): the boot will not go on by itself.
    pub fn waiting_for_key(&self) -> Option<&'static str> {
        self.key_wait
    }

    /// The timeline so far.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The outcome given what was seen (call when the guest exited or the
    /// deadline passed).
    pub fn outcome(&self) -> Outcome {
        if let Some(f) = self.events.iter().find(|e| e.stage.is_failure()) {
            return Outcome::Failed {
                stage: f.stage.clone(),
            };
        }
        let reached = |s: &Stage| self.events.iter().any(|e| e.stage == *s);
        // Only userspace asks the kernel to power down (reboot(2)), so a
        // power-down proves userspace ran even when `quiet` hid the kernel's
        // "Run /init" line.
        let powered_down = self
            .events
            .iter()
            .any(|e| e.stage == Stage::PoweredOff && e.line.contains("Power down"));
        if reached(&Stage::LoginPrompt)
            || reached(&Stage::Ready)
            || ((reached(&Stage::InitReached) || reached(&Stage::UserspaceStarted))
                && reached(&Stage::PoweredOff))
            || powered_down
        {
            return Outcome::Booted;
        }
        if !self.saw_output {
            return Outcome::NoOutput;
        }
        Outcome::Stalled {
            last: self.events.last().map(|e| e.stage.clone()),
        }
    }
}

/// Where a CSI cursor-movement/erase sequence (`ESC [ 12;3 H`, `ESC [ 2 J`)
/// ending `buf` starts.
fn cursor_move_start(buf: &[u8]) -> Option<usize> {
    let esc = buf.iter().rposition(|&c| c == 0x1b)?;
    let seq = &buf[esc..];
    (seq.len() >= 3
        && seq[1] == b'['
        && seq[2..seq.len() - 1]
            .iter()
            .all(|c| c.is_ascii_digit() || *c == b';' || *c == b'='))
    .then_some(esc)
}

/// The line without CSI sequences (`ESC [` parameters, intermediates, a
/// final byte in `@`..`~`). A sequence cut short by another character ends
/// there and that character is kept: systemd ellipsizes unit names through
/// their colour codes (`\e[0;1;…dc0de-…`), and the text after the cut is
/// the message.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        if chars.peek() != Some(&'[') {
            continue;
        }
        chars.next();
        while let Some(&n) = chars.peek() {
            if (' '..='?').contains(&n) {
                chars.next();
                continue;
            }
            if ('@'..='~').contains(&n) {
                chars.next();
            }
            break;
        }
    }
    out
}

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
