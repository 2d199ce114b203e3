//! Fuzzes LVM2: the PV label and header, the metadata area (checksums,
//! wrapping text), the metadata text parser, and reads through every
//! logical volume it assembles (linear and striped mappings). The input is
//! a sparse device (see `bootproof_fuzz::SparseDev`), seeded from PVs the
//! lvm2 tools wrote.
#![no_main]
use bootproof_disk::lvm::{config, scan, FoundPv};
use bootproof_fuzz::SparseDev;
use bootproof_image::ReadAt;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let dev: Arc<dyn ReadAt> = Arc::new(SparseDev::decode(data));
    let lvm = scan(&[FoundPv {
        place: "fuzz".into(),
        device: dev,
        disk_offset: Some(0),
    }]);
    let mut buf = vec![0u8; 8192];
    for vg in &lvm.vgs {
        for lv in &vg.lvs {
            if let Some(d) = &lv.device {
                let n = d.size().min(buf.len() as u64) as usize;
                let _ = d.read_at(0, &mut buf[..n]);
                let _ = d.read_at(d.size() - n as u64, &mut buf[..n]);
            }
        }
    }
    let _ = config::parse(&String::from_utf8_lossy(data));
});
