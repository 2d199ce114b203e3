//! The VM stage: everything about running QEMU. [`firmware`] picks firmware
//! from QEMU's own descriptor files (never from guessed paths); [`accel`]
//! decides between KVM and TCG from the host and guest architectures and a
//! probe of `/dev/kvm`; [`qemu`] finds the emulator and its machine types;
//! [`machine`] turns a VM description into a command line; [`overlay`] and
//! [`state`] hold per-run writable state that never touches the input;
//! [`supervise`] runs QEMU so it cannot outlive bootproof and watches its
//! console through [`classify`]; [`qmp`] talks to QEMU while it runs.
//!
//! Unsafe code is denied except in one audited place: the pre-exec hook
//! that sets QEMU's parent-death signal (`supervise`).
#![deny(unsafe_code)]

pub mod accel;
pub mod classify;
pub mod firmware;
pub mod hang;
pub mod health;
pub mod machine;
pub mod nvram;
pub mod outcome;
pub mod overlay;
pub mod prepare;
pub mod privilege;
pub mod qemu;
pub mod qmp;
pub mod ready;
pub mod seed;
mod stage;
pub mod state;
pub mod supervise;
pub mod window;
