//! `bootproof-agent`: runs as `/init` of the initramfs bootproof builds
//! (agent mode: mounts the pseudo filesystems and loads the modules it was
//! given) or, with `--full`, from the image's own init after a normal boot
//! (full mode: the system is up; it touches nothing the image set up).
//! Runs the runtime checks, reports each as a framed record, and powers
//! the guest off. Everything it reads comes from the guest kernel's
//! own interfaces (`/sys`, `/proc`, `/dev/kmsg`).
#![forbid(unsafe_code)]

mod checks;
mod command;
mod report;
mod sys;

#[cfg(target_os = "linux")]
use bootproof_agent::{
    AgentConfig, Arch, Record, Status, Transport, CHROOT_EXEC_ARG, CONFIG_PATH, FULL_MODE_ARG,
    MODULES_LIST, NONCE_PATH, PORT_NAME, PROTOCOL,
};
#[cfg(target_os = "linux")]
use checks::{acpi, arm, devices, dt, firmware, riscv};
#[cfg(target_os = "linux")]
use report::{find_port, Reporter};
#[cfg(target_os = "linux")]
use sys::{kernel_log, load_module, mount, power_off, read};

#[cfg(target_os = "linux")]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(CHROOT_EXEC_ARG) {
        command::chroot_exec(&args[2..]);
    }
    let full = std::env::args().any(|a| a == FULL_MODE_ARG);
    if !full {
        let _ = mount("proc", "/proc", "proc");
        let _ = mount("sysfs", "/sys", "sysfs");
        let _ = mount("devtmpfs", "/dev", "devtmpfs");
    }
    let nonce = read(NONCE_PATH).unwrap_or_default().trim().to_string();
    let cfg: AgentConfig = read(CONFIG_PATH)
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(AgentConfig::unconfigured);
    let mut r = Reporter {
        nonce,
        passed: 0,
        failed: 0,
        port: None,
        console: full
            .then(|| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/console")
                    .ok()
            })
            .flatten(),
    };
    let uname = rustix::system::uname();
    r.send(&Record::Hello {
        v: PROTOCOL,
        agent: env!("CARGO_PKG_VERSION").into(),
        kernel: uname.release().to_string_lossy().into_owned(),
        machine: uname.machine().to_string_lossy().into_owned(),
    });
    let modules = if full { None } else { read(MODULES_LIST) };
    for path in modules
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
    {
        let error = load_module(path).err();
        r.send(&Record::Module {
            path: path.into(),
            error,
        });
    }
    // Let drivers bind to the devices their modules just registered (full
    // mode: udev loads them; give it a few seconds if it is still busy).
    std::thread::sleep(std::time::Duration::from_millis(300));
    r.port = find_port();
    let waited = std::time::Instant::now();
    while full && r.port.is_none() && waited.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(200));
        r.port = find_port();
    }
    r.check(
        "agent.virtio-serial",
        match (r.port.is_some(), cfg.virtio_serial) {
            (true, _) => Status::Pass,
            (false, true) => Status::Fail,
            (false, false) => Status::Skip,
        },
        if r.port.is_some() {
            format!("records also on virtio-serial port {PORT_NAME}")
        } else {
            "no virtio-serial port: records on the console only".into()
        },
    );
    if let Some(spec) = &cfg.run {
        let record = command::run_command(spec, &uname.release().to_string_lossy(), cfg.arch);
        r.send(&record);
        r.send(&Record::Done {
            passed: r.passed,
            failed: r.failed,
        });
        power_off();
    }
    if full {
        firmware::image_init_check(&mut r);
    }
    let log = kernel_log();
    firmware::efi_checks(&mut r, cfg.arch, &log);
    if cfg.persist_write.is_some() || cfg.persist_expect.is_some() {
        firmware::persistence_checks(&mut r, &cfg);
    }
    acpi::acpi_checks(&mut r, &cfg);
    if cfg.arch.info().device_tree {
        dt::dt_checks(&mut r, &cfg);
    }
    match cfg.arch {
        Arch::Aarch64 => arm::arm_checks(&mut r, &cfg, &log),
        Arch::Riscv64 => riscv::riscv_checks(&mut r, &cfg, &log),
        Arch::X86_64 => {}
    }
    devices::common_checks(&mut r, &cfg, &log);
    if cfg.transport == Transport::Pci {
        devices::hotplug_checks(&mut r, &cfg);
    }
    r.send(&Record::Done {
        passed: r.passed,
        failed: r.failed,
    });
    power_off();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("bootproof-agent runs inside a Linux guest");
    std::process::exit(2);
}
