//! Host-side preparation of one VM: the emulator and machine type, the
//! firmware (from descriptors or named by the user) and this VM's NVRAM
//! copy, the qcow2 overlay over the input image, and the final [`VmSpec`].
//! Everything lands in the run directory; the input image is only ever a
//! read-only backing file.

use crate::accel::Decision;
use crate::firmware::{self, Descriptor, FirmwareError, Mapping, Want};
use crate::machine::{
    DirectKernel, Disk, FirmwareSetup, FlashImage, Platform, VmSpec, WindowDisk, WindowSource,
};
use crate::overlay::{copy_nvram, create_overlay};
use crate::privilege::RunAs;
use crate::qemu::{Qemu, QemuError};
use crate::state::RunDir;
pub use crate::window::{DiskWindow, MAX_WINDOW_RUNS};
use bootproof_platform::Arch;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Which firmware to start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum FirmwareChoice {
    /// UEFI chosen from QEMU's firmware descriptors.
    #[default]
    Auto,
    /// No UEFI: QEMU's own loader (aarch64 enters the kernel directly;
    /// x86_64 runs SeaBIOS). Direct kernel boot only.
    None,
    /// Explicit pflash files: code, and optionally a variable-store template.
    Files {
        /// The code image.
        code: PathBuf,
        /// The variable-store template (copied per VM).
        vars: Option<PathBuf>,
    },
}

/// The disk under a VM's overlay: a file, or a byte range of one (a disk
/// inside an OVA or a tar), in a format QEMU reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingDisk {
    /// The host file.
    pub path: PathBuf,
    /// The disk's format as QEMU names it (`raw`, `qcow2`, `vpc`, `vhdx`,
    /// `vmdk`).
    pub format: String,
    /// The virtual disk's size in bytes.
    pub size: u64,
    /// The disk is bytes `offset..offset + length` of the file.
    pub window: Option<(u64, u64)>,
}

impl BackingDisk {
    /// The backing file name the overlay records: the canonical path, or
    /// for a window QEMU's `json:` pseudo-file name, its format driver over
    /// a `raw` driver that cuts the range out of the file.
    pub fn backing_name(&self) -> std::io::Result<String> {
        let path = std::fs::canonicalize(&self.path)?;
        let Some(path) = path.to_str() else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the image's path is not UTF-8",
            ));
        };
        let Some((offset, size)) = self.window else {
            return Ok(path.to_string());
        };
        let file = serde_json::json!({ "driver": "file", "filename": path });
        let range = serde_json::json!({
            "driver": "raw", "offset": offset, "size": size, "file": file
        });
        let disk = if self.format == "raw" {
            range
        } else {
            serde_json::json!({ "driver": self.format, "file": range })
        };
        Ok(format!("json:{disk}"))
    }
}

/// What one VM should be.
#[derive(Debug, Clone)]
pub struct VmRequest {
    /// Guest architecture.
    pub arch: Arch,
    /// The input image QEMU reads under the overlay (never written).
    pub disk: BackingDisk,
    /// Firmware.
    pub firmware: FirmwareChoice,
    /// Secure Boot wanted on, off, or either.
    pub secure_boot: Option<bool>,
    /// Platform variant.
    pub platform: Platform,
    /// Direct kernel boot, if wanted.
    pub kernel: Option<DirectKernel>,
    /// vCPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Accelerator decision (from [`crate::accel::decide`]).
    pub accel: Decision,
    /// Attach a NIC.
    pub network: bool,
    /// Where facts about the host's QEMU may be cached (none: ask QEMU).
    pub cache_dir: Option<PathBuf>,
    /// Empty PCIe root ports to add, for hotplug.
    pub hotplug_ports: u32,
    /// A virtio-serial port for the agent, recorded to this file.
    pub agent_channel: Option<PathBuf>,
    /// Offer the image's readiness port ([`crate::ready`]).
    pub ready_port: bool,
    /// A read-only raw disk attached after the boot disk (a NoCloud seed).
    pub seed_disk: Option<PathBuf>,
    /// Bytes of the disk attached after it as a read-only disk of their
    /// own (an LVM2 root's extents).
    pub disk_window: Option<DiskWindow>,
    /// fw_cfg blobs `(name, file)` (an Ignition config).
    pub fw_cfg: Vec<(String, PathBuf)>,
    /// This VM's variable store, kept across boots: used as it is when it
    /// exists, created from the template when not. `None`: a fresh copy in
    /// the run directory, gone with it.
    pub nvram: Option<PathBuf>,
    /// Size of a blank raw disk to create in the run directory and open
    /// as block node `hotplug0` for a later QMP `device_add`.
    pub hotplug_disk_bytes: Option<u64>,
    /// The identity QEMU switches to once set up
    /// ([`RunAs::for_this_process`] when running as root).
    pub run_as: Option<RunAs>,
}

