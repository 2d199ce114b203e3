//! The rule catalog: stable ids, severities, where each rule comes from,
//! and what to do when it fails.

use serde::Serialize;

/// How much a failed rule matters (the scale diagnostics use too).
pub use bootproof_platform::Severity;

/// One rule.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Rule {
    /// Stable identifier.
    pub id: &'static str,
    /// Severity when it fails.
    pub severity: Severity,
    /// What it checks.
    pub title: &'static str,
    /// Spec clause or rationale.
    pub clause: &'static str,
    /// What to do when it fails.
    pub hint: &'static str,
    /// Where a firmware boot stops when this rule fails; `None` for rules
    /// that matter for compliance or observability but do not stop a boot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stops: Option<Stop>,
}

/// The stages of a firmware boot, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// UEFI firmware: finding and starting the loader.
    Firmware,
    /// The loader (GRUB, systemd-boot, shim): configuration, menu, kernel.
    Loader,
    /// The kernel's own start-up.
    Kernel,
    /// The initramfs: finding and mounting root.
    Initramfs,
    /// The system's init: mounts and services up to login.
    Userspace,
    /// A login prompt (the boot succeeded).
    Login,
}

impl Stage {
    /// Lower-case name, as JSON writes it.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Firmware => "firmware",
            Stage::Loader => "loader",
            Stage::Kernel => "kernel",
            Stage::Initramfs => "initramfs",
            Stage::Userspace => "userspace",
            Stage::Login => "login",
        }
    }
}

/// What a failed rule does to a boot.
#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
pub struct Stop {
    /// The stage the boot stops in.
    pub stage: Stage,
    /// What happens there, in words.
    pub effect: &'static str,
}

macro_rules! rules {
    ($($name:ident = $id:literal, $sev:ident, $title:literal, $clause:literal, $hint:literal $(, stops $stage:ident: $effect:literal)?;)*) => {
        $(
            #[doc = $title]
            pub const $name: Rule = Rule {
                id: $id,
                severity: Severity::$sev,
                title: $title,
                clause: $clause,
                hint: $hint,
                stops: rules!(@stop $($stage, $effect)?),
            };
        )*
        /// Every rule, in report order.
        pub const ALL: &[&Rule] = &[$(&$name),*];
    };
    (@stop) => { None };
    (@stop $stage:ident, $effect:literal) => {
        Some(Stop { stage: Stage::$stage, effect: $effect })
    };
}

