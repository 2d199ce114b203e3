//! Guest architectures and the one table of facts about each.
//!
//! Everything that differs between architectures — the UEFI removable
//! loader's name, the PE and ELF machine numbers, the root partition type
//! GUIDs, the serial console, the QEMU binary, machine and TCG CPU model,
//! how pflash is sized, the agent's target — is a row of [`ARCHES`].
//! Code elsewhere asks an [`Arch`] for a fact; it never compares
//! architecture names. Adding an architecture is adding a variant and a row.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A guest architecture bootproof reads, checks and boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    /// 64-bit Arm.
    Aarch64,
    /// 64-bit x86.
    X86_64,
    /// 64-bit RISC-V (RV64GC).
    Riscv64,
}

/// The facts about one architecture (a row of [`ARCHES`]).
#[derive(Debug)]
pub struct ArchInfo {
    /// The architecture this row describes.
    pub arch: Arch,
    /// Canonical name, as in JSON output and QEMU firmware descriptors
    /// (`aarch64`, `x86_64`).
    pub name: &'static str,
    /// Other spellings accepted on input (Debian's, UEFI's).
    pub aliases: &'static [&'static str],
    /// Debian's architecture name (`arm64`, `amd64`).
    pub debian: &'static str,
    /// RPM's architecture name (`aarch64`, `x86_64`), as repository
    /// metadata and package file names spell it.
    pub rpm: &'static str,
    /// The UEFI removable-media loader (`\EFI\BOOT\<name>`).
    pub removable_loader: &'static str,
    /// PE/COFF machine type of its EFI binaries.
    pub pe_machine: u16,
    /// ELF `e_machine` of its kernels.
    pub elf_machine: u16,
    /// GRUB's `grub_cpu` (module directory `<cpu>-efi`).
    pub grub_cpu: &'static str,
    /// Discoverable Partitions root type GUID (upper case).
    pub root_type_guid: &'static str,
    /// Discoverable Partitions `/usr` type GUID (upper case).
    pub usr_type_guid: &'static str,
    /// The serial console device the kernel names (`console=<this>`).
    pub console: &'static str,
    /// QEMU system emulator binary.
    pub qemu_binary: &'static str,
    /// QEMU machine alias bootproof builds.
    pub qemu_machine: &'static str,
    /// Versioned QEMU machine names start with this (`virt-10.0`,
    /// `pc-q35-10.0`).
    pub qemu_machine_prefix: &'static str,
    /// `-cpu` under TCG (under KVM it is always `host`).
    pub tcg_cpu: &'static str,
    /// Raw pflash units must be exactly this large (aarch64 `virt` maps
    /// 64 MiB per unit and rejects other sizes); `None`: any size.
    pub pflash_bytes: Option<u64>,
    /// Firmware description for QEMU's default when no UEFI is used.
    pub no_uefi_firmware: &'static str,
    /// Rust target triple of the static in-guest agent (musl; riscv64:
    /// glibc linked statically, as rustup's stable channel offers no
    /// riscv64 musl standard library here; `.cargo/config.toml` links it
    /// with Debian's riscv64-linux-gnu-gcc and `+crt-static`).
    pub agent_target: &'static str,
    /// GIC versions the machine offers (aarch64 `virt`: 3 and 2); empty
    /// where the interrupt controller is not a variant axis.
    pub gic_versions: &'static [u8],
    /// Whether the machine can leave out ACPI, booting on the device tree
    /// alone (`virt`); `q35` always has ACPI.
    pub acpi_optional: bool,
    /// Whether virtio can sit on virtio-mmio instead of PCI (`virt`).
    pub virtio_mmio: bool,
    /// Whether the machine can offer RISC-V's Advanced Interrupt
    /// Architecture (APLIC and IMSIC) instead of the PLIC (riscv64 `virt`).
    pub aia_optional: bool,
    /// Whether its kernels are expected to read a device tree as well as
    /// ACPI (arm64 and RISC-V `virt` present either; x86 machines only ACPI).
    pub device_tree: bool,
    /// The Debian package with its UEFI firmware and QEMU descriptor.
    pub firmware_package: &'static str,
    /// Whether Xen runs guests of this architecture (its PV drivers are
    /// then expected in a cloud kernel).
    pub xen_guest: bool,
}

