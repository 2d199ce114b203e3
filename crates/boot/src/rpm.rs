//! RPM kernel packages (`kernel-core-….rpm`, Amazon Linux's and Oracle
//! UEK's `kernel-….rpm`), streamed: the 96-byte lead, the signature
//! header (padded to 8 bytes), the main header (for the payload's format
//! and compressor), then the payload, a cpio (`newc`) archive compressed
//! with gzip, xz or zstd, whose regular files are handed to the same
//! visitor `.deb` packages use.
//!
//! Why our own reader: the `rpm` crate reads a package's headers into
//! owned structures sized by the header's own counts and exposes the
//! payload only after reading the whole file; a kernel package must
//! instead stream through the same limits as `.deb` ([`MAX_ENTRIES`],
//! [`MAX_UNPACKED`]), with header sizes capped before anything is
//! allocated.

use crate::package::{clean_path, PackageError, MAX_ENTRIES, MAX_UNPACKED};
use bootproof_image::read_up_to;
use std::io::{self, Read};
use std::path::Path;

/// The lead's magic.
pub const RPM_MAGIC: [u8; 4] = [0xed, 0xab, 0xee, 0xdb];
const HEADER_MAGIC: [u8; 4] = [0x8e, 0xad, 0xe8, 0x01];
/// Largest header store read (a kernel-modules package's is under 2 MiB).
const MAX_STORE: u32 = 64 << 20;
/// Most index entries in one header.
const MAX_INDEX: u32 = 1 << 16;
const TAG_PAYLOADFORMAT: u32 = 1124;
const TAG_PAYLOADCOMPRESSOR: u32 = 1125;
/// Longest file name in the payload.
const MAX_NAME: u64 = 4096;

/// One header: (tag, type, offset, count) entries and the store.
struct Header {
    index: Vec<[u32; 4]>,
    store: Vec<u8>,
}

impl Header {
    fn read(
        r: &mut dyn Read,
        corrupt: &dyn Fn(String) -> PackageError,
    ) -> Result<Header, PackageError> {
        let mut intro = [0u8; 16];
        if read_up_to(r, &mut intro).map_err(|e| corrupt(e.to_string()))? != 16
            || intro[..4] != HEADER_MAGIC
        {
            return Err(corrupt("no RPM header structure where one belongs".into()));
        }
        let be = |b: &[u8]| u32::from_be_bytes(b.try_into().expect("4 bytes"));
        let (count, size) = (be(&intro[8..12]), be(&intro[12..16]));
        if count > MAX_INDEX || size > MAX_STORE {
            return Err(corrupt(format!(
                "a header of {count} entries and {size} bytes"
            )));
        }
        let mut raw = vec![0u8; count as usize * 16];
        let mut store = vec![0u8; size as usize];
        for buf in [&mut raw, &mut store] {
            if read_up_to(r, buf).map_err(|e| corrupt(e.to_string()))? != buf.len() {
                return Err(corrupt("truncated in a header".into()));
            }
        }
        let index = raw
            .chunks_exact(16)
            .map(|e| [be(&e[0..4]), be(&e[4..8]), be(&e[8..12]), be(&e[12..16])])
            .collect();
        Ok(Header { index, store })
    }

