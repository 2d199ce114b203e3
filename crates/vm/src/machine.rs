//! Machine construction: one [`VmSpec`] (architecture, platform variant,
//! accelerator, firmware, disk, kernel, sockets) becomes one QEMU command
//! line. Pure: nothing here touches the host, so every choice is unit-tested.

use crate::accel::{accel_arg, cpu_model, Accel};
use crate::privilege::RunAs;
use serde::Serialize;
use std::path::PathBuf;

pub use bootproof_platform::{Arch, Platform, Transport};

/// One firmware file mapped as pflash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FlashImage {
    /// The file.
    pub path: PathBuf,
    /// `raw` or `qcow2`.
    pub format: String,
}

/// The firmware the VM starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FirmwareSetup {
    /// UEFI in pflash: read-only code and this VM's own variable store.
    Pflash {
        /// Code (mapped read-only).
        code: FlashImage,
        /// The per-VM variable store (writable), if the firmware has one.
        vars: Option<FlashImage>,
        /// The firmware needs SMM (secure-boot OVMF builds).
        requires_smm: bool,
    },
    /// Loaded into memory with `-bios`.
    Bios {
        /// The image.
        path: PathBuf,
    },
    /// QEMU's own default: on aarch64 `virt` the kernel is entered
    /// directly; on x86_64 QEMU's bundled SeaBIOS runs.
    QemuDefault,
}

/// A kernel booted directly (`-kernel`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DirectKernel {
    /// The kernel image.
    pub kernel: PathBuf,
    /// The initrd, if any.
    pub initrd: Option<PathBuf>,
    /// The command line.
    pub cmdline: String,
}

/// The disk attached to the VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Disk {
    /// The (overlay) file QEMU opens read-write.
    pub path: PathBuf,
    /// Its format.
    pub format: String,
}

/// Bytes of the boot disk attached read-only as a disk of their own (an
/// LVM2 logical volume's extents: the guest reads the volume with no
/// device mapper). The guest finds it by its virtio serial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct WindowDisk {
    /// Where its bytes come from.
    pub source: WindowSource,
    /// Its virtio serial (at most 20 bytes).
    pub serial: String,
}

/// Where a [`WindowDisk`]'s bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub enum WindowSource {
    /// One run of the boot disk, read through its node (any format).
    Range {
        /// Its first byte on the boot disk.
        offset: u64,
        /// Its length in bytes.
        size: u64,
    },
    /// Several runs of a raw image file joined by a VMDK descriptor of
    /// flat extents (QEMU's way to concatenate files' ranges).
    Descriptor(PathBuf),
}

/// Everything that decides a QEMU command line.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VmSpec {
    /// Guest architecture.
    pub arch: Arch,
    /// Concrete machine type (`virt-10.0`, `pc-q35-10.0`).
    pub machine: String,
    /// Platform variant.
    pub platform: Platform,
    /// KVM or TCG.
    pub accel: Accel,
    /// vCPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Firmware.
    pub firmware: FirmwareSetup,
    /// The boot disk.
    pub disk: Option<Disk>,
    /// Direct kernel boot.
    pub kernel: Option<DirectKernel>,
    /// File QEMU appends the serial console to (writes never block the
    /// guest; the supervisor tails it).
    pub console_file: PathBuf,
    /// Unix socket for QMP.
    pub qmp_socket: PathBuf,
    /// Attach a user-mode NIC (off by default: firmware would try network
    /// boot first and lose seconds).
    pub network: bool,
    /// Empty PCIe root ports for hotplug (`rp1`, `rp2`, …; PCI transport only).
    pub hotplug_ports: u32,
    /// A virtio-serial port for the agent's records, written by QEMU to
    /// this file (a file backend is always "connected", so the guest never
    /// blocks on it).
    pub agent_channel: Option<PathBuf>,
    /// The image's readiness port ([`crate::ready::READY_PORT`]),
    /// recorded to this file.
    pub ready_channel: Option<PathBuf>,
    /// A read-only raw disk after the boot disk (a cloud-init NoCloud seed).
    pub seed_disk: Option<PathBuf>,
    /// Bytes of the boot disk as a read-only disk of their own, after it.
    pub disk_window: Option<WindowDisk>,
    /// fw_cfg blobs, `(name, file)` (an Ignition config at
    /// `opt/com.coreos/config`).
    pub fw_cfg: Vec<(String, PathBuf)>,
    /// A raw file opened at start as block node `hotplug0` with no device:
    /// a later QMP `device_add` plugs it in (opened now, while QEMU may
    /// still open any path, not after it dropped privileges).
    pub hotplug_disk: Option<PathBuf>,
    /// The unprivileged identity QEMU switches to (set when bootproof runs
    /// as root).
    pub run_as: Option<RunAs>,
}

