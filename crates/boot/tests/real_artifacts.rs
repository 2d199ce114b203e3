//! Boot artifacts from Debian's real packages (arm64 and amd64): EFI
//! binaries are identified, kernels are recognised with their versions, and
//! every compression of the same Image loads to the same bytes.

use bootproof_boot::decompress::Compression;
use bootproof_boot::kernel::{self, KernelFormat};
use bootproof_boot::pe::{self, EfiKind, MACHINE_AARCH64, MACHINE_X86_64};
use bootproof_testkit::artifacts;
use std::path::PathBuf;

/// (path of /boot/vmlinuz-*, its version) for an arch.
fn kernel_of(arch: &str) -> (PathBuf, String) {
    let boot = artifacts().join(arch).join("root/boot");
    let name = std::fs::read_dir(&boot)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("vmlinuz-"))
        .unwrap();
    (
        boot.join(&name),
        name.trim_start_matches("vmlinuz-").to_string(),
    )
}

fn efi(arch: &str, rel: &str) -> Vec<u8> {
    std::fs::read(artifacts().join(arch).join("root").join(rel)).unwrap()
}

#[test]
fn efi_binaries_are_identified() {
    let cases: &[(&str, &str, EfiKind, u16, bool)] = &[
        (
            "arm64",
            "usr/lib/systemd/boot/efi/systemd-bootaa64.efi",
            EfiKind::SystemdBoot,
            MACHINE_AARCH64,
            false,
        ),
        (
            "amd64",
            "usr/lib/systemd/boot/efi/systemd-bootx64.efi",
            EfiKind::SystemdBoot,
            MACHINE_X86_64,
            false,
        ),
        (
            "arm64",
            "usr/lib/grub/arm64-efi/monolithic/grubaa64.efi",
            EfiKind::Grub,
            MACHINE_AARCH64,
            false,
        ),
        (
            "amd64",
            "usr/lib/grub/x86_64-efi/monolithic/grubx64.efi",
            EfiKind::Grub,
            MACHINE_X86_64,
            false,
        ),
        (
            "arm64",
            "usr/lib/shim/shimaa64.efi.signed",
            EfiKind::Shim,
            MACHINE_AARCH64,
            true,
        ),
        (
            "amd64",
            "usr/lib/shim/shimx64.efi.signed",
            EfiKind::Shim,
            MACHINE_X86_64,
            true,
        ),
    ];
    for &(arch, rel, kind, machine, signed) in cases {
        let info = pe::analyze(&efi(arch, rel)).unwrap_or_else(|| panic!("{rel} is not PE"));
        assert_eq!(info.kind, kind, "{rel}: {info:?}");
        assert_eq!(info.machine, machine, "{rel}");
        assert!(info.is_efi_application_for(machine), "{rel}");
        assert!(!info.is_efi_application_for(if machine == MACHINE_X86_64 {
            MACHINE_AARCH64
        } else {
            MACHINE_X86_64
        }));
        assert_eq!(info.signed, signed, "{rel}");
    }
    // The kernels' own EFI stubs are PE applications too.
    for (arch, machine) in [("arm64", MACHINE_AARCH64), ("amd64", MACHINE_X86_64)] {
        let (k, _) = kernel_of(arch);
        let info = pe::analyze(&std::fs::read(k).unwrap()).unwrap();
        assert_eq!(info.kind, EfiKind::LinuxKernel, "{arch}");
        assert!(info.is_efi_application_for(machine), "{arch}: {info:?}");
    }
    assert!(pe::analyze(b"not a PE file at all").is_none());
    assert!(pe::analyze(b"MZ\0\0truncated").is_none());
}

