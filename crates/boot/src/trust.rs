//! Whether a trust store accepts an EFI binary, decided as the firmware
//! (EDK2's image verification) and shim decide it: a hash or a certificate
//! in a deny list rejects; else a signature whose signer chains, through the
//! certificates the signature carries, to a certificate of the allow list
//! accepts, as does the binary's Authenticode hash listed there.
//!
//! A chain is followed by issuer name and proven by each certificate's
//! RSA signature (PKCS#1 v1.5 with SHA-256, what UEFI signing uses);
//! validity dates are ignored, as firmware has no trusted clock. Lists come
//! from EFI_SIGNATURE_LIST data (db, dbx, MokList, shim's vendor dbx) or
//! from shim's `.vendor_cert` section. All sizes are bounded and checked.

use crate::signing::{authenticode_sha256, dn, hex, signer_cert, MAX_SIGNATURES};
use authenticode::{AttributeCertificateIterator, AuthenticodeSignature, PeTrait};
use rsa::pkcs1v15::Pkcs1v15Sign;
use rsa::pkcs8::DecodePublicKey;
use rsa::RsaPublicKey;
use sha2::{Digest, Sha256};
use x509_cert::der::{Decode, Encode};
use x509_cert::Certificate;

/// EFI_CERT_X509_GUID (`a5c059a1-94e4-4aa7-87b5-ab155c2bf072`), as stored.
const CERT_X509: [u8; 16] = [
    0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a, 0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72,
];
/// EFI_CERT_SHA256_GUID (`c1c41626-504c-4092-aca9-41f936934328`).
const CERT_SHA256: [u8; 16] = [
    0x26, 0x16, 0xc4, 0xc1, 0x4c, 0x50, 0x92, 0x40, 0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28,
];
/// Entries read from one variable, at most (Microsoft's dbx has ~450).
const MAX_ENTRIES: usize = 4096;
/// Certificates a chain may pass through, at most.
const MAX_DEPTH: usize = 8;
/// sha256WithRSAEncryption.
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
/// rsaEncryption (a SignerInfo may name it with the digest given apart).
const RSA: &str = "1.2.840.113549.1.1.1";
/// The PKCS#9 messageDigest attribute.
const MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";

/// Certificates and SHA-256 hashes: an allow or a deny list.
#[derive(Debug, Clone, Default)]
pub struct SignatureList {
    /// X.509 certificates, each with where it came from (`db`, `vendor_cert`).
    pub certs: Vec<(Certificate, String)>,
    /// SHA-256 hashes of binaries, with where each came from.
    pub hashes: Vec<([u8; 32], String)>,
}

impl SignatureList {
    /// Adds the entries of EFI_SIGNATURE_LIST data named `source`; other
    /// signature types (RSA-2048 keys, SHA-1, X.509 TBS hashes) are skipped.
    pub fn add_efi_lists(&mut self, data: &[u8], source: &str) -> Result<(), String> {
        let mut at = 0usize;
        let mut entries = 0usize;
        while at < data.len() {
            let bad = |what: &str| format!("{source}: EFI_SIGNATURE_LIST at byte {at}: {what}");
            let head = data
                .get(at..at + 28)
                .ok_or_else(|| bad("truncated header"))?;
            let kind: [u8; 16] = head[..16].try_into().map_err(|_| bad("header"))?;
            let u32_at = |o: usize| {
                u32::from_le_bytes(head[o..o + 4].try_into().unwrap_or_default()) as usize
            };
            let (list_size, header_size, sig_size) = (u32_at(16), u32_at(20), u32_at(24));
            if list_size < 28 || sig_size < 16 {
                return Err(bad("sizes too small"));
            }
            let end = at
                .checked_add(list_size)
                .filter(|&e| e <= data.len())
                .ok_or_else(|| bad("runs past the data"))?;
            let first = at
                .checked_add(28)
                .and_then(|x| x.checked_add(header_size))
                .filter(|&x| x <= end)
                .ok_or_else(|| bad("header runs past the list"))?;
            for sig in data[first..end].chunks_exact(sig_size) {
                entries += 1;
                if entries > MAX_ENTRIES {
                    return Err(format!("{source}: more than {MAX_ENTRIES} entries"));
                }
                // Each entry: the owner's GUID, then the data.
                let body = &sig[16..];
                if kind == CERT_X509 {
                    let cert = Certificate::from_der(body)
                        .map_err(|e| bad(&format!("certificate: {e}")))?;
                    self.certs.push((cert, source.to_string()));
                } else if kind == CERT_SHA256 {
                    if let Ok(h) = body.try_into() {
                        self.hashes.push((h, source.to_string()));
                    }
                }
            }
            at = end;
        }
        Ok(())
    }

