//! Terminal styling that respects NO_COLOR, --color and whether the stream
//! is a terminal; plus human-readable sizes.

use crate::args::ColorChoice;
use bootproof_platform::Tone;
use bootproof_runtime::render::escape::terminal_keep_colours;
use std::io::{IsTerminal, Write};

/// Whether to emit ANSI colour on one stream.
#[derive(Clone, Copy)]
pub struct Style {
    on: bool,
}

fn decide(choice: ColorChoice, is_tty: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => is_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

impl Style {
    /// Styling for stdout.
    pub fn stdout(choice: ColorChoice) -> Style {
        Style {
            on: decide(choice, std::io::stdout().is_terminal()),
        }
    }
    /// Styling for stderr.
    pub fn stderr(choice: ColorChoice) -> Style {
        Style {
            on: decide(choice, std::io::stderr().is_terminal()),
        }
    }
    fn paint(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    /// Bold.
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    /// Dim, for secondary detail.
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    /// Bold red, for errors.
    pub fn red_bold(&self, s: &str) -> String {
        self.paint("1;31", s)
    }
    /// Yellow, for warnings.
    pub fn yellow(&self, s: &str) -> String {
        self.paint("33", s)
    }
    /// Blue, for directories.
    pub fn blue(&self, s: &str) -> String {
        self.paint("1;34", s)
    }
    /// Cyan, for symlinks.
    pub fn cyan(&self, s: &str) -> String {
        self.paint("36", s)
    }
    /// Green, for good news.
    /// `s` coloured by its tone: plain dim, good green, bad red, warning yellow.
    pub fn toned(&self, tone: Tone, s: &str) -> String {
        match tone {
            Tone::Plain => self.dim(s),
            Tone::Good => self.green(s),
            Tone::Bad => self.red_bold(s),
            Tone::Warn => self.yellow(s),
        }
    }

    pub fn green(&self, s: &str) -> String {
        self.paint("32", s)
    }
}

/// Pretty JSON and a newline: every command's `--json`.
pub fn write_json(out: &mut impl Write, doc: &impl serde::Serialize) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, doc).map_err(std::io::Error::other)?;
    writeln!(out)
}

/// `1.5 GiB`-style size.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Pads `s` (which may contain ANSI codes) to `width` visible characters.
pub fn pad(s: &str, visible_len: usize, width: usize) -> String {
    format!("{s}{}", " ".repeat(width.saturating_sub(visible_len)))
}

/// Renders rows as aligned columns; `cells` are (styled, visible length).
pub fn table(header: &[&str], rows: &[Vec<(String, usize)>], st: Style) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, (_, len)) in r.iter().enumerate() {
            widths[i] = widths[i].max(*len);
        }
    }
    let mut out = String::new();
    let head: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(i, h)| pad(&st.bold(h), h.len(), widths[i]))
        .collect();
    out.push_str(head.join("  ").trim_end());
    out.push('\n');
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, (s, len))| pad(s, *len, widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A plain cell.
pub fn cell(s: impl Into<String>) -> (String, usize) {
    let s = s.into();
    let n = s.chars().count();
    (s, n)
}

/// A styled cell whose visible text is `plain`.
pub fn styled(plain: &str, f: impl Fn(&str) -> String) -> (String, usize) {
    (f(plain), plain.chars().count())
}

/// Standard output for every command but `cat`: collected, then written
/// on drop with every control character that is not one of bootproof's own
/// colours made visible, so text from an image or a guest (file names,
/// GRUB titles, command output) cannot drive the terminal. JSON, JUnit and
/// Markdown pass unchanged: their escaping leaves no control character.
#[derive(Default)]
pub struct SafeStdout(Vec<u8>);

impl Write for SafeStdout {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SafeStdout {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::stdout()
            .lock()
            .write_all(terminal_keep_colours(&text).as_bytes());
    }
}
