//! `bootproof run`: the user's command as root in the image's own root,
//! mounted read-only under a tmpfs overlay, chrooted, argv never re-parsed.

use crate::sys::{kernel_log, list, mount, poll, read};
use bootproof_agent::{
    binary_env_var, Arch, Record, RunSpec, BINARIES_DIR, BINARIES_IN_ROOT, CHROOT_EXEC_ARG,
    MAX_OUTPUT,
};
use std::path::Path;

/// The child side of [`CHROOT_EXEC_ARG`]: `ROOT -- ARGV…`. chroot(2) into
/// ROOT, then exec ARGV with the inherited environment (PATH is looked up
/// inside the root). Never returns; exit 127 when the command cannot run.
#[cfg(target_os = "linux")]
pub(crate) fn chroot_exec(args: &[String]) -> ! {
    use std::os::unix::process::CommandExt;
    let fail = |what: String| -> ! {
        eprintln!("bootproof-agent: {what}");
        std::process::exit(127)
    };
    let (Some(root), Some("--")) = (args.first(), args.get(1).map(String::as_str)) else {
        fail("usage: --chroot-exec ROOT -- ARGV...".into())
    };
    let argv = &args[2..];
    if argv.is_empty() {
        fail("no command".into());
    }
    if let Err(e) = std::os::unix::fs::chroot(root) {
        fail(format!("chroot {root}: {e}"));
    }
    if let Err(e) = std::env::set_current_dir("/") {
        fail(format!("chdir /: {e}"));
    }
    let err = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
    fail(format!("{}: {err}", argv[0]))
}

/// Keeps the last `MAX_OUTPUT` bytes of a stream and counts them all.
#[cfg(target_os = "linux")]
pub(crate) fn tail_of(
    mut from: impl std::io::Read + Send + 'static,
) -> std::thread::JoinHandle<(Vec<u8>, u64)> {
    std::thread::spawn(move || {
        let mut tail: std::collections::VecDeque<u8> = std::collections::VecDeque::new();
        let mut total = 0u64;
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
            tail.extend(&buf[..n]);
            let excess = tail.len().saturating_sub(MAX_OUTPUT);
            tail.drain(..excess);
        }
        (tail.into(), total)
    })
}

/// The block device [`RunSpec::root_device`] names, once it is there
/// (up to `secs`; virtio-blk probes asynchronously): a name as it is,
/// `serial:NAME` the virtio disk whose `/sys/block/*/serial` is NAME.
#[cfg(target_os = "linux")]
fn find_root_device(spec: &str, secs: u64) -> Option<String> {
    let serial = spec.strip_prefix("serial:");
    let has_node = |name: &str| Path::new(&format!("/dev/{name}")).exists();
    poll(secs, 50, || match serial {
        None => has_node(spec).then(|| spec.to_string()),
        Some(serial) => list("/sys/block").into_iter().find(|name| {
            read(&format!("/sys/block/{name}/serial")).is_some_and(|s| s.trim_end() == serial)
                && has_node(name)
        }),
    })
}

