//! `bootproof verify` in agent mode: Debian's real kernels boot through
//! AAVMF/OVMF with bootproof's static agent as /init and the image's own
//! modules; the agent's records must show what each platform variant is.
//! Needs the agent built (scripts/test.sh runs scripts/build-agent.sh).

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;

fn verify(name: &str, args: &[&str]) -> (i32, Value) {
    let dir = scratch("verify", name);
    let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .args(["verify", "--json"])
        .args(args)
        .env("BOOTPROOF_STATE_DIR", dir.join("state"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

#[test]
fn arm64_every_default_variant_reports_what_it_is() {
    let img = boot_images().join("debian-grub-arm64.raw");
    let (code, v) = verify("arm64", &[img.to_str().unwrap()]);
    let all = v["variants"].as_array().unwrap();
    let named = |prefix: &str| -> Vec<&Value> {
        all.iter()
            .filter(|x| x["name"].as_str().unwrap().starts_with(prefix))
            .collect()
    };
    let persist = named("persist");
    let variants = named("gic");
    // Hotplug: bootproof added a virtio disk to an empty root port over QMP
    // while the agent waited, and the agent saw it appear.
    let hotplug = named("hotplug");
    assert_eq!(hotplug.len(), 1);
    let (s, e) = check(hotplug[0], "pci.hotplug-disk").unwrap();
    assert_eq!(s, "pass", "{e}");
    assert!(e.starts_with("vd") && e.contains("appeared"), "{e}");
    assert_eq!(
        variants.len(),
        8,
        "gic 2,3 × acpi on,off × transport pci,mmio"
    );
    // Persistence: written on a GICv3 boot, found in the NVRAM file by the
    // host's own parser, read back on a GICv2 boot of the same NVRAM.
    assert_eq!(persist.len(), 2);
    assert_eq!(persist[0]["platform"]["gic"], 3);
    assert_eq!(persist[1]["platform"]["gic"], 2);
    let (s, e) = check(persist[0], "uefi.nvram-on-host").unwrap();
    assert_eq!(s, "pass", "{e}");
    assert!(
        e.contains("BootproofPersist-b0075eed-6b2a-4c1e-9f3d-2e7a5c4b1d90"),
        "{e}"
    );
    assert_eq!(
        check(persist[1], "uefi.variables-persist").unwrap().0,
        "pass"
    );
    for var in variants {
        let name = var["name"].as_str().unwrap();
        let failed: Vec<&Value> = var["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "fail")
            .collect();
        assert!(
            var["passed"].as_bool().unwrap(),
            "{name}: {failed:?} {}",
            var["boot"]
        );
        assert!(var["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["type"] == "done"));
        // Records came over the virtio-serial port, out of the console's reach.
        assert_eq!(var["channel"], "virtio-serial", "{name}");
        assert_eq!(
            check(var, "agent.virtio-serial").unwrap().0,
            "pass",
            "{name}"
        );
        assert!(
            var["records"][0]["type"] == "hello",
            "the console's early records are kept"
        );
        let p = &var["platform"];
        let gic = p["gic"].as_u64().unwrap();
        let (s, e) = check(var, "gic.version").unwrap();
        assert_eq!(s, "pass");
        assert!(e.ends_with(&format!("shows GICv{gic}")), "{name}: {e}");
        if p["acpi"] == false {
            assert_eq!(
                check(var, "acpi.absent-when-off").unwrap().0,
                "pass",
                "{name}"
            );
            let (s, e) = check(var, "dt.present").unwrap();
            assert_eq!(s, "pass", "{name}: a real device tree");
            assert!(e.contains("cpus") && e.contains("memory"), "{e}");
            assert!(check(var, "acpi.checksums").is_none());
        } else {
            assert_eq!(check(var, "acpi.checksums").unwrap().0, "pass");
            let (_, e) = check(var, "acpi.sbbr-tables").unwrap();
            for t in ["FACP", "APIC", "GTDT", "DSDT", "SPCR", "DBG2"] {
                assert!(e.contains(t), "{e}");
            }
        }
        let (s, e) = check(var, "virtio.transport").unwrap();
        assert_eq!(s, "pass");
        if p["transport"] == "mmio" {
            assert!(e.starts_with("0 virtio PCI functions"), "{name}: {e}");
            assert!(check(var, "pci.root-port-hotplug").is_none());
        } else {
            assert!(!e.starts_with("0 "), "{name}: {e}");
            assert_eq!(
                check(var, "pci.root-port-hotplug").unwrap().0,
                "pass",
                "{name}"
            );
        }
        for id in [
            "uefi.booted",
            "uefi.runtime-services",
            "uefi.variables-writable",
            "rtc.readable",
            "timer.arch",
            "psci.version",
            "uart.pl011-console",
            "cpus.online",
            "virtio.bound",
            "kernel.log-clean",
        ] {
            assert_eq!(check(var, id).map(|c| c.0), Some("pass"), "{name} {id}");
        }
        let rtc = check(var, "rtc.readable").unwrap().1;
        assert!(rtc.contains("rtc-efi"), "{rtc}");
    }
    assert_eq!(code, 0);
    // The modules came from the image, dependencies from their modinfo.
    assert_eq!(v["modules"]["dependency_source"], "modinfo");
    let load: Vec<&str> = v["modules"]["load"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    let at = |n: &str| load.iter().position(|x| *x == n).unwrap();
    assert!(at("virtio_pci_modern_dev") < at("virtio_pci"), "{load:?}");
}

#[test]
fn firmware_without_persistent_variables_fails_the_persistence_check() {
    // The negative control: boot 2 gets a fresh variable store.
    let img = boot_images().join("debian-grub-arm64.raw");
    let (code, v) = verify(
        "fresh-vars",
        &[
            "--variants",
            "gic=3",
            "acpi=on",
            "transport=pci",
            "--persistence",
            "fresh-vars",
            img.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    let read = v["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"].as_str().unwrap().starts_with("persist-r"))
        .unwrap();
    let (s, e) = check(read, "uefi.variables-persist").unwrap();
    assert_eq!(s, "fail");
    assert!(e.contains("gone after reboot"), "{e}");
}

#[test]
fn x86_64_verifies_and_a_kernel_without_its_modules_fails() {
    let img = boot_images().join("debian-grub-amd64.raw");
    let (code, v) = verify("amd64", &[img.to_str().unwrap()]);
    let var = &v["variants"][0];
    assert!(var["passed"].as_bool().unwrap(), "{var}");
    assert_eq!(var["channel"], "virtio-serial");
    assert_eq!(code, 0);
    // OVMF keeps variables too, and q35's root port takes a hotplugged disk.
    let names: Vec<&str> = v["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["q35", "hotplug", "persist-w", "persist-r"]);
    assert_eq!(
        check(&v["variants"][1], "pci.hotplug-disk").unwrap().0,
        "pass"
    );
    let persist: Vec<&Value> = v["variants"].as_array().unwrap().iter().skip(2).collect();
    assert_eq!(check(persist[0], "uefi.nvram-on-host").unwrap().0, "pass");
    assert_eq!(
        check(persist[1], "uefi.variables-persist").unwrap().0,
        "pass"
    );
    assert_eq!(check(var, "acpi.checksums").unwrap().0, "pass");
    assert!(
        check(var, "gic.version").is_none(),
        "arm-only checks are not run"
    );

    // The UKI image has no /lib/modules: virtio_pci stays unloaded, so no
    // virtio device binds and the run fails (exit 1), naming the check.
    let img = boot_images().join("uki-amd64.raw");
    let (code, v) = verify(
        "uki",
        &[
            "--persistence",
            "off",
            "--no-hotplug",
            img.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    let var = &v["variants"][0];
    assert!(!var["passed"].as_bool().unwrap());
    assert_eq!(check(var, "virtio.bound").unwrap().0, "fail");
    // Without virtio_console the port never appears: records fall back to
    // the console, and the missing channel is itself a failure.
    assert_eq!(var["channel"], "console");
    assert_eq!(check(var, "agent.virtio-serial").unwrap().0, "fail");
    assert!(v["modules"]["missing"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m == "virtio_pci"));
}

#[test]
fn junit_report_names_the_failing_check() {
    let img = boot_images().join("uki-amd64.raw");
    let dir = scratch("verify", "junit");
    let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .args(["verify", "--junit", "--persistence", "off", "--no-hotplug"])
        .arg(&img)
        .env("BOOTPROOF_STATE_DIR", dir.join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let xml = String::from_utf8(out.stdout).unwrap();
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(xml.contains("<testsuite name=") && xml.trim_end().ends_with("</testsuites>"));
    let failing = xml
        .split("<testcase ")
        .find(|c| c.contains("name=\"virtio.bound\""))
        .unwrap();
    assert!(failing.contains("<failure type=\"check\""), "{failing}");
    assert!(xml.contains("name=\"agent.finished\""));
}

/// The checks that need a driver fail when the kernel lacks it. The kernel
/// is Debian's own with the drivers' initcalls blacklisted on its command
/// line (`initcall_blacklist=`): the driver's init never runs, which is
/// what the guest sees of a kernel built without it, with no kernel build.
#[test]
fn kernels_without_the_efi_rtc_or_pl011_driver_fail_those_checks() {
    let img = boot_images().join("debian-grub-arm64.raw");
    let (code, v) = verify(
        "no-drivers",
        &[
            "--variants",
            "gic=3",
            "acpi=on,off",
            "transport=pci",
            "--no-hotplug",
            "--persistence",
            "off",
            "--cmdline-append",
            "initcall_blacklist=efi_rtc_driver_init,pl011_init",
            img.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    let all = v["variants"].as_array().unwrap();
    assert_eq!(all.len(), 2);
    for var in all {
        let name = var["name"].as_str().unwrap();
        let (s, e) = check(var, "rtc.efi").unwrap();
        assert_eq!(s, "fail", "{name}: {e}");
        let (s, e) = check(var, "uart.pl011-console").unwrap();
        assert_eq!(s, "fail", "{name}: {e}");
        assert!(e.contains("ttyAMA0 driver: none"), "{name}: {e}");
        // No console at all: the records still arrive, over virtio-serial.
        assert_eq!(var["channel"], "virtio-serial", "{name}");
        // Everything else still holds: the failures are the drivers'.
        let others: Vec<&Value> = var["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["type"] == "check"
                    && r["status"] == "fail"
                    && ![
                        "rtc.efi",
                        "rtc.readable",
                        "uart.pl011-console",
                        // SPCR describes a PL011 the kernel cannot drive.
                        "acpi.spcr-console",
                    ]
                    .contains(&r["id"].as_str().unwrap())
            })
            .collect();
        assert!(others.is_empty(), "{name}: {others:?}");
    }
}

/// `acpi=off` on a machine whose firmware describes it with ACPI only
/// (EDK2 on virt withholds the device tree when QEMU provides ACPI tables):
/// the kernel has no hardware description and never speaks; the report
/// says so instead of a bare timeout.
#[test]
fn acpi_off_under_acpi_only_firmware_is_reported() {
    let img = boot_images().join("debian-grub-arm64.raw");
    let (code, v) = verify(
        "acpi-off-acpi-only",
        &[
            "--variants",
            "gic=3",
            "acpi=on",
            "transport=pci",
            "--no-hotplug",
            "--persistence",
            "off",
            "--timeout",
            "40",
            "--cmdline-append",
            "acpi=off",
            img.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    let var = &v["variants"][0];
    assert!(!var["passed"].as_bool().unwrap());
    assert!(var["records"].as_array().unwrap().is_empty(), "{var}");
    let boot = &var["boot"];
    assert_eq!(boot["outcome"], "timeout", "{boot}");
    let reason = boot["reason"].as_str().unwrap();
    assert!(
        reason.contains("printed nothing after the EFI stub exited boot services")
            && reason.contains("no device tree"),
        "{reason}"
    );
}

/// The engine embedded without the CLI: the runtime crate's example
/// verifies a real image through the library alone and prints the report.
#[test]
fn the_library_example_verifies_without_the_cli() {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_bootproof"))
        .parent()
        .unwrap()
        .join("examples/verify");
    assert!(
        exe.is_file(),
        "{} is missing: `cargo test --workspace` builds it (or cargo build -p bootproof-runtime --example verify)",
        exe.display()
    );
    let dir = scratch("verify", "example");
    let img = boot_images().join("debian-grub-arm64.raw");
    let out = Command::new(&exe)
        .arg(&img)
        .args(["gic=3", "acpi=on", "transport=pci"])
        .env("BOOTPROOF_STATE_DIR", dir.join("state"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["schema"], "bootproof.verify/v1");
    assert_eq!(v["arch"], "aarch64");
    let variants = v["variants"].as_array().unwrap();
    assert_eq!(
        variants.len(),
        1,
        "one variant, no hotplug or persistence boots"
    );
    assert_eq!(variants[0]["name"], "gic3 acpi-on pci");
    assert_eq!(check(&variants[0], "gic.version").unwrap().0, "pass");
    // Progress came through the example's Events implementation.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gic3 acpi-on pci: pass"), "{stderr}");
}
