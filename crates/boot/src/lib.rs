//! What boots: EFI binaries, kernels and initrds found in an image.
//!
//! This crate owns the fourth pipeline stage. It works on bytes the `fs`
//! stage read: [`pe`] tells what an EFI binary is (shim, GRUB,
//! systemd-boot, a UKI, a kernel's EFI stub) and whether it suits a machine;
//! [`kernel`] identifies a kernel image and produces the form a hypervisor's
//! direct boot loads; [`initrd`] lists an initramfs, [`initramfs`] writes
//! one, and [`modules`] finds kernel modules and their dependencies in an
//! image; [`package`] opens a kernel from outside an image (a Debian kernel
//! package, an unpacked one, or a kernel file) to boot with an image's root.
//! Decompression is bounded everywhere ([`decompress`]).
#![forbid(unsafe_code)]

pub mod chain;
pub mod companions;
pub mod decompress;
pub mod extract;
pub mod grub;
pub mod grub_image;
pub mod initramfs;
pub mod initrd;
pub mod kernel;
pub mod modules;
pub mod package;
pub mod pe;
pub mod rpm;
pub mod sbat;
pub mod signing;
pub mod trust;
