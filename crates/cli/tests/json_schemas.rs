//! The JSON Schemas shipped in docs/schemas/ are exactly what the code
//! generates, and real `--json` outputs of every command, on the test
//! images and real boots, validate against them with an independent
//! validator (python3-jsonschema, Draft 2020-12). Validation is strict
//! (common/validate_json.py): a property the schema does not name fails,
//! so an output the schema does not fully describe is caught, not only a
//! wrong type. The TOML examples in docs/matrix.md validate against the
//! matrix and catalog schemas.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn schemas_dir() -> PathBuf {
    workspace().join("docs/schemas")
}

/// Runs the validator; `Err` carries its report.
fn validator(args: &[&std::ffi::OsStr]) -> Result<String, String> {
    let out = Command::new("python3")
        .arg(workspace().join("crates/cli/tests/common/validate_json.py"))
        .args(args)
        .output()
        .expect("python3 runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// Validates each document against its schema file, strictly or not.
fn validate(strict: bool, docs: &[(&str, PathBuf)]) -> Result<String, String> {
    assert!(!docs.is_empty());
    let pairs: Vec<std::ffi::OsString> = docs
        .iter()
        .map(|(schema, doc)| {
            let mut pair = schemas_dir().join(schema).into_os_string();
            pair.push("=");
            pair.push(doc);
            pair
        })
        .collect();
    let strict_flag = std::ffi::OsStr::new("--strict");
    let args: Vec<&std::ffi::OsStr> = strict
        .then_some(strict_flag)
        .into_iter()
        .chain(pairs.iter().map(|p| p.as_os_str()))
        .collect();
    validator(&args)
}

fn assert_valid(docs: &[(&str, PathBuf)]) {
    match validate(true, docs) {
        Ok(report) => {
            assert!(report.contains(&format!("{} documents checked, 0 problems", docs.len())))
        }
        Err(report) => panic!("documents do not match their schemas:\n{report}"),
    }
}

/// Runs bootproof with `env`, writes its stdout to `dir/name`, and returns
/// the exit status and the path (the output must be JSON).
fn save(dir: &Path, name: &str, env: &[(&str, &Path)], args: &[&str]) -> (i32, PathBuf) {
    let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v.as_os_str())))
        .env_remove("BOOTPROOF_CATALOG")
        .output()
        .unwrap();
    let _: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let path = dir.join(name);
    std::fs::write(&path, &out.stdout).unwrap();
    (out.status.code().unwrap(), path)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn shipped_schemas_are_the_generated_ones_and_valid_draft_2020_12() {
    let dir = scratch("schemas", "generated");
    let out = bootproof(&["schemas", s(&dir)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let generated = names(&dir);
    assert_eq!(
        generated,
        names(&schemas_dir()),
        "docs/schemas/ differs from `bootproof schemas`: regenerate with `cargo run -- schemas docs/schemas`"
    );
    assert!(generated.len() >= 17, "{generated:?}");
    for f in &generated {
        assert!(
            std::fs::read(dir.join(f)).unwrap() == std::fs::read(schemas_dir().join(f)).unwrap(),
            "docs/schemas/{f} is stale: regenerate with `cargo run -- schemas docs/schemas`"
        );
    }
    let paths: Vec<PathBuf> = generated.iter().map(|f| schemas_dir().join(f)).collect();
    let mut args = vec![std::ffi::OsStr::new("--check-schemas")];
    args.extend(paths.iter().map(|p| p.as_os_str()));
    let report = validator(&args).unwrap_or_else(|r| panic!("{r}"));
    assert!(
        report.contains(&format!("{} schemas are valid", generated.len())),
        "{report}"
    );
}

#[test]
fn the_validator_refuses_what_a_schema_does_not_describe() {
    let dir = scratch("schemas", "refuses");
    let img = image("gpt.raw");
    let (_, real) = save(&dir, "inspect.json", &[], &["inspect", "--json", s(&img)]);
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&real).unwrap()).unwrap();
    assert_valid(&[("inspect.v1.schema.json", real)]);

    // A property the schema does not name, deep in the document: the
    // shipped schema allows it (fields are added within a version), the
    // strict check does not.
    doc["partition_table"]["partitions"][0]["surprise"] = Value::from(1);
    let extra = dir.join("extra.json");
    std::fs::write(&extra, doc.to_string()).unwrap();
    let pair = [("inspect.v1.schema.json", extra)];
    assert!(validate(false, &pair).is_ok());
    let report = validate(true, &pair).unwrap_err();
    assert!(report.contains("surprise"), "{report}");

    // A wrong type, a missing required field and another schema id fail
    // either way.
    let broken = |name: &str, edit: &dyn Fn(&mut Value)| -> String {
        let mut d: Value =
            serde_json::from_slice(&std::fs::read(dir.join("inspect.json")).unwrap()).unwrap();
        edit(&mut d);
        let p = dir.join(name);
        std::fs::write(&p, d.to_string()).unwrap();
        validate(false, &[("inspect.v1.schema.json", p)]).unwrap_err()
    };
    let r = broken("type.json", &|d| {
        d["image"]["virtual_size"] = Value::from("big")
    });
    assert!(r.contains("virtual_size") || r.contains("'big'"), "{r}");
    let r = broken("missing.json", &|d| {
        d["image"].as_object_mut().unwrap().remove("chain");
    });
    assert!(r.contains("'chain' is a required property"), "{r}");
    let r = broken("id.json", &|d| {
        d["schema"] = Value::from("bootproof.inspect/v2")
    });
    assert!(r.contains("bootproof.inspect/v1"), "{r}");

    // Matrix files: bootproof refuses unknown keys, and so does the schema.
    let typo = dir.join("typo.toml");
    std::fs::write(&typo, "timout = 30\n[[image]]\npath = \"a.raw\"\n").unwrap();
    let r = validate(false, &[("matrix.schema.json", typo)]).unwrap_err();
    assert!(r.contains("timout"), "{r}");
}

