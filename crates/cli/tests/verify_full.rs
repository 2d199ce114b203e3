//! `bootproof verify --mode full`: a real Debian 12 cloud image (built by
//! mmdebstrap from Debian's packages: systemd, cloud-init, the distro
//! kernel, GRUB at the removable path) boots end to end under OVMF, and
//! cloud-init, fed a NoCloud seed bootproof wrote in-process, runs the
//! agent. The same image in agent mode (its kernel, its modules.dep) shows
//! the cost of a full boot. The arm64 image takes 30+ minutes to build
//! under qemu-user-static: its test is a long one (docs/testing.md).

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

fn verify(name: &str, args: &[&str]) -> (i32, Value, String) {
    let (code, v, err, _) = verify_with_ledger(name, args);
    (code, v, err)
}

/// `verify ARGS`, and the prediction ledger it left (its own history).
fn verify_with_ledger(name: &str, args: &[&str]) -> (i32, Value, String, Value) {
    let dir = scratch("verify-full", name);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bootproof"))
            .args(args)
            .env("BOOTPROOF_STATE_DIR", dir.join("state"))
            // Never the user's own history (full mode records its boots).
            .env("BOOTPROOF_HISTORY", dir.join("history.sqlite"))
            .output()
            .unwrap()
    };
    let out = run(&[&["verify"], args].concat());
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let ledger = run(&["history", "--predictions", "--json"]).stdout;
    let ledger = serde_json::from_slice(&ledger).unwrap_or(Value::Null);
    (out.status.code().unwrap(), v, stderr, ledger)
}

fn stages(variant: &Value) -> Vec<&str> {
    variant["boot"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect()
}

/// Full mode, then agent mode, on one image; all must pass, and full mode
/// must show the image's own chain and init did the work.
fn full_then_agent(arch: &str, variants: &[&str]) {
    let img = cloud_image(arch);
    let img = img.to_str().unwrap();
    let mut args = vec!["--json", "--mode", "full", "--no-hotplug"];
    if !variants.is_empty() {
        args.push("--variants");
        args.extend(variants);
    }
    args.push(img);
    let (code, v, err, ledger) = verify_with_ledger(&format!("full-{arch}"), &args);
    assert_eq!(code, 0, "{err}\n{v:#}");
    assert_eq!(v["mode"], "full");
    // Full mode boots the image's own chain: `check` predicted login, and
    // every boot (matrix and persistence pair) went to the ledger, held.
    assert_eq!(v["prediction"]["stage"], "login", "{:#}", v["prediction"]);
    let boots = v["variants"].as_array().unwrap().len() as u64;
    assert_eq!(
        (ledger["total"].as_u64(), ledger["held"].as_u64()),
        (Some(boots), Some(boots)),
        "{ledger:#}"
    );
    assert_eq!(v["seed"], "nocloud");
    assert!(v["kernel_version"].as_str().unwrap().starts_with("6."));
    let all = v["variants"].as_array().unwrap();
    for var in all {
        let name = var["name"].as_str().unwrap();
        assert!(var["passed"].as_bool().unwrap(), "{name}: {var:#}");
        assert_eq!(var["channel"], "virtio-serial", "{name}");
        // Firmware -> the removable path -> GRUB -> the image's kernel ->
        // its initramfs -> systemd (a login prompt) -> the agent powers off.
        let s = stages(var);
        for want in [
            "firmware-started",
            "grub-started",
            "kernel-started",
            "init-reached",
            "userspace-started",
            "login-prompt",
            "powered-off",
        ] {
            assert!(s.contains(&want), "{name}: {want} missing from {s:?}");
        }
        let (st, e) = check(var, "boot.image-init").unwrap();
        assert_eq!(st, "pass");
        assert!(
            e.starts_with("PID 1 is systemd; / is /dev/vda2 (ext4)"),
            "{name}: {e}"
        );
    }
    // The persistence pair ran as full boots too.
    let w = all
        .iter()
        .find(|x| x["name"].as_str().unwrap().starts_with("persist-w"))
        .unwrap();
    let r = all
        .iter()
        .find(|x| x["name"].as_str().unwrap().starts_with("persist-r"))
        .unwrap();
    assert_eq!(check(w, "uefi.nvram-on-host").unwrap().0, "pass");
    assert_eq!(check(r, "uefi.variables-persist").unwrap().0, "pass");

    // Agent mode on the same image: its kernel, and its modules resolved
    // from the modules.dep depmod wrote when the kernel package installed.
    let mut args = vec!["--json", "--no-hotplug", "--persistence", "off"];
    if !variants.is_empty() {
        args.push("--variants");
        args.extend(variants);
    }
    args.push(img);
    let (code, v, err) = verify(&format!("agent-{arch}"), &args);
    assert_eq!(code, 0, "{err}\n{v:#}");
    assert_eq!(v["mode"], "agent");
    assert!(
        v["modules"]["dependency_source"]
            .as_str()
            .unwrap()
            .contains("modules.dep"),
        "{}",
        v["modules"]
    );
    assert!(check(&v["variants"][0], "boot.image-init").is_none());
}

/// Long (a full cloud-init boot, then agent boots): `scripts/test.sh --long`.
#[test]
#[ignore = "long: full cloud-init boot; scripts/test.sh --long runs it"]
fn x86_64_cloud_image_full_mode_runs_the_agent_through_cloud_init() {
    full_then_agent("amd64", &[]);
}

/// Long (the image takes 30+ minutes to build under emulation):
/// `scripts/test.sh --long`.
#[test]
#[ignore = "long: arm64 cloud image built under emulation; scripts/test.sh --long runs it"]
fn arm64_cloud_image_full_mode_runs_the_agent_through_cloud_init() {
    full_then_agent("arm64", &["gic=2,3", "acpi=on,off", "transport=pci"]);
}

#[test]
fn full_mode_needs_cloud_init_or_ignition_and_owns_the_cmdline() {
    // The boot-chain test image has a busybox root: no provisioning agent.
    let img = boot_images().join("debian-grub-arm64.raw");
    let (code, _, err) = verify("no-seed", &["--mode", "full", img.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("needs cloud-init or Ignition"), "{err}");
    assert!(err.contains("hint: agent mode"), "{err}");
    let (code, _, err) = verify(
        "cmdline",
        &[
            "--mode",
            "full",
            "--cmdline-append",
            "quiet",
            img.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--cmdline-append applies to agent mode"),
        "{err}"
    );
}
