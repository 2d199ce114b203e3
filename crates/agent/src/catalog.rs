//! The runtime check catalog: every check id a `verify` report can hold,
//! with its area, who checks it (the agent inside the guest, or the host
//! around it), what it proves and the VM System Specification requirement
//! or rationale behind it. The agent and the host both draw ids from here;
//! a test fails if the agent reports an id this catalog lacks.

/// Where a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Inside the guest, by the agent.
    Guest,
    /// On the host, around the guest (QMP, the NVRAM file).
    Host,
}

/// One runtime check.
#[derive(Debug)]
pub struct CheckInfo {
    /// Stable id, `area.name` (the area is the part before the dot).
    pub id: &'static str,
    /// Who checks it.
    pub side: Side,
    /// What a pass proves.
    pub what: &'static str,
    /// The requirement (VM System Specification v2.0 item, SBBR) or why it
    /// matters.
    pub clause: &'static str,
}

impl CheckInfo {
    /// The area: `acpi`, `uefi`, `pci`…
    pub fn area(&self) -> &'static str {
        self.id.split('.').next().unwrap_or(self.id)
    }
}

const fn guest(id: &'static str, what: &'static str, clause: &'static str) -> CheckInfo {
    CheckInfo {
        id,
        side: Side::Guest,
        what,
        clause,
    }
}

const fn host(id: &'static str, what: &'static str, clause: &'static str) -> CheckInfo {
    CheckInfo {
        id,
        side: Side::Host,
        what,
        clause,
    }
}

/// Every runtime check, by area.
pub const CHECKS: &[CheckInfo] = &[
    guest("agent.virtio-serial", "the agent's virtio-serial port exists and carries its records", "bootproof's record channel (the console is the fallback)"),
    guest("boot.image-init", "full mode: PID 1 is the image's own init and / is its disk", "the image booted end to end, not bootproof's initramfs"),
    guest("uefi.booted", "the kernel was started by UEFI firmware (/sys/firmware/efi)", "VMSS fw.uefi (MUST)"),
    guest("uefi.runtime-services", "UEFI runtime services are available to the OS", "VMSS fw.uefi, fw.rtc (MUST)"),
    guest("uefi.variables-writable", "a UEFI variable can be written through efivarfs", "VMSS fw.nvram (SHOULD)"),
    guest("uefi.variable-stored", "persistence, first boot: bootproof's variable was written", "VMSS fw.nvram (SHOULD)"),
    host("uefi.nvram-on-host", "persistence: the variable the first boot wrote is in the VM's NVRAM file, read on the host", "VMSS fw.nvram: storage per VM instance, outside the image"),
    guest("uefi.variables-persist", "persistence, second boot: the variable written by the first boot reads back", "VMSS fw.nvram (SHOULD, strongly)"),
    guest("rtc.readable", "an RTC exists and reads a sane time", "VMSS fw.rtc (MUST)"),
    guest("rtc.efi", "aarch64: the RTC is rtc-efi, UEFI's GetTime()", "VMSS fw.rtc (MUST)"),
    guest("acpi.present", "ACPI tables are offered when ACPI is on", "VMSS fw.config-tables (MUST)"),
    guest("acpi.absent-when-off", "no ACPI tables when the platform offers only a device tree", "the variant is what it claims"),
    guest("acpi.checksums", "every ACPI table's length and checksum are valid", "SBBR: table checksums (MUST)"),
    guest("acpi.sbbr-tables", "aarch64: FACP, APIC, GTDT, DSDT, SPCR and DBG2 are present", "SBBR mandatory tables (MUST)"),
    guest("acpi.hw-reduced", "aarch64: the FADT sets HW_REDUCED_ACPI", "SBBR (MUST)"),
    guest("acpi.spcr-console", "aarch64: SPCR names the UART that is the console", "VMSS hw.uart, SBBR SPCR (SHOULD)"),
    guest("acpi.mcfg-iort", "aarch64: MCFG where PCI exists, IORT where an ITS exists", "SBBR: tables expected when present in the platform"),
    guest("dt.present", "a real device tree (cpus, memory, interrupt controller) when ACPI is off", "VMSS fw.config-tables (MUST)"),
    guest("gic.version", "aarch64: the interrupt controller is the GIC version requested", "VMSS hw.gic: GICv2 and GICv3 both work (MUST)"),
    guest("timer.arch", "aarch64: the Arm generic timer is the clocksource", "VMSS hw.timer (MUST)"),
    guest("psci.version", "aarch64: PSCI 0.2 or later is detected", "VMSS fw.psci (MUST)"),
    guest("uart.pl011-console", "aarch64: the console UART is bound to the PL011/SBSA UART driver", "VMSS hw.uart (MUST)"),
    guest("sbi.version", "riscv64: the kernel found SBI v0.2 or later (the extension interface)", "RISC-V BRS: the OS runs on the SBI (MUST)"),
    guest("sbi.extensions", "riscv64: the SBI offers the TIME, IPI and RFENCE extensions", "RISC-V BRS: SBI extensions the OS needs (MUST)"),
    guest("timer.riscv", "riscv64: the RISC-V timer (SBI TIME / Sstc) is the clocksource", "RISC-V BRS: timer (MUST)"),
    guest("uart.16550-console", "riscv64: the console UART is bound to the 8250/16550 driver", "RISC-V BRS: a 16550-compatible console UART (MUST)"),
    guest("irq.controller", "riscv64: the interrupt controller is the one requested (the PLIC, or AIA's APLIC and IMSIC)", "the variant is what it claims"),
    guest("acpi.riscv-tables", "riscv64: the RHCT is present and the MADT lists a RINTC per vCPU", "RISC-V BRS ACPI: RHCT and MADT RINTC (MUST)"),
    guest("cpus.online", "every vCPU came online", "VMSS fw.psci: secondary cores boot (MUST)"),
    guest("pci.host-bridge", "PCI transport: a PCIe host bridge is enumerated", "VMSS hw.enumerable (MUST)"),
    guest("virtio.bound", "every virtio device is bound to a driver", "the image's kernel drives the platform's devices"),
    guest("virtio.transport", "virtio devices sit on the transport requested (PCI or MMIO)", "the variant is what it claims"),
    guest("kernel.log-clean", "the kernel log has no oops, BUG or WARNING", "a conforming platform raises no kernel errors"),
    guest("pci.root-port-hotplug", "an empty PCIe root port advertises hotplug in config space", "VMSS hw.hotplug (SHOULD, strongly)"),
    host("pci.hotplug-request", "the host's QMP device_add of a virtio disk succeeded", "VMSS hw.hotplug (SHOULD, strongly)"),
    guest("pci.hotplug-disk", "a disk hotplugged into the root port appears in the guest", "VMSS hw.hotplug (SHOULD, strongly)"),
];

