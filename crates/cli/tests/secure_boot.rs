//! `check --secure-boot` predicts a Secure Boot boot statically. The
//! oracles: `virt-fw-vars` (python3-virt-firmware) extracts the db
//! certificates of Debian's OVMF stores, and sbsigntool's `sbverify --cert`
//! checks each signature that bootproof says chains to one of them. The
//! boots that confirm the predictions are in secure_boot_vm.rs
//! (`secure_boot_firmware_rejects_unsigned_loaders` and the rest).

mod common;

use bootproof_boot::pe::PeInfo;
use bootproof_boot::trust::{decide, shim_vendor_lists, Verdict};
use bootproof_platform::Arch;
use bootproof_runtime::secure_boot::trust_store;
use bootproof_testkit::{
    artifact_kernel, artifacts, boot_images, ok, scratch, signature_cert, signature_der, workspace,
};
use common::{check_secure_boot, finding};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The db certificates of a variable store, as PEM files, by virt-fw-vars.
fn db_certs(vars: &Path, dir: &Path) -> Vec<PathBuf> {
    ok(Command::new("virt-fw-vars")
        .arg("-i")
        .arg(vars)
        .arg("--extract-certs")
        .current_dir(dir));
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("db-"))
        .collect()
}

/// The certificates of `file`'s first signature, as OpenSSL prints a
/// PKCS#7 bag (leaf first): cut from the PE security directory here, read
/// by `openssl pkcs7`.
fn signature_bag(file: &Path, dir: &Path) -> PathBuf {
    let p7 = signature_der(file, 1, dir);
    let bag = dir.join("bag.pem");
    ok(Command::new("openssl")
        .args(["pkcs7", "-inform", "der", "-print_certs", "-in"])
        .arg(&p7)
        .arg("-out")
        .arg(&bag));
    bag
}

/// Whether OpenSSL builds a chain from the bag's leaf to `ca` (dates
/// ignored, as firmware ignores them).
fn openssl_chains(bag: &Path, ca: &Path) -> bool {
    Command::new("openssl")
        .args(["verify", "-no_check_time", "-partial_chain", "-CAfile"])
        .arg(ca)
        .arg("-untrusted")
        .arg(bag)
        .arg(bag)
        .output()
        .unwrap()
        .status
        .success()
}

/// sbverify with `--cert`: the signature verifies and its hash matches
/// (sbverify accepts an incomplete chain, so it is an oracle for
/// acceptance only).
fn sbverify(cert: &Path, file: &Path) -> bool {
    Command::new("sbverify")
        .arg("--cert")
        .arg(cert)
        .arg(file)
        .output()
        .unwrap()
        .status
        .success()
}

fn shim() -> PathBuf {
    artifacts().join("amd64/root/usr/lib/shim/shimx64.efi.signed")
}

#[test]
fn microsofts_keys_accept_shim_and_shim_refuses_the_unsigned_grub() {
    let img = boot_images().join("debian-grub-amd64.raw");
    let r = check_secure_boot(&img, "microsoft");
    let (outcome, evidence) = finding(&r, "secureboot.first-stage");
    assert_eq!(outcome, "pass", "{evidence}");
    assert!(
        evidence.contains("Microsoft Corporation UEFI CA 2011 (db)"),
        "{evidence}"
    );
    let (outcome, evidence) = finding(&r, "secureboot.second-stage");
    assert_eq!(outcome, "fail");
    assert!(evidence.contains("grubx64.efi: unsigned"), "{evidence}");
    assert_eq!(finding(&r, "secureboot.kernel").0, "skip");
    assert_eq!(r["prediction"]["stage"], "loader");
    // The oracle: the db certificate bootproof names verifies shim.
    let dir = scratch("secure-boot", "ms");
    let store = trust_store("microsoft", Arch::X86_64).unwrap();
    let certs = db_certs(Path::new(&store.name), &dir);
    assert_eq!(
        certs.len(),
        store.db.certs.len(),
        "virt-fw-vars lists as many db certificates"
    );
    let ca = certs
        .iter()
        .find(|p| {
            p.to_string_lossy()
                .contains("MicrosoftCorporationUEFICA2011")
        })
        .expect("the UEFI CA 2011 in db");
    assert!(
        sbverify(ca, &shim()),
        "sbverify --cert agrees shim verifies with it"
    );
    assert!(
        openssl_chains(&signature_bag(&shim(), &dir), ca),
        "openssl builds the chain"
    );
}

