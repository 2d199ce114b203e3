//! Trust stores for `check --secure-boot[=STORE]` (the db and dbx of an
//! EDK2 variable store, named, given as a file or as certificates) and the
//! variable store a `boot --secure-boot[=STORE]` starts from.

use crate::Error;
use bootproof_boot::sbat::SbatLevel;
use bootproof_boot::trust::FirmwareStore;
use bootproof_platform::{Arch, Tone};
use bootproof_vm::firmware::{self, Mapping};
use bootproof_vm::nvram;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The GUID db and dbx are stored under (EFI_IMAGE_SECURITY_DATABASE_GUID).
const IMAGE_SECURITY_DATABASE: &str = "d719b2cb-3d3a-4596-a3bc-dad00e67656f";
/// The GUID shim keeps its variables under (SHIM_LOCK_GUID): MokList,
/// MokListX, SbatLevel.
const SHIM_LOCK: &str = "605dab50-e046-4300-abb6-3dd810dd8b23";
/// SbatLevel's attributes shim keeps: non-volatile and boot-service
/// access, optionally time-authenticated (`check_sbat_var_attributes`).
const SBAT_ATTRIBUTES: [u32; 2] = [0x3, 0x23];
/// A variable store is read whole: at most this many bytes (AAVMF's are 64 MiB).
const MAX_VARS: u64 = 128 << 20;

/// What `--secure-boot` names by default.
pub const DEFAULT_STORE: &str = "microsoft";

/// Microsoft's UEFI CAs (the third-party CAs that sign shim), built in
/// for firmware that trusts one of them or both: DER as Microsoft issued
/// them, cut from Debian's OVMF `.ms` store (2011) and from the second
/// signature of Debian's shim (2023); `certs/README.md` has their
/// fingerprints, and a test compares them with those sources.
const MICROSOFT_UEFI_CAS: [(&str, &[u8]); 2] = [
    (
        "Microsoft UEFI CA 2011",
        include_bytes!("certs/microsoft-uefi-ca-2011.der"),
    ),
    (
        "Microsoft UEFI CA 2023",
        include_bytes!("certs/microsoft-uefi-ca-2023.der"),
    ),
];

/// The built-in stores: name and which of [`MICROSOFT_UEFI_CAS`] are db.
pub const BUILT_IN_STORES: [(&str, &[usize]); 3] = [
    ("microsoft-2011", &[0]),
    ("microsoft-2023", &[1]),
    ("microsoft-both", &[0, 1]),
];

/// The trust store `spec` names for `arch`: `microsoft` (the variable
/// store of the firmware descriptor with Secure Boot and enrolled keys:
/// Debian's `.ms` store, Microsoft's UEFI CAs in db), `snakeoil` (its
/// `.snakeoil` sibling: the distribution's test key only), a built-in
/// store (`microsoft-2011`, `microsoft-2023`, `microsoft-both`: db holds
/// Microsoft's UEFI CA of that year, or both; dbx is empty), the path of
/// an EDK2 variable store file, or a directory whose `*.pem`, `*.crt`,
/// `*.cer` and `*.der` certificates are db (dbx empty).
pub fn trust_store(spec: &str, arch: Arch) -> Result<FirmwareStore, Error> {
    if let Some((name, cas)) = BUILT_IN_STORES.iter().find(|(n, _)| *n == spec) {
        let mut store = FirmwareStore {
            name: format!("{name} (built in)"),
            ..Default::default()
        };
        for &i in *cas {
            let (ca, der) = MICROSOFT_UEFI_CAS[i];
            store
                .db
                .add_der(der, "built in")
                .map_err(|e| Error::new(format!("{ca}: {e}")))?;
        }
        return Ok(store);
    }
    let path = match spec {
        "microsoft" | "ms" => enrolled_template(arch)?,
        "snakeoil" => snakeoil_template(arch)?,
        path => PathBuf::from(path),
    };
    if path.is_dir() {
        return from_cert_dir(&path);
    }
    from_vars(&path)
}

