//! `bootproof fetch` and catalog references: a catalog served over real
//! HTTP (Python's http.server on localhost) with a checksum file written by
//! `sha256sum`; the download is compared byte for byte with the source,
//! reused from the cache, fetched again when the cached copy changed, and
//! refused on a checksum mismatch or an HTTP error with nothing kept; a
//! matrix file's `[[image]] catalog = "NAME"` boots the fetched image.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn bootproof_in(cache: &Path, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bootproof"))
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .env("BOOTPROOF_STATE_DIR", cache.join("state"))
        .env("BOOTPROOF_HISTORY", cache.join("history.sqlite"))
        .env_remove("BOOTPROOF_CATALOG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn catalog_images_download_verified_and_boot_from_a_matrix() {
    let dir = scratch("fetch", "catalog");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    // The published image: a qcow2 made by qemu-img from the arm64 boot
    // image, and its checksum file made by sha256sum (`*name` form).
    let src = www.join("test-arm64.qcow2");
    assert!(Command::new("qemu-img")
        .args(["convert", "-O", "qcow2"])
        .arg(boot_images().join("debian-grub-arm64.raw"))
        .arg(&src)
        .status()
        .unwrap()
        .success());
    let sums = Command::new("sha256sum")
        .args(["--binary", "test-arm64.qcow2"])
        .current_dir(&www)
        .output()
        .unwrap();
    std::fs::write(www.join("SHA256SUMS"), &sums.stdout).unwrap();
    let digest = String::from_utf8(sums.stdout).unwrap()[..64].to_string();
    let (_server, port) = serve(&www);
    let base = format!("http://127.0.0.1:{port}");
    let catalog = dir.join("catalog.toml");
    std::fs::write(
        &catalog,
        format!(
            "[[image]]\nname = \"test-arm64\"\narch = \"aarch64\"\ndescription = \"test\"\n\
             url = \"{base}/test-arm64.qcow2\"\nchecksums = \"{base}/SHA256SUMS\"\n\
             [[image]]\nname = \"tampered\"\narch = \"aarch64\"\n\
             url = \"{base}/test-arm64.qcow2\"\nsha256 = \"{}\"\n\
             [[image]]\nname = \"gone\"\narch = \"x86_64\"\n\
             url = \"{base}/gone.qcow2\"\nsha512 = \"{}\"\n",
            "0".repeat(64),
            "0".repeat(128)
        ),
    )
    .unwrap();
    let cat = catalog.to_str().unwrap();
    let cache = dir.join("cache");

    // First fetch downloads and verifies; the cached file is the source.
    let (code, v, err) = bootproof_in(&cache, &["fetch", "--catalog", cat, "--json", "test-arm64"]);
    assert_eq!(code, 0, "{err}");
    let img = &v["images"][0];
    assert_eq!(img["downloaded"], true);
    assert_eq!(img["algorithm"], "sha256");
    assert_eq!(img["digest"], digest.as_str());
    let cached = Path::new(img["path"].as_str().unwrap()).to_path_buf();
    assert!(cached.starts_with(cache.join("bootproof/images")));
    assert!(std::fs::read(&cached).unwrap() == std::fs::read(&src).unwrap());
    // Second: from the cache.
    let (code, v, _) = bootproof_in(&cache, &["fetch", "--catalog", cat, "--json", "test-arm64"]);
    assert_eq!(code, 0);
    assert_eq!(v["images"][0]["downloaded"], false);
    // A cached copy that changed is not trusted: fetched again.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&cached)
        .unwrap();
    std::io::Write::write_all(&mut f, b"x").unwrap();
    drop(f);
    let (code, v, _) = bootproof_in(&cache, &["fetch", "--catalog", cat, "--json", "test-arm64"]);
    assert_eq!(code, 0);
    assert_eq!(v["images"][0]["downloaded"], true);
    assert!(std::fs::read(&cached).unwrap() == std::fs::read(&src).unwrap());

    // A digest mismatch and an HTTP error: exit 2, nothing kept.
    let (code, _, err) = bootproof_in(&cache, &["fetch", "--catalog", cat, "tampered"]);
    assert_eq!(code, 2);
    assert!(err.contains("sha256 mismatch"), "{err}");
    let (code, _, err) = bootproof_in(&cache, &["fetch", "--catalog", cat, "gone"]);
    assert_eq!(code, 2);
    assert!(err.contains("HTTP 404"), "{err}");
    for name in ["tampered", "gone"] {
        let d = cache.join("bootproof/images").join(name);
        let left: Vec<_> = std::fs::read_dir(&d)
            .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{name}: {left:?}");
    }
    let (code, _, err) = bootproof_in(&cache, &["fetch", "--catalog", cat, "no-such"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no image, kernel or kernel set \"no-such\" in the catalog"),
        "{err}"
    );

    // The listing: the built-in entries and the file's, with cache state.
    let (code, v, _) = bootproof_in(&cache, &["fetch", "--catalog", cat, "--json"]);
    assert_eq!(code, 0);
    let list = v["catalog"].as_array().unwrap();
    let find = |n: &str| list.iter().find(|e| e["name"] == n).unwrap();
    assert_eq!(find("test-arm64")["cached"], cached.to_str().unwrap());
    assert!(find("debian-12-arm64")["url"]
        .as_str()
        .unwrap()
        .starts_with("https://cloud.debian.org/"));
    assert_eq!(find("debian-12-arm64")["cached"], Value::Null);

    // A matrix file names the image by catalog reference; it boots from
    // the cache (the server is gone: no download is needed).
    drop(_server);
    let matrix = dir.join("matrix.toml");
    std::fs::write(
        &matrix,
        "catalog = \"catalog.toml\"\n[[image]]\ncatalog = \"test-arm64\"\n\
         [[variant]]\ngic = 3\n",
    )
    .unwrap();
    let (code, v, err) = bootproof_in(
        &cache,
        &[
            "run",
            "--json",
            "--matrix",
            matrix.to_str().unwrap(),
            "--",
            "uname",
            "-m",
        ],
    );
    assert_eq!(code, 0, "{err}\n{v:#}");
    let c = &v["cells"][0];
    assert_eq!(c["name"], "test-arm64");
    assert_eq!(c["image"], cached.to_str().unwrap());
    assert_eq!(c["stdout"], "aarch64\n");
    // A catalog arch that contradicts the matrix file's is an error.
    std::fs::write(
        &matrix,
        "catalog = \"catalog.toml\"\n[[image]]\ncatalog = \"test-arm64\"\narch = \"x86_64\"\n",
    )
    .unwrap();
    let (code, _, err) = bootproof_in(
        &cache,
        &["run", "--matrix", matrix.to_str().unwrap(), "--", "true"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("the catalog \"aarch64\""), "{err}");
}

/// Runs a tool and asserts it succeeded; its stdout.
fn tool(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The kernel library over real HTTP: an archive laid out as Debian's,
/// holding Debian's real backports kernel package and a metapackage
/// depending on it (built by `dpkg-deb`), indexed by `dpkg-scanpackages`
/// and compressed by `xz`. A kernel set naming the metapackage is fetched
/// (the download is the pool's package, byte for byte, verified against the
/// index's SHA256) and `run --kernel-set` boots that kernel under the
/// image's userland. A package that no longer matches its index entry is
/// refused with nothing kept.
#[test]
fn library_kernels_resolve_through_the_archive_index_and_boot() {
    let dir = scratch("fetch", "kernel-library");
    let archive = dir.join("www/debian");
    let pool = archive.join("pool/main/l/linux");
    std::fs::create_dir_all(&pool).unwrap();
    let real = backports_kernel("arm64");
    let name = tool(
        Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&real)
            .arg("Package"),
    );
    let name = name.trim();
    let release = name.trim_start_matches("linux-image-").to_string();
    std::fs::copy(&real, pool.join(format!("{name}_arm64.deb"))).unwrap();
    let meta = dir.join("meta");
    std::fs::create_dir_all(meta.join("DEBIAN")).unwrap();
    std::fs::write(
        meta.join("DEBIAN/control"),
        format!(
            "Package: linux-image-arm64\nVersion: 1.0\nArchitecture: arm64\nMaintainer: test <t@example.org>\n\
             Depends: {name} (>= 0), initramfs-tools | linux-initramfs-tool\nDescription: test metapackage\n"
        ),
    )
    .unwrap();
    tool(
        Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group"])
            .arg(&meta)
            .arg(pool.join("meta_arm64.deb")),
    );
    let dists = archive.join("dists/test/main/binary-arm64");
    std::fs::create_dir_all(&dists).unwrap();
    let index = tool(
        Command::new("dpkg-scanpackages")
            .args(["-m", "pool", "/dev/null"])
            .current_dir(&archive),
    );
    assert!(index.contains("SHA256: "), "{index}");
    std::fs::write(dists.join("Packages"), index).unwrap();
    tool(Command::new("xz").arg("-k").arg(dists.join("Packages")));
    let (server, port) = serve(&dir.join("www"));
    let catalog = dir.join("catalog.toml");
    std::fs::write(
        &catalog,
        format!(
            "[[kernel]]\nname = \"test-kernel\"\narch = \"aarch64\"\ndescription = \"test\"\n\
             index = \"http://127.0.0.1:{port}/debian/dists/test/main/binary-arm64/Packages.xz\"\n\
             package = \"linux-image-arm64\"\n[[kernel_set]]\nname = \"test-set\"\nkernels = [\"test-kernel\"]\n"
        ),
    )
    .unwrap();
    let cat = catalog.to_str().unwrap();
    let cache = dir.join("cache");

    let (code, v, err) = bootproof_in(&cache, &["fetch", "--catalog", cat, "--json", "test-set"]);
    assert_eq!(code, 0, "{err}");
    let got = &v["images"][0];
    assert_eq!(
        (got["name"].as_str(), got["downloaded"].as_bool()),
        (Some("test-kernel"), Some(true))
    );
    let path = Path::new(got["path"].as_str().unwrap());
    assert!(
        path.starts_with(cache.join("bootproof/kernel-packages/test-kernel")),
        "{path:?}"
    );
    assert!(std::fs::read(path).unwrap() == std::fs::read(&real).unwrap());

    let img = boot_images().join("debian-grub-arm64.raw");
    let args = [
        "run",
        "--json",
        "--catalog",
        cat,
        "--kernel-set",
        "test-set",
        "--variants",
        "gic=3",
        "acpi=on",
    ];
    let mut args: Vec<&str> = args.to_vec();
    args.extend([img.to_str().unwrap(), "--", "uname", "-r"]);
    let run_args = args.clone();
    let (code, v, err) = bootproof_in(&cache, &args);
    assert_eq!(code, 0, "{err}\n{v:#}");
    let cell = v["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kernel"] == "test-kernel");
    let cell = cell.unwrap_or_else(|| panic!("no library kernel cell: {v:#}"));
    assert_eq!(cell["status"], "pass", "{cell:#}");
    assert_eq!(cell["stdout"].as_str().unwrap().trim(), release);

    // The pool's package changed under its index entry: refused, nothing kept.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(pool.join(format!("{name}_arm64.deb")))
        .unwrap();
    std::io::Write::write_all(&mut f, b"x").unwrap();
    drop(f);
    let fresh = dir.join("cache2");
    let (code, _, err) = bootproof_in(&fresh, &["fetch", "--catalog", cat, "test-kernel"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sha256 mismatch"), "{err}");
    let kept =
        std::fs::read_dir(fresh.join("bootproof/kernel-packages/test-kernel")).map_or(0, |d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".deb"))
                .count()
        });
    assert_eq!(kept, 0);
    // A run with that package never verified: the library kernel's cell is
    // an infra error saying why, the image's own kernel still runs (exit 3).
    let (code, v, err) = bootproof_in(&fresh, &run_args);
    assert_eq!(code, 3, "{err}\n{v:#}");
    let status = |kernel: &str| {
        let c = v["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kernel"] == kernel);
        let c = c.unwrap_or_else(|| panic!("no {kernel} cell: {v:#}"));
        (
            c["status"].clone(),
            c["detail"].as_str().unwrap().to_string(),
        )
    };
    let (library, detail) = status("test-kernel");
    assert_eq!(library, "infra-error");
    assert!(detail.contains("sha256 mismatch"), "{detail}");
    assert_eq!(status("image").0, "pass");
    assert!(err.contains("its cells are infra errors"), "{err}");
    assert_eq!(
        v["kernels"][0]["unavailable"].as_str(),
        Some(detail.as_str())
    );
    // The listing names the library: the file's kernel and set, the built-in ones.
    let (code, v, _) = bootproof_in(&cache, &["fetch", "--catalog", cat, "--json"]);
    assert_eq!(code, 0);
    let names = |key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        names("kernels").iter().any(|n| n == "test-kernel")
            && names("kernels")
                .iter()
                .any(|n| n == "ubuntu-24.04-ga-amd64")
    );
    assert!(
        names("kernel_sets").iter().any(|n| n == "test-set")
            && names("kernel_sets").iter().any(|n| n == "lts-arm64")
    );
    // Without the archive, fetch says why; an unknown name is named.
    drop(server);
    let (code, _, err) = bootproof_in(&cache, &["fetch", "--catalog", cat, "test-set"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("test-kernel"), "{err}");
    let (code, _, err) = bootproof_in(&cache, &["fetch", "--catalog", cat, "no-such-set"]);
    assert_eq!(code, 2);
    assert!(err.contains("no image, kernel or kernel set"), "{err}");
}
