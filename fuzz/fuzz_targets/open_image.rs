//! Fuzzes the whole open path as every command runs it: image format
//! (raw or qcow2), partition table, slots, filesystem probes, El Torito,
//! then the boot chain for both architectures and every check rule
//! (kernel config, fstab and command-line parsers included). The input is
//! a sparse 1 GiB device (see `SparseDev`), so seeds keep real layouts.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bootproof_fuzz::fuzz_open_image(data);
});
