//! Who signed an EFI binary: its Authenticode signatures (the PE attribute
//! certificate table's PKCS#7 SignedData), each signer and issuer, the
//! certificates carried, and whether the signed digest is the file's own
//! Authenticode hash; and the `.sbat` section's entries.
//!
//! Parsing is the `authenticode` crate's (RustCrypto `cms`/`x509-cert`
//! underneath); its `certificates()` unwraps and panics on a SignedData
//! without X.509 certificates, which a crafted file can have, so the
//! certificate set is walked here from `cms` instead. Not done here:
//! checking the RSA signature and the chain against a trust store.

use authenticode::{
    authenticode_digest, AttributeCertificateIterator, AuthenticodeSignature, PeTrait,
};
pub(crate) use bootproof_image::digest::hex;
pub use bootproof_platform::Tone;
use serde::Serialize;
use sha2::{Digest, Sha256};
use x509_cert::der::{Decode, SliceReader};
use x509_cert::name::Name;

/// Signatures listed per file, at most (the rest is counted as an error).
pub(crate) const MAX_SIGNATURES: usize = 8;
/// Certificates listed per signature, at most.
const MAX_CERTIFICATES: usize = 16;
/// `.sbat` lines read, at most (shim's and GRUB's have 2–4).
const MAX_SBAT_ENTRIES: usize = 64;
/// A field of an `.sbat` line, at most (longer fields are cut).
const MAX_SBAT_FIELD: usize = 256;

/// SHA-256's OID: the digest every UEFI signer uses.
const SHA256_OID: &str = "2.16.840.1.101.3.4.2.1";

/// One certificate's names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct CertName {
    /// Subject, X.500 order (`C=US, O=…, CN=…`).
    pub subject: String,
    /// Issuer, the same way.
    pub issuer: String,
}

/// One Authenticode signature.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Signature {
    /// The signing certificate, when the signature carries it.
    pub signer: Option<CertName>,
    /// The signer's issuer, as the SignerInfo names it.
    pub issuer: String,
    /// The signer certificate's serial number (hex).
    pub serial: String,
    /// `sha256`, or the digest algorithm's OID.
    pub digest_algorithm: String,
    /// The Authenticode hash it signs (hex).
    pub digest: String,
    /// Whether the signed digest is this file's Authenticode hash: false
    /// means the file was changed after signing. `None` for a digest
    /// algorithm not computed here.
    pub digest_matches: Option<bool>,
    /// Every certificate the signature carries (the signer's chain).
    pub certificates: Vec<CertName>,
}

/// One `.sbat` line: a component's generation and who built it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SbatEntry {
    /// Component name (`sbat`, `shim`, `grub`, `grub.debian`, …).
    pub component: String,
    /// Its generation: revocations raise the level it must reach.
    pub generation: Option<u32>,
    /// Vendor, package, version and URL, as far as the line gives them.
    pub vendor: Vec<String>,
}

/// A PE file's Authenticode hash and signatures.
#[derive(Debug, Clone, Default)]
pub struct Signed {
    /// The file's own Authenticode SHA-256 (hex), what a signer signs and
    /// a db or dbx hash entry names; `None` when its layout cannot be hashed.
    pub authenticode_sha256: Option<String>,
    /// Its signatures (none for an unsigned file).
    pub signatures: Vec<Signature>,
}

/// The Authenticode hash and signatures of a PE file, or why its headers
/// or certificate table cannot be read.
pub fn signatures(data: &[u8]) -> Result<Signed, String> {
    with_pe(data, |pe| {
        let digest = authenticode_sha256(pe);
        let mut out = Signed {
            authenticode_sha256: digest.map(hex),
            signatures: Vec::new(),
        };
        let Some(table) =
            AttributeCertificateIterator::new(pe).map_err(|e| format!("certificate table: {e}"))?
        else {
            return Ok(out);
        };
        for entry in table {
            let n = out.signatures.len();
            if n == MAX_SIGNATURES {
                return Err(format!("more than {MAX_SIGNATURES} signatures"));
            }
            let entry = entry.map_err(|e| format!("certificate table entry: {e}"))?;
            let sig = entry
                .get_authenticode_signature()
                .map_err(|e| format!("signature {}: {e}", n + 1))?;
            let sha256 = digest.as_ref().map(|d| &d[..]);
            out.signatures.push(describe(&sig, entry.data, sha256));
        }
        Ok(out)
    })?
}

