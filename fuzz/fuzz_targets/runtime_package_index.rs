//! Fuzzes the kernel library's reader of an archive's `Packages` index
//! (downloaded from a mirror: network input) and the metapackage →
//! kernel → module packages resolution over it: bounded lines, stanzas
//! and hops, cycles ended.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bootproof_fuzz::fuzz_package_index(data);
});
