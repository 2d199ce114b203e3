//! `bootproof check`: a clean image built from Debian's binaries passes
//! every rule; images that each break one rule fail exactly that rule.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const ROOT_UUID: &str = "7c1f8a3e-2b44-4f0d-9d1e-6c9b7a3e2f22";

fn check(img: &Path) -> (i32, Value) {
    let out = bootproof(&["check", "--json", img.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

fn failed(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["outcome"] == "fail")
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn clean_image_passes_every_rule() {
    let (code, v) = check(&boot_images().join("debian-grub-arm64.raw"));
    assert_eq!(failed(&v), Vec::<String>::new());
    assert_eq!(code, 0);
    let skipped: Vec<&Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["outcome"] == "skip")
        .collect();
    // Only the Secure Boot rules, which need --secure-boot, and the
    // riscv64 guests' rules; each says so.
    let why = |f: &&Value| f["evidence"][0].as_str().unwrap().to_string();
    let (secure_boot, other_arch): (Vec<&Value>, Vec<&Value>) = skipped
        .iter()
        .partition(|f| f["id"].as_str().unwrap().starts_with("secureboot."));
    assert!(
        secure_boot.iter().all(|f| why(f).contains("--secure-boot"))
            && other_arch
                .iter()
                .all(|f| why(f) == "applies to riscv64 guests"),
        "nothing else is skipped on a complete image: {skipped:?}"
    );
    assert_eq!((secure_boot.len(), other_arch.len()), (4, 5));
    assert_eq!(v["schema"], "bootproof.check/v1");
    for f in v["findings"].as_array().unwrap() {
        for k in [
            "id", "severity", "title", "clause", "hint", "outcome", "evidence",
        ] {
            assert!(!f[k].is_null(), "{k} missing in {f}");
        }
    }
}

#[test]
fn each_broken_image_fails_its_rule() {
    let art = artifacts();
    type Break = Box<dyn Fn(&Path)>;
    // (name, base image, how it is broken, the rules that fail, exit
    // status, the stage `check` predicts a firmware boot stops in).
    type Case<'a> = (&'a str, &'a str, Break, &'a [&'a str], i32, &'a str);
    let cases: Vec<Case> = vec![
        // No ESP at all: nothing to boot, so the chain fails with it.
        (
            "no-esp",
            "debian-grub-arm64.raw",
            Box::new(|p| ok(Command::new("sgdisk").args(["-d", "1"]).arg(p))),
            &["boot.chain", "image.esp", "image.removable-path"],
            1,
            "firmware",
        ),
        (
            "wrong-esp-type",
            "debian-grub-arm64.raw",
            Box::new(|p| ok(Command::new("sgdisk").args(["-t", "1:8300"]).arg(p))),
            &["image.esp"],
            1,
            "login",
        ),
        (
            "mbr-only",
            "debian-grub-arm64.raw",
            Box::new(|p| ok(Command::new("sgdisk").args(["-m", "1:2"]).arg(p))),
            &["image.gpt"],
            1,
            "login",
        ),
        (
            "vendor-dir-only",
            "debian-grub-arm64.raw",
            Box::new(move |p| {
                ok(Command::new("mmove").args(["-i", &esp(p), "::/EFI/BOOT", "::/EFI/debian"]))
            }),
            &["boot.chain", "image.no-preconfig", "image.removable-path"],
            1,
            "firmware",
        ),
        (
            "x86-loader-on-arm64",
            "debian-grub-arm64.raw",
            Box::new(move |p| {
                let shim = art.join("amd64/root/usr/lib/shim/shimx64.efi.signed");
                ok(Command::new("mcopy")
                    .args(["-o", "-i", &esp(p)])
                    .arg(shim)
                    .arg("::/EFI/BOOT/BOOTAA64.EFI"));
            }),
            &["image.efi-app"],
            1,
            "firmware",
        ),
        (
            "root-uuid-nowhere",
            "debian-grub-arm64.raw",
            Box::new(|p| {
                edit_grub_cfg(p, |c| {
                    c.replace(
                        &format!("root=UUID={ROOT_UUID}"),
                        "root=UUID=00000000-1111-2222-3333-444444444444",
                    )
                })
            }),
            &["boot.root"],
            1,
            "initramfs",
        ),
        (
            "x86-cmdline-tokens",
            "debian-grub-arm64.raw",
            Box::new(|p| {
                edit_grub_cfg(p, |c| {
                    c.replace(
                        " ro quiet",
                        " ro quiet earlyprintk=serial clocksource=kvm-clock",
                    )
                })
            }),
            &["cmdline.arch-tokens"],
            0,
            "login",
        ),
        (
            "kernel-without-efi-stub",
            "debian-grub-arm64.raw",
            Box::new(|p| {
                let name =
                    String::from_utf8(bootproof(&["ls", p.to_str().unwrap(), "2:/boot"]).stdout)
                        .unwrap();
                let kname = name
                    .lines()
                    .find(|l| l.starts_with("vmlinuz-"))
                    .unwrap()
                    .to_string();
                let kernel =
                    bootproof(&["cat", p.to_str().unwrap(), &format!("2:/boot/{kname}")]).stdout;
                assert!(kernel.len() > 1 << 20);
                let gz = p.parent().unwrap().join("vmlinuz.gz");
                std::fs::write(&gz, pipe(&["gzip", "-c"], &kernel)).unwrap();
                edit_root(
                    p,
                    &format!("cd /boot\nrm {kname}\nwrite {} {kname}\n", gz.display()),
                );
            }),
            &["boot.kernel-efi-stub"],
            1,
            "loader",
        ),
        (
            "unresolved-kernelopts",
            "rhel-blscfg-amd64.raw",
            Box::new(|p| edit_root(p, "rm /boot/grub2/grubenv\n")),
            // Debian's GRUB has no blscfg: the entries are still read (so
            // the unresolved variable is found) and the loader is where a
            // boot stops (crates/cli/tests/boot_vm.rs sees `grub>`).
            &["boot.cmdline-vars", "boot.loader-commands"],
            1,
            "loader",
        ),
        (
            "menu-waits-for-a-key",
            "debian-grub-arm64.raw",
            Box::new(|p| edit_grub_cfg(p, |c| c.replace("set timeout=1", "set timeout=-1"))),
            &["boot.menu-timeout"],
            1,
            "loader",
        ),
        (
            "console-only-on-ttyS0",
            "debian-grub-arm64.raw",
            Box::new(|p| edit_grub_cfg(p, |c| c.replace("console=ttyAMA0", "console=ttyS0"))),
            &["cmdline.arch-tokens", "cmdline.console"],
            0,
            "login",
        ),
    ];
    for (name, base, breakit, want, want_code, stage) in cases {
        let img = variant("check", base, name);
        breakit(&img);
        let (code, v) = check(&img);
        let mut got = failed(&v);
        got.sort();
        assert_eq!(
            got,
            want.to_vec(),
            "{name}: {}",
            serde_json::to_string_pretty(&v["findings"]).unwrap()
        );
        assert_eq!(code, want_code, "{name}: exit status");
        assert_eq!(
            v["prediction"]["stage"], stage,
            "{name}: {}",
            v["prediction"]
        );
        if stage != "login" {
            let ids: Vec<&str> = v["prediction"]["rules"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            assert!(
                !ids.is_empty() && ids.iter().all(|r| want.contains(r)),
                "{name}: {ids:?}"
            );
        }
        if name == "console-only-on-ttyS0" {
            // ACPI's SPCR still gives the kernel the PL011; under a device
            // tree, console= overrides stdout-path and nothing reaches it.
            let views = v["prediction"]["console"].as_array().unwrap();
            let seen = |variant: &str| {
                views.iter().find(|c| c["variant"] == variant).unwrap()["observable"].clone()
            };
            assert_eq!(seen("acpi"), true);
            assert_eq!(seen("device-tree"), false);
        }
    }
}

#[test]
fn junit_lists_every_rule() {
    let img = variant("check", "debian-grub-arm64.raw", "junit");
    ok(Command::new("sgdisk").args(["-t", "1:8300"]).arg(&img));
    let out = bootproof(&["check", "--junit", img.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let xml = String::from_utf8(out.stdout).unwrap();
    assert!(xml.starts_with("<?xml"));
    let rules = check(&img).1["findings"].as_array().unwrap().len();
    assert_eq!(xml.matches("<testcase ").count(), rules);
    assert_eq!(xml.matches("<failure ").count(), 1);
    assert!(
        xml.contains("name=\"image.esp: An EFI System Partition exists\""),
        "{xml}"
    );
    let human = String::from_utf8(bootproof(&["check", img.to_str().unwrap()]).stdout).unwrap();
    assert!(
        human.contains("FAIL  image.esp")
            && human.contains("fix: give the boot partition the ESP type"),
        "{human}"
    );
}

/// `check` reads metadata plus the kernel, initrd and config it inspects,
/// not the same compressed clusters over and over (a FAT driver alternates
/// between data and FAT clusters; a one-cluster cache re-inflated each).
#[test]
fn check_reads_little_from_compressed_images() {
    for base in ["systemd-boot-arm64.raw", "debian-grub-arm64.raw"] {
        let dir = scratch("check", &format!("bytes-{base}"));
        let q = dir.join("disk.qcow2");
        ok(Command::new("qemu-img")
            .args([
                "convert",
                "-O",
                "qcow2",
                "-c",
                "-o",
                "compression_type=zstd",
            ])
            .arg(boot_images().join(base))
            .arg(&q));
        let (_, v) = check(&q);
        let m: Value = serde_json::from_slice(
            &std::fs::read(boot_images().join("boot-manifest.json")).unwrap(),
        )
        .unwrap();
        let spec = &m["images"][base];
        let needed = std::fs::metadata(spec["kernel"].as_str().unwrap())
            .unwrap()
            .len()
            + std::fs::metadata(spec["initrd"].as_str().unwrap())
                .unwrap()
                .len();
        let read = v["bytes_read"].as_u64().unwrap();
        assert!(
            read < 2 * needed,
            "{base}: read {read} bytes to check a {needed}-byte kernel+initrd"
        );
    }
}

/// Without `/boot/config-<version>`, kernel features come from
/// `modules.builtin` and the module files under `/lib/modules` (read through
/// `bootproof_boot::modules`, as `verify` reads them).
#[test]
fn kernel_features_fall_back_to_the_module_tree() {
    let img = variant("check", "debian-grub-arm64.raw", "no-config");
    let boot =
        String::from_utf8(bootproof(&["ls", img.to_str().unwrap(), "2:/boot"]).stdout).unwrap();
    let config = boot.lines().find(|l| l.starts_with("config-")).unwrap();
    edit_root(&img, &format!("rm /boot/{config}\n"));
    let (_, v) = check(&img);
    let finding = |id: &str| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .unwrap()
            .clone()
    };
    let rtc = finding("os.efi-rtc");
    assert_eq!(rtc["outcome"], "pass", "{rtc}");
    let evidence = rtc["evidence"][0].as_str().unwrap();
    assert!(
        evidence.contains("CONFIG_RTC_DRV_EFI=y") && evidence.contains("modules.builtin"),
        "{evidence}"
    );
    // virtio_pci and virtio_blk are modules in the tree; only what the
    // image's subset lacks stays unseen.
    let virtio = finding("os.virtio");
    let unseen = virtio["evidence"][0].as_str().unwrap();
    assert!(unseen.contains("cannot be seen"), "{virtio}");
    assert!(
        !unseen.contains("CONFIG_VIRTIO_PCI") && !unseen.contains("CONFIG_VIRTIO_BLK"),
        "{unseen}"
    );
}

/// A GRUB title carrying control characters (an escape sequence, a bell,
/// NUL-adjacent bytes XML 1.0 cannot hold) and markup still gives a JUnit
/// report a strict XML parser accepts, with the characters made visible.
#[test]
fn junit_of_hostile_grub_titles_is_well_formed_xml() {
    let img = variant("check", "debian-grub-arm64.raw", "junit-hostile");
    edit_grub_cfg(&img, |c| {
        c.replacen(
            "menuentry 'Debian GNU/Linux'",
            "menuentry 'Debian \u{1b}[31m\u{7}\u{1}</testcase><x>&'",
            1,
        )
    });
    let out = bootproof(&["check", "--junit", img.to_str().unwrap()]);
    let xml = String::from_utf8(out.stdout).unwrap();
    assert!(
        xml.contains("Debian \\u001b[31m\\u0007\\u0001&lt;/testcase&gt;"),
        "{xml}"
    );
    let parse = Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E; r = E.fromstring(sys.stdin.buffer.read()); print(len(r.iter('testcase').__next__().attrib))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    parse
        .stdin
        .as_ref()
        .unwrap()
        .write_all(xml.as_bytes())
        .unwrap();
    let done = parse.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "ElementTree rejected the report: {}",
        String::from_utf8_lossy(&done.stderr)
    );
}
