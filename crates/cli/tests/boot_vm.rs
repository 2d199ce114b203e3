//! `bootproof boot`: real QEMU, real firmware (AAVMF, OVMF from QEMU's
//! firmware descriptors), real Debian kernels, shim, GRUB and systemd-boot,
//! in images built by independent tools. Every boot's outcome and stage
//! timeline is asserted; broken images must be classified at the right stage
//! with the right cause; a killed bootproof must leave no QEMU behind.

mod common;

use common::*;
use serde_json::Value;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A boot-chain test image's path, as an argument.
fn image(name: &str) -> String {
    boot_images().join(name).to_str().unwrap().to_string()
}

/// The arm64 image converted by `qemu-img` to `format` (`subformat`):
/// `check` follows its chain, `extract` gives what it gives from the raw
/// image, and `boot` hands QEMU the converted disk under the overlay,
/// through AAVMF to a powered-off guest.
fn converted_image_is_checked_and_booted(format: &str, subformat: &str, file: &str) {
    let dir = scratch("boot", file);
    let disk = dir.join(file);
    ok(Command::new("qemu-img")
        .args(["convert", "-O", format, "-o"])
        .arg(format!("subformat={subformat}"))
        .arg(image("debian-grub-arm64.raw"))
        .arg(&disk));
    let v = disk.to_str().unwrap();
    let check = bootproof(&["check", "--json", v]);
    let report: Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(
        report["prediction"]["stage"], "login",
        "{:#}",
        report["prediction"]
    );
    // `extract` gives the same kernel and initrd as from the raw image.
    for (from, to) in [
        (v.to_string(), "from-converted"),
        (image("debian-grub-arm64.raw"), "from-raw"),
    ] {
        let out = bootproof(&["extract", &from, "-o", dir.join(to).to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for f in ["kernel", "initrd", "cmdline"] {
        let read = |d: &str| std::fs::read(dir.join(d).join(f)).unwrap();
        assert!(read("from-converted") == read("from-raw"), "{f} differs");
    }
    let (code, b) = boot_in(&dir, &[v]);
    assert_eq!(
        (code, &b["result"]["outcome"]),
        (0, &"booted".into()),
        "{}",
        console(&b)
    );
    assert_in_order(&b, &["firmware-started", "grub-started", "powered-off"]);
    let backing = b["qemu"]["args"].as_array().unwrap().iter().any(|a| {
        a.as_str()
            .unwrap()
            .starts_with("driver=qcow2,node-name=disk0")
    });
    assert!(
        backing,
        "the overlay is what QEMU opens: {:#}",
        b["qemu"]["args"]
    );
}

/// The arm64 image as publishers ship it in containers, each made by the
/// publisher's tool: an OVA (`tar` of the OVF and a streamOptimized VMDK,
/// booted through QEMU's window into the archive), a `.raw.xz` (unpacked
/// once into the cache) and a sparse GNU `.tar.gz` (GCE's layout, the
/// member copied out of the unpacked tar). Each is checked, extracted like
/// the raw image, and booted to a powered-off guest.
#[test]
fn images_in_containers_are_checked_and_booted() {
    let dir = scratch("boot", "containers");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let raw = image("debian-grub-arm64.raw");
    ok(Command::new("qemu-img")
        .args(["convert", "-O", "vmdk", "-o", "subformat=streamOptimized"])
        .arg(&raw)
        .arg(src.join("disk1.vmdk")));
    std::fs::write(
        src.join("vm.ovf"),
        "<Envelope><References><File ovf:href=\"disk1.vmdk\"/></References></Envelope>\n",
    )
    .unwrap();
    ok(Command::new("tar")
        .arg("-cf")
        .arg(dir.join("vm.ova"))
        .arg("-C")
        .arg(&src)
        .args(["vm.ovf", "disk1.vmdk"]));
    ok(Command::new("sh").arg("-c").arg(format!(
        "xz -0 -T2 -c '{raw}' > '{}'",
        dir.join("disk.raw.xz").display()
    )));
    ok(Command::new("cp")
        .args(["--sparse=always", &raw])
        .arg(src.join("disk.raw")));
    ok(Command::new("tar")
        .args(["--format=oldgnu", "-Sczf"])
        .arg(dir.join("disk.tar.gz"))
        .arg("-C")
        .arg(&src)
        .arg("disk.raw"));
    // Its own cache: the unpacked copies stay out of the user's.
    let cache = dir.join("cache");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bootproof"))
            .args(args)
            .env("XDG_CACHE_HOME", &cache)
            .env("BOOTPROOF_STATE_DIR", dir.join("state"))
            .output()
            .unwrap()
    };
    let out = run(&[
        "extract",
        &raw,
        "-o",
        dir.join("from-raw").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (file, container, format) in [
        ("vm.ova", "ova", "vmdk"),
        ("disk.raw.xz", "xz", "raw"),
        ("disk.tar.gz", "tar+gzip", "raw"),
    ] {
        let path = dir.join(file);
        let p = path.to_str().unwrap();
        let out = run(&["inspect", "--json", p]);
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{file}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        let link = &v["image"]["chain"][0];
        assert_eq!(
            (link["format"].as_str(), link["container"]["kind"].as_str()),
            (Some(format), Some(container)),
            "{file}: {link:#}"
        );
        let out = run(&["check", "--json", p]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            report["prediction"]["stage"], "login",
            "{file}: {:#}",
            report["prediction"]
        );
        let to = dir.join(format!("from-{file}"));
        let out = run(&["extract", p, "-o", to.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for f in ["kernel", "initrd", "cmdline"] {
            let read = |d: &Path| std::fs::read(d.join(f)).unwrap();
            assert!(
                read(&to) == read(&dir.join("from-raw")),
                "{file}: {f} differs"
            );
        }
        let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
            .args(["boot", "--json", p])
            .env("XDG_CACHE_HOME", &cache)
            .env("BOOTPROOF_STATE_DIR", dir.join("state"))
            .output()
            .unwrap();
        let b: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{file}: {e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(
            (out.status.code(), &b["result"]["outcome"]),
            (Some(0), &"booted".into()),
            "{file}: {:#}",
            b["result"]
        );
        assert_in_order(&b, &["firmware-started", "grub-started", "powered-off"]);
    }
}

/// Root and /boot on an LVM2 logical volume (bootvg/root, written by the
/// lvm2 tools): `inspect` shows the LV as a slot and the VG; `check`
/// resolves root=/dev/mapper/bootvg-root and follows GRUB's search into
/// the LV, and fails the root-drivers rule because this image's initramfs
/// has no lvm to activate it; `extract` takes the kernel from the LV; a
/// firmware boot goes through GRUB (which reads LVM itself) to the kernel;
/// `run` mounts the LV in the guest as a window of the disk.
#[test]
fn an_lvm_root_image_is_inspected_checked_extracted_and_booted() {
    let dir = scratch("boot", "lvm-root");
    let img = image("debian-lvm-arm64.raw");
    let out = bootproof(&["inspect", "--json", &img]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let lv = v["filesystems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["lv"]["lv"] == "root")
        .unwrap_or_else(|| panic!("{:#}", v["filesystems"]));
    assert_eq!(
        (&lv["lv"]["vg"], &lv["type"]),
        (&"bootvg".into(), &"ext4".into())
    );
    assert!(
        lv["roles"].as_array().unwrap().contains(&"root".into()),
        "{lv:#}"
    );
    assert_eq!(v["volume_groups"][0]["name"], "bootvg");
    let out = bootproof(&["check", "--json", &img]);
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    let finding = |id: &str| {
        c["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id)
            .unwrap_or_else(|| panic!("no {id}"))
            .clone()
    };
    let root = finding("boot.root");
    assert_eq!(root["outcome"], "pass", "{root:#}");
    assert!(
        root["evidence"]
            .to_string()
            .contains("/dev/mapper/bootvg-root"),
        "{root:#}"
    );
    let drivers = finding("os.root-drivers");
    assert_eq!(drivers["outcome"], "fail", "{drivers:#}");
    assert!(
        drivers["evidence"].to_string().contains("no lvm tool"),
        "{drivers:#}"
    );
    let out = bootproof(&["extract", &img, "-o", dir.join("x").to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value =
        serde_json::from_slice(&std::fs::read(boot_images().join("boot-manifest.json")).unwrap())
            .unwrap();
    let want = std::fs::read(
        m["images"]["debian-lvm-arm64.raw"]["kernel"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(
        std::fs::read(dir.join("x/kernel")).unwrap() == want,
        "the kernel, byte for byte"
    );
    assert!(
        String::from_utf8(std::fs::read(dir.join("x/cmdline")).unwrap())
            .unwrap()
            .contains("root=/dev/mapper/bootvg-root")
    );
    let (code, b) = boot_in(&dir, &[&img]);
    assert_eq!(
        (code, &b["result"]["outcome"]),
        (0, &"booted".into()),
        "{}",
        console(&b)
    );
    assert_in_order(
        &b,
        &[
            "firmware-started",
            "grub-started",
            "kernel-started",
            "powered-off",
        ],
    );
    // `run`'s agent mode: the LV reaches the guest as a read-only window of
    // the disk (its one linear segment), found by serial and mounted as
    // the root the command runs in.
    let pieces = |name: &str| -> Vec<(u64, u64)> {
        serde_json::from_value(m["images"][name]["lv_pieces"].clone()).unwrap()
    };
    let [(offset, size)] = pieces("debian-lvm-arm64.raw")[..] else {
        panic!("one piece")
    };
    let cell = run_cat_fstab(&dir, &img);
    assert!(
        cell["run"]["qemu"].as_array().unwrap().iter().any(|a| a
            .as_str()
            .unwrap()
            .contains(&format!("offset={offset},size={size},"))),
        "the window is where the lvm2 tools put the LV ({offset}, {size})"
    );
}

/// A root LV in two pieces (grown past another LV, as `lvextend` leaves
/// it): on a raw image QEMU joins the pieces (a VMDK descriptor of flat
/// extents over the file) and `run` mounts the LV; on a qcow2 copy it
/// cannot, and the cell is skipped, saying why.
#[test]
fn an_lvm_root_in_pieces_runs_on_a_raw_image() {
    let dir = scratch("boot", "lvm-split");
    let img = image("debian-lvm-split-arm64.raw");
    let cell = run_cat_fstab(&dir, &img);
    assert!(
        cell["run"]["qemu"].as_array().unwrap().iter().any(|a| a
            .as_str()
            .unwrap()
            .starts_with("driver=vmdk,node-name=window0")),
        "{:#}",
        cell["run"]["qemu"]
    );
    let qcow2 = dir.join("split.qcow2");
    let status = Command::new("qemu-img")
        .args(["convert", "-O", "qcow2", &img])
        .arg(&qcow2)
        .status()
        .unwrap();
    assert!(status.success());
    let r = run_json(&dir, &[qcow2.to_str().unwrap(), "--", "true"]);
    let cell = &r["cells"][0];
    assert_eq!(cell["status"], "skipped", "{cell:#}");
    assert!(
        cell["detail"]
            .as_str()
            .unwrap()
            .contains("2 pieces are joined only over a raw image"),
        "{cell:#}"
    );
}

/// `bootproof run --json` on one variant (GICv3, ACPI, PCI).
fn run_json(dir: &Path, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .args([
            "run",
            "--json",
            "--variants",
            "gic=3",
            "acpi=on",
            "transport=pci",
        ])
        .args(args)
        .env("BOOTPROOF_STATE_DIR", dir.join("state"))
        .env("BOOTPROOF_HISTORY", dir.join("history.sqlite"))
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// Runs `cat /etc/fstab` in an LVM-root image: it passes, reads the LV's
/// fstab and mounted the root from the window disk (vdb). The cell.
fn run_cat_fstab(dir: &Path, img: &str) -> Value {
    let r = run_json(dir, &[img, "--", "cat", "/etc/fstab"]);
    let cell = r["cells"][0].clone();
    assert_eq!(cell["status"], "pass", "{cell:#}");
    assert_eq!(
        cell["stdout"],
        "/dev/mapper/bootvg-root / ext4 errors=remount-ro 0 1\n"
    );
    let command = cell["run"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "command")
        .unwrap()
        .clone();
    assert!(
        command["root"]
            .as_str()
            .unwrap()
            .starts_with("/dev/vdb (ext4)"),
        "{command:#}"
    );
    cell
}

/// A dynamic VHD (QEMU's `vpc`), as Azure and Hyper-V take them.
#[test]
fn a_vhd_image_is_checked_and_booted() {
    converted_image_is_checked_and_booted("vpc", "dynamic", "disk.vhd");
}

/// A dynamic VHDX, Hyper-V's format.
#[test]
fn a_vhdx_image_is_checked_and_booted() {
    converted_image_is_checked_and_booted("vhdx", "dynamic", "disk.vhdx");
}

/// A streamOptimized VMDK, the disk inside OVA appliances.
#[test]
fn a_stream_optimized_vmdk_is_checked_and_booted() {
    converted_image_is_checked_and_booted("vmdk", "streamOptimized", "disk.vmdk");
}

#[test]
fn arm64_boots_through_aavmf_in_firmware_and_direct_mode() {
    // systemd-boot at the removable path, BLS entry, Debian kernel + initrd.
    let (code, v) = boot("sdboot-arm64", &[&image("systemd-boot-arm64.raw")]);
    assert_booted(code, &v);
    assert_in_order(
        &v,
        &[
            "firmware-started",
            "boot-option-started",
            "kernel-started",
            "init-reached",
            "powered-off",
        ],
    );
    assert_eq!(v["arch"], "aarch64");
    assert_eq!(v["accel"]["accel"], "tcg", "an x86_64 host emulates arm64");
    assert!(v["firmware"]["descriptor"]
        .as_str()
        .unwrap()
        .contains("aarch64"));
    let args: Vec<&str> = v["qemu"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"max,pauth-impdef=on") && args.contains(&"tcg,thread=multi"));
    // The input is only ever the overlay's read-only backing file.
    assert!(!args.iter().any(|a| a.contains("systemd-boot-arm64.raw")));

    // shim -> GRUB -> grub.cfg on ext4 -> kernel with `quiet`: no kernel
    // lines, but the power-down proves userspace ran.
    let (code, v) = boot("grub-arm64", &[&image("debian-grub-arm64.raw")]);
    assert_booted(code, &v);
    assert_in_order(
        &v,
        &[
            "firmware-started",
            "boot-option-started",
            "grub-started",
            "powered-off",
        ],
    );

    // Direct: the extracted kernel and initrd through -kernel, `quiet` dropped.
    let (code, v) = boot(
        "direct-arm64",
        &["--mode", "direct", &image("debian-grub-arm64.raw")],
    );
    assert_booted(code, &v);
    assert_in_order(&v, &["kernel-started", "init-reached", "powered-off"]);
    assert_eq!(v["direct"]["cmdline_removed"], serde_json::json!(["quiet"]));
    assert!(v["direct"]["cmdline"]
        .as_str()
        .unwrap()
        .contains("console=ttyAMA0"));

    // Direct without any firmware: QEMU enters the kernel itself.
    let (code, v) = boot(
        "direct-nofw-arm64",
        &[
            "--mode",
            "direct",
            "--firmware",
            "none",
            &image("debian-grub-arm64.raw"),
        ],
    );
    assert_booted(code, &v);
    assert!(!stages(&v).contains(&"firmware-started".to_string()));
}

#[test]
fn x86_64_boots_through_ovmf_in_firmware_and_direct_mode() {
    // A UKI (systemd stub + kernel + initrd + cmdline) at the removable path.
    let (code, v) = boot("uki-amd64", &[&image("uki-amd64.raw")]);
    assert_booted(code, &v);
    assert_in_order(
        &v,
        &[
            "firmware-started",
            "boot-option-started",
            "kernel-started",
            "init-reached",
            "powered-off",
        ],
    );
    assert_eq!(v["arch"], "x86_64");
    // shim -> GRUB -> kernel.
    let (code, v) = boot("grub-amd64", &[&image("debian-grub-amd64.raw")]);
    assert_booted(code, &v);
    assert_in_order(&v, &["boot-option-started", "grub-started", "powered-off"]);
    // Direct, through OVMF.
    let (code, v) = boot(
        "direct-amd64",
        &["--mode", "direct", &image("debian-grub-amd64.raw")],
    );
    assert_booted(code, &v);
    assert_in_order(&v, &["kernel-started", "init-reached", "powered-off"]);
    // The accelerator decision is explained whatever it is.
    let reason = v["accel"]["reason"].as_str().unwrap();
    match v["accel"]["accel"].as_str().unwrap() {
        "kvm" => assert!(reason.contains("ran a probe guest")),
        _ => assert!(
            reason.contains("probe guest failed")
                || reason.contains("does not exist")
                || reason.contains("cannot be opened")
                || reason.contains("other architectures"),
            "{reason}"
        ),
    }
}

#[test]
fn broken_images_fail_at_the_right_stage_for_the_right_cause() {
    let art = artifacts();

    // No removable path: the firmware's boot option fails, then the shell.
    let img = variant("boot", "systemd-boot-arm64.raw", "no-removable");
    ok(Command::new("mdel").args(["-i", &esp(&img), "::/EFI/BOOT/BOOTAA64.EFI"]));
    let dir = img.parent().unwrap().to_path_buf();
    let (code, v) = boot_in(&dir, &["--arch", "aarch64", img.to_str().unwrap()]);
    let (stage, cause) = failure(code, &v);
    assert_eq!(stage, "uefi-shell");
    assert!(
        cause.starts_with("no boot loader at the removable path") && cause.contains("Not Found"),
        "{cause}"
    );

    // An x86_64 binary at the arm64 removable path.
    let img = variant("boot", "systemd-boot-arm64.raw", "wrong-arch");
    ok(Command::new("mcopy")
        .args(["-o", "-i", &esp(&img)])
        .arg(art.join("amd64/root/usr/lib/systemd/boot/efi/systemd-bootx64.efi"))
        .arg("::/EFI/BOOT/BOOTAA64.EFI"));
    let (code, v) = boot_in(img.parent().unwrap(), &[img.to_str().unwrap()]);
    let (stage, cause) = failure(code, &v);
    assert_eq!(stage, "uefi-shell");
    assert!(
        cause.contains("not an EFI application") && cause.contains("Unsupported"),
        "{cause}"
    );

    // root= names a partition that does not exist (no initramfs: the
    // kernel itself gives up).
    let img = variant("boot", "systemd-boot-arm64.raw", "root-nowhere");
    let entries =
        String::from_utf8(bootproof(&["ls", img.to_str().unwrap(), "1:/loader/entries"]).stdout)
            .unwrap();
    let entry = entries.lines().find(|l| l.starts_with("debian-")).unwrap();
    let text = String::from_utf8(
        bootproof(&[
            "cat",
            img.to_str().unwrap(),
            &format!("1:/loader/entries/{entry}"),
        ])
        .stdout,
    )
    .unwrap();
    let broken: String = text
        .lines()
        .filter(|l| !l.starts_with("initrd"))
        .map(|l| {
            if l.starts_with("options") {
                "options root=PARTUUID=0badc0de-0000-4000-8000-000000000000 ro console=ttyAMA0"
                    .to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let f = img.parent().unwrap().join("entry.conf");
    std::fs::write(&f, broken + "\n").unwrap();
    ok(Command::new("mcopy")
        .args(["-o", "-i", &esp(&img)])
        .arg(&f)
        .arg(format!("::/loader/entries/{entry}")));
    let (code, v) = boot_in(img.parent().unwrap(), &[img.to_str().unwrap()]);
    let (stage, cause) = failure(code, &v);
    assert_eq!(stage, "root-not-found");
    assert!(cause.contains("Unable to mount root fs"), "{cause}");
    assert_in_order(
        &v,
        &["boot-option-started", "kernel-started", "root-not-found"],
    );

    // The kernel deleted from /boot: GRUB cannot load it.
    let img = variant("boot", "debian-grub-arm64.raw", "no-kernel");
    let boot_dir =
        String::from_utf8(bootproof(&["ls", img.to_str().unwrap(), "2:/boot"]).stdout).unwrap();
    let kernel = boot_dir
        .lines()
        .find(|l| l.starts_with("vmlinuz-"))
        .unwrap();
    edit_root(&img, &format!("rm /boot/{kernel}\n"));
    let (code, v) = boot_in(img.parent().unwrap(), &[img.to_str().unwrap()]);
    let (stage, cause) = failure(code, &v);
    assert_eq!(stage, "grub-file-not-found");
    assert_eq!(cause, format!("/boot/{kernel}"));

    // Debian's GRUB has no blscfg: a RHEL-style config leaves it at grub>.
    let (code, v) = boot("rhel-amd64", &[&image("rhel-blscfg-amd64.raw")]);
    let (stage, cause) = failure(code, &v);
    assert_eq!(stage, "grub-prompt");
    assert!(cause.contains("can't find command `blscfg'"), "{cause}");
}

#[test]
fn a_grub_menu_without_timeout_is_a_stall_not_a_timeout() {
    let img = variant("boot", "debian-grub-arm64.raw", "grub-no-timeout");
    edit_grub_cfg(&img, |c| c.replace("set timeout=1\n", ""));
    let (code, v) = boot_in(img.parent().unwrap(), &[img.to_str().unwrap()]);
    assert_eq!(v["result"]["outcome"], "stalled", "{}", console(&v));
    assert_eq!(v["result"]["last"]["stage"], "grub-started");
    assert!(v["result"]["reason"]
        .as_str()
        .unwrap()
        .contains("waits for a key"));
    assert_eq!(code, 1);
    assert!(
        v["result"]["elapsed"].as_f64().unwrap() < v["timeout_secs"].as_f64().unwrap(),
        "stopped before the deadline"
    );
}

#[test]
fn until_stops_early_and_usage_errors_are_clear() {
    let (code, v) = boot(
        "until",
        &[
            "--until",
            "kernel",
            "--mode",
            "direct",
            &image("debian-grub-arm64.raw"),
        ],
    );
    assert_eq!(v["result"]["outcome"], "reached", "{}", console(&v));
    assert_eq!(v["result"]["stage"]["stage"], "kernel-started");
    assert_eq!(code, 0);
    assert!(!stages(&v).contains(&"powered-off".to_string()));

    // Missing firmware files: exit 2 and a message naming the file.
    let dir = scratch("boot", "nofw");
    let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .args([
            "boot",
            "--firmware",
            "/nonexistent/CODE.fd",
            &image("debian-grub-arm64.raw"),
        ])
        .env("BOOTPROOF_STATE_DIR", dir.join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/CODE.fd does not exist"), "{err}");
    // With --json, CI still gets a report: the VM could not run.
    let (code, v) = boot_in(
        &dir,
        &[
            "--firmware",
            "/nonexistent/CODE.fd",
            &image("debian-grub-arm64.raw"),
        ],
    );
    assert_eq!(code, 2);
    assert_eq!(v["result"]["outcome"], "infra-error");
    assert!(v["result"]["message"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    // Firmware mode cannot take a command line.
    let out = bootproof(&[
        "boot",
        "--cmdline-append",
        "x",
        &image("debian-grub-arm64.raw"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mode direct"));
    // No run state is left behind by finished runs.
    let runs: Vec<PathBuf> = std::fs::read_dir(dir.join("state/runs"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(runs.is_empty(), "{runs:?}");
}

/// Pids of QEMU processes whose command line mentions `needle`.
fn qemu_with(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd);
        if (cmd.starts_with("qemu-system") || cmd.contains("/qemu-system")) && cmd.contains(needle)
        {
            found.push(pid);
        }
    }
    found
}

/// Starts a long `bootproof boot --json` with its state in `dir/state` and
/// returns once its QEMU runs and the guest has printed something; the
/// needle finds that QEMU with [`qemu_with`].
fn boot_in_background(dir: &Path) -> (std::process::Child, String) {
    let state = dir.join("state");
    let child = Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .args(["boot", "--json", "--timeout", "600"])
        .arg("--console-log")
        .arg(dir.join("console.log"))
        .arg(image("systemd-boot-arm64.raw"))
        .env("BOOTPROOF_STATE_DIR", &state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let needle = state.to_string_lossy().into_owned();
    let t = Instant::now();
    while (qemu_with(&needle).is_empty()
        || std::fs::metadata(dir.join("console.log")).map_or(0, |m| m.len()) == 0)
        && t.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(qemu_with(&needle).len(), 1, "one QEMU for the run");
    (child, needle)
}

#[test]
fn kill_9_leaves_no_qemu_and_the_next_run_cleans_up() {
    let dir = scratch("boot", "kill9");
    let state = dir.join("state");
    let (mut child, needle) = boot_in_background(&dir);
    child.kill().unwrap(); // SIGKILL: bootproof gets no chance to clean up
    child.wait().unwrap();
    let t = Instant::now();
    while !qemu_with(&needle).is_empty() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(qemu_with(&needle).is_empty(), "QEMU died with bootproof");
    let stale: Vec<PathBuf> = std::fs::read_dir(state.join("runs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(stale.len(), 1, "the killed run's state is still there");

    // The next run removes it (and reports so).
    let (code, v) = boot_in(
        &dir,
        &["--until", "firmware", &image("systemd-boot-arm64.raw")],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["stale_cleanup"]["removed"],
        serde_json::json!([stale[0].to_str().unwrap()])
    );
    assert!(!stale[0].exists());
    assert!(std::fs::read_dir(state.join("runs"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn ctrl_c_shuts_the_guest_down_and_removes_the_state() {
    let dir = scratch("boot", "sigint");
    let state = dir.join("state");
    let (child, needle) = boot_in_background(&dir);
    // The running QEMU is confined by seccomp (mode 2, a filter), as its
    // `-sandbox` asks, and (bootproof running as root) runs as nobody:
    // real, effective, saved and filesystem ids, and no other group.
    let pids = qemu_with(&needle);
    assert_eq!(pids.len(), 1, "{needle}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", pids[0])).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(field("Seccomp:"), ["2"], "{status}");
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    if root {
        assert_eq!(field("Uid:"), ["65534"; 4], "{status}");
        assert_eq!(field("Gid:"), ["65534"; 4], "{status}");
        assert_eq!(field("Groups:"), ["65534"], "{status}");
        assert_eq!(field("CapEff:"), ["0000000000000000"], "{status}");
    } else {
        eprintln!("not root: QEMU keeps this user's identity (no switch to check)");
    }
    ok(Command::new("kill").args(["-INT", &child.id().to_string()]));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"]["outcome"], "interrupted");
    assert!(qemu_with(&needle).is_empty(), "QEMU was shut down");
    assert!(
        std::fs::read_dir(state.join("runs"))
            .unwrap()
            .next()
            .is_none(),
        "the run's state was removed"
    );
}
