//! `bootproof-agent`: runs as `/init` of the initramfs bootproof builds
//! (agent mode: mounts the pseudo filesystems and loads the modules it was
//! given) or, with `--full`, from the image's own init after a normal boot
//! (full mode: the system is up; it touches nothing the image set up).
//! Runs the runtime checks, reports each as a framed record, and powers
//! the guest off. Everything it reads comes from the guest kernel's
//! own interfaces (`/sys`, `/proc`, `/dev/kmsg`).
#![forbid(unsafe_code)]

use bootproof_agent::{
    binary_env_var, frame, AgentConfig, Record, RunSpec, Status, BINARIES_DIR, BINARIES_IN_ROOT,
    CHROOT_EXEC_ARG, CONFIG_PATH, FULL_MODE_ARG, MAX_OUTPUT, MODULES_LIST, NONCE_PATH,
    PERSIST_VARIABLE, PORT_NAME, PROTOCOL, VENDOR_GUID,
};
use std::io::Write;
use std::path::Path;

struct Reporter {
    nonce: String,
    passed: u32,
    failed: u32,
    port: Option<std::fs::File>,
    /// Full mode: records go to `/dev/console` (stdout belongs to whoever
    /// started the agent, e.g. cloud-init's log).
    console: Option<std::fs::File>,
}

/// The device of the virtio-serial port named [`PORT_NAME`], if present.
fn find_port() -> Option<std::fs::File> {
    for p in list("/sys/class/virtio-ports") {
        if read(&format!("/sys/class/virtio-ports/{p}/name")).is_some_and(|n| n.trim() == PORT_NAME)
        {
            return std::fs::OpenOptions::new()
                .write(true)
                .open(format!("/dev/{p}"))
                .ok();
        }
    }
    None
}

impl Reporter {
    fn send(&mut self, r: &Record) {
        let line = frame(&self.nonce, r);
        if let Some(console) = &mut self.console {
            let _ = console.write_all(line.as_bytes());
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
        if let Some(port) = &mut self.port {
            let _ = port.write_all(line.as_bytes());
        }
    }

    fn check(&mut self, id: &str, status: Status, evidence: impl Into<String>) {
        match status {
            Status::Pass => self.passed += 1,
            Status::Fail => self.failed += 1,
            Status::Skip => {}
        }
        self.send(&Record::Check {
            id: id.into(),
            status,
            evidence: evidence.into(),
        });
    }

    fn pass_if(&mut self, id: &str, ok: bool, evidence: impl Into<String>) {
        self.check(id, if ok { Status::Pass } else { Status::Fail }, evidence);
    }
}

fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

fn list(p: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(target_os = "linux")]
fn mount(src: &str, target: &str, fstype: &str) -> Result<(), String> {
    let _ = std::fs::create_dir_all(target);
    rustix::mount::mount(
        src,
        target,
        fstype,
        rustix::mount::MountFlags::empty(),
        None,
    )
    .map_err(|e| format!("mount {fstype} on {target}: {e}"))
}

#[cfg(target_os = "linux")]
fn load_module(path: &str) -> Result<(), String> {
    let image = std::fs::read(path).map_err(|e| e.to_string())?;
    match rustix::system::init_module(&image, c"") {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(target_os = "linux")]
fn power_off() -> ! {
    rustix::fs::sync();
    let _ = rustix::system::reboot(rustix::system::RebootCommand::PowerOff);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

/// The kernel log so far (`/dev/kmsg`, read without blocking).
#[cfg(target_os = "linux")]
fn kernel_log() -> Vec<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open("/dev/kmsg")
    else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 8192];
    // Each read returns one record: "prio,seq,time,flags;message".
    while lines.len() < 20_000 {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let rec = String::from_utf8_lossy(&buf[..n]);
                if let Some((_, msg)) = rec.split_once(';') {
                    lines.push(msg.lines().next().unwrap_or("").to_string());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => continue, // overwritten records
            Err(_) => break,
        }
    }
    lines
}

/// An ACPI table's signature, length field and checksum validity.
fn acpi_table(data: &[u8]) -> Option<(String, u32, bool)> {
    let sig = String::from_utf8_lossy(data.get(..4)?).into_owned();
    let len = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?);
    let sum = data.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    Some((sig, len, sum == 0))
}

