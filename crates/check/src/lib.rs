//! Static compliance and boot readiness: the rule catalog ([`rules`]) run
//! over an opened image and its boot chain. Each finding carries the rule's
//! id, severity, the clause it comes from, the evidence, and a fix hint.
#![forbid(unsafe_code)]

mod kconfig;
pub mod rules;

use bootproof_boot::chain::{self, Arch, BootChain, BootEntry, FileRef};
use bootproof_boot::{initrd, kernel, pe::PeInfo};
use bootproof_disk::{Severity as DiagSeverity, TableKind};
use bootproof_fs::{FileType, FsKind, Volume};
use bootproof_inspect::{OpenedImage, PartSelector, Slot};
use kconfig::{KernelFeatures, State};
use rules::{Rule, Severity};
use serde::Serialize;

/// Schema of the check report.
pub const CHECK_SCHEMA: &str = "bootproof.check/v1";
const MAX_KERNEL: u64 = 512 << 20;
const MAX_INITRD: u64 = 2 << 30;

/// What happened to a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The image satisfies it.
    Pass,
    /// The image violates it.
    Fail,
    /// It could not be evaluated (the evidence says why).
    Skip,
    /// Informational rule.
    Info,
}

/// One rule's result.
#[derive(Debug, Serialize)]
pub struct Finding {
    /// The rule.
    #[serde(flatten)]
    pub rule: &'static Rule,
    /// Outcome.
    pub outcome: Outcome,
    /// What was seen.
    pub evidence: Vec<String>,
}

/// Counts per outcome.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Passed rules.
    pub pass: usize,
    /// Failed rules of severity error.
    pub fail_error: usize,
    /// Failed rules of severity warning.
    pub fail_warning: usize,
    /// Skipped rules.
    pub skip: usize,
    /// Informational findings.
    pub info: usize,
}

/// The whole check.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Always [`CHECK_SCHEMA`].
    pub schema: &'static str,
    /// Architecture checked.
    pub arch: Arch,
    /// Findings in catalog order.
    pub findings: Vec<Finding>,
    /// Counts.
    pub summary: Summary,
    /// The boot chain as followed.
    pub chain: BootChain,
    /// Bytes read from the image's host files to produce this report.
    pub bytes_read: u64,
}

impl Report {
    /// Whether any error-severity rule failed (exit status 1).
    pub fn failed(&self) -> bool {
        self.summary.fail_error > 0
    }
    /// The finding for a rule id.
    pub fn finding(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.rule.id == id)
    }
}

struct Ctx<'a> {
    img: &'a OpenedImage,
    arch: Arch,
    chain: BootChain,
    entry: Option<BootEntry>,
    kernel: Option<Result<kernel::KernelInfo, String>>,
    initrd: Option<Result<initrd::InitrdInfo, String>>,
    root: Option<&'a Slot>,
    features: Option<KernelFeatures>,
    findings: Vec<Finding>,
}

fn vol(img: &OpenedImage, slot: u32) -> Option<&Volume> {
    img.slot_volume(slot).ok()
}

fn read(img: &OpenedImage, f: &FileRef, limit: u64) -> Result<Vec<u8>, String> {
    img.read(f, limit).map_err(|e| format!("{f}: {e}"))
}

/// Resolves `UUID=`, `PARTUUID=`, `LABEL=`, `PARTLABEL=` and
/// `/dev/disk/by-*/` references. `Ok(None)` for references that cannot be
/// resolved statically (kernel device names, device mapper, network roots).
fn resolve<'a>(img: &'a OpenedImage, spec: &str) -> Result<Option<&'a Slot>, String> {
    let Some(sel) = PartSelector::from_device_ref(spec) else {
        return Ok(None);
    };
    img.select(&sel).map(Some).map_err(|_| {
        format!(
            "{} matches no filesystem or partition in the image",
            spec.trim_matches('"')
        )
    })
}

fn param<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_whitespace()
        .filter_map(|w| w.strip_prefix(key))
        .next_back()
}