/// Owner GUID of the db and dbx entries bootproof writes
/// (`b0075eed-5ec0-4b00-8f1a-6b0e1c0e5b0f`, bootproof's own).
const WRITTEN_ENTRY_OWNER: &str = "b0075eed-5ec0-4b00-8f1a-6b0e1c0e5b0f";
/// db, dbx, KEK and PK: non-volatile, boot and runtime access,
/// time-based authenticated writes.
const SECURITY_DATABASE_ATTRIBUTES: u32 = 0x27;

/// The variable store a Secure Boot boot under `spec` starts from, put at
/// `dest`: `None` for `microsoft` (the firmware descriptor's enrolled
/// store, used as it is); a store file (`snakeoil`, a path) is copied; a
/// built-in store or a directory of certificates is written in-process
/// into a copy of the enrolled store (its PK and KEK kept, db replaced by
/// the certificates, dbx emptied: exactly the store `check` judges).
/// Returns the store as read from the bytes put at `dest`, named for
/// reports.
pub fn boot_store(spec: &str, arch: Arch, dest: &Path) -> Result<Option<FirmwareStore>, Error> {
    if matches!(spec, "microsoft" | "ms") {
        return Ok(None);
    }
    let from_certs = BUILT_IN_STORES.iter().any(|(n, _)| *n == spec) || Path::new(spec).is_dir();
    let (name, bytes) = if from_certs {
        let store = trust_store(spec, arch)?;
        let template = enrolled_template(arch)?;
        let fail = |e: &dyn std::fmt::Display| Error::new(format!("{}: {e}", template.display()));
        let owner = nvram::parse_guid(WRITTEN_ENTRY_OWNER).ok_or_else(|| fail(&"owner GUID"))?;
        let database = nvram::parse_guid(IMAGE_SECURITY_DATABASE).ok_or_else(|| fail(&"GUID"))?;
        let db = nvram::NewVariable {
            name: "db".into(),
            guid: database,
            attributes: SECURITY_DATABASE_ATTRIBUTES,
            data: store.db.to_efi_lists(owner).map_err(|e| fail(&e))?,
        };
        let is_list = |v: &nvram::Variable| {
            v.guid == IMAGE_SECURITY_DATABASE && (v.name == "db" || v.name == "dbx")
        };
        let written = nvram::rewrite(&read_store(&template)?, |v| !is_list(v), &[db])
            .map_err(|e| fail(&e))?;
        let name = format!("{spec} (written into a copy of {})", template.display());
        (name, written)
    } else {
        let file = match spec {
            "snakeoil" => snakeoil_template(arch)?,
            path => PathBuf::from(path),
        };
        (file.display().to_string(), read_store(&file)?)
    };
    // Read before it is written: a file that is no store is refused
    // before booting.
    let store = parse_store(name, &bytes)?;
    std::fs::write(dest, bytes).map_err(|e| Error::new(format!("{}: {e}", dest.display())))?;
    Ok(Some(store))
}

/// The `.snakeoil` sibling of the enrolled store: the distribution's test
/// key alone in db.
fn snakeoil_template(arch: Arch) -> Result<PathBuf, Error> {
    let ms = enrolled_template(arch)?;
    let name = ms.file_name().unwrap_or_default().to_string_lossy();
    let sibling = ms.with_file_name(name.replace(".ms.", ".snakeoil."));
    if sibling == ms || !sibling.exists() {
        return Err(Error::with_hint(
            format!("no snakeoil variable store beside {}", ms.display()),
            "give the store's path instead: --secure-boot=/path/to/VARS.fd",
        ));
    }
    Ok(sibling)
}

/// The NVRAM template of the first descriptor (in QEMU's search order) for
/// `arch` with `secure-boot` and `enrolled-keys`.
fn enrolled_template(arch: Arch) -> Result<PathBuf, Error> {
    let (descriptors, _) = firmware::load(&firmware::search_dirs());
    descriptors
        .iter()
        .filter(|d| d.target_for(arch).is_some())
        .filter(|d| d.has_feature("secure-boot") && d.has_feature("enrolled-keys"))
        .find_map(|d| match &d.mapping {
            Mapping::Flash { nvram_template: Some(t), .. } => Some(t.filename.clone()),
            _ => None,
        })
        .ok_or_else(|| {
            Error::with_hint(
                format!("no firmware descriptor for {arch} has Secure Boot with enrolled keys"),
                "install the distribution's firmware (ovmf, qemu-efi-aarch64), or give a variable store: --secure-boot=/path/to/VARS.fd",
            )
        })
}

