//! The README and docs stay true: every relative link resolves (to a file,
//! and to a heading where it names one), the README stays short enough to
//! read in five minutes, and every flag the command synopsis documents is
//! one `--help` lists.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// README.md, docs/*.md and fuzz/README.md.
fn pages() -> Vec<PathBuf> {
    let root = workspace();
    let mut pages = vec![root.join("README.md"), root.join("fuzz/README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// The targets of `[text](target)` links in markdown, outside code blocks.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, spaces to dashes, other
/// punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// `path` with `.` and `..` resolved by name (the target may not exist).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

fn anchors(page: &Path) -> Vec<String> {
    std::fs::read_to_string(page)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect()
}

#[test]
fn every_link_in_the_readme_and_docs_resolves() {
    let root = workspace();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (file, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                page.clone()
            } else {
                lexical(&page.parent().unwrap().join(file))
            };
            // Links out of the repository (the project's design notes,
            // beside a checkout) are not the repository's to keep.
            if !target.starts_with(&root) {
                continue;
            }
            assert!(
                target.exists(),
                "{}: link {link} names no file",
                page.display()
            );
            if !fragment.is_empty() {
                assert!(
                    anchors(&target).iter().any(|a| a == fragment),
                    "{}: link {link}: no such heading",
                    page.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} links");
}

#[test]
fn the_readme_is_short() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines < 120,
        "README.md has {lines} lines: details go to docs/"
    );
}

/// Every `--flag` of the synopsis in docs/commands.md is in that command's
/// `--help`.
#[test]
fn every_documented_flag_exists() {
    let text = std::fs::read_to_string(workspace().join("docs/commands.md")).unwrap();
    let synopsis = text
        .split("## Synopsis")
        .nth(1)
        .and_then(|s| s.split("```").nth(1))
        .expect("a Synopsis code block");
    let mut command: Vec<String> = Vec::new();
    let mut checked = 0;
    for line in synopsis.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"bootproof") {
            command = vec![words[1].to_string()];
            if words[1] == "report" {
                command.push(words[2].to_string());
            }
        }
        let flags = words
            .iter()
            .map(|w| w.trim_start_matches(['[', '(']))
            .filter(|w| w.starts_with("--"))
            .map(|w| w.split(['=', '[', ']', '|', ')', ',']).next().unwrap());
        for flag in flags {
            let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
            args.push("--help");
            let help = String::from_utf8(bootproof(&args).stdout).unwrap();
            let listed = help.split_whitespace().any(|w| {
                let w = w.trim_end_matches(',');
                w == flag
                    || w.starts_with(&format!("{flag}["))
                    || w.starts_with(&format!("{flag}="))
            });
            assert!(
                listed,
                "docs/commands.md documents `{} {flag}`, which --help does not list",
                command.join(" ")
            );
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} flags");
}