impl<'a> Ctx<'a> {
    fn push(&mut self, rule: &'static Rule, outcome: Outcome, evidence: Vec<String>) {
        let outcome = if rule.severity == Severity::Info && outcome != Outcome::Skip {
            Outcome::Info
        } else {
            outcome
        };
        self.findings.push(Finding {
            rule,
            outcome,
            evidence,
        });
    }
    fn pass(&mut self, rule: &'static Rule, e: impl Into<String>) {
        self.push(rule, Outcome::Pass, vec![e.into()]);
    }
    fn fail(&mut self, rule: &'static Rule, e: Vec<String>) {
        self.push(rule, Outcome::Fail, e);
    }
    fn skip(&mut self, rule: &'static Rule, why: impl Into<String>) {
        self.push(rule, Outcome::Skip, vec![why.into()]);
    }
    fn cmdline(&self) -> Option<&str> {
        self.entry.as_ref().map(|e| e.cmdline.as_str())
    }

    fn image_rules(&mut self) {
        let t = &self.img.table;
        let valid = t.gpt_primary.as_ref().is_some_and(|h| h.valid)
            || t.gpt_backup.as_ref().is_some_and(|h| h.valid);
        match t.kind {
            TableKind::Gpt if valid => self.pass(
                &rules::GPT,
                format!(
                    "GPT, {}-byte sectors, {} partitions",
                    t.sector_size,
                    t.partitions.len()
                ),
            ),
            TableKind::Gpt => self.fail(
                &rules::GPT,
                vec!["GPT signature present but neither header is valid".into()],
            ),
            TableKind::Mbr => self.fail(
                &rules::GPT,
                vec!["the disk has an MBR (DOS) partition table only".into()],
            ),
            TableKind::None => {
                self.fail(&rules::GPT, vec!["the disk has no partition table".into()])
            }
        }
        if t.kind != TableKind::Gpt {
            self.skip(&rules::GPT_CONSISTENT, "not a GPT disk");
        } else {
            let bad: Vec<String> = t
                .diagnostics
                .iter()
                .filter(|d| d.code.starts_with("gpt.") && d.severity >= DiagSeverity::Warning)
                .map(|d| format!("{}: {}", d.code, d.message))
                .collect();
            if bad.is_empty() {
                self.pass(
                    &rules::GPT_CONSISTENT,
                    "primary and backup headers and entry arrays are valid and identical",
                );
            } else {
                self.fail(&rules::GPT_CONSISTENT, bad);
            }
        }
        let esp = self.img.slots.iter().find(|s| s.has_esp_type());
        match esp {
            Some(s) => {
                let p = s.partition.as_ref().expect("ESP has a partition");
                let how = p
                    .type_guid
                    .map(|g| format!("type {g}"))
                    .unwrap_or_else(|| "MBR type 0xEF".into());
                self.pass(&rules::ESP, format!("partition {} ({how})", s.number));
                if s.kind.is_fat() {
                    self.pass(
                        &rules::ESP_FAT,
                        format!("partition {} is {}", s.number, s.kind),
                    );
                    if s.kind == FsKind::Fat32 {
                        self.pass(&rules::ESP_FAT32, "FAT32");
                    } else {
                        self.fail(
                            &rules::ESP_FAT32,
                            vec![format!("partition {} is {}", s.number, s.kind)],
                        );
                    }
                } else {
                    self.fail(
                        &rules::ESP_FAT,
                        vec![format!("partition {} holds {}", s.number, s.kind)],
                    );
                    self.skip(&rules::ESP_FAT32, "the ESP is not FAT");
                }
            }
            None => {
                let lookalike = self.img.slots.iter().find(|s| s.holds_efi_dir());
                let mut e = vec!["no partition has the EFI System type".to_string()];
                if let Some(s) = lookalike {
                    let ty = s
                        .partition
                        .as_ref()
                        .map_or("no partition table".into(), |p| p.type_name.clone());
                    e.push(format!(
                        "partition {} is FAT with /EFI but its type is {ty}",
                        s.number
                    ));
                }
                self.fail(&rules::ESP, e);
                self.skip(&rules::ESP_FAT, "no ESP");
                self.skip(&rules::ESP_FAT32, "no ESP");
            }
        }
        let removable_problem: Vec<String> = self
            .chain
            .problems
            .iter()
            .filter(|p| p.code == "chain.no-removable-path" || p.code == "chain.no-esp")
            .map(|p| p.message.clone())
            .collect();
        match (
            self.chain.removable.clone(),
            self.chain.removable_info.clone(),
        ) {
            (Some(f), Some(info)) => {
                let f = f.clone();
                let desc = format!(
                    "{f}: {}, {}, {}",
                    if info.pe32_plus { "PE32+" } else { "PE32" },
                    info.machine_name,
                    info.subsystem_name
                );
                self.pass(&rules::REMOVABLE, f.to_string());
                if info.is_efi_application_for(self.arch.pe_machine()) {
                    self.pass(&rules::EFI_APP, desc);
                } else {
                    self.fail(
                        &rules::EFI_APP,
                        vec![
                            desc,
                            format!(
                                "needed: machine {:#06x}, EFI application (10)",
                                self.arch.pe_machine()
                            ),
                        ],
                    );
                }
                self.pass(
                    &rules::NO_PRECONFIG,
                    "the removable path boots without NVRAM entries",
                );
            }
            (Some(f), None) => {
                let f = f.clone();
                self.pass(&rules::REMOVABLE, f.to_string());
                self.fail(&rules::EFI_APP, vec![format!("{f} is not a PE/COFF image")]);
                self.pass(&rules::NO_PRECONFIG, "the removable path exists");
            }
            _ => {
                let e = if removable_problem.is_empty() {
                    self.chain
                        .problems
                        .iter()
                        .map(|p| p.message.clone())
                        .collect()
                } else {
                    removable_problem
                };
                let vendor = e.iter().any(|m| m.contains("vendor directories"));
                self.fail(&rules::REMOVABLE, e.clone());
                self.skip(&rules::EFI_APP, "no removable-path loader");
                if vendor {
                    self.fail(&rules::NO_PRECONFIG, e);
                } else {
                    self.skip(&rules::NO_PRECONFIG, "no EFI loader found at all");
                }
            }
        }
        self.no_firmware();
    }

