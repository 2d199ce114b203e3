//! JSON Schemas (draft 2020-12) of every document bootproof writes and of
//! the TOML files it reads, generated from the Rust types that serialize
//! and parse them, so a schema cannot drift from the code. `bootproof
//! schemas DIR` writes them; `docs/schemas/` and the Debian package ship
//! them; a test regenerates them and compares.
//!
//! The schemas say what a document may hold, not that it holds nothing
//! else: "fields are only added within a version" (docs/json.md), so they
//! allow unknown properties, and a consumer's validation keeps passing when
//! a minor release adds one. (The TOML files are the other way round:
//! bootproof refuses unknown keys, and so do their schemas.)

use crate::boot::{BootReport, NotStarted};
use crate::catalog::{CatalogFile, FetchDocument};
use crate::contents::{FileContent, Listing};
use crate::history::{Comparison, HistoryDocument, Ledger};
use crate::inspection::Inspection;
use crate::matrix::MatrixFile;
use crate::prove::ProveReport;
use crate::report::MergedReport;
use crate::run::RunReport;
use crate::verify::VerifyReport;
use bootproof_boot::extract::{ExtractReport, Manifest};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde::Serialize;

/// One schema file.
pub struct SchemaFile {
    /// Its file name in `docs/schemas/` (`inspect.v1.schema.json`).
    pub file: &'static str,
    /// What it describes (its `title`).
    pub title: &'static str,
    /// The schema.
    pub schema: Schema,
}

impl SchemaFile {
    /// The file's bytes: pretty JSON and a final newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(&self.schema).unwrap_or_default();
        text.push(b'\n');
        text
    }
}

/// `boot --json`: the boot's report, or what was known when the VM could
/// not be prepared.
#[derive(Serialize, JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // the schema's shape only; `boot` writes either variant directly
enum BootDocument {
    /// The VM ran.
    Booted(Box<BootReport>),
    /// It could not be prepared.
    NotStarted(Box<NotStarted>),
}

/// The schema of the documents `T` serializes to, titled and described.
fn schema_of<T: JsonSchema>(file: &'static str, title: &'static str, what: &str) -> SchemaFile {
    titled::<T>(
        SchemaSettings::draft2020_12().for_serialize(),
        file,
        title,
        what,
    )
}

/// The schema of the files `T` parses, titled and described.
fn input_schema_of<T: JsonSchema>(
    file: &'static str,
    title: &'static str,
    what: &str,
) -> SchemaFile {
    titled::<T>(
        SchemaSettings::draft2020_12().for_deserialize(),
        file,
        title,
        what,
    )
}

fn titled<T: JsonSchema>(
    settings: SchemaSettings,
    file: &'static str,
    title: &'static str,
    what: &str,
) -> SchemaFile {
    let mut schema = settings.into_generator().into_root_schema_for::<T>();
    if let Some(root) = schema.pointer_mut("") {
        tidy_descriptions(root);
    }
    schema.insert("title".into(), title.into());
    schema.insert("description".into(), what.into());
    SchemaFile {
        file,
        title,
        schema,
    }
}

/// Doc comments read as plain text: rustdoc's intra-doc link brackets go
/// (``[`RUN_SCHEMA`]`` → `` `RUN_SCHEMA` ``) and wrapped lines are joined,
/// paragraphs kept.
fn tidy_descriptions(node: &mut serde_json::Value) {
    match node {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(text)) = map.get_mut("description") {
                let paragraphs: Vec<String> = text
                    .split("\n\n")
                    .map(|p| p.split('\n').collect::<Vec<_>>().join(" "))
                    .collect();
                *text = paragraphs
                    .join("\n\n")
                    .replace("[`", "`")
                    .replace("`]", "`");
            }
            map.values_mut().for_each(tidy_descriptions);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(tidy_descriptions),
        _ => {}
    }
}

