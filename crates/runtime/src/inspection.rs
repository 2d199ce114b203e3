//! `inspect`'s document: the image's layout and contents, and for each EFI
//! binary and EFI-stub kernel it lists, who signed it and its SBAT.

use bootproof_boot::signing::{efi_binaries, EfiBinary};
use bootproof_inspect::{inspect, InspectReport, OpenedImage};
use serde::Serialize;

/// What `bootproof inspect` reports (`bootproof.inspect/v1`).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Inspection {
    /// Format, table, filesystems, OS, boot files, problems.
    #[serde(flatten)]
    pub report: InspectReport,
    /// The ESPs' `*.efi` files and the kernels listed, when PE files.
    pub efi_binaries: Vec<EfiBinary>,
}

/// Inspects `img`, reading each EFI binary and kernel whole (their
/// Authenticode hashes): the bytes-read figure counts them.
pub fn inspect_image(img: &OpenedImage) -> Inspection {
    let mut report = inspect(img);
    let efi_binaries = efi_binaries(img, &report);
    report.image.bytes_read = img.image.stats().bytes_read();
    Inspection {
        report,
        efi_binaries,
    }
}
