//! The vocabulary every bootproof stage shares: the guest architecture
//! ([`Arch`], with one table of per-architecture facts, [`ARCHES`]) and the
//! platform variant ([`Platform`]: GIC version, ACPI, virtio [`Transport`])
//! with the `--variants` axes that produce variants, and the one
//! [`Severity`] scale findings are graded on.
//!
//! This crate owns those facts; no other crate compares architecture or
//! transport names. It depends on nothing but serde, so the in-guest agent
//! uses it too.

mod arch;
mod severity;
mod variant;

pub use arch::{Arch, ArchInfo, UnknownArch, ARCHES};
pub use severity::{Severity, Tone};
pub use variant::{split_axes_and_images, Axes, AxisError, Platform, Transport, GIC_VERSIONS};
