//! The ready-made scale-out files in docs/scale-out/ work as written: the
//! GitHub Actions matrix workflow and the Kubernetes Indexed Job are
//! parsed, their shard commands run here as N processes (with `${{ … }}`
//! and JOB_COMPLETION_INDEX filled in, volume mounts mapped to scratch
//! directories), their merge step runs, and the merged report holds the
//! same cells with the same verdicts as one unsharded run.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// The command every file runs (checked against the files' text).
const COMMAND: &str = "sh -c 'test -d /sys/firmware/efi'";

fn docs(name: &str) -> String {
    std::fs::read_to_string(workspace().join("docs/scale-out").join(name)).unwrap()
}

/// Every YAML document in `text`, as JSON values.
fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

/// A shell running `script` in `cwd` with bootproof on PATH.
fn sh(script: &str, cwd: &Path, env: &[(&str, String)], state: &Path) -> Child {
    let bin = Path::new(env!("CARGO_BIN_EXE_bootproof")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    Command::new("/bin/sh")
        .args(["-c", script])
        .current_dir(cwd)
        .env("PATH", path)
        .env("BOOTPROOF_STATE_DIR", state)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .spawn()
        .unwrap()
}

fn wait_ok(children: Vec<Child>, what: &str) {
    for mut c in children {
        let status = c.wait().unwrap();
        assert!(status.success(), "{what}: {status}");
    }
}

/// A matrix of two cells (GICv2 and GICv3) on the arm64 boot image.
fn write_matrix(dir: &Path) -> PathBuf {
    let img = boot_images().join("debian-grub-arm64.raw");
    let file = dir.join("matrix.toml");
    std::fs::write(
        &file,
        format!(
            "[[image]]\npath = \"{}\"\n[[variant]]\ngic = 2\n[[variant]]\ngic = 3\n",
            img.display()
        ),
    )
    .unwrap();
    file
}

/// id → status of a `bootproof.run/v1` report's cells.
fn verdicts(v: &Value) -> BTreeMap<String, String> {
    v["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().into(),
                c["status"].as_str().unwrap().into(),
            )
        })
        .collect()
}

/// One unsharded run of the same matrix and command.
fn unsharded(dir: &Path, state: &Path) -> BTreeMap<String, String> {
    let matrix = write_matrix(dir);
    let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .args(["run", "--no-history", "--json", "--matrix"])
        .arg(&matrix)
        .args(["--", "sh", "-c", "test -d /sys/firmware/efi"])
        .env("BOOTPROOF_STATE_DIR", state)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cells = verdicts(&v);
    assert_eq!(cells.len(), 2);
    assert!(cells.values().all(|s| s == "pass"), "{cells:?}");
    cells
}

