//! Following the boot chain the firmware would take on a fresh VM: the
//! removable-media path on the ESP, what that binary is, and the loader
//! configuration it reads, down to boot entries (kernel, initrds, command
//! line) and where each piece came from.

use crate::grub::{self, Action};
use crate::pe::{self, EfiKind, PeInfo};
use bootproof_fs::{FileType, Volume};
use bootproof_inspect::{OpenedImage, PartSelector, Slot};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;

/// GPT type of the Boot Loader Specification's extended boot partition.
const XBOOTLDR: &str = "BC13C2FF-59E6-4262-A352-B275FD6F7172";
/// Largest config or EFI binary read while following the chain.
const MAX_CONFIG: u64 = 4 << 20;
const MAX_EFI: u64 = 256 << 20;
/// `configfile`/`source` hops followed.
const MAX_HOPS: usize = 8;

/// Guest architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// 64-bit Arm.
    Aarch64,
    /// 64-bit x86.
    X86_64,
}

impl Arch {
    /// The UEFI removable-media file name.
    pub fn removable_name(self) -> &'static str {
        match self {
            Arch::Aarch64 => "BOOTAA64.EFI",
            Arch::X86_64 => "BOOTX64.EFI",
        }
    }
    /// The PE machine type.
    pub fn machine(self) -> u16 {
        match self {
            Arch::Aarch64 => pe::MACHINE_AARCH64,
            Arch::X86_64 => pe::MACHINE_X86_64,
        }
    }
    /// `aarch64` / `x86_64`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Aarch64 => "aarch64",
            Arch::X86_64 => "x86_64",
        }
    }
    /// Parses `aarch64`/`arm64`/`x86_64`/`amd64`.
    pub fn parse(s: &str) -> Option<Arch> {
        match s {
            "aarch64" | "arm64" => Some(Arch::Aarch64),
            "x86_64" | "amd64" | "x64" => Some(Arch::X86_64),
            _ => None,
        }
    }
}

/// A file inside the image: slot (partition number) and path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRef {
    /// Partition number (as in `bootproof inspect`).
    pub slot: u32,
    /// Absolute path inside that filesystem.
    pub path: String,
}

impl fmt::Display for FileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.slot, self.path)
    }
}

/// One way the image can boot.
#[derive(Debug, Clone, Serialize)]
pub struct BootEntry {
    /// Title as the loader shows it.
    pub title: String,
    /// Where the entry is defined (`1:/loader/entries/x.conf`, `2:/boot/grub/grub.cfg`).
    pub source: String,
    /// The kernel (or UKI) file.
    pub kernel: FileRef,
    /// Initrds, in order (the loader concatenates them).
    pub initrds: Vec<FileRef>,
    /// Kernel command line as configured.
    pub cmdline: String,
    /// Whether the loader boots this one by default.
    pub default: bool,
    /// The kernel is a Unified Kernel Image (initrd and cmdline inside).
    pub uki: bool,
    /// Version from the entry, when it states one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A problem met while following the chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainProblem {
    /// Stable code, e.g. `chain.no-removable-path`.
    pub code: String,
    /// What was found.
    pub message: String,
}

/// The chain as followed.
#[derive(Debug, Clone, Serialize)]
pub struct BootChain {
    /// Architecture followed.
    pub arch: Arch,
    /// The ESP slot used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub esp: Option<u32>,
    /// The removable-path binary, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removable: Option<FileRef>,
    /// What that binary is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removable_info: Option<PeInfo>,
    /// Each hop, in words ("shim loads 1:/EFI/BOOT/grubaa64.efi").
    pub steps: Vec<String>,
    /// Boot entries in menu order.
    pub entries: Vec<BootEntry>,
    /// Problems met.
    pub problems: Vec<ChainProblem>,
}

impl BootChain {
    /// The entry booted by default.
    pub fn default_entry(&self) -> Option<&BootEntry> {
        self.entries
            .iter()
            .find(|e| e.default)
            .or(self.entries.first())
    }
    fn problem(&mut self, code: &str, message: impl Into<String>) {
        self.problems.push(ChainProblem {
            code: code.into(),
            message: message.into(),
        });
    }
}

fn vol(img: &OpenedImage, slot: u32) -> Option<&Volume> {
    img.volume(&PartSelector::Number(slot)).ok().map(|(_, v)| v)
}

