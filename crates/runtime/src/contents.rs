//! The documents of `ls --json` and `cat --json`: a directory listing and a
//! file's bytes, read from an image in-process.

use base64::Engine;
use bootproof_inspect::ListEntry;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Schema id of `ls --json`.
pub const LS_SCHEMA: &str = "bootproof.ls/v1";
/// Schema id of `cat --json`.
pub const CAT_SCHEMA: &str = "bootproof.cat/v1";

/// What `bootproof ls --json` prints (`bootproof.ls/v1`).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Listing {
    /// The document's schema id, [`LS_SCHEMA`].
    #[schemars(extend("const" = LS_SCHEMA))]
    pub schema: &'static str,
    /// The slot listed (0 = whole disk, else the partition number).
    pub partition: u32,
    /// The path as given.
    pub path: String,
    /// The entries, or the file itself when a file was listed.
    pub entries: Vec<ListEntry>,
}

impl Listing {
    /// The listing of `path` in slot `partition`.
    pub fn new(partition: u32, path: &str, entries: Vec<ListEntry>) -> Listing {
        Listing {
            schema: LS_SCHEMA,
            partition,
            path: path.to_string(),
            entries,
        }
    }
}

/// What `bootproof cat --json` prints (`bootproof.cat/v1`): one file, whole.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct FileContent {
    /// The document's schema id, [`CAT_SCHEMA`].
    #[schemars(extend("const" = CAT_SCHEMA))]
    pub schema: &'static str,
    /// The slot read (0 = whole disk, else the partition number).
    pub partition: u32,
    /// The path as given.
    pub path: String,
    /// The path with every symlink resolved inside the image.
    pub resolved_path: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the content, lower-case hex.
    pub sha256: String,
    /// The content, standard base64 with padding.
    pub content_base64: String,
}

impl FileContent {
    /// The document for `data`, read at `path` (resolved: `resolved_path`).
    pub fn new(partition: u32, path: &str, resolved_path: String, data: &[u8]) -> FileContent {
        FileContent {
            schema: CAT_SCHEMA,
            partition,
            path: path.to_string(),
            resolved_path,
            size: data.len() as u64,
            sha256: format!("{:x}", Sha256::digest(data)),
            content_base64: base64::engine::general_purpose::STANDARD.encode(data),
        }
    }
}