    /// Adds the certificates of a PEM file (one or more `CERTIFICATE`
    /// blocks) or a DER file, named `source`.
    pub fn add_cert_file(&mut self, bytes: &[u8], source: &str) -> Result<(), String> {
        if !bytes.starts_with(b"-----BEGIN") {
            return self.add_der(bytes, source);
        }
        let certs = Certificate::load_pem_chain(bytes).map_err(|e| format!("{source}: {e}"))?;
        if certs.len() > MAX_ENTRIES {
            return Err(format!("{source}: more than {MAX_ENTRIES} certificates"));
        }
        self.certs
            .extend(certs.into_iter().map(|c| (c, source.to_string())));
        Ok(())
    }

    /// Adds one DER certificate named `source`.
    pub fn add_der(&mut self, der: &[u8], source: &str) -> Result<(), String> {
        let cert = Certificate::from_der(der).map_err(|e| format!("{source}: {e}"))?;
        self.certs.push((cert, source.to_string()));
        Ok(())
    }

    /// The list as EFI_SIGNATURE_LISTs, as a variable store holds db or
    /// dbx: one X.509 list per certificate (their sizes differ), then one
    /// SHA-256 list with every hash; each entry owned by `owner`.
    pub fn to_efi_lists(&self, owner: [u8; 16]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut list = |kind: [u8; 16], entries: &[&[u8]]| -> Result<(), String> {
            let Some(first) = entries.first() else {
                return Ok(());
            };
            let sig_size = 16 + first.len();
            let list_size = entries
                .len()
                .checked_mul(sig_size)
                .and_then(|n| n.checked_add(28))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or("an EFI_SIGNATURE_LIST over 4 GiB")?;
            out.extend_from_slice(&kind);
            out.extend_from_slice(&list_size.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&(sig_size as u32).to_le_bytes());
            for e in entries {
                out.extend_from_slice(&owner);
                out.extend_from_slice(e);
            }
            Ok(())
        };
        for (cert, source) in &self.certs {
            let der = cert.to_der().map_err(|e| format!("{source}: {e}"))?;
            list(CERT_X509, &[&der])?;
        }
        let hashes: Vec<&[u8]> = self.hashes.iter().map(|(h, _)| &h[..]).collect();
        list(CERT_SHA256, &hashes)?;
        Ok(out)
    }

    /// Whether it lists nothing.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty() && self.hashes.is_empty()
    }
}

/// A firmware's Secure Boot variables: its allow list (db) and deny list
/// (dbx), what shim adds from the store (MokList, MokListX, SbatLevel),
/// and what the store is called in reports.
#[derive(Debug, Clone, Default)]
pub struct FirmwareStore {
    /// `microsoft (…/OVMF_VARS_4M.ms.fd)`, a file name, …
    pub name: String,
    /// db.
    pub db: SignatureList,
    /// dbx.
    pub dbx: SignatureList,
    /// MokList: what shim trusts besides db and its vendor certificate.
    pub mok: SignatureList,
    /// MokListX: what shim refuses besides dbx and its vendor dbx.
    pub mokx: SignatureList,
    /// The `SbatLevel` variable, when present with the attributes shim
    /// keeps (else shim replaces it with its own level).
    pub sbat_level: Option<crate::sbat::SbatLevel>,
}

/// shim's built-in lists: its `.vendor_cert` section holds the vendor's
/// certificate (what the distribution signs GRUB and kernels with) and a
/// vendor dbx. `None` without the section.
pub fn shim_vendor_lists(
    section: Option<&[u8]>,
) -> Option<Result<(SignatureList, SignatureList), String>> {
    let s = section?;
    let u32_at = |o: usize| {
        s.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
    };
    let parsed = (|| {
        let (auth_size, deauth_size, auth_off, deauth_off) =
            (u32_at(0)?, u32_at(4)?, u32_at(8)?, u32_at(12)?);
        let auth = s.get(auth_off..auth_off.checked_add(auth_size)?)?;
        let deauth = s.get(deauth_off..deauth_off.checked_add(deauth_size)?)?;
        Some((auth, deauth))
    })();
    let Some((auth, deauth)) = parsed else {
        return Some(Err(
            ".vendor_cert: sizes or offsets outside the section".into()
        ));
    };
    let mut allow = SignatureList::default();
    let mut deny = SignatureList::default();
    let result = (|| {
        if !auth.is_empty() {
            // One DER certificate (shim's build) or EFI signature lists.
            if allow.add_der(auth, "shim vendor_cert").is_err() {
                allow.add_efi_lists(auth, "shim vendor_db")?;
            }
        }
        if !deauth.is_empty() {
            deny.add_efi_lists(deauth, "shim vendor_dbx")?;
        }
        Ok::<(), String>(())
    })();
    Some(result.map(|()| (allow, deny)))
}

