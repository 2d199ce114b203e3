//! The boot-stage classifier: reads a guest's serial console as it streams
//! and names how far the boot got, when (guest time where the kernel prints
//! it), and why it stopped. Table-driven; the guest is untrusted, so lines
//! are bounded and nothing it prints is used as anything but text.

use serde::Serialize;

/// Longest console line kept (longer lines are cut).
const MAX_LINE: usize = 4096;
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
    /// GRUB is running (menu or prompt).
    GrubStarted,
    /// GRUB could not find its configuration or modules.
    GrubRescue,
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
    /// Userspace: init started.
    InitReached,
    /// A login prompt appeared.
    LoginPrompt,
    /// The guest powered off or rebooted itself.
    PoweredOff,
}

impl Stage {
    fn is_failure(&self) -> bool {
        matches!(
            self,
            Stage::FirmwareException(_)
                | Stage::UefiShell
                | Stage::GrubRescue
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
    events: Vec<Event>,
    saw_output: bool,
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
    if has("grub rescue>") || has("Entering rescue mode") {
        return Some(Stage::GrubRescue);
    }
    if let Some(rest) = after(line, "error: file `") {
        return Some(Stage::GrubFileNotFound(
            rest.split('\'').next().unwrap_or(rest).to_string(),
        ));
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
    if (has("Run /") && has("as init process")) || has("systemd[1]: ") {
        return Some(Stage::InitReached);
    }
    if line.trim_end().ends_with("login:") {
        return Some(Stage::LoginPrompt);
    }
    if has("reboot: Power down") || has("reboot: Restarting system") {
        return Some(Stage::PoweredOff);
    }
    None
}

impl Classifier {
    /// A fresh classifier.
    pub fn new() -> Classifier {
        Classifier::default()
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
            }
        }
        // Prompts arrive without a newline.
        let pending = String::from_utf8_lossy(&self.partial).into_owned();
        if pending.trim_start().starts_with("Shell>")
            || pending.contains("grub rescue>")
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
        let stage = classify_line(&line)?;
        // Repeated banners and prompts are one stage.
        if self.events.iter().any(|e| e.stage == stage) || self.events.len() >= MAX_EVENTS {
            return None;
        }
        self.events.push(Event {
            guest_time: guest_time(line.trim_start()),
            line: line.trim().to_string(),
            stage: stage.clone(),
        });
        Some(stage)
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
        if reached(&Stage::LoginPrompt)
            || (reached(&Stage::InitReached) && reached(&Stage::PoweredOff))
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

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // ESC [ ... final byte in @..~
            if chars.peek() == Some(&'[') {
                chars.next();
                for n in chars.by_ref() {
                    if ('@'..='~').contains(&n) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(log: &str, chunk: usize) -> Classifier {
        let mut c = Classifier::new();
        for piece in log.as_bytes().chunks(chunk) {
            c.feed(piece);
        }
        c
    }

    #[test]
    fn recorded_direct_boot_reaches_init_and_powers_off() {
        let log = include_str!("../../../tests/boot-logs/aarch64-direct-init-poweroff.log");
        for chunk in [1, 7, 4096] {
            let c = run(log, chunk);
            let stages: Vec<&Stage> = c.events().iter().map(|e| &e.stage).collect();
            assert_eq!(stages.first(), Some(&&Stage::FirmwareStarted), "{stages:?}");
            assert!(
                stages.contains(&&Stage::KernelStarted)
                    && stages.contains(&&Stage::InitReached)
                    && stages.contains(&&Stage::PoweredOff),
                "{stages:?}"
            );
            assert_eq!(c.outcome(), Outcome::Booted);
            let init = c
                .events()
                .iter()
                .find(|e| e.stage == Stage::InitReached)
                .unwrap();
            assert!(
                init.guest_time.unwrap() > 1.0 && init.guest_time.unwrap() < 60.0,
                "{init:?}"
            );
        }
    }

    #[test]
    fn recorded_firmware_boot_without_removable_path_ends_in_the_shell() {
        let log = include_str!("../../../tests/boot-logs/aarch64-firmware-no-removable-path.log");
        let c = run(log, 13);
        let stages: Vec<&Stage> = c.events().iter().map(|e| &e.stage).collect();
        assert!(
            matches!(stages[1], Stage::BootOptionFailed(s) if s.contains("UEFI Misc Device")),
            "{stages:?}"
        );
        assert_eq!(
            c.outcome(),
            Outcome::Failed {
                stage: Stage::UefiShell
            }
        );
    }

    #[test]
    fn failure_kinds() {
        let cases: &[(&str, Outcome)] = &[
            ("Welcome to GRUB!\r\n\r\nerror: file `/boot/vmlinuz-6.1' not found.\r\n", Outcome::Failed { stage: Stage::GrubFileNotFound("/boot/vmlinuz-6.1".into()) }),
            ("error: unknown filesystem.\r\nEntering rescue mode...\r\ngrub rescue> ", Outcome::Failed { stage: Stage::GrubRescue }),
            (
                "[    1.2] Booting Linux on physical CPU 0x0\n[    3.4] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n",
                Outcome::Failed { stage: Stage::RootNotFound("VFS: Unable to mount root fs on unknown-block(0,0)".into()) },
            ),
            ("Gave up waiting for root file system device.  Common problems:\n", Outcome::Failed { stage: Stage::RootNotFound("Gave up waiting for root file system device.  Common problems:".into()) }),
            ("[    2.0] Kernel panic - not syncing: No working init found.\n", Outcome::Failed { stage: Stage::KernelPanic("No working init found.".into()) }),
            ("You are in emergency mode. After logging in, type \"journalctl -xb\"\n", Outcome::Failed { stage: Stage::EmergencyMode }),
            ("\nDebian GNU/Linux 12 vm ttyAMA0\n\nvm login: ", Outcome::Booted),
            ("UEFI firmware (version  built at 1)\n", Outcome::Stalled { last: Some(Stage::FirmwareStarted) }),
            ("", Outcome::NoOutput),
        ];
        for (log, want) in cases {
            assert_eq!(&run(log, 5).outcome(), want, "{log:?}");
        }
    }

    #[test]
    fn hostile_output_is_bounded() {
        let mut c = Classifier::new();
        let junk = vec![b'A'; 1 << 20];
        c.feed(&junk);
        c.feed(b"\n");
        assert!(c.partial.is_empty());
        for _ in 0..5000 {
            c.feed(b"[ 1.0] Linux version x\n");
        }
        assert_eq!(c.events().len(), 1, "a repeated stage is recorded once");
        assert_eq!(
            strip_ansi("\x1b[0m\x1b[=3hShell> "),
            "\x1b[=3hShell> ".replace("\x1b[=3h", "")
        );
    }
}