fn acpi_checks(r: &mut Reporter, cfg: &AgentConfig) {
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
    if cfg.arch == "aarch64" {
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
fn spcr_check(r: &mut Reporter, dir: &str) {
    let spcr = std::fs::read(format!("{dir}/SPCR")).ok();
    let described = spcr.as_deref().and_then(|t| {
        let space = *t.get(40)?;
        let addr = u64::from_le_bytes(t.get(44..52)?.try_into().ok()?);
        Some((space, addr))
    });
    let used = read("/sys/class/tty/ttyAMA0/iomem_base").and_then(|s| {
        u64::from_str_radix(
            s.trim().trim_start_matches("0x").trim_start_matches("0X"),
            16,
        )
        .ok()
    });
    let console = read("/proc/consoles")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("ttyAMA0"));
    match (described, used) {
        (Some((0, addr)), Some(base)) => r.pass_if(
            "acpi.spcr-console",
            addr == base && console,
            format!(
                "SPCR: MMIO {addr:#x}; ttyAMA0 at {base:#x}{}",
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
                "SPCR: address space {space} at {addr:#x}; ttyAMA0 {}",
                used.map_or("absent".to_string(), |b| format!("at {b:#x}"))
            ),
        ),
        (None, _) => r.check("acpi.spcr-console", Status::Fail, "no readable SPCR"),
    }
}

fn dt_checks(r: &mut Reporter, cfg: &AgentConfig) {
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

/// The persistence check's two halves: write a value on the first boot,
/// read it back on the second (same NVRAM, another platform variant).
fn persistence_checks(r: &mut Reporter, cfg: &AgentConfig) {
    let var = format!("/sys/firmware/efi/efivars/{PERSIST_VARIABLE}-{VENDOR_GUID}");
    if let Some(value) = &cfg.persist_write {
        // Attributes NV | BS | RT, then the value.
        let mut payload = 7u32.to_le_bytes().to_vec();
        payload.extend_from_slice(value.as_bytes());
        let res = std::fs::write(&var, &payload).map_err(|e| e.to_string());
        r.pass_if(
            "uefi.variable-stored",
            res.is_ok(),
            match res {
                Ok(()) => format!("wrote {PERSIST_VARIABLE} = {value:?} (non-volatile)"),
                Err(e) => format!("{var}: {e}"),
            },
        );
    }
    if let Some(want) = &cfg.persist_expect {
        let got = std::fs::read(&var);
        let value = got
            .as_ref()
            .ok()
            .map(|b| String::from_utf8_lossy(b.get(4..).unwrap_or_default()).into_owned());
        r.pass_if(
            "uefi.variables-persist",
            value.as_deref() == Some(want.as_str()),
            match (&got, &value) {
                (Ok(_), Some(v)) => {
                    format!("{PERSIST_VARIABLE} after reboot = {v:?}, written {want:?}")
                }
                (Err(e), _) => format!("{PERSIST_VARIABLE} is gone after reboot: {e}"),
                _ => "unreadable".into(),
            },
        );
    }
}

#[cfg(target_os = "linux")]
fn efi_checks(r: &mut Reporter, arch: &str, log: &[String]) {
    let efi = Path::new("/sys/firmware/efi").is_dir();
    r.pass_if(
        "uefi.booted",
        efi,
        if efi {
            "/sys/firmware/efi exists"
        } else {
            "no /sys/firmware/efi: not booted through UEFI"
        },
    );
    if !efi {
        return;
    }
    let vars = "/sys/firmware/efi/efivars";
    let mounted = mount("efivarfs", vars, "efivarfs");
    let names = list(vars);
    r.pass_if(
        "uefi.runtime-services",
        !names.is_empty(),
        match &mounted {
            Ok(()) => format!("efivarfs lists {} variables", names.len()),
            Err(e) => e.clone(),
        },
    );
    // Write a variable (non-volatile, boot and runtime access) and read it back.
    // bootproof's own vendor GUID: firmware refuses unknown names under
    // the EFI global-variable GUID.
    // A name of this boot's own: an existing efivarfs file is immutable, and
    // a kept NVRAM still holds earlier boots' probes.
    let tag: String = r.nonce.chars().take(8).collect();
    let var = format!("{vars}/BootproofProbe{tag}-{VENDOR_GUID}");
    let payload = [7u8, 0, 0, 0, b'b', b'p'];
    let wrote = std::fs::write(&var, payload).map_err(|e| e.to_string());
    let back = std::fs::read(&var).map_err(|e| e.to_string());
    r.pass_if(
        "uefi.variables-writable",
        wrote.is_ok() && back.as_deref().ok() == Some(&payload[..]),
        match (&wrote, &back) {
            (Ok(()), Ok(b)) => format!("wrote and read back {} bytes", b.len()),
            (Err(e), _) | (_, Err(e)) => format!("{var}: {e}"),
        },
    );
    // Every RTC the kernel registered: (device, driver name, seconds).
    let rtcs: Vec<(String, String, u64)> = list("/sys/class/rtc")
        .into_iter()
        .map(|d| {
            let name = read(&format!("/sys/class/rtc/{d}/name")).unwrap_or_default();
            let since = read(&format!("/sys/class/rtc/{d}/since_epoch"))
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            (d, name.trim().to_string(), since)
        })
        .collect();
    let sane = |since: u64| since > 1_577_836_800; // 2020-01-01
    let seen = if rtcs.is_empty() {
        "no RTC registered".to_string()
    } else {
        rtcs.iter()
            .map(|(d, n, s)| format!("{d}: {n} reads {s} s since the epoch"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    r.pass_if(
        "rtc.readable",
        rtcs.first().is_some_and(|(_, _, s)| sane(*s)),
        seen.clone(),
    );
    if arch == "aarch64" {
        // The VM spec wants the time from UEFI's runtime GetTime() (the
        // rtc-efi driver), not only a platform RTC such as PL031.
        r.pass_if(
            "rtc.efi",
            rtcs.iter()
                .any(|(_, n, s)| n.starts_with("rtc-efi") && sane(*s)),
            seen,
        );
    }
    let _ = log;
}

fn arm_checks(r: &mut Reporter, cfg: &AgentConfig, log: &[String]) {
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
    let driver = std::fs::read_link("/sys/class/tty/ttyAMA0/device/driver")
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let is_console = consoles.lines().any(|l| l.starts_with("ttyAMA0"));
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

fn common_checks(r: &mut Reporter, cfg: &AgentConfig, log: &[String]) {
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
    let want_pci = cfg.transport != "mmio";
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
fn hotplug_capable(config: &[u8]) -> bool {
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

fn hotplug_checks(r: &mut Reporter, cfg: &AgentConfig) {
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
    let mut new = Vec::new();
    while start.elapsed() < std::time::Duration::from_secs(60) {
        new = list("/sys/block")
            .into_iter()
            .filter(|b| b.starts_with("vd") && !before.contains(b))
            .collect();
        if !new.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
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

/// The child side of [`CHROOT_EXEC_ARG`]: `ROOT -- ARGV…`. chroot(2) into
/// ROOT, then exec ARGV with the inherited environment (PATH is looked up
/// inside the root). Never returns; exit 127 when the command cannot run.
#[cfg(target_os = "linux")]
fn chroot_exec(args: &[String]) -> ! {
    use std::os::unix::process::CommandExt;
    let fail = |what: String| -> ! {
        eprintln!("bootproof-agent: {what}");
        std::process::exit(127)
    };
    let (Some(root), Some("--")) = (args.first(), args.get(1).map(String::as_str)) else {
        fail("usage: --chroot-exec ROOT -- ARGV...".into())
    };
    let argv = &args[2..];
    if argv.is_empty() {
        fail("no command".into());
    }
    if let Err(e) = std::os::unix::fs::chroot(root) {
        fail(format!("chroot {root}: {e}"));
    }
    if let Err(e) = std::env::set_current_dir("/") {
        fail(format!("chdir /: {e}"));
    }
    let err = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
    fail(format!("{}: {err}", argv[0]))
}

/// Keeps the last `MAX_OUTPUT` bytes of a stream and counts them all.
#[cfg(target_os = "linux")]
fn tail_of(
    mut from: impl std::io::Read + Send + 'static,
) -> std::thread::JoinHandle<(Vec<u8>, u64)> {
    std::thread::spawn(move || {
        let mut tail: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
        let mut total = 0u64;
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
            tail.extend(&buf[..n]);
            let excess = tail.len().saturating_sub(MAX_OUTPUT);
            tail.drain(..excess);
        }
        (tail.into(), total)
    })
}

/// Waits up to `secs` for `/dev/<name>` (virtio-blk probes asynchronously).
fn wait_for_device(name: &str, secs: u64) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(secs) {
        if Path::new(&format!("/dev/{name}")).exists() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// Sets up the image's root under `/newroot`: read-only at `/image`, a
/// tmpfs overlay on top (the image stays untouched even inside the VM's
/// own disk overlay), the pseudo filesystems, the shipped binaries.
/// Returns how, for the report.
#[cfg(target_os = "linux")]
fn set_up_root(spec: &RunSpec) -> Result<String, String> {
    use rustix::mount::MountFlags;
    let dev = format!("/dev/{}", spec.root_device);
    if !wait_for_device(&spec.root_device, 15) {
        return Err(format!(
            "{dev} did not appear (is the disk driver in the image's modules?)"
        ));
    }
    let _ = std::fs::create_dir_all("/image");
    rustix::mount::mount(
        dev.as_str(),
        "/image",
        spec.root_fstype.as_str(),
        MountFlags::RDONLY,
        None,
    )
    .map_err(|e| {
        // The kernel's own reason is in its log (e.g. "EXT4-fs (vda2):
        // Cannot load crc32c driver" behind an ENOENT).
        let log = kernel_log();
        let last: Vec<&String> = log.iter().rev().take(3).rev().collect();
        format!(
            "mount {dev} ({}) read-only: {e}; kernel log: {last:?}",
            spec.root_fstype
        )
    })?;
    mount("tmpfs", "/overlay", "tmpfs")?;
    for d in ["/overlay/upper", "/overlay/work", "/newroot"] {
        std::fs::create_dir_all(d).map_err(|e| format!("{d}: {e}"))?;
    }
    let how = match rustix::mount::mount(
        "overlay",
        "/newroot",
        "overlay",
        MountFlags::empty(),
        Some(c"lowerdir=/image,upperdir=/overlay/upper,workdir=/overlay/work"),
    ) {
        Ok(()) => format!(
            "{dev} ({}) read-only under a tmpfs overlay",
            spec.root_fstype
        ),
        Err(e) => {
            return Err(format!(
                "overlayfs on {dev}: {e} (is the overlay module in the image?)"
            ))
        }
    };
    for (src, target, fstype) in [
        ("proc", "/newroot/proc", "proc"),
        ("sysfs", "/newroot/sys", "sysfs"),
        ("devtmpfs", "/newroot/dev", "devtmpfs"),
        ("tmpfs", "/newroot/run", "tmpfs"),
        ("tmpfs", "/newroot/tmp", "tmpfs"),
    ] {
        mount(src, target, fstype)?;
    }
    install_binaries("/newroot", spec)?;
    Ok(how)
}

/// Copies the shipped binaries from [`BINARIES_DIR`] to
/// [`BINARIES_IN_ROOT`] under `root` (`/newroot`, or `""` for the running
/// system), executable.
#[cfg(target_os = "linux")]
fn install_binaries(root: &str, spec: &RunSpec) -> Result<(), String> {
    let bin_dir = format!("{root}{BINARIES_IN_ROOT}");
    std::fs::create_dir_all(&bin_dir).map_err(|e| format!("{bin_dir}: {e}"))?;
    for name in &spec.binaries {
        let to = format!("{bin_dir}/{name}");
        std::fs::copy(format!("{BINARIES_DIR}/{name}"), &to).map_err(|e| format!("{to}: {e}"))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{to}: {e}"))?;
    }
    Ok(())
}

/// `bootproof run`: the user's command, as root, in the image's root.
#[cfg(target_os = "linux")]
fn run_command(spec: &RunSpec, kernel: &str, arch: &str) -> Record {
    use std::os::unix::process::ExitStatusExt;
    let failed = |root: String, error: String| Record::Command {
        exit_code: None,
        signal: None,
        timed_out: false,
        stdout: String::new(),
        stderr: String::new(),
        stdout_bytes: 0,
        stderr_bytes: 0,
        secs: 0.0,
        root,
        error: Some(error),
    };
    // No root device: full mode, the image's own system is up; the command
    // runs in it as it is (chroot to / is a no-op).
    let (root, root_dir) = if spec.root_device.is_empty() {
        match install_binaries("", spec) {
            Ok(()) => ("the booted system (full mode)".to_string(), "/"),
            Err(e) => return failed("the booted system (full mode)".into(), e),
        }
    } else {
        match set_up_root(spec) {
            Ok(how) => (how, "/newroot"),
            Err(e) => return failed("not set up".into(), e),
        }
    };
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg(CHROOT_EXEC_ARG)
        .arg(root_dir)
        .arg("--")
        .args(&spec.argv)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", "/root")
        .env("TERM", "dumb")
        .env("BOOTPROOF_KERNEL", kernel)
        .env("BOOTPROOF_ARCH", arch)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for name in &spec.binaries {
        cmd.env(binary_env_var(name), format!("{BINARIES_IN_ROOT}/{name}"));
    }
    let start = std::time::Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(root, format!("starting the command: {e}")),
    };
    let out = child.stdout.take().map(tail_of);
    let err = child.stderr.take().map(tail_of);
    let limit = std::time::Duration::from_secs(spec.timeout_secs.max(1));
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() >= limit => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let join = |h: Option<std::thread::JoinHandle<(Vec<u8>, u64)>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    let (stdout, stdout_bytes) = join(out);
    let (stderr, stderr_bytes) = join(err);
    Record::Command {
        exit_code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        timed_out,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        stdout_bytes,
        stderr_bytes,
        secs,
        root,
        error: None,
    }
}

/// Full mode: evidence that the image's own userspace booted (PID 1 is
/// the image's init, the root is the image's disk).
fn image_init_check(r: &mut Reporter) {
    let init = read("/proc/1/comm").unwrap_or_default();
    let root = read("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&"/") && f.first() != Some(&"rootfs"))
                .then(|| format!("{} ({})", f[0], f.get(2).unwrap_or(&"?")))
        })
        .unwrap_or_else(|| "none".into());
    let pid1_is_us = std::process::id() == 1;
    r.pass_if(
        "boot.image-init",
        !pid1_is_us && !init.trim().is_empty(),
        format!("PID 1 is {}; / is {root}", init.trim()),
    );
}

#[cfg(target_os = "linux")]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(CHROOT_EXEC_ARG) {
        chroot_exec(&args[2..]);
    }
    let full = std::env::args().any(|a| a == FULL_MODE_ARG);
    if !full {
        let _ = mount("proc", "/proc", "proc");
        let _ = mount("sysfs", "/sys", "sysfs");
        let _ = mount("devtmpfs", "/dev", "devtmpfs");
    }
    let nonce = read(NONCE_PATH).unwrap_or_default().trim().to_string();
    let cfg: AgentConfig = read(CONFIG_PATH)
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut r = Reporter {
        nonce,
        passed: 0,
        failed: 0,
        port: None,
        console: full
            .then(|| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/console")
                    .ok()
            })
            .flatten(),
    };
    let uname = rustix::system::uname();
    r.send(&Record::Hello {
        v: PROTOCOL,
        agent: env!("CARGO_PKG_VERSION").into(),
        kernel: uname.release().to_string_lossy().into_owned(),
        machine: uname.machine().to_string_lossy().into_owned(),
    });
    let modules = if full { None } else { read(MODULES_LIST) };
    for path in modules
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
    {
        let error = load_module(path).err();
        r.send(&Record::Module {
            path: path.into(),
            error,
        });
    }
    // Let drivers bind to the devices their modules just registered (full
    // mode: udev loads them; give it a few seconds if it is still busy).
    std::thread::sleep(std::time::Duration::from_millis(300));
    r.port = find_port();
    let waited = std::time::Instant::now();
    while full && r.port.is_none() && waited.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(200));
        r.port = find_port();
    }
    r.check(
        "agent.virtio-serial",
        match (r.port.is_some(), cfg.virtio_serial) {
            (true, _) => Status::Pass,
            (false, true) => Status::Fail,
            (false, false) => Status::Skip,
        },
        if r.port.is_some() {
            format!("records also on virtio-serial port {PORT_NAME}")
        } else {
            "no virtio-serial port: records on the console only".into()
        },
    );
    if let Some(spec) = &cfg.run {
        let record = run_command(spec, &uname.release().to_string_lossy(), &cfg.arch);
        r.send(&record);
        r.send(&Record::Done {
            passed: r.passed,
            failed: r.failed,
        });
        power_off();
    }
    if full {
        image_init_check(&mut r);
    }
    let log = kernel_log();
    efi_checks(&mut r, &cfg.arch, &log);
    if cfg.persist_write.is_some() || cfg.persist_expect.is_some() {
        persistence_checks(&mut r, &cfg);
    }
    acpi_checks(&mut r, &cfg);
    if cfg.arch == "aarch64" {
        dt_checks(&mut r, &cfg);
        arm_checks(&mut r, &cfg, &log);
    }
    common_checks(&mut r, &cfg, &log);
    if cfg.transport != "mmio" {
        hotplug_checks(&mut r, &cfg);
    }
    r.send(&Record::Done {
        passed: r.passed,
        failed: r.failed,
    });
    power_off();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("bootproof-agent runs inside a Linux guest");
    std::process::exit(2);
}
