//! SBAT (Secure Boot Advanced Targeting), decided as shim decides it
//! (rhboot/shim `sbat.c`, `verify.c`): the firmware's `SbatLevel` variable
//! and shim's built-in levels (its `.sbatlevel` section) give the level in
//! force; a binary whose `.sbat` names a component at a generation below
//! that level's is revoked. shim checks itself, the loader it starts (which
//! must carry `.sbat`) and what its protocol verifies (where `.sbat` is
//! optional).
//!
//! Written here: no crate reads SBAT. Input is untrusted and bounded (lines,
//! fields, offsets checked).

use crate::pe::PeInfo;
use crate::signing::{sbat_entries, SbatEntry};

/// Revocation lines read from a level, at most (real ones have under 20).
const MAX_LEVEL_LINES: usize = 1024;
/// A level's text, at most (shim's are under 200 bytes).
const MAX_LEVEL_BYTES: usize = 64 << 10;

/// An SbatLevel: its header (`sbat,<version>,<datestamp>`) and, per
/// component, the lowest generation still allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SbatLevel {
    /// The metadata version (`1`).
    pub version: String,
    /// The datestamp (`2024010900`): a newer level replaces an older one.
    pub datestamp: String,
    /// Component name and minimum generation, in the level's order (the
    /// `sbat` line itself first, as shim lists it).
    pub revocations: Vec<(String, u32)>,
    /// Where it came from (`SbatLevel variable`, `shim's automatic level`).
    pub source: String,
}

impl SbatLevel {
    /// Parses a level's CSV text (as in the `SbatLevel` variable).
    pub fn parse(text: &[u8], source: &str) -> Result<SbatLevel, String> {
        let bad = |what: &str| format!("{source}: {what}");
        if text.len() > MAX_LEVEL_BYTES {
            return Err(bad(&format!("over {MAX_LEVEL_BYTES} bytes")));
        }
        let text = String::from_utf8_lossy(text);
        let mut lines = text
            .split('\n')
            .map(|l| l.trim_matches(|c: char| c == '\r' || c == '\0'))
            .filter(|l| !l.is_empty());
        let head: Vec<&str> = lines
            .next()
            .ok_or_else(|| bad("empty"))?
            .split(',')
            .collect();
        let (version, datestamp) = match head.as_slice() {
            ["sbat", v, d, ..] if !v.is_empty() && !d.is_empty() => (v.to_string(), d.to_string()),
            _ => return Err(bad("does not start with `sbat,<version>,<datestamp>`")),
        };
        let mut revocations = vec![("sbat".to_string(), atoi(&version))];
        for line in lines {
            if revocations.len() >= MAX_LEVEL_LINES {
                return Err(bad(&format!("over {MAX_LEVEL_LINES} lines")));
            }
            let mut fields = line.split(',');
            match (fields.next(), fields.next()) {
                (Some(name), Some(generation)) if !name.is_empty() && !generation.is_empty() => {
                    revocations.push((name.to_string(), atoi(generation)));
                }
                _ => return Err(bad(&format!("line `{line}` is not `component,generation`"))),
            }
        }
        Ok(SbatLevel {
            version,
            datestamp,
            revocations,
            source: source.to_string(),
        })
    }

    /// Whether this level is at least as new as `other`, as shim judges
    /// when it keeps the firmware's variable (`preserve_sbat_uefi_variable`):
    /// a higher version, else a datestamp not older.
    pub fn at_least(&self, other: &SbatLevel) -> bool {
        let (a, b) = (&self.version, &other.version);
        if a.len() > b.len() || (a.len() == b.len() && a > b) {
            return true;
        }
        let date = |l: &SbatLevel| l.datestamp.bytes().take(10).collect::<Vec<u8>>();
        date(self) >= date(other)
    }
}

