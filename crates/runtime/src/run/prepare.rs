//! Everything a run settles before the first cell boots: the shipped
//! files, the rows (images from the matrix file, catalog and command line,
//! each with its kernels), the agents and accelerators per architecture,
//! the deadline and how many cells run at once.

use super::cell::Shard;
use super::plan::{library_kernels, open_kernels, prepare_rows, KernelChoice, Row, RowSource};
use super::{ArchDecision, RunRequest};
use crate::catalog::{self, Catalog};
use crate::events::Events;
use crate::host::{choose_accel, cores, deadline};
use crate::launch::find_agent;
use crate::matrix::{self, MatrixFile, VariantEntry};
use crate::mode::{cmdline_needs_agent_mode, Mode};
use crate::Error;
use bootproof_agent::{binary_env_var, BINARIES_DIR};
use bootproof_platform::Arch;
use bootproof_vm::accel::Decision;
use bootproof_vm::state::{self, RunDir};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A run ready to execute.
pub(super) struct Prepared {
    pub(super) shard: Option<Shard>,
    /// Files shipped into every guest, and their names.
    pub(super) files: GuestFiles,
    pub(super) names: Vec<String>,
    /// Holds the extracted kernels until the run ends.
    pub(super) _work: RunDir,
    pub(super) base: PathBuf,
    pub(super) retries: u32,
    pub(super) kernels: Vec<KernelChoice>,
    pub(super) rows: Vec<Row>,
    /// The agent binary per architecture in the matrix.
    pub(super) agents: Vec<(Arch, Vec<u8>)>,
    pub(super) accel: Vec<ArchDecision>,
    pub(super) timeout: Duration,
    pub(super) workers: usize,
}

impl Prepared {
    /// The accelerator decision for `arch`.
    pub(super) fn decision(&self, arch: Arch) -> Decision {
        self.accel
            .iter()
            .find(|d| d.arch == arch)
            .map(|d| d.decision.clone())
            .expect("every arch of the matrix has a decision")
    }

    /// The agent binary for `arch`.
    pub(super) fn agent(&self, arch: Arch) -> &[u8] {
        &self
            .agents
            .iter()
            .find(|(a, _)| *a == arch)
            .expect("every arch of the matrix has an agent")
            .1
    }
}

/// Reads the matrix file, plans the rows and settles the rest.
pub(super) fn prepare(req: &RunRequest, events: &dyn Events) -> Result<Prepared, Error> {
    let shard: Option<Shard> = req.shard.as_deref().map(str::parse).transpose()?;
    if req.mode == Mode::Full && req.cmdline_append.is_some() {
        return Err(cmdline_needs_agent_mode());
    }
    let (files, names) = shipped_files(&req.binaries)?;
    let base = state::base_dir();
    state::clean_stale(&base);
    let work = RunDir::create(&base)?;
    let file = req.matrix.as_deref().map(matrix::load).transpose()?;
    let sources = row_sources(req, file.as_ref(), events)?;
    if file.as_ref().is_some_and(|f| !f.variants.is_empty()) && req.axes_given {
        return Err(Error::with_hint(
            "--variants and a matrix file's [[variant]] entries both name the columns",
            "use one of them",
        ));
    }
    let entries: &[VariantEntry] = file.as_ref().map_or(&[], |f| &f.variants);
    let mut kernels = open_kernels(&req.kernels, file.as_ref())?;
    let sets: Vec<&String> = file
        .iter()
        .flat_map(|f| &f.kernel_sets)
        .chain(&req.kernel_sets)
        .collect();
    if !sets.is_empty() {
        let catalog = Catalog::load(&catalog_files(req, file.as_ref()))?;
        kernels.extend(library_kernels(&catalog, &sets, &kernels, events)?);
    }
    check_kernel_images(&kernels, &sources)?;
    let mut rows = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        rows.extend(prepare_rows(
            source,
            req,
            entries,
            &kernels,
            work.path(),
            i,
        )?);
    }
    if rows.is_empty() {
        return Err(Error::with_hint(
            "no cell to run: every image has image_kernel = false and no kernel of its architecture",
            "add a [[kernel]] for the images' architecture, or drop image_kernel = false",
        ));
    }
    // Agents and accelerators, one per architecture in the matrix.
    let mut agents: Vec<(Arch, Vec<u8>)> = Vec::new();
    for row in &rows {
        if !agents.iter().any(|(a, _)| *a == row.arch) {
            agents.push((row.arch, std::fs::read(find_agent(row.arch)?)?));
        }
    }
    let accel: Vec<ArchDecision> = agents
        .iter()
        .map(|(arch, _)| ArchDecision {
            arch: *arch,
            decision: choose_accel(*arch).0,
        })
        .collect();
    let first = &accel
        .iter()
        .find(|d| d.arch == rows[0].arch)
        .expect("decided")
        .decision;
    let timeout = match (
        req.timeout.or(file.as_ref().and_then(|f| f.timeout)),
        req.mode,
    ) {
        (None, Mode::Full) => deadline(None, first.accel) * 2,
        (t, _) => deadline(t, first.accel),
    };
    Ok(Prepared {
        shard,
        files,
        names,
        _work: work,
        base,
        retries: req
            .retries
            .or(file.as_ref().and_then(|f| f.retries))
            .unwrap_or(1),
        kernels,
        rows,
        agents,
        accel,
        timeout,
        // Memory is accounted per running VM (crate::memory), not here.
        workers: req.jobs.unwrap_or_else(cores).max(1),
    })
}