#[test]
fn a_store_without_microsofts_ca_refuses_shim_at_the_first_stage() {
    let img = boot_images().join("debian-grub-amd64.raw");
    let r = check_secure_boot(&img, "snakeoil");
    let (outcome, evidence) = finding(&r, "secureboot.first-stage");
    assert_eq!(outcome, "fail");
    assert!(
        evidence.contains("chains to no certificate of the allow list"),
        "{evidence}"
    );
    assert_eq!(finding(&r, "secureboot.second-stage").0, "skip");
    assert_eq!(r["prediction"]["stage"], "firmware");
    let dir = scratch("secure-boot", "snakeoil");
    let store = trust_store("snakeoil", Arch::X86_64).unwrap();
    let bag = signature_bag(&shim(), &dir);
    let certs = db_certs(Path::new(&store.name), &dir);
    assert!(!certs.is_empty());
    for cert in certs {
        assert!(
            !openssl_chains(&bag, &cert),
            "openssl: shim does not chain to {}",
            cert.display()
        );
    }
}

#[test]
fn shim_accepts_debians_kernel_by_its_vendor_certificate_and_db_alone_does_not() {
    let store = trust_store("microsoft", Arch::X86_64).unwrap();
    let shim_bytes = std::fs::read(shim()).unwrap();
    let (vendor, vendor_dbx) = shim_vendor_lists(PeInfo::section_data(&shim_bytes, ".vendor_cert"))
        .expect("Debian's shim has a .vendor_cert")
        .unwrap();
    let k = std::fs::read(artifact_kernel("amd64")).unwrap();
    match decide(&k, &[&store.db, &vendor], &[&store.dbx, &vendor_dbx]) {
        Verdict::Accepted { by, .. } => assert_eq!(by, "Debian Secure Boot CA (shim vendor_cert)"),
        v => panic!("{v:?}"),
    }
    assert!(matches!(
        decide(&k, &[&store.db], &[&store.dbx]),
        Verdict::Rejected(_)
    ));
    // Oracle: objcopy's .vendor_cert, cut as shim's header says, verifies
    // the kernel with sbverify; no db certificate does.
    let dir = scratch("secure-boot", "vendor");
    let vc = dir.join("vendor_cert.bin");
    ok(Command::new("objcopy")
        .args(["-O", "binary", "--only-section=.vendor_cert"])
        .arg(shim())
        .arg(&vc));
    let raw = std::fs::read(&vc).unwrap();
    let field = |i: usize| u32::from_le_bytes(raw[i * 4..i * 4 + 4].try_into().unwrap()) as usize;
    let der = dir.join("vendor.der");
    std::fs::write(&der, &raw[field(2)..field(2) + field(0)]).unwrap();
    let pem = dir.join("vendor.pem");
    ok(Command::new("openssl")
        .args(["x509", "-inform", "der", "-in"])
        .arg(&der)
        .arg("-out")
        .arg(&pem));
    assert!(sbverify(&pem, &artifact_kernel("amd64")));
    let bag = signature_bag(&artifact_kernel("amd64"), &dir);
    assert!(openssl_chains(&bag, &pem));
    for cert in db_certs(Path::new(&store.name), &dir) {
        assert!(!openssl_chains(&bag, &cert), "{}", cert.display());
    }
}

