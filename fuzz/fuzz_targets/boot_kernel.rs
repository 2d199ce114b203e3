//! Fuzzes kernel-format detection and bounded, streamed decompression
//! (`kernel::load_stream`, which `load` wraps), into a sink that keeps only
//! a count and a digest: memory stays at one buffer, and the loadable size
//! the kernel reports must be what was written.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

/// A sink that keeps only the digest and length of what it is given.
struct Hashed(Sha256, u64);

impl std::io::Write for Hashed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut sink = Hashed(Sha256::new(), 0);
    if let Ok(info) = bootproof_boot::kernel::load_stream(data, &mut sink) {
        assert_eq!(info.loadable_size, sink.1);
    }
});
