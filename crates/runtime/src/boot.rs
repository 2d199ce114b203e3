//! `boot`: boot an image for real — its own chain through UEFI firmware,
//! or its kernel directly — watch the console, and report the stage
//! reached, the timeline and why it stopped ([`BootReport`]).

use crate::cloud_init::{without_datasource, NoDatasource};
use crate::deliver::{detect_seed, write_empty_nocloud, SeedKind};
use crate::events::Events;
use crate::host::{cache_dir, choose_accel, deadline, log_path};
use crate::image::{open, pick_entry, resolve_arch};
use crate::secure_boot::{from_vars, predict};
use crate::Error;
use bootproof_boot::extract::extract;
use bootproof_boot::trust::FirmwareStore;
use bootproof_platform::{Arch, Platform};
use bootproof_vm::accel::{Decision, Probe};
use bootproof_vm::machine::DirectKernel;
use bootproof_vm::prepare::{prepare, FirmwareChoice, FirmwareReport, PrepareError, VmRequest};
use bootproof_vm::state::{self, Cleanup, RunDir};
use bootproof_vm::supervise::{self, BootOutcome, BootResult, Until, WatchOptions};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// The `schema` of a [`BootReport`].
pub const BOOT_SCHEMA: &str = "bootproof.boot/v1";

/// How the image boots.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum BootMode {
    /// UEFI firmware boots the image's removable path.
    #[default]
    Firmware,
    /// The image's kernel and initrd through QEMU's -kernel.
    Direct,
}

/// What to boot and how.
#[derive(Debug, Clone, Default)]
pub struct BootRequest {
    /// The image.
    pub image: PathBuf,
    /// Follow qcow2 backing files.
    pub allow_backing: bool,
    /// The guest architecture (`None`: the image's own).
    pub arch: Option<Arch>,
    /// Firmware or direct kernel boot.
    pub mode: BootMode,
    /// Which firmware.
    pub firmware: FirmwareChoice,
    /// Secure Boot on, under this trust store (the names of
    /// [`crate::secure_boot::trust_store`]; `microsoft`: the firmware
    /// descriptor's enrolled store); `None`: off.
    pub secure_boot: Option<String>,
    /// Direct mode: boot entry N instead of the default.
    pub entry: Option<usize>,
    /// Direct mode: appended to the kernel command line.
    pub cmdline_append: Option<String>,
    /// Seconds before the boot is declared timed out.
    pub timeout: Option<u64>,
    /// Stop successfully at this stage.
    pub until: Option<Until>,
    /// Keep the run directory.
    pub keep: bool,
    /// Where the console log goes (default: the log cache).
    pub console_log: Option<PathBuf>,
    /// vCPUs (default: 2, or fewer on a smaller host).
    pub cpus: Option<u32>,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// The platform variant.
    pub platform: Platform,
    /// Attach a user-mode NIC.
    pub network: bool,
    /// Boot a cloud-init image without bootproof's empty NoCloud seed.
    pub no_seed: bool,
}

/// Direct mode: what was booted.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DirectInfo {
    /// The entry's title.
    pub entry: String,
    /// Where the entry is defined.
    pub entry_source: String,
    /// No boot chain: the newest kernel in /boot stood in.
    pub fallback_to_boot_dir: bool,
    /// The kernel's release.
    pub kernel_version: Option<String>,
    /// The kernel's format.
    pub kernel_format: String,
    /// The command line booted.
    pub cmdline: String,
    /// Words extraction added (root=, console=).
    pub cmdline_added: Vec<String>,
    /// Words dropped so the console shows the boot (`quiet`, `splash`).
    pub cmdline_removed: Vec<String>,
}

/// The QEMU command line.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct QemuCommand {
    /// The emulator.
    pub binary: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

