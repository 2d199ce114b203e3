//! Boot chains built from real Debian binaries (shim, GRUB, systemd's stub,
//! kernels): the default entry is found and extracts to the packaged bytes.

use bootproof_boot::chain::{self, Arch};
use bootproof_boot::extract::extract;
use bootproof_image::OpenOptions;
use bootproof_inspect::OpenedImage;
use bootproof_testkit::Scratch;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

fn images() -> &'static Path {
    bootproof_testkit::boot_images()
}

fn manifest() -> Value {
    serde_json::from_slice(&std::fs::read(images().join("boot-manifest.json")).unwrap()).unwrap()
}

fn scratch(name: &str) -> Scratch {
    bootproof_testkit::scratch("chain", name)
}

#[test]
fn default_entries_extract_to_the_packaged_bytes() {
    let m = manifest();
    let images_map = m["images"].as_object().unwrap();
    assert!(images_map.len() >= 4);
    for (name, spec) in images_map {
        let img = OpenedImage::open(images().join(name), &OpenOptions::default()).unwrap();
        let arch = chain::detect_arch(&img).unwrap_or_else(|| panic!("{name}: no arch"));
        assert_eq!(arch.name(), spec["arch"].as_str().unwrap(), "{name}");
        let c = chain::follow(&img, arch);
        assert!(c.problems.is_empty(), "{name}: {:?}", c.problems);
        let entry = c
            .default_entry()
            .unwrap_or_else(|| panic!("{name}: no entry; steps {:?}", c.steps))
            .clone();
        assert_eq!(entry.uki, spec["loader"] == "uki", "{name}");
        let out = scratch(name);
        let man = extract(&img, &c, &entry, &out).unwrap_or_else(|e| panic!("{name}: {e}"));
        let kernel = std::fs::read(spec["kernel"].as_str().unwrap()).unwrap();
        let initrd = std::fs::read(spec["initrd"].as_str().unwrap()).unwrap();
        assert!(
            std::fs::read(out.join("kernel")).unwrap() == kernel,
            "{name}: kernel differs from the package's"
        );
        assert!(
            std::fs::read(out.join("initrd")).unwrap() == initrd,
            "{name}: initrd differs"
        );
        assert_eq!(
            man.cmdline_configured,
            spec["cmdline"].as_str().unwrap(),
            "{name}"
        );
        let console = if arch == Arch::Aarch64 {
            "console=ttyAMA0"
        } else {
            "console=ttyS0"
        };
        assert!(
            man.cmdline.split_whitespace().any(|w| w == console),
            "{name}: {}",
            man.cmdline
        );
        assert_eq!(
            man.kernel_version.as_deref(),
            spec["version"].as_str(),
            "{name}"
        );
        assert!(!man.cache_hit);
        // Same content again: nothing rewritten. Damaged output: rewritten.
        let again = extract(&img, &c, &entry, &out).unwrap();
        assert!(again.cache_hit, "{name}: second run should be a cache hit");
        std::fs::write(out.join("kernel"), b"tampered").unwrap();
        let third = extract(&img, &c, &entry, &out).unwrap();
        assert!(!third.cache_hit);
        assert!(std::fs::read(out.join("kernel")).unwrap() == kernel);
        let written: Value =
            serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(written["schema"], "bootproof.extract/v1");
        assert_eq!(written["kernel"]["size"], kernel.len());
        assert!(
            std::fs::read_dir(&out).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp")),
            "no temp files left"
        );
    }
}

#[test]
fn grub_menu_order_and_default() {
    let img = OpenedImage::open(
        images().join("debian-grub-arm64.raw"),
        &OpenOptions::default(),
    )
    .unwrap();
    let c = chain::follow(&img, Arch::Aarch64);
    let steps = c.steps.join("\n");
    assert!(
        steps.contains("shim loads 1:/EFI/BOOT/grubaa64.efi")
            && steps.contains("GRUB reads 2:/boot/grub/grub.cfg"),
        "{steps}"
    );
    let info = c.removable_info.as_ref().unwrap();
    assert!(info.signed, "Debian's shim is signed");
    // The submenu's recovery entry is not the default, and only the top-level
    // entry is listed (the submenu is skipped).
    assert_eq!(c.entries.len(), 1);
    assert_eq!(c.entries[0].title, "Debian GNU/Linux");
    assert!(c.entries[0].default);
}