/// [`kernel::load`] (in memory) and [`kernel::load_stream`] into a writer
/// on the same bytes: the same facts, the same loadable bytes, and the
/// size reported is the size written.
fn load_both(data: &[u8]) -> Result<(kernel::KernelInfo, Vec<u8>), kernel::KernelError> {
    let streamed = {
        let mut out = Vec::new();
        kernel::load_stream(data, &mut out).map(|info| (info, out))
    };
    match kernel::load(data) {
        Ok((info, loadable)) => {
            let (s_info, s_out) = streamed.unwrap_or_else(|e| panic!("streamed: {e}"));
            assert_eq!(
                serde_json::to_value(&info).unwrap(),
                serde_json::to_value(&s_info).unwrap(),
                "load and load_stream agree"
            );
            assert!(s_out == loadable, "the same loadable bytes");
            assert_eq!(info.loadable_size, loadable.len() as u64);
            Ok((info, loadable))
        }
        Err(e) => {
            assert!(streamed.is_err(), "load_stream fails too: {e}");
            Err(e)
        }
    }
}

#[test]
fn debian_kernels_are_recognised() {
    let (k, version) = kernel_of("arm64");
    let data = std::fs::read(&k).unwrap();
    let (info, loadable) = load_both(&data).unwrap();
    assert_eq!(info.format, KernelFormat::Arm64Image);
    assert_eq!(info.arch, "aarch64");
    assert_eq!(info.version.as_deref(), Some(version.as_str()));
    assert!(info.efi_stub);
    assert_eq!(info.page_size, Some(4096));
    assert_eq!(
        &loadable[..],
        &data[..],
        "an uncompressed Image is loaded as is"
    );

    let (k, version) = kernel_of("amd64");
    let data = std::fs::read(&k).unwrap();
    let (info, loadable) = load_both(&data).unwrap();
    assert_eq!(info.format, KernelFormat::BzImage);
    assert_eq!(info.arch, "x86_64");
    assert_eq!(info.version.as_deref(), Some(version.as_str()));
    assert!(info.efi_stub);
    assert_eq!(&loadable[..], &data[..]);
}

#[test]
fn every_compression_loads_the_same_image() {
    let (k, version) = kernel_of("arm64");
    let image = std::fs::read(&k).unwrap();
    let tools: &[(&[&str], Compression)] = &[
        (&["gzip", "-9", "-c"], Compression::Gzip),
        (&["zstd", "-19", "-c", "-q"], Compression::Zstd),
        (&["xz", "--check=crc32", "-c"], Compression::Xz),
        (&["lzma", "-c"], Compression::Lzma),
        (&["lz4", "-l", "-9", "-c", "-q"], Compression::Lz4),
        (&["bzip2", "-9", "-c"], Compression::Bzip2),
    ];
    for (tool, c) in tools {
        let packed = bootproof_testkit::pipe(tool, &image);
        // Wrapped (Ubuntu-style vmlinuz).
        let (info, loadable) = load_both(&packed).unwrap_or_else(|e| panic!("{tool:?}: {e}"));
        assert_eq!(info.format, KernelFormat::Wrapped, "{tool:?}");
        assert_eq!(info.compression, Some(*c));
        assert_eq!(info.version.as_deref(), Some(version.as_str()));
        assert!(
            !info.efi_stub,
            "a compressed file cannot be run by firmware"
        );
        assert!(
            loadable[..] == image[..],
            "{tool:?}: decompressed Image differs"
        );
        // EFI zboot: the kernel's zboot header (MZ, "zimg", payload offset
        // and size, compression name) around the real compressor's output.
        let name = match c {
            Compression::Xz => "xzkern",
            other => other.name(),
        };
        let mut z = vec![0u8; 0x100];
        z[..2].copy_from_slice(b"MZ");
        z[4..8].copy_from_slice(b"zimg");
        z[8..12].copy_from_slice(&0x100u32.to_le_bytes());
        z[12..16].copy_from_slice(&(packed.len() as u32).to_le_bytes());
        z[24..24 + name.len()].copy_from_slice(name.as_bytes());
        z.extend_from_slice(&packed);
        let (info, loadable) = load_both(&z).unwrap_or_else(|e| panic!("zboot {tool:?}: {e}"));
        assert_eq!(info.format, KernelFormat::Zboot);
        assert_eq!(info.compression, Some(*c));
        assert!(loadable[..] == image[..], "zboot {tool:?}");
    }
}