/// A kernel's `images` must name images of the run.
fn check_kernel_images(kernels: &[KernelChoice], sources: &[RowSource]) -> Result<(), Error> {
    for k in kernels {
        if let Some(name) = k
            .images
            .iter()
            .flatten()
            .find(|n| !sources.iter().any(|s| s.name == **n))
        {
            return Err(Error::with_hint(
                format!(
                    "kernel {}: `images` names {name}, which is no image of the run",
                    k.label
                ),
                format!(
                    "images: {}",
                    sources
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Files for the guest: (absolute guest path, contents).
pub(super) type GuestFiles = Vec<(String, Vec<u8>)>;

/// The shipped files and their names; names must map to distinct
/// `BOOTPROOF_BIN_<NAME>` variables.
fn shipped_files(binaries: &[PathBuf]) -> Result<(GuestFiles, Vec<String>), Error> {
    let mut files = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for b in binaries {
        let name = b
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                Error::with_hint(
                    format!("--binary {}: not a file", b.display()),
                    "name a file",
                )
            })?;
        if names
            .iter()
            .any(|n| binary_env_var(n) == binary_env_var(&name))
        {
            return Err(Error::with_hint(
                format!("two --binary files map to {}", binary_env_var(&name)),
                "rename one of them",
            ));
        }
        let data = std::fs::read(b).map_err(|e| {
            Error::with_hint(format!("--binary {}: {e}", b.display()), "check the path")
        })?;
        files.push((format!("{BINARIES_DIR}/{name}"), data));
        names.push(name);
    }
    Ok((files, names))
}

/// The catalog files a run reads: the matrix file's, then `--catalog`'s.
fn catalog_files(req: &RunRequest, file: Option<&MatrixFile>) -> Vec<PathBuf> {
    let mut extra: Vec<PathBuf> = file.iter().filter_map(|f| f.catalog.clone()).collect();
    extra.extend(req.catalogs.iter().cloned());
    extra
}

/// The rows' sources: the matrix file's `[[image]]` entries (catalog
/// references fetched and verified), then the command line's images.
fn row_sources(
    req: &RunRequest,
    file: Option<&MatrixFile>,
    events: &dyn Events,
) -> Result<Vec<RowSource>, Error> {
    let name_of = |p: &Path| {
        p.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    let mut sources = Vec::new();
    let mut catalog: Option<Catalog> = None;
    for e in file.iter().flat_map(|f| &f.images) {
        let declared = e.arch.as_deref().map(str::parse::<Arch>).transpose()?;
        let (path, arch) = match (&e.path, &e.catalog) {
            (Some(p), _) => (p.clone(), declared),
            (None, name) => {
                if catalog.is_none() {
                    catalog = Some(Catalog::load(&catalog_files(req, file))?);
                }
                let cat = catalog.as_ref().expect("loaded");
                let (path, arch) =
                    catalog::resolve(cat, name.as_deref().unwrap_or_default(), declared, events)?;
                (path, Some(arch))
            }
        };
        sources.push(RowSource {
            name: e
                .name
                .clone()
                .or_else(|| e.catalog.clone())
                .unwrap_or_else(|| name_of(&path)),
            path,
            required: e.required,
            timeout: e.timeout,
            image_kernel: e.image_kernel,
            arch,
        });
    }
    for p in &req.images {
        sources.push(RowSource {
            name: name_of(p),
            path: p.clone(),
            required: true,
            timeout: None,
            image_kernel: true,
            arch: None,
        });
    }
    if sources.is_empty() {
        return Err(Error::with_hint(
            "no image to run in",
            "bootproof run IMAGE... -- COMMAND..., or --matrix FILE with [[image]] entries",
        ));
    }
    Ok(sources)
}
