//! `bootproof inspect`.

use crate::args::{ImageArgs, OutputArgs};
use crate::style::{cell, human_size, styled, table, write_json, SafeStdout, Style};
use bootproof_boot::signing::EfiBinary;
use bootproof_disk::{Severity, TableKind};
use bootproof_inspect::{FsReport, InspectReport};
use bootproof_runtime::inspection::inspect_image;
use bootproof_runtime::{exit, Error};
use std::fmt::Write as _;
use std::io::Write;

pub fn run(args: &ImageArgs, out: OutputArgs) -> Result<u8, Error> {
    let img = args.open()?;
    let found = inspect_image(&img);
    let mut stdout = SafeStdout::default();
    if out.json {
        write_json(&mut stdout, &found)?;
    } else {
        let text = render(&found.report, &found.efi_binaries, Style::stdout(out.color));
        stdout.write_all(text.as_bytes())?;
    }
    Ok(exit::OK)
}

/// Under a file's line: its kind, signers (with the hash check) and SBAT.
fn binary_lines(o: &mut String, b: &EfiBinary, indent: &str, st: Style) {
    for (tone, text) in b.facts() {
        let text = st.toned(tone, &text);
        let _ = writeln!(o, "{indent}{text}");
    }
}

fn render(r: &InspectReport, binaries: &[EfiBinary], st: Style) -> String {
    let mut o = String::new();
    image_and_table(&mut o, r, st);
    o.push_str(&slots_table(r, st));
    for fs in &r.filesystems {
        if let (Some(origin), None) = (&fs.origin, &fs.lv) {
            let _ = writeln!(o, "{}", st.dim(&format!("slot {}: {origin}", fs.partition)));
        }
    }
    for vg in &r.volume_groups {
        let _ = writeln!(o, "{}", st.dim(&vg.describe()));
    }
    for fs in &r.filesystems {
        contents(&mut o, fs, binaries, st);
    }
    problems(&mut o, r, st);
    let _ = writeln!(
        o,
        "\n{}",
        st.dim(&format!(
            "read {} from the image",
            human_size(r.image.bytes_read)
        ))
    );
    o
}

/// The image, its backing chain and the partition table's kind.
fn image_and_table(o: &mut String, r: &InspectReport, st: Style) {
    for (i, l) in r.image.chain.iter().enumerate() {
        let label = if i == 0 { "Image" } else { "  backed by" };
        let mut desc = l.format.clone();
        if let Some(v) = l.version {
            let _ = write!(desc, " v{v}");
        }
        match (&l.subformat, l.format.as_str()) {
            (Some(sub), "vpc") => {
                let _ = write!(desc, " (VHD {sub})");
            }
            (Some(sub), _) => {
                let _ = write!(desc, " ({sub})");
            }
            (None, _) => {}
        }
        let _ = write!(
            desc,
            ", {} virtual, {} file",
            human_size(l.virtual_size),
            human_size(l.file_size)
        );
        if let Some(c) = l.cluster_size {
            let unit = match l.format.as_str() {
                "vmdk" => "grains",
                "vhdx" => "blocks",
                _ => "clusters",
            };
            let _ = write!(desc, ", {} {unit}", human_size(c));
        }
        if let Some(c) = &l.compression {
            let _ = write!(desc, ", {c} compression");
        }
        if let Some(c) = &l.container {
            let _ = write!(desc, ", {}", c.describe());
        }
        let _ = writeln!(
            o,
            "{} {}  {}",
            st.bold(&format!("{label:<11}")),
            l.path.display(),
            st.dim(&desc)
        );
    }
    // Table.
    let t = &r.partition_table;
    let kind = match t.kind {
        TableKind::Gpt => format!("GPT, {}-byte sectors, {:?} MBR", t.sector_size, t.mbr)
            .to_lowercase()
            .replace("gpt", "GPT")
            .replace("mbr", "MBR"),
        TableKind::Mbr => "MBR (DOS)".to_string(),
        TableKind::None => "none (whole-disk filesystem)".to_string(),
    };
    let _ = writeln!(
        o,
        "{} {kind}{}",
        st.bold(&format!("{:<11}", "Table")),
        t.disk_id
            .as_ref()
            .map(|d| format!("  {}", st.dim(&format!("disk id {d}"))))
            .unwrap_or_default()
    );
    o.push('\n');
}

