//! Replays every committed fuzz seed and regression input through the same
//! code the fuzz targets run, so CI catches regressions without nightly.

#[path = "../../../fuzz/src/lib.rs"]
mod fuzz_support;

use bootproof_fs::FsKind;
use bootproof_image::{Image, MemImage, ReadAt};
use std::path::Path;
use std::sync::Arc;

fn inputs(target: &str) -> Vec<Vec<u8>> {
    inputs_named(target, "")
}

/// The committed inputs of `target` whose names start with `prefix`
/// (`seed-`: the hand-made or tool-made seeds, not what fuzzing added).
fn inputs_named(target: &str, prefix: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(!out.is_empty(), "{target}: no inputs named {prefix}*");
    out.sort();
    out
}

#[test]
fn filesystem_seeds() {
    for (target, kind) in [
        ("fs_fat", FsKind::Fat32),
        ("fs_ext4", FsKind::Ext4),
        ("fs_xfs", FsKind::Xfs),
        ("fs_btrfs", FsKind::Btrfs),
        ("fs_iso9660", FsKind::Iso9660),
    ] {
        for data in inputs(target) {
            fuzz_support::fuzz_fs(kind, &data);
        }
    }
}

#[test]
fn filesystem_seeds_open_as_what_they_are() {
    // The unmodified seeds are real filesystems: each must open and list.
    for (target, kind) in [
        ("fs_ext4", FsKind::Ext4),
        ("fs_xfs", FsKind::Xfs),
        ("fs_btrfs", FsKind::Btrfs),
        ("fs_iso9660", FsKind::Iso9660),
    ] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target);
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if !p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-")
            {
                continue;
            }
            let dev: Arc<dyn ReadAt> =
                Arc::new(fuzz_support::SparseDev::decode(&std::fs::read(&p).unwrap()));
            let v = bootproof_fs::open_as(kind, dev).unwrap().unwrap();
            let names: Vec<_> = v
                .read_dir(b"/")
                .unwrap()
                .into_iter()
                .map(|e| e.name)
                .collect();
            assert!(
                names.iter().any(|n| n == b"hello.txt" || n == b"t"),
                "{}: {names:?}",
                p.display()
            );
        }
    }
}

#[test]
fn partition_table_and_qcow2_seeds() {
    for data in inputs("disk_partition_table") {
        let _ = bootproof_disk::read_partition_table(&MemImage(data));
    }
    // The LVM seeds are real PVs: each assembles the VG with its LVs; every
    // other input must just not crash.
    for data in inputs("disk_lvm") {
        let dev: Arc<dyn ReadAt> = Arc::new(fuzz_support::SparseDev::decode(&data));
        let _ = bootproof_disk::lvm::scan(&[bootproof_disk::lvm::FoundPv {
            place: "input".into(),
            device: dev,
            disk_offset: Some(0),
        }]);
    }
    for data in inputs_named("disk_lvm", "seed-") {
        let dev: Arc<dyn ReadAt> = Arc::new(fuzz_support::SparseDev::decode(&data));
        let found = bootproof_disk::lvm::scan(&[bootproof_disk::lvm::FoundPv {
            place: "seed".into(),
            device: dev,
            disk_offset: Some(0),
        }]);
        assert!(
            found
                .vgs
                .iter()
                .any(|vg| vg.name == "bp-vg" && vg.lvs.len() == 2),
            "{:?}",
            found.problems
        );
    }
    for data in inputs("image_qcow2") {
        if let Ok(img) = Image::from_reader(Arc::new(MemImage(data)), "seed.qcow2") {
            let mut buf = vec![0u8; 4096];
            let _ = img.read_at(0, &mut buf);
        }
    }
}

/// The RPM seeds are real packages (rpmbuild's three payload
/// compressions): each yields the kernel file; other inputs must just not
/// crash.
#[test]
fn rpm_seeds() {
    for data in inputs("boot_rpm") {
        let _ =
            bootproof_boot::rpm::walk_rpm(&data[..], Path::new("input.rpm"), &mut |_, _| Ok(()));
    }
    for data in inputs_named("boot_rpm", "seed-") {
        let mut names = Vec::new();
        bootproof_boot::rpm::walk_rpm(&data[..], Path::new("seed.rpm"), &mut |p, _| {
            names.push(p.to_path_buf());
            Ok(())
        })
        .unwrap();
        assert!(names.iter().any(|n| n.ends_with("vmlinuz")), "{names:?}");
    }
}

