//! Completion scripts and manual pages, generated from the clap
//! definitions so they cannot drift from `--help`, and the JSON Schemas,
//! generated from the document types.

use bootproof_runtime::Error;
use std::path::Path;

/// `bootproof completions --help` examples.
pub const COMPLETIONS_HELP: &str = "Examples:
  bootproof completions bash > /etc/bash_completion.d/bootproof
  bootproof completions zsh > \"${fpath[1]}/_bootproof\"
  bootproof completions fish > ~/.config/fish/completions/bootproof.fish";

/// `bootproof schemas --help`.
pub const SCHEMAS_HELP: &str =
    "Files: one per document, named after its schema id (inspect.v1.schema.json for
bootproof.inspect/v1, run-merged.v1.schema.json for `report merge`), and
matrix.schema.json and catalog.schema.json for the TOML files. They are the
ones in docs/schemas/ and, installed from the package, /usr/share/bootproof/schemas/.

Examples:
  bootproof schemas /tmp/schemas
  bootproof inspect --json disk.raw > inspect.json &&
    check-jsonschema --schemafile /tmp/schemas/inspect.v1.schema.json inspect.json";

/// Writes every schema of [`bootproof_runtime::schemas::all`] into `dir`.
pub fn schemas(dir: &Path) -> Result<u8, Error> {
    let fail = |e: std::io::Error| Error::new(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(fail)?;
    for s in bootproof_runtime::schemas::all() {
        std::fs::write(dir.join(s.file), s.to_bytes()).map_err(fail)?;
    }
    Ok(0)
}

/// Prints the completion script of `cli` for `shell` (`bash`, `zsh`, `fish`).
pub fn completions(mut cli: clap::Command, shell: &str) -> Result<u8, Error> {
    let shell: clap_complete::Shell = shell.parse().map_err(Error::new)?;
    clap_complete::generate(shell, &mut cli, "bootproof", &mut std::io::stdout());
    Ok(0)
}

/// Writes the pages of `cli`, `bootproof.1` and one per visible command
/// (`bootproof-check.1`, `bootproof-report-merge.1`), into `dir`.
pub fn manpages(cli: clap::Command, dir: &Path) -> Result<u8, Error> {
    let fail = |e: std::io::Error| Error::new(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(fail)?;
    let mut pages = vec![("bootproof".to_string(), cli.clone())];
    // The command tree is bootproof's own, two levels deep.
    for sub in cli.get_subcommands().filter(|c| !c.is_hide_set()) {
        let name = format!("bootproof-{}", sub.get_name());
        for nested in sub.get_subcommands().filter(|c| !c.is_hide_set()) {
            let nested_name = format!("{name}-{}", nested.get_name());
            pages.push((nested_name.clone(), nested.clone().name(nested_name)));
        }
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, cmd) in pages {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.version(env!("CARGO_PKG_VERSION")))
            .render(&mut page)
            .map_err(fail)?;
        std::fs::write(dir.join(format!("{name}.1")), page).map_err(fail)?;
    }
    Ok(0)
}