/// The result of `boot` (schema `bootproof.boot/v1`, docs/json.md).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct BootReport {
    /// The document's schema id, [`BOOT_SCHEMA`].
    #[schemars(extend("const" = BOOT_SCHEMA))]
    pub schema: &'static str,
    /// The image.
    pub image: PathBuf,
    /// Its architecture.
    pub arch: Arch,
    /// Firmware or direct.
    pub mode: BootMode,
    /// KVM or TCG, and why.
    pub accel: Decision,
    /// The KVM probe, when one ran.
    pub kvm_probe: Option<Probe>,
    /// The firmware used.
    pub firmware: FirmwareReport,
    /// The concrete machine type.
    pub machine: String,
    /// The platform variant.
    pub platform: Platform,
    /// vCPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Direct mode's kernel, initrd and command line.
    pub direct: Option<DirectInfo>,
    /// The QEMU command line.
    pub qemu: QemuCommand,
    /// The deadline.
    pub timeout_secs: u64,
    /// Host time to prepare the VM (open, extract, firmware, overlay).
    pub host_prepare_ms: f64,
    /// How it ended, the stage timeline and the console log.
    pub result: BootResult,
    /// The kept run directory.
    pub run_dir: Option<PathBuf>,
    /// Stale run directories removed first.
    pub stale_cleanup: Cleanup,
    /// The image has cloud-init: whether bootproof gave it a seed, and
    /// why (`None`: no cloud-init in the image).
    pub seed: Option<BootSeed>,
    /// With `--secure-boot`: what `check --secure-boot` predicted under the
    /// store this firmware booted with, next to what the boot showed
    /// (`None` without Secure Boot or without keys enrolled).
    pub secure_boot: Option<crate::secure_boot::SecureBootCheck>,
}

/// What `boot` did about a cloud-init image's datasource.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BootSeed {
    /// An empty NoCloud seed was attached.
    pub attached: bool,
    /// `nocloud`.
    pub kind: SeedKind,
    /// Why, in words.
    pub reason: String,
}

impl BootSeed {
    /// The decision for a cloud-init image: attach where cloud-init would
    /// otherwise search for a datasource, unless `--no-seed`.
    fn decide(no_seed: bool, search: &NoDatasource) -> BootSeed {
        let why = &search.evidence;
        let attached = search.searches && !no_seed;
        let reason = if no_seed {
            "none (--no-seed): cloud-init does as the image is configured to".to_string()
        } else if attached {
            format!(
                "an empty NoCloud seed (CIDATA volume, no user data): with none, cloud-init \
                 would try every datasource in its list ({why}); --no-seed boots without it"
            )
        } else {
            format!(
                "none needed: with no datasource cloud-init disables itself ({why}); \
                 a seed would only make it run"
            )
        };
        BootSeed {
            attached,
            kind: SeedKind::NoCloud,
            reason,
        }
    }
}

impl BootReport {
    /// The exit status `bootproof boot` documents for this outcome;
    /// `strict`: a boot whose console showed problems fails too.
    pub fn exit_status(&self, strict: bool) -> u8 {
        match &self.result.outcome {
            _ if strict && !self.result.problems.is_empty() => crate::exit::FAIL,
            BootOutcome::Booted | BootOutcome::Reached { .. } => crate::exit::OK,
            BootOutcome::InfraError { .. } => crate::exit::ERROR,
            BootOutcome::Interrupted { .. } => crate::exit::INTERRUPTED,
            _ => crate::exit::FAIL,
        }
    }
}

/// The VM could not be prepared: what is known for the report, and why.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct NotStarted {
    /// The document's schema id, [`BOOT_SCHEMA`].
    #[schemars(extend("const" = BOOT_SCHEMA))]
    pub schema: &'static str,
    /// The image.
    pub image: PathBuf,
    /// Its architecture.
    pub arch: Arch,
    /// Firmware or direct.
    pub mode: BootMode,
    /// KVM or TCG, and why.
    pub accel: Decision,
    /// Why the VM never ran.
    pub result: NotRun,
}

/// The result of a boot whose VM never ran.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct NotRun {
    /// Always `infra-error`.
    pub outcome: InfraOutcome,
    /// What failed.
    pub message: String,
}

/// The outcome of a boot whose VM never ran (one value, so the document
/// reads like a booted report's `result.outcome`).
#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum InfraOutcome {
    /// The host could not run the VM.
    InfraError,
}

/// Why `boot` returned no [`BootReport`].
#[derive(Debug)]
pub enum BootError {
    /// QEMU or its firmware could not be prepared (reported as an infra
    /// error with what was known).
    NotStarted(Box<NotStarted>, Error),
    /// Anything earlier or later.
    Other(Error),
}