/// shim's `atoi`: the leading digits, 0 when there are none.
fn atoi(s: &str) -> u32 {
    s.trim_start()
        .bytes()
        .take_while(u8::is_ascii_digit)
        .try_fold(0u32, |n, d| {
            n.checked_mul(10)?.checked_add(u32::from(d - b'0'))
        })
        .unwrap_or(u32::MAX)
}

/// shim's built-in levels from its `.sbatlevel` section: (automatic,
/// latest). The section is a format version (0), then two offsets,
/// relative to the end of the version, of NUL-terminated levels.
pub fn shim_levels(section: &[u8]) -> Result<(SbatLevel, SbatLevel), String> {
    let u32_at = |o: usize| {
        section
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()) as usize)
    };
    let level = |offset: Option<usize>, name: &str| {
        let start = offset
            .and_then(|o| o.checked_add(4))
            .filter(|&s| s < section.len())
            .ok_or_else(|| {
                format!(".sbatlevel: the {name} level's offset is outside the section")
            })?;
        let rest = &section[start..];
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        SbatLevel::parse(&rest[..end], &format!("shim's {name} level"))
    };
    Ok((level(u32_at(4), "automatic")?, level(u32_at(8), "latest")?))
}

/// The level shim applies under Secure Boot with the default (automatic)
/// policy: the firmware's variable when it is at least as new as shim's
/// automatic level, else shim's (which it writes to the variable). `None`:
/// neither exists, nothing is revoked.
pub fn level_in_force(
    firmware: Option<&SbatLevel>,
    shim_automatic: Option<&SbatLevel>,
) -> Option<SbatLevel> {
    match (firmware, shim_automatic) {
        (Some(f), Some(s)) if f.at_least(s) => Some(f.clone()),
        (_, Some(s)) => Some(s.clone()),
        (Some(f), None) => Some(f.clone()),
        (None, None) => None,
    }
}

/// Checks a PE file's `.sbat` against `level` as shim does; `required`:
/// shim starts it itself (a missing `.sbat` is refused), rather than
/// verifying it for a loader through its protocol. Ok: what was compared.
pub fn verify(data: &[u8], level: &SbatLevel, required: bool) -> Result<String, String> {
    let entries = crate::pe::analyze(data)
        .and_then(|i: PeInfo| i.sbat)
        .map(|csv| sbat_entries(&csv))
        .unwrap_or_default();
    verify_entries(&entries, level, required)
}

