//! Fuzzes the reader of cloud-init's ds-identify policy in an image (the
//! script's per-architecture default and /etc/cloud/ds-identify.cfg),
//! which decides whether `bootproof boot` attaches an empty NoCloud seed:
//! bounded, line by line, never executed.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bootproof_fuzz::fuzz_ds_identify(data);
});