#[test]
fn a_kernel_changed_after_signing_is_refused() {
    let store = trust_store("microsoft", Arch::X86_64).unwrap();
    let shim_bytes = std::fs::read(shim()).unwrap();
    let (vendor, _) = shim_vendor_lists(PeInfo::section_data(&shim_bytes, ".vendor_cert"))
        .unwrap()
        .unwrap();
    let mut k = std::fs::read(artifact_kernel("amd64")).unwrap();
    let at = k.len() / 2;
    k[at] ^= 0x55;
    match decide(&k, &[&store.db, &vendor], &[&store.dbx]) {
        Verdict::Rejected(why) => assert!(why.contains("changed after signing"), "{why}"),
        v => panic!("{v:?}"),
    }
}

#[test]
fn firmware_trusting_only_microsofts_2023_ca_runs_shim_by_its_second_signature() {
    // A directory store holding only the 2023 CA (cut from shim's own
    // second signature by openssl): shim is accepted by that signature.
    let dir = scratch("secure-boot", "ca2023");
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let ca = signature_cert(&shim(), 2, "Microsoft UEFI CA 2023", &dir);
    std::fs::copy(&ca, certs.join("ca2023.pem")).unwrap();
    let img = boot_images().join("debian-grub-amd64.raw");
    let r = check_secure_boot(&img, certs.to_str().unwrap());
    let (outcome, evidence) = finding(&r, "secureboot.first-stage");
    assert_eq!(outcome, "pass", "{evidence}");
    assert!(
        evidence.contains("signature 2 chains to Microsoft UEFI CA 2023 (ca2023.pem)"),
        "{evidence}"
    );
    assert!(
        !openssl_chains(&signature_bag(&shim(), &dir), &ca),
        "signature 1 does not chain to it"
    );
    assert_eq!(r["prediction"]["rules"][0], "secureboot.second-stage");
}

/// A PEM certificate as DER, by openssl.
fn der_of(pem: &Path) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(["x509", "-outform", "der", "-in"])
        .arg(pem)
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn built_in_stores_hold_microsofts_uefi_cas_and_judge_shim_by_each() {
    // The oracle for the built-in bytes: the 2011 CA as virt-fw-vars cuts
    // it from Debian's .ms store, the 2023 CA as openssl prints it from
    // shim's second signature.
    let dir = scratch("secure-boot", "built-in");
    let ms = trust_store("microsoft", Arch::X86_64).unwrap();
    let ca2011 = db_certs(Path::new(&ms.name), &dir)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("UEFICA2011"))
        .unwrap();
    let ca2023 = signature_cert(&shim(), 2, "Microsoft UEFI CA 2023", &dir);
    let built_in = |file: &str| {
        std::fs::read(workspace().join("crates/runtime/src/certs").join(file)).unwrap()
    };
    assert_eq!(built_in("microsoft-uefi-ca-2011.der"), der_of(&ca2011));
    assert_eq!(built_in("microsoft-uefi-ca-2023.der"), der_of(&ca2023));
    for (name, n) in [
        ("microsoft-2011", 1),
        ("microsoft-2023", 1),
        ("microsoft-both", 2),
    ] {
        let store = trust_store(name, Arch::X86_64).unwrap();
        assert_eq!(store.db.certs.len(), n, "{name}");
        assert!(store.dbx.is_empty() && store.name.ends_with("(built in)"));
    }
    // Debian's shim carries both signatures: each store accepts it by its own.
    let img = boot_images().join("debian-grub-amd64.raw");
    for (store, want) in [
        (
            "microsoft-2011",
            "signature 1 chains to Microsoft Corporation UEFI CA 2011 (built in)",
        ),
        (
            "microsoft-2023",
            "signature 2 chains to Microsoft UEFI CA 2023 (built in)",
        ),
        (
            "microsoft-both",
            "signature 1 chains to Microsoft Corporation UEFI CA 2011 (built in)",
        ),
    ] {
        let report = check_secure_boot(&img, store);
        let (outcome, evidence) = finding(&report, "secureboot.first-stage");
        assert_eq!(outcome, "pass", "{store}: {evidence}");
        assert!(evidence.contains(want), "{store}: {evidence}");
    }
}
