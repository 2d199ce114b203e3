//! `bootproof run`: the user's command inside a matrix of real images ×
//! kernels × platform variants (Debian's arm64 kernel with a busybox
//! root, and a real Debian 12 amd64 cloud image, each also booted with
//! the bookworm-backports kernel package), verdicts from the command's
//! exit status; hostile arguments; a killed QEMU; a guest that never
//! reports.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, Value, String) {
    let dir = scratch("run", name);
    let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .arg("run")
        .args(args)
        .env("BOOTPROOF_STATE_DIR", dir.join("state"))
        // Never the user's own history.
        .env("BOOTPROOF_HISTORY", dir.join("history.sqlite"))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), v, stderr)
}

fn cell<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no cell {id} in {v:#}"))
}

/// The one cell of `v` with this image (file name), kernel (`image` or
/// not) and variant.
fn cell_of<'a>(v: &'a Value, image: &str, own_kernel: bool, variant: &str) -> &'a Value {
    let found: Vec<&Value> = v["cells"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["image"].as_str().unwrap().ends_with(image)
                && (c["kernel"] == "image") == own_kernel
                && c["variant"] == variant
        })
        .collect();
    assert_eq!(found.len(), 1, "{image} {own_kernel} {variant} in {v:#}");
    found[0]
}

