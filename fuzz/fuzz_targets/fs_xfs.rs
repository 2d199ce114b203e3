//! Fuzzes the xfs reader through a sparse device (see `bootproof_fuzz::SparseDev`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bootproof_fuzz::fuzz_fs(bootproof_fs::FsKind::Xfs, data);
});