/// A path inside a QEMU option string (`-drive file=…`, `-chardev
/// path=…`): option values separate on commas, so a literal comma is
/// doubled.
fn path(p: &std::path::Path) -> String {
    p.to_string_lossy().replace(',', ",,")
}

/// A path that is a whole argument (`-kernel`, `-initrd`, `-bios`): QEMU
/// takes it as it is (doubling its commas would name another file).
fn plain(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

impl VmSpec {
    fn device(&self, pci: &str, mmio: &str) -> String {
        if self.platform.has_pci(self.arch) {
            pci.to_string()
        } else {
            mmio.to_string()
        }
    }

    /// `-sandbox` and `-run-with`: QEMU parses the untrusted image, so its
    /// seccomp sandbox denies what a compromised QEMU would want next (as
    /// libvirt does): obsolete syscalls, setuid and friends, fork/exec, and
    /// changing its own scheduling and resource limits. With [`run_as`],
    /// QEMU switches user after setting up its devices; it installs its
    /// filter before that switch, so set*uid stays allowed then (after it,
    /// with no root uid, gid, group or capability left, there is nothing
    /// to elevate to).
    ///
    /// [`run_as`]: VmSpec::run_as
    fn confinement(&self) -> Vec<String> {
        let privileges = if self.run_as.is_some() {
            "allow"
        } else {
            "deny"
        };
        let mut a = vec![
            "-sandbox".into(),
            format!(
                "on,obsolete=deny,elevateprivileges={privileges},spawn=deny,resourcecontrol=deny"
            ),
        ];
        if let Some(r) = self.run_as {
            a.extend(["-run-with".into(), r.qemu_arg()]);
        }
        a
    }

    /// The QEMU arguments (without the binary).
    pub fn qemu_args(&self) -> Vec<String> {
        let mut a: Vec<String> = ["-nodefaults", "-no-user-config", "-display", "none"]
            .map(String::from)
            .to_vec();
        a.extend(self.confinement());
        let mut machine = self.machine.clone();
        let info = self.arch.info();
        if !info.gic_versions.is_empty() {
            machine.push_str(&format!(",gic-version={}", self.platform.gic));
        }
        if info.acpi_optional {
            let acpi = if self.platform.acpi { "on" } else { "off" };
            machine.push_str(&format!(",acpi={acpi}"));
        }
        if info.aia_optional && self.platform.aia {
            machine.push_str(",aia=aplic-imsic");
        }
        if let FirmwareSetup::Pflash {
            requires_smm: true, ..
        } = self.firmware
        {
            machine.push_str(",smm=on");
        }
        a.extend([
            "-machine".into(),
            machine,
            "-accel".into(),
            accel_arg(self.accel).into(),
            "-cpu".into(),
            cpu_model(self.arch, self.accel).into(),
            "-smp".into(),
            self.cpus.to_string(),
            "-m".into(),
            format!("{}M", self.memory_mib),
        ]);
        match &self.firmware {
            FirmwareSetup::Pflash {
                code,
                vars,
                requires_smm,
            } => {
                if *requires_smm {
                    a.extend([
                        "-global".into(),
                        "driver=cfi.pflash01,property=secure,value=on".into(),
                    ]);
                }
                a.extend([
                    "-drive".into(),
                    format!(
                        "if=pflash,unit=0,format={},readonly=on,file={}",
                        code.format,
                        path(&code.path)
                    ),
                ]);
                if let Some(v) = vars {
                    a.extend([
                        "-drive".into(),
                        format!(
                            "if=pflash,unit=1,format={},file={}",
                            v.format,
                            path(&v.path)
                        ),
                    ]);
                }
                // EDK2 takes its boot-manager timeout from fw_cfg
                // `etc/boot-menu-wait`; without it, it waits ~5 s for a key
                // on every boot (measured under TCG: 6.1 s -> 0.8 s to the
                // first boot option).
                a.extend(["-boot".into(), "menu=on,splash-time=0".into()]);
            }
            FirmwareSetup::Bios { path: p } => a.extend(["-bios".into(), plain(p)]),
            FirmwareSetup::QemuDefault => {}
        }
        // Console: the first serial port (PL011 on virt, COM1 on q35).
        a.extend([
            "-chardev".into(),
            format!("file,id=console,path={}", path(&self.console_file)),
            "-serial".into(),
            "chardev:console".into(),
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", path(&self.qmp_socket)),
            "-monitor".into(),
            "none".into(),
        ]);
        if let Some(d) = &self.disk {
            a.extend([
                "-blockdev".into(),
                format!(
                    "driver={},node-name=disk0,file.driver=file,file.filename={}",
                    d.format,
                    path(&d.path)
                ),
                "-device".into(),
                format!(
                    "{},drive=disk0{}",
                    self.device("virtio-blk-pci", "virtio-blk-device"),
                    // x86 direct boot claims bootindex 0 for its loader ROM.
                    if self.kernel.is_some() {
                        ""
                    } else {
                        ",bootindex=0"
                    }
                ),
            ]);
        }
        if let (Some(_), Some(w)) = (&self.disk, &self.disk_window) {
            // share-rw: the boot disk's device keeps its write permission
            // on the node a range reads.
            a.extend([
                "-blockdev".into(),
                match &w.source {
                    WindowSource::Range { offset, size } => format!(
                        "driver=raw,node-name=window0,read-only=on,offset={offset},size={size},file=disk0"
                    ),
                    WindowSource::Descriptor(file) => format!(
                        "driver=vmdk,node-name=window0,read-only=on,file.driver=file,file.filename={},file.read-only=on",
                        path(file)
                    ),
                },
                "-device".into(),
                format!(
                    "{},drive=window0,serial={},share-rw=on",
                    self.device("virtio-blk-pci", "virtio-blk-device"),
                    w.serial.replace(',', ",,")
                ),
            ]);
        }
        if let Some(seed) = &self.seed_disk {
            a.extend([
                "-blockdev".into(),
                format!(
                    "driver=raw,node-name=seed0,read-only=on,file.driver=file,file.filename={},file.read-only=on",
                    path(seed)
                ),
                "-device".into(),
                format!(
                    "{},drive=seed0",
                    self.device("virtio-blk-pci", "virtio-blk-device")
                ),
            ]);
        }
        for (name, file) in &self.fw_cfg {
            a.extend([
                "-fw_cfg".into(),
                format!("name={},file={}", name.replace(',', ",,"), path(file)),
            ]);
        }
        if let Some(file) = &self.hotplug_disk {
            a.extend([
                "-blockdev".into(),
                format!(
                    "driver=raw,node-name=hotplug0,file.driver=file,file.filename={}",
                    path(file)
                ),
            ]);
        }
        if self.platform.has_pci(self.arch) {
            for i in 1..=self.hotplug_ports {
                a.extend([
                    "-device".into(),
                    format!("pcie-root-port,id=rp{i},chassis={i},slot={i}"),
                ]);
            }
        }
        if self.agent_channel.is_some() || self.ready_channel.is_some() {
            a.extend([
                "-device".into(),
                format!(
                    "{},id=vser0",
                    self.device("virtio-serial-pci", "virtio-serial-device")
                ),
            ]);
        }
        let ports = [
            (&self.agent_channel, "agentch", "org.bootproof.agent.0"),
            (&self.ready_channel, "readych", crate::ready::READY_PORT),
        ];
        for (file, id, name) in ports {
            if let Some(file) = file {
                a.extend([
                    "-chardev".into(),
                    format!("file,id={id},path={}", path(file)),
                    "-device".into(),
                    format!("virtserialport,bus=vser0.0,chardev={id},name={name}"),
                ]);
            }
        }
        // Entropy, so a guest never waits for its RNG to initialise.
        a.extend([
            "-device".into(),
            self.device("virtio-rng-pci", "virtio-rng-device"),
        ]);
        if self.network {
            a.extend([
                "-netdev".into(),
                "user,id=net0".into(),
                "-device".into(),
                format!(
                    "{},netdev=net0,romfile=",
                    self.device("virtio-net-pci", "virtio-net-device")
                ),
            ]);
        } else {
            a.extend(["-nic".into(), "none".into()]);
        }
        if let Some(k) = &self.kernel {
            a.extend(["-kernel".into(), plain(&k.kernel)]);
            if let Some(i) = &k.initrd {
                a.extend(["-initrd".into(), plain(i)]);
            }
            a.extend(["-append".into(), k.cmdline.clone()]);
        }
        a
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
