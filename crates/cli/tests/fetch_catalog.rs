//! `bootproof fetch` and catalog references: a catalog served over real
//! HTTP (Python's http.server on localhost) with a checksum file written by
//! `sha256sum`; the download is compared byte for byte with the source,
//! reused from the cache, fetched again when the cached copy changed, and
//! refused on a checksum mismatch or an HTTP error with nothing kept; a
//! matrix file's `[[image]] catalog = "NAME"` boots the fetched image.

mod common;

use common::*;
use serde_json::Value;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The HTTP server, killed when the test ends however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path) -> (Server, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args(["-m", "http.server", "--bind", "127.0.0.1"])
        .arg(port.to_string())
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (server, port);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("http.server did not start on port {port}");
}

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
    assert!(err.contains("no image \"no-such\" in the catalog"), "{err}");

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
