//! The boot-stage classifier: reads a guest's serial console as it streams
//! and names how far the boot got, when (guest time where the kernel prints
//! it), and why it stopped. Table-driven; the guest is untrusted, so lines
//! are bounded and nothing it prints is used as anything but text.

use serde::Serialize;

/// Longest console line kept (longer lines are cut).
const MAX_LINE: usize = 4096;
/// Longest pending line checked for a prompt (prompt text plus escapes).
const MAX_PROMPT: usize = 256;
/// Most stage events recorded.
const MAX_EVENTS: usize = 1000;

/// A point a boot reaches, or where it stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "stage", content = "detail", rename_all = "kebab-case")]
pub enum Stage {
    /// Firmware printed its banner.
    FirmwareStarted,
    /// The firmware's boot manager tried a boot option and it failed.
    BootOptionFailed(String),
    /// The firmware's boot manager started a boot option.
    BootOptionStarted(String),
    /// The firmware took an exception (`Synchronous Exception`).
    FirmwareException(String),
    /// No bootable device: the firmware fell back to the UEFI shell.
    UefiShell,
    /// A loader refused the next stage's signature under Secure Boot
    /// (shim's "Verification failed", GRUB's "bad shim signature").
    SecureBootRejected(String),
    /// GRUB is running (menu or prompt).
    GrubStarted,
    /// GRUB could not find its configuration or modules.
    GrubRescue,
    /// GRUB fell to its command line (`grub>`): no menu could be built.
    GrubPrompt,
    /// GRUB reported a missing file.
    GrubFileNotFound(String),
    /// The kernel is running.
    KernelStarted,
    /// The kernel panicked.
    KernelPanic(String),
    /// The root filesystem was not found (initramfs or kernel).
    RootNotFound(String),
    /// systemd dropped to emergency mode.
    EmergencyMode,
    /// The kernel started its first process (`Run /init as init
    /// process`): the initramfs's init when there is one, else the root's.
    InitReached,
    /// The root filesystem's init system announced itself (systemd's
    /// version line or its `Welcome to …!` banner, sysvinit's `INIT:
    /// version`): after an initramfs, the switch to the real root is done.
    UserspaceStarted,
    /// A login prompt appeared.
    LoginPrompt,
    /// The image said it is ready: `READY=1` on bootproof's readiness
    /// port (the virtio-serial port `org.bootproof.ready`), not a console
    /// line ([`Classifier::ready`]).
    Ready,
    /// The guest powered off or rebooted itself.
    PoweredOff,
}

impl Stage {
    /// A short human name for the stage.
    pub fn name(&self) -> &'static str {
        match self {
            Stage::FirmwareStarted => "firmware started",
            Stage::BootOptionFailed(_) => "boot option failed",
            Stage::BootOptionStarted(_) => "boot option started",
            Stage::FirmwareException(_) => "firmware exception",
            Stage::UefiShell => "UEFI shell (no bootable device)",
            Stage::SecureBootRejected(_) => "Secure Boot rejected a signature",
            Stage::GrubStarted => "GRUB started",
            Stage::GrubRescue => "GRUB rescue prompt",
            Stage::GrubPrompt => "GRUB command line (no menu)",
            Stage::GrubFileNotFound(_) => "GRUB: file not found",
            Stage::KernelStarted => "kernel started",
            Stage::KernelPanic(_) => "kernel panic",
            Stage::RootNotFound(_) => "root filesystem not found",
            Stage::EmergencyMode => "emergency mode",
            Stage::InitReached => "userspace (init) started",
            Stage::UserspaceStarted => "init system started",
            Stage::LoginPrompt => "login prompt",
            Stage::Ready => "the image signalled readiness",
            Stage::PoweredOff => "guest powered off",
        }
    }

    /// The stage in words, with its detail (`GRUB: file not found: /x`).
    pub fn text(&self) -> String {
        match self.detail() {
            Some(d) => format!("{}: {d}", self.name()),
            None => self.name().to_string(),
        }
    }

    /// The stage's detail (which boot option, which file, the panic reason).
    pub fn detail(&self) -> Option<&str> {
        match self {
            Stage::BootOptionFailed(d)
            | Stage::BootOptionStarted(d)
            | Stage::FirmwareException(d)
            | Stage::SecureBootRejected(d)
            | Stage::GrubFileNotFound(d)
            | Stage::KernelPanic(d)
            | Stage::RootNotFound(d) => Some(d),
            _ => None,
        }
    }

    fn is_failure(&self) -> bool {
        matches!(
            self,
            Stage::FirmwareException(_)
                | Stage::UefiShell
                | Stage::SecureBootRejected(_)
                | Stage::GrubRescue
                | Stage::GrubPrompt
                | Stage::GrubFileNotFound(_)
                | Stage::KernelPanic(_)
                | Stage::RootNotFound(_)
                | Stage::EmergencyMode
        )
    }
}

