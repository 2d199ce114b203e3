//! The `bootproof run --matrix FILE` format: named images, extra kernels
//! and platform variants in TOML. Each image is a row with its own kernel
//! and one per extra kernel of its architecture; every row runs every
//! variant (a variant an image's architecture cannot have, such as
//! `acpi = false` on x86_64, is a skipped cell with the reason). Unknown keys are errors, so a typo never
//! silently drops part of a matrix.
//!
//! ```toml
//! timeout = 300            # seconds per cell, boot included (default: 300 TCG, 60 KVM)
//! retries = 1              # infra-error retries per cell
//! catalog = "catalog.toml" # more catalog entries (optional)
//!
//! [[image]]
//! name = "bookworm-arm64"  # default: the file name
//! path = "debian-arm64.qcow2"   # relative to this file; or
//! # catalog = "debian-12-arm64"  # a catalog image (`bootproof fetch`)
//! arch = "aarch64"         # checked against the image (default: detected)
//! required = true          # a failure here fails the run (default true)
//! image_kernel = true      # also run with the image's own kernel (default true)
//!
//! [[kernel]]               # another kernel to boot every aarch64 image with
//! name = "6.12-bpo"        # default: its release
//! path = "linux-image-6.12.95+deb12-arm64_6.12.95-1~bpo12+1_arm64.deb"
//! images = ["bookworm-arm64"]   # only these images (default: every image of its arch)
//! required = true
//!
//! [[variant]]
//! name = "gicv3-acpi"      # default: "gic3 acpi-on pci"
//! gic = 3                  # 2 | 3 (aarch64)
//! acpi = true
//! transport = "pci"        # "pci" | "mmio" (aarch64)
//! cpus = 2
//! memory = 1024            # MiB
//! cmdline = "quiet"        # appended to the kernel command line
//! timeout = 120
//! required = false
//! ```

use crate::Error;
use bootproof_platform::{Arch, Platform};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A whole matrix file.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatrixFile {
    /// Seconds per cell, boot included.
    pub timeout: Option<u64>,
    /// Infra-error retries per cell.
    pub retries: Option<u32>,
    /// A catalog file adding entries for `[[image]] catalog = …`
    /// (relative to this file).
    pub catalog: Option<PathBuf>,
    /// The images (rows).
    #[serde(default, rename = "image")]
    pub images: Vec<ImageEntry>,
    /// Kernels to boot images with, besides their own.
    #[serde(default, rename = "kernel")]
    pub kernels: Vec<KernelEntry>,
    /// Kernel sets (or single kernels) of the catalog's kernel library.
    #[serde(default)]
    pub kernel_sets: Vec<String>,
    /// The platform variants (columns).
    #[serde(default, rename = "variant")]
    pub variants: Vec<VariantEntry>,
}

/// A kernel from outside the images: a Debian kernel package, a directory
/// with an unpacked one, or a kernel file (with `modules`).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelEntry {
    /// Display name (default: the kernel's release).
    pub name: Option<String>,
    /// The package, directory or kernel file; relative to the matrix file.
    pub path: PathBuf,
    /// For a kernel file: its `lib/modules/<version>` directory.
    pub modules: Option<PathBuf>,
    /// Packages holding more of the kernel package's modules
    /// (`kernel-modules-core`, `kernel-modules`, `linux-modules-extra`).
    #[serde(default)]
    pub companions: Vec<PathBuf>,
    /// Only the images with these names (default: every image of the
    /// kernel's architecture).
    pub images: Option<Vec<String>>,
    /// Its failures fail the run.
    #[serde(default = "yes")]
    pub required: bool,
}

/// One image.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageEntry {
    /// Display name.
    pub name: Option<String>,
    /// The image file; relative paths are from the matrix file's directory.
    pub path: Option<PathBuf>,
    /// Or a catalog image (`bootproof fetch` lists them), fetched and
    /// verified into the cache on first use.
    pub catalog: Option<String>,
    /// `aarch64` or `x86_64`: checked against what the image holds, and
    /// used when that cannot be told.
    pub arch: Option<String>,
    /// Its failures fail the run.
    #[serde(default = "yes")]
    pub required: bool,
    /// Seconds per cell for this image.
    pub timeout: Option<u64>,
    /// Also run with the image's own kernel (with `false`, only the
    /// `[[kernel]]` entries boot it).
    #[serde(default = "yes")]
    pub image_kernel: bool,
}

/// One platform variant.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantEntry {
    /// Display name.
    pub name: Option<String>,
    /// GIC version (aarch64).
    pub gic: Option<u8>,
    /// ACPI on.
    pub acpi: Option<bool>,
    /// `pci` or `mmio`.
    pub transport: Option<String>,
    /// riscv64: AIA (APLIC, IMSIC) instead of the PLIC.
    pub aia: Option<bool>,
    /// vCPUs.
    pub cpus: Option<u32>,
    /// Memory in MiB.
    pub memory: Option<u64>,
    /// Appended to the kernel command line.
    pub cmdline: Option<String>,
    /// Seconds per cell for this variant.
    pub timeout: Option<u64>,
    /// Its failures fail the run.
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