#[test]
fn static_commands_validate() {
    let dir = scratch("schemas", "static");
    let mut docs: Vec<(&str, PathBuf)> = Vec::new();
    // inspect: every test image (partition tables, filesystems, LVM,
    // containers, qcow2/VHD/VHDX/VMDK) and every boot image.
    let manifest = manifest();
    let mut images: Vec<PathBuf> = manifest["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| image(i["name"].as_str().unwrap()))
        .filter(|p| p.is_file())
        .collect();
    let boot: Vec<PathBuf> = std::fs::read_dir(boot_images())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "raw"))
        .collect();
    assert!(
        images.len() > 20 && boot.len() > 8,
        "{} {}",
        images.len(),
        boot.len()
    );
    images.extend(boot.iter().cloned());
    for (n, img) in images.iter().enumerate() {
        let (_, p) = save(
            &dir,
            &format!("inspect-{n}.json"),
            &[],
            &["inspect", "--json", "--allow-backing", s(img)],
        );
        docs.push(("inspect.v1.schema.json", p));
    }
    // check (with and without Secure Boot) and extract on the boot images.
    for (n, img) in boot.iter().enumerate() {
        let (_, p) = save(
            &dir,
            &format!("check-{n}.json"),
            &[],
            &["check", "--json", s(img)],
        );
        docs.push(("check.v1.schema.json", p));
    }
    let signed = boot_images().join("debian-signed-arm64.raw");
    let (_, p) = save(
        &dir,
        "check-sb.json",
        &[],
        &["check", "--json", "--secure-boot", s(&signed)],
    );
    docs.push(("check.v1.schema.json", p));
    let grub = boot_images().join("debian-grub-arm64.raw");
    let out = dir.join("extracted");
    let (code, p) = save(
        &dir,
        "extract.json",
        &[],
        &["extract", "--json", s(&grub), "-o", s(&out)],
    );
    assert_eq!(code, 0);
    docs.push(("extract-run.v1.schema.json", p));
    docs.push(("extract.v1.schema.json", out.join("manifest.json")));
    // ls and cat.
    let (code, p) = save(&dir, "ls.json", &[], &["ls", "--json", s(&grub), "2:/boot"]);
    assert_eq!(code, 0);
    docs.push(("ls.v1.schema.json", p));
    let (code, p) = save(
        &dir,
        "cat.json",
        &[],
        &["cat", "--json", s(&grub), "2:/etc/os-release"],
    );
    assert_eq!(code, 0);
    docs.push(("cat.v1.schema.json", p));
    // fetch: the catalog, and an image fetched from a file:// entry.
    let cache = dir.join("cache");
    let env: [(&str, &Path); 1] = [("XDG_CACHE_HOME", &cache)];
    let (_, p) = save(&dir, "fetch-list.json", &env, &["fetch", "--json"]);
    docs.push(("fetch.v1.schema.json", p));
    let published = image("gpt.qcow2");
    let sha = std::process::Command::new("sha256sum")
        .arg(&published)
        .output()
        .unwrap();
    let catalog = dir.join("catalog.toml");
    std::fs::write(
        &catalog,
        format!(
            "[[image]]\nname = \"local\"\narch = \"x86_64\"\nurl = \"file://{}\"\nsha256 = \"{}\"\n",
            published.display(),
            &String::from_utf8(sha.stdout).unwrap()[..64]
        ),
    )
    .unwrap();
    let (code, p) = save(
        &dir,
        "fetch.json",
        &env,
        &["fetch", "--json", "--catalog", s(&catalog), "local"],
    );
    assert_eq!(code, 0);
    docs.push(("fetch.v1.schema.json", p));
    docs.push(("catalog.schema.json", catalog));
    docs.push((
        "catalog.schema.json",
        workspace().join("crates/runtime/src/catalog/catalog.toml"),
    ));
    // The TOML examples of docs/matrix.md: matrix files and a catalog file.
    let md = std::fs::read_to_string(workspace().join("docs/matrix.md")).unwrap();
    let blocks: Vec<&str> = md
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 3, "{}", blocks.len());
    for (n, b) in blocks.iter().enumerate() {
        let schema = if b.contains("url = ") {
            "catalog.schema.json"
        } else {
            "matrix.schema.json"
        };
        let p = dir.join(format!("matrix-md-{n}.toml"));
        std::fs::write(&p, b).unwrap();
        docs.push((schema, p));
    }
    assert_valid(&docs);
}

