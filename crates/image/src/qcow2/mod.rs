//! A read-only qcow2 (v2/v3) reader.
//!
//! Why not the `imago` crate: imago 0.2 rejects images whose compressed
//! clusters use zstd (incompatible feature bit 3), which `qemu-img convert
//! -c -o compression_type=zstd` produces and distros ship; and a checker
//! needs to bound every allocation an untrusted header asks for (L1 size,
//! offsets past EOF) with errors that name the field. Reading qcow2 is small
//! (a two-level table and three cluster kinds), so it lives here.
//!
//! Layout (docs/interop/qcow2.txt in QEMU): the header names the L1 table;
//! each L1 entry points to an L2 table of one cluster; each L2 entry maps
//! one guest cluster to a host cluster, a compressed extent, zeros, or
//! "unallocated" (read the backing file, else zeros).

mod header;
mod reader;

pub(crate) use header::Header;
pub(crate) use reader::Qcow2Reader;
