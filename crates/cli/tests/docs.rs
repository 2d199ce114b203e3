//! The README and docs stay true: every relative link resolves (to a file,
//! and to a heading where it names one), the README stays short enough to
//! read in five minutes, every flag the command synopsis documents is one
//! `--help` lists, and every command has a page in docs/commands/ whose
//! options table lists exactly the options its `--help` does and whose
//! notes and examples are its `--help`'s words.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// The markdown files in `dir`, sorted.
fn markdown_in(dir: &Path) -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    docs
}

/// README.md, docs/*.md, docs/commands/*.md and fuzz/README.md.
fn pages() -> Vec<PathBuf> {
    let root = workspace();
    let mut pages = vec![root.join("README.md"), root.join("fuzz/README.md")];
    pages.extend(markdown_in(&root.join("docs")));
    pages.extend(markdown_in(&root.join("docs/commands")));
    pages
}

/// A command's `--help` text.
fn help_of(command: &[&str]) -> String {
    String::from_utf8(bootproof(&[command, &["--help"]].concat()).stdout).unwrap()
}

/// The long options a `--help` text lists (`--help` itself aside).
fn help_options(help: &str) -> Vec<String> {
    let options = help.split("\nOptions:\n").nth(1).unwrap_or("");
    let mut out: Vec<String> = options
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .filter_map(|l| {
            let l = l
                .strip_prefix("      ")
                .or_else(|| l.get(6..).filter(|_| l.starts_with("  -")))?;
            let flag = l.split([' ', '[', '=']).next()?;
            (flag.starts_with("--") && flag != "--help").then(|| flag.to_string())
        })
        .collect();
    out.sort();
    out
}

/// The visible commands, as `bootproof --help` lists them (`report`'s
/// subcommands in its place).
fn commands() -> Vec<Vec<String>> {
    let help = String::from_utf8(bootproof(&["--help"]).stdout).unwrap();
    let listed = help.split("Commands:\n").nth(1).unwrap();
    let mut out = Vec::new();
    for line in listed
        .lines()
        .take_while(|l| l.is_empty() || l.starts_with(' '))
    {
        let Some(name) = line
            .strip_prefix("  ")
            .and_then(|l| l.split_whitespace().next())
        else {
            continue;
        };
        if line.starts_with("   ") || name == "help" {
            continue;
        }
        if name == "report" {
            out.push(vec!["report".to_string(), "merge".to_string()]);
        } else {
            out.push(vec![name.to_string()]);
        }
    }
    out
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
            let args: Vec<&str> = command.iter().map(String::as_str).collect();
            let help = help_of(&args);
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

/// Every command has `docs/commands/<command>.md`, linked from
/// docs/commands.md, and the page's options table names exactly the
/// options `--help` lists: an option added, renamed or removed fails here
/// until its page says so.
#[test]
fn every_command_has_a_page_with_its_options() {
    let root = workspace();
    let index = std::fs::read_to_string(root.join("docs/commands.md")).unwrap();
    let commands = commands();
    assert!(commands.len() >= 15, "{commands:?}");
    let mut pages_seen = Vec::new();
    for command in &commands {
        let name = command.join("-");
        let page = root.join(format!("docs/commands/{name}.md"));
        let text = std::fs::read_to_string(&page)
            .unwrap_or_else(|e| panic!("{}: {e}: every command has a page", page.display()));
        assert!(
            index.contains(&format!("(commands/{name}.md)")),
            "docs/commands.md does not link {name}.md"
        );
        assert!(text.starts_with(&format!("# bootproof {}\n", command.join(" "))));
        let table = text
            .split("## Options")
            .nth(1)
            .and_then(|t| t.split("\n## ").next())
            .unwrap_or_else(|| panic!("{name}.md has no Options section"));
        let mut documented: Vec<String> = table
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| {
                let cell = l.split("` |").next()?;
                let l = cell.split_once(", ").map_or(cell, |(_, long)| long);
                let flag = l.split([' ', '[', '`', '=']).next()?;
                flag.starts_with("--").then(|| flag.to_string())
            })
            .collect();
        documented.sort();
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        let help = help_of(&args);
        assert_eq!(
            documented,
            help_options(&help),
            "docs/commands/{name}.md's options differ from `bootproof {} --help`",
            command.join(" ")
        );
        // The notes and examples quoted from --help are still its words.
        let help_lines: Vec<&str> = help.lines().map(str::trim).collect();
        for (section, fence) in [("## Notes", "```text\n"), ("## Examples", "```sh\n")] {
            let Some(block) = text
                .split(section)
                .nth(1)
                .and_then(|t| t.split(fence).nth(1))
                .and_then(|t| t.split("```").next())
            else {
                continue;
            };
            for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
                assert!(
                    help_lines.contains(&line),
                    "docs/commands/{name}.md {section}: `{line}` is not in `bootproof {} --help`",
                    command.join(" ")
                );
            }
        }
        pages_seen.push(format!("{name}.md"));
    }
    // No page for a command that is gone.
    let mut on_disk: Vec<String> = markdown_in(&root.join("docs/commands"))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    pages_seen.sort();
    assert_eq!(on_disk, pages_seen);
}
