//! Fuzzes initramfs listing (cpio newc, concatenation, compression).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bootproof_boot::initrd::inspect(data);
});
