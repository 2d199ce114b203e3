//! `inspect` says who signed each EFI binary. Compared on Debian's real
//! signed shim (Microsoft's two signatures) and signed kernel with
//! sbsigntool's `sbverify` (signers, issuers, certificates, and the image
//! hash when a byte changed after signing), and with binutils' `objcopy`
//! for the `.sbat` section.

mod common;

use bootproof_testkit::{artifact_kernel, artifacts, ok, scratch};
use common::bootproof;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A FAT image holding `files` (name in the image, source on the host).
fn fat_with(dir: &Path, files: &[(&str, PathBuf)]) -> PathBuf {
    let img = dir.join("esp.img");
    ok(Command::new("mkfs.vfat").arg("-C").arg(&img).arg("65536"));
    ok(Command::new("mmd")
        .arg("-i")
        .arg(&img)
        .args(["::/EFI", "::/EFI/BOOT"]));
    for (name, src) in files {
        ok(Command::new("mcopy")
            .arg("-i")
            .arg(&img)
            .arg(src)
            .arg(format!("::/EFI/BOOT/{name}")));
    }
    img
}

/// `inspect --json`'s `efi_binaries`, by file name.
fn binaries(img: &Path) -> Vec<(String, Value)> {
    let out = bootproof(&["inspect", "--json", img.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["efi_binaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let name = b["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            (name, b.clone())
        })
        .collect()
}

fn binary<'a>(all: &'a [(String, Value)], name: &str) -> &'a Value {
    &all.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} listed"))
        .1
}

/// OpenSSL's `/C=US/O=x/CN=y` as bootproof writes it, `C=US, O=x, CN=y`.
fn dn(slashed: &str) -> String {
    slashed
        .split('/')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One signature as `sbverify --list` prints it: its issuer and each
/// certificate's (subject, issuer).
#[derive(Debug, Default, PartialEq)]
struct Listed {
    issuers: Vec<String>,
    certificates: Vec<(String, String)>,
}

fn sbverify_list(file: &Path) -> Vec<Listed> {
    let out = Command::new("sbverify")
        .arg("--list")
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut sigs: Vec<Listed> = Vec::new();
    let mut in_issuers = false;
    for line in text.lines() {
        if line.starts_with("signature ") {
            sigs.push(Listed::default());
        } else if line == "image signature issuers:" {
            in_issuers = true;
        } else if line == "image signature certificates:" {
            in_issuers = false;
        } else if let Some(i) = line.strip_prefix(" - ").filter(|_| in_issuers) {
            sigs.last_mut().unwrap().issuers.push(dn(i));
        } else if let Some(s) = line.strip_prefix(" - subject: ") {
            sigs.last_mut()
                .unwrap()
                .certificates
                .push((dn(s), String::new()));
        } else if let Some(i) = line.strip_prefix("   issuer:  ") {
            sigs.last_mut().unwrap().certificates.last_mut().unwrap().1 = dn(i);
        }
    }
    sigs
}

fn ours(b: &Value) -> Vec<Listed> {
    b["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Listed {
            issuers: vec![s["issuer"].as_str().unwrap().to_string()],
            certificates: s["certificates"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["subject"].as_str().unwrap().to_string(),
                        c["issuer"].as_str().unwrap().to_string(),
                    )
                })
                .collect(),
        })
        .collect()
}

fn debian(arch: &str, rel: &str) -> PathBuf {
    artifacts().join(arch).join("root").join(rel)
}