/// The GitHub Actions workflow: the `shard` job once per matrix entry,
/// then the `merge` job's merge step. Returns the merged report.
fn github_actions(dir: &Path, state: &Path) -> Value {
    let text = docs("github-actions.yml");
    assert!(text.contains(COMMAND));
    let wf = &yaml_docs(&text)[0];
    let shard_job = &wf["jobs"]["shard"];
    let shards: Vec<String> = shard_job["strategy"]["matrix"]["shard"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(shards.len() >= 2, "a matrix of shards");
    let step = |job: &Value, name: &str| -> String {
        job["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no step {name:?}"))["run"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let run = step(shard_job, "Run this shard");
    write_matrix(dir);
    let children = shards
        .iter()
        .map(|k| {
            let script = run
                .replace("${{ matrix.shard }}", k)
                .replace("${{ strategy.job-total }}", &shards.len().to_string());
            assert!(
                !script.contains("${{"),
                "every expression filled in: {script}"
            );
            sh(&script, dir, &[], state)
        })
        .collect();
    wait_ok(children, "a GitHub Actions shard");
    assert_eq!(wf["jobs"]["merge"]["needs"], "shard");
    let merge = step(&wf["jobs"]["merge"], "Merge the shards");
    let summary = dir.join("summary.md");
    let env = [("GITHUB_STEP_SUMMARY", summary.display().to_string())];
    wait_ok(vec![sh(&merge, dir, &env, state)], "the merge step");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert_eq!(md.matches("✅ exit 0").count(), 2, "{md}");
    let xml = std::fs::read_to_string(dir.join("bootproof.xml")).unwrap();
    assert!(xml.contains("tests=\"2\""), "{xml}");
    serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap()
}

/// The Kubernetes Indexed Job: one process per completion index with
/// JOB_COMPLETION_INDEX and the container's env, volume mounts mapped to
/// scratch directories; then the merge Job. Returns the merged report.
fn kubernetes(dir: &Path, state: &Path) -> Value {
    let text = docs("kubernetes-indexed-job.yaml");
    assert!(text.contains(COMMAND));
    let jobs = yaml_docs(&text);
    let indexed = jobs
        .iter()
        .find(|j| j["spec"]["completionMode"] == "Indexed")
        .expect("an Indexed Job");
    let merge_job = jobs
        .iter()
        .find(|j| j["metadata"]["name"] == "bootproof-merge")
        .expect("a merge Job");
    let completions = indexed["spec"]["completions"].as_u64().unwrap();
    // Mount points become scratch directories.
    let mounts = |job: &Value| -> Vec<(String, PathBuf)> {
        job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let at = m["mountPath"].as_str().unwrap().to_string();
                let local = dir.join(at.trim_start_matches('/'));
                std::fs::create_dir_all(&local).unwrap();
                (at, local)
            })
            .collect()
    };
    let script_of = |job: &Value| -> String {
        let c = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["command"], serde_json::json!(["/bin/sh", "-c"]));
        let mut s = c["args"][0].as_str().unwrap().to_string();
        for (at, local) in mounts(job) {
            s = s.replace(&at, &local.display().to_string());
        }
        s
    };
    let container = &indexed["spec"]["template"]["spec"]["containers"][0];
    let env: Vec<(&str, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        env.contains(&("SHARDS", completions.to_string())),
        "SHARDS matches completions"
    );
    write_matrix(&mkdir(dir.join("work")));
    let script = script_of(indexed);
    let children = (0..completions)
        .map(|i| {
            let mut env = env.clone();
            env.push(("JOB_COMPLETION_INDEX", i.to_string()));
            sh(&script, dir, &env, state)
        })
        .collect();
    wait_ok(children, "a Kubernetes shard");
    wait_ok(
        vec![sh(&script_of(merge_job), dir, &[], state)],
        "the merge Job",
    );
    serde_json::from_slice(&std::fs::read(dir.join("results/run.json")).unwrap()).unwrap()
}

#[test]
fn documented_shards_merge_into_the_cells_of_one_unsharded_run() {
    let dir = scratch("scale-out", "all");
    let state = dir.join("state");
    let whole = unsharded(&mkdir(dir.join("unsharded")), &state);
    let gha_dir = mkdir(dir.join("gha"));
    let gha = github_actions(&gha_dir, &state);
    assert_eq!(verdicts(&gha), whole, "GitHub Actions shards");
    assert_eq!(gha["still_skipped"], serde_json::json!([]));
    assert_eq!(gha["merged_from"].as_array().unwrap().len(), 2);
    let k8s = kubernetes(&mkdir(dir.join("k8s")), &state);
    assert_eq!(verdicts(&k8s), whole, "Kubernetes shards");
    // Each cell ran in exactly one shard: merging a shard that ran a cell
    // with itself is refused.
    let busy = ["shard-1.json", "shard-2.json"]
        .iter()
        .map(|f| gha_dir.join(f))
        .find(|f| {
            let v: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
            verdicts(&v).values().any(|s| s != "skipped")
        })
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .args(["report", "merge"])
        .args([&busy, &busy])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ran in two of the reports"));
}

/// `create_dir_all`, then the path.
fn mkdir(p: PathBuf) -> PathBuf {
    std::fs::create_dir_all(&p).unwrap();
    p
}