#[test]
fn unresolved_kernelopts_is_reported() {
    let dir = scratch("kernelopts");
    let p = dir.join("img.raw");
    assert!(Command::new("cp")
        .arg("--sparse=always")
        .arg(images().join("rhel-blscfg-amd64.raw"))
        .arg(&p)
        .status()
        .unwrap()
        .success());
    // Remove grubenv from the ext4 root (partition 2) with debugfs.
    let start = {
        let out = Command::new("sgdisk").arg("-i2").arg(&p).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix("First sector: "))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let part = dir.join("root.ext4");
    assert!(Command::new("dd")
        .args([
            format!("if={}", p.display()),
            format!("of={}", part.display()),
            "bs=512".into(),
            format!("skip={start}"),
            "status=none".into()
        ])
        .status()
        .unwrap()
        .success());
    assert!(Command::new("debugfs")
        .args(["-w", "-R", "rm /boot/grub2/grubenv"])
        .arg(&part)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success());
    assert!(Command::new("dd")
        .args([
            format!("if={}", part.display()),
            format!("of={}", p.display()),
            "bs=512".into(),
            format!("seek={start}"),
            "conv=notrunc".into(),
            "status=none".into()
        ])
        .status()
        .unwrap()
        .success());
    let img = OpenedImage::open(&p, &OpenOptions::default()).unwrap();
    let c = chain::follow(&img, Arch::X86_64);
    assert!(
        c.problems
            .iter()
            .any(|p| p.code == "chain.unresolved-variable" && p.message.contains("$kernelopts")),
        "{:?}",
        c.problems
    );
    assert!(
        c.default_entry().unwrap().cmdline.contains("$kernelopts"),
        "the literal stays visible for the checker"
    );
}

#[test]
fn vendor_directory_without_removable_path() {
    let dir = scratch("vendor");
    let p = dir.join("img.raw");
    assert!(Command::new("cp")
        .arg("--sparse=always")
        .arg(images().join("debian-grub-arm64.raw"))
        .arg(&p)
        .status()
        .unwrap()
        .success());
    // mtools addresses the ESP inside the disk at its offset (1 MiB).
    let target = format!("{}@@1M", p.display());
    assert!(Command::new("mmove")
        .args(["-i", &target, "::/EFI/BOOT", "::/EFI/debian"])
        .status()
        .unwrap()
        .success());
    let img = OpenedImage::open(&p, &OpenOptions::default()).unwrap();
    let c = chain::follow(&img, Arch::Aarch64);
    let p = c
        .problems
        .iter()
        .find(|p| p.code == "chain.no-removable-path")
        .unwrap_or_else(|| panic!("{:?}", c.problems));
    // fatfs shows 8.3 names upper-case (it ignores the lowercase flag mtools sets).
    assert!(
        p.message.to_lowercase().contains("/efi/debian"),
        "{}",
        p.message
    );
    assert!(c.entries.is_empty());
}