#[test]
fn a_matrix_of_real_images_kernels_and_variants_gets_per_cell_verdicts() {
    let arm = boot_images().join("debian-grub-arm64.raw");
    let amd = cloud_image("amd64");
    // Debian's bookworm-backports kernels (6.12 line) besides the images'
    // own bookworm kernels (6.1), as the .deb packages apt downloads.
    let (bpo_arm, bpo_amd) = (backports_kernel("arm64"), backports_kernel("amd64"));
    let dir = scratch("run", "matrix-files");
    // A shipped script: reports what it ran on; passes only where the
    // firmware gave ACPI tables (acpi=off cells fail, exit 4) and the
    // kernel has the io_uring_disabled sysctl, which Linux 6.6 added (the
    // bookworm kernels fail, exit 5; the backports ones pass).
    let probe = dir.join("probe.sh");
    std::fs::write(
        &probe,
        "echo \"arch=$BOOTPROOF_ARCH kernel=$BOOTPROOF_KERNEL image=$BOOTPROOF_IMAGE variant=$BOOTPROOF_VARIANT\"\n\
         echo \"self=$0\"\n\
         touch /etc/written-by-the-command && echo root-writable\n\
         test -d /sys/firmware/acpi/tables || { echo 'no ACPI tables' >&2; exit 4; }\n\
         test -e /proc/sys/kernel/io_uring_disabled || { echo 'no kernel.io_uring_disabled' >&2; exit 5; }\n",
    )
    .unwrap();
    let evidence = dir.join("evidence");
    let html = dir.join("report.html");
    let args = [
        "--json",
        "--html",
        html.to_str().unwrap(),
        "--binary",
        probe.to_str().unwrap(),
        "--kernel",
        bpo_arm.to_str().unwrap(),
        "--kernel",
        bpo_amd.to_str().unwrap(),
        "--variants",
        "gic=3",
        "acpi=on,off",
        "transport=pci",
        "--evidence",
        evidence.to_str().unwrap(),
        arm.to_str().unwrap(),
        amd.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "sh \"$BOOTPROOF_BIN_PROBE_SH\"",
    ];
    let (code, v, err) = run("matrix", &args, &[]);
    assert_eq!(code, 1, "a cell failed: {err}");
    assert_eq!(v["schema"], "bootproof.run/v1");
    assert_eq!(v["cells"].as_array().unwrap().len(), 6, "{v:#}");
    let (on, off) = ("gic3 acpi-on pci", "gic3 acpi-off pci");
    let arm_on = cell_of(&v, "debian-grub-arm64.raw", true, on);
    let arm_off = cell_of(&v, "debian-grub-arm64.raw", true, off);
    let bpo_arm_on = cell_of(&v, "debian-grub-arm64.raw", false, on);
    let bpo_arm_off = cell_of(&v, "debian-grub-arm64.raw", false, off);
    let x86 = cell_of(&v, "debian-amd64.raw", true, "q35");
    let bpo_x86 = cell_of(&v, "debian-amd64.raw", false, "q35");
    for (c, arch, line) in [
        (arm_on, "aarch64", "6.1."),
        (arm_off, "aarch64", "6.1."),
        (bpo_arm_on, "aarch64", "6.12."),
        (bpo_arm_off, "aarch64", "6.12."),
        (x86, "x86_64", "6.1."),
        (bpo_x86, "x86_64", "6.12."),
    ] {
        let out = c["stdout"].as_str().unwrap();
        // The kernel in the guest is the one the cell names.
        assert!(out.contains(&format!("arch={arch} kernel={line}")), "{c:#}");
        assert_eq!(
            c["kernel_version"].as_str().unwrap(),
            out.split("kernel=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
        );
        assert!(out.contains("self=/run/bootproof/bin/probe.sh"), "{out}");
        assert!(
            out.contains("root-writable"),
            "the overlay takes writes: {out}"
        );
        assert_eq!(c["attempts"], 1);
    }
    // The extra kernel's cells are named by its release.
    let release = bpo_arm_on["kernel"].as_str().unwrap();
    assert_eq!(Some(release), bpo_arm_on["kernel_version"].as_str());
    assert_eq!(
        bpo_arm_on["id"],
        format!("debian-grub-arm64.raw@{release} / {on}")
    );
    for (c, status, code, stderr) in [
        (arm_on, "fail", 5, "no kernel.io_uring_disabled\n"),
        (arm_off, "fail", 4, "no ACPI tables\n"),
        (bpo_arm_on, "pass", 0, ""),
        (bpo_arm_off, "fail", 4, "no ACPI tables\n"),
        (x86, "fail", 5, "no kernel.io_uring_disabled\n"),
        (bpo_x86, "pass", 0, ""),
    ] {
        assert_eq!(c["status"], status, "{c:#}");
        assert_eq!(c["exit_code"], code, "{c:#}");
        assert_eq!(c["stderr"], stderr, "{c:#}");
    }
    assert_eq!(v["summary"]["pass"], 2);
    assert_eq!(v["summary"]["fail"], 4);
    // The image was not written (the overlay is inside the guest, the
    // disk a qcow2 overlay on the host): the file the command made is not
    // in it.
    let ls = bootproof(&["ls", arm.to_str().unwrap(), "/etc"]);
    assert!(!String::from_utf8_lossy(&ls.stdout).contains("written-by-the-command"));
    // Evidence per cell.
    for f in [
        "console.log",
        "records.jsonl",
        "stdout.txt",
        "stderr.txt",
        "qemu-cmdline.txt",
        "cell.json",
    ] {
        let p = evidence
            .join("debian-grub-arm64.raw/gic3_acpi-off_pci")
            .join(f);
        assert!(p.is_file(), "{}", p.display());
    }
    let qemu =
        std::fs::read_to_string(evidence.join("debian-amd64.raw/q35/qemu-cmdline.txt")).unwrap();
    assert!(
        qemu.lines().next().unwrap().ends_with("qemu-system-x86_64"),
        "{qemu}"
    );
    // The backports cell booted the package's kernel (unpacked into the
    // cache), not the image's.
    let bpo_evidence = Path::new(bpo_x86["evidence"].as_str().unwrap());
    assert!(bpo_evidence.starts_with(&evidence));
    let bpo_qemu = std::fs::read_to_string(bpo_evidence.join("qemu-cmdline.txt"))
        .unwrap_or_else(|e| panic!("{}: {e}", bpo_evidence.display()));
    assert!(
        bpo_qemu.contains("/kernels/") && bpo_qemu.contains("/boot/vmlinuz-6.12."),
        "{bpo_qemu}"
    );

    // Markdown and JUnit from the same results (`report merge` reads the
    // JSON back; no second run).
    let json_file = dir.join("run.json");
    std::fs::write(&json_file, serde_json::to_vec(&v).unwrap()).unwrap();
    let report = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
            .args(["report", "merge", "--format", format])
            .arg(&json_file)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let md = report("markdown");
    assert!(
        md.contains("| debian-grub-arm64.raw | 6.1.") && md.contains("✅ exit 0"),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "| debian-grub-arm64.raw@{release} | {release} | ✅ exit 0 | ❌ exit 4 (expected 0) |"
        )),
        "{md}"
    );
    assert_eq!(md.matches("❌ exit 5 (expected 0)").count(), 2, "{md}");
    let junit = report("junit");
    assert_eq!(junit.matches("<testcase ").count(), 6, "{junit}");
    assert_eq!(junit.matches("<failure ").count(), 4, "{junit}");

    // The HTML report in a real browser: headless Chromium runs its script,
    // and the DOM it ends with has the matrix cells, each cell's output and
    // console log; a screenshot is taken (PNG).
    let shot = dir.join("report.png");
    let chromium = |extra: &[&str]| {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .args(extra)
            .arg(format!("file://{}", html.display()))
            .output()
            .expect("chromium runs (scripts/setup-test-deps.sh installs it)")
    };
    let dom = String::from_utf8(chromium(&["--dump-dom"]).stdout).unwrap();
    assert!(dom.contains("<table class=\"matrix\""), "{dom}");
    for c in v["cells"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        assert!(dom.contains(&format!("data-id=\"{id}\"")), "{id}");
    }
    assert_eq!(dom.matches("<td class=\"cell pass\"").count(), 2);
    assert_eq!(dom.matches("<td class=\"cell fail\"").count(), 4);
    assert!(dom.contains("no ACPI tables"), "stderr is in the report");
    // Each cell's boot is drawn as a stage timeline (inline SVG).
    assert_eq!(dom.matches("<svg class=\"timeline\"").count(), 6, "{dom}");
    assert!(dom.contains("data-phase=\"kernel\""), "{dom}");
    assert!(
        dom.contains("Linux version 6."),
        "console logs are in the report"
    );
    assert!(
        dom.contains("qemu-system-aarch64"),
        "QEMU command lines are in the report"
    );
    chromium(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1400,1600",
    ]);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if std::env::var_os("BOOTPROOF_KEEP_TEST_DIRS").is_some() {
        eprintln!(
            "HTML report {} and screenshot {}",
            html.display(),
            shot.display()
        );
    }
}

