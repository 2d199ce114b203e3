//! Support for bootproof's fuzz targets: a sparse device decoded from the
//! fuzzer's input, and a bounded walk that exercises a filesystem.

use bootproof_fs::{FileType, FsKind, Volume};
use bootproof_image::ReadAt;
use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

/// Size of the device a sparse input describes.
pub const DEVICE_SIZE: u64 = 1 << 30;

/// A 1 GiB device of zeros with byte runs placed at offsets. Input format,
/// repeated: offset (u64 LE), length (u16 LE), bytes. Lets seeds taken from
/// real images keep their superblocks at real offsets while staying small.
pub struct SparseDev {
    runs: BTreeMap<u64, Vec<u8>>,
}

impl SparseDev {
    /// Decodes fuzzer input; malformed tails are ignored.
    pub fn decode(mut data: &[u8]) -> SparseDev {
        let mut runs = BTreeMap::new();
        while data.len() >= 10 {
            let offset = u64::from_le_bytes(data[..8].try_into().unwrap()) % DEVICE_SIZE;
            let len = usize::from(u16::from_le_bytes([data[8], data[9]]));
            data = &data[10..];
            let len = len.min(data.len()).min((DEVICE_SIZE - offset) as usize);
            runs.insert(offset, data[..len].to_vec());
            data = &data[len..];
        }
        SparseDev { runs }
    }
}

impl ReadAt for SparseDev {
    fn size(&self) -> u64 {
        DEVICE_SIZE
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= DEVICE_SIZE)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "past end"))?;
        buf.fill(0);
        // Runs may overlap; later offsets win, which is fine for fuzzing.
        let first = self
            .runs
            .range(..offset)
            .next_back()
            .map(|(k, _)| *k)
            .unwrap_or(0);
        for (&at, bytes) in self.runs.range(first..end) {
            let run_end = at + bytes.len() as u64;
            if run_end <= offset {
                continue;
            }
            let from = offset.max(at);
            let to = end.min(run_end);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&bytes[(from - at) as usize..(to - at) as usize]);
        }
        Ok(())
    }
}

/// Opens the input as `kind` and walks it, ignoring errors: the target
/// fails only on panics, hangs (libFuzzer's timeout) and excess memory.
pub fn fuzz_fs(kind: FsKind, data: &[u8]) {
    if matches!(kind, FsKind::Fat12 | FsKind::Fat16 | FsKind::Fat32) {
        // bootproof contains known fatfs panics (see crates/fs/src/fat.rs);
        // libfuzzer's hook would abort before containment could act. A panic
        // that escapes containment still reaches libfuzzer's catch_unwind,
        // which aborts, so real escapes are still reported.
        quiet_contained_panics();
    }
    let dev: Arc<dyn ReadAt> = Arc::new(SparseDev::decode(data));
    if let Ok(Some(v)) = bootproof_fs::open_as(kind, dev) {
        let _ = v.fs().label();
        let _ = v.fs().uuid();
        let _ = v.fs().embedded();
        walk(&v);
    }
}

/// Breadth-first over at most 2,000 entries, 12 levels and 400 path
/// operations, reading files (up to 1 MiB each, 32 MiB in all) and
/// symlinks, resolving each path. The totals matter: every operation
/// resolves its path from the root, so a directory cross-linked to itself
/// made one input cost 750 operations of a few milliseconds each — under
/// the sanitizers, past the 10 s timeout (a `fs_fat` finding whose fix in
/// bootproof was a 4 MiB cap per FAT directory listing).
pub fn walk(v: &Volume) {
    let mut ops = 0;
    let mut queue = std::collections::VecDeque::from([b"/".to_vec()]);
    let mut seen = 0;
    let mut budget: u64 = 32 << 20;
    while let Some(dir) = queue.pop_front() {
        if dir.iter().filter(|&&c| c == b'/').count() > 12 {
            continue;
        }
        let Ok(entries) = v.read_dir(&dir) else {
            continue;
        };
        for e in entries {
            seen += 1;
            ops += 2;
            if seen > 2000 || ops > 400 {
                return;
            }
            let mut p = dir.clone();
            if !p.ends_with(b"/") {
                p.push(b'/');
            }
            p.extend_from_slice(&e.name);
            let _ = v.metadata(&p);
            match e.file_type {
                FileType::Dir => queue.push_back(p),
                FileType::Symlink => {
                    let _ = v.read_link(&p);
                }
                _ => {
                    if let Ok(data) = v.read_limited(&p, budget.min(1 << 20)) {
                        budget = budget.saturating_sub(data.len() as u64);
                    }
                    if budget == 0 {
                        return;
                    }
                }
            }
        }
    }
}