fn read_text(img: &OpenedImage, f: &FileRef) -> Option<String> {
    vol(img, f.slot)?
        .read_limited(f.path.as_bytes(), MAX_CONFIG)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn exists(img: &OpenedImage, f: &FileRef) -> bool {
    vol(img, f.slot).is_some_and(|v| {
        v.metadata(f.path.as_bytes())
            .is_ok_and(|m| m.file_type == FileType::File)
    })
}

fn list(img: &OpenedImage, slot: u32, dir: &str) -> Vec<String> {
    vol(img, slot)
        .and_then(|v| v.read_dir(dir.as_bytes()).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
        .collect()
}

/// ESP slots: by partition type, else FAT volumes holding `/EFI`.
fn esps(img: &OpenedImage) -> Vec<&Slot> {
    let typed: Vec<&Slot> = img
        .slots
        .iter()
        .filter(|s| s.is_esp() && s.volume.is_some())
        .collect();
    if !typed.is_empty() {
        return typed;
    }
    img.slots
        .iter()
        .filter(|s| {
            s.kind.is_fat()
                && s.volume
                    .as_ref()
                    .is_some_and(|v| v.exists(b"/EFI").unwrap_or(false))
        })
        .collect()
}

/// Guesses the guest architecture: the removable binary present, else the
/// root partition type, else the kernels' own headers.
pub fn detect_arch(img: &OpenedImage) -> Option<Arch> {
    for esp in esps(img) {
        for arch in [Arch::Aarch64, Arch::X86_64] {
            if exists(
                img,
                &FileRef {
                    slot: esp.number,
                    path: format!("/EFI/BOOT/{}", arch.removable_name()),
                },
            ) {
                return Some(arch);
            }
        }
    }
    for s in &img.slots {
        match s.partition.as_ref().map(|p| p.type_name.as_str()) {
            Some("Linux root (ARM64)") | Some("Linux /usr (ARM64)") => return Some(Arch::Aarch64),
            Some("Linux root (x86-64)") | Some("Linux /usr (x86-64)") => return Some(Arch::X86_64),
            _ => {}
        }
    }
    None
}

/// Compares versions the way `sort -V` roughly does (digit runs numerically).
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(s: &str) -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let d = c.is_ascii_digit();
            match out.last_mut() {
                Some((ld, run)) if *ld == d => run.push(c),
                _ => out.push((d, c.to_string())),
            }
        }
        out
    }
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(&pb) {
        let o = if x.0 && y.0 {
            let (xs, ys) = (x.1.trim_start_matches('0'), y.1.trim_start_matches('0'));
            xs.len().cmp(&ys.len()).then_with(|| xs.cmp(ys))
        } else {
            x.1.cmp(&y.1)
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

fn glob(pattern: &str, s: &str) -> bool {
    fn rec(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => rec(&p[1..], s) || (!s.is_empty() && rec(p, &s[1..])),
            (Some(b'?'), Some(_)) => rec(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => rec(&p[1..], &s[1..]),
            _ => false,
        }
    }
    rec(pattern.as_bytes(), s.as_bytes())
}

/// A Boot Loader Specification type #1 entry file.
fn bls_entry(
    text: &str,
    slot: u32,
    source: String,
    vars: &dyn Fn(&str) -> Option<String>,
    chain: &mut BootChain,
) -> Option<BootEntry> {
    let mut title = None;
    let mut version = None;
    let mut linux = None;
    let mut initrds = Vec::new();
    let mut options = Vec::new();
    let mut efi = None;
    for line in text.lines() {
        let line = line.trim();
        let Some((k, v)) = line.split_once(|c: char| c.is_whitespace()) else {
            continue;
        };
        let v = v.trim().to_string();
        match k {
            "title" => title = Some(v),
            "version" => version = Some(v),
            "linux" => linux = Some(v),
            "initrd" => initrds.extend(v.split_whitespace().map(str::to_string)),
            "options" => options.push(v),
            "efi" => efi = Some(v),
            _ => {}
        }
    }
    let mut cmdline = options.join(" ");
    // GRUB's blscfg expands variables such as $kernelopts from grubenv.
    if cmdline.contains('$') {
        let expanded = grub::expand(&cmdline, &|n| vars(n).or_else(|| Some(format!("${n}"))));
        for word in expanded.split_whitespace().filter(|w| w.starts_with('$')) {
            chain.problem("chain.unresolved-variable", format!("{source}: `{word}` is not defined (grubenv lacks it); the kernel would get it literally"));
        }
        cmdline = expanded;
    }
    let (kernel, uki) = match (linux, efi) {
        (Some(l), _) => (l, false),
        (None, Some(e)) => (e, true),
        (None, None) => {
            chain.problem(
                "chain.entry-without-kernel",
                format!("{source} names no `linux` or `efi`"),
            );
            return None;
        }
    };
    let at = |p: &str| FileRef {
        slot,
        path: if p.starts_with('/') {
            p.to_string()
        } else {
            format!("/{p}")
        },
    };
    Some(BootEntry {
        title: title.unwrap_or_else(|| source.clone()),
        source,
        kernel: at(&kernel),
        initrds: initrds.iter().map(|i| at(i)).collect(),
        cmdline,
        default: false,
        uki,
        version,
    })
}

/// Loads every BLS entry in `dir` on `slot`.
fn bls_dir(
    img: &OpenedImage,
    slot: u32,
    dir: &str,
    vars: &dyn Fn(&str) -> Option<String>,
    chain: &mut BootChain,
) -> Vec<(String, BootEntry)> {
    let mut out = Vec::new();
    for name in list(img, slot, dir) {
        if !name.ends_with(".conf") {
            continue;
        }
        let f = FileRef {
            slot,
            path: format!("{dir}/{name}"),
        };
        if let Some(text) = read_text(img, &f) {
            if let Some(e) = bls_entry(&text, slot, f.to_string(), vars, chain) {
                out.push((name.trim_end_matches(".conf").to_string(), e));
            }
        }
    }
    // Newest version first, then by id: the order systemd-boot and blscfg show.
    out.sort_by(|a, b| {
        let v = |e: &BootEntry| e.version.clone().unwrap_or_default();
        version_cmp(&v(&b.1), &v(&a.1)).then_with(|| b.0.cmp(&a.0))
    });
    out
}

fn uki_entry(img: &OpenedImage, f: &FileRef, default: bool) -> Option<BootEntry> {
    let data = vol(img, f.slot)?
        .read_limited(f.path.as_bytes(), MAX_EFI)
        .ok()?;
    let text = |s: &str| {
        PeInfo::section_data(&data, s).map(|b| {
            String::from_utf8_lossy(b)
                .trim_end_matches('\0')
                .trim()
                .to_string()
        })
    };
    let osrel = text(".osrel").unwrap_or_default();
    let title = osrel
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|t| t.trim_matches('"').to_string())
        .unwrap_or_else(|| f.path.clone());
    Some(BootEntry {
        title,
        source: f.to_string(),
        kernel: f.clone(),
        initrds: Vec::new(),
        cmdline: text(".cmdline").unwrap_or_default(),
        default,
        uki: true,
        version: text(".uname"),
    })
}

fn systemd_boot(img: &OpenedImage, esp: u32, chain: &mut BootChain) {
    let conf = read_text(
        img,
        &FileRef {
            slot: esp,
            path: "/loader/loader.conf".into(),
        },
    )
    .unwrap_or_default();
    let default_pattern = conf
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("default")
                .map(|v| v.trim().to_string())
        })
        .filter(|v| !v.is_empty());
    let mut all = Vec::new();
    let mut places = vec![esp];
    places.extend(
        img.slots
            .iter()
            .filter(|s| {
                s.partition
                    .as_ref()
                    .and_then(|p| p.type_guid)
                    .is_some_and(|g| g.to_string() == XBOOTLDR)
            })
            .map(|s| s.number),
    );
    let no_vars = |_: &str| None;
    for &slot in &places {
        all.extend(bls_dir(img, slot, "/loader/entries", &no_vars, chain));
        for name in list(img, slot, "/EFI/Linux") {
            if name.to_ascii_lowercase().ends_with(".efi") {
                let f = FileRef {
                    slot,
                    path: format!("/EFI/Linux/{name}"),
                };
                if let Some(e) = uki_entry(img, &f, false) {
                    all.push((name.trim_end_matches(".efi").to_string(), e));
                }
            }
        }
    }
    chain.steps.push(format!(
        "systemd-boot reads {esp}:/loader/loader.conf and {} entr{}",
        all.len(),
        if all.len() == 1 { "y" } else { "ies" }
    ));
    let pick = default_pattern.as_ref().and_then(|p| {
        all.iter().position(|(id, _)| {
            glob(p.trim_end_matches(".conf"), id) || glob(p, &format!("{id}.conf"))
        })
    });
    let pick = pick.unwrap_or(0);
    for (i, (_, mut e)) in all.into_iter().enumerate() {
        e.default = i == pick;
        chain.entries.push(e);
    }
}

