//! The `bootproof` binary: cat/ls/inspect output, selectors, JSON, exit
//! codes, refused formats, and that inputs are never written.

mod common;

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;

fn stdout_of(args: &[&str]) -> Vec<u8> {
    let out = bootproof(args);
    assert!(
        out.status.success(),
        "bootproof {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn json_of(args: &[&str]) -> Value {
    serde_json::from_slice(&stdout_of(args)).unwrap()
}

fn sha256_file(p: &Path) -> String {
    let mut h = Sha256::new();
    std::io::copy(&mut std::fs::File::open(p).unwrap(), &mut h).unwrap();
    format!("{:x}", h.finalize())
}

#[test]
fn cat_equals_source_on_every_filesystem_and_format() {
    let files = [
        "hello.txt",
        "big.bin",
        "compressible.txt",
        "ünïcödé-名前.txt",
        "empty",
        "dir-leaf/entry-00299-.txt",
    ];
    let tree = images().join("tree");
    for img in ["gpt.raw", "gpt-zstd.qcow2", "gpt-deflate.qcow2"] {
        for (part, prefix) in [("2", ""), ("3", ""), ("4", ""), ("5", "/root")] {
            for f in files {
                let got = stdout_of(&[
                    "cat",
                    image(img).to_str().unwrap(),
                    &format!("{part}:{prefix}/{f}"),
                ]);
                assert!(
                    got == std::fs::read(tree.join(f)).unwrap(),
                    "{img} {part}:{f}"
                );
            }
        }
    }
    // Sparse file, symlinked kernel, deep path, on the ISO and the bare XFS.
    for img in ["tree.iso", "bare-v4.xfs", "bare.ext4", "bare-suse.btrfs"] {
        let got = stdout_of(&["cat", image(img).to_str().unwrap(), "/boot/vmlinuz"]);
        assert_eq!(
            got,
            std::fs::read(tree.join("boot/vmlinuz-6.1.0-test")).unwrap(),
            "{img}"
        );
    }
    let got = stdout_of(&["cat", image("bare-v4.xfs").to_str().unwrap(), "/sparse.img"]);
    assert_eq!(got, std::fs::read(tree.join("sparse.img")).unwrap());
    // The El Torito EFI image opened as FAT (slot 1 of the ISO).
    let got = stdout_of(&[
        "cat",
        image("tree.iso").to_str().unwrap(),
        "1:/EFI/BOOT/BOOTAA64.EFI",
    ]);
    assert_eq!(
        got,
        std::fs::read(images().join("fat-tree/EFI/BOOT/BOOTAA64.EFI")).unwrap()
    );
    // FAT lookups are case-insensitive, as firmware does them.
    let got = stdout_of(&[
        "cat",
        image("gpt.raw").to_str().unwrap(),
        "1:/efi/boot/bootaa64.efi",
    ]);
    assert_eq!(
        got,
        std::fs::read(images().join("fat-tree/EFI/BOOT/BOOTAA64.EFI")).unwrap()
    );
}

/// `cat --json` embeds the file as standard base64 (RFC 4648) with its
/// sha256; decoded, it is the source file (binary and non-ASCII alike).
#[test]
fn cat_json_embeds_the_exact_bytes() {
    use base64::Engine;
    let tree = images().join("tree");
    for f in ["big.bin", "ünïcödé-名前.txt", "empty"] {
        let v = json_of(&[
            "cat",
            "--json",
            image("gpt.raw").to_str().unwrap(),
            &format!("2:/{f}"),
        ]);
        let want = std::fs::read(tree.join(f)).unwrap();
        let b64 = v["content_base64"].as_str().unwrap();
        let got = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert!(got == want, "{f}");
        assert_eq!(v["size"], want.len());
        let sha = sha2::Sha256::digest(&want);
        assert_eq!(
            v["sha256"],
            sha.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
    }
}

#[test]
fn partition_selectors() {
    let img = image("gpt.raw");
    let img = img.to_str().unwrap();
    let hello = std::fs::read(images().join("tree/hello.txt")).unwrap();
    let inspect = json_of(&["inspect", "--json", img]);
    let parts = inspect["partition_table"]["partitions"].as_array().unwrap();
    let xfs_partuuid = parts[2]["partuuid"].as_str().unwrap().to_string();
    for target in [
        "2:/hello.txt".to_string(),
        "LABEL=root:/hello.txt".into(),
        "UUID=3F1C9A8E-7D55-4C1B-9C5E-0A7E2B6D4F10:/hello.txt".into(),
        "PARTLABEL=xfs-data:/hello.txt".into(),
        format!("PARTUUID={xfs_partuuid}:/hello.txt"),
        "LABEL=btrfs-zstd:hello.txt".into(),
    ] {
        assert_eq!(stdout_of(&["cat", img, &target]), hello, "{target}");
    }
    // MBR: logical partition numbers and the SSSSSSSS-NN PARTUUID form.
    let mbr = image("mbr.raw");
    let fat_hello = std::fs::read(images().join("fat-tree/hello.txt")).unwrap();
    assert_eq!(
        stdout_of(&["cat", mbr.to_str().unwrap(), "5:/hello.txt"]),
        fat_hello
    );
    assert_eq!(
        stdout_of(&[
            "cat",
            mbr.to_str().unwrap(),
            "PARTUUID=1234abcd-06:/hello.txt"
        ]),
        fat_hello
    );
    // Without PART, an OS root is searched first: on the MBR disk all three
    // are roots; the FAT one comes first in table order.
    assert_eq!(
        stdout_of(&["cat", img, "/home/user/notes.txt"]),
        b"in the home subvolume\n"
    );
    // Unknown selector value: exit 2 with a hint.
    let out = bootproof(&["cat", img, "LABEL=nope:/x"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no partition matches `LABEL=nope`") && err.contains("hint:"),
        "{err}"
    );
}

#[test]
fn inspect_json_describes_the_disk() {
    let r = json_of(&[
        "inspect",
        "--json",
        image("gpt-zstd.qcow2").to_str().unwrap(),
    ]);
    assert_eq!(r["schema"], "bootproof.inspect/v1");
    assert_eq!(r["image"]["format"], "qcow2");
    assert_eq!(r["image"]["chain"][0]["compression"], "zstd");
    assert_eq!(r["partition_table"]["kind"], "gpt");
    assert_eq!(r["partition_table"]["mbr"], "protective");
    assert_eq!(
        r["partition_table"]["disk_id"],
        "6D0E5B6A-6BE1-4C02-9F7B-17C00F2D93A1"
    );
    let parts = r["partition_table"]["partitions"].as_array().unwrap();
    let types: Vec<&str> = parts
        .iter()
        .map(|p| p["type_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "EFI System",
            "Linux root (ARM64)",
            "Linux filesystem",
            "Linux filesystem",
            "Linux filesystem"
        ]
    );
    assert_eq!(
        parts[0]["type_guid"],
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    );
    assert_eq!(parts[1]["name"], "root");
    let fss = r["filesystems"].as_array().unwrap();
    let kinds: Vec<&str> = fss.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["vfat", "ext4", "xfs", "btrfs", "btrfs"]);
    assert_eq!(fss[0]["variant"], "FAT32");
    assert!(fss[0]["roles"]
        .as_array()
        .unwrap()
        .contains(&Value::from("esp")));
    let efi: Vec<&str> = fss[0]["efi"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(efi.contains(&"/EFI/BOOT/BOOTAA64.EFI"), "{efi:?}");
    assert_eq!(fss[1]["os_release"]["ID"], "bptest");
    assert_eq!(fss[1]["uuid"], "3f1c9a8e-7d55-4c1b-9c5e-0a7e2b6d4f10");
    let boot: Vec<(&str, &str)> = fss[2]["boot_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["kind"].as_str().unwrap(), b["path"].as_str().unwrap()))
        .collect();
    assert!(
        boot.contains(&("kernel", "/boot/vmlinuz"))
            && boot.contains(&("initrd", "/boot/initrd.img-6.1.0-test")),
        "{boot:?}"
    );
    let link = fss[2]["boot_files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["path"] == "/boot/vmlinuz")
        .unwrap();
    assert_eq!(link["symlink_target"], "vmlinuz-6.1.0-test");
    assert_eq!(link["size"], 300000);
    // Metadata only: inspecting a 1 GiB disk reads well under 8 MiB.
    assert!(
        r["image"]["bytes_read"].as_u64().unwrap() < 8 << 20,
        "{}",
        r["image"]["bytes_read"]
    );
}

#[test]
fn inspect_human_output_and_color() {
    let img = image("gpt.raw");
    let plain = String::from_utf8(stdout_of(&["inspect", img.to_str().unwrap()])).unwrap();
    assert!(
        plain.contains("EFI System")
            && plain.contains("Linux root (ARM64)")
            && plain.contains("bootproof test tree"),
        "{plain}"
    );
    assert!(
        !plain.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    let colored = String::from_utf8(stdout_of(&[
        "inspect",
        "--color",
        "always",
        img.to_str().unwrap(),
    ]))
    .unwrap();
    assert!(colored.contains("\x1b["));
    let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .args(["inspect", "--color", "never", img.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\x1b'));
}

#[test]
fn ls_lists_and_describes() {
    let img = image("gpt.raw");
    let names =
        String::from_utf8(stdout_of(&["ls", img.to_str().unwrap(), "3:/dir-small"])).unwrap();
    let names: Vec<&str> = names.lines().collect();
    assert_eq!(names.len(), 7, "{names:?}");
    assert!(names.contains(&"link-rel"));
    let j = json_of(&["ls", "--json", img.to_str().unwrap(), "2:/"]);
    assert_eq!(j["schema"], "bootproof.ls/v1");
    assert_eq!(j["partition"], 2);
    let entries = j["entries"].as_array().unwrap();
    let big = entries.iter().find(|e| e["name"] == "big.bin").unwrap();
    assert_eq!(big["file_type"], "file");
    assert_eq!(big["size"], 12 * 1024 * 1024 + 12345);
    assert_eq!(big["mode"], 0o644);
    let link = entries.iter().find(|e| e["name"] == "link-dir").unwrap();
    assert_eq!(link["file_type"], "symlink");
    assert_eq!(link["target"], "deep/level00/level01");
    let long = String::from_utf8(stdout_of(&["ls", "-l", img.to_str().unwrap(), "4:/"])).unwrap();
    assert!(
        long.contains("lrwxrwxrwx") && long.contains("link-abs -> /hello.txt"),
        "{long}"
    );
    // A file path lists that one entry.
    let one = json_of(&["ls", "--json", img.to_str().unwrap(), "2:/hello.txt"]);
    assert_eq!(one["entries"].as_array().unwrap().len(), 1);
}

#[test]
fn cat_json_embeds_content_and_digest() {
    let j = json_of(&[
        "cat",
        "--json",
        image("bare.ext4").to_str().unwrap(),
        "/boot/vmlinuz",
    ]);
    assert_eq!(j["schema"], "bootproof.cat/v1");
    assert_eq!(j["resolved_path"], "/boot/vmlinuz-6.1.0-test");
    let want = std::fs::read(images().join("tree/boot/vmlinuz-6.1.0-test")).unwrap();
    assert_eq!(j["size"], want.len());
    assert_eq!(j["sha256"], format!("{:x}", Sha256::digest(&want)));
}

#[test]
fn errors_exit_2_with_a_next_step() {
    let img = image("gpt.raw");
    let cases: &[(&[&str], &str)] = &[
        (
            &["cat", img.to_str().unwrap(), "/does/not/exist"],
            "not on any readable filesystem",
        ),
        (&["cat", img.to_str().unwrap(), "2:/etc"], "is a directory"),
        (
            &["ls", img.to_str().unwrap(), "2:/hello.txt/x"],
            "not a directory",
        ),
        (
            &["cat", img.to_str().unwrap(), "2:/loop-a"],
            "too many levels of symbolic links",
        ),
        (&["inspect", "/nonexistent/image.raw"], "No such file"),
        (
            &["cat", img.to_str().unwrap(), "9:/x"],
            "no partition matches `9`",
        ),
    ];
    // A platform option the image's machine lacks is refused before any VM
    // starts, naming the machine.
    let amd64 = boot_images().join("uki-amd64.raw");
    let arm64 = boot_images().join("debian-grub-arm64.raw");
    let (amd64, arm64) = (amd64.to_str().unwrap(), arm64.to_str().unwrap());
    let refused: &[(&[&str], &str)] = &[
        (
            &["boot", "--aia", amd64],
            "aia is not available on x86_64 (q35)",
        ),
        (&["boot", "--acpi", "off", amd64], "q35 always has ACPI"),
        (
            &["boot", "--transport", "mmio", amd64],
            "virtio-mmio is not available on x86_64",
        ),
        (&["boot", "--gic", "2", amd64], "q35 has no GIC"),
        (
            &["prove", "--aia", arm64],
            "aia is not available on aarch64 (virt)",
        ),
    ];
    for (args, needle) in cases.iter().chain(refused) {
        let out = bootproof(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // Usage errors from clap are exit 2 too.
    assert_eq!(bootproof(&["cat"]).status.code(), Some(2));
}

#[test]
fn backing_chain_needs_permission() {
    let img = image("overlay2.qcow2");
    let out = bootproof(&["inspect", img.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("overlay.qcow2") && err.contains("--allow-backing"),
        "{err}"
    );
    let r = json_of(&[
        "inspect",
        "--json",
        "--allow-backing",
        img.to_str().unwrap(),
    ]);
    let chain: Vec<&str> = r["image"]["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["backing_file"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(chain, ["overlay.qcow2", "gpt-zstd.qcow2", "-"]);
}

#[test]
fn unsupported_formats_are_named() {
    let dir = std::env::temp_dir().join(format!("bootproof-unsupported-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cases = vec![];
    for (fmt, name, extra) in [("vdi", "VDI", ""), ("qed", "QED", "")] {
        let p = dir.join(format!("x.{fmt}"));
        let mut cmd = Command::new("qemu-img");
        cmd.args(["create", "-q", "-f", fmt]);
        if !extra.is_empty() {
            cmd.args(["-o", extra]);
        }
        assert!(cmd.arg(&p).arg("8M").status().unwrap().success());
        cases.push((p, format!("{name} is not supported")));
    }
    let luks = dir.join("x.luks");
    let mut header = b"LUKS\xba\xbe\x00\x02".to_vec();
    header.resize(1 << 20, 0);
    std::fs::write(&luks, header).unwrap();
    // Encrypted images say so, and that no key will be asked for (not
    // "convert it first").
    cases.push((luks, "a LUKS container is encrypted".to_string()));
    let enc = dir.join("enc.qcow2");
    assert!(Command::new("qemu-img")
        .args([
            "create",
            "-q",
            "--object",
            "secret,id=s0,data=pw",
            "-f",
            "qcow2",
            "-o",
            "encrypt.format=luks,encrypt.key-secret=s0"
        ])
        .arg(&enc)
        .arg("8M")
        .status()
        .unwrap()
        .success());
    cases.push((enc, "qcow2 data is encrypted".to_string()));
    // A VMDK delta disk names its parent: refused by name, as VHD's
    // differencing disks are.
    let base = dir.join("base.vmdk");
    let delta = dir.join("delta.vmdk");
    assert!(Command::new("qemu-img")
        .args(["create", "-q", "-f", "vmdk"])
        .arg(&base)
        .arg("8M")
        .status()
        .unwrap()
        .success());
    assert!(Command::new("qemu-img")
        .args(["create", "-q", "-f", "vmdk", "-F", "vmdk", "-b"])
        .arg(&base)
        .arg(&delta)
        .status()
        .unwrap()
        .success());
    cases.push((delta, "VMDK is not supported".to_string()));
    for (p, want) in cases {
        let out = bootproof(&["inspect", p.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", p.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&want), "{}: {err}", p.display());
    }
    // VHD, VHDX and VMDK (sparse, stream and a descriptor with its flat
    // extent) are read now: an empty one is just a disk.
    for (fmt, sub, shown) in [
        ("vpc", "fixed", "vpc (VHD fixed)"),
        ("vpc", "dynamic", "vpc (VHD dynamic)"),
        ("vhdx", "dynamic", "vhdx (dynamic)"),
        ("vhdx", "fixed", "vhdx (fixed)"),
        ("vmdk", "monolithicSparse", "(monolithicSparse)"),
        ("vmdk", "streamOptimized", "(streamOptimized)"),
        ("vmdk", "monolithicFlat", "vmdk (monolithicFlat)"),
    ] {
        let p = dir.join(format!("x-{sub}.{fmt}"));
        assert!(Command::new("qemu-img")
            .args(["create", "-q", "-f", fmt, "-o"])
            .arg(format!("subformat={sub}"))
            .arg(&p)
            .arg("8M")
            .status()
            .unwrap()
            .success());
        let out = bootproof(&["inspect", p.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{fmt} {sub}: {text}");
        assert!(text.contains(shown), "{text}");
    }
    // A descriptor's extent outside its directory is a host file the
    // image names: opened only with --allow-backing.
    let outside = dir.join("outside.vmdk");
    std::fs::write(
        &outside,
        "# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\nRW 16384 FLAT \"../x-monolithicFlat-flat.vmdk\" 0\n",
    )
    .unwrap();
    let sub = dir.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let inner = sub.join("d.vmdk");
    std::fs::copy(&outside, &inner).unwrap();
    let out = bootproof(&["inspect", inner.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--allow-backing"), "{err}");
    let out = bootproof(&["inspect", "--allow-backing", inner.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inputs_are_never_written() {
    for name in [
        "gpt.raw",
        "gpt-zstd.qcow2",
        "overlay2.qcow2",
        "tree.iso",
        "floppy.fat12",
    ] {
        let p = image(name);
        let before = sha256_file(&p);
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        let s = p.to_str().unwrap();
        for args in [
            vec!["inspect", "--allow-backing", s],
            vec!["inspect", "--json", "--allow-backing", s],
            vec!["ls", "-l", "--allow-backing", s, "/"],
            vec!["cat", "--allow-backing", s, "/hello.txt"],
            vec!["cat", "--allow-backing", s, "/README.TXT"],
        ] {
            let _ = bootproof(&args);
        }
        assert_eq!(sha256_file(&p), before, "{name} changed");
        assert_eq!(
            std::fs::metadata(&p).unwrap().modified().unwrap(),
            mtime,
            "{name} mtime changed"
        );
    }
}

#[test]
fn help_teaches() {
    let out = String::from_utf8(stdout_of(&["--help"])).unwrap();
    assert!(
        out.contains("Exit status") && out.contains("inspect") && out.contains("read-only"),
        "{out}"
    );
    let out = String::from_utf8(stdout_of(&["cat", "--help"])).unwrap();
    assert!(
        out.contains("PARTUUID=") && out.contains("Examples"),
        "{out}"
    );
}

/// bash loads the generated completion script and completes a subcommand
/// and an option; the manual pages cover every command with the options
/// `--help` lists, and man renders them without warnings.
#[test]
fn completions_and_manual_pages_come_from_the_definitions() {
    let dir = scratch("cli", "manual");
    let script = dir.join("bootproof.bash");
    std::fs::write(&script, stdout_of(&["completions", "bash"])).unwrap();
    let complete = |words: &str| {
        let cword = words.split_whitespace().count() - 1;
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}; complete -p bootproof; COMP_WORDS=({words}); COMP_CWORD={cword}; \
                 _bootproof bootproof \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                script.display()
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let subcommands = complete("bootproof ch");
    assert!(
        subcommands.contains("-F _bootproof bootproof"),
        "{subcommands}"
    );
    assert!(subcommands.lines().any(|l| l == "check"), "{subcommands}");
    let options = complete("bootproof check --sec");
    assert!(options.lines().any(|l| l == "--secure-boot"), "{options}");
    for shell in ["zsh", "fish"] {
        let text = String::from_utf8(stdout_of(&["completions", shell])).unwrap();
        assert!(
            text.contains("verify") && text.contains("secure-boot"),
            "{shell}"
        );
    }
    let pages = dir.join("man");
    ok(Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .arg("manpages")
        .arg(&pages));
    for cmd in [
        "inspect",
        "ls",
        "cat",
        "check",
        "extract",
        "boot",
        "prove",
        "verify",
        "run",
        "fetch",
        "report-merge",
        "history",
        "compare",
        "completions",
    ] {
        let page = pages.join(format!("bootproof-{cmd}.1"));
        let out = Command::new("man")
            .args(["--warnings", "--nh", "--nj", "-E", "UTF-8", "-l"])
            .arg(&page)
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{cmd}: {out:?}"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let help = String::from_utf8(stdout_of(
            &cmd.split('-').chain(["--help"]).collect::<Vec<_>>(),
        ))
        .unwrap();
        // Each option `--help` lists (a line starting with `-`).
        let listed = help
            .lines()
            .filter(|l| l.trim_start().starts_with('-'))
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")));
        for option in listed {
            let option = option.split(['=', '[', ',']).next().unwrap();
            assert!(text.contains(option), "{cmd}: {option} is not in its page");
        }
    }
    assert!(pages.join("bootproof.1").is_file());
}

/// Text from an image cannot drive the terminal: a file name carrying an
/// OSC title sequence, a screen clear and a bell is listed with those
/// characters made visible, while bootproof's own colours still work.
#[test]
fn hostile_names_are_shown_not_executed() {
    let dir = scratch("cli", "hostile-names");
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let evil = "evil\u{1b}]0;pwned\u{7}\u{1b}[2Jname";
    std::fs::write(tree.join(evil), b"x").unwrap();
    let img = dir.join("fs.ext4");
    ok(std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&tree)
        .arg(&img)
        .arg("4M"));
    for color in ["never", "always"] {
        let out = bootproof(&["ls", "-l", "--color", color, img.to_str().unwrap(), "/"]);
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("evil\\u001b]0;pwned\\u0007\\u001b[2Jname"),
            "{text}"
        );
        let foreign = text
            .match_indices('\u{1b}')
            .filter(|(i, _)| {
                !text[*i..].starts_with("\u{1b}[0m") && !text[*i..].starts_with("\u{1b}[1")
            })
            .count();
        assert_eq!(foreign, 0, "{text:?}");
        assert!(!text.contains('\u{7}'));
    }
}
