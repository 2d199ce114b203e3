//! Fuzzes RPM kernel packages: the lead, both header structures (counts
//! and store sizes capped before allocating), the payload's format and
//! compressor tags, and the cpio walk (names, sizes, padding, trailer).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut total = 0u64;
    let _ = bootproof_boot::rpm::walk_rpm(data, std::path::Path::new("fuzz.rpm"), &mut |_, r| {
        let mut buf = [0u8; 4096];
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 || total > 1 << 26 {
                return Ok(());
            }
            total += n as u64;
        }
    });
});
