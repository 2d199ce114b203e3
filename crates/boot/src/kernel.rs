//! Linux kernel images: what format, which architecture and version, whether
//! there is an EFI stub, and the form a hypervisor's direct kernel boot loads
//! (arm64 and riscv64: the uncompressed `Image`; x86: the bzImage as is).

use crate::decompress::{Compression, DecompressError};
use bootproof_platform::Arch;
use serde::Serialize;
use std::io::{Read, Write};

/// Largest decompressed kernel accepted (real ones are 30–80 MiB).
pub const MAX_KERNEL: u64 = 256 << 20;

/// How the kernel file is packaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KernelFormat {
    /// arm64 `Image` (Debian's arm64 vmlinuz), usually with an EFI stub.
    Arm64Image,
    /// RISC-V `Image` (Debian's riscv64 vmlinux), usually with an EFI stub.
    RiscvImage,
    /// EFI zboot: a PE that decompresses an `Image` (Fedora/RHEL 9+ arm64).
    Zboot,
    /// An `Image` inside a compression wrapper (Ubuntu's gzip'd arm64 vmlinuz).
    Wrapped,
    /// x86 bzImage.
    BzImage,
    /// An ELF `vmlinux`.
    Elf,
}

/// What was learned about a kernel.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct KernelInfo {
    /// Packaging.
    pub format: KernelFormat,
    /// Compression of the payload (zboot or wrapper).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// `aarch64`, `x86_64` or `riscv64` (or `x86` for a 32-bit bzImage).
    pub arch: &'static str,
    /// The release (`uname -r`), from the banner or setup header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Whether firmware can run it directly (PE header present).
    pub efi_stub: bool,
    /// arm64: kernel page size from the Image header flags, when declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// Size of the loadable form in bytes.
    pub loadable_size: u64,
}