#[test]
fn booted_commands_validate() {
    let dir = scratch("schemas", "booted");
    let img = boot_images().join("debian-grub-arm64.raw");
    let (history, state) = (dir.join("history.sqlite"), dir.join("state"));
    let env: [(&str, &Path); 2] = [
        ("BOOTPROOF_HISTORY", &history),
        ("BOOTPROOF_STATE_DIR", &state),
    ];
    let mut docs: Vec<(&str, PathBuf)> = Vec::new();
    let (code, p) = save(&dir, "boot.json", &env, &["boot", "--json", s(&img)]);
    assert_eq!(code, 0);
    docs.push(("boot.v1.schema.json", p));
    let (code, p) = save(
        &dir,
        "boot-not-started.json",
        &env,
        &["boot", "--json", "--firmware", "/nonexistent", s(&img)],
    );
    assert_eq!(code, 2);
    docs.push(("boot.v1.schema.json", p));
    let one = ["--variants", "gic=3", "acpi=on", "transport=pci"];
    let (code, p) = save(
        &dir,
        "verify.json",
        &env,
        &[&["verify", "--json"][..], &one, &[s(&img)]].concat(),
    );
    assert_eq!(code, 0);
    docs.push(("verify.v1.schema.json", p));
    // Two shards of one run (their reports, merged), both recorded: the
    // history lists them and compare compares them.
    let mut shards = Vec::new();
    for k in ["1/2", "2/2"] {
        let args = [&[
            "run",
            "--json",
            "--shard",
            k,
            "--variants",
            "gic=3",
            "acpi=on,off",
            "transport=pci",
            s(&img),
            "--",
            "true",
        ][..]]
        .concat();
        let (code, p) = save(&dir, &format!("run-{}.json", &k[..1]), &env, &args);
        assert_eq!(code, 0);
        docs.push(("run.v1.schema.json", p.clone()));
        shards.push(p);
    }
    let (code, merged) = save(
        &dir,
        "merged.json",
        &env,
        &["report", "merge", s(&shards[0]), s(&shards[1])],
    );
    assert_eq!(code, 0);
    docs.push(("run-merged.v1.schema.json", merged.clone()));
    let (code, p) = save(&dir, "prove.json", &env, &["prove", "--json", s(&img)]);
    assert_eq!(code, 0);
    docs.push(("prove.v1.schema.json", p));
    let (_, listed) = save(&dir, "history.json", &env, &["history", "--json"]);
    docs.push(("history.v1.schema.json", listed.clone()));
    let (_, p) = save(
        &dir,
        "predictions.json",
        &env,
        &["history", "--predictions", "--json"],
    );
    docs.push(("predictions.v1.schema.json", p));
    let (code, p) = save(
        &dir,
        "compare.json",
        &env,
        &["compare", "--json", "latest~1", "latest"],
    );
    assert_eq!(code, 0);
    docs.push(("compare.v1.schema.json", p));
    // The documents are not vacuous: the run recorded two shards and the
    // merge holds both cells, one ran in each shard or both in one.
    let history: Value = serde_json::from_slice(&std::fs::read(&listed).unwrap()).unwrap();
    assert_eq!(history["runs"].as_array().unwrap().len(), 2, "{history}");
    let merged: Value = serde_json::from_slice(&std::fs::read(&merged).unwrap()).unwrap();
    assert_eq!(merged["summary"]["pass"], 2, "{merged}");
    assert_valid(&docs);
}
