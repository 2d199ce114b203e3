//! The VM stage: everything about running QEMU that can be decided before a
//! guest starts. [`firmware`] picks firmware from QEMU's own descriptor
//! files (never from guessed paths); [`accel`] decides between KVM and TCG
//! from the host and guest architectures and a probe of `/dev/kvm`.
#![forbid(unsafe_code)]

pub mod accel;
pub mod classify;
pub mod firmware;
pub mod overlay;