/// Why a file is not a usable kernel.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// No known kernel format.
    #[error(
        "not a recognised kernel image (no arm64 or RISC-V Image magic, bzImage header, zboot header or ELF)"
    )]
    Unknown,
    /// The payload does not decompress.
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    /// A header points outside the file.
    #[error("corrupt kernel image: {0}")]
    Corrupt(String),
    /// Reading the kernel or writing its loadable form failed.
    #[error("kernel data: {0}")]
    Io(#[from] std::io::Error),
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The release from `Linux version 6.1.0-13-arm64 (…)`.
pub fn banner_version(data: &[u8]) -> Option<String> {
    const NEEDLE: &[u8] = b"Linux version ";
    let at = data.windows(NEEDLE.len()).position(|w| w == NEEDLE)? + NEEDLE.len();
    let rest = &data[at..data.len().min(at + 128)];
    let end = rest
        .iter()
        .position(|&c| c == b' ' || c == 0 || c == b'\n')?;
    let v = std::str::from_utf8(&rest[..end]).ok()?;
    (!v.is_empty() && v.bytes().next().is_some_and(|c| c.is_ascii_digit())).then(|| v.to_string())
}

fn has_pe_header(data: &[u8]) -> bool {
    data.get(..2) == Some(b"MZ")
        && le32(data, 0x3c).and_then(|o| data.get(o as usize..o as usize + 4)) == Some(b"PE\0\0")
}

fn arm64(data: &[u8]) -> Option<KernelInfo> {
    if data.get(0x38..0x3c) != Some(b"ARM\x64") {
        return None;
    }
    // Header (Documentation/arch/arm64/booting.rst): code0, code1,
    // text_offset (0x08), image_size (0x10), flags (0x18), res2–res4,
    // magic (0x38), PE header offset (0x3c).
    let flags = le32(data, 0x18)?;
    Some(KernelInfo {
        format: KernelFormat::Arm64Image,
        compression: None,
        arch: Arch::Aarch64.name(),
        version: banner_version(data),
        efi_stub: has_pe_header(data),
        page_size: match (flags >> 1) & 3 {
            1 => Some(4096),
            2 => Some(16384),
            3 => Some(65536),
            _ => None,
        },
        loadable_size: data.len() as u64,
    })
}

fn riscv64(data: &[u8]) -> Option<KernelInfo> {
    // Header (Documentation/arch/riscv/boot-image-header.rst): code0,
    // code1, text_offset (0x08), image_size (0x10), flags (0x18), version
    // (0x20), res1, res2, magic "RISCV\0\0\0" (0x30, deprecated), magic2
    // "RSC\x05" (0x38), PE header offset (0x3c).
    if data.get(0x38..0x3c) != Some(b"RSC\x05") {
        return None;
    }
    Some(KernelInfo {
        format: KernelFormat::RiscvImage,
        compression: None,
        arch: Arch::Riscv64.name(),
        version: banner_version(data),
        efi_stub: has_pe_header(data),
        page_size: None,
        loadable_size: data.len() as u64,
    })
}

/// An arm64 or RISC-V `Image`: what zboot and compression wrappers hold.
fn image(data: &[u8]) -> Option<KernelInfo> {
    arm64(data).or_else(|| riscv64(data))
}

fn bzimage(data: &[u8]) -> Option<KernelInfo> {
    if data.get(0x202..0x206) != Some(b"HdrS") {
        return None;
    }
    let version = le16(data, 0x20e).and_then(|p| {
        let at = usize::from(p) + 0x200;
        let s = data.get(at..data.len().min(at + 128))?;
        let end = s.iter().position(|&c| c == b' ' || c == 0)?;
        String::from_utf8(s[..end].to_vec()).ok()
    });
    let xloadflags = le16(data, 0x236).unwrap_or(0);
    Some(KernelInfo {
        format: KernelFormat::BzImage,
        compression: None,
        arch: if xloadflags & 1 != 0 {
            Arch::X86_64.name()
        } else {
            "x86"
        },
        version,
        efi_stub: has_pe_header(data),
        page_size: None,
        loadable_size: data.len() as u64,
    })
}

fn elf(data: &[u8]) -> Option<KernelInfo> {
    if data.get(..4) != Some(b"\x7fELF") {
        return None;
    }
    let machine = le16(data, 18)?;
    Some(KernelInfo {
        format: KernelFormat::Elf,
        compression: None,
        arch: Arch::from_elf_machine(machine).map_or("unknown", Arch::name),
        version: banner_version(data),
        efi_stub: false,
        page_size: None,
        loadable_size: data.len() as u64,
    })
}

/// Identifies a kernel and returns it in loadable form: zboot payloads and
/// compression wrappers are decompressed (up to [`MAX_KERNEL`] bytes), other
/// formats are returned as they are. [`load_stream`] into memory: callers
/// that need only the facts, or write the kernel out, stream instead.
pub fn load(data: &[u8]) -> Result<(KernelInfo, Vec<u8>), KernelError> {
    let mut loadable = Vec::new();
    let info = load_stream(data, &mut loadable)?;
    Ok((info, loadable))
}

/// The start of a kernel that identifies it: every header field read lies
/// in it (the arm64 Image header, the zboot header, the bzImage setup
/// header and the version string it points to: at most 0xffff + 0x200 +
/// 128 bytes in).
const HEAD: usize = (64 << 10) + 1024;

/// Identifies a kernel as a stream: reads it from `input` and writes its
/// loadable form to `out` as it goes (zboot payloads and compression
/// wrappers decompressed on the way, up to [`MAX_KERNEL`] bytes), so
/// memory stays at a buffer and the first 64 KiB whatever the kernel's
/// size. The version comes from the banner found in the stream.
pub fn load_stream(mut input: impl Read, out: &mut dyn Write) -> Result<KernelInfo, KernelError> {
    let mut head = Vec::with_capacity(HEAD);
    (&mut input).take(HEAD as u64).read_to_end(&mut head)?;
    let plain = image(&head)
        .or_else(|| bzimage(&head))
        .or_else(|| elf(&head));
    let mut whole = std::io::Cursor::new(&head).chain(input);
    if let Some(mut info) = plain {
        let mut sink = Tracked::new(out);
        std::io::copy(&mut whole, &mut sink)?;
        info.loadable_size = sink.written;
        if info.format != KernelFormat::BzImage {
            info.version = sink.banner.version();
        }
        return Ok(info);
    }
    // The compressed payload: zboot's (after its PE, `len` bytes), or the
    // whole file inside a compression wrapper.
    let (compression, format, efi_stub, payload_len) =
        if head.get(..2) == Some(b"MZ") && head.get(4..8) == Some(b"zimg") {
            let off = le32(&head, 8).ok_or(KernelError::Unknown)?;
            let len = le32(&head, 12).ok_or(KernelError::Unknown)?;
            let name_raw = head.get(24..56).ok_or(KernelError::Unknown)?;
            let name = String::from_utf8_lossy(
                &name_raw[..name_raw.iter().position(|&c| c == 0).unwrap_or(32)],
            )
            .into_owned();
            let c = Compression::from_name(&name).ok_or_else(|| {
                KernelError::Corrupt(format!("zboot compression `{name}` is not supported"))
            })?;
            let skipped = std::io::copy(&mut (&mut whole).take(off.into()), &mut std::io::sink())?;
            if skipped < u64::from(off) {
                return Err(KernelError::Corrupt(format!(
                    "zboot payload {off}+{len} lies outside the {skipped}-byte file"
                )));
            }
            // The zboot PE itself is what firmware runs.
            (c, KernelFormat::Zboot, has_pe_header(&head), Some(len))
        } else if let Some(c) = Compression::detect(&head) {
            // A compressed file cannot be started by firmware.
            (c, KernelFormat::Wrapped, false, None)
        } else {
            return Err(KernelError::Unknown);
        };
    let mut payload = (&mut whole).take(payload_len.map_or(u64::MAX, u64::from));
    let mut sink = Tracked::new(out);
    let decoded = crate::decompress::reader(compression, &mut payload)?;
    let n = std::io::copy(&mut decoded.take(MAX_KERNEL + 1), &mut sink).map_err(|e| {
        match e.kind() {
            std::io::ErrorKind::InvalidData
            | std::io::ErrorKind::InvalidInput
            | std::io::ErrorKind::UnexpectedEof => {
                KernelError::Decompress(DecompressError::Corrupt {
                    format: compression.name(),
                    detail: e.to_string(),
                })
            }
            _ => KernelError::Io(e),
        }
    })?;
    if n > MAX_KERNEL {
        return Err(KernelError::Decompress(DecompressError::TooLarge {
            format: compression.name(),
            limit: MAX_KERNEL,
        }));
    }
    if let Some(len) = payload_len {
        // The declared payload must lie inside the file, as `load` checks,
        // even when its stream ended earlier.
        let unread = payload.limit();
        let rest = std::io::copy(&mut whole, &mut std::io::sink())?;
        if unread > rest {
            return Err(KernelError::Corrupt(format!(
                "zboot payload of {len} bytes runs {} bytes past the end of the file",
                unread - rest
            )));
        }
    }
    let inner = image(&sink.head).or_else(|| match format {
        KernelFormat::Wrapped => elf(&sink.head),
        _ => None,
    });
    let mut info = inner.ok_or_else(|| match format {
        KernelFormat::Zboot => {
            KernelError::Corrupt("zboot payload is not an arm64 or RISC-V Image".into())
        }
        _ => KernelError::Unknown,
    })?;
    info.format = format;
    info.compression = Some(compression);
    info.efi_stub = efi_stub;
    info.loadable_size = sink.written;
    info.version = sink.banner.version();
    Ok(info)
}

/// A writer that passes bytes on and keeps what identifies them: how many,
/// the first [`HEAD`] bytes, and the version banner.
struct Tracked<'a> {
    out: &'a mut dyn Write,
    written: u64,
    head: Vec<u8>,
    banner: BannerScan,
}