rules! {
    GPT = "image.gpt", Error, "Disk is partitioned with GPT",
        "VM spec v2.0 §image: the disk MUST use GPT",
        "convert the table with `sgdisk -g IMAGE` (or rebuild the image with a GPT)";
    GPT_CONSISTENT = "image.gpt-consistent", Warning, "Both GPT copies are valid and agree",
        "UEFI 2.6 §5.3: firmware validates both headers and entry arrays",
        "repair with `sgdisk -e IMAGE` (moves/rewrites the backup) after checking the primary";
    ESP = "image.esp", Error, "An EFI System Partition exists",
        "VM spec v2.0 §image: an ESP (type C12A7328-F81F-11D2-BA4B-00A0C93EC93B) MUST exist",
        "give the boot partition the ESP type: `sgdisk -t N:EF00 IMAGE`";
    ESP_FAT = "image.esp-fat", Error, "The ESP is formatted FAT",
        "UEFI 2.6 §12.3.1.1: system partitions use FAT",
        "format the ESP with `mkfs.vfat -F 32`",
        stops Firmware: "the firmware cannot read the ESP, finds no loader and falls back to its shell or network boot";
    ESP_FAT32 = "image.esp-fat32", Warning, "The ESP is FAT32",
        "UEFI 2.6 §12.3.1.1: FAT32 for system partitions (FAT12/16 for removable media)",
        "recreate the ESP with `mkfs.vfat -F 32` (at least ~33 MiB at 512-byte clusters)";
    REMOVABLE = "image.removable-path", Error, "The removable-media loader exists (\\EFI\\BOOT\\BOOT<arch>.EFI)",
        "VM spec v2.0 §image: the image MUST boot from the removable path",
        "copy the loader there, e.g. `grub-install --removable` or `bootctl install` with --no-variables",
        stops Firmware: "the firmware finds no loader at the removable path and falls back to its shell or network boot";
    EFI_APP = "image.efi-app", Error, "The removable loader is a PE32+ EFI application for the arch",
        "VM spec v2.0 §image + UEFI 2.6 §2.1.1: machine type and subsystem 10 (EFI application)",
        "install the loader built for this architecture (e.g. grubaa64.efi / shimaa64.efi on arm64)",
        stops Firmware: "the firmware refuses a loader that is not an EFI application for this machine";
    NO_PRECONFIG = "image.no-preconfig", Error, "Booting does not depend on NVRAM boot entries",
        "VM spec v2.0 §image: a portable image MUST NOT rely on a pre-configured UEFI environment",
        "install the loader at the removable path as well as under EFI/<vendor>/",
        stops Firmware: "a fresh VM has no NVRAM entry for the vendor loader, so the firmware finds nothing to boot";
    NO_FIRMWARE = "image.no-firmware", Warning, "No UEFI firmware is shipped in the image",
        "VM spec v2.0 §image: the firmware SHOULD NOT be part of the image",
        "remove firmware volumes (*.fd) from the image; the hypervisor provides them";
    CHAIN = "boot.chain", Error, "The boot chain resolves to a kernel",
        "a boot needs loader → config → entry → kernel",
        "fix the loader configuration named in the evidence",
        stops Loader: "the loader finds no configuration or entry to boot and stops at its prompt";
    LOADER_COMMANDS = "boot.loader-commands", Error, "GRUB has every command its configuration runs",
        "GRUB answers an unknown command with `can't find command` and, left without menu entries, stops at its prompt",
        "boot this configuration with the GRUB it was written for (`blscfg` is a Fedora/RHEL GRUB command), or install the module under $prefix/<cpu>-efi/",
        stops Loader: "GRUB cannot run a command its configuration needs (`can't find command`) and stops at its prompt";
    MENU_TIMEOUT = "boot.menu-timeout", Error, "The boot menu boots the default entry without a key press",
        "a VM boots unattended: GRUB with `timeout` unset or negative, or systemd-boot with `timeout menu-force`, waits at the menu forever",
        "set a timeout (GRUB: `GRUB_TIMEOUT=5` in /etc/default/grub, then update-grub; systemd-boot: `timeout 3` in loader.conf)",
        stops Loader: "the boot menu waits for a key press: the boot stalls there";
    KERNEL_FILES = "boot.kernel-files", Error, "The default entry's kernel and initrd exist",
        "the loader fails with `file not found` otherwise",
        "regenerate the boot configuration (update-grub, kernel-install) or restore the files",
        stops Loader: "the loader reports `file not found` for the kernel or initrd";
    KERNEL_ARCH = "boot.kernel-arch", Error, "The kernel is built for the image's architecture",
        "an x86 kernel cannot run on an arm64 VM and vice versa",
        "install the kernel package for the image's architecture",
        stops Loader: "the loader cannot start a kernel built for another architecture";
    KERNEL_EFI_STUB = "boot.kernel-efi-stub", Error, "The kernel has an EFI stub",
        "UEFI loaders (GRUB on arm64, systemd-boot) start the kernel as an EFI application",
        "use a kernel built with CONFIG_EFI_STUB=y and do not compress it outside the image format (use zboot)",
        stops Loader: "the loader cannot start a kernel without an EFI stub";
    UNRESOLVED_VARS = "boot.cmdline-vars", Error, "The command line has no unresolved variables",
        "GRUB BLS entries use $kernelopts from grubenv; unresolved, the kernel gets the literal text",
        "set kernelopts in grubenv (`grub2-editenv - set kernelopts=\"root=... ro\"`) or write the options into the entry",
        stops Initramfs: "the kernel gets the literal `$variable` instead of root= and the initramfs waits for a root device";
    SB_FIRST = "secureboot.first-stage", Error, "Secure Boot: the firmware's db accepts the removable loader",
        "UEFI 2.10 §32.5: the firmware runs an image only if a signature chains to db (or its hash is there) and nothing in dbx revokes it",
        "sign the loader with a key whose certificate is in db (distributions: boot through shim signed by the Microsoft UEFI CA), or enrol its certificate in db",
        stops Firmware: "the firmware refuses the loader (`Access Denied` / `Security Violation`) and falls back to its boot manager";
    SB_SHIM_SBAT = "secureboot.shim-sbat", Error, "Secure Boot: shim's own SBAT generation is not revoked",
        "shim applies the SbatLevel in force (the firmware's SbatLevel variable, or its built-in automatic level when newer) and checks its own .sbat against it first",
        "install a shim (shim-signed) whose generation the SbatLevel allows; in a test VM, start from a variable store without the newer SbatLevel",
        stops Loader: "shim prints `Something has gone seriously wrong: SBAT self-check failed` and stops";
    SB_SECOND = "secureboot.second-stage", Error, "Secure Boot: shim accepts the boot loader it starts",
        "shim verifies its second stage against db, its built-in vendor certificate and MokList, after dbx, its vendor dbx and MokListX, then its .sbat against the SbatLevel in force",
        "use the boot loader signed by the shim vendor's key (Debian: grub-efi-<arch>-signed) at a generation the SbatLevel allows, or sign it with a key enrolled in MokList (`mokutil --import`)",
        stops Loader: "shim prints `Verification failed: (0x1A) Security Violation` and does not start the loader";
    SB_KERNEL = "secureboot.kernel", Error, "Secure Boot: the kernel is accepted by what verifies it",
        "GRUB hands the kernel to shim's protocol (systemd-boot to the firmware, where shim hooks in), which checks it as it checked the loader",
        "install the distribution's signed kernel, or sign it (`sbsign --key K --cert C`) with a key in MokList or db",
        stops Loader: "the loader reports `bad shim signature` or `shim_lock protocol not found` (GRUB) or `Access Denied` and does not start the kernel";
    ROOT_REF = "boot.root", Error, "root= names a filesystem in the image",
        "the initramfs waits for the root device and gives up (`Gave up waiting for root file system device`)",
        "point root= at the root filesystem's UUID= or PARTUUID= as shown by `bootproof inspect`",
        stops Initramfs: "the initramfs waits for the root device, gives up and drops to its shell";
    RESUME_REF = "boot.resume", Warning, "resume= names a device in the image",
        "an unresolvable resume device delays or breaks early boot",
        "drop resume= or point it at the swap partition's UUID";
    FSTAB_REFS = "os.fstab", Error, "/etc/fstab entries name filesystems in the image",
        "systemd waits for each device and drops to emergency mode",
        "fix the fstab entry or add `nofail` for optional mounts",
        stops Userspace: "systemd waits for a device the VM does not have and drops to emergency mode";
    CONSOLE = "cmdline.console", Warning, "The command line names the arch's serial console",
        "arm64 `virt` has a PL011 (ttyAMA0); x86 machines a 16550 (ttyS0); without it boot output is lost",
        "add console=ttyAMA0 (arm64) or console=ttyS0 (x86_64)";
    X86_TOKENS = "cmdline.arch-tokens", Warning, "No parameters of the other architecture",
        "earlyprintk=, clocksource=kvm-clock, no_timer_check, noreplace-smp and console=ttyS0 are x86 conventions",
        "remove the x86-only parameters from the arm64 command line";
    BARE_TOKENS = "cmdline.bare-tokens", Warning, "No unknown bare words on the command line",
        "the kernel passes words it does not know to init as arguments",
        "remove the stray words, or write them as key=value";
    OS_UART = "os.uart-drivers", Error, "The kernel drives the PL011/SBSA UART as a console",
        "VM spec v2.0 §guest OS: PL011 and SBSA UART console drivers MUST be present",
        "enable CONFIG_SERIAL_AMBA_PL011 and CONFIG_SERIAL_AMBA_PL011_CONSOLE";
    OS_GIC = "os.gic", Error, "The kernel supports GICv2 and GICv3",
        "VM spec v2.0 §guest OS: both GIC versions MUST be supported",
        "enable CONFIG_ARM_GIC and CONFIG_ARM_GIC_V3",
        stops Kernel: "the kernel has no driver for the interrupt controller and hangs early";
    OS_EFI_RTC = "os.efi-rtc", Error, "The kernel uses the UEFI RTC",
        "VM spec v2.0 §guest OS: the OS MUST use the UEFI RTC API",
        "enable CONFIG_RTC_DRV_EFI";
    OS_RV_UART = "os.riscv-uart", Error, "The kernel drives the 16550 UART of RISC-V virt as a console",
        "RISC-V virt (QEMU) gives the console as an NS16550A described by the device tree or ACPI SPCR: Linux needs the 8250 driver, its console and the device-tree glue",
        "enable CONFIG_SERIAL_8250, CONFIG_SERIAL_8250_CONSOLE and CONFIG_SERIAL_OF_PLATFORM";
    OS_RV_IRQ = "os.riscv-irq", Error, "The kernel has the RISC-V platform interrupt controller (PLIC)",
        "RISC-V virt wires devices to a PLIC (APLIC/IMSIC with AIA); without its driver no device interrupt arrives",
        "enable CONFIG_SIFIVE_PLIC (and CONFIG_RISCV_APLIC, CONFIG_RISCV_IMSIC for AIA machines)",
        stops Kernel: "the kernel has no driver for the interrupt controller: devices never interrupt and the boot hangs";
    OS_RV_AIA = "os.riscv-aia", Warning, "The kernel has the AIA interrupt controllers (APLIC, IMSIC)",
        "RISC-V Advanced Interrupt Architecture: QEMU virt with aia=aplic-imsic (`--aia`, the `aia` variant) and AIA hardware wire devices to an APLIC delivering MSIs through per-hart IMSICs instead of a PLIC",
        "enable CONFIG_RISCV_APLIC and CONFIG_RISCV_IMSIC (Linux 6.10 and later) so the kernel also boots on AIA machines";
    OS_RV_SBI = "os.riscv-sbi", Error, "The kernel calls SBI and has the SBI timer",
        "RISC-V Boot and Runtime Services: the kernel runs in S-mode on an SBI implementation (OpenSBI) and takes its timer from it",
        "enable CONFIG_RISCV_SBI and CONFIG_RISCV_TIMER",
        stops Kernel: "the kernel has no timer and hangs early";
    OS_RV_RTC = "os.riscv-rtc", Warning, "The kernel uses the UEFI RTC",
        "RISC-V Boot and Runtime Services: time comes from UEFI's GetTime; under EDK2, RISC-V virt's ACPI tables describe no Goldfish RTC, so a kernel with only that driver has no RTC (seen on Debian 13)",
        "enable CONFIG_RTC_DRV_EFI";
    OS_PCI_HOTPLUG = "os.pci-hotplug", Warning, "The kernel supports PCIe native hotplug",
        "a VM's disks and NICs are hot-added on PCIe root ports; without pciehp the guest never sees them (seen on Debian 13 riscv64)",
        "enable CONFIG_HOTPLUG_PCI and CONFIG_HOTPLUG_PCI_PCIE";
    OS_EFI = "os.efi", Error, "The kernel supports EFI and has the EFI stub",
        "VM spec v2.0: UEFI boot",
        "enable CONFIG_EFI and CONFIG_EFI_STUB",
        stops Loader: "a kernel without EFI support cannot be started by a UEFI loader";
    OS_ACPI_DT = "os.acpi-and-dt", Error, "The kernel can boot with ACPI or device tree",
        "VM spec v2.0 §hardware description: both ACPI and DT are presented",
        "enable CONFIG_ACPI and CONFIG_OF",
        stops Kernel: "the kernel cannot read the hardware description the firmware gives it and hangs early";
    OS_VIRTIO = "os.virtio", Warning, "virtio (pci, mmio, blk, net, console, balloon) and, where Xen runs guests, Xen PV drivers are available",
        "VM spec v2.0 §guest OS: SHOULD include them, built in or as modules",
        "enable the virtio and Xen front-end drivers (=y or =m)";
    ROOT_DRIVERS = "os.root-drivers", Error, "Drivers to reach the root filesystem are built in or in the initrd",
        "a module needed before root is mounted must be in the initramfs",
        "add the modules to the initramfs (e.g. /etc/initramfs-tools/modules, dracut --add-drivers) or build them in; for a root on LVM2, install lvm2 before building the initramfs (its hook adds dm_mod and lvm)",
        stops Initramfs: "the initramfs cannot see the root disk, gives up waiting and drops to its shell";
    GUEST_AGENT = "os.provisioning", Info, "Provisioning agent (cloud-init or Ignition)",
        "informational: how the image expects to be configured on first boot",
        "—";
}
