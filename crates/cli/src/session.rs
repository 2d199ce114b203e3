//! What a running command shares with the terminal: the interrupt flag
//! Ctrl-C sets, and how an error and its hint are printed.

use crate::args::ColorChoice;
use crate::style::Style;
use bootproof_runtime::render::escape::terminal;
use bootproof_runtime::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A flag set by Ctrl-C, SIGTERM or SIGHUP; the engine polls it and shuts
/// the guests down.
pub fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    // Fails only if a handler is already set (never, in this binary).
    let _ = ctrlc::set_handler(move || f.store(true, Ordering::Relaxed));
    flag
}

/// Prints an error and its hint on stderr.
pub fn report_error(e: &Error) {
    let s = Style::stderr(ColorChoice::Auto);
    eprintln!("{} {}", s.red_bold("error:"), terminal(e.message()));
    if let Some(hint) = e.hint() {
        eprintln!("{} {}", s.bold("hint:"), terminal(hint));
    }
}