impl<'a> Tracked<'a> {
    fn new(out: &'a mut dyn Write) -> Tracked<'a> {
        Tracked {
            out,
            written: 0,
            head: Vec::new(),
            banner: BannerScan::default(),
        }
    }
}

impl Write for Tracked<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        let done = &buf[..n];
        self.written += n as u64;
        let room = HEAD.saturating_sub(self.head.len()).min(n);
        self.head.extend_from_slice(&done[..room]);
        self.banner.feed(done);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Finds the first `Linux version ` banner in a stream: keeps only the
/// bytes a match could straddle, then the 128 bytes after it.
#[derive(Default)]
struct BannerScan {
    carry: Vec<u8>,
    after: Option<Vec<u8>>,
}

impl BannerScan {
    const NEEDLE: &'static [u8] = b"Linux version ";
    const AFTER: usize = 128;

    fn feed(&mut self, buf: &[u8]) {
        if let Some(after) = &mut self.after {
            let room = Self::AFTER.saturating_sub(after.len()).min(buf.len());
            after.extend_from_slice(&buf[..room]);
            return;
        }
        let mut joined = std::mem::take(&mut self.carry);
        joined.extend_from_slice(buf);
        match joined
            .windows(Self::NEEDLE.len())
            .position(|w| w == Self::NEEDLE)
        {
            Some(at) => {
                let rest = &joined[at + Self::NEEDLE.len()..];
                self.after = Some(rest[..rest.len().min(Self::AFTER)].to_vec());
            }
            None => {
                let keep = joined.len().saturating_sub(Self::NEEDLE.len() - 1);
                self.carry = joined.split_off(keep);
            }
        }
    }

    fn version(&self) -> Option<String> {
        let after = self.after.as_ref()?;
        banner_version(&[Self::NEEDLE, after].concat())
    }
}