/// Walks a kernel package (`.deb`) the way `bootproof run --kernel`
/// does, reading each file (at most 1 MiB of it) and discarding it.
pub fn fuzz_kernel_package(data: &[u8]) -> Vec<String> {
    let mut seen = Vec::new();
    let _ = bootproof_boot::package::walk_deb(
        data,
        std::path::Path::new("fuzz.deb"),
        &mut |path, body| {
            seen.push(path.display().to_string());
            io::copy(&mut std::io::Read::take(body, 1 << 20), &mut io::sink())?;
            Ok(())
        },
    );
    seen
}

/// Silences the panic hook: bootproof contains known fatfs panics (see
/// crates/fs/src/fat.rs) and libFuzzer's hook would abort before
/// containment could act. A panic that escapes containment still reaches
/// libFuzzer's catch_unwind, which aborts, so real escapes are reported.
pub fn quiet_contained_panics() {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
}

/// Files of the FAT volume [`boot_volume`] holds.
const BOOT_FILES: &[(&str, &[u8])] = &[
    ("vmlinuz-6.1.0-fuzz", b"MZ kernel"),
    ("initrd.img-6.1.0-fuzz", b"070701"),
    ("EFI/BOOT/extra.cfg", b"set default=1\nmenuentry 'extra' {\n linux /vmlinuz-6.1.0-fuzz root=/dev/vda2\n initrd /initrd.img-6.1.0-fuzz\n}\n"),
    ("EFI/BOOT/grubenv", b"# GRUB Environment Block\nsaved_entry=extra\n"),
    ("loader/entries/fuzz.conf", b"title Fuzz\nversion 6.1.0\nlinux /vmlinuz-6.1.0-fuzz\ninitrd /initrd.img-6.1.0-fuzz\noptions root=/dev/vda2 $extra\n"),
];

/// A 4 MiB FAT volume (no partition table: slot 0) with a kernel, an
/// initrd, a second GRUB config, a grubenv and a BLS entry, built once
/// per thread with the fatfs crate: what `source`, `configfile`, `search`,
/// `load_env` and `blscfg` in a fuzzed grub.cfg find.
pub fn boot_volume() -> &'static bootproof_inspect::OpenedImage {
    thread_local! {
        static IMG: &'static bootproof_inspect::OpenedImage = Box::leak(Box::new(build_boot_volume()));
    }
    IMG.with(|i| *i)
}

fn build_boot_volume() -> bootproof_inspect::OpenedImage {
    fat_image(4 << 20, BOOT_FILES)
}

/// A FAT volume of `size` bytes holding `files`, made with the fatfs
/// crate and opened as an image with no partition table (slot 0).
pub fn fat_image(size: usize, files: &[(&str, &[u8])]) -> bootproof_inspect::OpenedImage {
    use std::io::Write;
    let mut disk = io::Cursor::new(vec![0u8; size]);
    fatfs::format_volume(&mut disk, fatfs::FormatVolumeOptions::new()).expect("format");
    {
        let fs = fatfs::FileSystem::new(&mut disk, fatfs::FsOptions::new()).expect("mount");
        let root = fs.root_dir();
        for (path, body) in files {
            let mut dir = root.clone();
            let mut parts: Vec<&str> = path.split('/').collect();
            let name = parts.pop().expect("name");
            for d in parts {
                dir = dir.open_dir(d).or_else(|_| dir.create_dir(d)).expect("dir");
            }
            dir.create_file(name)
                .expect("file")
                .write_all(body)
                .expect("write");
        }
    }
    let dev: Arc<dyn ReadAt> = Arc::new(bootproof_image::MemImage(disk.into_inner()));
    let image = bootproof_image::Image::from_reader(dev, "fuzz-volume").expect("image");
    bootproof_inspect::OpenedImage::from_image(image).expect("opened")
}

