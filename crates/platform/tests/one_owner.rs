//! The platform crate is the one owner of architecture facts: no other
//! crate's source compares architecture names or spells a serial console.
//! (Tests may: they check the facts.)

use std::path::{Path, PathBuf};

/// Patterns that mean "an architecture fact re-derived outside the table".
const FORBIDDEN: &[&str] = &[
    "== \"aarch64\"",
    "== \"x86_64\"",
    "!= \"aarch64\"",
    "!= \"x86_64\"",
    "ttyAMA0\"",
    "ttyS0\"",
    "== \"mmio\"",
    "!= \"mmio\"",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The source outside `#[cfg(test)]` modules (they sit at the end of a file).
fn non_test_source(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |i| &text[..i])
}

#[test]
fn no_crate_but_platform_compares_architecture_names() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut hits = Vec::new();
    let mut checked = 0;
    for krate in std::fs::read_dir(crates).unwrap().flatten() {
        if krate.file_name() == "platform" {
            continue;
        }
        let mut files = Vec::new();
        let src = krate.path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
        for f in files {
            checked += 1;
            let text = std::fs::read_to_string(&f).unwrap();
            for (n, line) in non_test_source(&text).lines().enumerate() {
                if FORBIDDEN.iter().any(|p| line.contains(p)) {
                    hits.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        checked > 50,
        "found the workspace's sources ({checked} files)"
    );
    assert!(
        hits.is_empty(),
        "architecture facts belong in crates/platform (ARCHES):\n{}",
        hits.join("\n")
    );
}
