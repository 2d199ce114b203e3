//! Fuzzes GPT/MBR parsing. The input is the first sectors of a disk whose
//! last sectors repeat the input's tail (where a backup GPT would be).
#![no_main]
use bootproof_image::{MemImage, ReadAt};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bootproof_disk::read_partition_table(&MemImage(data.to_vec()));
    // The same bytes as a 4096-byte-sector disk, padded.
    let mut padded = data.to_vec();
    padded.resize(data.len().max(3 * 4096), 0);
    let img = MemImage(padded);
    let _ = img.size();
    let _ = bootproof_disk::read_partition_table(&img);
});