/// Runs `f` on `data` parsed as a PE32 or PE32+ image.
pub(crate) fn with_pe<R>(data: &[u8], f: impl FnOnce(&dyn PeTrait) -> R) -> Result<R, String> {
    match object::FileKind::parse(data) {
        Ok(object::FileKind::Pe64) => object::read::pe::PeFile64::parse(data).map(|pe| f(&pe)),
        Ok(object::FileKind::Pe32) => object::read::pe::PeFile32::parse(data).map(|pe| f(&pe)),
        _ => return Err("not a PE/COFF file".into()),
    }
    .map_err(|e| format!("PE headers: {e}"))
}

/// A PE image's Authenticode SHA-256; `None` when its layout cannot be
/// hashed.
pub(crate) fn authenticode_sha256(pe: &dyn PeTrait) -> Option<[u8; 32]> {
    let mut h = Sha256::new();
    authenticode_digest(pe, &mut h).ok()?;
    Some(h.finalize().into())
}

/// The certificate in `bag` the SignerInfo names by issuer and serial
/// number (`None` for a signer named by key id, or not carried).
pub(crate) fn signer_cert<'a>(
    info: &cms::signed_data::SignerInfo,
    bag: &'a [x509_cert::Certificate],
) -> Option<&'a x509_cert::Certificate> {
    let cms::signed_data::SignerIdentifier::IssuerAndSerialNumber(id) = &info.sid else {
        return None;
    };
    bag.iter().find(|c| {
        c.tbs_certificate.issuer == id.issuer && c.tbs_certificate.serial_number == id.serial_number
    })
}

/// A parsed signature's facts; `der` is its SignedData, read again for the
/// certificate set (see the module comment).
fn describe(sig: &AuthenticodeSignature, der: &[u8], sha256: Option<&[u8]>) -> Signature {
    let info = sig.signer_info();
    let (issuer, serial) = match &info.sid {
        cms::signed_data::SignerIdentifier::IssuerAndSerialNumber(id) => {
            (Some(id.issuer.clone()), hex(id.serial_number.as_bytes()))
        }
        cms::signed_data::SignerIdentifier::SubjectKeyIdentifier(k) => {
            (None, format!("key id {}", hex(k.0.as_bytes())))
        }
    };
    let certs = certificates(der);
    let signer = signer_cert(info, &certs).map(names);
    let oid = info.digest_alg.oid.to_string();
    let (digest_algorithm, digest_matches) = if oid == SHA256_OID {
        ("sha256".to_string(), Some(sha256 == Some(sig.digest())))
    } else {
        (oid, None)
    };
    Signature {
        signer,
        issuer: issuer.as_ref().map(dn).unwrap_or_default(),
        serial,
        digest_algorithm,
        digest: hex(sig.digest()),
        digest_matches,
        certificates: certs.iter().take(MAX_CERTIFICATES).map(names).collect(),
    }
}

