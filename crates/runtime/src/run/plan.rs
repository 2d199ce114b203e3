//! Planning a run: the rows (an image with its own kernel, or with an
//! extra kernel of its architecture) and their columns (variants), each
//! prepared once — kernel extracted, OS root found, module closure
//! resolved — before any cell boots.

use super::root::{find_root, set_root, wanted_modules};
use crate::catalog::Catalog;
use crate::events::Events;
use crate::image::{image_closure, no_modules, open, pick_entry, resolve_arch};
use crate::kernel_library;
use crate::launch::How;
use crate::matrix::{MatrixFile, VariantEntry};
use crate::mode::Mode;
use crate::run::RunRequest;
use crate::Error;
use bootproof_boot::companions::{self, Content};
use bootproof_boot::extract::extract;
use bootproof_boot::modules::{self, Closure, HostDir};
use bootproof_boot::package::{self, ExternalKernel};
use bootproof_check::Prediction;
use bootproof_inspect::OpenedImage;
use bootproof_platform::{Arch, Axes, Platform};
use bootproof_vm::prepare::{BackingDisk, DiskWindow};
use std::path::{Path, PathBuf};

/// The `kernel` of cells booted with the image's own kernel.
pub const IMAGE_KERNEL: &str = "image";

/// One column of the matrix for one image.
pub(crate) struct Plan {
    pub(crate) variant: String,
    pub(crate) platform: Platform,
    pub(crate) cpus: Option<u32>,
    pub(crate) memory_mib: Option<u64>,
    pub(crate) cmdline: Option<String>,
    pub(crate) timeout: Option<u64>,
    pub(crate) required: bool,
    /// Why this image cannot have this variant.
    pub(crate) skip: Option<String>,
}

/// Where a row comes from: the command line, or a `[[image]]` entry.
pub(crate) struct RowSource {
    pub(crate) path: PathBuf,
    pub(crate) name: String,
    pub(crate) required: bool,
    pub(crate) timeout: Option<u64>,
    /// Also run with the image's own kernel.
    pub(crate) image_kernel: bool,
    /// The architecture the matrix file (or the catalog) declares.
    pub(crate) arch: Option<Arch>,
}

/// An image with one kernel, prepared once for all its cells.
pub(crate) struct Row {
    pub(crate) image: PathBuf,
    /// Display name (the file name, or the matrix file's `name`; with
    /// another kernel, `<image>@<kernel>`).
    pub(crate) name: String,
    /// Which kernel: [`IMAGE_KERNEL`], or the extra kernel's name.
    pub(crate) kernel: String,
    /// SHA-256 of the kernel booted (agent mode).
    pub(crate) kernel_sha256: Option<String>,
    pub(crate) required: bool,
    pub(crate) timeout: Option<u64>,
    pub(crate) arch: Arch,
    pub(crate) version: Option<String>,
    /// What QEMU reads under each cell's overlay.
    pub(crate) disk: BackingDisk,
    pub(crate) closure: Closure,
    pub(crate) root_device: String,
    pub(crate) root_fstype: String,
    /// The window of the disk that holds the root, when it is an LVM2
    /// logical volume (the guest sees it as a disk of its own).
    pub(crate) root_window: Option<DiskWindow>,
    pub(crate) how: How,
    /// Why it cannot run, when it cannot (its cells become boot failures).
    pub(crate) problem: Option<String>,
    /// What bootproof cannot do for it yet (its cells are skipped, saying
    /// so: not the image's failure).
    pub(crate) unsupported: Option<String>,
    /// Why its kernel could not be had (its cells are infra errors).
    pub(crate) unavailable: Option<String>,
    pub(crate) plans: Vec<Plan>,
    /// Full mode, the image's own chain: `check`'s prediction of its
    /// firmware boot and the milliseconds it took (for the ledger).
    pub(crate) prediction: Option<(Prediction, f64)>,
}