/// One stage reached, with the guest's own clock when the line carries one.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// The stage.
    #[serde(flatten)]
    pub stage: Stage,
    /// Kernel timestamp (`[    7.760525]`) in seconds, when printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_time: Option<f64>,
    /// Seconds since QEMU started (host clock) when the line arrived, when
    /// the classifier is fed live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_time: Option<f64>,
    /// The console line that showed it.
    pub line: String,
}

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Userspace was reached (and the guest powered off or showed a login prompt).
    Booted,
    /// The boot failed at a stage, for a cause.
    Failed {
        /// The failing stage.
        stage: Stage,
    },
    /// No failure seen, but the boot did not finish: the last stage reached.
    Stalled {
        /// The last stage, if any.
        last: Option<Stage>,
    },
    /// Nothing at all on the console.
    NoOutput,
}

/// Feeds on console bytes, keeps the stage timeline.
#[derive(Debug, Default)]
pub struct Classifier {
    partial: Vec<u8>,
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

fn guest_time(line: &str) -> Option<f64> {
    let rest = line.strip_prefix('[')?;
    let (num, _) = rest.split_once(']')?;
    num.trim().parse().ok()
}

fn after<'a>(line: &'a str, needle: &str) -> Option<&'a str> {
    line.find(needle).map(|i| line[i + needle.len()..].trim())
}

/// The stage a console line shows, if any (first matching rule wins).
pub fn classify_line(line: &str) -> Option<Stage> {
    let has = |s: &str| line.contains(s);
    if has("Synchronous Exception") {
        return Some(Stage::FirmwareException(line.trim().to_string()));
    }
    if has("UEFI firmware (version") || has("SeaBIOS (version") {
        return Some(Stage::FirmwareStarted);
    }
    if has("BdsDxe: failed to load Boot") {
        return Some(Stage::BootOptionFailed(
            after(line, "BdsDxe: failed to load ")?.to_string(),
        ));
    }
    if has("BdsDxe: starting Boot") {
        if has("EFI Internal Shell") {
            return Some(Stage::UefiShell);
        }
        return Some(Stage::BootOptionStarted(
            after(line, "BdsDxe: starting ")?.to_string(),
        ));
    }
    if has("UEFI Interactive Shell") || line.trim_start().starts_with("Shell>") {
        return Some(Stage::UefiShell);
    }
    if has("Verification failed: ")
        || has("bad shim signature")
        || has("prohibited by secure boot policy")
    {
        return Some(Stage::SecureBootRejected(line.trim().to_string()));
    }
    if has("grub rescue>") || has("Entering rescue mode") {
        return Some(Stage::GrubRescue);
    }
    if line.trim_start().starts_with("grub>") {
        return Some(Stage::GrubPrompt);
    }
    if let Some(rest) = after(line, "error: file `") {
        let file = rest.split('\'').next().unwrap_or(rest);
        // A missing module (`insmod all_video` in a config written for a
        // GRUB with modules on disk) is not fatal: GRUB goes on to load
        // Linux (seen on a standalone GRUB; `prove` caught the false stop).
        if file.ends_with(".mod") {
            return None;
        }
        return Some(Stage::GrubFileNotFound(file.to_string()));
    }
    if has("GNU GRUB") || has("Welcome to GRUB!") {
        return Some(Stage::GrubStarted);
    }
    if let Some(reason) = after(line, "Kernel panic - not syncing:") {
        if reason.starts_with("VFS: Unable to mount root fs") {
            return Some(Stage::RootNotFound(reason.to_string()));
        }
        return Some(Stage::KernelPanic(reason.to_string()));
    }
    if has("Gave up waiting for root file system device")
        || (has("ALERT!") && has("does not exist"))
    {
        return Some(Stage::RootNotFound(line.trim().to_string()));
    }
    if has("You are in emergency mode") || has("Entering emergency mode") {
        return Some(Stage::EmergencyMode);
    }
    if has("EFI stub: Booting Linux Kernel")
        || has("Booting Linux on physical CPU")
        || has("Linux version ")
    {
        return Some(Stage::KernelStarted);
    }
    if (has("systemd[1]: systemd ") && has(" running in system mode"))
        || (line.trim_start().starts_with("Welcome to ") && line.trim_end().ends_with('!'))
        || has("INIT: version ")
    {
        return Some(Stage::UserspaceStarted);
    }
    if (has("Run /") && has("as init process")) || has("systemd[1]: ") {
        return Some(Stage::InitReached);
    }
    if is_login_prompt(line) {
        return Some(Stage::LoginPrompt);
    }
    if has("reboot: Power down") || has("reboot: Restarting system") {
        return Some(Stage::PoweredOff);
    }
    None
}

/// `HOST login:` at the start of a line, alone or followed by other output
/// on the same line (cloud-init prints right after the prompt on real
/// images); not `Last login: …`.
fn is_login_prompt(line: &str) -> bool {
    let l = line.trim();
    if l.ends_with("login:") && !l.starts_with("Last login") {
        return true;
    }
    match l.split_once(" login: ") {
        Some((host, _)) => {
            !host.is_empty() && !host.contains(char::is_whitespace) && host != "Last"
        }
        None => false,
    }
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
                if let Some(s) = self.line(&line) {
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
