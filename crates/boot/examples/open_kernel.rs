//! Opens a kernel as `bootproof run --kernel` does and prints what it
//! found and how long that took (scripts/bench-kernel-package.sh).
//!
//!   cargo run --release -p bootproof-boot --example open_kernel -- PATH CACHE_DIR

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: open_kernel PATH CACHE_DIR");
        std::process::exit(2);
    }
    let started = std::time::Instant::now();
    match bootproof_boot::package::open(
        std::path::Path::new(&args[1]),
        None,
        std::path::Path::new(&args[2]),
    ) {
        Ok(k) => println!(
            "{} {} {:?} modules={} {:.3} s",
            k.version,
            k.arch,
            k.origin,
            k.modules.is_some(),
            started.elapsed().as_secs_f64()
        ),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