#[test]
fn hostile_arguments_reach_the_guest_unchanged_and_do_nothing_on_the_host() {
    let img = boot_images().join("debian-grub-arm64.raw");
    let marker = std::env::temp_dir().join(format!("bootproof-pwned-{}", std::process::id()));
    let m = marker.to_str().unwrap();
    let hostile = [
        format!("$(touch {m})"),
        format!("; touch {m}"),
        format!("`touch {m}`"),
        format!("| touch {m}"),
        "a b  c".to_string(),
        "'\"\\".to_string(),
        "line1\nline2".to_string(),
        "*".to_string(),
        "$HOME".to_string(),
        "--".to_string(),
        String::new(),
    ];
    let mut args: Vec<&str> = vec![
        "--json",
        "--variants",
        "gic=3",
        "acpi=on",
        "transport=pci",
        img.to_str().unwrap(),
        "--",
        "printf",
        "[%s]\\n",
    ];
    args.extend(hostile.iter().map(String::as_str));
    let (code, v, err) = run("hostile", &args, &[]);
    assert_eq!(code, 0, "{err}\n{v:#}");
    let c = &v["cells"][0];
    let want: String = hostile.iter().map(|a| format!("[{a}]\n")).collect();
    assert_eq!(c["stdout"].as_str().unwrap(), want);
    assert!(!Path::new(&marker).exists(), "a host shell ran an argument");
    // The command is reported as given.
    let argv: Vec<&str> = v["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        argv[2..],
        hostile.iter().map(String::as_str).collect::<Vec<_>>()[..]
    );
}

/// A `qemu-system-aarch64` in `dir/bin` that passes probes (boots
/// without the agent's initramfs) straight to the real QEMU and runs
/// `cell` (shell, with `$REAL` the real binary) for cell boots; returns a
/// PATH that finds it first.
fn qemu_wrapper(dir: &Path, cell: &str) -> String {
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v qemu-system-aarch64"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let wrapper = bin.join("qemu-system-aarch64");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nREAL={real}\n\
             case \"$*\" in *agent.cpio*) ;; *) exec \"$REAL\" \"$@\" ;; esac\n{cell}",
            real = real.trim()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .unwrap();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap())
}