/// Every architecture bootproof knows, one row each.
pub const ARCHES: &[ArchInfo] = &[
    ArchInfo {
        arch: Arch::Aarch64,
        name: "aarch64",
        aliases: &["arm64", "aa64"],
        debian: "arm64",
        rpm: "aarch64",
        removable_loader: "BOOTAA64.EFI",
        pe_machine: 0xAA64,
        elf_machine: 183,
        grub_cpu: "arm64",
        root_type_guid: "B921B045-1DF0-41C3-AF44-4C6F280D3FAE",
        usr_type_guid: "B0E01050-EE5F-4390-949A-9101B17104E9",
        console: "ttyAMA0",
        qemu_binary: "qemu-system-aarch64",
        qemu_machine: "virt",
        qemu_machine_prefix: "virt",
        tcg_cpu: "max,pauth-impdef=on",
        pflash_bytes: Some(64 << 20),
        no_uefi_firmware: "none: QEMU enters the kernel directly",
        agent_target: "aarch64-unknown-linux-musl",
        gic_versions: &crate::variant::GIC_VERSIONS,
        acpi_optional: true,
        virtio_mmio: true,
        aia_optional: false,
        device_tree: true,
        firmware_package: "qemu-efi-aarch64",
        xen_guest: true,
    },
    ArchInfo {
        arch: Arch::X86_64,
        name: "x86_64",
        aliases: &["amd64", "x64", "x86-64"],
        debian: "amd64",
        rpm: "x86_64",
        removable_loader: "BOOTX64.EFI",
        pe_machine: 0x8664,
        elf_machine: 62,
        grub_cpu: "x86_64",
        root_type_guid: "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
        usr_type_guid: "8484680C-9521-48C6-9C11-B0720656F69E",
        console: "ttyS0",
        qemu_binary: "qemu-system-x86_64",
        qemu_machine: "q35",
        qemu_machine_prefix: "pc-q35",
        tcg_cpu: "max",
        pflash_bytes: None,
        no_uefi_firmware: "none: QEMU's default BIOS (SeaBIOS)",
        agent_target: "x86_64-unknown-linux-musl",
        gic_versions: &[],
        acpi_optional: false,
        virtio_mmio: false,
        aia_optional: false,
        device_tree: false,
        firmware_package: "ovmf",
        xen_guest: true,
    },
    ArchInfo {
        arch: Arch::Riscv64,
        name: "riscv64",
        aliases: &["riscv64gc", "rv64"],
        debian: "riscv64",
        rpm: "riscv64",
        removable_loader: "BOOTRISCV64.EFI",
        pe_machine: 0x5064,
        elf_machine: 243,
        grub_cpu: "riscv64",
        root_type_guid: "72EC70A6-CF74-40E6-BD49-4BDA08E8F224",
        usr_type_guid: "BEAEC34B-8442-439B-A40B-984381ED097D",
        // QEMU `virt`'s NS16550A UART.
        console: "ttyS0",
        qemu_binary: "qemu-system-riscv64",
        qemu_machine: "virt",
        qemu_machine_prefix: "virt",
        tcg_cpu: "max",
        // riscv64 `virt` maps 32 MiB per pflash unit and rejects other sizes.
        pflash_bytes: Some(32 << 20),
        no_uefi_firmware: "OpenSBI only: QEMU's default firmware enters the kernel",
        agent_target: "riscv64gc-unknown-linux-gnu",
        gic_versions: &[],
        acpi_optional: true,
        virtio_mmio: true,
        aia_optional: true,
        device_tree: true,
        firmware_package: "qemu-efi-riscv64, from Debian 13",
        xen_guest: false,
    },
];

impl Arch {
    /// Every architecture, in table order.
    pub const ALL: [Arch; 3] = [Arch::Aarch64, Arch::X86_64, Arch::Riscv64];

    /// This architecture's row of [`ARCHES`].
    pub fn info(self) -> &'static ArchInfo {
        ARCHES
            .iter()
            .find(|i| i.arch == self)
            .expect("every Arch has a row in ARCHES")
    }

    /// Canonical name (`aarch64`, `x86_64`).
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// Every canonical name, for messages (`aarch64, x86_64, riscv64`).
    pub fn names() -> String {
        ARCHES.iter().map(|i| i.name).collect::<Vec<_>>().join(", ")
    }

    /// Parses a name or alias (`aarch64`, `arm64`, `x86_64`, `amd64`, `x64`).
    pub fn parse(s: &str) -> Option<Arch> {
        ARCHES
            .iter()
            .find(|i| i.name == s || i.aliases.contains(&s))
            .map(|i| i.arch)
    }

    /// The UEFI removable-media file name (`BOOTAA64.EFI`).
    pub fn removable_name(self) -> &'static str {
        self.info().removable_loader
    }

    /// The PE machine type of its EFI binaries.
    pub fn pe_machine(self) -> u16 {
        self.info().pe_machine
    }

    /// The architecture of a PE machine type.
    pub fn from_pe_machine(machine: u16) -> Option<Arch> {
        ARCHES
            .iter()
            .find(|i| i.pe_machine == machine)
            .map(|i| i.arch)
    }

    /// The architecture of an ELF `e_machine`.
    pub fn from_elf_machine(machine: u16) -> Option<Arch> {
        ARCHES
            .iter()
            .find(|i| i.elf_machine == machine)
            .map(|i| i.arch)
    }

    /// The architecture whose root or `/usr` partition type this GUID is
    /// (any case).
    pub fn from_partition_type(guid: &str) -> Option<Arch> {
        ARCHES
            .iter()
            .find(|i| {
                i.root_type_guid.eq_ignore_ascii_case(guid)
                    || i.usr_type_guid.eq_ignore_ascii_case(guid)
            })
            .map(|i| i.arch)
    }

    /// The serial console device (`ttyAMA0`, `ttyS0`).
    pub fn console(self) -> &'static str {
        self.info().console
    }

    /// `-cpu` for this guest: `host` under KVM, the table's model under TCG.
    pub fn cpu_model(self, kvm: bool) -> &'static str {
        if kvm {
            "host"
        } else {
            self.info().tcg_cpu
        }
    }

    /// Whether a raw pflash image of `len` bytes must be padded for this
    /// architecture's machine.
    pub fn pflash_needs_padding(self, len: u64) -> bool {
        self.info().pflash_bytes.is_some_and(|want| len < want)
    }

    /// The host's architecture, when bootproof knows it.
    pub fn host() -> Option<Arch> {
        Arch::parse(std::env::consts::ARCH)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An architecture name bootproof does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownArch(pub String);

impl fmt::Display for UnknownArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown architecture `{}` (bootproof knows {})",
            self.0,
            Arch::names()
        )
    }
}