impl VariantEntry {
    /// The platform, or why the entry is invalid.
    pub fn platform(&self) -> Result<Platform, String> {
        let d = Platform::default();
        Ok(Platform {
            gic: match self.gic {
                None => d.gic,
                Some(g @ (2 | 3)) => g,
                Some(g) => return Err(format!("gic = {g}: GIC versions are 2 and 3")),
            },
            acpi: self.acpi.unwrap_or(d.acpi),
            transport: match self.transport.as_deref() {
                None => d.transport,
                Some(t) => t
                    .parse()
                    .map_err(|_| format!("transport = {t:?}: use \"pci\" or \"mmio\""))?,
            },
            aia: self.aia.unwrap_or(d.aia),
        })
    }
}

/// Reads and checks a matrix file; image paths come back resolved against
/// its directory.
pub fn load(path: &Path) -> Result<MatrixFile, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::with_hint(
            format!("--matrix {}: {e}", path.display()),
            "check the path",
        )
    })?;
    let mut m: MatrixFile = toml::from_str(&text).map_err(|e| {
        Error::with_hint(
            format!("--matrix {}: {e}", path.display()),
            "keys: timeout, retries, kernel_sets, [[image]] (name, path or catalog, arch, required, timeout, image_kernel), catalog, [[kernel]] (name, path, modules, companions, images, required), [[variant]] (name, gic, acpi, transport, cpus, memory, cmdline, timeout, required); `bootproof run --help` has an example",
        )
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &mut PathBuf| {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    };
    if let Some(c) = &mut m.catalog {
        resolve(c);
    }
    for img in &mut m.images {
        match (&mut img.path, &img.catalog) {
            (Some(p), None) => resolve(p),
            (None, Some(_)) => {}
            _ => {
                return Err(Error::with_hint(
                    format!(
                        "--matrix {}: image {}: give `path` or `catalog`, not {}",
                        path.display(),
                        img.name.as_deref().unwrap_or("(unnamed)"),
                        if img.path.is_some() { "both" } else { "neither" }
                    ),
                    "path = \"disk.qcow2\", or catalog = \"debian-12-arm64\" (`bootproof fetch` lists the catalog)",
                ))
            }
        }
        if let Some(a) = &img.arch {
            if Arch::parse(a).is_none() {
                return Err(Error::with_hint(
                    format!(
                        "--matrix {}: image {}: arch = {a:?}",
                        path.display(),
                        img.name
                            .as_deref()
                            .or(img.catalog.as_deref())
                            .unwrap_or("(unnamed)")
                    ),
                    "use \"aarch64\" or \"x86_64\"",
                ));
            }
        }
    }
    for k in &mut m.kernels {
        resolve(&mut k.path);
        if let Some(d) = &mut k.modules {
            resolve(d);
        }
        k.companions.iter_mut().for_each(&resolve);
    }
    for v in &m.variants {
        v.platform().map_err(|e| {
            Error::with_hint(
                format!(
                    "--matrix {}: variant {}: {e}",
                    path.display(),
                    v.name.as_deref().unwrap_or("(unnamed)")
                ),
                "fix the variant",
            )
        })?;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors_and_paths_resolve() {
        let dir = std::env::temp_dir().join(format!("bootproof-matrix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("m.toml");
        std::fs::write(
            &f,
            "timeout = 100\n[[image]]\npath = \"a.raw\"\n[[variant]]\ngic = 2\nacpi = false\nrequired = false\n",
        )
        .unwrap();
        let m = load(&f).unwrap();
        assert_eq!(m.images[0].path, Some(dir.join("a.raw")));
        assert!(m.images[0].required);
        let v = &m.variants[0];
        assert!(!v.required);
        assert_eq!(v.platform().unwrap().gic, 2);
        let p = v.platform().unwrap();
        assert!(p
            .unavailable_on(Arch::X86_64)
            .unwrap()
            .contains("acpi = false"));
        assert!(p.unavailable_on(Arch::Aarch64).is_none());
        // The error a file's text makes.
        let error_of = |text: &str| {
            std::fs::write(&f, text).unwrap();
            load(&f).err().unwrap().to_string()
        };
        let e = error_of("[[image]]\npath = \"a.raw\"\nrequird = false\n");
        assert!(e.contains("unknown field `requird`"), "{e}");
        std::fs::write(
            &f,
            "[[image]]\npath = \"a.raw\"\nimage_kernel = false\n[[kernel]]\npath = \"k.deb\"\nmodules = \"/m\"\ncompanions = [\"m.deb\"]\nimages = [\"a\"]\n",
        )
        .unwrap();
        let m = load(&f).unwrap();
        assert!(!m.images[0].image_kernel);
        assert_eq!(m.kernels[0].path, dir.join("k.deb"));
        assert_eq!(m.kernels[0].modules.as_deref(), Some(Path::new("/m")));
        assert_eq!(m.kernels[0].companions, [dir.join("m.deb")]);
        assert!(m.kernels[0].required);
        for (text, expect) in [
            ("[[image]]\ncatalog = \"x\"\npath = \"a.raw\"\n", "not both"),
            ("[[image]]\nname = \"n\"\n", "not neither"),
            (
                "[[image]]\npath = \"a.raw\"\narch = \"sparc\"\n",
                "arch = \"sparc\"",
            ),
            (
                "[[kernel]]\npath = \"k\"\nversion = \"6\"\n",
                "unknown field `version`",
            ),
            ("[[variant]]\ngic = 4\n", "GIC versions are 2 and 3"),
            (
                "[[variant]]\ntransport = \"virtio\"\n",
                "use \"pci\" or \"mmio\"",
            ),
        ] {
            let e = error_of(text);
            assert!(e.contains(expect), "{text}: {e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
