//! Firmware from QEMU's real descriptors, QEMU's override/hide rules, and
//! the KVM probe on this host.

use bootproof_vm::accel::{decide, probe_kvm, probe_kvm_cached, Accel, Probe};
use bootproof_vm::firmware::{load, search_dirs, select, FirmwareError, Mapping, Want};
use bootproof_vm::machine::Arch;
use std::path::PathBuf;

fn want(arch: &str, machine: &str, secure: Option<bool>, keys: Option<bool>) -> Want {
    Want {
        arch: arch.parse().unwrap(),
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
    // A machine no descriptor targets: the error lists every candidate and
    // why it was rejected.
    let err = select(&descs, &want("aarch64", "sbsa-ref-10.0", None, None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sbsa-ref-10.0") && err.contains("60-edk2-aarch64.json"),
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
    let host = Arch::host().expect("tests run on aarch64 or x86_64");
    let probe = probe_kvm(host);
    let d = decide(Some(host), host, || probe.clone());
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
    assert!(cache.join(format!("kvm-probe-v2-{host}.json")).exists());
    assert_eq!(probe_kvm_cached(host, &cache), first);
    std::fs::remove_dir_all(&cache).unwrap();
}

/// A disk inside an archive: the overlay names a `json:` backing that cuts
/// the member's bytes out of the archive, and QEMU's own reader (through
/// `qemu-img convert` of the overlay) gives the disk back byte for byte,
/// for a raw member and a VMDK member alike.
#[test]
fn an_overlay_over_an_archive_member_reads_as_the_member() {
    use bootproof_vm::prepare::BackingDisk;
    use std::process::Command;
    let dir = std::env::temp_dir().join(format!("bootproof-window-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("in")).unwrap();
    let mut data = vec![0u8; 2 << 20];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i * 13 % 249) as u8;
    }
    let raw = dir.join("in/disk.raw");
    std::fs::write(&raw, &data).unwrap();
    let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
    ok(Command::new("qemu-img")
        .args(["convert", "-O", "vmdk", "-o", "subformat=streamOptimized"])
        .arg(&raw)
        .arg(dir.join("in/disk.vmdk")));
    let archive = dir.join("disks.tar");
    ok(Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.join("in"))
        .args(["disk.raw", "disk.vmdk"]));
    for (member, format) in [("disk.raw", "raw"), ("disk.vmdk", "vmdk")] {
        // Where tar put the member (bootproof's own tar reader is the
        // image crate's; here the offset comes from GNU tar's listing).
        let listing = Command::new("tar")
            .args(["-tvR", "-f"])
            .arg(&archive)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&listing.stdout);
        let block: u64 = text
            .lines()
            .find(|l| l.ends_with(member))
            .and_then(|l| l.strip_prefix("block "))
            .and_then(|l| l.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        let size = std::fs::metadata(dir.join("in").join(member))
            .unwrap()
            .len();
        let disk = BackingDisk {
            path: archive.clone(),
            format: format.into(),
            size: data.len() as u64,
            window: Some(((block + 1) * 512, size)),
        };
        let name = disk.backing_name().unwrap();
        assert!(name.starts_with("json:{"), "{name}");
        let ov = dir.join(format!("{member}.qcow2"));
        bootproof_vm::overlay::create_overlay(&ov, std::path::Path::new(&name), format, disk.size)
            .unwrap();
        let out = dir.join(format!("{member}.out"));
        ok(Command::new("qemu-img")
            .args(["convert", "-O", "raw"])
            .arg(&ov)
            .arg(&out));
        assert!(
            std::fs::read(&out).unwrap() == data,
            "{member}: QEMU reads the member"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// QEMU reads a flat-extent descriptor as the runs it names, joined in
/// order (out of file order, too): what a guest sees of an LVM2 volume in
/// several pieces.
#[test]
fn a_flat_descriptor_joins_runs_of_a_raw_file_as_qemu_reads_them() {
    use std::process::Command;
    let dir = std::env::temp_dir().join(format!("bootproof-flat-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.join("base,raw");
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 13 % 251) as u8).collect();
    std::fs::write(&base, &data).unwrap();
    let runs = [
        (300 * 512, 8 * 512),
        (10 * 512, 16 * 512),
        (2000 * 512, 512),
    ];
    let text = bootproof_vm::overlay::flat_descriptor(base.to_str().unwrap(), &runs).unwrap();
    let desc = dir.join("joined.vmdk");
    std::fs::write(&desc, text).unwrap();
    let out = dir.join("joined.out");
    let status = Command::new("qemu-img")
        .args(["convert", "-f", "vmdk", "-O", "raw"])
        .arg(&desc)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let want: Vec<u8> = runs
        .iter()
        .flat_map(|&(o, n)| data[o as usize..(o + n) as usize].to_vec())
        .collect();
    assert!(std::fs::read(&out).unwrap() == want, "the runs, in order");
    for bad in [&[(1, 512)][..], &[(0, 0)], &[(0, 100)]] {
        assert!(bootproof_vm::overlay::flat_descriptor("/x", bad).is_err());
    }
    assert!(bootproof_vm::overlay::flat_descriptor("/a\"b", &runs).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn overlay_is_a_valid_qcow2_that_reads_as_its_backing_image() {
    use bootproof_image::{Image, OpenOptions, ReadAt};
    use std::process::Command;
    let dir = std::env::temp_dir().join(format!("bootproof-overlay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let base = dir.join("base.raw");
    let mut data = vec![0u8; 3 << 20];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    std::fs::write(&base, &data).unwrap();
    let ov = dir.join("overlay.qcow2");
    bootproof_vm::overlay::create_overlay(&ov, &base, "raw", data.len() as u64).unwrap();
    // QEMU's own tools accept it and see the chain.
    let check = Command::new("qemu-img")
        .args(["check", "-q"])
        .arg(&ov)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let info = Command::new("qemu-img")
        .args(["info", "--backing-chain", "--output=json"])
        .arg(&ov)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.contains("base.raw") && text.contains("\"backing-filename-format\": \"raw\""),
        "{text}"
    );
    // Reads fall through to the backing image.
    let img = Image::open(
        &ov,
        &OpenOptions {
            allow_backing: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut got = vec![0u8; data.len()];
    img.read_at(0, &mut got).unwrap();
    assert!(got == data);
    // Writes land in the overlay; the input is untouched.
    assert!(Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", "write -P 0x5a 65536 4096"])
        .arg(&ov)
        .output()
        .unwrap()
        .status
        .success());
    assert_eq!(
        std::fs::read(&base).unwrap(),
        data,
        "the backing image is never written"
    );
    let img = Image::open(
        &ov,
        &OpenOptions {
            allow_backing: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut block = [0u8; 4096];
    img.read_at(65536, &mut block).unwrap();
    assert!(block.iter().all(|&b| b == 0x5a));
    // NVRAM: the template copied per VM, padded for virt's 64 MiB pflash.
    let (descs, _) = load(&search_dirs());
    let fw = select(&descs, &want("aarch64", "virt-10.0", Some(false), None)).unwrap();
    let Mapping::Flash {
        nvram_template: Some(t),
        ..
    } = &fw.mapping
    else {
        panic!()
    };
    let vars = dir.join("vars.fd");
    let pad = bootproof_vm::firmware::padding(Arch::Aarch64, &t.format, &t.filename);
    bootproof_vm::overlay::copy_nvram(&t.filename, &vars, pad).unwrap();
    assert_eq!(std::fs::metadata(&vars).unwrap().len(), 64 << 20);
    assert!(
        std::fs::read(&vars).unwrap() == std::fs::read(&t.filename).unwrap(),
        "byte for byte (AAVMF's template is already 64 MiB)"
    );
    assert!(
        bootproof_vm::overlay::copy_nvram(&t.filename, &vars, pad).is_err(),
        "never overwrites an existing store"
    );
    // A template with data between zero runs, copied sparsely and padded.
    let mut template = vec![0u8; 3 << 20];
    template[5] = 1;
    template[(2 << 20) + 77] = 0xff;
    template.extend_from_slice(b"tail");
    let tpath = dir.join("template.fd");
    std::fs::write(&tpath, &template).unwrap();
    let copy = dir.join("copy.fd");
    bootproof_vm::overlay::copy_nvram(&tpath, &copy, Some(8 << 20)).unwrap();
    let got = std::fs::read(&copy).unwrap();
    assert_eq!(got.len(), 8 << 20);
    assert!(got[..template.len()] == template[..] && got[template.len()..].iter().all(|&b| b == 0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn qemu_machine_type_is_resolved_and_cached_per_binary() {
    let cache = std::env::temp_dir().join(format!("bp-qemu-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    for arch in Arch::ALL {
        let q = bootproof_vm::qemu::Qemu::locate(arch).unwrap();
        // Versioned where QEMU versions the machine (`virt-10.0`,
        // `pc-q35-10.0`); riscv64 `virt` has no versions.
        let prefix = arch.info().qemu_machine_prefix;
        assert!(
            q.machine.starts_with(&format!("{prefix}-")) || q.machine == prefix,
            "{q:?}"
        );
        let first = bootproof_vm::qemu::Qemu::locate_cached(arch, &cache).unwrap();
        let file = cache.join(format!("qemu-{arch}.json"));
        assert!(file.exists());
        // A cached answer is used only for the same binary: poison the
        // identity and the cache must be ignored and rewritten.
        let second = bootproof_vm::qemu::Qemu::locate_cached(arch, &cache).unwrap();
        assert_eq!((&first.machine, &second.machine), (&q.machine, &q.machine));
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        v["identity"] = "other-binary".into();
        v["machine"] = "bogus".into();
        std::fs::write(&file, v.to_string()).unwrap();
        let third = bootproof_vm::qemu::Qemu::locate_cached(arch, &cache).unwrap();
        assert_eq!(third.machine, q.machine);
    }
    std::fs::remove_dir_all(&cache).unwrap();
}
