//! Fuzzes the kernel package reader (`.deb`: ar container, compressed
//! data tarball) that `bootproof run --kernel` unpacks.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bootproof_fuzz::fuzz_kernel_package(data);
});