#[test]
fn bad_kernels_get_errors() {
    let (k, _) = kernel_of("arm64");
    let image = std::fs::read(&k).unwrap();
    let gz = bootproof_testkit::pipe(&["gzip", "-c"], &image);
    assert!(load_both(&gz[..gz.len() / 2]).is_err(), "truncated");
    // A zboot payload declared past the end of the file, its stream whole:
    // refused by both (the stream would decode).
    let mut z = vec![0u8; 0x100];
    z[..2].copy_from_slice(b"MZ");
    z[4..8].copy_from_slice(b"zimg");
    z[8..12].copy_from_slice(&0x100u32.to_le_bytes());
    z[12..16].copy_from_slice(&(gz.len() as u32 + 100).to_le_bytes());
    z[24..28].copy_from_slice(b"gzip");
    z.extend_from_slice(&gz);
    assert!(matches!(
        load_both(&z),
        Err(kernel::KernelError::Corrupt(_))
    ));
    assert!(matches!(
        load_both(b"random bytes, not a kernel"),
        Err(kernel::KernelError::Unknown)
    ));
    let mut z = vec![0u8; 64];
    z[..2].copy_from_slice(b"MZ");
    z[4..8].copy_from_slice(b"zimg");
    z[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    z[12..16].copy_from_slice(&16u32.to_le_bytes());
    assert!(matches!(
        load_both(&z),
        Err(kernel::KernelError::Corrupt(_))
    ));
    assert!(matches!(
        kernel::load_stream(&z[..], &mut Vec::new()),
        Err(kernel::KernelError::Corrupt(_))
    ));
}

/// Module closures from Debian's unpacked kernel package: read from each
/// module's `.modinfo` (the package has no `modules.dep`), then again from
/// the `modules.dep` that kmod's `depmod` writes for the same tree, and
/// checked against kmod's `modinfo -F depends` for every module loaded.
#[test]
fn module_closures_match_kmod() {
    use bootproof_boot::modules::{resolve, HostDir};
    for arch in ["arm64", "amd64"] {
        let (_, ver) = kernel_of(arch);
        let root = artifacts().join(arch).join("root");
        let dir = root.join("lib/modules").join(&ver);
        let wanted = [
            "virtio_pci",
            "virtio_blk",
            "virtio-mmio",
            "efivarfs",
            "virtio_console",
            "ext4",
            "no_such_module",
        ];
        let from_modinfo = resolve(&HostDir(dir.clone()), &wanted);
        assert_eq!(from_modinfo.dependency_source, "modinfo");
        assert_eq!(from_modinfo.missing, ["no_such_module"], "{arch}");
        let names: Vec<&str> = from_modinfo.load.iter().map(|m| m.name.as_str()).collect();
        let at = |n: &str| names.iter().position(|x| *x == n);
        // Every module comes after what it depends on, by kmod's own reading.
        for m in &from_modinfo.load {
            let out = std::process::Command::new("modinfo")
                .args(["-F", "depends"])
                .arg(dir.join(&m.path))
                .output()
                .expect("kmod's modinfo (scripts/setup-test-deps.sh installs kmod)");
            let deps = String::from_utf8(out.stdout).unwrap();
            for d in deps.trim().split(',').filter(|d| !d.is_empty()) {
                let d = d.replace('-', "_");
                assert!(
                    at(&d).is_some_and(|i| i < at(&m.name).unwrap()),
                    "{arch}: {d} must load before {} in {names:?}",
                    m.name
                );
            }
            assert!(m.data.starts_with(b"\x7fELF"));
            assert_eq!(m.data, std::fs::read(dir.join(&m.path)).unwrap());
        }
        // Built-in ones are reported, not loaded (per the kernel's config).
        let config = std::fs::read_to_string(root.join(format!("boot/config-{ver}"))).unwrap();
        for (module, option) in [
            ("virtio_mmio", "CONFIG_VIRTIO_MMIO"),
            ("efivarfs", "CONFIG_EFIVAR_FS"),
        ] {
            let builtin = config.contains(&format!("{option}=y"));
            assert_eq!(
                from_modinfo.builtin.iter().any(|b| b == module),
                builtin,
                "{arch} {module}"
            );
            assert_eq!(at(module).is_some(), !builtin, "{arch} {module}");
        }
        // The same closure from the modules.dep depmod writes.
        let copy =
            std::env::temp_dir().join(format!("bootproof-depmod-{}-{arch}", std::process::id()));
        let _ = std::fs::remove_dir_all(&copy);
        let dest = copy.join("lib/modules").join(&ver);
        std::fs::create_dir_all(&dest).unwrap();
        assert!(std::process::Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(dir.join("."))
            .arg(&dest)
            .status()
            .unwrap()
            .success());
        assert!(std::process::Command::new("depmod")
            .arg("-b")
            .arg(&copy)
            .arg(&ver)
            .status()
            .unwrap()
            .success());
        let from_dep = resolve(&HostDir(dest), &wanted);
        assert_eq!(from_dep.dependency_source, "modules.dep");
        let dep_names: Vec<&str> = from_dep.load.iter().map(|m| m.name.as_str()).collect();
        let mut a = names.clone();
        let mut b = dep_names.clone();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{arch}: same set from modinfo and modules.dep");
        std::fs::remove_dir_all(&copy).unwrap();
    }
}

/// Every regular file under `dir`, relative, sorted.
/// `got` holds exactly the files `expected` (relative paths), each with
/// the bytes it has under `reference`.
fn assert_same_files(
    got: &std::path::Path,
    reference: &std::path::Path,
    expected: &[PathBuf],
    what: &str,
) {
    assert_eq!(files_under(got), expected, "{what}");
    for rel in expected {
        assert!(
            std::fs::read(got.join(rel)).unwrap() == std::fs::read(reference.join(rel)).unwrap(),
            "{what}: {} differs",
            rel.display()
        );
    }
}

fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path().strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Kernel packages built by dpkg-deb (xz, zstd, gzip and uncompressed
/// data tarballs) from Debian's real arm64 kernel: `package::open` unpacks
/// exactly the kernel, its config and its module tree, byte for byte, skips
/// the rest (docs, the `build` symlink), names the release and arch, and
/// reuses the cache on the next open. An unpacked tree and a bare kernel
/// file open too; a tree with two kernels, a non-kernel and a damaged
/// package are clear errors.
#[test]
fn kernel_packages_unpack_byte_for_byte() {
    use bootproof_boot::package::{self, Origin, PackageError};
    let (kernel, ver) = kernel_of("arm64");
    let root = artifacts().join("arm64/root");
    let dir = bootproof_testkit::scratch("package", "debs");
    // The package tree: the kernel, its config, a slice of its modules, a
    // doc file and a dangling build symlink, as linux-image-* ships them.
    let tree = dir.join("tree");
    let mods = format!("lib/modules/{ver}");
    for rel in [
        format!("boot/vmlinuz-{ver}"),
        format!("boot/config-{ver}"),
        format!("{mods}/modules.builtin"),
        format!("{mods}/modules.order"),
    ] {
        let dst = tree.join(&rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(root.join(&rel), dst).unwrap();
    }
    std::fs::create_dir_all(tree.join(&mods).join("kernel")).unwrap();
    assert!(std::process::Command::new("cp")
        .arg("-a")
        .arg(root.join(&mods).join("kernel/fs"))
        .arg(tree.join(&mods).join("kernel/"))
        .status()
        .unwrap()
        .success());
    std::fs::create_dir_all(tree.join("usr/share/doc/linux-image")).unwrap();
    std::fs::write(tree.join("usr/share/doc/linux-image/copyright"), "doc").unwrap();
    std::os::unix::fs::symlink("/usr/src/nowhere", tree.join(&mods).join("build")).unwrap();
    std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
    std::fs::write(
        tree.join("DEBIAN/control"),
        format!("Package: linux-image-{ver}\nVersion: 1\nArchitecture: arm64\nMaintainer: t <t@example.invalid>\nDescription: test\n"),
    )
    .unwrap();
    let expected: Vec<PathBuf> = files_under(&tree)
        .into_iter()
        .filter(|p| p.starts_with("boot") || p.starts_with("lib"))
        .collect();
    assert!(expected.len() > 20, "{expected:?}");
    for z in ["xz", "zstd", "gzip", "none"] {
        let deb = dir.join(format!("linux-{z}.deb"));
        assert!(std::process::Command::new("dpkg-deb")
            .args(["--root-owner-group", &format!("-Z{z}"), "--build"])
            .arg(&tree)
            .arg(&deb)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap()
            .success());
        let cache = dir.join(format!("cache-{z}"));
        let k = package::open(&deb, None, &cache).unwrap();
        assert_eq!(k.origin, Origin::Package);
        assert_eq!(k.version, ver);
        assert_eq!(k.arch.name(), "aarch64");
        let unpacked = k.kernel.parent().unwrap().parent().unwrap().to_path_buf();
        assert!(unpacked.starts_with(cache.join("kernels")));
        assert_same_files(&unpacked, &tree, &expected, z);
        assert_eq!(k.modules.as_deref(), Some(unpacked.join(&mods).as_path()));
        // The second open finds the cache (the package is only hashed).
        let again = package::open(&deb, None, &cache).unwrap();
        assert_eq!(again.kernel, k.kernel);
        assert_eq!(again.sha256, k.sha256);
    }
    // The unpacked tree itself, and the bare kernel file with its modules.
    let t = package::open(&tree, None, &dir.join("unused")).unwrap();
    assert_eq!(
        (t.origin, t.version.as_str()),
        (Origin::Directory, ver.as_str())
    );
    assert_eq!(t.modules.as_deref(), Some(tree.join(&mods).as_path()));
    let f = package::open(&kernel, Some(&tree.join(&mods)), &dir.join("unused")).unwrap();
    assert_eq!(
        (f.origin, f.version.as_str(), f.arch),
        (
            Origin::File,
            ver.as_str(),
            bootproof_boot::chain::Arch::Aarch64
        )
    );
    assert!(!dir.join("unused").exists(), "only packages use the cache");
    // Two kernels in one tree: which one is ambiguous.
    std::fs::copy(&kernel, tree.join("boot/vmlinuz-9.9.9")).unwrap();
    let e = package::open(&tree, None, &dir.join("unused")).unwrap_err();
    assert!(e.to_string().contains("2 kernels"), "{e}");
    // Not a kernel; a damaged package.
    let e = package::open(&tree.join("DEBIAN/control"), None, &dir.join("unused")).unwrap_err();
    assert!(matches!(e, PackageError::Unsupported(_)), "{e}");
    let deb = std::fs::read(dir.join("linux-xz.deb")).unwrap();
    let cut = dir.join("cut.deb");
    std::fs::write(&cut, &deb[..deb.len() / 2]).unwrap();
    let e = package::open(&cut, None, &dir.join("cut-cache")).unwrap_err();
    assert!(matches!(e, PackageError::Corrupt(_)), "{e}");
    // A package that only depends on the kernel's (Debian's Linux 7
    // linux-image-*): the error says which package to pass instead.
    let meta = dir.join("meta");
    std::fs::create_dir_all(meta.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(meta.join("usr/share/doc/linux-image-7")).unwrap();
    std::fs::write(meta.join("usr/share/doc/linux-image-7/copyright"), "doc").unwrap();
    std::fs::write(
        meta.join("DEBIAN/control"),
        "Package: linux-image-7.0.0-1-arm64\nVersion: 1\nArchitecture: arm64\n\
         Depends: linux-binary-7.0.0-1-arm64\nMaintainer: t <t@example.invalid>\nDescription: test\n",
    )
    .unwrap();
    let meta_deb = dir.join("linux-image-meta.deb");
    assert!(std::process::Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&meta)
        .arg(&meta_deb)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success());
    let e = package::open(&meta_deb, None, &dir.join("meta-cache")).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("linux-image-meta.deb: the package holds no kernel"),
        "{e}"
    );
    assert!(text.contains("linux-binary-<version>"), "{e}");
    // Nothing half-unpacked is left to be mistaken for a package later.
    let leftovers: Vec<_> = std::fs::read_dir(dir.join("cut-cache/kernels"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// RPM kernel packages built by `rpmbuild` (gzip, xz and zstd payloads)
/// around Debian's real arm64 kernel in Fedora's layout
/// (`lib/modules/<version>/vmlinuz` beside its modules): `package::open`
/// unpacks exactly what `rpm2cpio | cpio` extracts of the kernel and its
/// module tree, byte for byte, and names the release and arch.
#[test]
fn rpm_kernel_packages_read_as_rpm2cpio_reads_them() {
    use bootproof_boot::package::{self, Origin};
    use std::process::Command;
    let (kernel, ver) = kernel_of("arm64");
    let root = artifacts().join("arm64/root");
    let dir = bootproof_testkit::scratch("package", "rpms");
    let tree = dir.join("tree");
    let mods = format!("lib/modules/{ver}");
    std::fs::create_dir_all(tree.join(&mods).join("kernel")).unwrap();
    std::fs::copy(&kernel, tree.join(&mods).join("vmlinuz")).unwrap();
    std::fs::copy(
        root.join(format!("boot/config-{ver}")),
        tree.join(&mods).join("config"),
    )
    .unwrap();
    for f in ["modules.builtin", "modules.order"] {
        std::fs::copy(root.join(&mods).join(f), tree.join(&mods).join(f)).unwrap();
    }
    assert!(Command::new("cp")
        .arg("-a")
        .arg(root.join(&mods).join("kernel/fs"))
        .arg(tree.join(&mods).join("kernel/"))
        .status()
        .unwrap()
        .success());
    std::fs::create_dir_all(tree.join("usr/share/doc/kernel-core")).unwrap();
    std::fs::write(tree.join("usr/share/doc/kernel-core/README"), "doc").unwrap();
    for (z, payload) in [
        ("gzip", "w9.gzdio"),
        ("xz", "w2.xzdio"),
        ("zstd", "w19.zstdio"),
    ] {
        let rpm = bootproof_testkit::build_rpm("kernel-core", &tree, &dir, payload);
        // The oracle: rpm's own payload extraction.
        let oracle = dir.join(format!("rpm2cpio-{z}"));
        std::fs::create_dir_all(&oracle).unwrap();
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "rpm2cpio '{}' | (cd '{}' && cpio -idm --quiet)",
                rpm.display(),
                oracle.display()
            ))
            .status()
            .unwrap();
        assert!(ok.success(), "rpm2cpio ({z})");
        let expected: Vec<PathBuf> = files_under(&oracle)
            .into_iter()
            .filter(|p| p.starts_with("lib"))
            .collect();
        assert!(expected.len() > 20, "{expected:?}");
        let cache = dir.join(format!("cache-{z}"));
        let k = package::open(&rpm, None, &cache).unwrap();
        assert_eq!(
            (k.origin, k.version.as_str()),
            (Origin::Package, ver.as_str())
        );
        assert_eq!(k.arch.name(), "aarch64");
        let unpacked = cache.join("kernels").join(
            k.kernel
                .strip_prefix(cache.join("kernels"))
                .unwrap()
                .components()
                .next()
                .unwrap(),
        );
        assert_same_files(&unpacked, &oracle, &expected, z);
        assert_eq!(k.modules.as_deref(), Some(unpacked.join(&mods).as_path()));
    }
}
