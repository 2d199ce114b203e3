//! Classifier throughput on a recorded console log at several read sizes
//! (a serial console can deliver a byte at a time):
//!
//!     cargo run --release -p bootproof-vm --example classify_speed -- LOG
fn main() {
    let path = std::env::args().nth(1).expect("usage: classify_speed LOG");
    let log = std::fs::read(path).unwrap();
    for chunk in [1usize, 7, 4096] {
        let t = std::time::Instant::now();
        let mut total = 0;
        for _ in 0..20 {
            let mut c = bootproof_vm::classify::Classifier::new();
            for p in log.chunks(chunk) {
                c.feed(p);
            }
            total += log.len();
        }
        let s = t.elapsed().as_secs_f64();
        println!("reads of {chunk} bytes: {:.1} MB/s", total as f64 / s / 1e6);
    }
}
