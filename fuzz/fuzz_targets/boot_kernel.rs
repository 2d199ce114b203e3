//! Fuzzes kernel-format detection and bounded decompression, whole and
//! streamed: `load` and `load_stream` must agree on every input (both
//! fail, or both succeed with the same facts and the same loadable bytes,
//! compared by length and digest so memory stays at one copy).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

/// A sink that keeps only the digest of what it is given.
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
    let whole = bootproof_boot::kernel::load(data);
    let mut sink = Hashed(Sha256::new(), 0);
    let streamed = bootproof_boot::kernel::load_stream(data, &mut sink);
    match (whole, streamed) {
        (Ok((a, bytes)), Ok(b)) => {
            assert_eq!(format!("{a:?}"), format!("{b:?}"));
            assert_eq!(bytes.len() as u64, sink.1);
            assert!(Sha256::digest(&bytes) == sink.0.finalize());
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("load {:?} but load_stream {:?}", a.map(|x| x.0), b),
    }
});