impl BootError {
    /// The error, whatever was known when it happened.
    pub fn into_error(self) -> Error {
        match self {
            BootError::NotStarted(_, e) | BootError::Other(e) => e,
        }
    }
}

impl From<Error> for BootError {
    fn from(e: Error) -> BootError {
        BootError::Other(e)
    }
}

/// The image's command line made to show its boot on the console: `quiet`
/// and `splash` hide the kernel's messages the classifier reads.
pub fn direct_cmdline(cmdline: &str, append: Option<&str>) -> (String, Vec<String>) {
    let mut removed = Vec::new();
    let mut words: Vec<&str> = Vec::new();
    for w in cmdline.split_whitespace() {
        if w == "quiet" || w == "splash" {
            removed.push(w.to_string());
        } else {
            words.push(w);
        }
    }
    let mut out = words.join(" ");
    if let Some(a) = append.filter(|a| !a.trim().is_empty()) {
        out.push(' ');
        out.push_str(a.trim());
    }
    (out, removed)
}

/// Parses `--firmware`: `auto`, `none`, or `CODE[,VARS]`.
pub fn firmware_choice(arg: &str) -> FirmwareChoice {
    match arg {
        "auto" => FirmwareChoice::Auto,
        "none" => FirmwareChoice::None,
        files => {
            let mut it = files.splitn(2, ',');
            FirmwareChoice::Files {
                code: PathBuf::from(it.next().unwrap_or_default()),
                vars: it.next().filter(|v| !v.is_empty()).map(PathBuf::from),
            }
        }
    }
}

/// Checks the options that only fit one mode.
fn check_request(req: &BootRequest) -> Result<(), Error> {
    if req.mode == BootMode::Firmware {
        if req.firmware == FirmwareChoice::None {
            return Err(Error::with_hint(
                "--firmware none needs --mode direct",
                "firmware mode boots the image's removable path, which needs UEFI",
            ));
        }
        if req.cmdline_append.is_some() || req.entry.is_some() {
            return Err(Error::with_hint(
                "--cmdline-append and --entry work in direct mode only",
                "in firmware mode the image's own boot loader builds the command line; use --mode direct",
            ));
        }
    }
    Ok(())
}

/// Direct mode: extracts the chosen entry into the run directory.
fn direct_kernel(
    img: &bootproof_inspect::OpenedImage,
    arch: Arch,
    req: &BootRequest,
    run_dir: &Path,
) -> Result<(DirectKernel, DirectInfo), Error> {
    let picked = pick_entry(img, arch, req.entry)?;
    let out = run_dir.join("direct");
    let m = extract(img, &picked.chain, &picked.entry, &out).map_err(|e| {
        Error::with_hint(
            e,
            "`bootproof extract IMAGE -o DIR` shows what direct boot would use",
        )
    })?;
    let (cmdline, removed) = direct_cmdline(&m.cmdline, req.cmdline_append.as_deref());
    let info = DirectInfo {
        entry: picked.entry.title.clone(),
        entry_source: picked.entry.source.clone(),
        fallback_to_boot_dir: picked.fallback,
        kernel_version: m.kernel_version.clone(),
        kernel_format: m.kernel_format.clone(),
        cmdline: cmdline.clone(),
        cmdline_added: m.cmdline_added.clone(),
        cmdline_removed: removed,
    };
    let kernel = DirectKernel {
        kernel: out.join("kernel"),
        initrd: m.initrd.as_ref().map(|_| out.join("initrd")),
        cmdline,
    };
    Ok((kernel, info))
}

/// The hint for a VM that could not be prepared.
fn prepare_hint(e: &PrepareError, arch: Arch) -> String {
    match e {
        PrepareError::Qemu(_) => "install QEMU's system emulators (scripts/install-qemu.sh does)".into(),
        PrepareError::Firmware(_) | PrepareError::FirmwareFile(_) => format!(
            "install the UEFI firmware for {arch} ({}; scripts/install-qemu.sh does), or name files with --firmware CODE[,VARS]",
            arch.info().firmware_package
        ),
        PrepareError::Io(_) => {
            "check the state directory (BOOTPROOF_STATE_DIR) is writable and short".into()
        }
        PrepareError::Window { .. } => {
            "run `bootproof inspect` on the image to see its LVM2 volumes and where they lie".into()
        }
    }
}

