//! Reading an EDK2 variable store (the pflash NVRAM of OVMF/AAVMF) on the
//! host: firmware volume header, variable store header, then the
//! variables, normal or authenticated. Written from the EDK2 definitions
//! (`MdePkg/Include/Pi/PiFirmwareVolume.h`,
//! `MdeModulePkg/Include/Guid/VariableFormat.h`); no crate reads it. The
//! file is untrusted: every offset is checked and the walk is bounded.

use serde::Serialize;

/// `gEfiVariableGuid`.
const VARIABLE_GUID: [u8; 16] = guid(
    0xddcf3616,
    0x3275,
    0x4164,
    [0x98, 0xb6, 0xfe, 0x85, 0x70, 0x7f, 0xfe, 0x7d],
);
/// `gEfiAuthenticatedVariableGuid`.
const AUTH_VARIABLE_GUID: [u8; 16] = guid(
    0xaaf32c78,
    0x947b,
    0x439a,
    [0xa1, 0x80, 0x2e, 0x14, 0x4e, 0xc3, 0x77, 0x92],
);
const START_ID: u16 = 0x55aa;
/// `VAR_ADDED`.
const VAR_ADDED: u8 = 0x3f;
/// `VAR_ADDED & VAR_IN_DELETED_TRANSITION`: still the live copy.
const VAR_ADDED_TRANSITION: u8 = 0x3e;
/// Most variables listed.
const MAX_VARIABLES: usize = 10_000;

const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// Formats a GUID stored in EFI byte order.
pub fn format_guid(g: &[u8; 16]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        u16::from_le_bytes([g[4], g[5]]),
        u16::from_le_bytes([g[6], g[7]]),
        g[8],
        g[9],
        g[10],
        g[11],
        g[12],
        g[13],
        g[14],
        g[15]
    )
}

/// One live variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Variable {
    /// Name (UTF-16 decoded).
    pub name: String,
    /// Vendor GUID.
    pub guid: String,
    /// Attributes (NV = 1, BS = 2, RT = 4, …).
    pub attributes: u32,
    /// The value.
    #[serde(skip)]
    pub data: Vec<u8>,
    /// Its size.
    pub size: usize,
}

/// Why a store could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NvramError {
    /// No firmware volume: the store was never formatted (a fresh AAVMF
    /// template is all zeros until the firmware's first boot).
    #[error("no firmware volume header (_FVH): the variable store is not formatted")]
    Unformatted,
    /// A structure is inconsistent.
    #[error("corrupt variable store: {0}")]
    Corrupt(String),
    /// The store cannot take what was to be written.
    #[error("cannot write the variable store: {0}")]
    Unwritable(String),
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn corrupt(s: impl Into<String>) -> NvramError {
    NvramError::Corrupt(s.into())
}

/// Where the variables of a store are, and each record found there.
struct Layout {
    /// Authenticated-variable headers (60 bytes) or plain ones (32).
    auth: bool,
    /// First byte after the variable store header.
    first: usize,
    /// End of the variable store.
    end: usize,
    /// The records, live or not, in store order.
    records: Vec<Record>,
}

/// One variable record as stored.
struct Record {
    /// Its bytes (header, name, data), without the alignment after it.
    bytes: std::ops::Range<usize>,
    /// `VAR_ADDED` or `VAR_ADDED & VAR_IN_DELETED_TRANSITION`.
    live: bool,
    /// What it holds.
    variable: Variable,
}

