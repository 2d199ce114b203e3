//! The stages a boot goes through, how it ended, and the table that
//! names the stage a console line shows ([`classify_line`]); the
//! classifier ([`crate::classify`]) feeds it lines and keeps the timeline.

use serde::Serialize;

/// A point a boot reaches, or where it stops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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
    /// (shim's "Verification failed", GRUB's "bad shim signature" or, with
    /// no shim, "shim_lock protocol not found").
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

    pub(crate) fn is_failure(&self) -> bool {
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
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
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

/// The kernel timestamp (`[    7.760525]`) a line starts with, in seconds.
pub(crate) fn guest_time(line: &str) -> Option<f64> {
    let rest = line.strip_prefix('[')?;
    let (num, _) = rest.split_once(']')?;
    num.trim().parse().ok()
}

/// What follows `needle` in `line`, trimmed.
pub(crate) fn after<'a>(line: &'a str, needle: &str) -> Option<&'a str> {
    line.find(needle).map(|i| line[i + needle.len()..].trim())
}

/// The stage a console line shows, if any (first matching rule wins).
pub fn classify_line(line: &str) -> Option<Stage> {
    let has = |s: &str| line.contains(s);
    if has("Synchronous Exception") {
        return Some(Stage::FirmwareException(line.trim().to_string()));
    }
    // EDK2's banner (RISC-V builds print their own), SeaBIOS's.
    if has("UEFI firmware (version") || has("EDK2 firmware version") || has("SeaBIOS (version") {
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
    // GRUB builds that verify kernels through shim (Debian's, Fedora's)
    // refuse them under Secure Boot when no shim started them; shim stops
    // when the SbatLevel in force revokes its own generation.
    if has("Verification failed: ")
        || has("bad shim signature")
        || has("prohibited by secure boot policy")
        || has("shim_lock protocol not found")
        || has("SBAT self-check failed")
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
