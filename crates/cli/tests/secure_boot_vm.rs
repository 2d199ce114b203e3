//! Secure Boot boots that confirm `check --secure-boot`'s predictions:
//! real OVMF and AAVMF with Secure Boot and the keys Debian's firmware
//! packages enrol (or variable stores changed by `virt-fw-vars`), Debian's
//! signed shim, GRUB and kernels, loaders signed by `sbsign`. Each boot
//! reports the prediction beside what it showed, and both are asserted.

mod common;

use common::*;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A boot-chain test image's path, as an argument.
fn image(name: &str) -> String {
    boot_images().join(name).to_str().unwrap().to_string()
}

const SB_RULES: [&str; 4] = [
    "secureboot.first-stage",
    "secureboot.shim-sbat",
    "secureboot.second-stage",
    "secureboot.kernel",
];
/// OVMF with Secure Boot, for variable stores made here.
const OVMF_SECBOOT: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
/// The owner GUID virt-fw-vars records for keys enrolled here.
const OWNER: &str = "77fa9abd-0359-4d32-bd60-28f4e78f784b";

#[test]
fn debians_signed_chain_boots_under_microsofts_keys_as_predicted() {
    // shim (Microsoft's UEFI CA) -> grub-efi-*-signed (Debian's key, in
    // shim's .vendor_cert) -> linux-image-* (Debian's key), SBAT in force
    // from shim's automatic level: predicted to pass every stage, then
    // booted to the init's power-off on both architectures.
    for arch in ["amd64", "arm64"] {
        let img = image(&format!("debian-signed-{arch}.raw"));
        let r = check_secure_boot(&img, "microsoft");
        for id in SB_RULES {
            let (outcome, evidence) = finding(&r, id);
            assert_eq!(outcome, "pass", "{arch} {id}: {evidence}");
        }
        let (_, second) = finding(&r, "secureboot.second-stage");
        assert!(
            second.contains("Debian Secure Boot CA (shim vendor_cert)")
                && second.contains("SBAT grub,5 ≥ 5")
                && second.contains("shim's automatic level"),
            "{arch}: {second}"
        );
        assert!(finding(&r, "secureboot.shim-sbat").1.contains("shim,4 ≥ 4"));
        let (code, v) = boot(&format!("sb-signed-{arch}"), &["--secure-boot", &img]);
        assert_booted(code, &v);
        secure_boot_agrees(&v, "none");
        // (The command line has `quiet`: the kernel says little before init.)
        assert_in_order(&v, &["grub-started", "powered-off"]);
        assert!(console(&v).contains("bootproof-init"), "{arch}: init ran");
    }
}

#[test]
fn an_sbat_level_that_revokes_grub_or_shim_stops_shim_as_predicted() {
    // SbatLevel variables written by virt-fw-vars, dated after shim's
    // built-in level so shim keeps them: one revokes Debian's GRUB
    // (generation 5), one shim itself (generation 4).
    let dir = scratch("boot", "sbat");
    let img = image("debian-signed-amd64.raw");
    for (name, level, failed, words) in [
        (
            "grub6",
            "sbat,1,2099010100\ngrub,6\n",
            "secureboot.second-stage",
            "Security Violation",
        ),
        (
            "shim5",
            "sbat,1,2099010100\nshim,5\n",
            "secureboot.shim-sbat",
            "SBAT self-check failed",
        ),
    ] {
        let file = dir.join(format!("{name}.csv"));
        std::fs::write(&file, level).unwrap();
        let vars = ms_vars_with(
            "amd64",
            &dir,
            &format!("{name}.fd"),
            &[OsStr::new("--set-sbat-level"), file.as_os_str()],
        );
        let r = check_secure_boot(&img, vars.to_str().unwrap());
        let (outcome, evidence) = finding(&r, failed);
        assert_eq!(outcome, "fail", "{name}: {evidence}");
        assert!(evidence.contains("is revoked"), "{evidence}");
        assert_eq!(r["prediction"]["rules"][0], failed, "{name}");
        let firmware = format!("{OVMF_SECBOOT},{}", vars.display());
        let (code, v) = boot(
            &format!("sb-sbat-{name}"),
            &["--secure-boot", "--firmware", &firmware, &img],
        );
        let (stage, cause) = failure(code, &v);
        assert_eq!(stage, "secure-boot-rejected", "{name}");
        assert!(cause.contains(words), "{name}: {cause}");
        secure_boot_agrees(&v, "loader");
    }
}

