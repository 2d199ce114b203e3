//! riscv64 guests end to end: images built from Debian 13's riscv64
//! packages (the kernel, grub-efi-riscv64-bin, systemd-boot-efi,
//! busybox-static), checked, extracted (compared byte for byte with the
//! packaged kernel) and booted under TCG through Debian 13's EDK2 for
//! RISC-V (qemu-efi-riscv64) and through OpenSBI alone.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

fn manifest() -> Value {
    serde_json::from_slice(&std::fs::read(riscv64_images().join("manifest.json")).unwrap()).unwrap()
}

fn image(name: &str) -> String {
    riscv64_images().join(name).to_str().unwrap().to_string()
}

/// `check --json` on an image: its report.
fn check(img: &str) -> Value {
    serde_json::from_slice(&bootproof(&["check", "--json", img]).stdout).unwrap()
}

#[test]
fn riscv64_images_pass_check_and_extract_the_packaged_kernel() {
    let m = manifest();
    let images = m["images"].as_object().unwrap();
    assert_eq!(images.len(), 2);
    for (name, spec) in images {
        let r = check(&image(name));
        assert_eq!(r["arch"], "riscv64", "{name}");
        // Debian 13's riscv64 kernel has neither the UEFI RTC driver nor
        // PCI hotplug: two warnings, which `verify` confirms below.
        let failed: Vec<(&str, &str)> = r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["outcome"] == "fail")
            .map(|f| (f["id"].as_str().unwrap(), f["severity"].as_str().unwrap()))
            .collect();
        assert_eq!(
            failed,
            [("os.riscv-rtc", "warning"), ("os.pci-hotplug", "warning")],
            "{name}"
        );
        assert_eq!(r["prediction"]["stage"], "login", "{name}");
        for id in [
            "os.riscv-uart",
            "os.riscv-irq",
            "os.riscv-aia",
            "os.riscv-sbi",
            "image.efi-app",
        ] {
            assert_eq!(finding(&r, id).0, "pass", "{name} {id}");
        }
        // The aarch64-only rules say why they do not apply.
        let (outcome, why) = finding(&r, "os.gic");
        assert_eq!(
            (outcome.as_str(), why.contains("aarch64")),
            ("skip", true),
            "{why}"
        );
        let dir = scratch("riscv64", name);
        let out = bootproof(&["extract", &image(name), "-o", dir.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (file, source) in [("kernel", &spec["kernel"]), ("initrd", &spec["initrd"])] {
            assert!(
                std::fs::read(dir.join(file)).unwrap()
                    == std::fs::read(source.as_str().unwrap()).unwrap(),
                "{name}: the {file}, byte for byte"
            );
        }
        let cmdline = std::fs::read_to_string(dir.join("cmdline")).unwrap();
        assert_eq!(cmdline.trim(), spec["cmdline"].as_str().unwrap(), "{name}");
    }
}

#[test]
fn riscv64_boots_through_edk2_with_grub_and_systemd_boot_and_directly() {
    for (name, loader_stage) in [
        ("debian-grub-riscv64.raw", Some("grub-started")),
        ("systemd-boot-riscv64.raw", None),
    ] {
        let (code, v) = boot(&format!("rv-{name}"), &[&image(name)]);
        assert_booted(code, &v);
        assert_eq!(v["arch"], "riscv64", "{name}");
        assert!(
            v["firmware"]["descriptor"]
                .as_str()
                .unwrap()
                .contains("riscv64"),
            "{name}: {}",
            v["firmware"]
        );
        let mut want = vec!["firmware-started"];
        want.extend(loader_stage);
        want.extend(["kernel-started", "init-reached", "powered-off"]);
        assert_in_order(&v, &want);
        assert!(console(&v).contains("RISC-V EDK2"), "{name}");
    }
    // Direct kernel boot: through EDK2, and through OpenSBI alone.
    let img = image("debian-grub-riscv64.raw");
    for (case, extra) in [("edk2", vec![]), ("opensbi", vec!["--firmware", "none"])] {
        let mut args = vec!["--mode", "direct"];
        args.extend(extra);
        args.push(&img);
        let (code, v) = boot(&format!("rv-direct-{case}"), &args);
        assert_booted(code, &v);
        assert_in_order(&v, &["kernel-started", "init-reached", "powered-off"]);
        assert!(console(&v).contains("OpenSBI"), "{case}");
        assert_eq!(
            console(&v).contains("RISC-V EDK2"),
            case == "edk2",
            "{case}"
        );
    }
}

/// A kernel configured without the AIA drivers fails `os.riscv-aia`, a
/// warning (the default machine has a PLIC, which it keeps): the config
/// is Debian's with those two lines removed, written by debugfs.
#[test]
fn a_kernel_without_the_aia_drivers_gets_a_warning() {
    let dir = scratch("riscv64", "no-aia");
    let disk = dir.join("disk.raw");
    ok(Command::new("cp")
        .arg("--sparse=always")
        .arg(image("debian-grub-riscv64.raw"))
        .arg(&disk));
    let m = manifest();
    let version = m["images"]["debian-grub-riscv64.raw"]["version"]
        .as_str()
        .unwrap();
    let packaged = riscv64_artifacts().join(format!("root/boot/config-{version}"));
    let config: String = std::fs::read_to_string(&packaged)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("CONFIG_RISCV_APLIC=") && !l.starts_with("CONFIG_RISCV_IMSIC="))
        .map(|l| format!("{l}\n"))
        .collect();
    let edited = dir.join("config");
    std::fs::write(&edited, config).unwrap();
    edit_root(
        &disk,
        &format!(
            "rm /boot/config-{version}\nwrite {} /boot/config-{version}\n",
            edited.display()
        ),
    );
    let r = check(disk.to_str().unwrap());
    let (outcome, evidence) = finding(&r, "os.riscv-aia");
    assert_eq!(outcome, "fail");
    assert!(
        evidence.contains("CONFIG_RISCV_APLIC is not set"),
        "{evidence}"
    );
    assert_eq!(finding(&r, "os.riscv-irq").0, "pass");
    assert_eq!(r["prediction"]["stage"], "login");
}

