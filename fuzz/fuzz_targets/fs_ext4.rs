//! Fuzzes the ext4 reader through a sparse device (see `bootproof_fuzz::SparseDev`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bootproof_fuzz::fuzz_fs(bootproof_fs::FsKind::Ext4, data);
});
