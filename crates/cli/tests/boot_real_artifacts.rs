//! Boot artifacts from Debian's real packages (arm64 and amd64): EFI
//! binaries are identified, kernels are recognised with their versions, and
//! every compression of the same Image loads to the same bytes.

mod common;

use bootproof_boot::decompress::Compression;
use bootproof_boot::kernel::{self, KernelFormat};
use bootproof_boot::pe::{self, EfiKind, MACHINE_AARCH64, MACHINE_X86_64};
use common::artifacts;
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

#[test]
fn debian_kernels_are_recognised() {
    let (k, version) = kernel_of("arm64");
    let data = std::fs::read(&k).unwrap();
    let (info, loadable) = kernel::load(&data).unwrap();
    assert_eq!(info.format, KernelFormat::Arm64Image);
    assert_eq!(info.arch, "aarch64");
    assert_eq!(info.version.as_deref(), Some(version.as_str()));
    assert!(info.efi_stub);
    assert_eq!(info.page_size, Some(4096));
    assert_eq!(
        &*loadable,
        &data[..],
        "an uncompressed Image is loaded as is"
    );

    let (k, version) = kernel_of("amd64");
    let data = std::fs::read(&k).unwrap();
    let (info, loadable) = kernel::load(&data).unwrap();
    assert_eq!(info.format, KernelFormat::BzImage);
    assert_eq!(info.arch, "x86_64");
    assert_eq!(info.version.as_deref(), Some(version.as_str()));
    assert!(info.efi_stub);
    assert_eq!(&*loadable, &data[..]);
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
        let packed = common::pipe(tool, &image);
        // Wrapped (Ubuntu-style vmlinuz).
        let (info, loadable) = kernel::load(&packed).unwrap_or_else(|e| panic!("{tool:?}: {e}"));
        assert_eq!(info.format, KernelFormat::Wrapped, "{tool:?}");
        assert_eq!(info.compression, Some(*c));
        assert_eq!(info.version.as_deref(), Some(version.as_str()));
        assert!(
            !info.efi_stub,
            "a compressed file cannot be run by firmware"
        );
        assert!(
            *loadable == image[..],
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
        let (info, loadable) = kernel::load(&z).unwrap_or_else(|e| panic!("zboot {tool:?}: {e}"));
        assert_eq!(info.format, KernelFormat::Zboot);
        assert_eq!(info.compression, Some(*c));
        assert!(*loadable == image[..], "zboot {tool:?}");
    }
}

#[test]
fn bad_kernels_get_errors() {
    let (k, _) = kernel_of("arm64");
    let image = std::fs::read(&k).unwrap();
    let gz = common::pipe(&["gzip", "-c"], &image);
    assert!(kernel::load(&gz[..gz.len() / 2]).is_err(), "truncated");
    assert!(matches!(
        kernel::load(b"random bytes, not a kernel"),
        Err(kernel::KernelError::Unknown)
    ));
    let mut z = vec![0u8; 64];
    z[..2].copy_from_slice(b"MZ");
    z[4..8].copy_from_slice(b"zimg");
    z[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    z[12..16].copy_from_slice(&16u32.to_le_bytes());
    assert!(matches!(
        kernel::load(&z),
        Err(kernel::KernelError::Corrupt(_))
    ));
}