    /// A STRING tag's value.
    fn string(&self, tag: u32) -> Option<String> {
        let [_, kind, offset, _] = *self.index.iter().find(|e| e[0] == tag)?;
        let rest = self.store.get(offset as usize..).filter(|_| kind == 6)?;
        let end = rest.iter().position(|b| *b == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    }
}

/// Streams the regular files of an RPM's payload to `visit` as (clean
/// relative path, contents), with the limits `.deb` packages have. `name`
/// is for messages.
pub fn walk_rpm(
    rpm: impl Read,
    name: &Path,
    visit: &mut dyn FnMut(&Path, &mut dyn Read) -> io::Result<()>,
) -> Result<(), PackageError> {
    let corrupt = |what: String| PackageError::Corrupt(format!("{}: {what}", name.display()));
    let mut rpm = io::BufReader::new(rpm);
    let mut lead = [0u8; 96];
    if read_up_to(&mut rpm, &mut lead).map_err(|e| corrupt(e.to_string()))? != 96
        || lead[..4] != RPM_MAGIC
    {
        return Err(corrupt("not an RPM package (no lead)".into()));
    }
    let signature = Header::read(&mut rpm, &corrupt)?;
    // The signature header is padded to a multiple of 8 bytes.
    let pad = (8 - signature.store.len() % 8) % 8;
    let mut skip = [0u8; 8];
    if read_up_to(&mut rpm, &mut skip[..pad]).map_err(|e| corrupt(e.to_string()))? != pad {
        return Err(corrupt("truncated after the signature".into()));
    }
    let header = Header::read(&mut rpm, &corrupt)?;
    match header.string(TAG_PAYLOADFORMAT).as_deref() {
        None | Some("cpio") => {}
        Some(other) => {
            return Err(PackageError::Unsupported(format!(
                "{}: a {other} payload (only cpio is read)",
                name.display()
            )))
        }
    }
    let compressor = header
        .string(TAG_PAYLOADCOMPRESSOR)
        .unwrap_or_else(|| "gzip".into());
    let payload: Box<dyn Read + '_> = match compressor.as_str() {
        "gzip" => Box::new(flate2::read::MultiGzDecoder::new(rpm)),
        "xz" | "lzma" => Box::new(liblzma::read::XzDecoder::new_stream(
            rpm,
            if compressor == "xz" {
                liblzma::stream::Stream::new_stream_decoder(
                    crate::decompress::LZMA_MEMLIMIT,
                    liblzma::stream::CONCATENATED,
                )
            } else {
                liblzma::stream::Stream::new_lzma_decoder(crate::decompress::LZMA_MEMLIMIT)
            }
            .map_err(|e| corrupt(format!("{compressor}: {e}")))?,
        )),
        "zstd" => Box::new(
            zstd::stream::read::Decoder::new(rpm).map_err(|e| corrupt(format!("zstd: {e}")))?,
        ),
        other => {
            return Err(PackageError::Unsupported(format!(
                "{}: a {other}-compressed payload (gzip, xz and zstd are read)",
                name.display()
            )))
        }
    };
    walk_cpio(payload, &corrupt, visit)
}

fn hex_field(h: &[u8], i: usize) -> Option<u64> {
    let field = std::str::from_utf8(&h[6 + i * 8..14 + i * 8]).ok()?;
    u64::from_str_radix(field, 16).ok()
}

/// Skips `n` bytes of `r`; false when it ends first.
fn skip(r: &mut dyn Read, n: u64) -> io::Result<bool> {
    Ok(io::copy(&mut r.take(n), &mut io::sink())? == n)
}