/// Debian's systemd-boot for arm64 (the `boot_pe` seed): the loader that
/// makes the chain read BLS entries.
const SYSTEMD_BOOT: &[u8] = include_bytes!("../corpus/boot_pe/seed-systemd-bootaa64");

/// `check_texts`: the check crate's text parsers through `check()` on a
/// small arm64 image whose texts come from the input, NUL-separated:
/// /etc/fstab, /boot/config-6.1.0-fuzz, the entry's command line,
/// /etc/os-release, modules.builtin. Returns the findings' count.
pub fn fuzz_check_texts(data: &[u8]) -> usize {
    let mut parts = data.splitn(5, |&b| b == 0);
    let mut next = || parts.next().unwrap_or_default();
    let (fstab, config, cmdline, os_release, builtin) = (next(), next(), next(), next(), next());
    let mut entry = b"title fuzz\nversion 6.1.0-fuzz\nlinux /Image\noptions ".to_vec();
    entry.extend(cmdline.iter().map(|&c| if c == b'\n' { b' ' } else { c }));
    entry.push(b'\n');
    let mut kernel = vec![0u8; 64];
    kernel[0x38..0x3c].copy_from_slice(b"ARM\x64");
    kernel.extend_from_slice(b"Linux version 6.1.0-fuzz (fuzz@bootproof) #1\0");
    let files: [(&str, &[u8]); 9] = [
        ("EFI/BOOT/BOOTAA64.EFI", SYSTEMD_BOOT),
        ("loader/loader.conf", b"default fuzz*\n"),
        ("loader/entries/fuzz.conf", &entry),
        ("Image", &kernel),
        ("etc/fstab", fstab),
        ("etc/os-release", os_release),
        ("boot/config-6.1.0-fuzz", config),
        ("lib/modules/6.1.0-fuzz/modules.builtin", builtin),
        (
            "lib/modules/6.1.0-fuzz/modules.dep",
            b"kernel/virtio_blk.ko:\n",
        ),
    ];
    let img = fat_image(2 << 20, &files);
    bootproof_check::check(&img, bootproof_platform::Arch::Aarch64)
        .findings
        .len()
}

/// A module tree from fuzzer input: sections split by NUL are the wanted
/// names (whitespace-separated), `modules.dep`, `modules.builtin`, then
/// files as `relative/path` newline content (`.ko` bodies with `.modinfo`).
pub struct FuzzModules {
    sections: Vec<Vec<u8>>,
}

impl FuzzModules {
    /// Splits the input into sections.
    pub fn decode(data: &[u8]) -> FuzzModules {
        FuzzModules {
            sections: data
                .split(|&b| b == 0)
                .take(64)
                .map(<[u8]>::to_vec)
                .collect(),
        }
    }

