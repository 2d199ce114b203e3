//! Fuzzes the check crate's text parsers (fstab, kernel config, the
//! command line, os-release, modules.builtin) through `check()` on a small
//! arm64 image built around the input's texts.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bootproof_fuzz::fuzz_check_texts(data);
});
