//! What the agent asks of the guest kernel: files, mounts, modules, the
//! kernel log and power-off.

pub(crate) fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

/// Asks `found` every `every_ms` until it answers or `secs` pass: devices
/// appear asynchronously (virtio-blk probes, hotplug).
pub(crate) fn poll<T>(secs: u64, every_ms: u64, mut found: impl FnMut() -> Option<T>) -> Option<T> {
    let start = std::time::Instant::now();
    loop {
        if let Some(t) = found() {
            return Some(t);
        }
        if start.elapsed() >= std::time::Duration::from_secs(secs) {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(every_ms));
    }
}

/// The driver of the UART behind `tty` (`uart-pl011`, `serial8250`, …).
/// Since Linux 6.5 the tty's device is the serial core's `port` device
/// (under a `ctrl` one), bound to drivers of those names: the UART's own
/// driver is the first ancestor's that is neither.
pub(crate) fn uart_driver(tty: &str) -> String {
    let Ok(mut dev) = std::fs::canonicalize(format!("/sys/class/tty/{tty}/device")) else {
        return String::new();
    };
    for _ in 0..4 {
        let driver = std::fs::read_link(dev.join("driver"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        match driver.as_deref() {
            Some("port" | "ctrl") | None => {}
            Some(d) => return d.to_string(),
        }
        if !dev.pop() {
            break;
        }
    }
    String::new()
}

pub(crate) fn list(p: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(target_os = "linux")]
pub(crate) fn mount(src: &str, target: &str, fstype: &str) -> Result<(), String> {
    let _ = std::fs::create_dir_all(target);
    rustix::mount::mount(
        src,
        target,
        fstype,
        rustix::mount::MountFlags::empty(),
        None,
    )
    .map_err(|e| format!("mount {fstype} on {target}: {e}"))
}

#[cfg(target_os = "linux")]
pub(crate) fn load_module(path: &str) -> Result<(), String> {
    let image = std::fs::read(path).map_err(|e| e.to_string())?;
    match rustix::system::init_module(&image, c"") {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(target_os = "linux")]
pub(crate) fn power_off() -> ! {
    rustix::fs::sync();
    let _ = rustix::system::reboot(rustix::system::RebootCommand::PowerOff);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

/// The kernel log so far (`/dev/kmsg`, read without blocking).
#[cfg(target_os = "linux")]
pub(crate) fn kernel_log() -> Vec<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open("/dev/kmsg")
    else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 8192];
    // Each read returns one record: "prio,seq,time,flags;message".
    while lines.len() < 20_000 {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let rec = String::from_utf8_lossy(&buf[..n]);
                if let Some((_, msg)) = rec.split_once(';') {
                    lines.push(msg.lines().next().unwrap_or("").to_string());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => continue, // overwritten records
            Err(_) => break,
        }
    }
    lines
}