    /// The module names to resolve (at most 16).
    pub fn wanted(&self) -> Vec<String> {
        self.sections
            .first()
            .map(|s| {
                String::from_utf8_lossy(s)
                    .split_whitespace()
                    .take(16)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn files(&self) -> impl Iterator<Item = (String, &[u8])> {
        self.sections.iter().skip(3).filter_map(|s| {
            let nl = s.iter().position(|&b| b == b'\n')?;
            Some((String::from_utf8_lossy(&s[..nl]).into_owned(), &s[nl + 1..]))
        })
    }
}

impl bootproof_boot::modules::ModuleSource for FuzzModules {
    fn read(&self, rel: &str, limit: u64) -> Option<Vec<u8>> {
        let body = match rel {
            "modules.dep" => self.sections.get(1)?.clone(),
            "modules.builtin" => self.sections.get(2)?.clone(),
            _ => self.files().find(|(p, _)| p == rel)?.1.to_vec(),
        };
        (body.len() as u64 <= limit).then_some(body)
    }

    fn list(&self, rel: &str) -> Option<Vec<(String, bool)>> {
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        let mut out: Vec<(String, bool)> = self
            .files()
            .filter_map(|(p, _)| {
                let rest = p.strip_prefix(&prefix)?.to_string();
                Some(match rest.split_once('/') {
                    Some((d, _)) => (d.to_string(), true),
                    None => (rest, false),
                })
            })
            .collect();
        out.sort();
        out.dedup();
        Some(out)
    }
}

/// `boot_grub_script`: the input as a whole grub.cfg.
pub fn fuzz_grub_script(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let chain = bootproof_boot::chain::fuzzing::grub_config(
        boot_volume(),
        0,
        bootproof_platform::Arch::X86_64,
        &text,
    );
    let _ = chain.default_entry();
}

/// `boot_bls`: pattern, NUL, name, NUL, BLS entry text.
pub fn fuzz_bls(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let pattern = parts.next().unwrap_or_default();
    let name = parts.next().unwrap_or_default();
    let entry = parts.next().unwrap_or_default();
    let _ = bootproof_boot::chain::fuzzing::glob(pattern, name);
    let _ = bootproof_boot::chain::fuzzing::bls_entry(entry, 0);
}

/// `boot_module_closure`: a module tree from [`FuzzModules`].
pub fn fuzz_module_closure(data: &[u8]) -> bootproof_boot::modules::Closure {
    let src = FuzzModules::decode(data);
    let wanted = src.wanted();
    let names: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let _ = bootproof_boot::modules::modinfo_depends(data);
    bootproof_boot::modules::resolve(&src, &names)
}

/// `open_image`: the whole open path, both chains and every check rule on
/// a sparse device; returns the boot entries found (for replay tests).
pub fn fuzz_open_image(data: &[u8]) -> usize {
    quiet_contained_panics();
    let dev: Arc<dyn ReadAt> = Arc::new(SparseDev::decode(data));
    let Ok(image) = bootproof_image::Image::from_reader(dev, "fuzz") else {
        return 0;
    };
    let Ok(img) = bootproof_inspect::OpenedImage::from_image(image) else {
        return 0;
    };
    for (_, v) in img.volumes_root_first() {
        let _ = v.read_dir(b"/");
    }
    let mut entries = 0;
    for arch in bootproof_platform::Arch::ALL {
        entries += bootproof_boot::chain::follow(&img, arch).entries.len();
    }
    let _ = bootproof_check::check(&img, bootproof_platform::Arch::X86_64);
    entries
}

/// `render_escape`: every format's escaping keeps any string inert.
pub fn fuzz_render(data: &[u8]) {
    use bootproof_runtime::render::escape;
    let s = String::from_utf8_lossy(data);
    let x = escape::xml(&s);
    let doc = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><testsuite name=\"{x}\"><testcase name=\"{x}\"><failure message=\"{x}\">{x}</failure></testcase></testsuite>"
    );
    if let Err(e) = roxmltree::Document::parse(&doc) {
        panic!("escape::xml({s:?}) gave invalid XML: {e}");
    }
    let h = escape::html(&s);
    assert!(!h.contains(['<', '>', '"', '\'']), "html: {h:?}");
    assert!(h.split('&').skip(1).all(|t| t.contains(';')), "html: {h:?}");
    let m = escape::markdown(&s);
    assert!(!m.contains(['\n', '\r']), "markdown: {m:?}");
    let b = m.as_bytes();
    assert!(
        (0..b.len()).all(|i| b[i] != b'|' || (i > 0 && b[i - 1] == b'\\')),
        "markdown: {m:?}"
    );
    let shown = |c: char| !c.is_control() || matches!(c, '\n' | '\t' | '\x1b');
    for t in [escape::terminal(&s), escape::terminal_keep_colours(&s)] {
        assert!(t.chars().all(shown), "terminal: {t:?}");
    }
    assert!(!escape::terminal(&s).contains('\x1b'));
    // The stage timeline: any console line, stage and time gives a
    // well-formed chart.
    let names = [
        "firmware-started",
        "grub-started",
        "kernel-started",
        "init-reached",
        "userspace-started",
        "login-prompt",
        "ready",
        "root-not-found",
        &s,
    ];
    let stages: Vec<serde_json::Value> = data
        .iter()
        .take(16)
        .enumerate()
        .map(|(i, b)| {
            serde_json::json!({"stage": names[usize::from(*b) % names.len()],
            "host_time": f64::from(*b) - 20.0, "guest_time": i, "line": &*s})
        })
        .collect();
    let boot = serde_json::json!({"outcome": &*s, "cause": &*s, "stages": stages,
        "elapsed": data.first().map_or(0.0, |b| f64::from(*b) / 3.0)});
    let svg = bootproof_runtime::render::timeline::of_boot(&boot, Some(&s));
    if let Err(e) = roxmltree::Document::parse(&svg) {
        panic!("timeline for {s:?} is not well-formed: {e}\n{svg}");
    }
}

/// `agent_records`: guest bytes in input-chosen chunks; returns how many
/// records were kept.
pub fn fuzz_agent_records(data: &[u8]) -> usize {
    let mut r = bootproof_agent::RecordReader::new("fuzznonce");
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let take = (usize::from(n) * 7 + 1).min(tail.len());
        r.feed(&tail[..take]);
        rest = &tail[take..];
    }
    let _ = r.done();
    r.records().len()
}

/// `runtime_package_index`: the same bytes as an archive's `Packages`
/// index and as an RPM repository's primary metadata (network input),
/// resolved for the packages the library names, with and without named
/// companions; every answer is the kernel package first, each package
/// once.
pub fn fuzz_package_index(data: &[u8]) -> usize {
    use bootproof_runtime::kernel_library::{primary_location, resolve_in, resolve_in_primary};
    let mut found = 0;
    if let Ok((href, sha)) = primary_location(data) {
        assert!(!href.is_empty() && sha.len() == 64, "{href} {sha}");
        found += 1;
    }
    for package in ["kernel-core", "kernel-uek-core"] {
        for companions in [&[][..], &["kernel-modules".to_string()][..]] {
            if let Ok(p) = resolve_in_primary(data, package, companions, "aarch64") {
                assert_eq!(p[0].name, package, "{p:?}");
                assert!(p[1..].iter().all(|c| c.version == p[0].version), "{p:?}");
                found += p.len();
            }
        }
    }
    let named = ["linux-modules-{release}".to_string()];
    for package in [
        "linux-image-arm64",
        "linux-image-generic",
        "linux-image-generic-hwe-24.04",
    ] {
        for companions in [&[][..], &named[..]] {
            if let Ok(p) = resolve_in(data, package, companions) {
                assert!(p[0].name.starts_with("linux-"), "{p:?}");
                let mut names: Vec<&str> = p.iter().map(|x| x.name.as_str()).collect();
                names.sort_unstable();
                names.dedup();
                assert!(names.len() == p.len() || !companions.is_empty(), "{p:?}");
                found += p.len();
            }
        }
    }
    found
}

/// The ds-identify policy reader (`bootproof boot`'s seed decision) on
/// image text: the input up to its first NUL is the script, the rest the
/// configuration file. Whatever the text, a verdict with its evidence,
/// and a configuration whose policy mode is `disabled` never searches.
pub fn fuzz_ds_identify(data: &[u8]) -> bool {
    use bootproof_runtime::cloud_init::judge;
    let (script, cfg) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let script = String::from_utf8_lossy(script);
    let cfg = cfg.map(String::from_utf8_lossy);
    let mut any = false;
    for machine in ["x86_64", "aarch64", "riscv64"] {
        let v = judge(Some(&script), cfg.as_deref(), machine);
        assert!(!v.evidence.is_empty());
        let disabled = cfg.as_deref().is_some_and(|c| {
            c.lines()
                .filter_map(|l| l.trim().strip_prefix("policy:"))
                .map(|p| p.trim().trim_matches(['"', '\'']))
                .find(|p| !p.is_empty())
                .is_some_and(|p| p.split(',').next().map(str::trim) == Some("disabled"))
        });
        assert!(!(disabled && v.searches), "{v:?}");
        any |= v.searches;
    }
    any
}
