//! Rules on the image itself: partition table, ESP, removable path, the
//! loader binary, no shipped firmware or NVRAM dependence.

use super::*;

impl Ctx<'_> {
    pub(super) fn image_rules(&mut self) {
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

    /// Looks for EDK2 firmware volumes on FAT volumes: at most
    /// [`SCAN_ENTRIES`] entries in [`SCAN_DIRS`] directories, and only
    /// files named like firmware are opened (each open resolves its path
    /// again; a crafted volume of cross-linked 65,536-entry directories
    /// made this scan run for minutes: an `open_image` fuzz finding).
    pub(super) fn no_firmware(&mut self) {
        const SCAN_ENTRIES: usize = 5000;
        const SCAN_DIRS: usize = 256;
        const SCAN_OPENS: usize = 64;
        let firmware_like = |name: &[u8]| {
            let n = String::from_utf8_lossy(name).to_ascii_lowercase();
            [".fd", ".bin", ".rom", ".img"]
                .iter()
                .any(|x| n.ends_with(x))
        };
        let (mut dirs, mut opens) = (0usize, 0usize);
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
                dirs += 1;
                if dirs > SCAN_DIRS || scanned >= SCAN_ENTRIES {
                    break;
                }
                let Ok(entries) = v.read_dir(&dir) else {
                    continue;
                };
                for e in entries {
                    scanned += 1;
                    if scanned > SCAN_ENTRIES {
                        break;
                    }
                    let mut p = dir.clone();
                    if !p.ends_with(b"/") {
                        p.push(b'/');
                    }
                    p.extend_from_slice(&e.name);
                    match e.file_type {
                        FileType::Dir => stack.push(p),
                        FileType::File if firmware_like(&e.name) && opens < SCAN_OPENS => {
                            opens += 1;
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
}
