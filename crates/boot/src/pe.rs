//! EFI binaries (PE/COFF), through the `object` crate: what the firmware
//! would run, and what it is (shim, GRUB, systemd-boot, a UKI, a kernel).

use object::pe;
use object::read::coff::CoffHeader as _;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader};
use object::LittleEndian as LE;
use serde::Serialize;

/// PE machine types the VM specification cares about.
pub const MACHINE_AARCH64: u16 = 0xaa64;
/// x86_64.
pub const MACHINE_X86_64: u16 = 0x8664;
/// 32-bit Arm (Thumb-2 mixed), the AArch32 EFI machine.
pub const MACHINE_ARMTHUMB_MIXED: u16 = 0x01c2;
/// `EFI_APPLICATION` subsystem.
pub const SUBSYSTEM_EFI_APPLICATION: u16 = 10;

/// What an EFI binary is, from its SBAT, marker sections and layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EfiKind {
    /// The shim first-stage loader.
    Shim,
    /// GRUB (monolithic or standalone).
    Grub,
    /// systemd-boot.
    SystemdBoot,
    /// A Unified Kernel Image (systemd-stub with `.linux`).
    Uki,
    /// A Linux kernel with its EFI stub (arm64 Image or x86 bzImage).
    LinuxKernel,
    /// Another EFI application or driver.
    Other,
}

impl EfiKind {
    /// The name reports use (`linux-kernel`, `systemd-boot`, …).
    pub fn name(self) -> &'static str {
        match self {
            EfiKind::Shim => "shim",
            EfiKind::Grub => "grub",
            EfiKind::SystemdBoot => "systemd-boot",
            EfiKind::Uki => "uki",
            EfiKind::LinuxKernel => "linux-kernel",
            EfiKind::Other => "other",
        }
    }
}

/// One section.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Section {
    /// Name (up to 8 bytes, NULs trimmed).
    pub name: String,
    /// Bytes of data in the file.
    pub raw_size: u32,
    /// Size when loaded.
    pub virtual_size: u32,
}

/// Facts about a PE/COFF file.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PeInfo {
    /// COFF machine type (0xAA64, 0x8664, 0x1C2 …).
    pub machine: u16,
    /// Human name of the machine.
    pub machine_name: &'static str,
    /// PE32+ (64-bit optional header).
    pub pe32_plus: bool,
    /// Optional-header subsystem (10 = EFI application).
    pub subsystem: u16,
    /// Human name of the subsystem.
    pub subsystem_name: &'static str,
    /// Sections in file order.
    pub sections: Vec<Section>,
    /// The `.sbat` section's CSV, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sbat: Option<String>,
    /// Whether the security directory holds an Authenticode signature.
    pub signed: bool,
    /// What the binary is.
    pub kind: EfiKind,
    /// For systemd binaries, the `.sdmagic` text ("#### LoaderInfo: …").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loader_info: Option<String>,
}

impl PeInfo {
    /// Whether this is an EFI application for `machine`, in the header form
    /// the UEFI specification requires (PE32+ except for 32-bit Arm).
    pub fn is_efi_application_for(&self, machine: u16) -> bool {
        let width_ok = if machine == MACHINE_ARMTHUMB_MIXED {
            !self.pe32_plus
        } else {
            self.pe32_plus
        };
        self.machine == machine && self.subsystem == SUBSYSTEM_EFI_APPLICATION && width_ok
    }
    /// The data of a named section, from the file it was parsed from.
    pub fn section_data<'a>(data: &'a [u8], name: &str) -> Option<&'a [u8]> {
        section_bytes(data, name)
    }
}

/// Human name of a COFF machine type.
pub fn machine_name(m: u16) -> &'static str {
    match m {
        MACHINE_AARCH64 => "AArch64",
        MACHINE_X86_64 => "x86_64",
        MACHINE_ARMTHUMB_MIXED => "ARM (Thumb mixed)",
        0x014c => "i386",
        0x5064 => "RISC-V 64",
        0x6264 => "LoongArch 64",
        _ => "unknown",
    }
}

fn subsystem_name(s: u16) -> &'static str {
    match s {
        10 => "EFI application",
        11 => "EFI boot service driver",
        12 => "EFI runtime driver",
        13 => "EFI ROM",
        2 => "Windows GUI",
        3 => "Windows console",
        _ => "other",
    }
}

fn trim_name(raw: &[u8]) -> String {
    let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// A section with its bytes in the file.
struct RawSection<'a> {
    name: String,
    data: &'a [u8],
    raw_size: u32,
    virtual_size: u32,
}