/// The variable store a Secure Boot boot under a store other than the
/// firmware descriptor's starts from, written into the run directory (and
/// padded to the pflash size the machine maps): its path and what it holds.
fn secure_boot_store(
    req: &BootRequest,
    arch: Arch,
    run_dir: &Path,
) -> Result<Option<(PathBuf, FirmwareStore)>, Error> {
    let Some(spec) = &req.secure_boot else {
        return Ok(None);
    };
    let dest = run_dir.join("secure-boot-vars.fd");
    let Some(store) = crate::secure_boot::boot_store(spec, arch, &dest)? else {
        return Ok(None);
    };
    if let Some(size) = bootproof_vm::firmware::padding(arch, "raw", &dest) {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&dest)
            .and_then(|f| f.set_len(size))
            .map_err(|e| Error::new(format!("{}: {e}", dest.display())))?;
    }
    Ok(Some((dest, store)))
}

/// Boots the image and watches it until it boots, fails, stalls, times
/// out, reaches `until`, or `interrupted` is set.
pub fn boot(
    req: &BootRequest,
    events: &dyn Events,
    interrupted: &AtomicBool,
) -> Result<BootReport, BootError> {
    let prep_started = Instant::now();
    let img = open(&req.image, req.allow_backing)?;
    let arch = resolve_arch(&img, req.arch)?;
    check_request(req)?;
    if let Some(why) = req.platform.unavailable_on(arch) {
        return Err(Error::with_hint(
            why,
            "drop that option: it applies to other machines (`bootproof boot --help` says which)",
        )
        .into());
    }
    let base = state::base_dir();
    let cleanup = state::clean_stale(&base);
    let mut run_dir = RunDir::create(&base).map_err(|e| {
        Error::with_hint(
            format!("cannot create run state under {}: {e}", base.display()),
            "set BOOTPROOF_STATE_DIR to a writable directory",
        )
    })?;
    if req.keep {
        run_dir.keep();
    }
    let (kernel, direct) = match req.mode {
        BootMode::Direct => {
            let (k, info) = direct_kernel(&img, arch, req, run_dir.path())?;
            (Some(k), Some(info))
        }
        BootMode::Firmware => (None, None),
    };
    let seed = (detect_seed(&img) == Some(SeedKind::NoCloud))
        .then(|| BootSeed::decide(req.no_seed, &without_datasource(&img, arch)));
    let seed_disk = match &seed {
        Some(s) if s.attached => Some(write_empty_nocloud(run_dir.path()).map_err(|e| {
            Error::with_hint(
                format!("cannot write the NoCloud seed: {e}"),
                "check the state directory (BOOTPROOF_STATE_DIR) is writable, or pass --no-seed",
            )
        })?),
        _ => None,
    };
    let written_store = secure_boot_store(req, arch, run_dir.path())?;
    let (decision, probe) = choose_accel(arch);
    let vm = VmRequest {
        arch,
        disk: crate::image::backing_disk(&img.image),
        firmware: req.firmware.clone(),
        secure_boot: Some(req.secure_boot.is_some()),
        platform: req.platform.clone(),
        kernel,
        cpus: req.cpus.unwrap_or_else(crate::host::default_cpus),
        memory_mib: req.memory_mib,
        accel: decision.clone(),
        network: req.network,
        cache_dir: Some(cache_dir()),
        nvram: written_store.as_ref().map(|(path, _)| path.clone()),
        hotplug_ports: 0,
        agent_channel: None,
        ready_port: true,
        seed_disk,
        fw_cfg: Vec::new(),
        hotplug_disk_bytes: None,
        disk_window: None,
        run_as: crate::host::qemu_run_as()?,
    };
    let prepared = prepare(&vm, &run_dir).map_err(|e| {
        let hint = prepare_hint(&e, arch);
        let not_started = NotStarted {
            schema: BOOT_SCHEMA,
            image: req.image.clone(),
            arch,
            mode: req.mode,
            accel: decision.clone(),
            result: NotRun {
                outcome: InfraOutcome::InfraError,
                message: e.to_string(),
            },
        };
        BootError::NotStarted(Box::new(not_started), Error::with_hint(e, hint))
    })?;
    // Predicted before booting, under the store the firmware will use.
    let store = match (written_store, &prepared.firmware.vars_template) {
        _ if req.secure_boot.is_none() => None,
        (Some((_, store)), _) => Some(store),
        (None, vars) => vars.as_deref().and_then(|v| from_vars(v).ok()),
    };
    let prediction = store.map(|s| predict(&img, arch, s));
    let host_prepare_ms = prep_started.elapsed().as_secs_f64() * 1000.0;
    let timeout = deadline(req.timeout, decision.accel);
    let stem = req
        .image
        .file_stem()
        .map_or("image".into(), |s| s.to_string_lossy().into_owned());
    let opts = WatchOptions {
        deadline: timeout,
        until: req.until,
        console_log: req.console_log.clone().unwrap_or_else(|| log_path(&stem)),
        max_log_bytes: 64 << 20,
        // A login prompt is the end of a boot: a few seconds for what is
        // printed after it, not the rest of the deadline.
        end_after_login: Some(std::time::Duration::from_secs(3)),
    };
    events.boot_started(&req.image, arch, mode_name(req.mode), &decision);
    let result = supervise::boot(
        &prepared.qemu.binary,
        &prepared.spec,
        &run_dir,
        &opts,
        interrupted,
        supervise::Hooks {
            on_stage: &mut |e| events.boot_stage(e),
            on_console: &mut |_| {},
        },
    );
    events.boot_ended();
    let result = result
        .map_err(|e| Error::with_hint(e, "re-run with --keep to inspect the run directory"))?;
    let secure_boot = prediction.map(|p| p.observe(&result.outcome));
    Ok(BootReport {
        schema: BOOT_SCHEMA,
        image: req.image.clone(),
        arch,
        mode: req.mode,
        accel: decision,
        kvm_probe: probe,
        firmware: prepared.firmware.clone(),
        machine: prepared.spec.machine.clone(),
        platform: prepared.spec.platform.clone(),
        cpus: prepared.spec.cpus,
        memory_mib: prepared.spec.memory_mib,
        direct,
        qemu: QemuCommand {
            binary: prepared.qemu.binary.clone(),
            args: prepared.spec.qemu_args(),
        },
        timeout_secs: timeout.as_secs(),
        host_prepare_ms,
        result,
        run_dir: req.keep.then(|| run_dir.path().to_path_buf()),
        stale_cleanup: cleanup,
        seed,
        secure_boot,
    })
}