fn layout(store: &[u8]) -> Result<Layout, NvramError> {
    if store.get(40..44) != Some(b"_FVH") {
        return Err(NvramError::Unformatted);
    }
    let header_len = usize::from(u16_at(store, 48).ok_or_else(|| corrupt("short FV header"))?);
    let vs = store
        .get(
            header_len
                ..header_len
                    .checked_add(28)
                    .ok_or_else(|| corrupt("FV header length"))?,
        )
        .ok_or_else(|| corrupt("variable store header past the end"))?;
    let auth = match &vs[..16] {
        g if g == AUTH_VARIABLE_GUID => true,
        g if g == VARIABLE_GUID => false,
        g => {
            let g: [u8; 16] = g.try_into().unwrap_or([0; 16]);
            return Err(corrupt(format!(
                "unknown variable store GUID {}",
                format_guid(&g)
            )));
        }
    };
    let size = u32_at(vs, 16).unwrap_or(0) as usize;
    let end = header_len
        .checked_add(size)
        .filter(|&e| e <= store.len())
        .ok_or_else(|| corrupt(format!("store size {size} past the end of the file")))?;
    let head = if auth { 60 } else { 32 };
    let first = header_len + 28;
    if end < first {
        // (The fuzzer's find: the writer computed the room as end - first.)
        return Err(corrupt(format!(
            "store size {size} is smaller than its own 28-byte header"
        )));
    }
    let mut at = first;
    let mut records = Vec::new();
    while at.checked_add(head).is_some_and(|h| h <= end) && records.len() < MAX_VARIABLES {
        if u16_at(store, at) != Some(START_ID) {
            break;
        }
        let state = store[at + 2];
        let attributes = u32_at(store, at + 4).unwrap_or(0);
        let (name_size, data_size, guid_at) = if auth {
            (u32_at(store, at + 36), u32_at(store, at + 40), at + 44)
        } else {
            (u32_at(store, at + 8), u32_at(store, at + 12), at + 16)
        };
        let (name_size, data_size) = (
            name_size.unwrap_or(0) as usize,
            data_size.unwrap_or(0) as usize,
        );
        let name_at = at + head;
        let data_at = name_at
            .checked_add(name_size)
            .ok_or_else(|| corrupt("name size"))?;
        let next = data_at
            .checked_add(data_size)
            .filter(|&n| n <= end)
            .ok_or_else(|| corrupt(format!("variable at {at} runs past the store")))?;
        let live = state == VAR_ADDED || state == VAR_ADDED_TRANSITION;
        // Deleted records keep their place but not their contents.
        let units: Vec<u16> = store[name_at..data_at]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&c| c != 0)
            .collect();
        let mut g = [0u8; 16];
        g.copy_from_slice(&store[guid_at..guid_at + 16]);
        records.push(Record {
            bytes: at..next,
            live,
            variable: Variable {
                name: String::from_utf16_lossy(&units),
                guid: format_guid(&g),
                attributes,
                data: if live {
                    store[data_at..next].to_vec()
                } else {
                    Vec::new()
                },
                size: data_size,
            },
        });
        at = next.next_multiple_of(4);
    }
    Ok(Layout {
        auth,
        first,
        end,
        records,
    })
}

/// Lists the live variables of a store.
pub fn variables(store: &[u8]) -> Result<Vec<Variable>, NvramError> {
    Ok(layout(store)?
        .records
        .into_iter()
        .filter(|r| r.live)
        .map(|r| r.variable)
        .collect())
}

/// A variable to write into an authenticated store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVariable {
    /// Name.
    pub name: String,
    /// Vendor GUID, in EFI byte order ([`parse_guid`]).
    pub guid: [u8; 16],
    /// Attributes (db, dbx, KEK, PK: 0x27, time-based authenticated).
    pub attributes: u32,
    /// The value as stored (for db and dbx: EFI_SIGNATURE_LISTs, without
    /// the authentication descriptor a SetVariable call would carry).
    pub data: Vec<u8>,
}

