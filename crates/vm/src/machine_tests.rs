use super::*;

fn spec(arch: Arch) -> VmSpec {
    VmSpec {
        arch,
        machine: format!("{}-10.0", arch.info().qemu_machine_prefix),
        platform: Platform::default(),
        accel: Accel::Tcg,
        cpus: 2,
        memory_mib: 1024,
        firmware: FirmwareSetup::Pflash {
            code: FlashImage {
                path: "/fw/CODE.fd".into(),
                format: "raw".into(),
            },
            vars: Some(FlashImage {
                path: "/run/x,y/VARS.fd".into(),
                format: "raw".into(),
            }),
            requires_smm: false,
        },
        disk: Some(Disk {
            path: "/run/x/disk.qcow2".into(),
            format: "qcow2".into(),
        }),
        kernel: None,
        console_file: "/run/x/console.raw".into(),
        qmp_socket: "/run/x/qmp.sock".into(),
        network: false,
        hotplug_ports: 0,
        agent_channel: None,
        ready_channel: None,
        seed_disk: None,
        fw_cfg: Vec::new(),
        hotplug_disk: None,
        disk_window: None,
        run_as: None,
    }
}

fn after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

#[test]
fn aarch64_virt_with_uefi_and_an_overlay() {
    let a = spec(Arch::Aarch64).qemu_args();
    assert_eq!(after(&a, "-machine"), ["virt-10.0,gic-version=3,acpi=on"]);
    assert_eq!(after(&a, "-cpu"), ["max,pauth-impdef=on"]);
    assert_eq!(after(&a, "-accel"), ["tcg,thread=multi"]);
    assert_eq!(
        after(&a, "-drive"),
        [
            "if=pflash,unit=0,format=raw,readonly=on,file=/fw/CODE.fd",
            "if=pflash,unit=1,format=raw,file=/run/x,,y/VARS.fd"
        ]
    );
    assert!(after(&a, "-device").contains(&"virtio-blk-pci,drive=disk0,bootindex=0"));
    assert_eq!(after(&a, "-nic"), ["none"]);
    assert_eq!(after(&a, "-boot"), ["menu=on,splash-time=0"]);
    assert_eq!(after(&a, "-serial"), ["chardev:console"]);
    assert!(a.iter().any(|s| s == "-nodefaults"));
    assert!(after(&a, "-kernel").is_empty());
}

/// A disk window reads the boot disk's node, read-only, on a device
/// of its own the guest finds by serial; without a boot disk there is
/// nothing to window.
#[test]
fn a_disk_window_is_a_read_only_view_of_the_boot_disk() {
    let mut s = spec(Arch::Aarch64);
    s.disk_window = Some(WindowDisk {
        source: WindowSource::Range {
            offset: 1 << 20,
            size: 4 << 20,
        },
        serial: "bootproof-root".into(),
    });
    let a = s.qemu_args();
    assert!(after(&a, "-blockdev").contains(
        &"driver=raw,node-name=window0,read-only=on,offset=1048576,size=4194304,file=disk0"
    ));
    assert!(after(&a, "-device")
        .contains(&"virtio-blk-pci,drive=window0,serial=bootproof-root,share-rw=on"));
    s.platform.transport = Transport::Mmio;
    assert!(after(&s.qemu_args(), "-device")
        .contains(&"virtio-blk-device,drive=window0,serial=bootproof-root,share-rw=on"));
    s.disk_window.as_mut().unwrap().source = WindowSource::Descriptor("/run/x/root.vmdk".into());
    assert!(after(&s.qemu_args(), "-blockdev").contains(
        &"driver=vmdk,node-name=window0,read-only=on,file.driver=file,file.filename=/run/x/root.vmdk,file.read-only=on"
    ));
    s.disk = None;
    assert!(!s.qemu_args().iter().any(|a| a.contains("window0")));
}

#[test]
fn agent_and_readiness_ports_share_one_virtio_serial_controller() {
    let count = |a: &[String], prefix: &str| {
        after(a, "-device")
            .iter()
            .filter(|d| d.starts_with(prefix))
            .count()
    };
    let mut s = spec(Arch::X86_64);
    s.ready_channel = Some("/run/x/ready.out".into());
    let a = s.qemu_args();
    assert_eq!(count(&a, "virtio-serial-pci"), 1);
    assert!(after(&a, "-device")
        .contains(&"virtserialport,bus=vser0.0,chardev=readych,name=org.bootproof.ready"));
    assert!(after(&a, "-chardev").contains(&"file,id=readych,path=/run/x/ready.out"));
    s.agent_channel = Some("/run/x/agent.out".into());
    let a = s.qemu_args();
    assert_eq!(count(&a, "virtio-serial-pci"), 1);
    assert_eq!(count(&a, "virtserialport"), 2);
}