fn sections_of<Pe: ImageNtHeaders>(data: &[u8]) -> Option<Vec<RawSection<'_>>> {
    let file = object::read::pe::PeFile::<Pe>::parse(data).ok()?;
    // Names over 8 bytes (shim's `.vendor_cert`, `.sbatlevel`) are `/N`,
    // an offset into the COFF string table binutils keeps in the image.
    let strings = file
        .nt_headers()
        .file_header()
        .symbols(data)
        .map(|t| t.strings())
        .unwrap_or_default();
    Some(
        file.section_table()
            .iter()
            .map(|s| RawSection {
                name: s
                    .name(strings)
                    .map(trim_name)
                    .unwrap_or_else(|_| trim_name(s.raw_name())),
                data: s.pe_data(data).unwrap_or(&[]),
                raw_size: s.size_of_raw_data.get(LE),
                virtual_size: s.virtual_size.get(LE),
            })
            .collect(),
    )
}

fn section_bytes<'a>(data: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let all = sections_of::<pe::ImageNtHeaders64>(data)
        .or_else(|| sections_of::<pe::ImageNtHeaders32>(data))?;
    all.into_iter().find(|s| s.name == name).map(|s| {
        // Section data is padded to the file alignment; the virtual size is
        // the payload's real length when smaller.
        let len = if s.virtual_size > 0 {
            (s.virtual_size as usize).min(s.data.len())
        } else {
            s.data.len()
        };
        &s.data[..len]
    })
}

fn analyze_as<Pe: ImageNtHeaders>(data: &[u8], pe32_plus: bool) -> Option<PeInfo> {
    let file = object::read::pe::PeFile::<Pe>::parse(data).ok()?;
    let machine = file.nt_headers().file_header().machine.get(LE);
    let subsystem = file.nt_headers().optional_header().subsystem();
    let signed = file
        .data_directory(pe::IMAGE_DIRECTORY_ENTRY_SECURITY)
        .is_some_and(|d| d.size.get(LE) >= 8 && d.virtual_address.get(LE) != 0);
    let sections: Vec<Section> = sections_of::<Pe>(data)?
        .into_iter()
        .map(|s| Section {
            name: s.name,
            raw_size: s.raw_size,
            virtual_size: s.virtual_size,
        })
        .collect();
    let text = |name: &str| section_bytes(data, name).map(|b| trim_name(b).trim().to_string());
    let sbat = text(".sbat");
    // systemd ≥ 253 keeps its marker in `.sdmagic`; older builds (Debian 12's
    // 252) have only .text/.data, so search the data for it.
    let loader_info = text(".sdmagic").or_else(|| find_marker(data, b"#### LoaderInfo: "));
    let has = |n: &str| sections.iter().any(|s| s.name == n);
    let sbat_has = |c: &str| {
        sbat.as_deref()
            .is_some_and(|s| s.lines().any(|l| l.starts_with(c)))
    };
    let info = loader_info.as_deref().unwrap_or("");
    let kind = if has(".linux") {
        EfiKind::Uki
    } else if info.contains("systemd-boot") {
        EfiKind::SystemdBoot
    } else if sbat_has("shim,") {
        EfiKind::Shim
    } else if sbat_has("grub,") || has("mods") {
        EfiKind::Grub
    } else if is_linux_kernel(data) {
        EfiKind::LinuxKernel
    } else {
        EfiKind::Other
    };
    Some(PeInfo {
        machine,
        machine_name: machine_name(machine),
        pe32_plus,
        subsystem,
        subsystem_name: subsystem_name(subsystem),
        sections,
        sbat,
        signed,
        kind,
        loader_info,
    })
}

/// The NUL-terminated marker text starting at `needle`, if present.
fn find_marker(data: &[u8], needle: &[u8]) -> Option<String> {
    let at = data.windows(needle.len()).position(|w| w == needle)?;
    let rest = &data[at..data.len().min(at + 200)];
    let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
    Some(String::from_utf8_lossy(&rest[..end]).trim().to_string())
}

/// A kernel's EFI stub: the arm64 Image magic, or the x86 setup header.
fn is_linux_kernel(data: &[u8]) -> bool {
    data.get(0x38..0x3c) == Some(b"ARM\x64")
        || data.get(0x202..0x206) == Some(b"HdrS")
        || data.get(4..8) == Some(b"zimg")
}

/// Parses a PE/COFF image. `None` when `data` is not one.
pub fn analyze(data: &[u8]) -> Option<PeInfo> {
    if data.get(..2) != Some(b"MZ") {
        return None;
    }
    match object::FileKind::parse(data).ok()? {
        object::FileKind::Pe64 => analyze_as::<pe::ImageNtHeaders64>(data, true),
        object::FileKind::Pe32 => analyze_as::<pe::ImageNtHeaders32>(data, false),
        _ => None,
    }
}
