//! Rules on the boot chain: it resolves, its kernel and initrds exist and
//! suit the architecture, `root=`/`resume=` and `/etc/fstab` resolve.

use super::*;

impl Ctx<'_> {
    pub(super) fn chain_rules(&mut self) {
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
                &rules::LOADER_COMMANDS,
                &rules::MENU_TIMEOUT,
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
        if !self.chain.missing_commands.is_empty() {
            self.fail(&rules::LOADER_COMMANDS, self.chain.missing_commands.clone());
        } else if self.chain.steps.iter().any(|s| s.contains("GRUB")) {
            self.pass(
                &rules::LOADER_COMMANDS,
                "GRUB has the commands its configuration runs",
            );
        } else {
            self.skip(&rules::LOADER_COMMANDS, "no GRUB in the chain");
        }
        match self.chain.menu_timeout.clone() {
            None => self.skip(&rules::MENU_TIMEOUT, "the loader has no menu"),
            Some(t) if t.waits_for_key => self.fail(
                &rules::MENU_TIMEOUT,
                vec![format!("timeout is {} ({})", t.value, t.source)],
            ),
            Some(t) => self.pass(
                &rules::MENU_TIMEOUT,
                format!("timeout {} ({})", t.value, t.source),
            ),
        }
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

    pub(super) fn reference_rules(&mut self) {
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

    pub(super) fn fstab(&mut self) {
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
}
