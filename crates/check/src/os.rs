//! Rules on the OS: the kernel's drivers and features (config or module
//! tree), root drivers in the initrd, provisioning (cloud-init, Ignition).

use super::*;

impl Ctx<'_> {
    pub(super) fn os_rules(&mut self) {
        let Some(f) = self.features.clone() else {
            for r in [
                &rules::OS_UART,
                &rules::OS_GIC,
                &rules::OS_EFI_RTC,
                &rules::OS_RV_UART,
                &rules::OS_RV_IRQ,
                &rules::OS_RV_AIA,
                &rules::OS_RV_SBI,
                &rules::OS_RV_RTC,
                &rules::OS_EFI,
                &rules::OS_ACPI_DT,
                &rules::OS_VIRTIO,
                &rules::OS_PCI_HOTPLUG,
                &rules::ROOT_DRIVERS,
            ] {
                self.skip(r, "no /boot/config-<version> and no /lib/modules/<version> for the default kernel");
            }
            return;
        };
        let src = f.source.clone();
        let need =
            |ctx: &mut Ctx, rule: &'static Rule, syms: &[(&str, &str)], accept_module: bool| {
                let mut bad = Vec::new();
                let mut unknown = Vec::new();
                let mut seen = Vec::new();
                for (sym, module) in syms {
                    match f.state(sym, module) {
                        State::Builtin => seen.push(format!("CONFIG_{sym}=y")),
                        State::Module if accept_module => seen.push(format!("CONFIG_{sym}=m")),
                        State::Module => bad.push(format!("CONFIG_{sym}=m (must be built in)")),
                        State::Absent => bad.push(format!("CONFIG_{sym} is not set")),
                        State::Unknown => unknown.push(format!("CONFIG_{sym}")),
                    }
                }
                if !bad.is_empty() {
                    ctx.fail(rule, bad);
                } else if !unknown.is_empty() {
                    ctx.skip(
                        rule,
                        format!("{} cannot be seen in {src}", unknown.join(", ")),
                    );
                } else {
                    ctx.pass(rule, format!("{} ({src})", seen.join(", ")));
                }
            };
        let arm_only = [&rules::OS_UART, &rules::OS_GIC, &rules::OS_EFI_RTC];
        let riscv_only = [
            &rules::OS_RV_UART,
            &rules::OS_RV_IRQ,
            &rules::OS_RV_AIA,
            &rules::OS_RV_SBI,
            &rules::OS_RV_RTC,
        ];
        match self.arch {
            Arch::Aarch64 => {
                need(
                    self,
                    &rules::OS_UART,
                    &[
                        ("SERIAL_AMBA_PL011", "amba_pl011"),
                        ("SERIAL_AMBA_PL011_CONSOLE", ""),
                    ],
                    false,
                );
                need(
                    self,
                    &rules::OS_GIC,
                    &[("ARM_GIC", ""), ("ARM_GIC_V3", "")],
                    false,
                );
                need(
                    self,
                    &rules::OS_EFI_RTC,
                    &[("RTC_DRV_EFI", "rtc_efi")],
                    true,
                );
            }
            Arch::Riscv64 => {
                need(
                    self,
                    &rules::OS_RV_UART,
                    &[
                        ("SERIAL_8250", ""),
                        ("SERIAL_8250_CONSOLE", ""),
                        ("SERIAL_OF_PLATFORM", "of_serial"),
                    ],
                    false,
                );
                need(self, &rules::OS_RV_IRQ, &[("SIFIVE_PLIC", "")], false);
                need(
                    self,
                    &rules::OS_RV_AIA,
                    &[("RISCV_APLIC", ""), ("RISCV_IMSIC", "")],
                    false,
                );
                need(
                    self,
                    &rules::OS_RV_SBI,
                    &[("RISCV_SBI", ""), ("RISCV_TIMER", "")],
                    false,
                );
                need(self, &rules::OS_RV_RTC, &[("RTC_DRV_EFI", "rtc_efi")], true);
            }
            Arch::X86_64 => {}
        }
        for (rules, applies) in [
            (&arm_only[..], Arch::Aarch64),
            (&riscv_only[..], Arch::Riscv64),
        ] {
            if self.arch != applies {
                for r in rules {
                    self.skip(r, format!("applies to {applies} guests"));
                }
            }
        }
        need(
            self,
            &rules::OS_EFI,
            &[("EFI", ""), ("EFI_STUB", "")],
            false,
        );
        if self.arch.info().device_tree {
            need(self, &rules::OS_ACPI_DT, &[("ACPI", ""), ("OF", "")], false);
        } else {
            need(self, &rules::OS_ACPI_DT, &[("ACPI", "")], false);
        }
        let mut drivers = vec![
            ("VIRTIO_PCI", "virtio_pci"),
            ("VIRTIO_MMIO", "virtio_mmio"),
            ("VIRTIO_BLK", "virtio_blk"),
            ("VIRTIO_NET", "virtio_net"),
            ("VIRTIO_CONSOLE", "virtio_console"),
            ("VIRTIO_BALLOON", "virtio_balloon"),
        ];
        if self.arch.info().xen_guest {
            drivers.extend([
                ("XEN_BLKDEV_FRONTEND", "xen_blkfront"),
                ("XEN_NETDEV_FRONTEND", "xen_netfront"),
            ]);
        }
        need(self, &rules::OS_VIRTIO, &drivers, true);
        need(
            self,
            &rules::OS_PCI_HOTPLUG,
            &[("HOTPLUG_PCI", ""), ("HOTPLUG_PCI_PCIE", "")],
            false,
        );
        // Reaching root on a virtio-blk disk: the bus, the disk, the filesystem.
        let fs = match self.root.map(|s| s.kind) {
            Some(FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4) => Some(("EXT4_FS", "ext4")),
            Some(FsKind::Xfs) => Some(("XFS_FS", "xfs")),
            Some(FsKind::Btrfs) => Some(("BTRFS_FS", "btrfs")),
            _ => None,
        };
        let mut needed = vec![("VIRTIO_PCI", "virtio_pci"), ("VIRTIO_BLK", "virtio_blk")];
        needed.extend(fs);
        // A root on an LVM2 logical volume: the device mapper, and lvm2 in
        // the initramfs to activate the volume before mounting it.
        let on_lv = self.root.and_then(|s| s.lv.as_ref());
        if on_lv.is_some() {
            needed.push(("BLK_DEV_DM", "dm_mod"));
        }
        let (modules, unreadable) = match &self.initrd {
            Some(Ok(i)) => (Some(i.modules.clone()), String::new()),
            Some(Err(e)) => (None, format!(" ({e})")),
            None => (None, String::new()),
        };
        let mut missing = Vec::new();
        let mut ok = Vec::new();
        if let Some(lv) = on_lv {
            match &self.initrd {
                Some(Ok(i)) if i.paths.iter().any(|p| is_lvm_tool(p)) => {
                    ok.push(format!("lvm in the initrd for root on {}/{}", lv.vg, lv.lv));
                }
                Some(Ok(_)) => missing.push(format!(
                    "root is on the LVM2 logical volume {}/{} and the initrd has no lvm tool to activate it",
                    lv.vg, lv.lv
                )),
                _ => {}
            }
        }
        for (sym, module) in needed {
            match f.state(sym, module) {
                State::Builtin => ok.push(format!("{module} built in")),
                State::Module | State::Unknown => match &modules {
                    Some(m) if m.contains(module) => ok.push(format!("{module} in the initrd")),
                    Some(_) => missing.push(format!(
                        "{module} is a module (CONFIG_{sym}=m) and is not in the initrd"
                    )),
                    None => missing.push(format!(
                        "{module} is a module and the entry has no readable initrd{unreadable}"
                    )),
                },
                State::Absent => missing.push(format!("CONFIG_{sym} is not set")),
            }
        }
        if missing.is_empty() {
            self.pass(&rules::ROOT_DRIVERS, ok.join(", "));
        } else {
            self.fail(&rules::ROOT_DRIVERS, missing);
        }
    }

    pub(super) fn provisioning(&mut self) {
        let Some(v) = self.root.and_then(|s| s.volume.as_ref()) else {
            self.skip(&rules::GUEST_AGENT, "no OS root");
            return;
        };
        let has = |p: &str| v.exists(p.as_bytes()).unwrap_or(false);
        let mut found = Vec::new();
        if has("/usr/bin/cloud-init") || has("/etc/cloud/cloud.cfg") {
            found.push("cloud-init");
        }
        if has("/usr/bin/ignition")
            || has("/usr/lib/dracut/modules.d/30ignition")
            || has("/usr/lib/systemd/system/ignition-firstboot-complete.service")
        {
            found.push("Ignition");
        }
        let e = if found.is_empty() {
            "neither cloud-init nor Ignition found".to_string()
        } else {
            found.join(", ")
        };
        self.push(&rules::GUEST_AGENT, Outcome::Info, vec![e]);
    }
}

/// Whether an initrd path is lvm2's tool (what initramfs-tools' and
/// dracut's lvm hooks install).
fn is_lvm_tool(path: &str) -> bool {
    matches!(
        path.trim_start_matches('/'),
        "sbin/lvm" | "usr/sbin/lvm" | "bin/lvm" | "usr/bin/lvm"
    )
}