/// A kernel split as Fedora splits it, built by `rpmbuild` around Debian's
/// arm64 kernel in Fedora's layout: `kernel-core` holds the kernel and the
/// core of its module tree, `kernel-modules` the drivers (virtio among
/// them, so the root disk is found only with it). `run --kernel` reads
/// both in-process, joins the module package to the kernel of its
/// release, and boots the union with the image's root; the command sees
/// that kernel's release. The same packages in a `createrepo_c` repository
/// served over HTTP boot as a kernel library entry (`repo =`, resolved
/// through repomd.xml and the primary metadata). The module package alone
/// is refused with a hint.
#[test]
fn an_rpm_kernel_package_runs_the_command() {
    let img = boot_images().join("debian-grub-arm64.raw");
    let dir = scratch("run", "rpm-kernel");
    let root = artifacts().join("arm64/root");
    let ver = std::fs::read_dir(root.join("lib/modules"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    let from = root.join("lib/modules").join(&ver);
    let (core, extra) = (dir.join("core"), dir.join("extra"));
    for part in std::fs::read_dir(from.join("kernel")).unwrap() {
        let name = part.unwrap().file_name();
        let drivers = ["drivers", "net", "sound"].iter().any(|d| name == *d);
        let to = if drivers { &extra } else { &core };
        let to = to.join("lib/modules").join(&ver).join("kernel");
        std::fs::create_dir_all(&to).unwrap();
        assert!(Command::new("cp")
            .arg("-a")
            .arg(from.join("kernel").join(&name))
            .arg(&to)
            .status()
            .unwrap()
            .success());
    }
    for f in std::fs::read_dir(&from).unwrap() {
        let f = f.unwrap();
        if f.file_type().unwrap().is_file() {
            std::fs::copy(
                f.path(),
                core.join("lib/modules").join(&ver).join(f.file_name()),
            )
            .unwrap();
        }
    }
    std::fs::copy(
        root.join(format!("boot/vmlinuz-{ver}")),
        core.join("lib/modules").join(&ver).join("vmlinuz"),
    )
    .unwrap();
    let rpm = build_rpm("kernel-core", &core, &dir, "w1.gzdio");
    let modules_rpm = build_rpm("kernel-modules", &extra, &dir, "w1.gzdio");
    // The same two packages in an RPM repository made by createrepo_c,
    // served over HTTP: a kernel library entry resolves kernel-core there.
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("Packages")).unwrap();
    for p in [&rpm, &modules_rpm] {
        std::fs::copy(p, repo.join("Packages").join(p.file_name().unwrap())).unwrap();
    }
    let made = Command::new("createrepo_c")
        .arg("-q")
        .arg(&repo)
        .status()
        .unwrap();
    assert!(made.success(), "createrepo_c");
    let (_server, port) = serve(&repo);
    let catalog = dir.join("catalog.toml");
    std::fs::write(
        &catalog,
        format!("[[kernel]]\nname = \"repo-kernel\"\narch = \"aarch64\"\nrepo = \"http://127.0.0.1:{port}/\"\npackage = \"kernel-core\"\n"),
    )
    .unwrap();
    let cache = dir.join("cache");
    let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .args([
            "run",
            "--json",
            "--variants",
            "gic=3",
            "acpi=on",
            "transport=pci",
            "--kernel",
        ])
        .arg(&modules_rpm)
        .arg("--kernel")
        .arg(&rpm)
        .args(["--kernel-set", "repo-kernel", "--catalog"])
        .arg(&catalog)
        .arg(&img)
        .args(["--", "uname", "-r"])
        .env("BOOTPROOF_STATE_DIR", dir.join("state"))
        .env("BOOTPROOF_HISTORY", dir.join("history.sqlite"))
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    // Every cell booted; the rate is theirs over the run's wall time.
    let t = &v["throughput"];
    assert_eq!(t["cells_run"], v["cells"].as_array().unwrap().len());
    let rate = t["cells_per_hour"].as_f64().unwrap();
    let cells = v["cells"].as_array().unwrap().len() as f64;
    let want = cells * 3600.0 / t["wall_secs"].as_f64().unwrap();
    assert!((rate - want).abs() < 1e-6 * want, "{t}");
    for label in [ver.as_str(), "repo-kernel"] {
        let c = v["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kernel"] == label)
            .unwrap_or_else(|| panic!("no {label} cell: {v:#}"));
        assert_eq!(c["status"], "pass", "{c:#}");
        assert_eq!(c["stdout"].as_str().unwrap().trim(), ver);
    }
    // The repository's packages were downloaded, verified, byte for byte.
    let got = cache.join("bootproof/kernel-packages/repo-kernel/kernel-core-6.1.0-1.aarch64.rpm");
    assert!(std::fs::read(got).unwrap() == std::fs::read(&rpm).unwrap());
    let merged = std::fs::read_dir(cache.join("bootproof/kernels"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("merged-"))
        .expect("the two packages' union in the cache");
    let virtio_blk = merged.path().join(format!(
        "lib/modules/{ver}/kernel/drivers/block/virtio_blk.ko"
    ));
    assert!(virtio_blk.is_file(), "{}", virtio_blk.display());
    // Found through a mirror list (Amazon Linux's way): the first
    // repository it names, the same packages, verified.
    std::fs::write(
        repo.join("mirror.list"),
        format!("# mirrors\n\nhttp://127.0.0.1:{port}/\nhttp://127.0.0.1:1/\n"),
    )
    .unwrap();
    std::fs::write(
        &catalog,
        format!("[[kernel]]\nname = \"mirrored\"\narch = \"aarch64\"\nmirrorlist = \"http://127.0.0.1:{port}/mirror.list\"\npackage = \"kernel-core\"\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .args(["fetch", "mirrored", "--catalog"])
        .arg(&catalog)
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = cache.join("bootproof/kernel-packages/mirrored/kernel-modules-6.1.0-1.aarch64.rpm");
    assert!(std::fs::read(got).unwrap() == std::fs::read(&modules_rpm).unwrap());
    // The module package alone: no kernel of its release was given.
    let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .args(["run", "--kernel"])
        .arg(&modules_rpm)
        .arg(&img)
        .args(["--", "true"])
        .env("BOOTPROOF_STATE_DIR", dir.join("state"))
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("holds only modules, for release {ver}")),
        "{err}"
    );
}

/// A QEMU that is killed from outside is an infra error, retried; with no
/// retries left the run exits 3 (no verdict), not 1 (the command failed).
#[test]
fn a_killed_qemu_is_an_infra_error_and_is_retried() {
    let img = boot_images().join("debian-grub-arm64.raw");
    let dir = scratch("run", "killed-qemu");
    // Kills the first N cell boots two seconds in, and itself with them.
    let path = qemu_wrapper(
        &dir,
        "n=$(cat \"$KILLS\" 2>/dev/null || echo 0)\n\
         if [ \"$n\" -gt 0 ]; then\n\
           echo $((n - 1)) > \"$KILLS\"\n\
           \"$REAL\" \"$@\" & sleep 2; kill -9 $!; kill -9 $$\n\
         fi\n\
         exec \"$REAL\" \"$@\"\n",
    );
    let kills = dir.join("kills");
    let common = ["--json", "--variants", "gic=3", "acpi=on", "transport=pci"];

    std::fs::write(&kills, "1").unwrap();
    let mut args = common.to_vec();
    args.extend([img.to_str().unwrap(), "--", "true"]);
    let (code, v, err) = run(
        "killed-retried",
        &args,
        &[("PATH", &path), ("KILLS", kills.to_str().unwrap())],
    );
    assert_eq!(code, 0, "{err}\n{v:#}");
    let c = &v["cells"][0];
    assert_eq!(c["status"], "pass");
    assert_eq!(c["attempts"], 2);
    let first = c["infra_errors"][0].as_str().unwrap();
    assert!(first.contains("QEMU was killed by signal 9"), "{first}");

    std::fs::write(&kills, "5").unwrap();
    let mut args = common.to_vec();
    args.extend(["--retries", "1", img.to_str().unwrap(), "--", "true"]);
    let (code, v, err) = run(
        "killed-twice",
        &args,
        &[("PATH", &path), ("KILLS", kills.to_str().unwrap())],
    );
    assert_eq!(code, 3, "{err}\n{v:#}");
    let c = &v["cells"][0];
    assert_eq!(c["status"], "infra-error");
    assert_eq!(c["attempts"], 2);
}

/// A guest frozen in its kernel (here the first cell boot's vCPUs are
/// stopped through QMP as soon as the console shows `Linux version`, as
/// QEMU's TCG very rarely freezes one by itself) is called hung after a
/// third of the timeout, not waited on to the deadline, and under TCG is
/// booted once more: the cell passes on the second boot and keeps why.
#[test]
fn a_kernel_hung_under_tcg_is_detected_and_booted_again() {
    let img = boot_images().join("debian-grub-arm64.raw");
    let dir = scratch("run", "hung-kernel");
    let freeze = dir.join("freeze.py");
    std::fs::write(
        &freeze,
        "import json, socket, sys, time\n\
         console, qmp = sys.argv[1], sys.argv[2]\n\
         for _ in range(1200):\n\
         \x20   time.sleep(0.1)\n\
         \x20   try:\n\
         \x20       if b'Linux version' in open(console, 'rb').read():\n\
         \x20           break\n\
         \x20   except OSError:\n\
         \x20       pass\n\
         s = socket.socket(socket.AF_UNIX)\n\
         s.connect(qmp)\n\
         f = s.makefile('rw')\n\
         f.readline()\n\
         for cmd in ('qmp_capabilities', 'stop'):\n\
         \x20   f.write(json.dumps({'execute': cmd}) + '\\n')\n\
         \x20   f.flush()\n\
         \x20   f.readline()\n",
    )
    .unwrap();
    // For the first cell boot, starts a watcher that freezes the guest,
    // then becomes QEMU itself (same pid: bootproof supervises the real thing).
    let path = qemu_wrapper(
        &dir,
        &format!(
            "if [ ! -e \"$FROZEN\" ]; then\n\
               touch \"$FROZEN\"\n\
               for a in \"$@\"; do case \"$a\" in\n\
                 file,id=console,path=*) console=${{a#*path=}} ;;\n\
                 unix:*qmp.sock*) qmp=${{a#unix:}}; qmp=${{qmp%%,*}} ;;\n\
               esac; done\n\
               python3 {} \"$console\" \"$qmp\" &\n\
             fi\n\
             exec \"$REAL\" \"$@\"\n",
            freeze.display()
        ),
    );
    let frozen = dir.join("frozen");
    let (code, v, err) = run(
        "hung-kernel-run",
        &[
            "--json",
            "--variants",
            "gic=3",
            "acpi=on",
            "transport=pci",
            "--timeout",
            "180",
            img.to_str().unwrap(),
            "--",
            "true",
        ],
        &[("PATH", &path), ("FROZEN", frozen.to_str().unwrap())],
    );
    assert!(frozen.exists(), "the wrapper never saw a cell boot");
    assert_eq!(code, 0, "{err}\n{v:#}");
    let c = &v["cells"][0];
    assert_eq!(c["status"], "pass", "{c:#}");
    assert_eq!(c["attempts"], 2, "{c:#}");
    let first = c["infra_errors"][0].as_str().unwrap();
    assert!(
        first.contains("the kernel hung under TCG emulation")
            && first.contains("nothing on the console for 6"),
        "{first}"
    );
    // Called hung after the 60 s silence limit (a third of 180 s, at least
    // a minute), not at the 180 s deadline: the whole cell is two boots.
    let secs = c["secs"].as_f64().unwrap();
    assert!(secs < 175.0, "the hang waited for the deadline: {secs}s");
}

#[test]
fn a_guest_that_never_reports_is_a_boot_failure_at_its_stage() {
    let img = boot_images().join("debian-grub-arm64.raw");
    // The agent's initramfs is ignored (rdinit names nothing) and the
    // kernel has no root= to fall back to: it panics looking for a root.
    let (code, v, err) = run(
        "no-report",
        &[
            "--json",
            "--variants",
            "gic=3",
            "acpi=on",
            "transport=pci",
            "--cmdline-append",
            "rdinit=/nonexistent",
            img.to_str().unwrap(),
            "--",
            "true",
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    let c = &v["cells"][0];
    assert_eq!(c["status"], "boot-failure", "{c:#}");
    let detail = c["detail"].as_str().unwrap();
    assert!(
        detail.contains("root-not-found") && detail.contains("VFS: Unable to mount root fs"),
        "{detail}"
    );
    assert_eq!(c["attempts"], 1, "a boot failure is not retried");
}

/// A matrix file: named image, named variants with their own vCPUs,
/// memory and `required`; an x86_64-impossible variant is skipped with the
/// reason; a failing optional cell does not fail the run.
#[test]
fn a_matrix_file_names_cells_sets_resources_and_optional_cells() {
    let arm = boot_images().join("debian-grub-arm64.raw");
    let uki = boot_images().join("uki-amd64.raw");
    let bpo = backports_kernel("arm64");
    let dir = scratch("run", "matrix-file-input");
    let file = dir.join("matrix.toml");
    std::fs::write(
        &file,
        format!(
            "timeout = 200\n\
             [[image]]\nname = \"bookworm-arm64\"\npath = {arm:?}\narch = \"aarch64\"\n\
             [[image]]\nname = \"uki-x86\"\npath = {uki:?}\narch = \"x86_64\"\nrequired = false\n\
             [[kernel]]\nname = \"bpo\"\npath = {bpo:?}\nimages = [\"bookworm-arm64\"]\n\
             [[variant]]\nname = \"acpi-2cpu\"\ngic = 3\n\
             [[variant]]\nname = \"dt-1cpu-512m\"\nacpi = false\ncpus = 1\nmemory = 512\nrequired = false\n",
        ),
    )
    .unwrap();
    let (code, v, err) = run(
        "matrix-file",
        &[
            "--json",
            "--matrix",
            file.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "echo cpus=$(grep -c ^processor /proc/cpuinfo) mem=$(grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2); test -d /sys/firmware/acpi/tables",
        ],
        &[],
    );
    // Only optional cells failed: the run passes.
    assert_eq!(code, 0, "{err}\n{v:#}");
    let on = cell(&v, "bookworm-arm64 / acpi-2cpu");
    assert_eq!(on["status"], "pass", "{on:#}");
    assert!(
        on["stdout"].as_str().unwrap().starts_with("cpus=2 "),
        "{}",
        on["stdout"]
    );
    let dt = cell(&v, "bookworm-arm64 / dt-1cpu-512m");
    assert_eq!(dt["status"], "fail");
    assert_eq!(dt["required"], false);
    let out = dt["stdout"].as_str().unwrap();
    assert!(out.starts_with("cpus=1 mem="), "{out}");
    let kib: u64 = out.trim().rsplit('=').next().unwrap().parse().unwrap();
    assert!(kib < 512 * 1024, "{out}");
    // q35 has no ACPI-less variant: skipped, with the reason.
    let skipped = cell(&v, "uki-x86 / dt-1cpu-512m");
    assert_eq!(skipped["status"], "skipped");
    assert!(skipped["detail"]
        .as_str()
        .unwrap()
        .contains("q35 always has ACPI"));
    // The UKI image has no kernel modules: its cell cannot mount the root,
    // a boot failure, but an optional one.
    let uki_cell = cell(&v, "uki-x86 / acpi-2cpu");
    assert_eq!(uki_cell["status"], "boot-failure", "{uki_cell:#}");
    // The [[kernel]] entry: a row for the image it names, under its name;
    // the same verdicts as the image's own kernel, on 6.12.
    let bpo_on = cell(&v, "bookworm-arm64@bpo / acpi-2cpu");
    assert_eq!(bpo_on["status"], "pass", "{bpo_on:#}");
    assert_eq!(bpo_on["kernel"], "bpo");
    assert!(bpo_on["kernel_version"]
        .as_str()
        .unwrap()
        .starts_with("6.12."));
    assert_eq!(
        cell(&v, "bookworm-arm64@bpo / dt-1cpu-512m")["status"],
        "fail"
    );
    assert_eq!(
        v["cells"].as_array().unwrap().len(),
        6,
        "no row for uki-x86@bpo"
    );
    assert_eq!(v["kernels"][0]["name"], "bpo");
    assert_eq!(v["kernels"][0]["origin"], "package");

    // An `arch` that is not the image's, and `images` naming no image,
    // are errors before anything boots.
    let bad = |name: &str, toml: String, expect: &str| {
        std::fs::write(&file, toml).unwrap();
        let (code, _, err) = run(
            name,
            &["--matrix", file.to_str().unwrap(), "--", "true"],
            &[],
        );
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(expect), "{err}");
    };
    bad(
        "matrix-arch",
        format!("[[image]]\npath = {arm:?}\narch = \"x86_64\"\n"),
        "holds a aarch64 system",
    );
    bad(
        "matrix-kernel-images",
        format!("[[image]]\npath = {arm:?}\n[[kernel]]\npath = {bpo:?}\nimages = [\"nope\"]\n"),
        "`images` names nope",
    );
    // Full mode boots the image's own chain: an extra kernel's cells are
    // skipped with the reason (and this image, without cloud-init, is a
    // boot failure before any boot).
    let (code, v, err) = run(
        "matrix-full-kernel",
        &[
            "--json",
            "--mode",
            "full",
            "--kernel",
            bpo.to_str().unwrap(),
            "--variants",
            "gic=3",
            "acpi=on",
            "transport=pci",
            arm.to_str().unwrap(),
            "--",
            "true",
        ],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2, "{v:#}");
    let extra = cells.iter().find(|c| c["kernel"] != "image").unwrap();
    assert_eq!(extra["status"], "skipped");
    assert!(
        extra["detail"]
            .as_str()
            .unwrap()
            .contains("needs agent mode"),
        "{extra:#}"
    );

    // A typo is an error naming the key, before anything boots.
    std::fs::write(&file, "[[image]]\npath = \"x.raw\"\nrequird = true\n").unwrap();
    let (code, _, err) = run(
        "matrix-typo",
        &["--matrix", file.to_str().unwrap(), "--", "true"],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("unknown field `requird`"), "{err}");
}

/// Two recorded runs of one cell, the second failing: `history` lists
/// both, `compare` flags the regression and exits 1; the other way round
/// it is an improvement and exits 0.
#[test]
fn history_records_runs_and_compare_gates_on_a_regression() {
    let img = boot_images().join("debian-grub-arm64.raw");
    let dir = scratch("run", "history-db");
    let db = dir.join("history.sqlite");
    let env = [("BOOTPROOF_HISTORY", db.to_str().unwrap())];
    let cell_args = |cmd: &'static str| {
        vec![
            "--json".to_string(),
            "--variants".into(),
            "gic=3".into(),
            "acpi=on".into(),
            "transport=pci".into(),
            img.to_str().unwrap().into(),
            "--".into(),
            cmd.into(),
        ]
    };
    for (name, cmd, want) in [("hist-pass", "true", 0), ("hist-fail", "false", 1)] {
        let a = cell_args(cmd);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let (code, v, err) = run(name, &a, &env);
        assert_eq!(code, want, "{err}");
        assert!(v["history_run"].as_i64().is_some(), "{v:#}");
    }
    let bp = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_bootproof"))
            .args(args)
            .env("BOOTPROOF_HISTORY", &db)
            .output()
            .unwrap()
    };
    let out = bp(&["history", "--json"]);
    let h: Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = h["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["command"][0], "false", "newest first");
    assert_eq!(runs[0]["counts"]["fail"], 1);
    assert_eq!(runs[1]["counts"]["pass"], 1);

    let out = bp(&["compare", "--json", "latest~1", "latest"]);
    assert_eq!(out.status.code(), Some(1), "a regression fails the gate");
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["regressed"], 1);
    assert_eq!(
        c["changes"][0]["cell"],
        "debian-grub-arm64.raw / gic3 acpi-on pci"
    );
    assert_eq!(c["changes"][0]["change"], "regressed");
    let out = bp(&["compare", "latest", "latest~1"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("improved"));
    let out = bp(&["compare", "latest", "999"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no run `999`"));
    // The cells carry the image's digest (Python's sqlite3 and hashlib as
    // the oracle); the second run took it from the digest cache.
    let py = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, hashlib, sys\n\
             db = sqlite3.connect(sys.argv[1])\n\
             rows = db.execute('SELECT image_sha256, kernel FROM cells').fetchall()\n\
             h = hashlib.sha256(open(sys.argv[2], 'rb').read()).hexdigest()\n\
             cached = db.execute('SELECT count(*) FROM file_digests WHERE sha256 = ?', (h,)).fetchone()[0]\n\
             print(len(rows), all(r == (h, 'image') for r in rows), cached)",
        ])
        .arg(&db)
        .arg(&img)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&py.stdout).trim(),
        "2 True 1",
        "{py:?}"
    );
}