impl std::error::Error for UnknownArch {}

impl FromStr for Arch {
    type Err = UnknownArch;
    fn from_str(s: &str) -> Result<Arch, UnknownArch> {
        Arch::parse(s).ok_or_else(|| UnknownArch(s.to_string()))
    }
}

impl Serialize for Arch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// An arch is its canonical name in documents; input (matrix files) may also
/// use an alias, so the schema lists both.
impl schemars::JsonSchema for Arch {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Arch".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = Arch::ALL
            .iter()
            .flat_map(|a| std::iter::once(a.name()).chain(a.info().aliases.iter().copied()))
            .collect();
        schemars::json_schema!({
            "type": "string",
            "enum": names,
            "description": "A guest architecture: its canonical name, or on input an alias."
        })
    }
}

impl<'de> Deserialize<'de> for Arch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Arch, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_arch_has_exactly_one_row() {
        for a in Arch::ALL {
            assert_eq!(ARCHES.iter().filter(|i| i.arch == a).count(), 1);
            assert_eq!(a.info().arch, a);
        }
        assert_eq!(ARCHES.len(), Arch::ALL.len());
    }

    #[test]
    fn names_and_aliases_round_trip() {
        for a in Arch::ALL {
            assert_eq!(a.name().parse::<Arch>(), Ok(a));
            assert_eq!(a.to_string(), a.name());
            for alias in a.info().aliases {
                assert_eq!(Arch::parse(alias), Some(a));
            }
        }
        assert_eq!(Arch::parse("arm64"), Some(Arch::Aarch64));
        assert_eq!(Arch::parse("amd64"), Some(Arch::X86_64));
        assert_eq!(Arch::parse("riscv64"), Some(Arch::Riscv64));
        let err = "sparc64".parse::<Arch>().unwrap_err();
        assert!(
            err.to_string().contains("aarch64, x86_64, riscv64"),
            "{err}"
        );
    }

    #[test]
    fn serde_keeps_the_canonical_spelling() {
        assert_eq!(serde_json::to_string(&Arch::X86_64).unwrap(), "\"x86_64\"");
        let a: Arch = serde_json::from_str("\"aarch64\"").unwrap();
        assert_eq!(a, Arch::Aarch64);
        assert!(serde_json::from_str::<Arch>("\"sparc\"").is_err());
    }

    #[test]
    fn machine_numbers_and_guids_map_back() {
        assert_eq!(Arch::from_pe_machine(0xAA64), Some(Arch::Aarch64));
        assert_eq!(Arch::from_pe_machine(0x8664), Some(Arch::X86_64));
        assert_eq!(Arch::from_pe_machine(0x5064), Some(Arch::Riscv64));
        assert_eq!(Arch::from_elf_machine(243), Some(Arch::Riscv64));
        assert_eq!(Arch::from_pe_machine(0x14c), None);
        assert_eq!(Arch::from_elf_machine(183), Some(Arch::Aarch64));
        assert_eq!(Arch::from_elf_machine(62), Some(Arch::X86_64));
        assert_eq!(
            Arch::from_partition_type("b921b045-1df0-41c3-af44-4c6f280d3fae"),
            Some(Arch::Aarch64)
        );
        assert_eq!(
            Arch::from_partition_type("8484680C-9521-48C6-9C11-B0720656F69E"),
            Some(Arch::X86_64)
        );
        assert_eq!(
            Arch::from_partition_type("0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
            None
        );
    }

    #[test]
    fn cpu_models_and_pflash() {
        assert_eq!(Arch::Aarch64.cpu_model(false), "max,pauth-impdef=on");
        assert_eq!(Arch::X86_64.cpu_model(false), "max");
        assert_eq!(Arch::Aarch64.cpu_model(true), "host");
        assert!(Arch::Aarch64.pflash_needs_padding(2 << 20));
        assert!(!Arch::Aarch64.pflash_needs_padding(64 << 20));
        assert!(!Arch::X86_64.pflash_needs_padding(2 << 20));
        assert!(Arch::Riscv64.pflash_needs_padding(2 << 20));
        assert!(!Arch::Riscv64.pflash_needs_padding(32 << 20));
    }
}
