//! `bootproof fetch`: list the image catalog, or download catalog images
//! into the cache, verified ([`bootproof_runtime::catalog`]).

use crate::args::OutputArgs;
use crate::progress::Progress;
use crate::style::{cell, human_size, styled, table, write_json, SafeStdout, Style};
use bootproof_runtime::catalog::{cached_copy, fetch_named, Catalog, FetchReport};
use bootproof_runtime::{exit, Error};
use std::io::Write;
use std::path::PathBuf;

pub const AFTER_HELP: &str = "\
Without NAME, lists the catalog: bootproof's built-in entries (Debian,
Ubuntu, AlmaLinux, Rocky, CentOS Stream, openSUSE and Arch cloud images,
and the kernel library:
Debian, Ubuntu LTS, RHEL-family, Oracle UEK and Amazon Linux kernels, in sets for
`run --kernel-set`), plus those of
--catalog FILE and $BOOTPROOF_CATALOG (same name replaces).

With NAMEs, downloads each image into ~/.cache/bootproof/images/<name>/
(a library kernel or set: its packages, as the archive's index or the RPM
repository's metadata lists them, into kernel-packages/) unless a
verified copy is there, verified against the pinned sha256 or sha512, the
publisher's checksum file (SHA256SUMS, SHA512SUMS), the index or the
metadata; a mismatch discards it. A checksum file fetched over plain http://
is only as trustworthy as that connection: pin sha256/sha512 for such
mirrors. A matrix file's `[[image]] catalog = \"NAME\"` goes through the
same cache (docs/matrix.md).

A catalog file (TOML):
  [[image]]
  name = \"my-image\"
  arch = \"aarch64\"
  url = \"https://example.org/images/my-image.qcow2\"   # or http://, file://
  sha256 = \"…\"          # or sha512 = \"…\", or checksums = \"https://…/SHA256SUMS\"
  description = \"…\"
  [[kernel]] and [[kernel_set]] entries: docs/matrix.md (kernel library).

Exit status: 0 done; 2 an unknown name, a failed download or a checksum
mismatch.

Examples:
  bootproof fetch
  bootproof fetch debian-12-arm64 lts-amd64
  bootproof fetch --catalog mirror.toml --json my-image";

/// Everything `bootproof fetch` takes.
#[derive(clap::Args)]
pub struct FetchArgs {
    /// Catalog images, library kernels or kernel sets to download (none:
    /// list the catalog).
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
    /// A catalog file adding entries (repeatable; see below).
    #[arg(long = "catalog", value_name = "FILE")]
    pub catalogs: Vec<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `bootproof fetch`.
pub fn fetch(args: &FetchArgs) -> Result<u8, Error> {
    let catalog = Catalog::load(&args.catalogs)?;
    let mut out = SafeStdout::default();
    let st = Style::stdout(args.output.color);
    if args.names.is_empty() {
        if args.output.json {
            write_json(&mut out, &catalog.listing())?;
        } else {
            let images = catalog.entries().iter().map(|e| {
                let state = match cached_copy(e) {
                    Some(p) => styled(&format!("cached {}", p.display()), |t| st.green(t)),
                    None => styled("not fetched", |t| st.dim(t)),
                };
                let (name, arch, by) = (cell(&e.name), cell(&e.arch), cell(e.verified_by()));
                vec![name, arch, cell(&e.description), by, state]
            });
            let kind = || styled("library kernel", |t| st.dim(t));
            let kernels = catalog.kernels().iter().map(|k| {
                let (name, arch, by) = (cell(&k.name), cell(&k.arch), cell(k.verified_by()));
                vec![name, arch, cell(&k.description), by, kind()]
            });
            let rows: Vec<Vec<(String, usize)>> = images.chain(kernels).collect();
            let header = ["NAME", "ARCH", "DESCRIPTION", "VERIFIED BY", "STATE"];
            let sets = catalog.kernel_sets().iter();
            let sets: String = sets
                .map(|s| format!("  {:<18} {}\n", s.name, s.kernels.join(", ")))
                .collect();
            let t = table(&header, &rows, st);
            write!(out, "{t}\nkernel sets (run --kernel-set):\n{sets}")?;
        }
        return Ok(exit::OK);
    }
    let progress = Progress::new(Style::stderr(args.output.color), args.output.json);
    let mut done = Vec::new();
    for name in &args.names {
        let started = std::time::Instant::now();
        for f in fetch_named(&catalog, name, &progress)? {
            if !args.output.json {
                writeln!(
                    out,
                    "{}  {}  ({}, {} verified{})",
                    f.name,
                    f.path.display(),
                    human_size(f.size),
                    f.algorithm,
                    if f.downloaded {
                        format!(", downloaded in {:.1} s", started.elapsed().as_secs_f64())
                    } else {
                        ", cached".into()
                    }
                )?;
            }
            done.push(f);
        }
    }
    if args.output.json {
        write_json(&mut out, &FetchReport::new(done))?;
    }
    Ok(exit::OK)
}