/// A `newc` cpio stream (`070701`/`070702` headers, names and data padded
/// to 4 bytes) up to its `TRAILER!!!`.
fn walk_cpio(
    mut r: Box<dyn Read + '_>,
    corrupt: &dyn Fn(String) -> PackageError,
    visit: &mut dyn FnMut(&Path, &mut dyn Read) -> io::Result<()>,
) -> Result<(), PackageError> {
    let (mut entries, mut bytes, mut at) = (0u64, 0u64, 0u64);
    let io_err = |e: io::Error| corrupt(format!("payload: {e}"));
    loop {
        let mut h = [0u8; 110];
        if read_up_to(&mut r, &mut h).map_err(io_err)? != 110 {
            return Err(corrupt("payload: truncated before its trailer".into()));
        }
        if &h[..6] != b"070701" && &h[..6] != b"070702" {
            return Err(corrupt(format!("payload: no cpio header at byte {at}")));
        }
        let field = |i| {
            hex_field(&h, i)
                .ok_or_else(|| corrupt(format!("payload: a bad cpio header at byte {at}")))
        };
        let (mode, size, namesize) = (field(1)?, field(6)?, field(11)?);
        if namesize == 0 || namesize > MAX_NAME {
            return Err(corrupt(format!("payload: a name of {namesize} bytes")));
        }
        let mut raw = vec![0u8; namesize as usize];
        if read_up_to(&mut r, &mut raw).map_err(io_err)? != raw.len() {
            return Err(corrupt("payload: truncated in a name".into()));
        }
        let pad = |n: u64| (4 - n % 4) % 4;
        if !skip(&mut r, pad(110 + namesize)).map_err(io_err)? {
            return Err(corrupt("payload: truncated".into()));
        }
        let name = String::from_utf8_lossy(&raw[..raw.len() - 1]).into_owned();
        if name == "TRAILER!!!" {
            return Ok(());
        }
        entries += 1;
        bytes = bytes.saturating_add(size);
        if entries > MAX_ENTRIES || bytes > MAX_UNPACKED {
            return Err(corrupt(format!(
                "payload: more than {MAX_ENTRIES} entries or {} GiB",
                MAX_UNPACKED >> 30
            )));
        }
        let mut data = (&mut r).take(size);
        let regular = mode & 0o170000 == 0o100000;
        if let (true, Some(rel)) = (regular, clean_path(Path::new(&name))) {
            visit(&rel, &mut data).map_err(|e| corrupt(format!("{name}: {e}")))?;
        }
        // Whatever the visitor left, then the padding.
        io::copy(&mut data, &mut io::sink()).map_err(io_err)?;
        if !skip(&mut r, pad(size)).map_err(io_err)? {
            return Err(corrupt("payload: truncated".into()));
        }
        at += 110 + namesize + size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newc(name: &str, mode: u32, data: &[u8]) -> Vec<u8> {
        let mut v =
            format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            1, mode, 0, 0, 1, 0, data.len(), 0, 0, 0, 0, name.len() + 1, 0
        )
            .into_bytes();
        v.extend_from_slice(name.as_bytes());
        v.push(0);
        v.resize(v.len().div_ceil(4) * 4, 0);
        v.extend_from_slice(data);
        v.resize(v.len().div_ceil(4) * 4, 0);
        v
    }

    fn header(entries: &[(u32, &str)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut store = Vec::new();
        for (tag, value) in entries {
            for x in [*tag, 6, store.len() as u32, 1] {
                index.extend_from_slice(&x.to_be_bytes());
            }
            store.extend_from_slice(value.as_bytes());
            store.push(0);
        }
        let mut v = HEADER_MAGIC.to_vec();
        v.extend_from_slice(&[0; 4]);
        v.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        v.extend_from_slice(&(store.len() as u32).to_be_bytes());
        v.extend(index);
        v.extend(store);
        v
    }

    /// A package with a 3-byte signature store (so 5 bytes of padding).
    fn package(compressor: &str, payload: &[u8]) -> Vec<u8> {
        let mut v = RPM_MAGIC.to_vec();
        v.resize(96, 0);
        let sig = header(&[(1000, "ab")]);
        v.extend_from_slice(&sig);
        v.resize(v.len() + 5, 0);
        v.extend(header(&[
            (TAG_PAYLOADFORMAT, "cpio"),
            (TAG_PAYLOADCOMPRESSOR, compressor),
        ]));
        v.extend_from_slice(payload);
        v
    }

    fn cpio() -> Vec<u8> {
        let mut c = newc(
            "./lib/modules/6.1.0-test/vmlinuz",
            0o100644,
            b"kernel bytes",
        );
        c.extend(newc("./lib/modules", 0o040755, b""));
        c.extend(newc("./lib/modules/link", 0o120777, b"vmlinuz"));
        c.extend(newc("../escape", 0o100644, b"no"));
        c.extend(newc("TRAILER!!!", 0, b""));
        c
    }

    fn files(rpm: &[u8]) -> Result<Vec<(String, Vec<u8>)>, PackageError> {
        let mut out = Vec::new();
        walk_rpm(rpm, Path::new("t.rpm"), &mut |p, r| {
            let mut d = Vec::new();
            r.read_to_end(&mut d)?;
            out.push((p.display().to_string(), d));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn regular_files_of_each_compression_are_visited() {
        let payloads = [
            ("gzip", {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                io::Write::write_all(&mut e, &cpio()).unwrap();
                e.finish().unwrap()
            }),
            ("zstd", zstd::encode_all(&cpio()[..], 1).unwrap()),
        ];
        for (kind, p) in payloads {
            let got = files(&package(kind, &p)).unwrap();
            assert_eq!(
                got,
                [(
                    "lib/modules/6.1.0-test/vmlinuz".to_string(),
                    b"kernel bytes".to_vec()
                )],
                "{kind}: links, directories and escaping paths are skipped"
            );
        }
    }

    #[test]
    fn hostile_packages_are_errors() {
        let gz = |c: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            io::Write::write_all(&mut e, c).unwrap();
            e.finish().unwrap()
        };
        let ok = package("gzip", &gz(&cpio()));
        // A header claiming a huge store is refused before allocating it.
        let mut huge = ok.clone();
        huge[96 + 12..96 + 16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(files(&huge).is_err());
        // Truncated anywhere; not an RPM; an unknown compressor.
        for cut in [50, 100, 130, ok.len() - 20] {
            assert!(files(&ok[..cut]).is_err(), "cut at {cut}");
        }
        assert!(files(b"!<arch>\n").is_err());
        assert!(matches!(
            files(&package("bzip3", &[])),
            Err(PackageError::Unsupported(_))
        ));
        // A cpio name longer than PATH_MAX; no trailer.
        let mut bad = newc("x", 0o100644, b"");
        bad[6 + 11 * 8..6 + 12 * 8].copy_from_slice(b"00100000");
        assert!(files(&package("gzip", &gz(&bad))).is_err());
        assert!(files(&package("gzip", &gz(&newc("a", 0o100644, b"x")))).is_err());
    }
}
