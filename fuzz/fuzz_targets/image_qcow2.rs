//! Fuzzes every image format's parsing and guest reads on an in-memory
//! image: qcow2 (L1/L2 lookups, compressed clusters), VHD (block table,
//! bitmaps), VHDX (headers, region and metadata tables, BAT), VMDK
//! (sparse headers, stream footers, grain tables, inflated grains,
//! descriptors with zero extents), tar and OVA archives (headers, sparse
//! maps, the OVF's disk reference).
#![no_main]
use bootproof_image::{Image, MemImage, ReadAt};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Ok(img) = Image::from_reader(Arc::new(MemImage(data.to_vec())), "fuzz.qcow2") else {
        return;
    };
    let size = img.size();
    let mut buf = vec![0u8; 65536];
    // A few reads spread over the virtual disk, bounded in count and size.
    for i in 0..16u64 {
        let at = size / 16 * i;
        let n = (size - at).min(buf.len() as u64) as usize;
        let _ = img.read_at(at, &mut buf[..n]);
    }
});