#[test]
fn platform_variants_and_direct_kernel() {
    let mut s = spec(Arch::Aarch64);
    s.platform = Platform {
        gic: 2,
        acpi: false,
        transport: Transport::Mmio,
        aia: false,
    };
    s.firmware = FirmwareSetup::QemuDefault;
    s.agent_channel = Some("/run/x/agent.out".into());
    s.kernel = Some(DirectKernel {
        kernel: "/k".into(),
        initrd: Some("/i".into()),
        cmdline: "console=ttyAMA0 root=/dev/vda2".into(),
    });
    let a = s.qemu_args();
    assert_eq!(after(&a, "-machine"), ["virt-10.0,gic-version=2,acpi=off"]);
    assert!(after(&a, "-device").contains(&"virtio-blk-device,drive=disk0"));
    assert!(after(&a, "-drive").is_empty());
    assert!(after(&a, "-boot").is_empty());
    assert!(after(&a, "-device").contains(&"virtio-serial-device,id=vser0"));
    assert!(after(&a, "-chardev").contains(&"file,id=agentch,path=/run/x/agent.out"));
    assert_eq!(after(&a, "-kernel"), ["/k"]);
    assert_eq!(after(&a, "-initrd"), ["/i"]);
    assert_eq!(after(&a, "-append"), ["console=ttyAMA0 root=/dev/vda2"]);
}

#[test]
fn qemu_runs_sandboxed() {
    for arch in Arch::ALL {
        let a = spec(arch).qemu_args();
        let sandbox = after(&a, "-sandbox");
        assert_eq!(sandbox.len(), 1);
        for deny in ["obsolete", "elevateprivileges", "spawn", "resourcecontrol"] {
            assert!(sandbox[0].contains(&format!("{deny}=deny")), "{sandbox:?}");
        }
        assert!(after(&a, "-run-with").is_empty());
        // Switching user: set*uid must stay allowed for QEMU's own switch.
        let mut s = spec(arch);
        s.run_as = Some(RunAs {
            uid: 65534,
            gid: 65534,
        });
        let a = s.qemu_args();
        assert_eq!(after(&a, "-run-with"), ["user=65534:65534"]);
        let sandbox = after(&a, "-sandbox");
        assert!(
            sandbox[0].contains("elevateprivileges=allow"),
            "{sandbox:?}"
        );
        for deny in ["obsolete", "spawn", "resourcecontrol"] {
            assert!(sandbox[0].contains(&format!("{deny}=deny")), "{sandbox:?}");
        }
    }
}

/// Commas: doubled inside option strings, literal in whole-argument
/// paths (QEMU opens `-kernel /tmp/a,b/k` as given and `/tmp/a,,b/k`
/// as a file that does not exist; checked against qemu-system-x86_64).
#[test]
fn commas_in_paths_reach_qemu_as_the_same_file() {
    let mut s = spec(Arch::Aarch64);
    s.kernel = Some(DirectKernel {
        kernel: "/tmp/a,b/kernel".into(),
        initrd: Some("/tmp/a,b/initrd".into()),
        cmdline: String::new(),
    });
    s.agent_channel = Some("/tmp/a,b/agent.out".into());
    let a = s.qemu_args();
    assert_eq!(after(&a, "-kernel"), ["/tmp/a,b/kernel"]);
    assert_eq!(after(&a, "-initrd"), ["/tmp/a,b/initrd"]);
    assert!(after(&a, "-chardev").contains(&"file,id=agentch,path=/tmp/a,,b/agent.out"));
    s.firmware = FirmwareSetup::Bios {
        path: "/fw/a,b.bin".into(),
    };
    assert_eq!(after(&s.qemu_args(), "-bios"), ["/fw/a,b.bin"]);
}

#[test]
fn x86_q35_ignores_arm_options_and_honours_smm() {
    let mut s = spec(Arch::X86_64);
    s.platform.transport = Transport::Mmio; // not on q35: stays PCI
    if let FirmwareSetup::Pflash { requires_smm, .. } = &mut s.firmware {
        *requires_smm = true;
    }
    s.network = true;
    s.hotplug_ports = 2;
    let a = s.qemu_args();
    assert_eq!(after(&a, "-machine"), ["pc-q35-10.0,smm=on"]);
    assert_eq!(after(&a, "-cpu"), ["max"]);
    assert!(after(&a, "-global").contains(&"driver=cfi.pflash01,property=secure,value=on"));
    assert!(after(&a, "-device").contains(&"virtio-blk-pci,drive=disk0,bootindex=0"));
    assert!(after(&a, "-device").contains(&"virtio-net-pci,netdev=net0,romfile="));
    assert!(after(&a, "-nic").is_empty());
    assert!(after(&a, "-device").contains(&"pcie-root-port,id=rp2,chassis=2,slot=2"));
}

#[test]
fn riscv64_virt_has_acpi_and_transport_axes_but_no_gic() {
    let mut s = spec(Arch::Riscv64);
    s.platform = Platform {
        gic: 2, // no GIC on RISC-V: ignored
        acpi: false,
        transport: Transport::Mmio,
        aia: false,
    };
    let a = s.qemu_args();
    assert_eq!(after(&a, "-machine"), ["virt-10.0,acpi=off"]);
    assert!(after(&a, "-device").contains(&"virtio-blk-device,drive=disk0,bootindex=0"));
    s.platform = Platform {
        aia: true,
        ..Platform::default()
    };
    let a = s.qemu_args();
    assert_eq!(after(&a, "-machine"), ["virt-10.0,acpi=on,aia=aplic-imsic"]);
    s.platform = Platform::default();
    let a = s.qemu_args();
    assert_eq!(after(&a, "-machine"), ["virt-10.0,acpi=on"]);
    assert!(after(&a, "-device").contains(&"virtio-blk-pci,drive=disk0,bootindex=0"));
}