/// Without a boot chain, the newest kernel in /boot is used and paired with
/// the initrd of the same version, whatever the files' mtimes say.
#[test]
fn boot_dir_pairs_kernel_and_initrd_by_version() {
    use bootproof_boot::extract::entry_from_boot_dir;
    let dir = scratch("pairing");
    let tree = dir.join("tree/boot");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::create_dir_all(dir.join("tree/etc")).unwrap();
    std::fs::write(dir.join("tree/etc/os-release"), "ID=test\n").unwrap();
    let kernel = std::fs::read(
        bootproof_testkit::artifacts()
            .join("arm64/root/boot")
            .read_dir()
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("vmlinuz-")
            })
            .unwrap(),
    )
    .unwrap();
    for v in ["6.1.0-9", "6.1.0-10"] {
        std::fs::write(tree.join(format!("vmlinuz-{v}")), &kernel).unwrap();
        std::fs::write(
            tree.join(format!("initrd.img-{v}")),
            format!("initrd for {v}"),
        )
        .unwrap();
    }
    // The older version's files are the most recently modified.
    for f in ["vmlinuz-6.1.0-9", "initrd.img-6.1.0-9"] {
        assert!(Command::new("touch")
            .args(["-d", "2030-01-01"])
            .arg(tree.join(f))
            .status()
            .unwrap()
            .success());
    }
    let img = dir.join("root.ext4");
    assert!(Command::new("mkfs.ext4")
        .args(["-q", "-d"])
        .arg(dir.join("tree"))
        .arg(&img)
        .arg("100M")
        .status()
        .unwrap()
        .success());
    let opened = OpenedImage::open(&img, &OpenOptions::default()).unwrap();
    let entry = entry_from_boot_dir(&opened).unwrap();
    assert_eq!(
        entry.version.as_deref(),
        Some("6.1.0-10"),
        "6.1.0-10 sorts after 6.1.0-9"
    );
    assert_eq!(entry.kernel.path, "/boot/vmlinuz-6.1.0-10");
    assert_eq!(entry.initrds[0].path, "/boot/initrd.img-6.1.0-10");
    // Extracted: the chain has no entries (no ESP), so the /boot entry is
    // the one written.
    let out = dir.join("out");
    assert!(chain::follow(&opened, Arch::Aarch64).entries.is_empty());
    let before = opened.image.stats().bytes_read();
    extract(
        &opened,
        &chain::follow(&opened, Arch::Aarch64),
        &entry,
        &out,
    )
    .unwrap();
    // The kernel's zero-filled regions are holes in ext4 (mkfs.ext4 -d makes
    // them sparse), so a little less than its size is read, never much more.
    let read = opened.image.stats().bytes_read() - before;
    assert!(
        read > kernel.len() as u64 / 2 && read < 2 * kernel.len() as u64,
        "{read}"
    );
    assert_eq!(
        std::fs::read(out.join("initrd")).unwrap(),
        b"initrd for 6.1.0-10"
    );
    assert!(std::fs::read(out.join("kernel")).unwrap() == kernel);
}

/// A hostile grub.cfg: `if` blocks nested 20,000 deep around the real menu
/// entry and a `test` of 100,000 `!` and `-o` words. The chain ends (no
/// stack overflow, no quadratic copying), says where it stopped, and the
/// same entry outside the nesting is still found.
#[test]
fn deeply_nested_grub_scripts_end_with_a_problem() {
    let img = bootproof_testkit::variant("chain", "debian-grub-arm64.raw", "nested-if");
    let dir = img.parent().unwrap().to_path_buf();
    let real = {
        let opened = OpenedImage::open(&*img, &OpenOptions::default()).unwrap();
        let f = bootproof_inspect::FileRef::new(2, "/boot/grub/grub.cfg");
        opened.read_text(&f, 4 << 20).unwrap()
    };
    let nots = "! ".repeat(50_000);
    let ors = "x -o ".repeat(50_000);
    let nested = format!(
        "{}{}",
        "if true; then\n".repeat(20_000),
        "fi\n".repeat(20_000)
    );
    let cfg = format!(
        "if [ {nots} x ]; then\nset a=1\nfi\nif [ {ors} x ]; then\nset b=1\nfi\n{nested}{real}"
    );
    let file = dir.join("grub.cfg");
    std::fs::write(&file, cfg).unwrap();
    bootproof_testkit::edit_root(
        &img,
        &format!(
            "cd /boot/grub\nrm grub.cfg\nwrite {} grub.cfg\n",
            file.display()
        ),
    );
    let opened = OpenedImage::open(&*img, &OpenOptions::default()).unwrap();
    let chain = chain::follow(&opened, Arch::Aarch64);
    assert!(
        chain
            .problems
            .iter()
            .any(|p| p.code == "chain.grub-nesting"),
        "{:?}",
        chain.problems
    );
    let entry = chain
        .default_entry()
        .expect("the real menu after the nesting");
    assert!(entry.kernel.path.starts_with("/boot/vmlinuz-"), "{entry:?}");
}
