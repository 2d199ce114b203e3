//! GUIDs as stored on disk (mixed-endian) and as people write them.

use serde::{Serialize, Serializer};
use std::fmt;

/// A GUID in on-disk byte order (first three fields little-endian).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Parses `C12A7328-F81F-11D2-BA4B-00A0C93EC93B` (any case).
    pub const fn from_str_const(s: &str) -> Guid {
        let b = s.as_bytes();
        let mut raw = [0u8; 16];
        let mut i = 0;
        let mut n = 0;
        while i < b.len() {
            if b[i] != b'-' {
                let hi = hex(b[i]);
                let lo = hex(b[i + 1]);
                raw[n] = hi << 4 | lo;
                n += 1;
                i += 2;
            } else {
                i += 1;
            }
        }
        // Text is big-endian per field; disk order swaps the first three.
        Guid([
            raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6], raw[8], raw[9],
            raw[10], raw[11], raw[12], raw[13], raw[14], raw[15],
        ])
    }

    /// Parses a GUID typed by a user; `None` when malformed.
    pub fn parse(s: &str) -> Option<Guid> {
        let hexdigits: Vec<u8> = s.bytes().filter(|&c| c != b'-').collect();
        if hexdigits.len() != 32 || !hexdigits.iter().all(u8::is_ascii_hexdigit) || s.len() != 36 {
            return None;
        }
        Some(Guid::from_str_const(s))
    }

    /// Whether all bytes are zero (an unused GPT slot).
    pub fn is_nil(&self) -> bool {
        self.0 == [0; 16]
    }
}

const fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
        )
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Guid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A GUID is its upper-case text form in documents.
impl schemars::JsonSchema for Guid {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Guid".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trips_text_form() {
        let g = Guid::from_str_const("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(g.0[0], 0x28, "first field is little-endian on disk");
        assert_eq!(g.to_string(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(Guid::parse("c12a7328-f81f-11d2-ba4b-00a0c93ec93b"), Some(g));
        assert_eq!(Guid::parse("c12a7328f81f11d2ba4b00a0c93ec93b"), None);
        assert_eq!(Guid::parse("zz2a7328-f81f-11d2-ba4b-00a0c93ec93b"), None);
    }
}