#[test]
fn an_aarch64_loader_at_the_riscv64_removable_path_fails_at_the_firmware() {
    let dir = scratch("riscv64", "wrong-loader");
    let disk = dir.join("disk.raw");
    ok(Command::new("cp")
        .arg("--sparse=always")
        .arg(image("debian-grub-riscv64.raw"))
        .arg(&disk));
    let esp = bootproof_testkit::esp(&disk);
    let arm_grub = artifacts().join("arm64/root/usr/lib/grub/arm64-efi/monolithic/grubaa64.efi");
    ok(Command::new("mcopy")
        .args(["-o", "-i", &esp])
        .arg(&arm_grub)
        .arg("::/EFI/BOOT/BOOTRISCV64.EFI"));
    let path = disk.to_str().unwrap();
    let r = check(path);
    let (outcome, evidence) = finding(&r, "image.efi-app");
    assert_eq!(outcome, "fail");
    assert!(evidence.contains("AArch64"), "{evidence}");
    assert_eq!(r["prediction"]["stage"], "firmware");
    let (code, v) = boot("rv-wrong-loader", &[path]);
    let (stage, cause) = failure(code, &v);
    assert_eq!(stage, "uefi-shell");
    assert!(cause.contains("Unsupported"), "{cause}");
}

#[test]
fn verify_runs_the_agent_on_riscv64_and_confirms_what_check_warned() {
    let dir = scratch("riscv64", "verify");
    let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .args([
            "verify",
            "--json",
            "--variants",
            "acpi=on,off",
            "transport=pci,mmio",
        ])
        .args(["aia=off,on", "--", &image("debian-grub-riscv64.raw")])
        .env("BOOTPROOF_STATE_DIR", dir.join("state"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let variants = v["variants"].as_array().unwrap();
    let names: Vec<&str> = variants
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "acpi-on pci",
            "acpi-on pci aia",
            "acpi-on mmio",
            "acpi-on mmio aia",
            "acpi-off pci",
            "acpi-off pci aia",
            "acpi-off mmio",
            "acpi-off mmio aia",
            "hotplug",
            "persist-w",
            "persist-r"
        ]
    );
    // Every check the agent ran on RISC-V, in every variant, passes except
    // the two that `check` predicted from the kernel's config: no RTC
    // under ACPI (no RTC_DRV_EFI; the device tree's goldfish RTC is what
    // the acpi-off variants read) and no PCIe hotplug.
    let mut seen = std::collections::BTreeSet::new();
    for variant in variants {
        let acpi = !variant["name"].as_str().unwrap().starts_with("acpi-off");
        for r in variant["records"].as_array().unwrap() {
            if r["type"] != "check" {
                continue;
            }
            let id = r["id"].as_str().unwrap();
            seen.insert(id);
            let expected_failure = id == "pci.hotplug-disk" || (id == "rtc.readable" && acpi);
            let want = match (id, r["status"].as_str()) {
                ("dt.present", Some("skip")) if acpi => "skip",
                _ if expected_failure => "fail",
                _ => "pass",
            };
            assert_eq!(
                r["status"], want,
                "{} {id}: {}",
                variant["name"], r["evidence"]
            );
        }
    }
    for id in [
        "uefi.booted",
        "uefi.runtime-services",
        "uefi.variables-writable",
        "acpi.present",
        "acpi.checksums",
        "pci.host-bridge",
        "virtio.bound",
        "uefi.nvram-on-host",
        "uefi.variables-persist",
        "rtc.readable",
        "pci.hotplug-disk",
        "acpi.absent-when-off",
        "acpi.riscv-tables",
        "dt.present",
        "sbi.version",
        "sbi.extensions",
        "timer.riscv",
        "uart.16550-console",
        "irq.controller",
        "virtio.transport",
    ] {
        assert!(seen.contains(id), "{id} ran");
    }
    let (_, rtc) = bootproof_testkit::check(&variants[0], "rtc.readable").unwrap();
    assert_eq!(rtc, "no RTC registered");
}

