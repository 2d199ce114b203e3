//! The documents of `fetch --json`: the catalog listed, or what was fetched.

use super::{cached_copy, Catalog, Entry, Fetched};
use crate::kernel_library::{KernelSet, LibraryKernel};
use serde::Serialize;
use std::path::PathBuf;

/// Schema id of `fetch --json`.
pub const FETCH_SCHEMA: &str = "bootproof.fetch/v1";

/// A catalog image and its verified cached copy.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ListedImage {
    /// The catalog entry.
    #[serde(flatten)]
    pub entry: Entry,
    /// The verified copy's path, when there is one.
    pub cached: Option<PathBuf>,
}

/// `bootproof fetch --json` without names: the catalog.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct CatalogListing {
    /// The document's schema id, [`FETCH_SCHEMA`].
    #[schemars(extend("const" = FETCH_SCHEMA))]
    pub schema: &'static str,
    /// The images.
    pub catalog: Vec<ListedImage>,
    /// The kernel library.
    pub kernels: Vec<LibraryKernel>,
    /// Named sets of library kernels (`run --kernel-set`).
    pub kernel_sets: Vec<KernelSet>,
}

/// `bootproof fetch --json NAME…`: what was fetched or found in the cache.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct FetchReport {
    /// The document's schema id, [`FETCH_SCHEMA`].
    #[schemars(extend("const" = FETCH_SCHEMA))]
    pub schema: &'static str,
    /// One entry per image or kernel package, in the order named.
    pub images: Vec<Fetched>,
}

/// Either document of `fetch --json` (the shape its schema describes).
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum FetchDocument {
    /// Without names.
    Listing(CatalogListing),
    /// With names.
    Fetched(FetchReport),
}

impl Catalog {
    /// The catalog as `fetch --json` lists it, with each image's cached copy.
    pub fn listing(&self) -> CatalogListing {
        CatalogListing {
            schema: FETCH_SCHEMA,
            catalog: self
                .entries()
                .iter()
                .map(|e| ListedImage {
                    entry: e.clone(),
                    cached: cached_copy(e),
                })
                .collect(),
            kernels: self.kernels().to_vec(),
            kernel_sets: self.kernel_sets().to_vec(),
        }
    }
}

impl FetchReport {
    /// The report of `images`.
    pub fn new(images: Vec<Fetched>) -> FetchReport {
        FetchReport {
            schema: FETCH_SCHEMA,
            images,
        }
    }
}
