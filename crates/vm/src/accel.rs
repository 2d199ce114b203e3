//! KVM or TCG: a pure decision table over host arch, guest arch and what a
//! probe of `/dev/kvm` found, plus the TCG settings that make it fast.

use bootproof_platform::Arch;
use serde::{Deserialize, Serialize};

/// What probing `/dev/kvm` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "result", content = "detail", rename_all = "kebab-case")]
pub enum Probe {
    /// No `/dev/kvm`.
    Absent,
    /// It exists but cannot be opened read-write (permissions).
    NoAccess(String),
    /// A tiny real guest failed to start under KVM (e.g. PVM-based hosts:
    /// "failed to set MSR", "KVM internal error").
    GuestFailed(String),
    /// A tiny real guest ran.
    Works,
}

/// The accelerator chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualization.
    Kvm,
    /// QEMU's software emulation (multi-threaded).
    Tcg,
}

impl std::fmt::Display for Accel {
    /// `KVM` / `TCG`, as people write them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
        })
    }
}

/// The decision and its reason, for reports.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Decision {
    /// Chosen accelerator.
    pub accel: Accel,
    /// Why.
    pub reason: String,
}

/// Chooses the accelerator. KVM only when the guest architecture is the
/// host's and the probe showed KVM runs an ordinary guest; otherwise TCG,
/// saying why. `probe` is only consulted when the architectures match.
pub fn decide(
    host_arch: Option<Arch>,
    guest_arch: Arch,
    probe: impl FnOnce() -> Probe,
) -> Decision {
    if host_arch != Some(guest_arch) {
        let host = host_arch.map_or(std::env::consts::ARCH, Arch::name);
        return Decision {
            accel: Accel::Tcg,
            reason: format!(
                "guest is {guest_arch} and the host is {host}: KVM cannot run other architectures"
            ),
        };
    }
    match probe() {
        Probe::Works => Decision {
            accel: Accel::Kvm,
            reason: "/dev/kvm ran a probe guest".into(),
        },
        Probe::Absent => Decision {
            accel: Accel::Tcg,
            reason: "/dev/kvm does not exist".into(),
        },
        Probe::NoAccess(e) => Decision {
            accel: Accel::Tcg,
            reason: format!(
                "/dev/kvm cannot be opened ({e}); add the user to the kvm group to use it"
            ),
        },
        Probe::GuestFailed(e) => Decision {
            accel: Accel::Tcg,
            reason: format!("/dev/kvm exists but a probe guest failed under it ({e})"),
        },
    }
}

/// `-cpu` for a guest under an accelerator. aarch64 always needs one (the
/// default is a 32-bit Cortex-A15); under TCG, `max` with the cheaper
/// pointer-authentication algorithm is several times faster.
pub fn cpu_model(guest_arch: Arch, accel: Accel) -> &'static str {
    guest_arch.cpu_model(accel == Accel::Kvm)
}

/// `-accel` argument: multi-threaded TCG explicitly, so every vCPU gets a host thread.
pub fn accel_arg(accel: Accel) -> &'static str {
    match accel {
        Accel::Kvm => "kvm",
        Accel::Tcg => "tcg,thread=multi",
    }
}

/// How long the probe guest may take to print its banner.
const PROBE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(8);

/// x86_64 UEFI images QEMU can load with `-bios` (code and variables in
/// one file), in the order tried.
const OVMF_BIOS: &[&str] = &["/usr/share/ovmf/OVMF.fd", "/usr/share/qemu/OVMF.fd"];

