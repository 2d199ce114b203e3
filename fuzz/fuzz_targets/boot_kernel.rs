//! Fuzzes kernel-format detection and bounded decompression.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bootproof_boot::kernel::load(data);
});