/// The catalog entry for `id`.
pub fn lookup(id: &str) -> Option<&'static CheckInfo> {
    CHECKS.iter().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        for (i, c) in CHECKS.iter().enumerate() {
            assert!(
                CHECKS[..i].iter().all(|o| o.id != c.id),
                "{} listed twice",
                c.id
            );
            let (area, name) = c.id.split_once('.').expect("area.name");
            assert!(!area.is_empty() && !name.is_empty(), "{}", c.id);
            assert!(c
                .id
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ".-".contains(ch)));
            assert!(!c.what.is_empty() && !c.clause.is_empty(), "{}", c.id);
        }
        assert_eq!(lookup("gic.version").unwrap().area(), "gic");
        assert_eq!(lookup("uefi.nvram-on-host").unwrap().side, Side::Host);
        assert!(lookup("nope.nope").is_none());
    }

    /// Every id the agent and the host report is in the catalog, and
    /// every catalog entry is reported by someone.
    #[test]
    fn the_catalog_matches_what_is_reported() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut sources = String::new();
        let mut dirs = vec![root.join("src/bin"), root.join("../runtime/src")];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    sources.push_str(&std::fs::read_to_string(&p).unwrap());
                }
            }
        }
        let mut reported = Vec::new();
        for marker in ["pass_if(", ".check(", "id: \""] {
            let mut rest = sources.as_str();
            while let Some(at) = rest.find(marker) {
                rest = &rest[at + marker.len()..];
                let after = rest.trim_start().trim_start_matches('"');
                let id: String = after
                    .chars()
                    .take_while(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(*c)
                    })
                    .collect();
                if id.contains('.') {
                    reported.push(id);
                }
            }
        }
        assert!(
            reported.len() >= 30,
            "found the checks ({})",
            reported.len()
        );
        for id in &reported {
            assert!(
                lookup(id).is_some(),
                "{id} is reported but not in the catalog"
            );
        }
        for c in CHECKS {
            assert!(
                reported.iter().any(|r| r == c.id),
                "{} is in the catalog but nothing reports it",
                c.id
            );
        }
    }
}