#[test]
fn a_loader_signed_with_a_moklist_key_boots_only_where_it_is_enrolled() {
    // GRUB signed by a key of our own (openssl + sbsign) behind Debian's
    // shim: refused under Microsoft's keys alone, accepted once the key is
    // in MokList (virt-fw-vars --add-mok), and the boot goes on through
    // Debian's signed kernel.
    let disk = variant("boot", "debian-grub-amd64.raw", "sb-mok");
    let dir = disk.parent().unwrap().to_path_buf();
    let esp = esp(&disk);
    let (grub, signed) = (dir.join("grub.efi"), dir.join("grub.signed"));
    ok(Command::new("mcopy")
        .args(["-n", "-i", &esp, "::/EFI/BOOT/grubx64.efi"])
        .arg(&grub));
    let (key, cert) = signing_key(&dir, "mok", "bootproof test MOK");
    sbsign(&key, &cert, &grub, &signed);
    ok(Command::new("mcopy")
        .args(["-o", "-i", &esp])
        .arg(&signed)
        .arg("::/EFI/BOOT/grubx64.efi"));
    // The oracle: sbverify accepts the signature with that certificate.
    ok(Command::new("sbverify")
        .arg("--cert")
        .arg(&cert)
        .arg(&signed));
    let path = disk.to_str().unwrap();
    let (outcome, evidence) = finding(
        &check_secure_boot(path, "microsoft"),
        "secureboot.second-stage",
    );
    assert_eq!(outcome, "fail", "{evidence}");
    let vars = ms_vars_with(
        "amd64",
        &dir,
        "mok.fd",
        &[OsStr::new("--add-mok"), OsStr::new(OWNER), cert.as_os_str()],
    );
    let r = check_secure_boot(path, vars.to_str().unwrap());
    let (outcome, evidence) = finding(&r, "secureboot.second-stage");
    assert_eq!(outcome, "pass", "{evidence}");
    assert!(
        evidence.contains("bootproof test MOK (MokList)"),
        "{evidence}"
    );
    assert_eq!(finding(&r, "secureboot.kernel").0, "pass");
    let firmware = format!("{OVMF_SECBOOT},{}", vars.display());
    let (code, v) = boot(
        "sb-mok-boot",
        &["--secure-boot", "--firmware", &firmware, path],
    );
    assert_booted(code, &v);
    secure_boot_agrees(&v, "none");
    assert!(console(&v).contains("bootproof-init"), "init ran");
}

#[test]
fn secure_boot_firmware_rejects_unsigned_loaders() {
    // OVMF with Secure Boot and Microsoft's keys enrolled (chosen from the
    // descriptors by feature): the unsigned systemd stub of a UKI is
    // refused by the firmware itself…
    let (code, v) = boot("sb-uki", &["--secure-boot", &image("uki-amd64.raw")]);
    let (stage, cause) = failure(code, &v);
    assert_eq!(stage, "uefi-shell");
    secure_boot_agrees(&v, "firmware");
    assert!(
        cause.starts_with("Secure Boot refused") && cause.contains("Access Denied"),
        "{cause}"
    );
    let descriptor = v["firmware"]["descriptor"].as_str().unwrap();
    assert!(descriptor.contains("secure"), "{descriptor}");
    assert!(v["qemu"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a.as_str().unwrap().ends_with(",smm=on")));
    // …while Microsoft-signed shim starts and refuses the unsigned GRUB.
    let (code, v) = boot(
        "sb-shim",
        &["--secure-boot", &image("debian-grub-amd64.raw")],
    );
    let (stage, cause) = failure(code, &v);
    assert_eq!(stage, "secure-boot-rejected");
    assert!(cause.contains("Security Violation"), "{cause}");
    secure_boot_agrees(&v, "loader");
    assert_in_order(&v, &["boot-option-started", "secure-boot-rejected"]);
    // `check --secure-boot` predicted both without booting: the firmware
    // refuses the UKI, shim refuses GRUB.
    for (img, stage, rule) in [
        ("uki-amd64.raw", "firmware", "secureboot.first-stage"),
        ("debian-grub-amd64.raw", "loader", "secureboot.second-stage"),
    ] {
        let p = check_secure_boot(image(img), "microsoft");
        assert_eq!(p["prediction"]["stage"], stage, "{img}");
        assert_eq!(p["prediction"]["rules"][0], rule, "{img}");
    }
}

