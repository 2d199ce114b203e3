//! Fuzzes Boot Loader Specification entries and systemd-boot's `default`
//! glob. Input: pattern, NUL, name, NUL, entry text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let pattern = parts.next().unwrap_or_default();
    let name = parts.next().unwrap_or_default();
    let entry = parts.next().unwrap_or_default();
    let _ = bootproof_boot::chain::fuzzing::glob(pattern, name);
    let _ = bootproof_boot::chain::fuzzing::bls_entry(entry, 0);
});