#[test]
fn boot_parser_seeds() {
    for data in inputs("boot_kernel") {
        let mut out = Vec::new();
        if let Ok(info) = bootproof_boot::kernel::load_stream(&data[..], &mut out) {
            assert_eq!(info.loadable_size, out.len() as u64);
        }
    }
    for data in inputs("boot_initrd") {
        let _ = bootproof_boot::initrd::inspect(&data);
    }
    for data in inputs("boot_pe") {
        if let Some(info) = bootproof_boot::pe::analyze(&data) {
            let _ = bootproof_boot::grub_image::parse(&data, info.pe32_plus);
            if let Some(sbat) = &info.sbat {
                let _ = bootproof_boot::signing::sbat_entries(sbat);
            }
        }
        let _ = bootproof_boot::signing::signatures(&data);
        let _ = bootproof_boot::trust::decide(&data, &[], &[]);
        let _ = bootproof_boot::trust::SignatureList::default().add_efi_lists(&data, "fuzz");
        let _ = bootproof_boot::trust::shim_vendor_lists(Some(&data));
        if let Ok(level) = bootproof_boot::sbat::SbatLevel::parse(&data, "seed") {
            let _ = bootproof_boot::sbat::verify(&data, &level, true);
        }
        let _ = bootproof_boot::sbat::shim_levels(&data);
    }
    // The Secure Boot seeds are what they claim: shim's two levels, a
    // variable's level, and a shim that carries both signatures.
    let (automatic, latest) =
        bootproof_boot::sbat::shim_levels(&seed("boot_pe", "shim-sbatlevel")).unwrap();
    assert!(latest.at_least(&automatic));
    let level =
        bootproof_boot::sbat::SbatLevel::parse(&seed("boot_pe", "sbat-level-variable"), "t")
            .unwrap();
    assert_eq!(level.revocations.len(), 4);
    let shim = bootproof_boot::signing::signatures(&seed("boot_pe", "shimaa64-signed")).unwrap();
    assert_eq!(shim.signatures.len(), 2);
    for data in inputs("boot_grub_cfg") {
        let text = String::from_utf8_lossy(&data);
        for line in text.lines() {
            let _ = bootproof_boot::grub::search(&bootproof_boot::grub::words(line));
        }
    }
}

#[test]
fn kernel_package_seeds() {
    let mut whole = 0;
    for data in inputs("boot_kernel_package") {
        let files = fuzz_support::fuzz_kernel_package(&data);
        // The untouched seeds are real packages (dpkg-deb, four
        // compressions): their regular files come out, the `build`
        // symlink never does.
        whole += usize::from(files.contains(&"boot/vmlinuz-6.1.0-x".to_string()));
        assert!(!files.iter().any(|f| f.ends_with("/build")), "{files:?}");
    }
    assert!(whole >= 4, "{whole} seeds read whole");
}

#[test]
fn console_classifier_seeds() {
    let seeds = inputs("vm_classify");
    assert!(!seeds.is_empty());
    for data in seeds {
        let Some((&chunk, console)) = data.split_first() else {
            continue;
        };
        let mut c = bootproof_vm::classify::Classifier::new();
        let mut port = bootproof_vm::ready::ReadyPort::new("/nonexistent".into());
        for piece in console.chunks(usize::from(chunk).max(1)) {
            c.feed(piece);
            if let Some(line) = port.feed(piece) {
                assert!(line.len() <= 256 && line.contains("READY=1"), "{line:?}");
                c.ready(&line, 1.0);
            }
        }
        assert!(c.events().len() <= 1000);
        let _ = (c.outcome(), c.cause(), c.waiting_for_key());
    }
}