/// [`verify`] on parsed `.sbat` entries.
pub fn verify_entries(
    entries: &[SbatEntry],
    level: &SbatLevel,
    required: bool,
) -> Result<String, String> {
    if entries.is_empty() {
        return match required {
            true => Err(format!(
                "no .sbat section, which shim requires of what it starts (SbatLevel {})",
                level.source
            )),
            false => Ok("no .sbat section (optional for what shim's protocol verifies)".into()),
        };
    }
    let mut compared = Vec::new();
    for e in entries {
        let have = e.generation.unwrap_or(0);
        let Some((_, need)) = level.revocations.iter().find(|(c, _)| *c == e.component) else {
            continue;
        };
        if have < *need {
            return Err(format!(
                "SBAT: {} generation {have} is revoked: the SbatLevel in force ({}, {}) requires {},{need}",
                e.component,
                level.source,
                level.datestamp,
                e.component
            ));
        }
        if e.component != "sbat" {
            compared.push(format!("{},{have} ≥ {need}", e.component));
        }
    }
    let what = match compared.is_empty() {
        true => "names no component the level lists".to_string(),
        false => compared.join(", "),
    };
    Ok(format!(
        "SBAT {what} under {} ({})",
        level.source, level.datestamp
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(text: &str) -> SbatLevel {
        SbatLevel::parse(text.as_bytes(), "test").unwrap()
    }

    fn entries(csv: &str) -> Vec<SbatEntry> {
        sbat_entries(csv)
    }

    #[test]
    fn levels_parse_as_shim_reads_them() {
        let l = level("sbat,1,2024010900\nshim,4\ngrub,3\ngrub.debian,4\n");
        assert_eq!(
            (l.version.as_str(), l.datestamp.as_str()),
            ("1", "2024010900")
        );
        assert_eq!(l.revocations[0], ("sbat".into(), 1));
        assert_eq!(l.revocations[3], ("grub.debian".into(), 4));
        assert_eq!(l.revocations.len(), 4);
        for bad in [
            "",
            "shim,4\n",
            "sbat,1\n",
            "sbat,1,2024\ngrub\n",
            "sbat,1,2024\n,3\n",
        ] {
            assert!(SbatLevel::parse(bad.as_bytes(), "t").is_err(), "{bad:?}");
        }
        let many = "sbat,1,1\n".to_string() + &"a,1\n".repeat(MAX_LEVEL_LINES);
        assert!(SbatLevel::parse(many.as_bytes(), "t")
            .unwrap_err()
            .contains("lines"));
        assert_eq!(atoi("12x"), 12);
        assert_eq!(atoi("x"), 0);
        assert_eq!(atoi("99999999999"), u32::MAX);
    }

    #[test]
    fn the_newer_level_is_in_force() {
        let old = level("sbat,1,2022052400\ngrub,2\n");
        let new = level("sbat,1,2024010900\ngrub,3\n");
        assert!(new.at_least(&old) && !old.at_least(&new) && new.at_least(&new));
        assert!(level("sbat,2,2000010100\n").at_least(&new));
        assert!(!level("sbat,1,2000010100\n").at_least(&level("sbat,10,2001010100\n")));
        // shim keeps a lower version with a newer datestamp.
        assert!(level("sbat,1,2030010100\n").at_least(&level("sbat,2,2000010100\n")));
        assert_eq!(level_in_force(Some(&old), Some(&new)), Some(new.clone()));
        assert_eq!(level_in_force(Some(&new), Some(&old)), Some(new.clone()));
        assert_eq!(level_in_force(Some(&old), None), Some(old));
        assert_eq!(level_in_force(None, None), None);
    }

    #[test]
    fn generations_below_the_level_are_revoked() {
        let l = level("sbat,1,2024010900\nshim,4\ngrub,3\n");
        let grub = entries("sbat,1,SBAT Version,sbat,1,url\ngrub,3,Free Software Foundation,grub,2.06,url\ngrub.debian,4,Debian,grub2,2.06-13,url\n");
        let ok = verify_entries(&grub, &l, true).unwrap();
        assert!(ok.contains("grub,3 ≥ 3"), "{ok}");
        let old = entries(
            "sbat,1,SBAT Version,sbat,1,url\ngrub,2,Free Software Foundation,grub,2.06,url\n",
        );
        let e = verify_entries(&old, &l, true).unwrap_err();
        assert!(
            e.contains("grub generation 2 is revoked") && e.contains("grub,3"),
            "{e}"
        );
        assert!(verify_entries(&[], &l, true)
            .unwrap_err()
            .contains("no .sbat"));
        assert!(verify_entries(&[], &l, false).is_ok());
    }

    #[test]
    fn shim_sections_give_two_levels() {
        let mut s = 0u32.to_le_bytes().to_vec();
        let a = b"sbat,1,2023012900\nshim,2\ngrub,3\n\0";
        let l = b"sbat,1,2024040900\nshim,4\ngrub,4\n\0";
        s.extend(8u32.to_le_bytes());
        s.extend((8 + a.len() as u32).to_le_bytes());
        s.extend(a);
        s.extend(l);
        let (auto, latest) = shim_levels(&s).unwrap();
        assert_eq!(auto.datestamp, "2023012900");
        assert_eq!(latest.revocations[1], ("shim".into(), 4));
        s[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(shim_levels(&s).is_err());
        assert!(shim_levels(&[0; 6]).is_err());
    }
}