/// Sets up the image's root under `/newroot`: read-only at `/image`, a
/// tmpfs overlay on top (the image stays untouched even inside the VM's
/// own disk overlay), the pseudo filesystems, the shipped binaries.
/// Returns how, for the report.
#[cfg(target_os = "linux")]
pub(crate) fn set_up_root(spec: &RunSpec) -> Result<String, String> {
    use rustix::mount::MountFlags;
    let Some(name) = find_root_device(&spec.root_device, 15) else {
        return Err(format!(
            "{} did not appear (is the disk driver in the image's modules?)",
            spec.root_device
        ));
    };
    let dev = format!("/dev/{name}");
    let _ = std::fs::create_dir_all("/image");
    rustix::mount::mount(
        dev.as_str(),
        "/image",
        spec.root_fstype.as_str(),
        MountFlags::RDONLY,
        None,
    )
    .map_err(|e| {
        // The kernel's own reason is in its log (e.g. "EXT4-fs (vda2):
        // Cannot load crc32c driver" behind an ENOENT).
        let log = kernel_log();
        let last: Vec<&String> = log.iter().rev().take(3).rev().collect();
        format!(
            "mount {dev} ({}) read-only: {e}; kernel log: {last:?}",
            spec.root_fstype
        )
    })?;
    mount("tmpfs", "/overlay", "tmpfs")?;
    for d in ["/overlay/upper", "/overlay/work", "/newroot"] {
        std::fs::create_dir_all(d).map_err(|e| format!("{d}: {e}"))?;
    }
    let how = match rustix::mount::mount(
        "overlay",
        "/newroot",
        "overlay",
        MountFlags::empty(),
        Some(c"lowerdir=/image,upperdir=/overlay/upper,workdir=/overlay/work"),
    ) {
        Ok(()) => format!(
            "{dev} ({}) read-only under a tmpfs overlay",
            spec.root_fstype
        ),
        Err(e) => {
            return Err(format!(
                "overlayfs on {dev}: {e} (is the overlay module in the image?)"
            ))
        }
    };
    for (src, target, fstype) in [
        ("proc", "/newroot/proc", "proc"),
        ("sysfs", "/newroot/sys", "sysfs"),
        ("devtmpfs", "/newroot/dev", "devtmpfs"),
        ("tmpfs", "/newroot/run", "tmpfs"),
        ("tmpfs", "/newroot/tmp", "tmpfs"),
    ] {
        mount(src, target, fstype)?;
    }
    install_binaries("/newroot", spec)?;
    Ok(how)
}

/// Copies the shipped binaries from [`BINARIES_DIR`] to
/// [`BINARIES_IN_ROOT`] under `root` (`/newroot`, or `""` for the running
/// system), executable.
#[cfg(target_os = "linux")]
pub(crate) fn install_binaries(root: &str, spec: &RunSpec) -> Result<(), String> {
    let bin_dir = format!("{root}{BINARIES_IN_ROOT}");
    std::fs::create_dir_all(&bin_dir).map_err(|e| format!("{bin_dir}: {e}"))?;
    for name in &spec.binaries {
        let to = format!("{bin_dir}/{name}");
        std::fs::copy(format!("{BINARIES_DIR}/{name}"), &to).map_err(|e| format!("{to}: {e}"))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{to}: {e}"))?;
    }
    Ok(())
}

/// `bootproof run`: the user's command, as root, in the image's root.
#[cfg(target_os = "linux")]
pub(crate) fn run_command(spec: &RunSpec, kernel: &str, arch: Arch) -> Record {
    use std::os::unix::process::ExitStatusExt;
    let failed = |root: String, error: String| Record::Command {
        exit_code: None,
        signal: None,
        timed_out: false,
        stdout: String::new(),
        stderr: String::new(),
        stdout_bytes: 0,
        stderr_bytes: 0,
        secs: 0.0,
        root,
        error: Some(error),
    };
    // No root device: full mode, the image's own system is up; the command
    // runs in it as it is (chroot to / is a no-op).
    let (root, root_dir) = if spec.root_device.is_empty() {
        match install_binaries("", spec) {
            Ok(()) => ("the booted system (full mode)".to_string(), "/"),
            Err(e) => return failed("the booted system (full mode)".into(), e),
        }
    } else {
        match set_up_root(spec) {
            Ok(how) => (how, "/newroot"),
            Err(e) => return failed("not set up".into(), e),
        }
    };
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg(CHROOT_EXEC_ARG)
        .arg(root_dir)
        .arg("--")
        .args(&spec.argv)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("HOME", "/root")
        .env("TERM", "dumb")
        .env("BOOTPROOF_KERNEL", kernel)
        .env("BOOTPROOF_ARCH", arch.name())
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for name in &spec.binaries {
        cmd.env(binary_env_var(name), format!("{BINARIES_IN_ROOT}/{name}"));
    }
    let start = std::time::Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(root, format!("starting the command: {e}")),
    };
    let out = child.stdout.take().map(tail_of);
    let err = child.stderr.take().map(tail_of);
    let limit = std::time::Duration::from_secs(spec.timeout_secs.max(1));
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if start.elapsed() >= limit => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let join = |h: Option<std::thread::JoinHandle<(Vec<u8>, u64)>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    let (stdout, stdout_bytes) = join(out);
    let (stderr, stderr_bytes) = join(err);
    Record::Command {
        exit_code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        timed_out,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        stdout_bytes,
        stderr_bytes,
        secs,
        root,
        error: None,
    }
}