/// A kernel from outside the images (`--kernel`, `[[kernel]]`), opened once.
pub(crate) struct KernelChoice {
    /// Display name: the matrix entry's `name`, else the release.
    pub(crate) label: String,
    /// The kernel; or, for a library kernel whose archive did not answer
    /// and that was never verified before, its arch and why (its cells
    /// are infra errors; the rest of the run goes on).
    pub(crate) kernel: Result<ExternalKernel, (Arch, String)>,
    /// Only these images (by name), else every image of its arch.
    pub(crate) images: Option<Vec<String>>,
    pub(crate) required: bool,
}

impl KernelChoice {
    /// The architecture it is for.
    pub(crate) fn arch(&self) -> Arch {
        match &self.kernel {
            Ok(k) => k.arch,
            Err((arch, _)) => *arch,
        }
    }
}

/// The columns for an image: the matrix file's variants, or the axes.
fn plans(arch: Arch, axes: &Axes, entries: &[VariantEntry]) -> Vec<Plan> {
    if entries.is_empty() {
        return axes
            .platforms(arch)
            .into_iter()
            .map(|p| Plan {
                variant: p.name(arch),
                platform: p,
                cpus: None,
                memory_mib: None,
                cmdline: None,
                timeout: None,
                required: true,
                skip: None,
            })
            .collect();
    }
    entries
        .iter()
        .map(|e| {
            let platform = e.platform().unwrap_or_default();
            Plan {
                variant: e.name.clone().unwrap_or_else(|| platform.name(arch)),
                skip: platform.unavailable_on(arch),
                platform,
                cpus: e.cpus,
                memory_mib: e.memory,
                cmdline: e.cmdline.clone(),
                timeout: e.timeout,
                required: e.required,
            }
        })
        .collect()
}

/// Opens the `--kernel` paths and the matrix file's `[[kernel]]` entries.
/// A `--kernel` package holding only modules (`kernel-modules*.rpm`,
/// `linux-modules*.deb`) joins the kernel package of its release given
/// beside it; a `[[kernel]]` entry names its own in `companions`.
pub(crate) fn open_kernels(
    paths: &[PathBuf],
    file: Option<&MatrixFile>,
) -> Result<Vec<KernelChoice>, Error> {
    let cache = crate::host::cache_dir();
    let mut out: Vec<KernelChoice> = Vec::new();
    let mut loose: Vec<(String, &PathBuf)> = Vec::new();
    let mut kernel_paths: Vec<&PathBuf> = Vec::new();
    for p in paths {
        match companions::content(p, &cache).map_err(|e| kernel_error(p, e))? {
            Some(Content::Modules(release)) => loose.push((release, p)),
            _ => kernel_paths.push(p),
        }
    }
    let entries = file.map_or(&[][..], |f| &f.kernels[..]);
    let given = kernel_paths
        .into_iter()
        .map(|p| (None, p, None, None, None, true))
        .chain(entries.iter().map(|k| {
            (
                k.name.clone(),
                &k.path,
                k.modules.as_deref(),
                Some(&k.companions[..]),
                k.images.clone(),
                k.required,
            )
        }));
    for (name, path, modules, named, images, required) in given {
        let mut kernel = companions::open_with(path, modules, named.unwrap_or_default(), &cache)
            .map_err(|e| kernel_error(path, e))?;
        if named.is_none() {
            let mine: Vec<PathBuf> = loose
                .iter()
                .filter(|(r, _)| *r == kernel.version)
                .map(|(_, p)| (*p).clone())
                .collect();
            if !mine.is_empty() {
                kernel = companions::open_with(path, modules, &mine, &cache)
                    .map_err(|e| kernel_error(path, e))?;
                loose.retain(|(r, _)| *r != kernel.version);
            }
        }
        let label = name.unwrap_or_else(|| kernel.version.clone());
        if out.iter().any(|k| k.label == label) {
            return Err(Error::with_hint(
                format!("two kernels are named {label}"),
                "give each [[kernel]] entry its own `name`",
            ));
        }
        out.push(KernelChoice {
            label,
            kernel: Ok(kernel),
            images,
            required,
        });
    }
    if let Some((release, p)) = loose.first() {
        return Err(Error::with_hint(
            format!(
                "kernel {}: holds only modules, for release {release}, and no --kernel package is that release's kernel",
                p.display()
            ),
            "give the kernel package of that release too (kernel-core-*.rpm, linux-image-*.deb): its module packages join it",
        ));
    }
    Ok(out)
}