#[test]
fn nvram_seeds() {
    let seeds = inputs("vm_nvram");
    assert!(!seeds.is_empty());
    for data in &seeds {
        let _ = bootproof_vm::nvram::variables(data);
        // regress-store-smaller-than-header: the writer's room underflowed.
        let _ = bootproof_vm::nvram::rewrite(data, |_| true, &[]);
    }
    // The real store AAVMF formatted during a boot (committed as a seed).
    let real = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/vm_nvram/seed-aavmf-after-boot"),
    )
    .unwrap();
    let vars = bootproof_vm::nvram::variables(&real).unwrap();
    let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
    assert!(names.contains(&"BootOrder"), "{names:?}");
    assert!(names.contains(&"Boot0001"), "{names:?}");
    let boot_order = vars.iter().find(|v| v.name == "BootOrder").unwrap();
    assert_eq!(boot_order.guid, "8be4df61-93ca-11d2-aa0d-00e098032b8c");
    assert_eq!(boot_order.data.len() % 2, 0);
    // Rewritten (BootOrder replaced), every other variable reads back the same.
    let order = bootproof_vm::nvram::NewVariable {
        name: "BootOrder".into(),
        guid: bootproof_vm::nvram::parse_guid(&boot_order.guid).unwrap(),
        attributes: 7,
        data: vec![2, 0],
    };
    let out = bootproof_vm::nvram::rewrite(
        &real,
        |v| v.name != "BootOrder",
        std::slice::from_ref(&order),
    )
    .unwrap();
    let mut back = bootproof_vm::nvram::variables(&out).unwrap();
    assert_eq!(
        back.pop().map(|v| (v.name, v.data)),
        Some((order.name, order.data))
    );
    let others: Vec<_> = vars.into_iter().filter(|v| v.name != "BootOrder").collect();
    assert_eq!(back, others);
}

