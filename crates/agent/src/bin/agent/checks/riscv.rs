//! riscv64 platform: SBI (version and the extensions Linux runs on), the
//! RISC-V timer, the 16550 console UART, and under ACPI the RISC-V tables
//! (RHCT, a MADT with one RINTC per hart).

use crate::report::Reporter;
use crate::sys::read;
use bootproof_agent::{AgentConfig, Arch};

/// SBI extensions Linux needs on a VM: the timer, IPIs and remote fences.
const NEEDED_EXTENSIONS: [&str; 3] = ["TIME", "IPI", "RFENCE"];
/// Console UART drivers on QEMU `virt`: the 8250 core (ACPI, PNP0501) or
/// its device-tree glue.
const UART_DRIVERS: [&str; 3] = ["serial8250", "of_serial", "dw-apb-uart"];
/// MADT entry type of a RISC-V hart's interrupt controller (RINTC).
const MADT_RINTC: u8 = 0x18;
/// MADT entries walked at most.
const MAX_MADT_ENTRIES: usize = 4096;

pub(crate) fn riscv_checks(r: &mut Reporter, cfg: &AgentConfig, log: &[String]) {
    // "SBI specification v2.0 detected"
    let (spec, version) = super::logged_version(log, "SBI specification v");
    r.pass_if(
        "sbi.version",
        version.is_some_and(|v| v >= (0, 2)),
        spec.unwrap_or_else(|| "no SBI version in the kernel log".into()),
    );
    // "SBI TIME extension detected", one line each.
    let detected: Vec<&str> = log
        .iter()
        .filter_map(|l| l.split("SBI ").nth(1)?.strip_suffix(" extension detected"))
        .collect();
    let missing: Vec<&str> = NEEDED_EXTENSIONS
        .into_iter()
        .filter(|e| !detected.contains(e))
        .collect();
    r.pass_if(
        "sbi.extensions",
        missing.is_empty(),
        if missing.is_empty() {
            format!("detected: {}", detected.join(" "))
        } else {
            format!(
                "missing: {} (detected: {})",
                missing.join(" "),
                detected.join(" ")
            )
        },
    );
    let cs = read("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .unwrap_or_default();
    r.pass_if(
        "timer.riscv",
        cs.trim() == "riscv_clocksource",
        format!("clocksource {}", cs.trim()),
    );
    let (ok, evidence) = super::uart_console(Arch::Riscv64.console(), &UART_DRIVERS);
    r.pass_if("uart.16550-console", ok, evidence);
    irq_controller(r, cfg);
    if cfg.acpi {
        acpi_tables(r, cfg);
    }
}

/// The external interrupt controller is the one requested: AIA's APLIC
/// and IMSIC, or the PLIC (the names /proc/interrupts gives their chips).
fn irq_controller(r: &mut Reporter, cfg: &AgentConfig) {
    let interrupts = read("/proc/interrupts").unwrap_or_default();
    let has = |name: &str| {
        interrupts
            .split_whitespace()
            .any(|w| w.to_ascii_uppercase().contains(name))
    };
    let aia = has("APLIC") || has("IMSIC");
    let plic = !aia && has("PLIC");
    let seen = match (aia, plic) {
        (true, _) => "AIA (APLIC/IMSIC)",
        (_, true) => "the PLIC",
        _ => "neither a PLIC nor AIA",
    };
    r.pass_if(
        "irq.controller",
        if cfg.aia { aia } else { plic },
        format!(
            "requested {}, /proc/interrupts shows {seen}",
            if cfg.aia { "AIA" } else { "the PLIC" }
        ),
    );
}

/// RHCT present, and the MADT lists a RINTC for every vCPU.
fn acpi_tables(r: &mut Reporter, cfg: &AgentConfig) {
    let dir = "/sys/firmware/acpi/tables";
    let rhct = std::path::Path::new(&format!("{dir}/RHCT")).is_file();
    let harts = std::fs::read(format!("{dir}/APIC"))
        .ok()
        .map(|madt| rintc_count(&madt));
    let ok = rhct && harts.is_some_and(|n| n >= cfg.cpus as usize);
    r.pass_if(
        "acpi.riscv-tables",
        ok,
        format!(
            "RHCT {}; MADT {} ({} vCPUs)",
            if rhct { "present" } else { "absent" },
            match harts {
                Some(n) => format!("lists {n} RINTC"),
                None => "absent".into(),
            },
            cfg.cpus
        ),
    );
}

/// RINTC entries in a MADT: entries start after the 36-byte header and the
/// local controller address and flags (44 bytes), each `type, length, …`.
fn rintc_count(madt: &[u8]) -> usize {
    let mut at = 44usize;
    let mut n = 0;
    for _ in 0..MAX_MADT_ENTRIES {
        let (Some(&kind), Some(&len)) = (madt.get(at), madt.get(at + 1)) else {
            break;
        };
        if len < 2 {
            break;
        }
        n += usize::from(kind == MADT_RINTC);
        at += usize::from(len);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rintc_entries_are_counted_and_bad_lengths_end_the_walk() {
        let mut madt = vec![0u8; 44];
        madt.extend([MADT_RINTC, 4, 0, 0, 0x11, 3, 0, MADT_RINTC, 3, 0]);
        assert_eq!(rintc_count(&madt), 2);
        madt.extend([MADT_RINTC, 0]);
        assert_eq!(rintc_count(&madt), 2);
        assert_eq!(rintc_count(&[]), 0);
    }
}
