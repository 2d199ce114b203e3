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
        static QUIET: std::sync::Once = std::sync::Once::new();
        QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    }
    let dev: Arc<dyn ReadAt> = Arc::new(SparseDev::decode(data));
    if let Ok(Some(v)) = bootproof_fs::open_as(kind, dev) {
        let _ = v.fs().label();
        let _ = v.fs().uuid();
        let _ = v.fs().embedded();
        walk(&v);
    }
}

/// Breadth-first over at most 2,000 entries and 12 levels, reading files
/// (up to 1 MiB) and symlinks, resolving each path.
pub fn walk(v: &Volume) {
    let mut queue = std::collections::VecDeque::from([b"/".to_vec()]);
    let mut seen = 0;
    while let Some(dir) = queue.pop_front() {
        if dir.iter().filter(|&&c| c == b'/').count() > 12 {
            continue;
        }
        let Ok(entries) = v.read_dir(&dir) else {
            continue;
        };
        for e in entries {
            seen += 1;
            if seen > 2000 {
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
                    let _ = v.read_limited(&p, 1 << 20);
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