/// The seed named `seed-{name}` of `target`.
fn seed(target: &str, name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
        .join(format!("seed-{name}"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn chain_and_closure_seeds() {
    for data in inputs("boot_grub_script") {
        fuzz_support::fuzz_grub_script(&data);
    }
    for data in inputs("boot_bls") {
        fuzz_support::fuzz_bls(&data);
    }
    for data in inputs("boot_module_closure") {
        fuzz_support::fuzz_module_closure(&data);
    }
    // The cycle seed (a needs b, b needs a) is reported, not looped on.
    let c = fuzz_support::fuzz_module_closure(&seed("boot_module_closure", "cycle"));
    assert!(!c.cycles.is_empty(), "{c:?}");
}

#[test]
fn open_image_seeds() {
    for data in inputs("open_image") {
        fuzz_support::fuzz_open_image(&data);
    }
    // The GPT seed (sfdisk, mkfs.vfat, mkfs.ext4) is a real disk: its ESP's
    // grub.cfg menu entry is found through the whole open path.
    let entries = fuzz_support::fuzz_open_image(&seed("open_image", "gpt-esp-ext4"));
    assert!(entries >= 1, "{entries}");
}

#[test]
fn renderer_and_record_seeds() {
    for data in inputs("render_escape") {
        fuzz_support::fuzz_render(&data);
    }
    for data in inputs("agent_records") {
        fuzz_support::fuzz_agent_records(&data);
    }
    // hello and done survive the chunking; the torn last line does not.
    let mut seedless = seed("agent_records", "hello-done");
    seedless.insert(0, 255);
    assert_eq!(fuzz_support::fuzz_agent_records(&seedless), 2);
}

#[test]
fn check_text_seeds() {
    for data in inputs("check_texts") {
        fuzz_support::fuzz_check_texts(&data);
    }
    // The seed's texts are a plausible Debian image: every rule is judged.
    let n = fuzz_support::fuzz_check_texts(&seed("check_texts", "debian"));
    assert!(n >= 20, "{n} findings");
}

/// An `fs_ext4` finding: a slow symlink whose inode declares 4 GB made
/// ext4-view allocate that much to read it. The target's size is checked
/// first now: reading it is a corruption error naming the size.
#[test]
fn a_symlink_declaring_gigabytes_is_refused_before_it_is_read() {
    use bootproof_fs::FileType;
    let data = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/fs_ext4/regress-symlink-target-4gb"),
    )
    .unwrap();
    let dev: Arc<dyn ReadAt> = Arc::new(fuzz_support::SparseDev::decode(&data));
    let v = bootproof_fs::open_as(FsKind::Ext4, dev).unwrap().unwrap();
    let (mut dirs, mut refused) = (vec![b"/".to_vec()], Vec::new());
    while let Some(dir) = dirs.pop() {
        for e in v.read_dir(&dir).unwrap_or_default().into_iter().take(2000) {
            let mut p = dir.clone();
            if !p.ends_with(b"/") {
                p.push(b'/');
            }
            p.extend_from_slice(&e.name);
            match e.file_type {
                FileType::Dir if p.len() < 200 => dirs.push(p),
                FileType::Symlink => {
                    if let Err(err) = v.read_link(&p) {
                        refused.push(err.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    assert!(
        refused.iter().any(|e| e.contains("symlink target of")),
        "{refused:?}"
    );
}

/// The ds-identify seeds hold the lines of Debian 12's script that set
/// its per-architecture default (cloud-init searches on aarch64, not on
/// x86_64), with and without a configuration file that overrides it.
#[test]
fn ds_identify_seeds() {
    use bootproof_runtime::cloud_init::judge;
    for data in inputs("runtime_ds_identify") {
        fuzz_support::fuzz_ds_identify(&data);
    }
    let seed = |n: &str| String::from_utf8(inputs_named("runtime_ds_identify", n).remove(0));
    let script = seed("seed-debian12").unwrap();
    assert!(!judge(Some(&script), None, "x86_64").searches);
    assert!(judge(Some(&script), None, "aarch64").searches);
    let cfg = "policy: search,found=all,maybe=none,notfound=enabled\n";
    assert!(judge(Some(&script), Some(cfg), "x86_64").searches);
    assert!(!fuzz_support::fuzz_ds_identify(
        &inputs_named("runtime_ds_identify", "seed-cfg-disabled").remove(0)
    ));
}

/// The package-index seeds are real excerpts of Debian's and Ubuntu's
/// indexes and createrepo_c's metadata: each resolves its metapackage to
/// the kernel and, for Ubuntu and RPM, to its module packages.
#[test]
fn package_index_seeds() {
    use bootproof_runtime::kernel_library::resolve_in;
    for data in inputs("runtime_package_index") {
        fuzz_support::fuzz_package_index(&data);
    }
    let seed = |n: &str| inputs_named("runtime_package_index", n).remove(0);
    let debian = resolve_in(&seed("seed-debian")[..], "linux-image-arm64", &[]).unwrap();
    assert_eq!(debian.len(), 1);
    assert!(debian[0].name.starts_with("linux-image-6.1.0-") && debian[0].sha256.len() == 64);
    let ubuntu = resolve_in(
        &seed("seed-ubuntu")[..],
        "linux-image-generic-hwe-24.04",
        &[],
    )
    .unwrap();
    let names: Vec<&str> = ubuntu.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "linux-image-7.0.0-44-generic",
            "linux-modules-7.0.0-44-generic"
        ]
    );
    let ga = resolve_in(&seed("seed-ubuntu")[..], "linux-image-generic", &[]).unwrap();
    assert_eq!(ga.len(), 3, "{ga:?}");
    // createrepo_c's primary metadata for kernel-core, -modules-core and
    // -modules packages built by rpmbuild.
    let primary = seed("seed-createrepo-primary");
    let rpm = bootproof_runtime::kernel_library::resolve_in_primary(
        &primary[..],
        "kernel-core",
        &[],
        "aarch64",
    )
    .unwrap();
    let names: Vec<&str> = rpm.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["kernel-core", "kernel-modules-core", "kernel-modules"]
    );
    assert_eq!(rpm[0].version, "5.14.0-503.11.1.el9_5");
    let repomd = seed("seed-createrepo-repomd");
    let (href, _) = bootproof_runtime::kernel_library::primary_location(&repomd[..]).unwrap();
    assert!(
        href.starts_with("repodata/") && href.ends_with("-primary.xml.gz"),
        "{href}"
    );
}