/// The X.509 certificates of a SignedData (other certificate kinds skipped).
pub(crate) fn certificates(der: &[u8]) -> Vec<x509_cert::Certificate> {
    let signed = SliceReader::new(der)
        .ok()
        .and_then(|mut r| cms::content_info::ContentInfo::decode(&mut r).ok())
        .and_then(|ci| ci.content.decode_as::<cms::signed_data::SignedData>().ok());
    let Some(set) = signed.and_then(|s| s.certificates) else {
        return Vec::new();
    };
    set.0
        .into_vec()
        .into_iter()
        .filter_map(|c| match c {
            cms::cert::CertificateChoices::Certificate(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn names(c: &x509_cert::Certificate) -> CertName {
    CertName {
        subject: dn(&c.tbs_certificate.subject),
        issuer: dn(&c.tbs_certificate.issuer),
    }
}

/// A distinguished name in X.500 order, `C=US, O=…, CN=…` (RFC 4514's
/// escaping within each value).
pub(crate) fn dn(n: &Name) -> String {
    n.0.iter()
        .flat_map(|rdn| rdn.0.iter())
        .map(|atv| atv.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The entries of an `.sbat` section's CSV (`component,generation,vendor,
/// package,version,url` per line); blank lines are skipped.
pub fn sbat_entries(csv: &str) -> Vec<SbatEntry> {
    csv.lines()
        .map(|l| l.trim_matches(|c: char| c.is_whitespace() || c == '\0'))
        .filter(|l| !l.is_empty())
        .take(MAX_SBAT_ENTRIES)
        .map(|l| {
            let mut fields = l
                .split(',')
                .take(6)
                .map(|f| f.trim().chars().take(MAX_SBAT_FIELD).collect::<String>());
            SbatEntry {
                component: fields.next().unwrap_or_default(),
                generation: fields.next().and_then(|g| g.parse().ok()),
                vendor: fields.collect(),
            }
        })
        .collect()
}

/// The common name of a [`dn`] string, else the whole of it.
pub fn common_name(dn: &str) -> &str {
    dn.rsplit(", ")
        .find_map(|part| part.strip_prefix("CN="))
        .unwrap_or(dn)
}

/// EFI binaries (and EFI-stub kernels) are read whole to be hashed: at most
/// this many bytes (a larger file is described by its error).
pub const MAX_EFI_BINARY: u64 = 128 << 20;

/// One EFI binary in the image, as `inspect` shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct EfiBinary {
    /// Partition (slot) number.
    pub partition: u32,
    /// Absolute path inside that filesystem.
    pub path: String,
    /// What it is (`shim`, `grub`, `systemd-boot`, `uki`, `linux-kernel`,
    /// `other`).
    pub kind: crate::pe::EfiKind,
    /// Its Authenticode SHA-256 (hex): what its signatures sign, and what a
    /// db or dbx hash entry would name.
    pub authenticode_sha256: Option<String>,
    /// COFF machine name (`x86_64`, `aarch64`, …).
    pub machine: &'static str,
    /// Its Authenticode signatures (empty: unsigned).
    pub signatures: Vec<Signature>,
    /// Its `.sbat` entries (empty: no `.sbat` section).
    pub sbat: Vec<SbatEntry>,
    /// Why it could not be read or its signatures parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reads `f` and describes it; `None` when it is not a PE file (e.g. a
/// gzip-compressed arm64 kernel).
pub fn efi_binary(
    img: &bootproof_inspect::OpenedImage,
    f: &bootproof_inspect::FileRef,
) -> Option<EfiBinary> {
    let mut out = EfiBinary {
        partition: f.slot,
        path: f.path.clone(),
        kind: crate::pe::EfiKind::Other,
        authenticode_sha256: None,
        machine: "",
        signatures: Vec::new(),
        sbat: Vec::new(),
        error: None,
    };
    let data = match img.read(f, MAX_EFI_BINARY) {
        Ok(d) => d,
        Err(e) => {
            out.error = Some(e.to_string());
            return Some(out);
        }
    };
    let info = crate::pe::analyze(&data)?;
    out.kind = info.kind;
    out.machine = info.machine_name;
    out.sbat = info.sbat.as_deref().map(sbat_entries).unwrap_or_default();
    match signatures(&data) {
        Ok(s) => {
            out.authenticode_sha256 = s.authenticode_sha256;
            out.signatures = s.signatures;
        }
        Err(e) => out.error = Some(e),
    }
    Some(out)
}

/// Every ESP's `*.efi` file and every kernel `report` lists, described
/// (files that are not PE, such as gzip-compressed arm64 kernels, left out).
pub fn efi_binaries(
    img: &bootproof_inspect::OpenedImage,
    report: &bootproof_inspect::InspectReport,
) -> Vec<EfiBinary> {
    let mut files = Vec::new();
    for fs in &report.filesystems {
        let efi = fs.efi.iter().flatten().filter(|e| {
            e.file_type == bootproof_fs::FileType::File
                && e.path.to_ascii_lowercase().ends_with(".efi")
        });
        let kernels = fs
            .boot_files
            .iter()
            .filter(|b| b.kind == "kernel" && b.symlink_target.is_none());
        let paths = efi.map(|e| &e.path).chain(kernels.map(|b| &b.path));
        files.extend(paths.map(|p| bootproof_inspect::FileRef::new(fs.partition, p)));
    }
    files.iter().filter_map(|f| efi_binary(img, f)).collect()
}

/// One line of a binary's summary.
pub type Fact = (Tone, String);

impl EfiBinary {
    /// Its summary, a line each: kind, each signer with its hash check,
    /// why signatures could not be read, SBAT components and generations.
    pub fn facts(&self) -> Vec<Fact> {
        let mut facts = vec![(Tone::Plain, self.kind.name().to_string())];
        if self.signatures.is_empty() && self.error.is_none() {
            facts.push((Tone::Plain, "unsigned".into()));
        }
        for s in &self.signatures {
            let who = s
                .signer
                .as_ref()
                .map_or("a certificate it does not carry", |c| {
                    common_name(&c.subject)
                });
            let (tone, digest) = match s.digest_matches {
                Some(true) => (Tone::Good, "digest ok".to_string()),
                Some(false) => (Tone::Bad, "digest MISMATCH: changed after signing".into()),
                None => (
                    Tone::Warn,
                    format!("{} digest not checked", s.digest_algorithm),
                ),
            };
            let issuer = common_name(&s.issuer);
            facts.push((tone, format!("signed by {who} (issuer {issuer}), {digest}")));
        }
        if let Some(e) = &self.error {
            facts.push((Tone::Warn, format!("signatures unreadable: {e}")));
        }
        if !self.sbat.is_empty() {
            let sbat: Vec<String> = self
                .sbat
                .iter()
                .map(|e| match e.generation {
                    Some(g) => format!("{},{g}", e.component),
                    None => e.component.clone(),
                })
                .collect();
            facts.push((Tone::Plain, format!("SBAT {}", sbat.join(" "))));
        }
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbat_lines_become_entries() {
        let csv = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n\
                   shim,4,UEFI shim,shim,1,https://github.com/rhboot/shim\n\
                   shim.debian,1,Debian,shim,15.8-1,https://tracker.debian.org/pkg/shim\n\0\0";
        let e = sbat_entries(csv);
        assert_eq!(e.len(), 3);
        assert_eq!(e[1].component, "shim");
        assert_eq!(e[1].generation, Some(4));
        assert_eq!(
            e[2].vendor,
            [
                "Debian",
                "shim",
                "15.8-1",
                "https://tracker.debian.org/pkg/shim"
            ]
        );
    }

    #[test]
    fn sbat_is_bounded() {
        let long = format!("{},x\n", "a".repeat(10_000)).repeat(1000);
        let e = sbat_entries(&long);
        assert_eq!(e.len(), MAX_SBAT_ENTRIES);
        assert_eq!(e[0].component.len(), MAX_SBAT_FIELD);
        assert_eq!(e[0].generation, None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(signatures(b"MZ").is_err());
        assert!(signatures(&[0u8; 4096]).is_err());
    }

    #[test]
    fn common_names() {
        assert_eq!(
            common_name("C=US, O=Microsoft Corporation, CN=Microsoft UEFI CA 2023"),
            "Microsoft UEFI CA 2023"
        );
        assert_eq!(common_name("O=x"), "O=x");
    }
}