#[test]
fn signers_and_certificates_are_sbverifys() {
    let dir = scratch("signatures", "sbverify");
    let files = [
        (
            "BOOTX64.EFI",
            debian("amd64", "usr/lib/shim/shimx64.efi.signed"),
        ),
        (
            "BOOTAA64.EFI",
            debian("arm64", "usr/lib/shim/shimaa64.efi.signed"),
        ),
        (
            "grubx64.efi",
            debian("amd64", "usr/lib/grub/x86_64-efi/monolithic/grubx64.efi"),
        ),
        ("vmlinuz.efi", artifact_kernel("amd64")),
    ];
    let img = fat_with(&dir, &files);
    let all = binaries(&img);
    for (name, src) in &files {
        let b = binary(&all, name);
        assert_eq!(
            ours(b),
            sbverify_list(src),
            "{name}: signatures as sbverify lists them"
        );
        for s in b["signatures"].as_array().unwrap() {
            assert_eq!(s["digest_matches"], true, "{name}: unchanged since signing");
            assert_eq!(s["digest"], b["authenticode_sha256"], "{name}");
            // sbverify without --cert checks the hash first (then a chain
            // it may not have: the kernel carries only Debian's signer).
            let st = Command::new("sbverify").arg(src).output().unwrap();
            let said = String::from_utf8_lossy(&st.stderr);
            assert!(
                !said.contains("fails hash check"),
                "{name}: sbverify: {said}"
            );
        }
    }
    let shim = binary(&all, "BOOTX64.EFI");
    assert_eq!(shim["kind"], "shim");
    assert_eq!(
        shim["signatures"].as_array().unwrap().len(),
        2,
        "Microsoft's 2011 and 2023 CAs"
    );
    assert!(binary(&all, "grubx64.efi")["signatures"]
        .as_array()
        .unwrap()
        .is_empty());
    let k = binary(&all, "vmlinuz.efi");
    assert_eq!(k["kind"], "linux-kernel");
    assert!(k["signatures"][0]["signer"]["subject"]
        .as_str()
        .unwrap()
        .contains("Debian Secure Boot Signer"));
}

#[test]
fn a_byte_changed_after_signing_is_a_digest_mismatch_with_sbverifys_hashes() {
    let dir = scratch("signatures", "tampered");
    let src = debian("amd64", "usr/lib/shim/shimx64.efi.signed");
    let mut data = std::fs::read(&src).unwrap();
    // A byte of .text (file offset 0x22000 is inside it in every shim 15/16 build).
    data[0x22000] ^= 0xff;
    let changed = dir.join("changed.efi");
    std::fs::write(&changed, &data).unwrap();
    let img = fat_with(&dir, &[("BOOTX64.EFI", changed.clone())]);
    let all = binaries(&img);
    let b = binary(&all, "BOOTX64.EFI");
    let out = Command::new("sbverify").arg(&changed).output().unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(k))
            .unwrap_or_else(|| panic!("sbverify prints {k}: {text}"))
            .trim()
            .to_string()
    };
    // sbverify: "got" is the signed hash, "expecting" the image's own.
    assert_eq!(b["authenticode_sha256"], field("expecting:").as_str());
    let first = &b["signatures"][0];
    assert_eq!(first["digest"], field("got:").as_str());
    assert_eq!(first["digest_matches"], false);
    let human = bootproof(&["inspect", "--color", "never", img.to_str().unwrap()]);
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(human.contains("digest MISMATCH"), "{human}");
}

#[test]
fn sbat_entries_are_objcopys_section() {
    let dir = scratch("signatures", "sbat");
    let files = [
        (
            "BOOTX64.EFI",
            debian("amd64", "usr/lib/shim/shimx64.efi.signed"),
        ),
        (
            "grubx64.efi",
            debian("amd64", "usr/lib/grub/x86_64-efi/monolithic/grubx64.efi"),
        ),
    ];
    let img = fat_with(&dir, &files);
    let all = binaries(&img);
    for (name, src) in &files {
        let section = dir.join(format!("{name}.sbat"));
        ok(Command::new("objcopy")
            .args(["-O", "binary", "--only-section=.sbat"])
            .arg(src)
            .arg(&section));
        let csv = String::from_utf8(std::fs::read(&section).unwrap()).unwrap();
        let want: Vec<(String, Option<u64>)> = csv
            .trim_end_matches('\0')
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let mut f = l.split(',');
                (
                    f.next().unwrap().to_string(),
                    f.next().and_then(|g| g.parse().ok()),
                )
            })
            .collect();
        let got: Vec<(String, Option<u64>)> = binary(&all, name)["sbat"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["component"].as_str().unwrap().to_string(),
                    e["generation"].as_u64(),
                )
            })
            .collect();
        assert!(!want.is_empty(), "{name} has an .sbat section");
        assert_eq!(got, want, "{name}");
    }
}
