//! Resolved paths inside a filesystem.

use serde::Serializer;
use std::fmt;

/// A path from the filesystem root as plain name components: no empty
/// components, no `.` or `..`. Produced by [`crate::Volume`]'s resolver.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct NodePath(Vec<Vec<u8>>);

impl NodePath {
    /// The root directory.
    pub fn root() -> NodePath {
        NodePath(Vec::new())
    }
    /// Builds from components; callers guarantee they are plain names.
    pub(crate) fn from_components(c: Vec<Vec<u8>>) -> NodePath {
        NodePath(c)
    }
    /// The components.
    pub fn components(&self) -> &[Vec<u8>] {
        &self.0
    }
    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
    /// `/a/b` in bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        if self.0.is_empty() {
            return b"/".to_vec();
        }
        let mut out = Vec::new();
        for c in &self.0 {
            out.push(b'/');
            out.extend_from_slice(c);
        }
        out
    }
    /// The last component (`None` for the root).
    pub fn file_name(&self) -> Option<&[u8]> {
        self.0.last().map(Vec::as_slice)
    }
    /// The parent directory (the root's parent is the root).
    pub fn parent(&self) -> NodePath {
        let mut c = self.0.clone();
        c.pop();
        NodePath(c)
    }
    /// This path with `name` appended.
    pub fn join(&self, name: &[u8]) -> NodePath {
        let mut c = self.0.clone();
        c.push(name.to_vec());
        NodePath(c)
    }
}

impl fmt::Display for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl fmt::Debug for NodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodePath({self})")
    }
}

/// Serializes bytes as a string, replacing invalid UTF-8.
pub(crate) fn serialize_lossy<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(b))
}
