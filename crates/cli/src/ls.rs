//! `bootproof ls`.

use crate::args::{ImageArgs, OutputArgs};
use crate::style::{cell, human_size, styled, table, write_json, SafeStdout, Style};
use bootproof_fs::FileType;
use bootproof_inspect::{parse_target, ListEntry};
use bootproof_runtime::contents::Listing;
use bootproof_runtime::{exit, Error};
use std::io::Write;

pub const AFTER_HELP: &str = "\
Examples:
  bootproof ls disk.qcow2 /boot
  bootproof ls -l disk.qcow2 LABEL=ESP:/EFI/BOOT
  bootproof ls disk.raw 1:/            # partition 1
  bootproof ls --json disk.raw PARTUUID=6d0e…:/etc

Symlinks are resolved inside the image, never on the host.";

fn mode_string(t: FileType, mode: Option<u32>) -> String {
    let mut s = String::new();
    s.push(t.letter());
    match mode {
        Some(m) => {
            for (i, c) in "rwxrwxrwx".chars().enumerate() {
                s.push(if m & (1 << (8 - i)) != 0 { c } else { '-' });
            }
        }
        // FAT and plain ISO9660 have no Unix modes; `ls` shows unknowns as `?`.
        None => s.push_str("?????????"),
    }
    s
}

pub fn run(args: &ImageArgs, target: &str, long: bool, out: OutputArgs) -> Result<u8, Error> {
    let img = args.open()?;
    let target = parse_target(target);
    let (slot, entries) = img.list(&target)?;
    let mut stdout = SafeStdout::default();
    if out.json {
        let listing = Listing::new(slot.number, &target.path, entries);
        write_json(&mut stdout, &listing)?;
        return Ok(exit::OK);
    }
    let st = Style::stdout(out.color);
    let name_cell = |e: &ListEntry| match e.meta.file_type {
        FileType::Dir => styled(&format!("{}/", e.name), |s| st.blue(s)),
        FileType::Symlink => styled(&e.name, |s| st.cyan(s)),
        _ => cell(e.name.clone()),
    };
    if !long {
        for e in &entries {
            writeln!(stdout, "{}", name_cell(e).0)?;
        }
        return Ok(exit::OK);
    }
    let rows: Vec<_> = entries
        .iter()
        .map(|e| {
            let mut name = name_cell(e);
            if let Some(t) = &e.target {
                name.0.push_str(&format!(" -> {t}"));
                name.1 += 4 + t.chars().count();
            }
            let id = |n: Option<u32>| cell(n.map_or("-".into(), |n| n.to_string()));
            vec![
                cell(mode_string(e.meta.file_type, e.meta.mode)),
                id(e.meta.uid),
                id(e.meta.gid),
                cell(e.meta.size.to_string()),
                cell(if e.meta.file_type == FileType::File {
                    human_size(e.meta.size)
                } else {
                    String::new()
                }),
                name,
            ]
        })
        .collect();
    stdout
        .write_all(table(&["MODE", "UID", "GID", "BYTES", "SIZE", "NAME"], &rows, st).as_bytes())?;
    Ok(exit::OK)
}
