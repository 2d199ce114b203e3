//! Names of partition types (GPT GUIDs from the UAPI Discoverable Partitions
//! Specification and UEFI; MBR type bytes).

use crate::guid::Guid;

/// EFI System Partition type GUID.
pub const ESP_GUID: Guid = Guid::from_str_const("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");

const GPT_TYPES: &[(&str, &str)] = &[
    ("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "EFI System"),
    ("21686148-6449-6E6F-744E-656564454649", "BIOS boot"),
    ("0FC63DAF-8483-4772-8E79-3D69D8477DE4", "Linux filesystem"),
    ("B921B045-1DF0-41C3-AF44-4C6F280D3FAE", "Linux root (ARM64)"),
    (
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
        "Linux root (x86-64)",
    ),
    ("44479540-F297-41B2-9AF7-D131D5F0458A", "Linux root (x86)"),
    ("69DAD710-2CE4-4E3C-B16C-21A1D49ABED3", "Linux root (ARM)"),
    (
        "72EC70A6-CF74-40E6-BD49-4BDA08E8F224",
        "Linux root (RISC-V 64)",
    ),
    ("B0E01050-EE5F-4390-949A-9101B17104E9", "Linux /usr (ARM64)"),
    (
        "8484680C-9521-48C6-9C11-B0720656F69E",
        "Linux /usr (x86-64)",
    ),
    (
        "BC13C2FF-59E6-4262-A352-B275FD6F7172",
        "Linux extended boot (XBOOTLDR)",
    ),
    ("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "Linux swap"),
    ("E6D6D379-F507-44C2-A23C-238F2A3DF928", "Linux LVM"),
    ("A19D880F-05FC-4D3B-A006-743F0F84911E", "Linux RAID"),
    ("933AC7E1-2EB4-4F13-B844-0E14E2AEF915", "Linux /home"),
    ("3B8F8425-20E0-4F3B-907F-1A25A76F98E8", "Linux /srv"),
    ("4D21B016-B534-45C2-A9FB-5C16E091FD2D", "Linux /var"),
    ("7EC6F557-3BC5-4ACA-B293-16EF5DF639D1", "Linux /var/tmp"),
    ("CA7D7CCB-63ED-4C53-861C-1742536059CC", "Linux LUKS"),
    (
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
        "Microsoft basic data",
    ),
    ("E3C9E316-0B5C-4DB8-817D-F92DF00215AE", "Microsoft reserved"),
    ("9E1A2D38-C612-4316-AA26-8B49521E5A8B", "PReP boot"),
    ("FE3A2A5D-4F32-41A7-B725-ACCC3285A309", "ChromeOS kernel"),
    ("3CB8E202-3B7E-47DD-8A3C-7FF2A13CFCEC", "ChromeOS root"),
    ("516E7CB4-6ECF-11D6-8FF8-00022D09712B", "FreeBSD data"),
];

/// Human name of a GPT partition type.
pub fn gpt_type_name(g: &Guid) -> String {
    GPT_TYPES
        .iter()
        .find(|(s, _)| Guid::from_str_const(s) == *g)
        .map(|(_, n)| (*n).to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Human name of an MBR partition type byte.
pub fn mbr_type_name(t: u8) -> String {
    match t {
        0x01 => "FAT12",
        0x04 | 0x06 | 0x0e => "FAT16",
        0x0b | 0x0c => "FAT32",
        0x05 | 0x0f | 0x85 => "Extended",
        0x07 => "NTFS/exFAT",
        0x17 => "Hidden NTFS/ISO",
        0x82 => "Linux swap",
        0x83 => "Linux",
        0x8e => "Linux LVM",
        0xa5 => "FreeBSD",
        0xee => "GPT protective",
        0xef => "EFI System",
        0xfd => "Linux RAID",
        _ => "unknown",
    }
    .to_string()
}