/// Probes `/dev/kvm` with a real guest: the UEFI firmware boots use, under
/// `-accel kvm -cpu host`, must reach its boot manager and say so on the
/// serial console (x86_64 without a `-bios`-loadable OVMF: SeaBIOS's banner
/// on the debug port). A KVM that only runs specially built guests fails
/// here the way a real boot would, not at the real boot: PVM in some cloud
/// VMs refuses MSRs ("failed to set MSR …"), and some nested KVMs run
/// SeaBIOS but stop OVMF's first FPU setup ("KVM internal error …
/// emulation failure").
pub fn probe_kvm(host_arch: Arch) -> Probe {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let dev = std::path::Path::new("/dev/kvm");
    if !dev.exists() {
        return Probe::Absent;
    }
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(dev) {
        return Probe::NoAccess(e.to_string());
    }
    // Exactly what a KVM boot would use (`-cpu host`), with nothing attached.
    let mut args = vec![
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
    ];
    let (qemu, banner) = match host_arch {
        Arch::X86_64 => match OVMF_BIOS.iter().find(|p| std::path::Path::new(p).is_file()) {
            Some(ovmf) => {
                args.extend(["-machine", "q35", "-serial", "stdio", "-bios", ovmf]);
                (host_arch.info().qemu_binary, "BdsDxe")
            }
            None => {
                args.extend([
                    "-machine",
                    "q35",
                    "-serial",
                    "none",
                    "-debugcon",
                    "stdio",
                    "-global",
                    "isa-debugcon.iobase=0x402",
                ]);
                args.extend(["-bios", "/usr/share/seabios/bios-256k.bin"]);
                (host_arch.info().qemu_binary, "SeaBIOS")
            }
        },
        Arch::Aarch64 => {
            args.extend([
                "-machine",
                "virt",
                "-serial",
                "stdio",
                "-bios",
                "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd",
            ]);
            (host_arch.info().qemu_binary, "UEFI")
        }
        Arch::Riscv64 => {
            // QEMU's default firmware (OpenSBI) prints its banner.
            args.extend(["-machine", "virt", "-serial", "stdio"]);
            (host_arch.info().qemu_binary, "OpenSBI")
        }
    };
    let mut child = match Command::new(qemu)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Probe::GuestFailed(format!("{qemu} did not start: {e}")),
    };
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let banner_owned = banner.to_string();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if seen
                .windows(banner_owned.len())
                .any(|w| w == banner_owned.as_bytes())
            {
                let _ = tx.send(());
                return;
            }
            seen.truncate(64 * 1024);
        }
    });
    let ok = rx.recv_timeout(PROBE_DEADLINE).is_ok();
    let _ = child.kill();
    let _ = child.wait();
    if ok {
        return Probe::Works;
    }
    let mut err = String::new();
    let _ = stderr.read_to_string(&mut err);
    let line = err
        .lines()
        .find(|l| l.contains("error") || l.contains("Assertion") || l.contains("KVM"))
        .or_else(|| err.lines().find(|l| !l.contains("warning")))
        .unwrap_or("no firmware output within the deadline")
        .trim()
        .to_string();
    Probe::GuestFailed(line)
}

/// [`probe_kvm`], remembered for this boot of the host (keyed by
/// `/proc/sys/kernel/random/boot_id`) in `cache_dir`.
pub fn probe_kvm_cached(host_arch: Arch, cache_dir: &std::path::Path) -> Probe {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    // v2: the x86_64 probe boots OVMF (a v1 answer from SeaBIOS alone is
    // not trusted).
    let file = cache_dir.join(format!("kvm-probe-v2-{host_arch}.json"));
    if let Ok(text) = std::fs::read_to_string(&file) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            if v["boot_id"] == boot_id.trim() {
                if let Ok(p) = serde_json::from_value::<Probe>(v["probe"].clone()) {
                    return p;
                }
            }
        }
    }
    let p = probe_kvm(host_arch);
    let _ = std::fs::create_dir_all(cache_dir);
    let doc = serde_json::json!({ "boot_id": boot_id.trim(), "probe": p });
    let tmp = file.with_extension("tmp");
    if std::fs::write(&tmp, doc.to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, &file);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_table() {
        let never = || -> Probe { panic!("a cross-arch guest must not probe KVM") };
        for (host, guest) in [
            (Some(Arch::X86_64), Arch::Aarch64),
            (Some(Arch::Aarch64), Arch::X86_64),
            (None, Arch::X86_64),
        ] {
            let d = decide(host, guest, never);
            assert_eq!(d.accel, Accel::Tcg);
            assert!(
                d.reason.contains("cannot run other architectures"),
                "{}",
                d.reason
            );
        }
        for arch in Arch::ALL {
            let cases = [
                (Probe::Works, Accel::Kvm, "ran a probe guest"),
                (Probe::Absent, Accel::Tcg, "does not exist"),
                (
                    Probe::NoAccess("Permission denied".into()),
                    Accel::Tcg,
                    "kvm group",
                ),
                (
                    Probe::GuestFailed("failed to set MSR".into()),
                    Accel::Tcg,
                    "failed to set MSR",
                ),
            ];
            for (probe, accel, why) in cases {
                let d = decide(Some(arch), arch, || probe.clone());
                assert_eq!(d.accel, accel, "{arch} {probe:?}");
                assert!(d.reason.contains(why), "{}", d.reason);
            }
        }
        assert_eq!(cpu_model(Arch::Aarch64, Accel::Tcg), "max,pauth-impdef=on");
        assert_eq!(cpu_model(Arch::X86_64, Accel::Kvm), "host");
        assert_eq!(accel_arg(Accel::Tcg), "tcg,thread=multi");
    }
}
