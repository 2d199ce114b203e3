//! Devices every platform has: CPUs online, the PCI host bridge, virtio
//! binding and transport, a clean kernel log, PCIe hotplug.

use crate::report::Reporter;
use crate::sys::{list, poll, read};
use bootproof_agent::{AgentConfig, Record, Transport};
use std::path::Path;

pub(crate) fn common_checks(r: &mut Reporter, cfg: &AgentConfig, log: &[String]) {
    let online = read("/sys/devices/system/cpu/online").unwrap_or_default();
    let count: u32 = online
        .trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|part| match part.split_once('-') {
            Some((a, b)) => {
                b.parse::<u32>()
                    .unwrap_or(0)
                    .saturating_sub(a.parse().unwrap_or(0))
                    + 1
            }
            None => 1,
        })
        .sum();
    r.pass_if(
        "cpus.online",
        count == cfg.cpus,
        format!("{count} online ({}), {} requested", online.trim(), cfg.cpus),
    );
    // PCI: a host bridge, and virtio devices where the transport says so.
    let pci = list("/sys/bus/pci/devices");
    let class = |d: &str| read(&format!("/sys/bus/pci/devices/{d}/class")).unwrap_or_default();
    let vendor = |d: &str| read(&format!("/sys/bus/pci/devices/{d}/vendor")).unwrap_or_default();
    let bridges = pci
        .iter()
        .filter(|d| class(d).starts_with("0x0600"))
        .count();
    r.pass_if(
        "pci.host-bridge",
        bridges > 0,
        format!("{} PCI functions, {bridges} host bridge(s)", pci.len()),
    );
    let virtio_pci = pci.iter().filter(|d| vendor(d).trim() == "0x1af4").count();
    let virtio = list("/sys/bus/virtio/devices");
    let unbound: Vec<&String> = virtio
        .iter()
        .filter(|d| !Path::new(&format!("/sys/bus/virtio/devices/{d}/driver")).exists())
        .collect();
    r.pass_if(
        "virtio.bound",
        !virtio.is_empty() && unbound.is_empty(),
        format!("{} virtio devices, unbound: {:?}", virtio.len(), unbound),
    );
    let want_pci = cfg.transport == Transport::Pci;
    r.pass_if(
        "virtio.transport",
        if want_pci {
            virtio_pci > 0
        } else {
            virtio_pci == 0
        },
        format!(
            "{virtio_pci} virtio PCI functions, transport {} requested",
            cfg.transport
        ),
    );
    let bad: Vec<&String> = log
        .iter()
        .filter(|l| {
            l.contains("Oops")
                || l.contains("BUG:")
                || l.starts_with("WARNING:")
                || l.contains("] WARNING:")
                || l.contains("Call trace:")
        })
        .take(5)
        .collect();
    r.pass_if(
        "kernel.log-clean",
        bad.is_empty(),
        if bad.is_empty() {
            format!("{} kernel log lines, no oops/BUG/WARNING", log.len())
        } else {
            format!("{bad:?}")
        },
    );
}

/// Whether a PCI function's config space shows a hotplug-capable PCIe
/// slot: PCI Express capability (id 0x10) with Slot Implemented (flags bit
/// 8) and Hot-Plug Capable in Slot Capabilities (bit 6).
pub(crate) fn hotplug_capable(config: &[u8]) -> bool {
    let mut at = usize::from(*config.get(0x34).unwrap_or(&0)) & !3;
    for _ in 0..48 {
        if at < 0x40 || at + 0x18 > config.len() {
            return false;
        }
        if config[at] == 0x10 {
            let flags = u16::from_le_bytes([config[at + 2], config[at + 3]]);
            let slot = u32::from_le_bytes([
                config[at + 0x14],
                config[at + 0x15],
                config[at + 0x16],
                config[at + 0x17],
            ]);
            return flags & (1 << 8) != 0 && slot & (1 << 6) != 0;
        }
        at = usize::from(config[at + 1]) & !3;
    }
    false
}

pub(crate) fn hotplug_checks(r: &mut Reporter, cfg: &AgentConfig) {
    let ports: Vec<String> = list("/sys/bus/pci/devices")
        .into_iter()
        .filter(|d| {
            read(&format!("/sys/bus/pci/devices/{d}/class"))
                .unwrap_or_default()
                .starts_with("0x0604")
        })
        .collect();
    let capable: Vec<&String> = ports
        .iter()
        .filter(|d| {
            std::fs::read(format!("/sys/bus/pci/devices/{d}/config"))
                .is_ok_and(|c| hotplug_capable(&c))
        })
        .collect();
    r.pass_if(
        "pci.root-port-hotplug",
        !capable.is_empty(),
        format!(
            "{} PCI bridges/root ports, hotplug-capable: {capable:?}",
            ports.len()
        ),
    );
    if !cfg.hotplug {
        return;
    }
    let before = list("/sys/block");
    r.send(&Record::Waiting {
        what: "hotplug".into(),
    });
    let start = std::time::Instant::now();
    let new: Vec<String> = poll(60, 100, || {
        let new: Vec<String> = list("/sys/block")
            .into_iter()
            .filter(|b| b.starts_with("vd") && !before.contains(b))
            .collect();
        (!new.is_empty()).then_some(new)
    })
    .unwrap_or_default();
    r.pass_if(
        "pci.hotplug-disk",
        !new.is_empty(),
        if new.is_empty() {
            "no new disk appeared within 60 s of asking for one".to_string()
        } else {
            format!(
                "{} appeared {:.1} s after asking",
                new.join(" "),
                start.elapsed().as_secs_f64()
            )
        },
    );
}