/// A GRUB device name → our slot: `(hd0,gpt2)`, `hd0,msdos1`, or an
/// internal `(slotN)` from a resolved `search`.
fn grub_device(dev: &str) -> Option<u32> {
    let d = dev.trim_start_matches('(').trim_end_matches(')');
    if let Some(n) = d.strip_prefix("slot") {
        return n.parse().ok();
    }
    let part = d.split(',').nth(1)?;
    part.trim_start_matches(|c: char| c.is_ascii_alphabetic())
        .parse()
        .ok()
}

/// Resolves a GRUB path (`(dev)/p`, or `/p` on `$root`).
fn grub_path(p: &str, root: Option<u32>) -> Option<FileRef> {
    if let Some(rest) = p.strip_prefix('(') {
        let (dev, path) = rest.split_once(')')?;
        return Some(FileRef {
            slot: grub_device(dev)?,
            path: if path.is_empty() {
                "/".into()
            } else {
                path.to_string()
            },
        });
    }
    Some(FileRef {
        slot: root?,
        path: p.to_string(),
    })
}

struct GrubState<'a> {
    img: &'a OpenedImage,
    vars: HashMap<String, String>,
    hops: usize,
    menu: Vec<grub::MenuEntry>,
    menu_sources: Vec<String>,
    bls: Vec<BootEntry>,
    /// Files of GRUB's own memdisk, addressed as `(memdisk)/path`.
    memdisk: HashMap<String, Vec<u8>>,
}

