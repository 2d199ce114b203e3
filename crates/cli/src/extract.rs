//! `bootproof extract`.

use crate::args::{ImageArgs, OutputArgs};
use crate::style::{human_size, write_json, SafeStdout, Style};
use bootproof_boot::extract::{extract, ExtractReport, EXTRACT_RUN_SCHEMA};
use bootproof_platform::Arch;
use bootproof_runtime::image::{pick_entry, resolve_arch};
use bootproof_runtime::{exit, Error};
use std::io::Write;
use std::path::Path;

pub const AFTER_HELP: &str = "\
Writes into DIR:
  kernel         the kernel as direct kernel boot loads it (arm64: the
                 uncompressed Image, from zboot or gzip/zstd/xz/lz4/bzip2/lzma
                 wrappers too; x86_64: the bzImage)
  initrd         the entry's initrd(s), verbatim (several are concatenated)
  cmdline        the entry's command line, plus root= (when missing) and the
                 arch's console= (when missing)
  manifest.json  sources, transforms, versions and sha256 of every output
                 (schema bootproof.extract/v1)
Writes are atomic; a second run on the same image content rewrites nothing.

The entry is the boot loader's default unless --entry N picks another (0 is
the first, as `bootproof extract --json` lists them). Without a boot chain
(no ESP or no removable path), the newest kernel in /boot is used, paired
with the initrd of the same version.

Examples:
  bootproof extract disk.qcow2 -o out/
  bootproof extract --entry 1 --arch x86_64 disk.raw -o out/";

pub fn run(
    args: &ImageArgs,
    out_dir: &Path,
    entry: Option<usize>,
    arch: Option<Arch>,
    out: OutputArgs,
) -> Result<u8, Error> {
    let img = args.open()?;
    let arch = resolve_arch(&img, arch)?;
    let p = pick_entry(&img, arch, entry)?;
    let (chain, picked, fallback) = (p.chain, p.entry, p.fallback);
    let manifest = extract(&img, &chain, &picked, out_dir).map_err(|e| {
        Error::with_hint(
            e,
            "`bootproof inspect IMAGE` lists the problems found while reading",
        )
    })?;
    let mut stdout = SafeStdout::default();
    if out.json {
        let doc = ExtractReport {
            schema: EXTRACT_RUN_SCHEMA,
            output_dir: out_dir.to_path_buf(),
            fallback_to_boot_dir: fallback,
            chain,
            manifest,
            bytes_read: img.image.stats().bytes_read(),
        };
        write_json(&mut stdout, &doc)?;
        return Ok(exit::OK);
    }
    let st = Style::stdout(out.color);
    writeln!(stdout, "{} ({})", st.bold("Boot chain"), arch.name())?;
    for s in &chain.steps {
        writeln!(stdout, "  {s}")?;
    }
    if fallback {
        writeln!(
            stdout,
            "  {}",
            st.yellow("no boot chain: using the newest kernel in /boot")
        )?;
    }
    for p in &chain.problems {
        writeln!(
            stdout,
            "  {} {}: {}",
            st.yellow("warning"),
            p.code,
            p.message
        )?;
    }
    writeln!(
        stdout,
        "{} {} {}",
        st.bold("Entry  "),
        picked.title,
        st.dim(&format!("({})", picked.source))
    )?;
    let k = &manifest.kernel;
    writeln!(
        stdout,
        "{} {:<10} {} {}",
        st.bold("Kernel "),
        human_size(k.size),
        manifest
            .kernel_version
            .as_deref()
            .unwrap_or("unknown version"),
        st.dim(&format!(
            "{}, {} from {}",
            manifest.kernel_format,
            k.transform,
            k.sources.join(", ")
        ))
    )?;
    if let Some(i) = &manifest.initrd {
        writeln!(
            stdout,
            "{} {:<10} {}",
            st.bold("Initrd "),
            human_size(i.size),
            st.dim(&format!("{} from {}", i.transform, i.sources.join(", ")))
        )?;
    }
    writeln!(stdout, "{} {}", st.bold("Cmdline"), manifest.cmdline)?;
    if !manifest.cmdline_added.is_empty() {
        writeln!(
            stdout,
            "        {}",
            st.dim(&format!("added: {}", manifest.cmdline_added.join(" ")))
        )?;
    }
    let status = if manifest.cache_hit {
        "unchanged (same content already there)"
    } else {
        "written"
    };
    writeln!(
        stdout,
        "{} {}",
        st.green(&format!("{}:", out_dir.display())),
        status
    )?;
    Ok(exit::OK)
}
