//! Firmware from QEMU's real descriptors, QEMU's override/hide rules, and
//! the KVM probe on this host.

use bootproof_vm::accel::{decide, probe_kvm, probe_kvm_cached, Accel, Probe};
use bootproof_vm::firmware::{load, search_dirs, select, FirmwareError, Mapping, Want};
use std::path::PathBuf;

fn want(arch: &str, machine: &str, secure: Option<bool>, keys: Option<bool>) -> Want {
    Want {
        arch: arch.into(),
        machine: machine.into(),
        interface: "uefi".into(),
        secure_boot: secure,
        enrolled_keys: keys,
    }
}

fn name(d: &bootproof_vm::firmware::Descriptor) -> String {
    d.source.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn firmware_from_the_installed_descriptors() {
    let (descs, bad) = load(&search_dirs());
    assert!(bad.is_empty(), "{bad:?}");
    assert!(
        descs.len() >= 4,
        "install qemu-efi-aarch64 and ovmf (scripts/setup-test-deps.sh)"
    );
    // aarch64 virt without Secure Boot: AAVMF, split flash with a template.
    let d = select(&descs, &want("aarch64", "virt-10.0", Some(false), None)).unwrap();
    assert_eq!(name(&d), "60-edk2-aarch64.json");
    match &d.mapping {
        Mapping::Flash {
            executable,
            nvram_template,
            ..
        } => {
            assert!(
                executable.filename.exists() && nvram_template.as_ref().unwrap().filename.exists()
            );
        }
        other => panic!("{other:?}"),
    }
    // x86_64 q35: Secure Boot with keys enrolled picks the 40- descriptor, off picks 60-.
    assert_eq!(
        name(
            &select(
                &descs,
                &want("x86_64", "pc-q35-10.0", Some(true), Some(true))
            )
            .unwrap()
        ),
        "40-edk2-x86_64-secure-enrolled.json"
    );
    assert_eq!(
        name(&select(&descs, &want("x86_64", "pc-q35-10.0", Some(false), None)).unwrap()),
        "60-edk2-x86_64.json"
    );
    // Secure Boot needs SMM, which only q35 has: on i440fx nothing fits, and each candidate says why.
    match select(&descs, &want("x86_64", "pc-i440fx-10.0", Some(true), None)) {
        Err(FirmwareError::NoneFits { rejected, .. }) => {
            assert!(
                rejected
                    .iter()
                    .any(|r| r.reason.contains("q35") || r.reason.contains("pc-i440fx")),
                "{rejected:?}"
            );
            assert!(
                rejected.iter().any(|r| r.reason.contains("architecture")),
                "aarch64 descriptors are rejected for their architecture"
            );
        }
        Ok(d) => panic!("picked {}", name(&d)),
    }
    let err = select(&descs, &want("riscv64", "virt-10.0", None, None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("riscv64") && err.contains("60-edk2-aarch64.json"),
        "{err}"
    );
}

#[test]
fn later_directories_override_and_empty_files_hide() {
    let base = std::env::temp_dir().join(format!("bootproof-fw-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (sys, etc) = (base.join("usr"), base.join("etc"));
    std::fs::create_dir_all(&sys).unwrap();
    std::fs::create_dir_all(&etc).unwrap();
    let code = base.join("CODE.fd");
    let vars = base.join("VARS.fd");
    std::fs::write(&code, b"code").unwrap();
    std::fs::write(&vars, b"vars").unwrap();
    let desc = |d: &str| {
        format!(
            r#"{{"description":"{d}","interface-types":["uefi"],"mapping":{{"device":"flash","executable":{{"filename":"{}","format":"raw"}},"nvram-template":{{"filename":"{}","format":"raw"}}}},"targets":[{{"architecture":"aarch64","machines":["virt-*"]}}],"features":[]}}"#,
            code.display(),
            vars.display()
        )
    };
    std::fs::write(sys.join("10-first.json"), desc("first")).unwrap();
    std::fs::write(sys.join("20-second.json"), desc("second")).unwrap();
    let dirs: Vec<PathBuf> = vec![sys.clone(), etc.clone()];
    let pick = |dirs: &[PathBuf]| {
        select(&load(dirs).0, &want("aarch64", "virt-9.2", None, None)).map(|d| d.description)
    };
    assert_eq!(pick(&dirs).unwrap(), "first", "name order");
    std::fs::write(etc.join("10-first.json"), desc("override")).unwrap();
    assert_eq!(
        pick(&dirs).unwrap(),
        "override",
        "a same-named file in a later directory replaces it"
    );
    std::fs::write(etc.join("10-first.json"), "").unwrap();
    assert_eq!(pick(&dirs).unwrap(), "second", "an empty file hides it");
    std::fs::remove_file(&vars).unwrap();
    let err = pick(&dirs).unwrap_err().to_string();
    assert!(err.contains("VARS.fd is not installed"), "{err}");
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn kvm_probe_decides_for_this_host() {
    let host = std::env::consts::ARCH;
    let probe = probe_kvm(host);
    let d = decide(host, host, || probe.clone());
    match &probe {
        Probe::Works => assert_eq!(d.accel, Accel::Kvm),
        Probe::GuestFailed(detail) => {
            assert_eq!(d.accel, Accel::Tcg);
            assert!(
                !detail.is_empty() && d.reason.contains(detail.as_str()),
                "{}",
                d.reason
            );
        }
        _ => assert_eq!(d.accel, Accel::Tcg),
    }
    eprintln!("this host: {probe:?} -> {d:?}");
    // Cached per host boot: the second call reads the cache file.
    let cache = std::env::temp_dir().join(format!("bootproof-kvm-cache-{}", std::process::id()));
    let first = probe_kvm_cached(host, &cache);
    assert!(cache.join(format!("kvm-probe-{host}.json")).exists());
    assert_eq!(probe_kvm_cached(host, &cache), first);
    std::fs::remove_dir_all(&cache).unwrap();
}