    fn no_firmware(&mut self) {
        let mut found = Vec::new();
        let mut scanned = 0usize;
        for s in self
            .img
            .slots
            .iter()
            .filter(|s| s.has_esp_type() || s.kind.is_fat())
        {
            let Some(v) = &s.volume else { continue };
            let mut stack = vec![b"/".to_vec()];
            while let Some(dir) = stack.pop() {
                let Ok(entries) = v.read_dir(&dir) else {
                    continue;
                };
                for e in entries {
                    scanned += 1;
                    if scanned > 5000 {
                        break;
                    }
                    let mut p = dir.clone();
                    if !p.ends_with(b"/") {
                        p.push(b'/');
                    }
                    p.extend_from_slice(&e.name);
                    match e.file_type {
                        FileType::Dir => stack.push(p),
                        FileType::File => {
                            // EDK2 firmware volumes carry "_FVH" at byte 0x28.
                            let Ok((mut r, size)) = v.open(&p) else {
                                continue;
                            };
                            if size < 0x30 {
                                continue;
                            }
                            let mut head = [0u8; 0x30];
                            if std::io::Read::read_exact(&mut r, &mut head).is_ok()
                                && &head[0x28..0x2c] == b"_FVH"
                            {
                                found.push(format!(
                                    "{}:{} is a UEFI firmware volume",
                                    s.number,
                                    String::from_utf8_lossy(&p)
                                ));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        if found.is_empty() {
            self.pass(
                &rules::NO_FIRMWARE,
                format!("no firmware volume among {scanned} files on FAT volumes"),
            );
        } else {
            self.fail(&rules::NO_FIRMWARE, found);
        }
    }

    fn chain_rules(&mut self) {
        let Some(entry) = self.entry.clone() else {
            let e: Vec<String> = self
                .chain
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.code, p.message))
                .collect();
            self.fail(
                &rules::CHAIN,
                if e.is_empty() {
                    vec!["no boot entry".into()]
                } else {
                    e
                },
            );
            for r in [
                &rules::KERNEL_FILES,
                &rules::KERNEL_ARCH,
                &rules::KERNEL_EFI_STUB,
                &rules::UNRESOLVED_VARS,
            ] {
                self.skip(r, "no boot entry");
            }
            return;
        };
        let mut ev = self.chain.steps.clone();
        ev.push(format!("default entry: {} ({})", entry.title, entry.source));
        self.pass(&rules::CHAIN, ev.join("; "));
        let exists = |f: &FileRef| {
            vol(self.img, f.slot).is_some_and(|v| {
                v.metadata(f.path.as_bytes())
                    .is_ok_and(|m| m.file_type == FileType::File)
            })
        };
        let missing: Vec<String> = std::iter::once(&entry.kernel)
            .chain(&entry.initrds)
            .filter(|f| !exists(f))
            .map(|f| format!("{f} does not exist"))
            .collect();
        if missing.is_empty() {
            self.pass(
                &rules::KERNEL_FILES,
                format!(
                    "kernel {}{}",
                    entry.kernel,
                    entry
                        .initrds
                        .iter()
                        .map(|i| format!(", initrd {i}"))
                        .collect::<String>()
                ),
            );
        } else {
            self.fail(&rules::KERNEL_FILES, missing);
        }
        match self.kernel.clone() {
            Some(Ok(k)) => {
                let what = format!(
                    "{:?} for {}{}",
                    k.format,
                    k.arch,
                    k.version
                        .as_ref()
                        .map(|v| format!(", {v}"))
                        .unwrap_or_default()
                );
                if Arch::parse(k.arch) == Some(self.arch) {
                    self.pass(&rules::KERNEL_ARCH, what.clone());
                } else {
                    self.fail(
                        &rules::KERNEL_ARCH,
                        vec![what.clone(), format!("the image is {}", self.arch.name())],
                    );
                }
                if entry.uki || k.efi_stub {
                    self.pass(
                        &rules::KERNEL_EFI_STUB,
                        if entry.uki {
                            "the UKI is an EFI application".to_string()
                        } else {
                            what
                        },
                    );
                } else {
                    self.fail(
                        &rules::KERNEL_EFI_STUB,
                        vec![format!(
                            "{what}: no PE header (compressed {} wrapper)",
                            k.compression.map_or("?", |c| c.name())
                        )],
                    );
                }
            }
            Some(Err(e)) => {
                self.fail(&rules::KERNEL_ARCH, vec![e.clone()]);
                self.fail(&rules::KERNEL_EFI_STUB, vec![e]);
            }
            None => {
                self.skip(&rules::KERNEL_ARCH, "kernel not readable");
                self.skip(&rules::KERNEL_EFI_STUB, "kernel not readable");
            }
        }
        let vars: Vec<String> = entry
            .cmdline
            .split_whitespace()
            .filter(|w| w.contains('$'))
            .map(str::to_string)
            .collect();
        if vars.is_empty() {
            self.pass(&rules::UNRESOLVED_VARS, "no $variables on the command line");
        } else {
            let mut e: Vec<String> = vars
                .iter()
                .map(|v| format!("`{v}` reaches the kernel literally"))
                .collect();
            e.extend(
                self.chain
                    .problems
                    .iter()
                    .filter(|p| p.code == "chain.unresolved-variable")
                    .map(|p| p.message.clone()),
            );
            self.fail(&rules::UNRESOLVED_VARS, e);
        }
    }

    fn reference_rules(&mut self) {
        let Some(cmdline) = self.cmdline().map(str::to_string) else {
            self.skip(&rules::ROOT_REF, "no boot entry");
            self.skip(&rules::RESUME_REF, "no boot entry");
            self.fstab();
            return;
        };
        match param(&cmdline, "root=") {
            None => {
                let discoverable = self.img.slots.iter().any(|s| s.partition.as_ref().is_some_and(|p| p.type_name.starts_with("Linux root (")));
                if discoverable {
                    self.pass(&rules::ROOT_REF, "no root=; a Discoverable Partitions root type is present for systemd-gpt-auto-generator");
                } else {
                    self.fail(&rules::ROOT_REF, vec!["the command line has no root= and no partition has a discoverable root type".into()]);
                }
            }
            Some(r) => match resolve(self.img, r) {
                Ok(Some(s)) => {
                    self.root = Some(s);
                    self.pass(&rules::ROOT_REF, format!("root={r} is partition {} ({})", s.number, s.kind));
                }
                Ok(None) => self.skip(&rules::ROOT_REF, format!("root={r} cannot be resolved statically (kernel device name, device mapper or network root)")),
                Err(e) => self.fail(&rules::ROOT_REF, vec![e]),
            },
        }
        match param(&cmdline, "resume=") {
            None => self.pass(&rules::RESUME_REF, "no resume="),
            Some(r) => match resolve(self.img, r) {
                Ok(Some(s)) => self.pass(
                    &rules::RESUME_REF,
                    format!("resume={r} is partition {}", s.number),
                ),
                Ok(None) => self.skip(
                    &rules::RESUME_REF,
                    format!("resume={r} cannot be resolved statically"),
                ),
                Err(e) => self.fail(&rules::RESUME_REF, vec![e]),
            },
        }
        self.fstab();
    }

    fn fstab(&mut self) {
        let root = self
            .root
            .or_else(|| self.img.slots.iter().find(|s| s.is_root));
        self.root = root;
        let Some(text) = root
            .and_then(|s| s.volume.as_ref())
            .and_then(|v| v.read_limited(b"/etc/fstab", 1 << 20).ok())
        else {
            self.skip(&rules::FSTAB_REFS, "no /etc/fstab on the root filesystem");
            return;
        };
        let text = String::from_utf8_lossy(&text);
        let mut bad = Vec::new();
        let mut good = 0;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (spec, opts) = (f[0], f.get(3).copied().unwrap_or(""));
            match resolve(self.img, spec) {
                Ok(Some(_)) => good += 1,
                Ok(None) => {}
                Err(e) if opts.split(',').any(|o| o == "nofail") => {
                    bad.push(format!("{e} (nofail: boot continues)"))
                }
                Err(e) => bad.push(e),
            }
        }
        if bad.iter().all(|b| b.ends_with("(nofail: boot continues)")) && !bad.is_empty() {
            self.push(&rules::FSTAB_REFS, Outcome::Pass, bad);
        } else if bad.is_empty() {
            self.pass(
                &rules::FSTAB_REFS,
                format!("{good} device references resolve"),
            );
        } else {
            self.fail(&rules::FSTAB_REFS, bad);
        }
    }

    fn cmdline_rules(&mut self) {
        let Some(cmdline) = self.cmdline().map(str::to_string) else {
            for r in [&rules::CONSOLE, &rules::X86_TOKENS, &rules::BARE_TOKENS] {
                self.skip(r, "no boot entry");
            }
            return;
        };
        let want = self.arch.console();
        let consoles: Vec<&str> = cmdline
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("console="))
            .collect();
        if consoles.iter().any(|c| c.split(',').next() == Some(want)) {
            self.pass(&rules::CONSOLE, format!("console={want}"));
        } else {
            self.fail(
                &rules::CONSOLE,
                vec![format!(
                    "consoles on the command line: {}",
                    if consoles.is_empty() {
                        "none".to_string()
                    } else {
                        consoles.join(", ")
                    }
                )],
            );
        }
        if self.arch == Arch::Aarch64 {
            let x86: Vec<String> = cmdline
                .split_whitespace()
                .filter(|w| {
                    w.starts_with("earlyprintk=")
                        || *w == "clocksource=kvm-clock"
                        || *w == "no_timer_check"
                        || *w == "noreplace-smp"
                        || w.strip_prefix("console=")
                            .is_some_and(|c| c.starts_with(Arch::X86_64.console()))
                })
                .map(str::to_string)
                .collect();
            if x86.is_empty() {
                self.pass(&rules::X86_TOKENS, "none found");
            } else {
                self.fail(&rules::X86_TOKENS, x86);
            }
        } else {
            self.skip(&rules::X86_TOKENS, "applies to aarch64 images");
        }
        const KNOWN: &[&str] = &[
            "ro",
            "rw",
            "quiet",
            "splash",
            "nosplash",
            "single",
            "emergency",
            "rescue",
            "debug",
            "nomodeset",
            "noapic",
            "nolapic",
            "nosmp",
            "noacpi",
            "earlycon",
            "nokaslr",
            "nopti",
            "nosmt",
            "noresume",
            "rootwait",
            "rhgb",
            "fastboot",
            "1",
            "2",
            "3",
            "4",
            "5",
            "S",
            "s",
        ];
        let mut bare = Vec::new();
        for w in cmdline.split_whitespace() {
            if w == "--" {
                break; // the rest is meant for init
            }
            // `$variables` are boot.cmdline-vars' finding; report each cause once.
            if !w.contains('=') && !w.contains('$') && !KNOWN.contains(&w) {
                bare.push(w.to_string());
            }
        }
        if bare.is_empty() {
            self.pass(&rules::BARE_TOKENS, "none found");
        } else {
            self.fail(
                &rules::BARE_TOKENS,
                bare.into_iter()
                    .map(|w| format!("`{w}` would reach init's argv"))
                    .collect(),
            );
        }
    }

    fn os_rules(&mut self) {
        let arm = self.arch == Arch::Aarch64;
        let Some(f) = self.features.clone() else {
            for r in [
                &rules::OS_UART,
                &rules::OS_GIC,
                &rules::OS_EFI_RTC,
                &rules::OS_EFI,
                &rules::OS_ACPI_DT,
                &rules::OS_VIRTIO,
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
        if arm {
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
        } else {
            for r in [&rules::OS_UART, &rules::OS_GIC, &rules::OS_EFI_RTC] {
                self.skip(r, "applies to aarch64 guests");
            }
        }
        need(
            self,
            &rules::OS_EFI,
            &[("EFI", ""), ("EFI_STUB", "")],
            false,
        );
        if arm {
            need(self, &rules::OS_ACPI_DT, &[("ACPI", ""), ("OF", "")], false);
        } else {
            need(self, &rules::OS_ACPI_DT, &[("ACPI", "")], false);
        }
        need(
            self,
            &rules::OS_VIRTIO,
            &[
                ("VIRTIO_PCI", "virtio_pci"),
                ("VIRTIO_MMIO", "virtio_mmio"),
                ("VIRTIO_BLK", "virtio_blk"),
                ("VIRTIO_NET", "virtio_net"),
                ("VIRTIO_CONSOLE", "virtio_console"),
                ("VIRTIO_BALLOON", "virtio_balloon"),
                ("XEN_BLKDEV_FRONTEND", "xen_blkfront"),
                ("XEN_NETDEV_FRONTEND", "xen_netfront"),
            ],
            true,
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
        let modules = match &self.initrd {
            Some(Ok(i)) => Some(i.modules.clone()),
            _ => None,
        };
        let mut missing = Vec::new();
        let mut ok = Vec::new();
        for (sym, module) in needed {
            match f.state(sym, module) {
                State::Builtin => ok.push(format!("{module} built in")),
                State::Module | State::Unknown => match &modules {
                    Some(m) if m.contains(module) => ok.push(format!("{module} in the initrd")),
                    Some(_) => missing.push(format!(
                        "{module} is a module (CONFIG_{sym}=m) and is not in the initrd"
                    )),
                    None => missing.push(format!(
                        "{module} is a module and the entry has no readable initrd"
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

    fn provisioning(&mut self) {
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

/// Runs every rule for `arch` (see [`chain::detect_arch`] for `auto`).
pub fn check(img: &OpenedImage, arch: Arch) -> Report {
    let chain = chain::follow(img, arch);
    let entry = chain.default_entry().cloned();
    let mut ctx = Ctx {
        img,
        arch,
        entry,
        chain,
        kernel: None,
        initrd: None,
        root: None,
        features: None,
        findings: Vec::new(),
    };
    if let Some(e) = ctx.entry.clone() {
        if let Ok(raw) = read(img, &e.kernel, MAX_KERNEL) {
            let bytes = if e.uki {
                PeInfo::section_data(&raw, ".linux")
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default()
            } else {
                raw
            };
            ctx.kernel = Some(
                kernel::load(&bytes)
                    .map(|(i, _)| i)
                    .map_err(|err| format!("{}: {err}", e.kernel)),
            );
        }
        let mut bytes = Vec::new();
        let mut readable = true;
        if e.uki {
            if let Ok(raw) = read(img, &e.kernel, MAX_KERNEL) {
                bytes = PeInfo::section_data(&raw, ".initrd")
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default();
            }
        }
        for f in &e.initrds {
            match read(img, f, MAX_INITRD) {
                Ok(b) => bytes.extend(b),
                Err(_) => readable = false,
            }
        }
        if readable && !bytes.is_empty() {
            ctx.initrd = Some(initrd::inspect(&bytes).map_err(|err| err.to_string()));
        }
    }
    ctx.image_rules();
    ctx.chain_rules();
    ctx.reference_rules();
    ctx.cmdline_rules();
    let version = ctx
        .kernel
        .as_ref()
        .and_then(|k| k.as_ref().ok())
        .and_then(|k| k.version.clone());
    ctx.features = version
        .as_deref()
        .and_then(|v| KernelFeatures::find(img, ctx.root, v));
    ctx.os_rules();
    ctx.provisioning();
    let mut summary = Summary::default();
    for f in &ctx.findings {
        match (f.outcome, f.rule.severity) {
            (Outcome::Pass, _) => summary.pass += 1,
            (Outcome::Fail, Severity::Error) => summary.fail_error += 1,
            (Outcome::Fail, _) => summary.fail_warning += 1,
            (Outcome::Skip, _) => summary.skip += 1,
            (Outcome::Info, _) => summary.info += 1,
        }
    }
    // Catalog order, whatever order the rules were evaluated in.
    ctx.findings
        .sort_by_key(|f| rules::ALL.iter().position(|r| r.id == f.rule.id));
    Report {
        schema: CHECK_SCHEMA,
        arch,
        findings: ctx.findings,
        summary,
        chain: ctx.chain,
        bytes_read: img.image.stats().bytes_read(),
    }
}
