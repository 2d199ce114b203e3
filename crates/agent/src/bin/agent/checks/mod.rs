//! The runtime checks, one module per area; their ids, what they prove
//! and the requirement behind each are in `bootproof_agent::catalog`.

pub(crate) mod acpi;
pub(crate) mod arm;
pub(crate) mod devices;
pub(crate) mod dt;
pub(crate) mod firmware;
pub(crate) mod riscv;

use crate::sys::{read, uart_driver};

/// The first kernel-log line with `marker` (`PSCIv`, `SBI specification v`)
/// and the `major.minor` version right after it.
pub(crate) fn logged_version(log: &[String], marker: &str) -> (Option<String>, Option<(u32, u32)>) {
    let line = log.iter().find(|l| l.contains(marker)).cloned();
    let version = line
        .as_deref()
        .and_then(|l| l.split(marker).nth(1))
        .and_then(|v| {
            let mut it = v.split(|c: char| !c.is_ascii_digit());
            Some((
                it.next()?.parse::<u32>().ok()?,
                it.next()?.parse::<u32>().ok()?,
            ))
        });
    (line.map(|l| l.trim().to_string()), version)
}

/// Whether the console UART `uart` is bound to one of `drivers` and is a
/// console in /proc/consoles, with the evidence.
pub(crate) fn uart_console(uart: &str, drivers: &[&str]) -> (bool, String) {
    let consoles = read("/proc/consoles").unwrap_or_default();
    let driver = uart_driver(uart);
    let is_console = consoles.lines().any(|l| l.starts_with(uart));
    (
        drivers.contains(&driver.as_str()) && is_console,
        format!(
            "{uart} driver: {}; consoles: {}",
            if driver.is_empty() { "none" } else { &driver },
            consoles
                .lines()
                .map(|l| l.split_whitespace().next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    )
}
