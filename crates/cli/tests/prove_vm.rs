//! `bootproof prove`: `check`'s prediction against a real firmware boot
//! (QEMU, AAVMF, Debian's kernel) — a clean image reaches login, a menu
//! that waits for a key stalls in the loader, a deleted kernel stops there
//! with GRUB's `file not found`, a RHEL-style config under Debian's GRUB
//! (no `blscfg`) stops at `grub>`, an MBR disk still boots, a loader only
//! under `/EFI/debian` or an x86 shim at the arm64 path stops in the
//! firmware; each prediction holds (the clean one with `--verify`: the
//! agent's checks on the variant booted).

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

/// The prove report `v` predicted and observed `stage`, for `rule`.
fn assert_prediction(v: &Value, stage: &str, rule: Option<&str>) {
    let (p, image) = (&v["prediction"], &v["image"]);
    assert_eq!(p["stage"], stage, "{image}: {p}");
    if let Some(rule) = rule {
        let rules = p["rules"].as_array().unwrap();
        assert!(rules.iter().any(|r| r == rule), "{image}: {p}");
    }
    assert_eq!(v["observed"]["stage"], stage, "{image}: {}", v["observed"]);
}

/// `bootproof ARGS` with its history in `history`.
fn run_with_history(history: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .args(args)
        .env("BOOTPROOF_HISTORY", history)
        .output()
        .unwrap()
}

