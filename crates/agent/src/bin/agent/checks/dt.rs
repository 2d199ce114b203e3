//! The device tree a `virt` machine offers when ACPI is off (aarch64,
//! riscv64): real, not a stub, with CPUs, memory and an interrupt
//! controller (aarch64: the GIC at the top level; riscv64: the PLIC or
//! APLIC under `/soc`).

use crate::report::Reporter;
use crate::sys::list;
use bootproof_agent::{AgentConfig, Status};

/// Node-name prefixes of interrupt controllers.
const CONTROLLERS: [&str; 5] = ["intc", "interrupt-controller", "plic", "aplic", "imsic"];

pub(crate) fn dt_checks(r: &mut Reporter, cfg: &AgentConfig) {
    let base = "/sys/firmware/devicetree/base";
    let nodes = list(base);
    let controller = |names: &[String]| {
        names
            .iter()
            .any(|n| CONTROLLERS.iter().any(|c| n.starts_with(c)))
    };
    let real = nodes.iter().any(|n| n == "cpus")
        && nodes.iter().any(|n| n.starts_with("memory"))
        && (controller(&nodes) || controller(&list(&format!("{base}/soc"))));
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
