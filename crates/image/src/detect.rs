//! Format detection by content (never by file name).

use crate::read_at::ReadAt;
use std::io;

/// What the first bytes of an image say it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetectedFormat {
    /// No known container signature: the bytes are the disk.
    Raw,
    /// QEMU copy-on-write v2/v3.
    Qcow2,
    /// Microsoft VHD (QEMU's `vpc`), fixed or dynamic.
    Vhd,
    /// Hyper-V's VHDX, fixed or dynamic.
    Vhdx,
    /// A VMware hosted sparse extent (`KDMV`): monolithicSparse or
    /// streamOptimized.
    VmdkSparse,
    /// A VMware text descriptor naming extent files.
    VmdkDescriptor,
    /// A whole-file compression (`.xz`, `.gz`, `.zst`).
    Compressed(crate::unpack::Compression),
    /// A tar archive (an OVA, a cloud image's tar).
    Tar,
    /// A LUKS container: encrypted, unreadable without its key.
    Encrypted,
    /// A format bootproof recognises and refuses, with its name.
    Unsupported {
        /// Human name of the format.
        format: &'static str,
        /// What was seen.
        detail: &'static str,
    },
}

/// Looks at the first sectors (and the last, for VHD) of `r`.
pub fn probe_format(r: &dyn ReadAt) -> io::Result<DetectedFormat> {
    let mut head = [0u8; 512];
    let n = head.len().min(r.size() as usize);
    r.read_at(0, &mut head[..n])?;
    let head = &head[..n];
    let starts = |sig: &[u8]| head.starts_with(sig);
    let unsupported = |format, detail| Ok(DetectedFormat::Unsupported { format, detail });
    if starts(b"QFI\xfb") {
        return Ok(DetectedFormat::Qcow2);
    }
    if let Some(c) = crate::unpack::Compression::sniff(head) {
        return Ok(DetectedFormat::Compressed(c));
    }
    if crate::tar::is_tar_header(head) {
        return Ok(DetectedFormat::Tar);
    }
    if starts(b"KDMV") {
        return Ok(DetectedFormat::VmdkSparse);
    }
    if starts(b"COWD") {
        return unsupported("VMDK", "ESX COW sparse header `COWD`");
    }
    if starts(b"# Disk DescriptorFile") {
        return Ok(DetectedFormat::VmdkDescriptor);
    }
    if starts(b"vhdxfile") {
        return Ok(DetectedFormat::Vhdx);
    }
    if starts(b"conectix") {
        return Ok(DetectedFormat::Vhd);
    }
    if n >= 0x44 && head[0x40..0x44] == [0x7f, 0x10, 0xda, 0xbe] {
        return unsupported("VDI", "VirtualBox signature 0xbeda107f");
    }
    if starts(b"LUKS\xba\xbe") {
        return Ok(DetectedFormat::Encrypted);
    }
    if starts(b"QED\0") {
        return unsupported("QED", "QEMU enhanced disk header");
    }
    if starts(b"\x7fVMDK") || starts(b"VMDK") {
        return unsupported("VMDK", "stream-optimized header");
    }
    // Fixed VHD: a raw disk followed by a 512-byte footer. It reads like raw,
    // but the footer would be counted as disk.
    let size = r.size();
    if size >= 1024 && size.is_multiple_of(512) {
        let mut foot = [0u8; 8];
        r.read_at(size - 512, &mut foot)?;
        if &foot == b"conectix" {
            return Ok(DetectedFormat::Vhd);
        }
    }
    Ok(DetectedFormat::Raw)
}