/// The ovmf package's snakeoil certificate (its test key's).
const SNAKEOIL_CERT: &str = "/usr/share/ovmf/PkKek-1-snakeoil.pem";
/// OVMF's variable store with only the snakeoil key enrolled.
const SNAKEOIL_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd";

/// The ovmf package's snakeoil key, its password removed (openssl), in `dir`.
fn snakeoil_key(dir: &Path) -> PathBuf {
    let key = dir.join("snakeoil.key");
    ok(Command::new("openssl")
        .args(["rsa", "-passin", "pass:snakeoil", "-in"])
        .arg("/usr/share/ovmf/PkKek-1-snakeoil.key")
        .arg("-out")
        .arg(&key));
    key
}

#[test]
fn a_snakeoil_signed_uki_boots_under_the_snakeoil_store_as_predicted() {
    // The UKI (systemd's stub with Debian's kernel and an initramfs inside)
    // signed with the snakeoil key: the snakeoil firmware verifies it and
    // the stub starts the kernel its signature covers, to the init's
    // power-off; Microsoft's keys refuse it.
    let disk = variant("boot", "uki-amd64.raw", "sb-uki-snakeoil");
    let dir = disk.parent().unwrap().to_path_buf();
    let esp = esp(&disk);
    let (uki, signed) = (dir.join("uki.efi"), dir.join("uki.signed"));
    ok(Command::new("mcopy")
        .args(["-n", "-i", &esp, "::/EFI/BOOT/BOOTX64.EFI"])
        .arg(&uki));
    sbsign(&snakeoil_key(&dir), Path::new(SNAKEOIL_CERT), &uki, &signed);
    ok(Command::new("sbverify")
        .args(["--cert", SNAKEOIL_CERT])
        .arg(&signed));
    ok(Command::new("mcopy")
        .args(["-o", "-i", &esp])
        .arg(&signed)
        .arg("::/EFI/BOOT/BOOTX64.EFI"));
    let path = disk.to_str().unwrap();
    let r = check_secure_boot(path, "snakeoil");
    let (outcome, evidence) = finding(&r, "secureboot.first-stage");
    assert_eq!(outcome, "pass", "{evidence}");
    assert!(evidence.contains("(db)"), "{evidence}");
    assert_eq!(finding(&r, "secureboot.kernel").0, "skip");
    let (outcome, _) = finding(
        &check_secure_boot(path, "microsoft"),
        "secureboot.first-stage",
    );
    assert_eq!(outcome, "fail");
    // Booted under a store bootproof writes from a directory holding the
    // snakeoil certificate (PK and KEK from OVMF's enrolled store, db that
    // certificate): it boots, and Debian's Microsoft-signed chain does not.
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(SNAKEOIL_CERT, certs.join("snakeoil.pem")).unwrap();
    let store = format!("--secure-boot={}", certs.display());
    let (code, v) = boot("sb-uki-snakeoil-boot", &[&store, path]);
    assert_booted(code, &v);
    secure_boot_agrees(&v, "none");
    assert_in_order(&v, &["kernel-started", "init-reached", "powered-off"]);
    let signed_chain = image("debian-signed-amd64.raw");
    let (code, v) = boot("sb-certs-refuse-shim", &[&store, &signed_chain]);
    let (stage, cause) = failure(code, &v);
    assert_eq!(stage, "uefi-shell");
    assert!(cause.starts_with("Secure Boot refused"), "{cause}");
    secure_boot_agrees(&v, "firmware");
}