/// `EFI_TIME` 2010-01-01 00:00:00, the timestamp `virt-fw-vars` gives a
/// list it writes from scratch: early, so that any authenticated update the
/// guest applies later is newer.
const INITIAL_TIMESTAMP: [u8; 16] = [0xda, 0x07, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// `store` with its variables rewritten: the live ones `keep` accepts, in
/// their order, then `add`; deleted records are dropped and the free space
/// erased (0xFF), as the firmware's reclaim would leave it. Every byte
/// outside the variable region (the firmware volume header, the store
/// header, the fault-tolerant-write area) stays as it was. Only
/// authenticated stores (what Secure Boot firmware uses) are written.
pub fn rewrite(
    store: &[u8],
    keep: impl Fn(&Variable) -> bool,
    add: &[NewVariable],
) -> Result<Vec<u8>, NvramError> {
    let layout = layout(store)?;
    if !layout.auth {
        return Err(NvramError::Unwritable(
            "not an authenticated-variable store (firmware built without Secure Boot)".into(),
        ));
    }
    let mut region = Vec::new();
    for r in layout
        .records
        .iter()
        .filter(|r| r.live && keep(&r.variable))
    {
        region.extend_from_slice(&store[r.bytes.clone()]);
        region.resize(region.len().next_multiple_of(4), 0xff);
    }
    for v in add {
        let name: Vec<u8> = v
            .name
            .encode_utf16()
            .chain([0])
            .flat_map(u16::to_le_bytes)
            .collect();
        let sizes = u32::try_from(name.len())
            .ok()
            .zip(u32::try_from(v.data.len()).ok());
        let Some((name_size, data_size)) = sizes else {
            return Err(NvramError::Unwritable(format!("{} is too large", v.name)));
        };
        region.extend_from_slice(&START_ID.to_le_bytes());
        region.extend_from_slice(&[VAR_ADDED, 0]);
        region.extend_from_slice(&v.attributes.to_le_bytes());
        region.extend_from_slice(&0u64.to_le_bytes()); // MonotonicCount
        region.extend_from_slice(&INITIAL_TIMESTAMP);
        region.extend_from_slice(&0u32.to_le_bytes()); // PubKeyIndex
        region.extend_from_slice(&name_size.to_le_bytes());
        region.extend_from_slice(&data_size.to_le_bytes());
        region.extend_from_slice(&v.guid);
        region.extend_from_slice(&name);
        region.extend_from_slice(&v.data);
        region.resize(region.len().next_multiple_of(4), 0xff);
    }
    let room = layout.end - layout.first;
    if region.len() > room {
        return Err(NvramError::Unwritable(format!(
            "the variables need {} bytes, the store holds {room}",
            region.len()
        )));
    }
    region.resize(room, 0xff);
    let mut out = store.to_vec();
    out[layout.first..layout.end].copy_from_slice(&region);
    Ok(out)
}

/// A GUID in its text form (`d719b2cb-3d3a-4596-a3bc-dad00e67656f`), in
/// EFI byte order; `None` when `text` is not one.
pub fn parse_guid(text: &str) -> Option<[u8; 16]> {
    let parts: Vec<&str> = text.split('-').collect();
    let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    if lens != [8, 4, 4, 4, 12] || !text.chars().all(|c| c == '-' || c.is_ascii_hexdigit()) {
        return None;
    }
    let a = u32::from_str_radix(parts[0], 16).ok()?;
    let b = u16::from_str_radix(parts[1], 16).ok()?;
    let c = u16::from_str_radix(parts[2], 16).ok()?;
    let tail = format!("{}{}", parts[3], parts[4]);
    let mut d = [0u8; 8];
    for (i, byte) in d.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&tail[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(guid(a, b, c, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(vars: &[(&str, [u8; 16], u8, &[u8])]) -> Vec<u8> {
        let mut s = vec![0u8; 0x48];
        s[40..44].copy_from_slice(b"_FVH");
        s[48..50].copy_from_slice(&0x48u16.to_le_bytes());
        let mut body = Vec::new();
        for (name, g, state, data) in vars {
            let name16: Vec<u8> = name
                .encode_utf16()
                .chain([0])
                .flat_map(|c| c.to_le_bytes())
                .collect();
            let mut h = vec![0u8; 60];
            h[..2].copy_from_slice(&START_ID.to_le_bytes());
            h[2] = *state;
            h[4..8].copy_from_slice(&7u32.to_le_bytes());
            h[36..40].copy_from_slice(&(name16.len() as u32).to_le_bytes());
            h[40..44].copy_from_slice(&(data.len() as u32).to_le_bytes());
            h[44..60].copy_from_slice(g);
            body.extend(h);
            body.extend(name16);
            body.extend_from_slice(data);
            while body.len() % 4 != 0 {
                body.push(0xff);
            }
        }
        let mut vs = AUTH_VARIABLE_GUID.to_vec();
        vs.extend(((28 + body.len() + 64) as u32).to_le_bytes());
        vs.extend([0x5a, 0xfe, 0, 0, 0, 0, 0, 0]);
        s.extend(vs);
        s.extend(body);
        s.extend(vec![0xffu8; 64]);
        s
    }

    #[test]
    fn live_variables_are_listed_deleted_ones_not() {
        let g = guid(
            0xb0075eed,
            0x6b2a,
            0x4c1e,
            [0x9f, 0x3d, 0x2e, 0x7a, 0x5c, 0x4b, 0x1d, 0x90],
        );
        let s = store(&[
            ("Old", g, 0x3c, b"x"),
            ("BootproofPersist", g, VAR_ADDED, b"hello"),
        ]);
        let v = variables(&s).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].name, "BootproofPersist");
        assert_eq!(v[0].guid, "b0075eed-6b2a-4c1e-9f3d-2e7a5c4b1d90");
        assert_eq!(v[0].data, b"hello");
        assert_eq!(variables(&vec![0u8; 4096]), Err(NvramError::Unformatted));
    }

    #[test]
    fn hostile_stores_are_errors_not_panics() {
        let g = [1u8; 16];
        let good = store(&[("A", g, VAR_ADDED, b"1234")]);
        for cut in 0..good.len() {
            let _ = variables(&good[..cut]);
        }
        for i in 0..good.len() {
            for b in [0x00, 0xff, 0x80] {
                let mut s = good.clone();
                s[i] = b;
                let _ = variables(&s);
            }
        }
    }

    #[test]
    fn rewritten_stores_read_back_and_keep_everything_outside_the_variables() {
        let g = parse_guid("b0075eed-6b2a-4c1e-9f3d-2e7a5c4b1d90").unwrap();
        assert_eq!(format_guid(&g), "b0075eed-6b2a-4c1e-9f3d-2e7a5c4b1d90");
        assert_eq!(parse_guid("b0075eed-6b2a-4c1e-9f3d-2e7a5c4b1d9"), None);
        assert_eq!(parse_guid("b0075eed-6b2a-4c1e-9f3d-2e7a5c4b1d9+"), None);
        let s = store(&[
            ("Old", g, 0x3c, b"x"),
            ("Keep", g, VAR_ADDED, b"kept"),
            ("db", g, VAR_ADDED, b"old db"),
        ]);
        let new = NewVariable {
            name: "db".into(),
            guid: g,
            attributes: 0x27,
            data: b"new db".to_vec(),
        };
        let out = rewrite(&s, |v| v.name != "db", std::slice::from_ref(&new)).unwrap();
        assert_eq!(out.len(), s.len());
        assert_eq!(out[..0x48 + 28], s[..0x48 + 28]);
        let v = variables(&out).unwrap();
        let names: Vec<(&str, &[u8], u32)> = v
            .iter()
            .map(|v| (v.name.as_str(), v.data.as_slice(), v.attributes))
            .collect();
        assert_eq!(
            names,
            [("Keep", &b"kept"[..], 7), ("db", &b"new db"[..], 0x27)]
        );
        // A store whose declared size does not cover its header is corrupt
        // (the fuzzer's find: the writer's room underflowed).
        let mut tiny = s.clone();
        tiny[0x48 + 16..0x48 + 20].copy_from_slice(&8u32.to_le_bytes());
        assert!(matches!(variables(&tiny), Err(NvramError::Corrupt(_))));
        assert!(rewrite(&tiny, |_| true, &[]).is_err());
        // What does not fit is an error, not a truncated store.
        let huge = NewVariable {
            data: vec![0; s.len()],
            ..new
        };
        assert!(matches!(
            rewrite(&s, |_| true, &[huge]),
            Err(NvramError::Unwritable(_))
        ));
    }
}
