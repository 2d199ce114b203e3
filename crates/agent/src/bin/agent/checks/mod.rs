//! The runtime checks, one module per area; their ids, what they prove
//! and the requirement behind each are in `bootproof_agent::catalog`.

pub(crate) mod acpi;
pub(crate) mod arm;
pub(crate) mod devices;
pub(crate) mod firmware;