#[test]
fn a_snakeoil_signed_grub_passes_only_the_snakeoil_firmware_as_predicted() {
    // GRUB signed with the ovmf package's snakeoil key (sbsign), at the
    // removable path instead of shim.
    let disk = variant("boot", "debian-grub-amd64.raw", "sb-snakeoil");
    let dir = disk.parent().unwrap().to_path_buf();
    let esp = bootproof_testkit::esp(&disk);
    let (grub, signed) = (dir.join("grub.efi"), dir.join("grub.signed"));
    ok(Command::new("mcopy")
        .args(["-n", "-i", &esp, "::/EFI/BOOT/grubx64.efi"])
        .arg(&grub));
    sbsign(
        &snakeoil_key(&dir),
        Path::new(SNAKEOIL_CERT),
        &grub,
        &signed,
    );
    ok(Command::new("mcopy")
        .args(["-o", "-i", &esp])
        .arg(&signed)
        .arg("::/EFI/BOOT/BOOTX64.EFI"));
    let path = disk.to_str().unwrap();
    let predict = |store: &str| check_secure_boot(path, store)["prediction"].clone();
    // Microsoft's keys: predicted and observed, the firmware refuses it.
    let p = predict("microsoft");
    assert_eq!(
        (p["stage"].as_str(), p["rules"][0].as_str()),
        (Some("firmware"), Some("secureboot.first-stage"))
    );
    let (code, v) = boot("sb-snakeoil-ms", &["--secure-boot", path]);
    let (stage, cause) = failure(code, &v);
    assert_eq!(stage, "uefi-shell");
    secure_boot_agrees(&v, "firmware");
    assert!(cause.starts_with("Secure Boot refused"), "{cause}");
    // The snakeoil store: the firmware runs GRUB, which (no shim) refuses
    // the kernel: predicted at secureboot.kernel, observed in GRUB's words.
    let p = predict("snakeoil");
    assert_eq!(
        (p["stage"].as_str(), p["rules"][0].as_str()),
        (Some("loader"), Some("secureboot.kernel"))
    );
    let firmware = format!("{OVMF_SECBOOT},{SNAKEOIL_VARS}");
    let (code, v) = boot(
        "sb-snakeoil-vars",
        &["--secure-boot", "--firmware", &firmware, path],
    );
    let (stage, cause) = failure(code, &v);
    assert_eq!(stage, "secure-boot-rejected");
    assert!(cause.contains("shim_lock protocol not found"), "{cause}");
    secure_boot_agrees(&v, "loader");
    // And Microsoft-signed shim under the snakeoil store: refused by the
    // firmware, as `check --secure-boot=snakeoil` predicts (secure_boot.rs).
    let shim_image = image("debian-grub-amd64.raw");
    let (code, v2) = boot(
        "sb-shim-snakeoil",
        &["--secure-boot", "--firmware", &firmware, &shim_image],
    );
    let (stage, cause) = failure(code, &v2);
    assert_eq!(stage, "uefi-shell");
    secure_boot_agrees(&v2, "firmware");
    assert!(cause.starts_with("Secure Boot refused"), "{cause}");
    assert_in_order(
        &v,
        &[
            "boot-option-started",
            "grub-started",
            "secure-boot-rejected",
        ],
    );
}

#[test]
fn secure_boot_predictions_hold_on_arm64_too() {
    // AAVMF with Microsoft's keys runs Debian's signed shimaa64, which
    // refuses the unsigned GRUB; AAVMF's snakeoil store refuses shim.
    let img = image("debian-grub-arm64.raw");
    let (code, v) = boot("sb-arm64-ms", &["--secure-boot", &img]);
    assert_eq!(failure(code, &v).0, "secure-boot-rejected");
    secure_boot_agrees(&v, "loader");
    let snakeoil = "/usr/share/AAVMF/AAVMF_CODE.fd,/usr/share/AAVMF/AAVMF_VARS.snakeoil.fd";
    let (code, v) = boot(
        "sb-arm64-snakeoil",
        &["--secure-boot", "--firmware", snakeoil, &img],
    );
    assert_eq!(failure(code, &v).0, "uefi-shell");
    secure_boot_agrees(&v, "firmware");
}