/// One row per slot: partition, filesystem, label, UUID, role.
fn slots_table(r: &InspectReport, st: Style) -> String {
    let t = &r.partition_table;
    let mut rows = Vec::new();
    for fs in &r.filesystems {
        let part = t.partitions.iter().find(|p| p.number == fs.partition);
        let (start, size, ptype, name) = match part {
            Some(p) => (
                human_size(p.start),
                human_size(p.size),
                p.type_name.clone(),
                p.name.clone().unwrap_or_default(),
            ),
            None if fs.lv.is_some() => {
                let lv = fs.lv.as_ref().expect("checked");
                (
                    "-".into(),
                    human_size(lv.size),
                    "LVM2 logical volume".into(),
                    format!("{}/{}", lv.vg, lv.lv),
                )
            }
            None if fs.origin.is_some() => (
                "-".into(),
                "-".into(),
                "El Torito image".into(),
                String::new(),
            ),
            None => (
                "0 B".into(),
                human_size(t.disk_size),
                "-".into(),
                String::new(),
            ),
        };
        let fstype = if fs.readable {
            cell(fs.variant.clone())
        } else if fs.fs_type == "unknown" {
            styled("-", |s| st.dim(s))
        } else if fs.fs_type == "crypto_LUKS" {
            styled("LUKS (encrypted: no keys taken)", |s| st.yellow(s))
        } else if fs.fs_type == "LVM2_member" && !r.volume_groups.is_empty() {
            // Its logical volumes are the slots below.
            cell("LVM2 PV".to_string())
        } else {
            styled(&format!("{} (not readable)", fs.variant), |s| st.yellow(s))
        };
        rows.push(vec![
            cell(fs.partition.to_string()),
            cell(start),
            cell(size),
            cell(ptype),
            cell(name),
            fstype,
            cell(fs.label.clone().unwrap_or_default()),
            cell(fs.uuid.clone().unwrap_or_default()),
            cell(fs.roles.join(",")),
        ]);
    }
    table(
        &[
            "#", "START", "SIZE", "TYPE", "NAME", "FS", "LABEL", "UUID", "ROLE",
        ],
        &rows,
        st,
    )
}

/// What a filesystem holds: the ESP's EFI/ tree, the OS, boot files.
fn contents(o: &mut String, fs: &FsReport, binaries: &[EfiBinary], st: Style) {
    let binary = |path: &str| {
        binaries
            .iter()
            .find(|b| b.partition == fs.partition && b.path == path)
    };
    {
        if let Some(efi) = &fs.efi {
            let _ = writeln!(
                o,
                "\n{} {}",
                st.bold("EFI System Partition"),
                st.dim(&format!("(partition {})", fs.partition))
            );
            if efi.is_empty() {
                let _ = writeln!(o, "  {}", st.yellow("no EFI/ directory"));
            }
            for e in efi {
                if e.file_type == bootproof_fs::FileType::Dir {
                    let _ = writeln!(o, "  {}", st.blue(&format!("{}/", e.path)));
                } else {
                    let _ = writeln!(o, "  {:<48} {}", e.path, st.dim(&human_size(e.size)));
                    if let Some(b) = binary(&e.path) {
                        binary_lines(o, b, "      ", st);
                    }
                }
            }
        }
        if let Some(os) = &fs.os_release {
            let name = os
                .get("PRETTY_NAME")
                .or(os.get("NAME"))
                .cloned()
                .unwrap_or_else(|| "unknown OS".into());
            let _ = writeln!(
                o,
                "\n{} {} {}",
                st.bold("OS root"),
                st.green(&name),
                st.dim(&format!("(partition {})", fs.partition))
            );
        } else if fs.roles.iter().any(|r| r == "boot") && !fs.boot_files.is_empty() {
            let _ = writeln!(
                o,
                "\n{} {}",
                st.bold("Boot filesystem"),
                st.dim(&format!("(partition {})", fs.partition))
            );
        }
        for b in &fs.boot_files {
            let target = b
                .symlink_target
                .as_ref()
                .map(|t| format!(" -> {t}"))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "  {:<7} {}{} {}",
                b.kind,
                b.path,
                st.cyan(&target),
                st.dim(&human_size(b.size))
            );
            if let Some(pe) = binary(&b.path) {
                binary_lines(o, pe, "          ", st);
            }
        }
    }
}

/// Problems found while reading, by severity.
fn problems(o: &mut String, r: &InspectReport, st: Style) {
    if !r.problems.is_empty() {
        let _ = writeln!(o, "\n{}", st.bold("Problems"));
        for p in &r.problems {
            let sev = match p.severity {
                Severity::Error => st.red_bold("error  "),
                Severity::Warning => st.yellow("warning"),
                Severity::Info => st.dim("info   "),
            };
            let part = p
                .partition
                .map(|n| format!(" [partition {n}]"))
                .unwrap_or_default();
            let _ = writeln!(o, "  {sev} {}{part}: {}", p.code, p.message);
        }
    }
}