/// What a store decided about a binary, and on what evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted: signature number (1-based, 0 for a hash entry), and the
    /// allow-list entry that accepted it.
    Accepted { signature: usize, by: String },
    /// Rejected, with why.
    Rejected(String),
}

/// Decides whether `allow` and `deny` accept the PE file `data`.
pub fn decide(data: &[u8], allow: &[&SignatureList], deny: &[&SignatureList]) -> Verdict {
    crate::signing::with_pe(data, |pe| decide_pe(pe, allow, deny)).unwrap_or_else(Verdict::Rejected)
}

fn decide_pe(pe: &dyn PeTrait, allow: &[&SignatureList], deny: &[&SignatureList]) -> Verdict {
    let Some(image_hash) = authenticode_sha256(pe) else {
        return Verdict::Rejected("its layout cannot be hashed (Authenticode)".into());
    };
    if let Some((_, src)) = deny
        .iter()
        .flat_map(|l| &l.hashes)
        .find(|(x, _)| *x == image_hash)
    {
        return Verdict::Rejected(format!("its hash {} is revoked in {src}", hex(image_hash)));
    }
    let mut why_not = Vec::new();
    let table = match AttributeCertificateIterator::new(pe) {
        Ok(t) => t,
        Err(e) => return Verdict::Rejected(format!("certificate table: {e}")),
    };
    for (i, entry) in table.into_iter().flatten().enumerate().take(MAX_SIGNATURES) {
        let n = i + 1;
        let Ok(entry) = entry else {
            why_not.push(format!("signature {n} unreadable"));
            break;
        };
        let sig = match entry.get_authenticode_signature() {
            Ok(s) => s,
            Err(e) => {
                why_not.push(format!("signature {n}: {e}"));
                continue;
            }
        };
        if sig.digest() != image_hash {
            why_not.push(format!(
                "signature {n} signs another hash: the file changed after signing"
            ));
            continue;
        }
        let bag = crate::signing::certificates(entry.data);
        let signer = match signer_of(&sig, &bag) {
            Ok(s) => s,
            Err(e) => {
                why_not.push(format!("signature {n}: {e}"));
                continue;
            }
        };
        // A revoked certificate anywhere on the signer's chain rejects.
        if let Some((c, src)) = deny
            .iter()
            .flat_map(|l| &l.certs)
            .find(|(c, _)| on_chain(signer, &bag, c))
        {
            return Verdict::Rejected(format!(
                "signature {n} chains to {}, revoked in {src}",
                cn(&c.tbs_certificate.subject)
            ));
        }
        match allow
            .iter()
            .flat_map(|l| &l.certs)
            .find(|(c, _)| on_chain(signer, &bag, c))
        {
            Some((c, src)) => {
                return Verdict::Accepted {
                    signature: n,
                    by: format!("{} ({src})", cn(&c.tbs_certificate.subject)),
                }
            }
            None => why_not.push(format!(
                "signature {n} (signer {}, issuer {}) chains to no certificate of the allow list",
                cn(&signer.tbs_certificate.subject),
                cn(&signer.tbs_certificate.issuer),
            )),
        }
    }
    if let Some((_, src)) = allow
        .iter()
        .flat_map(|l| &l.hashes)
        .find(|(x, _)| *x == image_hash)
    {
        return Verdict::Accepted {
            signature: 0,
            by: format!("its hash in {src}"),
        };
    }
    if why_not.is_empty() {
        return Verdict::Rejected("unsigned, and its hash is in no allow list".into());
    }
    Verdict::Rejected(why_not.join("; "))
}

/// A name's common name (else the whole name), for evidence.
fn cn(name: &x509_cert::name::Name) -> String {
    crate::signing::common_name(&dn(name)).to_string()
}

/// The certificate that made the signature, proven: the SignerInfo's
/// signature over its signed attributes verifies with its key, and those
/// attributes' message digest is that of the signed content.
fn signer_of<'a>(
    sig: &AuthenticodeSignature,
    bag: &'a [Certificate],
) -> Result<&'a Certificate, String> {
    let info = sig.signer_info();
    if matches!(
        info.sid,
        cms::signed_data::SignerIdentifier::SubjectKeyIdentifier(_)
    ) {
        return Err("the signer is named by key id, not issuer and serial".into());
    }
    let signer =
        signer_cert(info, bag).ok_or("the signer's certificate is not in the signature")?;
    let content = sig.encapsulated_content().ok_or("no signed content")?;
    let attrs = info.signed_attrs.as_ref().ok_or("no signed attributes")?;
    let digest = attrs
        .iter()
        .find(|a| a.oid.to_string() == MESSAGE_DIGEST)
        .and_then(|a| a.values.iter().next())
        .ok_or("no message digest attribute")?;
    if digest.value() != Sha256::digest(content).as_slice() {
        return Err("its message digest is not that of the signed content".into());
    }
    let alg = info.signature_algorithm.oid.to_string();
    if alg != SHA256_WITH_RSA && alg != RSA {
        return Err(format!("signature algorithm {alg} is not RSA with SHA-256"));
    }
    let signed = attrs.to_der().map_err(|e| e.to_string())?;
    rsa_verify(signer, &signed, info.signature.as_bytes())
        .map_err(|e| format!("its RSA signature does not verify with the signer's key ({e})"))?;
    Ok(signer)
}

