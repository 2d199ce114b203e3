//! `bootproof cat`.

use crate::args::{ImageArgs, OutputArgs};
use crate::style::write_json;
use bootproof_inspect::parse_target;
use bootproof_runtime::contents::FileContent;
use bootproof_runtime::{exit, Error};
use std::io::{Read, Write};

pub const AFTER_HELP: &str = "\
Examples:
  bootproof cat disk.qcow2 /etc/os-release
  bootproof cat disk.raw LABEL=ESP:/EFI/BOOT/grub.cfg
  bootproof cat disk.raw /boot/vmlinuz > vmlinuz     # symlink resolved inside the image
  bootproof cat --json disk.raw /etc/hostname        # content as base64 plus sha256

  bootproof cat disk.raw 2:/etc/hostname 2:/etc/fstab  # several files, concatenated

--json takes one file and refuses files over 64 MiB (the whole content is
embedded); plain output streams files of any size.";

/// Largest file embedded by `cat --json`.
const JSON_LIMIT: u64 = 64 * 1024 * 1024;

pub fn run(args: &ImageArgs, targets: &[String], out: OutputArgs) -> Result<u8, Error> {
    let img = args.open()?;
    // Buffered: a locked stdout alone is line-buffered, and a binary file
    // with a newline every few hundred bytes became one write(2) each.
    let mut stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if out.json {
        let [target] = targets else {
            return Err(Error::with_hint(
                "--json takes exactly one file",
                "run `bootproof cat --json` once per file",
            ));
        };
        let target = parse_target(target);
        let (slot, vol) = img.locate(&target)?;
        let data = vol.read_limited(target.path.as_bytes(), JSON_LIMIT)?;
        let canonical = vol.canonicalize(target.path.as_bytes())?;
        let doc = FileContent::new(slot.number, &target.path, canonical.to_string(), &data);
        write_json(&mut stdout, &doc)?;
        stdout.flush()?;
        return Ok(exit::OK);
    }
    for target in targets {
        let target = parse_target(target);
        let (_, vol) = img.locate(&target)?;
        let (reader, size) = vol.open(target.path.as_bytes())?;
        let mut reader = reader.take(size);
        let copied = match std::io::copy(&mut reader, &mut stdout) {
            Ok(n) => n,
            // A closed pipe (`| head`) is not an error worth reporting.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(exit::OK),
            Err(e) => return Err(e.into()),
        };
        if copied < size {
            return Err(Error::with_hint(
                format!(
                    "{}: file data ends after {copied} of {size} bytes",
                    target.path
                ),
                "the filesystem is likely corrupt; `bootproof inspect` lists problems found",
            ));
        }
    }
    match stdout.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(exit::OK),
    }
}
