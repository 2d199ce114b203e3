//! ACPI: presence per variant, lengths and checksums, the SBBR table set,
//! a hardware-reduced FADT, SPCR naming the console UART, MCFG and IORT.

use crate::report::Reporter;
use crate::sys::{list, read};
use bootproof_agent::{AgentConfig, Arch, Status};
use std::path::Path;

/// An ACPI table's signature, length field and checksum validity.
pub(crate) fn acpi_table(data: &[u8]) -> Option<(String, u32, bool)> {
    let sig = String::from_utf8_lossy(data.get(..4)?).into_owned();
    let len = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?);
    let sum = data.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    Some((sig, len, sum == 0))
}

pub(crate) fn acpi_checks(r: &mut Reporter, cfg: &AgentConfig) {
    let dir = "/sys/firmware/acpi/tables";
    let present = Path::new(dir).is_dir();
    if !cfg.acpi {
        r.pass_if(
            "acpi.absent-when-off",
            !present,
            if present {
                "ACPI tables present although acpi=off was requested"
            } else {
                "no ACPI tables (acpi=off)"
            },
        );
        return;
    }
    r.pass_if(
        "acpi.present",
        present,
        if present {
            format!("{dir}: {}", list(dir).join(" "))
        } else {
            "no ACPI tables".into()
        },
    );
    if !present {
        return;
    }
    let mut bad = Vec::new();
    let mut sigs = Vec::new();
    for name in list(dir) {
        let p = format!("{dir}/{name}");
        if !Path::new(&p).is_file() {
            continue;
        }
        let Ok(data) = std::fs::read(&p) else {
            continue;
        };
        match acpi_table(&data) {
            Some((sig, len, sum_ok)) => {
                // The FACS has no checksum field (ACPI 6.5 §5.2.10).
                let sum_ok = sum_ok || sig == "FACS";
                sigs.push(sig.clone());
                if len as usize != data.len() || !sum_ok {
                    bad.push(format!(
                        "{name}: length {len} (file {}), checksum {}",
                        data.len(),
                        if sum_ok { "ok" } else { "bad" }
                    ));
                }
            }
            None => bad.push(format!("{name}: too short")),
        }
    }
    r.pass_if(
        "acpi.checksums",
        bad.is_empty(),
        if bad.is_empty() {
            format!("{} tables, lengths and checksums valid", sigs.len())
        } else {
            bad.join("; ")
        },
    );
    if cfg.arch == Arch::Aarch64 {
        let missing: Vec<&str> = ["FACP", "APIC", "GTDT", "DSDT", "SPCR", "DBG2"]
            .into_iter()
            .filter(|s| !sigs.iter().any(|x| x == s))
            .collect();
        r.pass_if(
            "acpi.sbbr-tables",
            missing.is_empty(),
            if missing.is_empty() {
                format!("present: {}", sigs.join(" "))
            } else {
                format!(
                    "missing: {} (present: {})",
                    missing.join(" "),
                    sigs.join(" ")
                )
            },
        );
        // FADT flags (offset 112), bit 20: HW_REDUCED_ACPI.
        let hw_reduced = std::fs::read(format!("{dir}/FACP"))
            .ok()
            .and_then(|f| {
                f.get(112..116)
                    .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
            })
            .map(|flags| flags & (1 << 20) != 0);
        match hw_reduced {
            Some(ok) => r.pass_if(
                "acpi.hw-reduced",
                ok,
                format!("FADT HW_REDUCED_ACPI {}", if ok { "set" } else { "clear" }),
            ),
            None => r.check("acpi.hw-reduced", Status::Fail, "no readable FADT"),
        }
        spcr_check(r, dir);
        // MCFG wherever there is PCI; IORT wherever GICv3 has an ITS
        // (QEMU's virt has one), as the SBBR asks; PPTT is reported.
        let has = |s: &str| sigs.iter().any(|x| x == s);
        let pci = !list("/sys/bus/pci/devices").is_empty();
        let its = read("/proc/interrupts").unwrap_or_default().contains("ITS");
        let mut missing = Vec::new();
        if pci && !has("MCFG") {
            missing.push("MCFG (PCI present)");
        }
        if its && !has("IORT") {
            missing.push("IORT (GICv3 ITS present)");
        }
        r.pass_if(
            "acpi.mcfg-iort",
            missing.is_empty(),
            if missing.is_empty() {
                format!(
                    "MCFG {}, IORT {}, PPTT {} (PCI {}, ITS {})",
                    if has("MCFG") { "present" } else { "absent" },
                    if has("IORT") { "present" } else { "absent" },
                    if has("PPTT") { "present" } else { "absent" },
                    if pci { "present" } else { "absent" },
                    if its { "present" } else { "absent" }
                )
            } else {
                format!("missing: {}", missing.join(", "))
            },
        );
    }
}

/// SPCR (ACPI 6.x / Microsoft SPCR spec) must describe the UART the kernel
/// uses as its console: its Generic Address Structure (offset 40: space
/// id, …, address at 44) against ttyAMA0's MMIO base.
pub(crate) fn spcr_check(r: &mut Reporter, dir: &str) {
    let spcr = std::fs::read(format!("{dir}/SPCR")).ok();
    let described = spcr.as_deref().and_then(|t| {
        let space = *t.get(40)?;
        let addr = u64::from_le_bytes(t.get(44..52)?.try_into().ok()?);
        Some((space, addr))
    });
    let uart = Arch::Aarch64.console();
    let used = read(&format!("/sys/class/tty/{uart}/iomem_base")).and_then(|s| {
        u64::from_str_radix(
            s.trim().trim_start_matches("0x").trim_start_matches("0X"),
            16,
        )
        .ok()
    });
    let console = read("/proc/consoles")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with(Arch::Aarch64.console()));
    match (described, used) {
        (Some((0, addr)), Some(base)) => r.pass_if(
            "acpi.spcr-console",
            addr == base && console,
            format!(
                "SPCR: MMIO {addr:#x}; {uart} at {base:#x}{}",
                if console {
                    ", the console"
                } else {
                    ", not the console"
                }
            ),
        ),
        (Some((space, addr)), _) => r.check(
            "acpi.spcr-console",
            Status::Fail,
            format!(
                "SPCR: address space {space} at {addr:#x}; {uart} {}",
                used.map_or("absent".to_string(), |b| format!("at {b:#x}"))
            ),
        ),
        (None, _) => r.check("acpi.spcr-console", Status::Fail, "no readable SPCR"),
    }
}