/// Certificates in a directory, as db (files read in name order; at most
/// 1 MiB each, 1024 files).
pub fn from_cert_dir(dir: &Path) -> Result<FirmwareStore, Error> {
    let fail = |e: &dyn std::fmt::Display| Error::new(format!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| fail(&e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let ext = p
                .extension()
                .map(|x| x.to_string_lossy().to_ascii_lowercase());
            matches!(ext.as_deref(), Some("pem" | "crt" | "cer" | "der"))
        })
        .take(1024)
        .collect();
    files.sort();
    let mut store = FirmwareStore {
        name: dir.display().to_string(),
        ..Default::default()
    };
    for f in &files {
        let name = f.file_name().unwrap_or_default().to_string_lossy();
        let len = std::fs::metadata(f).map_err(|e| fail(&e))?.len();
        if len > 1 << 20 {
            return Err(fail(&format!(
                "{name}: {len} bytes, over 1 MiB for a certificate file"
            )));
        }
        let bytes = std::fs::read(f).map_err(|e| fail(&e))?;
        store
            .db
            .add_cert_file(&bytes, &name)
            .map_err(|e| fail(&e))?;
    }
    if store.db.is_empty() {
        return Err(Error::with_hint(
            format!(
                "{}: no certificate files (*.pem, *.crt, *.cer, *.der)",
                dir.display()
            ),
            "put the db certificates there, one per file, PEM or DER",
        ));
    }
    Ok(store)
}

/// db and dbx of the EDK2 variable store at `path`.
pub fn from_vars(path: &Path) -> Result<FirmwareStore, Error> {
    parse_store(path.display().to_string(), &read_store(path)?)
}

/// The variable store file at `path`, whole (at most [`MAX_VARS`] bytes).
fn read_store(path: &Path) -> Result<Vec<u8>, Error> {
    let fail = |e: &dyn std::fmt::Display| Error::new(format!("{}: {e}", path.display()));
    let size = std::fs::metadata(path).map_err(|e| fail(&e))?.len();
    if size > MAX_VARS {
        return Err(fail(&format!(
            "{size} bytes, over the {MAX_VARS}-byte limit for a variable store"
        )));
    }
    std::fs::read(path).map_err(|e| fail(&e))
}

/// db, dbx and shim's variables of the store `data`, called `name`.
fn parse_store(name: String, data: &[u8]) -> Result<FirmwareStore, Error> {
    let fail = |e: &dyn std::fmt::Display| Error::new(format!("{name}: {e}"));
    let vars = nvram::variables(data).map_err(|e| fail(&e))?;
    let mut store = FirmwareStore {
        name: name.clone(),
        ..Default::default()
    };
    for v in &vars {
        let list = match (v.guid.as_str(), v.name.as_str()) {
            (IMAGE_SECURITY_DATABASE, "db") => &mut store.db,
            (IMAGE_SECURITY_DATABASE, "dbx") => &mut store.dbx,
            (SHIM_LOCK, "MokList") => &mut store.mok,
            (SHIM_LOCK, "MokListX") => &mut store.mokx,
            (SHIM_LOCK, "SbatLevel") if SBAT_ATTRIBUTES.contains(&v.attributes) => {
                // A level shim cannot parse is one it replaces with its own.
                store.sbat_level = SbatLevel::parse(&v.data, "the SbatLevel variable").ok();
                continue;
            }
            _ => continue,
        };
        list.add_efi_lists(&v.data, &v.name).map_err(|e| fail(&e))?;
    }
    if store.db.is_empty() {
        return Err(Error::with_hint(
            format!("{name}: no db: Secure Boot keys are not enrolled in this store"),
            "use a store with enrolled keys (Debian: OVMF_VARS_4M.ms.fd, AAVMF_VARS.ms.fd)",
        ));
    }
    Ok(store)
}