/// The kernels of the named library sets (each kernel once, however many
/// sets name it), fetched and verified, then opened with their module
/// packages; labelled by library name.
pub(crate) fn library_kernels(
    catalog: &Catalog,
    sets: &[&String],
    given: &[KernelChoice],
    events: &dyn Events,
) -> Result<Vec<KernelChoice>, Error> {
    let cache = crate::host::cache_dir();
    let mut out: Vec<KernelChoice> = Vec::new();
    for set in sets {
        for k in catalog.kernel_set(set)? {
            if out.iter().chain(given).any(|c| c.label == k.name) {
                continue;
            }
            let kernel = match kernel_library::ensure_kernel(k, events) {
                Ok(r) => {
                    if let Some(why) = &r.stale {
                        events.warning(&format!(
                            "kernel {}: {why}; using {} {} as verified before",
                            k.name, r.package, r.version
                        ));
                    }
                    let opened = companions::open_with(&r.path, None, &r.companions, &cache);
                    Ok(opened.map_err(|e| kernel_error(&r.path, e))?)
                }
                // Unreachable and never verified: only this kernel's cells
                // go without a verdict.
                Err(e) => {
                    let why = e.to_string();
                    events.warning(&format!("{why}; its cells are infra errors"));
                    let arch = Arch::parse(&k.arch).expect("checked when the catalog was read");
                    Err((arch, why))
                }
            };
            out.push(KernelChoice {
                label: k.name.clone(),
                kernel,
                images: None,
                required: true,
            });
        }
    }
    Ok(out)
}

fn kernel_error(path: &Path, e: package::PackageError) -> Error {
    Error::with_hint(
        format!("kernel {}: {e}", path.display()),
        "give a Debian (linux-image-*.deb) or RPM (kernel-core-*.rpm) kernel package (with its module packages), a directory with an unpacked one, or a kernel file (with `modules` in a [[kernel]] entry)",
    )
}

/// The image's architecture, checked against the one its source declares.
fn row_arch(img: &OpenedImage, source: &RowSource) -> Result<Arch, Error> {
    let Some(declared) = source.arch else {
        return resolve_arch(img, None);
    };
    match bootproof_boot::chain::detect_arch(img) {
        Some(found) if found != declared => Err(Error::with_hint(
            format!(
                "image {}: the matrix file says arch = {:?}, but {} holds a {found} system",
                source.name,
                declared.name(),
                source.path.display(),
            ),
            "fix `arch` or `path` in the [[image]] entry",
        )),
        _ => Ok(declared),
    }
}

