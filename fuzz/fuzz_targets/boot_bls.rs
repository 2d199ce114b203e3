//! Fuzzes Boot Loader Specification entries and systemd-boot's `default`
//! glob. Input: pattern, NUL, name, NUL, entry text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bootproof_fuzz::fuzz_bls(data);
});
