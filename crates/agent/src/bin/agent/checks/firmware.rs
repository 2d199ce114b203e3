//! UEFI: booted by firmware, runtime services, variables (and their
//! persistence across boots), the RTC; full mode's own init.

use crate::report::Reporter;
use crate::sys::{list, mount, read};
use bootproof_agent::{AgentConfig, Arch, PERSIST_VARIABLE, VENDOR_GUID};
use std::path::Path;

/// The persistence check's two halves: write a value on the first boot,
/// read it back on the second (same NVRAM, another platform variant).
pub(crate) fn persistence_checks(r: &mut Reporter, cfg: &AgentConfig) {
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
pub(crate) fn efi_checks(r: &mut Reporter, arch: Arch, log: &[String]) {
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
    if arch == Arch::Aarch64 {
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

/// Full mode: evidence that the image's own userspace booted (PID 1 is
/// the image's init, the root is the image's disk).
pub(crate) fn image_init_check(r: &mut Reporter) {
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
