//! Static compliance and boot readiness: the rule catalog ([`rules`]) run
//! over an opened image and its boot chain. Each finding carries the rule's
//! id, severity, the clause it comes from, the evidence, and a fix hint.
#![forbid(unsafe_code)]

mod boot_chain;
mod cmdline;
mod image;
mod kconfig;
mod os;
mod pipe;
mod predict;
pub mod rules;
mod secure_boot;

pub use predict::{ConsoleView, Prediction};

use bootproof_boot::chain::{self, Arch, BootChain, BootEntry, FileRef};
use bootproof_boot::initrd::{self, InitrdInfo};
use bootproof_boot::trust::FirmwareStore;
use bootproof_boot::{kernel, pe::PeInfo};
use bootproof_disk::{Severity as DiagSeverity, TableKind};
use bootproof_fs::{FileType, FsKind, Volume};
use bootproof_inspect::{OpenedImage, PartSelector, Slot};
use kconfig::{KernelFeatures, State};
use rules::{Rule, Severity};
use serde::Serialize;
use std::io::Read;

/// Schema of the check report.
pub const CHECK_SCHEMA: &str = "bootproof.check/v1";
const MAX_KERNEL: u64 = bootproof_boot::extract::MAX_KERNEL_FILE;

/// What happened to a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The image satisfies it.
    Pass,
    /// The image violates it.
    Fail,
    /// It could not be evaluated (the evidence says why).
    Skip,
    /// Informational rule.
    Info,
}

/// One rule's result.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Finding {
    /// The rule.
    #[serde(flatten)]
    pub rule: &'static Rule,
    /// Outcome.
    pub outcome: Outcome,
    /// What was seen.
    pub evidence: Vec<String>,
}

/// Counts per outcome.
#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Summary {
    /// Passed rules.
    pub pass: usize,
    /// Failed rules of severity error.
    pub fail_error: usize,
    /// Failed rules of severity warning.
    pub fail_warning: usize,
    /// Skipped rules.
    pub skip: usize,
    /// Informational findings.
    pub info: usize,
}

/// The whole check.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Report {
    /// The document's schema id, [`CHECK_SCHEMA`].
    #[schemars(extend("const" = CHECK_SCHEMA))]
    pub schema: &'static str,
    /// Architecture checked.
    pub arch: Arch,
    /// Findings in catalog order.
    pub findings: Vec<Finding>,
    /// Counts.
    pub summary: Summary,
    /// What a firmware boot of the image will do (not the compliance
    /// verdict: the exit status stays that).
    pub prediction: Prediction,
    /// The boot chain as followed.
    pub chain: BootChain,
    /// Bytes read from the image's host files to produce this report.
    pub bytes_read: u64,
}

impl Report {
    /// Whether any error-severity rule failed (exit status 1).
    pub fn failed(&self) -> bool {
        self.summary.fail_error > 0
    }
    /// The finding for a rule id.
    pub fn finding(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.rule.id == id)
    }
}

struct Ctx<'a> {
    img: &'a OpenedImage,
    arch: Arch,
    chain: BootChain,
    entry: Option<BootEntry>,
    kernel: Option<Result<kernel::KernelInfo, String>>,
    initrd: Option<Result<initrd::InitrdInfo, String>>,
    root: Option<&'a Slot>,
    features: Option<KernelFeatures>,
    findings: Vec<Finding>,
}

fn vol(img: &OpenedImage, slot: u32) -> Option<&Volume> {
    img.slot_volume(slot).ok()
}

/// The entry's initramfs (a UKI's `.initrd` section, then each initrd
/// file) as one stream, concatenated as the boot loader does: no file is
/// held whole. `None` when the entry has none or a file cannot be opened.
fn initrd_stream<'a>(
    img: &'a OpenedImage,
    e: &BootEntry,
    embedded: &'a [u8],
) -> Option<Result<Box<dyn Read + 'a>, String>> {
    let mut total = embedded.len() as u64;
    let mut stream: Box<dyn Read + 'a> = Box::new(embedded);
    for f in &e.initrds {
        let (r, size) = img.open_file(f).ok()?;
        total = total.saturating_add(size);
        stream = Box::new(stream.chain(r.take(size)));
    }
    if total == 0 {
        return None;
    }
    if total > initrd::MAX_INITRD {
        return Some(Err(format!(
            "the initrds total {total} bytes, over the {}-byte limit",
            initrd::MAX_INITRD
        )));
    }
    Some(Ok(stream))
}

/// Lists an initramfs stream (see [`initrd_stream`]).
fn list_initrd(stream: impl Read) -> Result<InitrdInfo, String> {
    initrd::inspect_reader(stream).map_err(|err| err.to_string())
}

fn read(img: &OpenedImage, f: &FileRef, limit: u64) -> Result<Vec<u8>, String> {
    img.read(f, limit).map_err(|e| format!("{f}: {e}"))
}

/// Resolves `UUID=`, `PARTUUID=`, `LABEL=`, `PARTLABEL=` and
/// `/dev/disk/by-*/` references. `Ok(None)` for references that cannot be
/// resolved statically (kernel device names, device mapper, network roots).
fn resolve<'a>(img: &'a OpenedImage, spec: &str) -> Result<Option<&'a Slot>, String> {
    let Some(sel) = PartSelector::from_device_ref(spec) else {
        return Ok(None);
    };
    img.select(&sel).map(Some).map_err(|_| {
        format!(
            "{} matches no filesystem or partition in the image",
            spec.trim_matches('"')
        )
    })
}

fn param<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_whitespace()
        .filter_map(|w| w.strip_prefix(key))
        .next_back()
}