impl GrubState<'_> {
    /// The filesystem GRUB's `search` would find: by UUID, label, or a file it holds.
    fn search_slot(&self, by: &str, value: &str) -> Option<&Slot> {
        self.img.slots.iter().find(|s| match by {
            "fs-uuid" => s
                .uuid
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(value)),
            "label" => s.label.as_deref() == Some(value),
            _ => s
                .volume
                .as_ref()
                .is_some_and(|v| v.exists(value.as_bytes()).unwrap_or(false)),
        })
    }

    /// A config file by GRUB path: on the memdisk or on an image partition.
    fn read_config(&self, path: &str) -> Option<(String, String)> {
        if let Some(p) = path.strip_prefix("(memdisk)") {
            let text = self
                .memdisk
                .get(&p.trim_start_matches('/').to_lowercase())?;
            return Some((String::from_utf8_lossy(text).into_owned(), path.to_string()));
        }
        let f = grub_path(path, self.root())?;
        read_text(self.img, &f).map(|t| (t, f.to_string()))
    }

    /// GRUB's `[ -e PATH ]` (files and directories).
    fn path_exists(&self, path: &str) -> bool {
        if let Some(p) = path.strip_prefix("(memdisk)") {
            let p = p.trim_matches('/').to_lowercase();
            return p.is_empty()
                || self
                    .memdisk
                    .keys()
                    .any(|k| *k == p || k.starts_with(&format!("{p}/")));
        }
        grub_path(path, self.root()).is_some_and(|f| {
            vol(self.img, f.slot).is_some_and(|v| v.metadata(f.path.as_bytes()).is_ok())
        })
    }

    /// Evaluates an `if`/`elif` condition: `[ … ]`/`test`, `search`, `true`/`false`.
    fn condition(&mut self, words: &[String], chain: &mut BootChain) -> bool {
        let (negate, words) = match words.first().map(String::as_str) {
            Some("!") => (true, &words[1..]),
            _ => (false, words),
        };
        let result = match words.first().map(String::as_str) {
            Some("[") | Some("test") => {
                let inner: Vec<String> = words[1..].iter().filter(|w| *w != "]").cloned().collect();
                self.test(&inner)
            }
            Some(c) if c.starts_with("search") => {
                grub::search(words).is_some_and(|a| self.act(a, chain))
            }
            Some("false") => false,
            _ => true, // other commands are assumed to succeed
        };
        result != negate
    }

    /// The `test` builtin: `-o` binds loosest, then `-a`, then `!` and primaries.
    fn test(&self, w: &[String]) -> bool {
        if let Some(i) = w.iter().position(|x| x == "-o") {
            return self.test(&w[..i]) || self.test(&w[i + 1..]);
        }
        if let Some(i) = w.iter().position(|x| x == "-a") {
            return self.test(&w[..i]) && self.test(&w[i + 1..]);
        }
        match w {
            [n, rest @ ..] if n == "!" => !self.test(rest),
            [op, s] if op == "-z" => s.is_empty(),
            [op, s] if op == "-n" => !s.is_empty(),
            [op, p] if matches!(op.as_str(), "-e" | "-f" | "-s" | "-d") => self.path_exists(p),
            [a, op, b] if op == "=" || op == "==" => a == b,
            [a, op, b] if op == "!=" => a != b,
            [s] => !s.is_empty(),
            _ => false,
        }
    }

    /// An `if … fi` block starting at `lines[start]`; runs the first branch
    /// whose condition holds and returns the index after `fi`.
    fn if_block(
        &mut self,
        lines: &[&str],
        start: usize,
        source: &str,
        chain: &mut BootChain,
    ) -> usize {
        let cond_of = |line: &str| -> Vec<String> {
            let mut w = grub::words(&line.replace(';', " "));
            w.remove(0); // `if` / `elif`
            w.retain(|x| x != "then");
            w
        };
        let mut branches: Vec<(Option<Vec<String>>, Vec<&str>)> =
            vec![(Some(cond_of(lines[start])), Vec::new())];
        let mut depth = 0;
        let mut i = start + 1;
        while i < lines.len() {
            let first = grub::words(&lines[i].replace(';', " "))
                .into_iter()
                .next()
                .unwrap_or_default();
            match first.as_str() {
                "if" => depth += 1,
                "fi" if depth == 0 => break,
                "fi" => depth -= 1,
                "elif" if depth == 0 => {
                    branches.push((Some(cond_of(lines[i])), Vec::new()));
                    i += 1;
                    continue;
                }
                "else" if depth == 0 => {
                    branches.push((None, Vec::new()));
                    i += 1;
                    continue;
                }
                _ => {}
            }
            branches.last_mut().expect("one branch").1.push(lines[i]);
            i += 1;
        }
        for (cond, body) in branches {
            let holds = match cond {
                None => true,
                Some(c) => {
                    let lookup = |n: &str| self.vars.get(n).cloned();
                    let c: Vec<String> = c.iter().map(|x| grub::expand(x, &lookup)).collect();
                    self.condition(&c, chain)
                }
            };
            if holds {
                self.run(&body.join("\n"), source, chain);
                break;
            }
        }
        i + 1
    }
    fn root(&self) -> Option<u32> {
        self.vars.get("root").and_then(|r| grub_device(r))
    }

    /// Performs an action; returns whether it succeeded (for `if search …`).
    fn act(&mut self, action: Action, chain: &mut BootChain) -> bool {
        match action {
            Action::Search { by, value, var } => {
                let found = self.search_slot(&by, &value);
                match found {
                    Some(s) => {
                        chain.steps.push(format!(
                            "GRUB `search --{by} {value}` finds slot {}",
                            s.number
                        ));
                        self.vars.insert(var, format!("slot{}", s.number));
                        true
                    }
                    None => {
                        chain
                            .steps
                            .push(format!("GRUB `search --{by} {value}` finds nothing"));
                        false
                    }
                }
            }
            Action::ConfigFile(path) => self.run_path(&path, chain),
            Action::LoadEnv(file) => {
                let f = match file {
                    Some(p) => grub_path(&p, self.root()),
                    None => self
                        .vars
                        .get("prefix")
                        .and_then(|p| grub_path(&format!("{p}/grubenv"), self.root())),
                };
                if let Some(text) = f.as_ref().and_then(|f| read_text(self.img, f)) {
                    chain
                        .steps
                        .push(format!("GRUB loads environment {}", f.expect("read")));
                    for (k, v) in grub::parse_env(&text) {
                        self.vars.insert(k, v);
                    }
                    return true;
                }
                false
            }
            Action::Blscfg => {
                let Some(root) = self.root() else {
                    return false;
                };
                let vars = self.vars.clone();
                let lookup = move |n: &str| vars.get(n).cloned();
                for dir in ["/loader/entries", "/boot/loader/entries"] {
                    let found = bls_dir(self.img, root, dir, &lookup, chain);
                    if !found.is_empty() {
                        chain.steps.push(format!(
                            "GRUB blscfg reads {} entries from {root}:{dir}",
                            found.len()
                        ));
                        // Paths in BLS entries are relative to the partition holding /boot.
                        self.bls.extend(found.into_iter().map(|(_, mut e)| {
                            if dir.starts_with("/boot") {
                                for f in std::iter::once(&mut e.kernel).chain(e.initrds.iter_mut())
                                {
                                    if !f.path.starts_with("/boot/") {
                                        f.path = format!("/boot{}", f.path);
                                    }
                                }
                            }
                            e
                        }));
                        return true;
                    }
                }
                false
            }
        }
    }

    /// `configfile`/`source`/`normal PATH` on the memdisk or the image.
    fn run_path(&mut self, path: &str, chain: &mut BootChain) -> bool {
        if !path.starts_with("(memdisk)") {
            return match grub_path(path, self.root()) {
                Some(f) => self.run_file(&f, chain),
                None => {
                    chain.problem(
                        "chain.config-missing",
                        format!("GRUB `configfile {path}`: no root device set"),
                    );
                    false
                }
            };
        }
        if self.hops >= MAX_HOPS {
            chain.problem(
                "chain.config-loop",
                format!("GRUB configuration hops exceed {MAX_HOPS} at {path}"),
            );
            return false;
        }
        self.hops += 1;
        match self.read_config(path) {
            Some((text, label)) => {
                chain.steps.push(format!("GRUB reads its memdisk {label}"));
                self.run(&text, &label, chain);
                true
            }
            None => {
                chain.problem(
                    "chain.config-missing",
                    format!("GRUB configuration {path} is not in GRUB's memdisk"),
                );
                false
            }
        }
    }

    fn run_file(&mut self, f: &FileRef, chain: &mut BootChain) -> bool {
        if self.hops >= MAX_HOPS {
            chain.problem(
                "chain.config-loop",
                format!("GRUB configuration hops exceed {MAX_HOPS} at {f}"),
            );
            return false;
        }
        self.hops += 1;
        let Some(text) = read_text(self.img, f) else {
            chain.problem(
                "chain.config-missing",
                format!("GRUB configuration {f} does not exist"),
            );
            return false;
        };
        chain.steps.push(format!("GRUB reads {f}"));
        // GRUB sets $config_directory to the directory of the file it reads.
        let dir = f.path.rsplit_once('/').map_or("", |(d, _)| d);
        self.vars
            .insert("config_directory".into(), format!("(slot{}){dir}", f.slot));
        self.run(&text, &f.to_string(), chain);
        true
    }

    fn run(&mut self, text: &str, source: &str, chain: &mut BootChain) {
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let w = grub::words(lines[i]);
            i += 1;
            let Some(cmd) = w.first().map(String::as_str) else {
                continue;
            };
            let lookup = |n: &str| self.vars.get(n).cloned();
            let w: Vec<String> = w.iter().map(|x| grub::expand(x, &lookup)).collect();
            match cmd {
                "if" => {
                    i = self.if_block(&lines, i - 1, source, chain);
                }
                "menuentry" => {
                    let (entry, next) = self.menuentry(&w, &lines, i);
                    self.menu.push(entry);
                    self.menu_sources.push(source.to_string());
                    i = next;
                }
                "submenu" | "function" => {
                    // Skip the block (its entries are alternatives of the default).
                    let mut depth = lines[i - 1].matches('{').count() as i32
                        - lines[i - 1].matches('}').count() as i32;
                    while depth > 0 && i < lines.len() {
                        depth += lines[i].matches('{').count() as i32
                            - lines[i].matches('}').count() as i32;
                        i += 1;
                    }
                }
                "set" => {
                    if let Some((k, v)) = w.get(1).and_then(|a| a.split_once('=')) {
                        self.vars.insert(k.to_string(), v.to_string());
                    }
                }
                "configfile" | "source" | "normal" => {
                    if let Some(p) = w.get(1) {
                        self.run_path(&p.clone(), chain);
                    }
                }
                "load_env" => {
                    let file = w
                        .iter()
                        .position(|x| x == "-f" || x == "--file")
                        .and_then(|p| w.get(p + 1).cloned());
                    self.act(Action::LoadEnv(file), chain);
                }
                "blscfg" => {
                    self.act(Action::Blscfg, chain);
                }
                c if c.starts_with("search") => {
                    if let Some(a) = grub::search(&w) {
                        self.act(a, chain);
                    }
                }
                _ => {}
            }
        }
    }

    fn menuentry(
        &mut self,
        head: &[String],
        lines: &[&str],
        mut i: usize,
    ) -> (grub::MenuEntry, usize) {
        let mut entry = grub::MenuEntry {
            title: head.get(1).cloned().unwrap_or_default(),
            id: head
                .iter()
                .position(|x| x == "--id")
                .and_then(|p| head.get(p + 1).cloned()),
            root: self.vars.get("root").cloned(),
            ..Default::default()
        };
        let mut depth = head.iter().filter(|x| x.contains('{')).count() as i32;
        let mut vars = self.vars.clone();
        while i < lines.len() && depth > 0 {
            let line = lines[i];
            i += 1;
            depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
            let lookup = |n: &str| vars.get(n).cloned();
            let w: Vec<String> = grub::words(line)
                .iter()
                .map(|x| grub::expand(x, &lookup))
                .collect();
            match w.first().map(String::as_str) {
                Some("linux" | "linuxefi" | "linux16") if w.len() > 1 => {
                    entry.linux = Some((w[1].clone(), w[2..].to_vec()))
                }
                Some("initrd" | "initrdefi" | "initrd16") => {
                    entry.initrds.extend(w[1..].iter().cloned())
                }
                Some("set") => {
                    if let Some((k, v)) = w.get(1).and_then(|a| a.split_once('=')) {
                        vars.insert(k.to_string(), v.to_string());
                        if k == "root" {
                            entry.root = Some(v.to_string());
                        }
                    }
                }
                Some(c) if c.starts_with("search") => {
                    if let Some(Action::Search { by, value, var }) = grub::search(&w) {
                        let found = self.search_slot(&by, &value);
                        if let Some(s) = found {
                            vars.insert(var.clone(), format!("slot{}", s.number));
                            if var == "root" {
                                entry.root = Some(format!("slot{}", s.number));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        (entry, i)
    }
}

fn grub_chain(img: &OpenedImage, grub_bin: &FileRef, arch: Arch, chain: &mut BootChain) {
    let dir = grub_bin
        .path
        .rsplit_once('/')
        .map_or("", |(d, _)| d)
        .to_string();
    let embedded = vol(img, grub_bin.slot)
        .and_then(|v| v.read_limited(grub_bin.path.as_bytes(), MAX_EFI).ok())
        .and_then(|data| {
            pe::analyze(&data).and_then(|i| crate::grub_image::parse(&data, i.pe32_plus))
        })
        .unwrap_or_default();
    let mut state = GrubState {
        img,
        vars: HashMap::new(),
        hops: 0,
        menu: Vec::new(),
        menu_sources: Vec::new(),
        bls: Vec::new(),
        memdisk: embedded.memdisk.clone(),
    };
    let here = format!("(slot{}){dir}", grub_bin.slot);
    // The variables GRUB's EFI core sets before running anything.
    let prefix = match embedded.prefix.as_deref() {
        Some(p) if p.starts_with('(') => p.to_string(),
        Some(p) if !p.is_empty() => format!("(slot{}){p}", grub_bin.slot),
        _ => here.clone(),
    };
    state
        .vars
        .insert("root".into(), format!("slot{}", grub_bin.slot));
    state.vars.insert("prefix".into(), prefix.clone());
    state.vars.insert("cmdpath".into(), here.clone());
    state.vars.insert(
        "grub_cpu".into(),
        match arch {
            Arch::Aarch64 => "arm64",
            Arch::X86_64 => "x86_64",
        }
        .into(),
    );
    state.vars.insert("grub_platform".into(), "efi".into());
    if prefix.starts_with("(memdisk)") {
        state.vars.insert("root".into(), "memdisk".into());
    }
    if let Some(config) = &embedded.config {
        // An embedded config runs first (Debian's: `normal (memdisk)/grub.cfg`).
        chain
            .steps
            .push(format!("GRUB runs the config embedded in {grub_bin}"));
        state.run(config, &format!("{grub_bin} (embedded config)"), chain);
    } else {
        // Otherwise normal mode reads $prefix/grub.cfg; distribution GRUBs
        // without an embedded config read grub.cfg beside themselves.
        let candidates = [format!("{prefix}/grub.cfg"), format!("{here}/grub.cfg")];
        match candidates.iter().find(|c| state.path_exists(c)) {
            Some(c) => {
                let c = c.clone();
                state.run_path(&c, chain);
            }
            None => {
                chain.problem(
                    "chain.config-missing",
                    format!(
                        "no grub.cfg at {} or {}: GRUB would stop at its prompt",
                        candidates[0], candidates[1]
                    ),
                );
                return;
            }
        }
    }
    finish_grub(state, chain);
}

/// Turns the interpreted menu (and blscfg entries) into boot entries.
fn finish_grub(state: GrubState<'_>, chain: &mut BootChain) {
    let default = state
        .vars
        .get("default")
        .cloned()
        .unwrap_or_else(|| "0".into());
    let default = if default == "${saved_entry}" || default.is_empty() {
        state
            .vars
            .get("saved_entry")
            .cloned()
            .unwrap_or_else(|| "0".into())
    } else {
        default
    };
    let mut entries: Vec<BootEntry> = Vec::new();
    for (e, source) in state.menu.iter().zip(&state.menu_sources) {
        let Some((kernel, args)) = &e.linux else {
            continue;
        };
        let root = e.root.as_deref().and_then(grub_device);
        let Some(kernel) = grub_path(kernel, root) else {
            chain.problem(
                "chain.no-root",
                format!("menu entry `{}`: no root device for {kernel}", e.title),
            );
            continue;
        };
        entries.push(BootEntry {
            title: e.title.clone(),
            source: source.clone(),
            kernel,
            initrds: e
                .initrds
                .iter()
                .filter_map(|i| grub_path(i, root))
                .collect(),
            cmdline: args.join(" "),
            default: false,
            uki: false,
            version: None,
        });
    }
    entries.extend(state.bls);
    let idx = default
        .parse::<usize>()
        .ok()
        .or_else(|| {
            entries.iter().position(|e| {
                e.title == default
                    || state
                        .menu
                        .iter()
                        .any(|m| m.id.as_deref() == Some(default.as_str()) && m.title == e.title)
            })
        })
        .unwrap_or(0);
    if let Some(e) = entries.get_mut(idx) {
        e.default = true;
    }
    chain.entries = entries;
}

/// Follows the chain for `arch` from the ESP's removable-media path.
pub fn follow(img: &OpenedImage, arch: Arch) -> BootChain {
    let mut chain = BootChain {
        arch,
        esp: None,
        removable: None,
        removable_info: None,
        steps: Vec::new(),
        entries: Vec::new(),
        problems: Vec::new(),
    };
    let esps = esps(img);
    let Some(esp) = esps.first() else {
        chain.problem(
            "chain.no-esp",
            "no EFI System Partition (GPT type C12A7328-…, or a FAT volume with /EFI)",
        );
        return chain;
    };
    chain.esp = Some(esp.number);
    let removable = FileRef {
        slot: esp.number,
        path: format!("/EFI/BOOT/{}", arch.removable_name()),
    };
    if !exists(img, &removable) {
        let others: Vec<String> = list(img, esp.number, "/EFI")
            .into_iter()
            .filter(|d| !d.eq_ignore_ascii_case("BOOT"))
            .collect();
        chain.problem(
            "chain.no-removable-path",
            format!(
                "{removable} does not exist{}; a fresh VM's firmware finds nothing to boot",
                if others.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (only vendor directories: /EFI/{})",
                        others.join(", /EFI/")
                    )
                }
            ),
        );
        return chain;
    }
    let Some(data) =
        vol(img, esp.number).and_then(|v| v.read_limited(removable.path.as_bytes(), MAX_EFI).ok())
    else {
        chain.problem("chain.unreadable", format!("{removable} cannot be read"));
        return chain;
    };
    let Some(info) = pe::analyze(&data) else {
        chain.problem(
            "chain.not-pe",
            format!("{removable} is not a PE/COFF image"),
        );
        return chain;
    };
    chain.steps.push(format!(
        "firmware runs {removable} ({:?}, {}, {})",
        info.kind,
        info.machine_name,
        if info.signed { "signed" } else { "unsigned" }
    ));
    chain.removable = Some(removable.clone());
    let kind = info.kind;
    chain.removable_info = Some(info);
    match kind {
        EfiKind::Shim => {
            let dir = "/EFI/BOOT";
            let next = list(img, esp.number, dir).into_iter().find(|n| {
                n.to_ascii_lowercase().starts_with("grub")
                    && n.to_ascii_lowercase().ends_with(".efi")
            });
            match next {
                Some(n) => {
                    let g = FileRef {
                        slot: esp.number,
                        path: format!("{dir}/{n}"),
                    };
                    chain.steps.push(format!("shim loads {g}"));
                    grub_chain(img, &g, arch, &mut chain);
                }
                None => chain.problem(
                    "chain.shim-without-grub",
                    format!("shim at {removable} has no grub*.efi beside it to load"),
                ),
            }
        }
        EfiKind::Grub => grub_chain(img, &removable, arch, &mut chain),
        EfiKind::SystemdBoot => systemd_boot(img, esp.number, &mut chain),
        EfiKind::Uki => {
            if let Some(e) = uki_entry(img, &removable, true) {
                chain.entries.push(e);
            }
        }
        EfiKind::LinuxKernel => chain.entries.push(BootEntry {
            title: "EFI-stub kernel at the removable path".into(),
            source: removable.to_string(),
            kernel: removable.clone(),
            initrds: Vec::new(),
            cmdline: String::new(),
            default: true,
            uki: false,
            version: None,
        }),
        EfiKind::Other => chain.problem(
            "chain.unknown-loader",
            format!("{removable} is an EFI application bootproof does not know how to follow"),
        ),
    }
    if chain.entries.is_empty() && chain.problems.is_empty() {
        chain.problem(
            "chain.no-entries",
            "the boot loader's configuration defines no bootable entry",
        );
    }
    chain
}