/// `prove --json` with its history in `history`, and `extra` arguments.
fn prove_with(img: &Path, history: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec!["prove", "--json", "--timeout", "600"];
    args.extend(extra);
    args.push(img.to_str().unwrap());
    let out = run_with_history(history, &args);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

#[test]
fn predictions_hold_on_real_firmware_boots() {
    let kernel_gone = variant("prove", "debian-grub-arm64.raw", "kernel-gone");
    let kname =
        String::from_utf8(bootproof(&["ls", kernel_gone.to_str().unwrap(), "2:/boot"]).stdout)
            .unwrap()
            .lines()
            .find(|l| l.starts_with("vmlinuz-"))
            .unwrap()
            .to_string();
    edit_root(&kernel_gone, &format!("rm /boot/{kname}\n"));
    let waits = variant("prove", "debian-grub-arm64.raw", "menu-waits");
    edit_grub_cfg(&waits, |c| c.replace("set timeout=1", "set timeout=-1"));
    let clean = boot_images().join("debian-grub-arm64.raw");
    // A RHEL-style config under Debian's GRUB, which has no blscfg.
    let rhel = boot_images().join("rhel-blscfg-amd64.raw");
    // The firmware's side: an MBR instead of GPT still boots on QEMU's
    // firmware (a VM-spec failure, not a boot failure); the loader only
    // under /EFI/debian, and an x86 shim at the arm64 removable path, stop
    // in the firmware.
    let mbr = variant("prove", "debian-grub-arm64.raw", "mbr-only");
    ok(std::process::Command::new("sgdisk")
        .args(["-m", "1:2"])
        .arg(&*mbr));
    let vendor_dir = variant("prove", "debian-grub-arm64.raw", "vendor-dir-only");
    ok(std::process::Command::new("mmove").args([
        "-i",
        &esp(&vendor_dir),
        "::/EFI/BOOT",
        "::/EFI/debian",
    ]));
    let x86_loader = variant("prove", "debian-grub-arm64.raw", "x86-loader");
    ok(std::process::Command::new("mcopy")
        .args(["-o", "-i", &esp(&x86_loader)])
        .arg(artifacts().join("amd64/root/usr/lib/shim/shimx64.efi.signed"))
        .arg("::/EFI/BOOT/BOOTAA64.EFI"));
    let scratch = scratch("prove", "ledger");
    let history = scratch.join("history.sqlite");
    for (img, stage, rule, code) in [
        (clean.as_path(), "login", None, 0),
        (&*waits, "loader", Some("boot.menu-timeout"), 1),
        (&*kernel_gone, "loader", Some("boot.kernel-files"), 1),
        (rhel.as_path(), "loader", Some("boot.loader-commands"), 1),
        (&*mbr, "login", None, 0),
        (&*vendor_dir, "firmware", Some("image.removable-path"), 1),
        (&*x86_loader, "firmware", Some("image.efi-app"), 1),
    ] {
        // The clean image's prove also runs the agent's checks.
        let verify: &[&str] = if img == clean { &["--verify"] } else { &[] };
        let (got, v) = prove_with(img, &history, verify);
        let name = img.display();
        assert_eq!(v["schema"], "bootproof.prove/v1");
        assert_prediction(&v, stage, rule);
        assert_eq!(v["held"], true, "{name}");
        assert_eq!(got, code, "{name}: exit status");
        assert!(v["check_ms"].is_number() && v["boot"]["result"]["elapsed"].is_number());
        if img == clean {
            let checks = &v["verify"]["variants"][0];
            assert_eq!(v["verify"]["passed"], true, "{:#}", v["verify"]);
            assert_eq!(
                checks["platform"], v["boot"]["platform"],
                "the variant booted"
            );
            assert!(
                checks["records"].as_array().unwrap().len() > 5,
                "{checks:#}"
            );
        } else {
            assert!(v.get("verify").is_none());
        }
    }
    // The ledger counts them: expected × observed, every one held.
    let out = run_with_history(&history, &["history", "--predictions", "--json"]);
    let l: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(l["schema"], "bootproof.predictions/v1");
    assert_eq!(
        (l["total"].as_u64(), l["held"].as_u64()),
        (Some(7), Some(7)),
        "{l}"
    );
    assert_eq!(l["confusion"]["login"]["login"], 2, "{l}");
    assert_eq!(l["confusion"]["loader"]["loader"], 3, "{l}");
    assert_eq!(l["confusion"]["firmware"]["firmware"], 2, "{l}");
    assert_eq!(l["misses"], serde_json::json!([]));
    let table = String::from_utf8(run_with_history(&history, &["history", "--predictions"]).stdout)
        .unwrap();
    assert!(table.contains("7 of 7 predictions held"), "{table}");
    // The same ledger as a page, read back by headless Chromium.
    let page = scratch.join("history.html");
    let out = run_with_history(&history, &["history", "--html", page.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = chromium_dom(&page);
    assert!(dom.contains("7 of 7 predictions held"), "{dom}");
    assert!(
        dom.contains("data-expected=\"loader\" data-observed=\"loader\" data-n=\"3\"")
            && dom.contains("data-expected=\"login\" data-observed=\"login\" data-n=\"2\""),
        "{dom}"
    );
}

/// The DOM headless Chromium ends with for a page.
fn chromium_dom(page: &Path) -> String {
    let out = std::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (scripts/setup-test-deps.sh installs it)");
    String::from_utf8(out.stdout).unwrap()
}

/// arm64 with `console=ttyS0` only: ACPI's SPCR table still gives the
/// kernel its PL011, so the boot is seen to reach login; under a device
/// tree the console goes quiet after GRUB, as the prediction says it will
/// (that boot is reported as JUnit, read back with a strict XML parser:
/// the prediction passes, the boot itself fails).
#[test]
fn the_console_prediction_holds_per_variant() {
    let img = variant("prove", "debian-grub-arm64.raw", "console-ttyS0");
    edit_grub_cfg(&img, |c| c.replace("console=ttyAMA0", "console=ttyS0"));
    let i = img.to_str().unwrap();
    let args = |acpi, format| {
        let out = bootproof(&[
            "prove",
            "--no-history",
            format,
            "--timeout",
            "240",
            "--acpi",
            acpi,
            i,
        ]);
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let (code, json) = args("on", "--json");
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["prediction"]["stage"], "login");
    assert_eq!(v["expected"], "login", "{}", v["prediction"]);
    assert_eq!(v["observed"]["stage"], "login", "{}", v["observed"]);
    assert_eq!((v["held"].as_bool(), code), (Some(true), Some(0)));

    let (code, xml) = args("off", "--junit");
    assert_eq!(
        code,
        Some(1),
        "held, and the boot did not reach login: {xml}"
    );
    let doc = roxmltree::Document::parse(&xml).unwrap_or_else(|e| panic!("{e}: {xml}"));
    let case = |name: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name("testcase") && n.attribute("name") == Some(name))
            .unwrap_or_else(|| panic!("no case {name}: {xml}"))
    };
    let failed = |name: &str| case(name).children().any(|c| c.has_tag_name("failure"));
    let text = case("prediction")
        .descendants()
        .filter_map(|n| n.text())
        .collect::<String>();
    assert!(!failed("prediction"), "{xml}");
    assert!(
        text.contains("expected on the console: loader") && text.contains("reaches a login"),
        "{text}"
    );
    assert!(failed("boot"), "{xml}");
    assert!(!failed("boot.health"), "{xml}");
    let root = doc.root_element();
    assert_eq!(
        (root.attribute("tests"), root.attribute("failures")),
        (Some("3"), Some("1"))
    );
}

/// Debian 12's real cloud image (systemd, cloud-init, initramfs-tools):
/// clean, it is predicted and seen to reach login; with `root=UUID=`
/// naming no disk, the initramfs gives up waiting for it, as predicted
/// (no peer image in the arm64 set has a real initramfs); with
/// `virtio_blk.ko` taken out of its initramfs (cpio and gzip or zstd, not
/// bootproof, unpack and repack it), the same; with an fstab line for a
/// disk the VM does not have, systemd waits for it and drops to emergency
/// mode (userspace).
#[test]
fn predictions_hold_on_the_real_cloud_image() {
    let clean = cloud_image("amd64");
    let scratch = scratch("prove", "cloud-root-nowhere");
    let nowhere = scratch.join("disk.raw");
    ok(std::process::Command::new("cp")
        .arg("--sparse=always")
        .arg(&clean)
        .arg(&nowhere));
    edit_grub_cfg(&nowhere, |c| {
        let at = c.find("root=UUID=").expect("root=UUID= in grub.cfg") + "root=UUID=".len();
        let end = at + c[at..].find(' ').unwrap();
        format!(
            "{}0badc0de-0000-4000-8000-000000000000{}",
            &c[..at],
            &c[end..]
        )
    });
    let no_driver_dir = common::scratch("prove", "cloud-no-virtio-blk");
    let no_driver = initrd_without_virtio_blk(&clean, &no_driver_dir);
    let history = scratch.join("history.sqlite");
    // An fstab line for a disk the VM does not have, without `nofail`.
    let fstab_dir = common::scratch("prove", "cloud-fstab-missing-device");
    let missing_disk = fstab_dir.join("disk.raw");
    ok(std::process::Command::new("cp")
        .arg("--sparse=always")
        .arg(&clean)
        .arg(&missing_disk));
    let fstab = bootproof(&["cat", missing_disk.to_str().unwrap(), "2:/etc/fstab"]).stdout;
    let mut fstab = String::from_utf8(fstab).unwrap();
    fstab.push_str("UUID=0badc0de-0000-4000-8000-00000000da7a /data ext4 defaults 0 2\n");
    std::fs::write(fstab_dir.join("fstab"), fstab).unwrap();
    edit_root(
        &missing_disk,
        &format!(
            "cd /etc\nrm fstab\nwrite {} fstab\n",
            fstab_dir.join("fstab").display()
        ),
    );
    let page = scratch.join("prove.html");
    let cases = [
        (clean.as_path(), "login", None, 0),
        (nowhere.as_path(), "initramfs", Some("boot.root"), 1),
        (no_driver.as_path(), "initramfs", Some("os.root-drivers"), 1),
        (missing_disk.as_path(), "userspace", Some("os.fstab"), 1),
    ];
    // Booted side by side: three of the four spend minutes waiting for a
    // disk (the initramfs for root, systemd for /data), not computing.
    let proved: Vec<(i32, Value)> = std::thread::scope(|s| {
        let runs: Vec<_> = cases
            .iter()
            .map(|&(img, ..)| {
                let (history, page, nowhere) = (&history, &page, nowhere.as_path());
                s.spawn(move || {
                    let html = ["--html", page.to_str().unwrap()];
                    let extra: &[&str] = if img == nowhere { &html } else { &[] };
                    prove_with(img, history, extra)
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for ((img, stage, rule, code), (got, v)) in cases.iter().zip(proved) {
        let name = img.display();
        assert_prediction(&v, stage, *rule);
        assert_eq!((v["held"].as_bool(), got), (Some(true), *code), "{name}");
    }
    // The page of the root-nowhere boot, as headless Chromium reads it: the
    // verdict, and the timeline's phases up to the initramfs, marked as
    // the predicted one, ending in the failure.
    let dom = chromium_dom(&page);
    assert!(dom.contains("the prediction held"), "{dom}");
    for phase in ["firmware", "loader", "kernel", "initramfs"] {
        assert!(
            dom.contains(&format!("data-phase=\"{phase}\"")),
            "{phase}: {dom}"
        );
    }
    assert!(!dom.contains("data-phase=\"userspace\""), "{dom}");
    assert!(dom.contains("class=\"predicted\"") && dom.contains("data-ending=\"Bad\""));
    assert!(
        dom.contains("Gave up waiting for root file system device"),
        "{dom}"
    );
}

/// A copy of `clean` in `dir` whose initramfs lacks `virtio_blk.ko`.
fn initrd_without_virtio_blk(clean: &Path, dir: &Path) -> std::path::PathBuf {
    let img = dir.join("disk.raw");
    ok(std::process::Command::new("cp")
        .arg("--sparse=always")
        .arg(clean)
        .arg(&img));
    let listing = bootproof(&["ls", img.to_str().unwrap(), "2:/boot"]).stdout;
    let name = String::from_utf8(listing)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("initrd.img-"))
        .expect("an initrd in /boot")
        .to_string();
    let old = dir.join("initrd.old");
    let path = format!("2:/boot/{name}");
    std::fs::write(
        &old,
        bootproof(&["cat", img.to_str().unwrap(), &path]).stdout,
    )
    .unwrap();
    let gzip = std::fs::read(&old).unwrap().starts_with(&[0x1f, 0x8b]);
    let script = format!(
        "set -e; rm -rf tree; mkdir tree; cd tree; {} ../initrd.old | cpio -idm --quiet; \
         find . -name virtio_blk.ko -delete; test -z \"$(find . -name virtio_blk.ko)\"; \
         find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1 > ../initrd.new",
        if gzip { "zcat" } else { "zstd -dc" }
    );
    ok(std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir));
    edit_root(
        &img,
        &format!(
            "cd /boot\nrm {name}\nwrite {} {name}\n",
            dir.join("initrd.new").display()
        ),
    );
    img
}