/// The Secure Boot rules alone under `store` (`secureboot.*` findings in
/// catalog order): the chain is followed, no kernel or initrd is read
/// beyond the binaries verified. What `boot --secure-boot` predicts with.
pub fn secure_boot_findings(img: &OpenedImage, arch: Arch, store: &FirmwareStore) -> Vec<Finding> {
    let mut ctx = Ctx::new(img, arch);
    ctx.secure_boot_rules(Some(store));
    ctx.findings
}

impl<'a> Ctx<'a> {
    /// The chain followed for `arch`, nothing else read yet.
    fn new(img: &'a OpenedImage, arch: Arch) -> Ctx<'a> {
        let chain = chain::follow(img, arch);
        Ctx {
            img,
            arch,
            entry: chain.default_entry().cloned(),
            chain,
            kernel: None,
            initrd: None,
            root: None,
            features: None,
            findings: Vec::new(),
        }
    }

    fn push(&mut self, rule: &'static Rule, outcome: Outcome, evidence: Vec<String>) {
        let outcome = if rule.severity == Severity::Info && outcome != Outcome::Skip {
            Outcome::Info
        } else {
            outcome
        };
        self.findings.push(Finding {
            rule,
            outcome,
            evidence,
        });
    }
    fn pass(&mut self, rule: &'static Rule, e: impl Into<String>) {
        self.push(rule, Outcome::Pass, vec![e.into()]);
    }
    fn fail(&mut self, rule: &'static Rule, e: Vec<String>) {
        self.push(rule, Outcome::Fail, e);
    }
    fn skip(&mut self, rule: &'static Rule, why: impl Into<String>) {
        self.push(rule, Outcome::Skip, vec![why.into()]);
    }
    fn cmdline(&self) -> Option<&str> {
        self.entry.as_ref().map(|e| e.cmdline.as_str())
    }

    /// Reads the entry's kernel facts (streamed: the kernel is never kept);
    /// a UKI is read whole, and its `.initrd` section listed here too.
    fn load_kernel(&mut self, e: &BootEntry) {
        let img = self.img;
        let loaded = |r: &mut dyn std::io::Read| {
            kernel::load_stream(r, &mut std::io::sink())
                .map_err(|err| format!("{}: {err}", e.kernel))
        };
        if e.uki {
            let raw = read(img, &e.kernel, MAX_KERNEL).ok();
            let section = |name| {
                raw.as_deref()
                    .and_then(|r| PeInfo::section_data(r, name))
                    .unwrap_or_default()
            };
            if raw.is_some() {
                self.kernel = Some(loaded(&mut section(".linux")));
            }
            self.initrd = initrd_stream(img, e, section(".initrd")).map(|s| list_initrd(s?));
        } else if let Ok((mut r, size)) = img.open_file(&e.kernel) {
            if size <= MAX_KERNEL {
                self.kernel = Some(loaded(&mut r));
            }
        }
    }
}

/// Runs every rule for `arch` (see [`chain::detect_arch`] for `auto`); the
/// Secure Boot rules are skipped (no trust store).
pub fn check(img: &OpenedImage, arch: Arch) -> Report {
    check_with(img, arch, None)
}

/// Runs every rule for `arch`, the Secure Boot rules under `secure_boot`'s
/// db and dbx when given.
pub fn check_with(img: &OpenedImage, arch: Arch, secure_boot: Option<&FirmwareStore>) -> Report {
    let mut ctx = Ctx::new(img, arch);
    std::thread::scope(|scope| {
        // The initramfs listing is a whole decompression, most of check's
        // time on a real image: a worker decodes while this thread reads
        // the compressed bytes and runs the rules that need no initrd.
        let mut listing = None;
        if let Some(e) = ctx.entry.clone().filter(|e| !e.uki) {
            match initrd_stream(img, &e, &[]) {
                Some(Ok(stream)) => {
                    let (mut feeder, blocks) = pipe::pipe(stream);
                    let worker = scope.spawn(move || list_initrd(blocks));
                    // Primes the worker without waiting for it.
                    feeder.feed(Some(pipe::IN_FLIGHT));
                    listing = Some((feeder, worker));
                }
                Some(Err(e)) => ctx.initrd = Some(Err(e)),
                None => {}
            }
        }
        if let Some(e) = ctx.entry.clone() {
            ctx.load_kernel(&e);
        }
        ctx.image_rules();
        ctx.chain_rules();
        ctx.reference_rules();
        ctx.cmdline_rules();
        let version = ctx
            .kernel
            .as_ref()
            .and_then(|k| k.as_ref().ok())
            .and_then(|k| k.version.clone());
        ctx.features = version
            .as_deref()
            .and_then(|v| KernelFeatures::find(img, ctx.root, v));
        if let Some((mut feeder, worker)) = listing {
            feeder.feed(None);
            drop(feeder);
            ctx.initrd = Some(
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
    });
    ctx.os_rules();
    ctx.provisioning();
    ctx.secure_boot_rules(secure_boot);
    let mut summary = Summary::default();
    for f in &ctx.findings {
        match (f.outcome, f.rule.severity) {
            (Outcome::Pass, _) => summary.pass += 1,
            (Outcome::Fail, Severity::Error) => summary.fail_error += 1,
            (Outcome::Fail, _) => summary.fail_warning += 1,
            (Outcome::Skip, _) => summary.skip += 1,
            (Outcome::Info, _) => summary.info += 1,
        }
    }
    // Catalog order, whatever order the rules were evaluated in.
    ctx.findings
        .sort_by_key(|f| rules::ALL.iter().position(|r| r.id == f.rule.id));
    let prediction = ctx.predict();
    Report {
        schema: CHECK_SCHEMA,
        arch,
        findings: ctx.findings,
        summary,
        prediction,
        chain: ctx.chain,
        bytes_read: img.image.stats().bytes_read(),
    }
}