/// Who refuses a Secure Boot boot: the firmware (the removable loader),
/// the loader chain (shim or GRUB: the next loader or the kernel), or no one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Refusal {
    /// The firmware refuses the removable loader.
    Firmware,
    /// shim or the loader refuses what it starts.
    Loader,
    /// Nothing is refused.
    None,
}

/// A Secure Boot boot's prediction next to what the boot showed.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SecureBootCheck {
    /// The variable store the firmware booted with (its db and dbx judged).
    pub store: String,
    /// What `check --secure-boot` predicts under it.
    pub predicted: Refusal,
    /// The failed `secureboot.*` rule behind it, with its evidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
    /// The rule's evidence (why the stage is refused).
    pub evidence: Vec<String>,
    /// What the boot showed.
    pub observed: Refusal,
    /// Whether the two agree; a disagreement is a finding to report.
    pub agrees: bool,
}

impl Refusal {
    /// Who refuses, in words.
    pub fn words(self) -> &'static str {
        match self {
            Refusal::Firmware => "the firmware refuses the loader",
            Refusal::Loader => "shim or the loader refuses what it starts",
            Refusal::None => "nothing is refused",
        }
    }
}

impl SecureBootCheck {
    /// One line: the prediction (and its rule), the observation, and
    /// whether they agree (good news) or not (bad news).
    pub fn summary(&self) -> (Tone, String) {
        let rule = self.rule.map(|r| format!(" ({r})")).unwrap_or_default();
        let (tone, verdict) = if self.agrees {
            (Tone::Good, "agree")
        } else {
            (Tone::Bad, "DISAGREE")
        };
        let words = format!(
            "predicted: {}{rule}; observed: {}: {verdict}",
            self.predicted.words(),
            self.observed.words()
        );
        (tone, words)
    }
}

/// Predicts Secure Boot for `img` under `store` (read from the variable
/// store the firmware boots with); the observation is filled in by [`SecureBootCheck::observe`] after the boot.
pub fn predict(
    img: &bootproof_inspect::OpenedImage,
    arch: Arch,
    store: FirmwareStore,
) -> SecureBootCheck {
    let findings = bootproof_check::secure_boot_findings(img, arch, &store);
    let failed = findings.iter().find(|f| {
        f.rule.id.starts_with("secureboot.") && f.outcome == bootproof_check::Outcome::Fail
    });
    let predicted = match failed {
        Some(f) if f.rule.id == bootproof_check::rules::SB_FIRST.id => Refusal::Firmware,
        Some(_) => Refusal::Loader,
        None => Refusal::None,
    };
    SecureBootCheck {
        store: store.name,
        predicted,
        rule: failed.map(|f| f.rule.id),
        evidence: failed.map(|f| f.evidence.clone()).unwrap_or_default(),
        observed: Refusal::None,
        agrees: predicted == Refusal::None,
    }
}

impl SecureBootCheck {
    /// Sets what the boot that ended in `outcome` showed.
    pub fn observe(mut self, outcome: &bootproof_vm::supervise::BootOutcome) -> SecureBootCheck {
        self.observed = observed(outcome);
        self.agrees = self.predicted == self.observed;
        self
    }
}

/// Who refused, by the boot's outcome: the firmware's refusal ends in its
/// boot manager with "Secure Boot refused …"; shim's and GRUB's are the
/// `secure-boot-rejected` stage.
pub fn observed(outcome: &bootproof_vm::supervise::BootOutcome) -> Refusal {
    use bootproof_vm::classify::Stage;
    use bootproof_vm::supervise::BootOutcome;
    match outcome {
        BootOutcome::Failed {
            stage: Stage::SecureBootRejected(_),
            ..
        } => Refusal::Loader,
        BootOutcome::Failed { cause: Some(c), .. } if c.starts_with("Secure Boot refused") => {
            Refusal::Firmware
        }
        _ => Refusal::None,
    }
}
