//! aarch64 platform: the device tree, GIC version, arch timer, PSCI and
//! the PL011/SBSA console UART.

use crate::report::Reporter;
use crate::sys::{list, read};
use bootproof_agent::{AgentConfig, Arch, Status};

pub(crate) fn dt_checks(r: &mut Reporter, cfg: &AgentConfig) {
    let base = "/sys/firmware/devicetree/base";
    let nodes = list(base);
    let real = nodes.iter().any(|n| n == "cpus")
        && nodes.iter().any(|n| n.starts_with("memory"))
        && nodes
            .iter()
            .any(|n| n.starts_with("intc") || n.starts_with("interrupt-controller"));
    let evidence = if nodes.is_empty() {
        "no device tree".to_string()
    } else {
        format!("nodes: {}", nodes.join(" "))
    };
    if cfg.acpi {
        // Booted with ACPI: the kernel uses ACPI; a DT, if any, is informational.
        r.check("dt.present", Status::Skip, format!("ACPI boot; {evidence}"));
    } else {
        r.pass_if("dt.present", real, evidence);
    }
}

pub(crate) fn arm_checks(r: &mut Reporter, cfg: &AgentConfig, log: &[String]) {
    let interrupts = read("/proc/interrupts").unwrap_or_default();
    let gic = if interrupts.contains("GICv3") {
        3
    } else if interrupts.contains("GICv2") || interrupts.contains("GIC-0") {
        2
    } else {
        0
    };
    r.pass_if(
        "gic.version",
        gic == cfg.gic,
        format!(
            "requested GICv{}, /proc/interrupts shows {}",
            cfg.gic,
            if gic == 0 {
                "no GIC".into()
            } else {
                format!("GICv{gic}")
            }
        ),
    );
    let cs = read("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .unwrap_or_default();
    r.pass_if(
        "timer.arch",
        cs.trim() == "arch_sys_counter",
        format!("clocksource {}", cs.trim()),
    );
    let psci = log.iter().find(|l| l.contains("psci: PSCIv")).cloned();
    let ok = psci
        .as_deref()
        .and_then(|l| l.split("PSCIv").nth(1))
        .and_then(|v| {
            let mut it = v.split(|c: char| !c.is_ascii_digit());
            Some((
                it.next()?.parse::<u32>().ok()?,
                it.next()?.parse::<u32>().ok()?,
            ))
        });
    r.pass_if(
        "psci.version",
        ok.is_some_and(|v| v >= (0, 2)),
        psci.unwrap_or_else(|| "no PSCI version in the kernel log".into()),
    );
    let consoles = read("/proc/consoles").unwrap_or_default();
    // The driver bound to the console's UART: `uart-pl011` (device tree or
    // ACPI ARMH0011) or `sbsa-uart`.
    let uart = Arch::Aarch64.console();
    let driver = std::fs::read_link(format!("/sys/class/tty/{uart}/device/driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let is_console = consoles.lines().any(|l| l.starts_with(uart));
    r.pass_if(
        "uart.pl011-console",
        (driver == "uart-pl011" || driver == "sbsa-uart") && is_console,
        format!(
            "ttyAMA0 driver: {}; consoles: {}",
            if driver.is_empty() { "none" } else { &driver },
            consoles
                .lines()
                .map(|l| l.split_whitespace().next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
}
