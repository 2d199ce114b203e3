//! What `scripts/package.sh` ships, installed as users install it: the
//! Debian package into a clean Debian 12 root made by `mmdebstrap`, where
//! the binary runs, reads an image and finds its manual pages; the static
//! musl binaries run without a dynamic loader; `cargo install --locked`
//! from the repository gives a working binary. Long (release builds and a
//! Debian root from the network): `scripts/test.sh --long`.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `args` inside `root` (chroot), returning stdout; panics on failure.
fn in_root(root: &Path, args: &[&str]) -> String {
    let out = Command::new("chroot")
        .arg(root)
        .args(args)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The one file in target/package whose name starts with `prefix`.
fn artifact(prefix: &str) -> PathBuf {
    let dir = workspace().join("target/package");
    let found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    assert_eq!(found.len(), 1, "{prefix}*: {found:?}");
    found[0].clone()
}

#[test]
#[ignore = "long: release builds and a Debian root; scripts/test.sh --long runs it"]
fn the_package_installs_into_a_clean_debian_root_and_the_static_binaries_run() {
    ok(&mut Command::new(workspace().join("scripts/package.sh")));
    let deb = artifact("bootproof_");
    // What the package holds, as dpkg-deb lists it.
    let listing = Command::new("dpkg-deb")
        .arg("--contents")
        .arg(&deb)
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    for path in [
        "./usr/bin/bootproof",
        "./usr/lib/bootproof/agents/aarch64/bootproof-agent",
        "./usr/lib/bootproof/agents/x86_64/bootproof-agent",
        "./usr/lib/bootproof/agents/riscv64/bootproof-agent",
        "./usr/share/man/man1/bootproof-check.1.gz",
        "./usr/share/bash-completion/completions/bootproof",
        "./usr/share/zsh/vendor-completions/_bootproof",
        "./usr/share/fish/vendor_completions.d/bootproof.fish",
        "./usr/share/bootproof/schemas/inspect.v1.schema.json",
        "./usr/share/bootproof/schemas/matrix.schema.json",
    ] {
        assert!(
            listing.contains(path),
            "{path} not in the package:\n{listing}"
        );
    }
    let fields = Command::new("dpkg-deb")
        .args(["--field"])
        .arg(&deb)
        .output()
        .unwrap();
    let fields = String::from_utf8(fields.stdout).unwrap();
    assert!(fields.contains("Recommends: qemu-system-arm"), "{fields}");

    // A clean Debian 12 root with man-db, the package installed by apt.
    let dir = scratch("package", "debian-root");
    let root = dir.join("root");
    ok(Command::new("mmdebstrap")
        .args([
            "--quiet",
            "--variant=minbase",
            "--include=man-db",
            "bookworm",
        ])
        .arg(&root));
    std::fs::copy(&deb, root.join("tmp/bootproof.deb")).unwrap();
    std::fs::copy(image("gpt.raw"), root.join("tmp/gpt.raw")).unwrap();
    in_root(
        &root,
        &[
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "/tmp/bootproof.deb",
        ],
    );
    let version = in_root(&root, &["bootproof", "--version"]);
    assert_eq!(
        version.trim(),
        format!("bootproof {}", env!("CARGO_PKG_VERSION"))
    );
    let inspect = in_root(&root, &["bootproof", "inspect", "--json", "/tmp/gpt.raw"]);
    let want = bootproof(&["inspect", "--json", image("gpt.raw").to_str().unwrap()]).stdout;
    let (got, want): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&inspect).unwrap(),
        serde_json::from_slice(&want).unwrap(),
    );
    let partitions = &want["partition_table"]["partitions"];
    assert!(
        partitions.as_array().is_some_and(|p| !p.is_empty()),
        "{want}"
    );
    assert_eq!(&got["partition_table"]["partitions"], partitions);
    // The schemas installed are the ones in docs/schemas/.
    let schema = "usr/share/bootproof/schemas/run.v1.schema.json";
    assert_eq!(
        std::fs::read(root.join(schema)).unwrap(),
        std::fs::read(workspace().join("docs/schemas/run.v1.schema.json")).unwrap()
    );
    let page = in_root(&root, &["man", "-w", "bootproof-check"]);
    assert_eq!(page.trim(), "/usr/share/man/man1/bootproof-check.1.gz");
    in_root(&root, &["apt-get", "purge", "-y", "-qq", "bootproof"]);
    assert!(!root.join("usr/lib/bootproof").exists());

    // Static binaries: no program interpreter; the host's runs.
    let version = env!("CARGO_PKG_VERSION");
    for arch in ["x86_64", "aarch64"] {
        let bin = artifact(&format!("bootproof-{version}-{arch}-linux-musl"));
        let headers = Command::new("readelf")
            .arg("-lh")
            .arg(&bin)
            .output()
            .unwrap();
        let headers = String::from_utf8(headers.stdout).unwrap();
        assert!(!headers.contains("INTERP"), "{arch}: dynamically linked");
        let machine = if arch == "x86_64" {
            "X86-64"
        } else {
            "AArch64"
        };
        assert!(headers.contains(machine), "{arch}: {headers}");
        if arch == std::env::consts::ARCH {
            let out = Command::new(&bin)
                .args(["inspect", "--json"])
                .arg(image("gpt.raw"))
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        }
    }
}

/// `cargo install --locked --path crates/cli`, as the README says, into a
/// scratch root (reusing the workspace's release build when there is one).
#[test]
#[ignore = "long: a release build; scripts/test.sh --long runs it"]
fn cargo_install_from_the_repository_gives_a_working_binary() {
    let dir = scratch("package", "cargo-install");
    ok(Command::new("cargo")
        .args([
            "install",
            "--locked",
            "--quiet",
            "--path",
            "crates/cli",
            "--root",
        ])
        .arg(&*dir)
        .env("CARGO_TARGET_DIR", workspace().join("target"))
        .current_dir(workspace()));
    let bin = dir.join("bin/bootproof");
    let out = Command::new(&bin).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("bootproof {}", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(&bin)
        .args(["ls", "--json"])
        .arg(image("gpt.raw"))
        .arg("2:/")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The installed binary writes the schemas the repository ships.
    let schemas = dir.join("schemas");
    ok(Command::new(&bin).arg("schemas").arg(&schemas));
    for name in ["run.v1.schema.json", "matrix.schema.json"] {
        assert_eq!(
            std::fs::read(schemas.join(name)).unwrap(),
            std::fs::read(workspace().join("docs/schemas").join(name)).unwrap()
        );
    }
}