#[test]
fn run_executes_a_command_on_riscv64_with_its_own_and_a_backports_kernel() {
    // Debian's trixie-backports kernel, packaged the 7.x way: the kernel in
    // linux-binary-*, its modules in linux-modules-* (joined as companions).
    let backports = riscv64_artifacts().join("backports");
    let mut debs: Vec<String> = std::fs::read_dir(&backports)
        .unwrap()
        .map(|e| e.unwrap().path().to_str().unwrap().to_string())
        .collect();
    debs.sort();
    assert_eq!(debs.len(), 2, "{debs:?}");
    let dir = scratch("riscv64", "run");
    // One platform (riscv64 `virt` has four by default): a cell per kernel.
    let mut args: Vec<String> = ["run", "--json", "--variants", "acpi=on", "transport=pci"]
        .map(String::from)
        .to_vec();
    for d in &debs {
        args.extend(["--kernel".into(), d.clone()]);
    }
    args.extend([
        image("debian-grub-riscv64.raw"),
        "--".into(),
        "uname".into(),
        "-rm".into(),
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .args(&args)
        .env("BOOTPROOF_STATE_DIR", dir.join("state"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    let own = manifest()["images"]["debian-grub-riscv64.raw"]["version"]
        .as_str()
        .unwrap()
        .to_string();
    let backported = debs[0]
        .rsplit('/')
        .next()
        .unwrap()
        .trim_start_matches("linux-binary-")
        .split('_')
        .next()
        .unwrap()
        .to_string();
    let mut releases: Vec<String> = v["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["status"], "pass", "{c:#}");
            c["stdout"].as_str().unwrap().trim().to_string()
        })
        .collect();
    releases.sort();
    let mut want = vec![format!("{own} riscv64"), format!("{backported} riscv64")];
    want.sort();
    assert_eq!(releases, want);
}
