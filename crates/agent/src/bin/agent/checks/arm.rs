//! aarch64 platform: GIC version, arch timer, PSCI and the PL011/SBSA
//! console UART.

use crate::report::Reporter;
use crate::sys::read;
use bootproof_agent::{AgentConfig, Arch};

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
    let (psci, version) = super::logged_version(log, "PSCIv");
    r.pass_if(
        "psci.version",
        version.is_some_and(|v| v >= (0, 2)),
        psci.unwrap_or_else(|| "no PSCI version in the kernel log".into()),
    );
    // The driver bound to the console's UART: `uart-pl011` (device tree or
    // ACPI ARMH0011) or `sbsa-uart`.
    let (ok, evidence) = super::uart_console(Arch::Aarch64.console(), &["uart-pl011", "sbsa-uart"]);
    r.pass_if("uart.pl011-console", ok, evidence);
}