#[test]
fn firmware_trusting_only_the_2023_ca_runs_shim_as_predicted() {
    // An OVMF variable store built by virt-fw-vars whose db holds only
    // Microsoft's UEFI CA 2023 (cut from shim's second signature): the
    // firmware runs shim, which refuses the unsigned GRUB; the report agrees.
    let dir = scratch("boot", "ca2023-vars");
    let shim = artifacts().join("amd64/root/usr/lib/shim/shimx64.efi.signed");
    let ca = bootproof_testkit::signature_cert(&shim, 2, "Microsoft UEFI CA 2023", &dir);
    let owner = "77fa9abd-0359-4d32-bd60-28f4e78f784b";
    let vars = dir.join("vars.fd");
    ok(Command::new("virt-fw-vars")
        .args(["-i", "/usr/share/OVMF/OVMF_VARS_4M.fd", "-o"])
        .arg(&vars)
        .args(["--set-pk", owner, "/usr/share/ovmf/PkKek-1-snakeoil.pem"])
        .args([
            "--add-kek",
            owner,
            "/usr/share/ovmf/PkKek-1-snakeoil.pem",
            "--add-db",
            owner,
        ])
        .arg(&ca)
        .arg("--secure-boot"));
    let firmware = format!("{OVMF_SECBOOT},{}", vars.display());
    let (code, v) = boot(
        "sb-ca2023",
        &[
            "--secure-boot",
            "--firmware",
            &firmware,
            &image("debian-grub-amd64.raw"),
        ],
    );
    assert_eq!(failure(code, &v).0, "secure-boot-rejected");
    secure_boot_agrees(&v, "loader");
    assert!(
        v["secure_boot"]["evidence"][0]
            .as_str()
            .unwrap()
            .contains("grubx64.efi"),
        "{v:#}"
    );
    // The built-in store, written by bootproof into a copy of OVMF's
    // enrolled store: Debian's signed chain boots under it, and
    // virt-fw-vars reads its db back as exactly that CA (openssl's DER
    // of it equals the built-in bytes), PK and KEK as enrolled, no dbx.
    let state = scratch("boot", "sb-builtin-2023");
    let (code, v) = boot_in(
        &state,
        &[
            "--secure-boot=microsoft-2023",
            "--keep",
            &image("debian-signed-amd64.raw"),
        ],
    );
    assert_booted(code, &v);
    secure_boot_agrees(&v, "none");
    let store_name = v["secure_boot"]["store"].as_str().unwrap();
    assert!(store_name.starts_with("microsoft-2023"), "{store_name}");
    let run_dir = PathBuf::from(v["run_dir"].as_str().unwrap());
    let out = dir.join("extracted");
    std::fs::create_dir_all(&out).unwrap();
    ok(Command::new("virt-fw-vars")
        .arg("-i")
        .arg(run_dir.join("secure-boot-vars.fd"))
        .arg("--extract-certs")
        .current_dir(&out));
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let lists: Vec<&str> = files.iter().map(|f| f.split('-').next().unwrap()).collect();
    assert_eq!(lists, ["KEK", "KEK", "PK", "db"], "{files:?}");
    let db = out.join(files.iter().find(|f| f.starts_with("db-")).unwrap());
    let der = dir.join("db.der");
    ok(Command::new("openssl")
        .args(["x509", "-outform", "der", "-in"])
        .arg(&db)
        .arg("-out")
        .arg(&der));
    let builtin = workspace().join("crates/runtime/src/certs/microsoft-uefi-ca-2023.der");
    assert_eq!(std::fs::read(der).unwrap(), std::fs::read(builtin).unwrap());
}