/// An image's rows: its own kernel (unless `image_kernel = false`) and
/// each extra kernel of its architecture, each × the variants.
pub(crate) fn prepare_rows(
    source: &RowSource,
    req: &RunRequest,
    entries: &[VariantEntry],
    kernels: &[KernelChoice],
    work: &Path,
    index: usize,
) -> Result<Vec<Row>, Error> {
    let path = &source.path;
    let img = open(path, req.allow_backing)?;
    let arch = row_arch(&img, source)?;
    let kernel_dir = work.join(format!("kernel-{index}"));
    let base = |name: String, kernel: String| Row {
        image: path.to_path_buf(),
        name,
        kernel,
        kernel_sha256: None,
        required: source.required,
        timeout: source.timeout,
        arch,
        version: None,
        disk: crate::image::backing_disk(&img.image),
        closure: Closure::default(),
        root_device: String::new(),
        root_fstype: String::new(),
        root_window: None,
        how: How::Agent {
            kernel: kernel_dir.join("kernel"),
            cmdline_append: req.cmdline_append.clone(),
        },
        problem: None,
        unsupported: None,
        unavailable: None,
        plans: plans(arch, &req.axes, entries),
        prediction: None,
    };
    // The extra kernels of this image's architecture (and naming it, when
    // they name images), each a row: its name, release and `required`.
    let extra_kernels: Vec<&KernelChoice> = kernels
        .iter()
        .filter(|k| {
            k.arch() == arch
                && k.images
                    .as_ref()
                    .is_none_or(|names| names.contains(&source.name))
        })
        .collect();
    let extra: Vec<Row> = extra_kernels
        .iter()
        .map(|k| {
            let mut row = base(format!("{}@{}", source.name, k.label), k.label.clone());
            row.required &= k.required;
            match &k.kernel {
                Ok(kernel) => {
                    row.version = Some(kernel.version.clone());
                    row.kernel_sha256 = Some(kernel.sha256.clone());
                    row.how = How::Agent {
                        kernel: kernel.kernel.clone(),
                        cmdline_append: req.cmdline_append.clone(),
                    };
                }
                Err((_, why)) => row.unavailable = Some(why.clone()),
            }
            row
        })
        .collect();
    let own = base(source.name.clone(), IMAGE_KERNEL.into());
    if req.mode == Mode::Full {
        return Ok(full_mode_rows(&img, req, source, own, extra));
    }
    let picked = pick_entry(&img, arch, None).and_then(|p| {
        extract(&img, &p.chain, &p.entry, &kernel_dir).map_err(|e| Error::with_hint(e, ""))
    });
    let root = find_root(&img, picked.as_ref().ok().map(|m| m.cmdline.as_str()));
    let mut rows = Vec::new();
    if source.image_kernel {
        let mut own = own;
        if let Ok(manifest) = &picked {
            // (extract hashed the kernel it wrote.)
            own.kernel_sha256 = Some(manifest.kernel.sha256.clone());
        }
        match (&picked, &root) {
            (Err(e), _) => own.problem = Some(format!("no kernel to boot: {e}")),
            (_, Err(e)) => own.problem = Some(e.clone()),
            (Ok(manifest), Ok(r)) => {
                own.version.clone_from(&manifest.kernel_version);
                let wanted = wanted_modules(r.fstype);
                let why = "the kernel's modules are not in the image";
                own.closure = match own.version.as_deref() {
                    Some(v) => image_closure(&img, v, &wanted, why),
                    None => no_modules(&wanted, why),
                };
            }
        }
        set_root(&mut own, &root);
        rows.push(own);
    }
    for (mut row, k) in extra.into_iter().zip(extra_kernels) {
        match &root {
            Err(e) => row.problem = Some(e.clone()),
            Ok(r) => {
                let wanted = wanted_modules(r.fstype);
                row.closure = match k.kernel.as_ref().map(|k| &k.modules) {
                    Err(_) => Closure::default(),
                    Ok(Some(dir)) => modules::resolve(&HostDir(dir.clone()), &wanted),
                    Ok(None) => no_modules(
                        &wanted,
                        "no module directory was given (built-in drivers only)",
                    ),
                };
            }
        }
        set_root(&mut row, &root);
        rows.push(row);
    }
    Ok(rows)
}

/// Full mode: the image's own chain boots, so its row gets a seed and the
/// extra kernels' rows are skipped (they need agent mode).
fn full_mode_rows(
    img: &OpenedImage,
    req: &RunRequest,
    source: &RowSource,
    mut own: Row,
    extra: Vec<Row>,
) -> Vec<Row> {
    match req.seed.resolve(img) {
        Ok(seed) => {
            own.how = How::Full { seed };
            let started = std::time::Instant::now();
            let prediction = bootproof_check::check(img, own.arch).prediction;
            own.prediction = Some((prediction, started.elapsed().as_secs_f64() * 1000.0));
        }
        Err(_) => {
            own.problem = Some(
                "full mode needs cloud-init or Ignition in the image, and it has neither".into(),
            )
        }
    }
    for plan in &mut own.plans {
        if plan.cmdline.is_some() && plan.skip.is_none() {
            plan.skip = Some(
                "cmdline additions need agent mode (the image's boot chain owns the command line)"
                    .into(),
            );
        }
    }
    let mut rows = Vec::new();
    if source.image_kernel {
        rows.push(own);
    }
    for mut row in extra {
        for plan in &mut row.plans {
            plan.skip.get_or_insert_with(|| {
                "another kernel needs agent mode (full mode boots the image's own boot chain)"
                    .into()
            });
        }
        rows.push(row);
    }
    rows
}