/// Whether `anchor` is `cert` or one of its issuers, following issuer names
/// through `bag` and proving each link by its signature.
fn on_chain(cert: &Certificate, bag: &[Certificate], anchor: &Certificate) -> bool {
    let mut cur = cert;
    for _ in 0..MAX_DEPTH {
        if cur == anchor
            || (cur.tbs_certificate.issuer == anchor.tbs_certificate.subject
                && issued_by(cur, anchor))
        {
            return true;
        }
        let next = bag.iter().find(|c| {
            *c != cur
                && c.tbs_certificate.subject == cur.tbs_certificate.issuer
                && issued_by(cur, c)
        });
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    false
}

/// Whether `issuer`'s key verifies `cert`'s signature.
fn issued_by(cert: &Certificate, issuer: &Certificate) -> bool {
    if cert.signature_algorithm.oid.to_string() != SHA256_WITH_RSA {
        return false;
    }
    let (Ok(tbs), Some(sig)) = (cert.tbs_certificate.to_der(), cert.signature.as_bytes()) else {
        return false;
    };
    rsa_verify(issuer, &tbs, sig).is_ok()
}

fn rsa_verify(by: &Certificate, message: &[u8], signature: &[u8]) -> Result<(), String> {
    let spki = by
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    let key =
        RsaPublicKey::from_public_key_der(&spki).map_err(|e| format!("not an RSA key: {e}"))?;
    key.verify(
        Pkcs1v15Sign::new::<Sha256>(),
        &Sha256::digest(message),
        signature,
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(kind: [u8; 16], entries: &[&[u8]], sig_size: usize) -> Vec<u8> {
        let mut v = kind.to_vec();
        let size = 28 + entries.len() * sig_size;
        v.extend((size as u32).to_le_bytes());
        v.extend(0u32.to_le_bytes());
        v.extend((sig_size as u32).to_le_bytes());
        for e in entries {
            v.extend([0u8; 16]);
            v.extend(*e);
        }
        v
    }

    #[test]
    fn hash_lists_are_read_and_bad_sizes_refused() {
        let mut l = SignatureList::default();
        l.add_efi_lists(&list(CERT_SHA256, &[&[7u8; 32], &[9u8; 32]], 48), "dbx")
            .unwrap();
        assert_eq!(l.hashes.len(), 2);
        assert_eq!(l.hashes[1], ([9u8; 32], "dbx".to_string()));
        let mut bad = list(CERT_SHA256, &[&[7u8; 32]], 48);
        bad[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(SignatureList::default()
            .add_efi_lists(&bad, "dbx")
            .unwrap_err()
            .contains("runs past"));
        let mut tiny = list(CERT_SHA256, &[], 48);
        tiny[24..28].copy_from_slice(&0u32.to_le_bytes());
        assert!(SignatureList::default().add_efi_lists(&tiny, "db").is_err());
    }

    #[test]
    fn entries_are_capped() {
        let many: Vec<[u8; 32]> = vec![[1u8; 32]; MAX_ENTRIES + 1];
        let refs: Vec<&[u8]> = many.iter().map(|h| &h[..]).collect();
        let e = SignatureList::default()
            .add_efi_lists(&list(CERT_SHA256, &refs, 48), "dbx")
            .unwrap_err();
        assert!(e.contains("more than"), "{e}");
    }

    #[test]
    fn garbage_is_rejected_not_a_panic() {
        assert!(matches!(decide(b"MZ", &[], &[]), Verdict::Rejected(_)));
        assert!(matches!(shim_vendor_lists(Some(&[1, 2, 3])), Some(Err(_))));
    }

    #[test]
    fn lists_are_written_as_they_are_read() {
        let mut l = SignatureList::default();
        let data = list(CERT_SHA256, &[&[7u8; 32], &[9u8; 32]], 48);
        l.add_efi_lists(&data, "dbx").unwrap();
        assert_eq!(l.to_efi_lists([0; 16]).unwrap(), data);
        assert!(SignatureList::default()
            .to_efi_lists([0; 16])
            .unwrap()
            .is_empty());
    }
}