/// Every schema bootproof ships, documents first, then the TOML inputs.
pub fn all() -> Vec<SchemaFile> {
    vec![
        schema_of::<Inspection>(
            "inspect.v1.schema.json",
            "bootproof.inspect/v1",
            "bootproof inspect --json: the image's layers, partition table, filesystems, OS, boot files, EFI binaries and problems.",
        ),
        schema_of::<Listing>(
            "ls.v1.schema.json",
            "bootproof.ls/v1",
            "bootproof ls --json: a directory listing read from an image.",
        ),
        schema_of::<FileContent>(
            "cat.v1.schema.json",
            "bootproof.cat/v1",
            "bootproof cat --json: one file read from an image, base64, with its SHA-256.",
        ),
        schema_of::<bootproof_check::Report>(
            "check.v1.schema.json",
            "bootproof.check/v1",
            "bootproof check --json: every rule's verdict with its clause, evidence and fix.",
        ),
        schema_of::<Manifest>(
            "extract.v1.schema.json",
            "bootproof.extract/v1",
            "DIR/manifest.json written by bootproof extract: the kernel, initrd and command line written, with their sources.",
        ),
        schema_of::<ExtractReport>(
            "extract-run.v1.schema.json",
            "bootproof.extract-run/v1",
            "bootproof extract --json: the boot chain followed and the manifest written.",
        ),
        schema_of::<BootDocument>(
            "boot.v1.schema.json",
            "bootproof.boot/v1",
            "bootproof boot --json: how far the boot got, where it stopped and why.",
        ),
        schema_of::<ProveReport>(
            "prove.v1.schema.json",
            "bootproof.prove/v1",
            "bootproof prove --json: check's prediction for each boot and what the boots showed.",
        ),
        schema_of::<Ledger>(
            "predictions.v1.schema.json",
            "bootproof.predictions/v1",
            "bootproof history --predictions --json: how often check's predictions held.",
        ),
        schema_of::<VerifyReport>(
            "verify.v1.schema.json",
            "bootproof.verify/v1",
            "bootproof verify --json: the in-guest checks on each platform variant.",
        ),
        schema_of::<RunReport>(
            "run.v1.schema.json",
            "bootproof.run/v1",
            "bootproof run --json: the command's result in every cell of the matrix.",
        ),
        schema_of::<MergedReport>(
            "run-merged.v1.schema.json",
            "bootproof.run/v1 (merged)",
            "bootproof report merge (JSON): the shards of one run as one report.",
        ),
        schema_of::<FetchDocument>(
            "fetch.v1.schema.json",
            "bootproof.fetch/v1",
            "bootproof fetch --json: the catalog (without names) or what was fetched (with names).",
        ),
        schema_of::<HistoryDocument>(
            "history.v1.schema.json",
            "bootproof.history/v1",
            "bootproof history --json: the newest recorded runs.",
        ),
        schema_of::<Comparison>(
            "compare.v1.schema.json",
            "bootproof.compare/v1",
            "bootproof compare --json: which cells changed between two runs.",
        ),
        input_schema_of::<MatrixFile>(
            "matrix.schema.json",
            "bootproof run --matrix file (TOML)",
            "The matrix file of bootproof run --matrix: images, extra kernels, kernel sets and platform variants.",
        ),
        input_schema_of::<CatalogFile>(
            "catalog.schema.json",
            "bootproof catalog file (TOML)",
            "A catalog file (fetch --catalog, a matrix file's catalog key): images, library kernels and kernel sets.",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_is_draft_2020_12_with_a_unique_file() {
        let all = all();
        let mut files: Vec<&str> = all.iter().map(|s| s.file).collect();
        files.sort();
        files.dedup();
        assert_eq!(files.len(), all.len());
        for s in &all {
            assert_eq!(
                s.schema.get("$schema").and_then(|v| v.as_str()),
                Some("https://json-schema.org/draft/2020-12/schema"),
                "{}",
                s.file
            );
        }
    }

    #[test]
    fn a_document_schema_pins_its_id() {
        let all = all();
        let ls = all.iter().find(|s| s.file == "ls.v1.schema.json").unwrap();
        let id = &ls.schema.as_value()["properties"]["schema"]["const"];
        assert_eq!(id, crate::contents::LS_SCHEMA);
        let description = &ls.schema.as_value()["properties"]["schema"]["description"];
        assert_eq!(description, "The document's schema id, `LS_SCHEMA`.");
    }

    #[test]
    fn descriptions_are_plain_text() {
        let mut doc = serde_json::json!({
            "description": "Wrapped\nline, [`Link`].\n\nNext paragraph.",
            "properties": { "a": { "description": "[`x::Y`]\nz" } }
        });
        tidy_descriptions(&mut doc);
        assert_eq!(
            doc["description"],
            "Wrapped line, `Link`.\n\nNext paragraph."
        );
        assert_eq!(doc["properties"]["a"]["description"], "`x::Y` z");
    }
}
