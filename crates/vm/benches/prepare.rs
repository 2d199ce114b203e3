//! Host-side work before QEMU starts, per guest architecture: finding QEMU
//! and its machine type, choosing firmware from the descriptors, copying
//! the NVRAM template, writing the qcow2 overlay, building the command line.
//!
//!     cargo bench -p bootproof-vm --bench prepare [-- RUNS]
//!
//! Fixed input: a 20 GiB sparse raw image (prepare never reads its content).
//! Prints a Markdown table of median wall times over RUNS (default 20).

use bootproof_vm::accel::{Accel, Decision};
use bootproof_vm::firmware;
use bootproof_vm::machine::Platform;
use bootproof_vm::overlay::{copy_nvram, create_overlay};
use bootproof_vm::prepare::{prepare, FirmwareChoice, VmRequest};
use bootproof_vm::qemu::Qemu;
use bootproof_vm::state::RunDir;
use std::time::Instant;

fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    let base = std::env::temp_dir().join(format!("bootproof-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let image = base.join("disk.raw");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(20 << 30)
        .unwrap();
    let arches = bootproof_vm::machine::Arch::ALL;
    println!("| step | {} |", arches.map(|a| a.name()).join(" | "));
    println!("|---|{}", "---|".repeat(arches.len()));
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    let mut add = |name: &str, v: f64| match rows.iter_mut().find(|r| r.0 == name) {
        Some(r) => r.1.push(v),
        None => rows.push((name.to_string(), vec![v])),
    };
    for arch in bootproof_vm::machine::Arch::ALL {
        let qemu = Qemu::locate(arch).expect("QEMU installed (scripts/install-qemu.sh)");
        add(
            "find QEMU, resolve machine type (`-machine help`)",
            median_ms(runs, || {
                Qemu::locate(arch).unwrap();
            }),
        );
        let want = firmware::Want {
            arch,
            machine: qemu.machine.clone(),
            interface: "uefi".into(),
            secure_boot: Some(false),
            enrolled_keys: None,
        };
        let mut chosen = None;
        add(
            "the same, cached (binary unchanged)",
            median_ms(runs, || {
                Qemu::locate_cached(arch, &base.join("cache")).unwrap();
            }),
        );
        add(
            "load descriptors, select firmware",
            median_ms(runs, || {
                let (d, _) = firmware::load(&firmware::search_dirs());
                chosen = Some(firmware::select(&d, &want).unwrap());
            }),
        );
        let template = match chosen.unwrap().mapping {
            firmware::Mapping::Flash { nvram_template, .. } => nvram_template.unwrap().filename,
            _ => unreachable!(),
        };
        add(
            "copy NVRAM template (AAVMF 64 MiB, OVMF 528 KiB)",
            median_ms(runs, || {
                let d = base.join("vars.fd");
                let _ = std::fs::remove_file(&d);
                copy_nvram(&template, &d, None).unwrap();
            }),
        );
        add(
            "write qcow2 overlay (20 GiB virtual)",
            median_ms(runs, || {
                let o = base.join("overlay.qcow2");
                let _ = std::fs::remove_file(&o);
                create_overlay(&o, &image, "raw", 20 << 30).unwrap();
            }),
        );
        let req = VmRequest {
            arch,
            disk: bootproof_vm::prepare::BackingDisk {
                path: image.clone(),
                format: "raw".into(),
                size: 20 << 30,
                window: None,
            },
            firmware: FirmwareChoice::Auto,
            secure_boot: Some(false),
            platform: Platform::default(),
            kernel: None,
            cpus: 2,
            memory_mib: 1024,
            accel: Decision {
                accel: Accel::Tcg,
                reason: "bench".into(),
            },
            network: false,
            cache_dir: Some(base.join("cache")),
            nvram: None,
            hotplug_ports: 0,
            agent_channel: None,
            ready_port: false,
            seed_disk: None,
            fw_cfg: Vec::new(),
            hotplug_disk_bytes: None,
            disk_window: None,
            run_as: None,
        };
        let mut args = Vec::new();
        add(
            "all of it: `prepare` + command line, fresh run directory, QEMU facts cached",
            median_ms(runs, || {
                let run = RunDir::create(&base).unwrap();
                args = prepare(&req, &run).unwrap().spec.qemu_args();
            }),
        );
        assert!(!args.is_empty());
    }
    for (name, v) in rows {
        println!("| {name} | {:.1} ms | {:.1} ms |", v[0], v[1]);
    }
    let _ = std::fs::remove_dir_all(&base);
}