/// Full mode: the real cloud image boots end to end, cloud-init (fed
/// bootproof's NoCloud seed, which also carries the --binary file) starts
/// the agent, and the command runs in the booted system, PID 1 systemd.
/// Long (a full cloud-init boot): `scripts/test.sh --long`.
#[test]
#[ignore = "long: full cloud-init boot; scripts/test.sh --long runs it"]
fn full_mode_runs_the_command_in_the_booted_image() {
    let img = cloud_image("amd64");
    let dir = scratch("run", "full-input");
    let probe = dir.join("probe.sh");
    std::fs::write(
        &probe,
        "echo \"probe on $BOOTPROOF_ARCH $BOOTPROOF_KERNEL\"\n",
    )
    .unwrap();
    let history = dir.join("history.sqlite");
    let history_env = [("BOOTPROOF_HISTORY", history.to_str().unwrap())];
    let (code, v, err) = run(
        "full",
        &[
            "--json",
            "--mode",
            "full",
            "--binary",
            probe.to_str().unwrap(),
            img.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "sh \"$BOOTPROOF_BIN_PROBE_SH\"; echo pid1=$(cat /proc/1/comm); test -d /run/systemd/system",
        ],
        &history_env,
    );
    assert_eq!(code, 0, "{err}\n{v:#}");
    let c = &v["cells"][0];
    assert_eq!(c["status"], "pass");
    let out = c["stdout"].as_str().unwrap();
    assert!(out.contains("probe on x86_64 6."), "{out}");
    assert!(out.contains("pid1=systemd"), "{out}");
    assert!(c["kernel_version"].as_str().unwrap().starts_with("6."));
    let stages: Vec<&str> = c["run"]["boot"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert!(
        stages.contains(&"grub-started") && stages.contains(&"login-prompt"),
        "{stages:?}"
    );
    // The cell booted the image's own chain, so its image's prediction
    // went to the ledger beside `prove`'s: login, held.
    let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .args(["history", "--predictions", "--json"])
        .envs(history_env)
        .output()
        .unwrap();
    let l: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (l["total"].as_u64(), l["held"].as_u64()),
        (Some(1), Some(1)),
        "{l}"
    );
    assert_eq!(l["confusion"]["login"]["login"], 1, "{l}");
}
