//! Images inside containers: a compressed file (unpacked once into the
//! cache, [`crate::unpack`]) and a tar archive (an OVA, a cloud tar) whose
//! disk member is read in place. At most one compression and one archive
//! are unwrapped, in that order (`.tar.gz`): nothing nests further, so a
//! hostile archive of archives cannot recurse.

use crate::error::ImageError;
use crate::read_at::ReadAt;
use crate::unpack::Compression;
use crate::{raw, tar, unpack, ChainLink, Follow};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Most of an OVF descriptor read to find the disk it references.
const MAX_OVF: u64 = 1 << 20;

/// What an image was wrapped in, and where QEMU finds the disk.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Container {
    /// `ova`, `tar`, `gzip`, `xz`, `zstd`, or a compressed archive
    /// (`tar+gzip`).
    pub kind: String,
    /// The archive member holding the disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// The file holding the disk's bytes: the archive itself, or the
    /// unpacked copy in the cache.
    pub host: PathBuf,
    /// The disk is bytes `offset..offset + length` of `host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<(u64, u64)>,
}

impl Container {
    /// In words, for reports: "`disk1.vmdk` in an OVA", "xz-compressed".
    pub fn describe(&self) -> String {
        let within = match self.kind.split_once('+') {
            _ if self.kind == "ova" => "an OVA".to_string(),
            Some((_, z)) => format!("a {z}-compressed tar"),
            None if self.member.is_some() => "a tar".to_string(),
            None => format!("{}-compressed", self.kind),
        };
        match &self.member {
            Some(m) => format!("`{m}` in {within}"),
            None => within,
        }
    }
}

/// What opening the inner disk needs from the caller: its format
/// detection and chain bookkeeping, without any further container.
pub(crate) type OpenInner<'a> =
    dyn FnMut(Arc<dyn ReadAt>, &mut Vec<ChainLink>) -> Result<Arc<dyn ReadAt>, ImageError> + 'a;

/// Unpacks `path` (compressed with `kind`) into the cache and opens what
/// it holds: an archive's disk member, or the disk itself.
pub(crate) fn open_compressed(
    path: &Path,
    kind: Compression,
    follow: &Follow<'_>,
    chain: &mut Vec<ChainLink>,
    open_inner: &mut OpenInner<'_>,
) -> Result<Arc<dyn ReadAt>, ImageError> {
    let Some(cache) = &follow.options.unpack_dir else {
        return Err(ImageError::Unsupported {
            path: path.to_path_buf(),
            format: format!("{}-compressed image", kind.name()),
            detail: "no cache directory to unpack it into was given".into(),
        });
    };
    let host = unpack::unpacked(path, kind, cache)?;
    let file: Arc<dyn ReadAt> = Arc::new(raw::HostFile::open(&host, follow.stats.clone())?);
    let mut head = [0u8; 512];
    let n = head.len().min(file.size() as usize);
    file.read_at(0, &mut head[..n])
        .map_err(|e| ImageError::io(&host, e))?;
    if tar::is_tar_header(&head[..n]) {
        let kind = format!("tar+{}", kind.name());
        return open_tar(file, path, &host, &kind, Some(cache), chain, open_inner);
    }
    if Compression::sniff(&head[..n]).is_some() {
        return Err(ImageError::Unsupported {
            path: path.to_path_buf(),
            format: "nested compression".into(),
            detail: format!(
                "a {}-compressed file holding another compressed file",
                kind.name()
            ),
        });
    }
    let disk = open_inner(file, chain)?;
    set_container(
        chain,
        Container {
            kind: kind.name().into(),
            member: None,
            host,
            window: None,
        },
    );
    Ok(disk)
}

/// Opens the disk member of the archive in `file` (whose bytes live in
/// `host`), read in place. A sparse member (holes between data segments)
/// is also copied out into `cache`, since QEMU cannot read it in place.
pub(crate) fn open_tar(
    file: Arc<dyn ReadAt>,
    path: &Path,
    host: &Path,
    kind: &str,
    cache: Option<&Path>,
    chain: &mut Vec<ChainLink>,
    open_inner: &mut OpenInner<'_>,
) -> Result<Arc<dyn ReadAt>, ImageError> {
    let members = tar::members(&*file, path)?;
    let ovf = members
        .iter()
        .find(|m| m.name.to_ascii_lowercase().ends_with(".ovf"));
    let ovf_text = match ovf {
        Some(m) => {
            let mut b = vec![0u8; m.size.min(MAX_OVF) as usize];
            file.read_at(m.offset, &mut b)
                .map_err(|e| ImageError::io(path, e))?;
            Some(String::from_utf8_lossy(&b).into_owned())
        }
        None => None,
    };
    let disk =
        tar::disk_member(&members, ovf_text.as_deref()).map_err(|why| ImageError::Unsupported {
            path: path.to_path_buf(),
            format: "tar archive".into(),
            detail: format!("cannot tell which member is the disk: {why}"),
        })?;
    let member = disk.reader(file);
    let (host, window) = match (&disk.segments, cache) {
        (None, _) => (host.to_path_buf(), Some((disk.offset, disk.size))),
        (Some(_), Some(cache)) => {
            let name = format!(
                "{}-{}.member",
                archive_key(host, cache),
                member_key(&disk.name)
            );
            (unpack::materialized(&*member, cache, &name, path)?, None)
        }
        (Some(_), None) => {
            return Err(ImageError::Unsupported {
                path: path.to_path_buf(),
                format: "sparse tar member".into(),
                detail: "no cache directory to copy it out into was given".into(),
            })
        }
    };
    let reader = open_inner(member, chain)?;
    let kind = match (ovf.is_some(), kind) {
        (true, "tar") => "ova".to_string(),
        _ => kind.to_string(),
    };
    set_container(
        chain,
        Container {
            kind,
            member: Some(disk.name.clone()),
            host,
            window,
        },
    );
    Ok(reader)
}

/// What names an archive in the cache: its unpacked copy's name (a
/// content hash), or a hash of its path, size and modification time.
fn archive_key(host: &Path, cache: &Path) -> String {
    if host.parent() == Some(cache) {
        if let Some(name) = host.file_name() {
            return name.to_string_lossy().into_owned();
        }
    }
    let meta = std::fs::metadata(host).ok();
    let stamp = format!(
        "{}:{:?}:{:?}",
        host.display(),
        meta.as_ref().map(|m| m.len()),
        meta.and_then(|m| m.modified().ok())
    );
    member_key(&stamp)
}

/// A short hash naming a member (or an archive) in the cache.
fn member_key(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Records the container on the disk's own link (the first the inner
/// open pushed), whose file size becomes the container's.
fn set_container(chain: &mut [ChainLink], container: Container) {
    if let Some(link) = chain.first_mut() {
        if let Ok(m) = std::fs::metadata(&link.path) {
            link.file_size = m.len();
        }
        link.container = Some(container);
    }
}