/// The firmware that was picked, for reports.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FirmwareReport {
    /// Descriptor file, when chosen from descriptors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<PathBuf>,
    /// The descriptor's description, or how it was chosen.
    pub description: String,
    /// The code image (or `-bios` image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<PathBuf>,
    /// The variable-store template this VM's copy came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vars_template: Option<PathBuf>,
}

/// A prepared VM.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The emulator.
    pub qemu: Qemu,
    /// The command line's source.
    pub spec: VmSpec,
    /// The firmware chosen.
    pub firmware: FirmwareReport,
}

/// Why a VM could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// QEMU is missing or lacks the machine.
    #[error(transparent)]
    Qemu(#[from] QemuError),
    /// No firmware fits.
    #[error(transparent)]
    Firmware(#[from] FirmwareError),
    /// The firmware named is unusable.
    #[error("firmware: {0}")]
    FirmwareFile(String),
    /// Writing run state failed.
    #[error("preparing the VM's state: {0}")]
    Io(#[from] std::io::Error),
    /// The disk window asked for cannot be attached.
    #[error("a window of the disk: {0}")]
    Window(String),
}

/// The window as QEMU attaches it: a range of the boot disk's node, or a
/// descriptor written to the run directory joining runs of the raw file.
fn window_disk(
    w: &DiskWindow,
    disk: &BackingDisk,
    run: &RunDir,
) -> Result<WindowDisk, PrepareError> {
    if let Some(why) = w.unfit(disk.size, &disk.format) {
        return Err(PrepareError::Window(why));
    }
    let source = match w.runs[..] {
        [(offset, size)] => WindowSource::Range { offset, size },
        _ => {
            // The disk may be a byte range of the file (a tar member).
            let base = disk.window.map_or(0, |(offset, _)| offset);
            let runs: Option<Vec<(u64, u64)>> = w
                .runs
                .iter()
                .map(|&(o, n)| Some((o.checked_add(base)?, n)))
                .collect();
            let runs = runs.ok_or_else(|| PrepareError::Window("offsets overflow".into()))?;
            let file = std::fs::canonicalize(&disk.path)?;
            let file = file
                .to_str()
                .ok_or_else(|| PrepareError::Window("the image's path is not UTF-8".into()))?;
            let text = crate::overlay::flat_descriptor(file, &runs)
                .map_err(|e| PrepareError::Window(e.to_string()))?;
            let desc = run.path().join("window.vmdk");
            std::fs::write(&desc, text)?;
            WindowSource::Descriptor(desc)
        }
    };
    Ok(WindowDisk {
        source,
        serial: w.serial.clone(),
    })
}

fn flash_setup(
    arch: Arch,
    code: FlashImage,
    template: Option<FlashImage>,
    requires_smm: bool,
    run: &RunDir,
    nvram: Option<&Path>,
) -> std::io::Result<FirmwareSetup> {
    // aarch64 `virt` maps exactly 64 MiB per raw pflash unit; the code
    // image must be padded too, so it gets a padded copy when short.
    let code = if let Some(size) = firmware::padding(arch, &code.format, &code.path) {
        let padded = run.path().join("code.fd");
        copy_nvram(&code.path, &padded, Some(size))?;
        FlashImage {
            path: padded,
            format: code.format,
        }
    } else {
        code
    };
    let vars = match template {
        // A kept store from an earlier boot of the same VM.
        Some(t) if nvram.is_some_and(|n| n.exists()) => Some(FlashImage {
            path: nvram.map(Path::to_path_buf).unwrap_or_default(),
            format: t.format,
        }),
        Some(t) => {
            let dest = match nvram {
                Some(n) => n.to_path_buf(),
                None => run.path().join(format!("vars.{}", t.format)),
            };
            let pad = firmware::padding(arch, &t.format, &t.path);
            copy_nvram(&t.path, &dest, pad)?;
            Some(FlashImage {
                path: dest,
                format: t.format,
            })
        }
        None => None,
    };
    Ok(FirmwareSetup::Pflash {
        code,
        vars,
        requires_smm,
    })
}

fn from_descriptor(
    d: &Descriptor,
    arch: Arch,
    run: &RunDir,
    nvram: Option<&Path>,
) -> Result<(FirmwareSetup, FirmwareReport), PrepareError> {
    let mut report = FirmwareReport {
        descriptor: Some(d.source.clone()),
        description: d.description.clone(),
        code: None,
        vars_template: None,
    };
    let setup = match &d.mapping {
        Mapping::Flash {
            executable,
            nvram_template,
            ..
        } => {
            report.code = Some(executable.filename.clone());
            report.vars_template = nvram_template.as_ref().map(|t| t.filename.clone());
            let code = FlashImage {
                path: executable.filename.clone(),
                format: executable.format.clone(),
            };
            let template = nvram_template.as_ref().map(|t| FlashImage {
                path: t.filename.clone(),
                format: t.format.clone(),
            });
            let smm = d.features.iter().any(|f| f == "requires-smm");
            flash_setup(arch, code, template, smm, run, nvram)?
        }
        Mapping::Memory { filename } => {
            report.code = Some(filename.clone());
            FirmwareSetup::Bios {
                path: filename.clone(),
            }
        }
        Mapping::Kernel { filename } => {
            return Err(PrepareError::FirmwareFile(format!(
                "{} maps {} as a kernel, which bootproof does not use",
                d.source.display(),
                filename.display()
            )))
        }
    };
    Ok((setup, report))
}

/// Longest unix socket path (`sun_path` holds 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Prepares one VM in `run`: nothing is started.
pub fn prepare(req: &VmRequest, run: &RunDir) -> Result<Prepared, PrepareError> {
    let longest = run.path().join("qmp.sock");
    if longest.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(PrepareError::Io(std::io::Error::other(format!(
            "{} is too long for a unix socket path ({} bytes at most); set BOOTPROOF_STATE_DIR to a shorter directory",
            longest.display(),
            MAX_SOCKET_PATH
        ))));
    }
    let qemu = match &req.cache_dir {
        Some(dir) => Qemu::locate_cached(req.arch, dir)?,
        None => Qemu::locate(req.arch)?,
    };
    let (firmware, report) = match &req.firmware {
        FirmwareChoice::Auto => {
            let (descriptors, _unreadable) = firmware::load(&firmware::search_dirs());
            let want = Want {
                arch: req.arch,
                machine: qemu.machine.clone(),
                interface: "uefi".into(),
                secure_boot: req.secure_boot,
                enrolled_keys: None,
            };
            let d = firmware::select(&descriptors, &want)?;
            from_descriptor(&d, req.arch, run, req.nvram.as_deref())?
        }
        FirmwareChoice::None => (
            FirmwareSetup::QemuDefault,
            FirmwareReport {
                descriptor: None,
                description: req.arch.info().no_uefi_firmware.into(),
                code: None,
                vars_template: None,
            },
        ),
        FirmwareChoice::Files { code, vars } => {
            for p in std::iter::once(code).chain(vars.iter()) {
                if !p.is_file() {
                    return Err(PrepareError::FirmwareFile(format!(
                        "{} does not exist",
                        p.display()
                    )));
                }
            }
            let format = |p: &Path| {
                if p.extension().is_some_and(|e| e == "qcow2") {
                    "qcow2".to_string()
                } else {
                    "raw".to_string()
                }
            };
            let setup = flash_setup(
                req.arch,
                FlashImage {
                    path: code.clone(),
                    format: format(code),
                },
                vars.as_ref().map(|v| FlashImage {
                    path: v.clone(),
                    format: format(v),
                }),
                false,
                run,
                req.nvram.as_deref(),
            )?;
            (
                setup,
                FirmwareReport {
                    descriptor: None,
                    description: "given with --firmware".into(),
                    code: Some(code.clone()),
                    vars_template: vars.clone(),
                },
            )
        }
    };
    let disk_window = match &req.disk_window {
        Some(w) => Some(window_disk(w, &req.disk, run)?),
        None => None,
    };
    let hotplug_disk = match req.hotplug_disk_bytes {
        Some(bytes) => {
            let file = run.path().join("hotplug.raw");
            std::fs::File::create(&file)?.set_len(bytes)?;
            Some(file)
        }
        None => None,
    };
    let overlay = run.path().join("disk.qcow2");
    create_overlay(
        &overlay,
        Path::new(&req.disk.backing_name()?),
        &req.disk.format,
        req.disk.size,
    )?;
    let spec = VmSpec {
        arch: req.arch,
        machine: qemu.machine.clone(),
        platform: req.platform.clone(),
        accel: req.accel.accel,
        cpus: req.cpus,
        memory_mib: req.memory_mib,
        firmware,
        disk: Some(Disk {
            path: overlay,
            format: "qcow2".into(),
        }),
        kernel: req.kernel.clone(),
        console_file: run.path().join("console.raw"),
        qmp_socket: run.path().join("qmp.sock"),
        network: req.network,
        hotplug_ports: req.hotplug_ports,
        agent_channel: req.agent_channel.clone(),
        ready_channel: req.ready_port.then(|| run.path().join("ready.out")),
        seed_disk: req.seed_disk.clone(),
        disk_window,
        fw_cfg: req.fw_cfg.clone(),
        hotplug_disk,
        run_as: req.run_as,
    };
    if let Some(r) = req.run_as {
        r.own(run.path())?;
    }
    Ok(Prepared {
        qemu,
        spec,
        firmware: report,
    })
}