/// `firmware` / `direct`.
pub fn mode_name(mode: BootMode) -> &'static str {
    match mode {
        BootMode::Firmware => "firmware",
        BootMode::Direct => "direct",
    }
}

impl BootReport {
    /// Whether the boot counts as a success (booted, or reached `until`).
    pub fn succeeded(&self) -> bool {
        matches!(
            self.result.outcome,
            BootOutcome::Booted | BootOutcome::Reached { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_cmdline_drops_quiet_and_appends() {
        let (c, removed) =
            direct_cmdline("root=UUID=x ro quiet splash console=ttyS0", Some(" debug "));
        assert_eq!(c, "root=UUID=x ro console=ttyS0 debug");
        assert_eq!(removed, ["quiet", "splash"]);
    }

    #[test]
    fn firmware_argument_forms() {
        assert_eq!(firmware_choice("auto"), FirmwareChoice::Auto);
        assert_eq!(firmware_choice("none"), FirmwareChoice::None);
        assert_eq!(
            firmware_choice("/a/CODE.fd,/a/VARS.fd"),
            FirmwareChoice::Files {
                code: "/a/CODE.fd".into(),
                vars: Some("/a/VARS.fd".into())
            }
        );
        assert_eq!(
            firmware_choice("/a/CODE.fd"),
            FirmwareChoice::Files {
                code: "/a/CODE.fd".into(),
                vars: None
            }
        );
    }
}
