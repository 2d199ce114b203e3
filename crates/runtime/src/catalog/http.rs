//! The network and digest side of the catalog: the HTTP client (HTTPS
//! never falls back to plain HTTP), the publishers' checksum-file forms,
//! and a digest computed as a download streams.

use sha2::{Digest, Sha256, Sha512};
use std::io::Read;
use std::time::Duration;

/// The HTTP client. An `https://` URL is fetched with HTTPS only, so a
/// redirect to `http://` (which would let the network rewrite the image or
/// its checksum file) is refused; plain `http://` entries (local mirrors)
/// stay possible, as the catalog chose them.
fn agent(https: bool) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(120))
        .https_only(https)
        .redirects(5)
        .user_agent(concat!("bootproof/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Opens a URL for reading: (reader, length when known).
pub(crate) fn open_url(url: &str) -> Result<(Box<dyn Read + Send>, Option<u64>), String> {
    if let Some(path) = url.strip_prefix("file://") {
        let f = std::fs::File::open(path).map_err(|e| format!("{url}: {e}"))?;
        let len = f.metadata().ok().map(|m| m.len());
        return Ok((Box::new(f), len));
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("{url}: only https://, http:// and file:// URLs"));
    }
    let resp = agent(url.starts_with("https://"))
        .get(url)
        .call()
        .map_err(|e| match e {
            ureq::Error::Status(code, r) => format!("{url}: HTTP {code} {}", r.status_text()),
            // (ureq names the URL itself.)
            ureq::Error::Transport(t) => t.to_string(),
        })?;
    let len = resp
        .header("Content-Length")
        .and_then(|l| l.trim().parse().ok());
    Ok((resp.into_reader(), len))
}

/// The digest a checksum file lists for file `want`, in either form the
/// tools write: GNU (`<hex>  <name>`, `*<name>` in binary mode), as
/// Debian's and Ubuntu's SHA256SUMS are, or BSD (`SHA256 (<name>) =
/// <hex>`, `sha256sum --tag`), as Fedora's, AlmaLinux's, Rocky's and
/// CentOS's CHECKSUM files are (a PGP-signed file's armour lines match
/// neither form and are skipped).
pub(super) fn listed_digest<'a>(text: &'a str, want: &str) -> Option<&'a str> {
    let hex = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_hexdigit());
    text.lines().find_map(|line| {
        if let Some((head, digest)) = line.split_once(") = ") {
            let (_, name) = head.split_once(" (")?;
            return (name == want && hex(digest.trim())).then(|| digest.trim());
        }
        let mut words = line.split_whitespace();
        let (Some(digest), Some(name), None) = (words.next(), words.next(), words.next()) else {
            return None;
        };
        (name.trim_start_matches('*') == want && hex(digest)).then_some(digest)
    })
}

/// A digest computed as bytes stream through.
pub(super) enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub(super) fn new(algorithm: &str) -> Hasher {
        if algorithm == "sha512" {
            Hasher::Sha512(Sha512::new())
        } else {
            Hasher::Sha256(Sha256::new())
        }
    }
    pub(super) fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }
    pub(super) fn hex(self) -> String {
        match self {
            Hasher::Sha256(h) => bootproof_image::digest::hex(h.finalize()),
            Hasher::Sha512(h) => bootproof_image::digest::hex(h.finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both checksum-file forms, as `sha256sum` and `sha256sum --tag`
    /// write them, and the `*name` of binary mode.
    #[test]
    fn checksum_files_in_gnu_and_bsd_form_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.qcow2"), b"a").unwrap();
        std::fs::write(dir.path().join("b.qcow2"), b"b").unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("sha256sum")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let a = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
        let gnu = run(&["a.qcow2", "b.qcow2"]);
        let bsd = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n# a.qcow2: 1 bytes\n{}",
            run(&["--tag", "b.qcow2", "a.qcow2"])
        );
        let binary = run(&["--binary", "a.qcow2"]);
        for text in [&gnu, &bsd, &binary] {
            assert_eq!(listed_digest(text, "a.qcow2"), Some(a), "{text}");
            assert_eq!(listed_digest(text, "c.qcow2"), None, "{text}");
        }
        assert!(bsd.contains("SHA256 (a.qcow2) = "));
    }

    /// A plain-HTTP server on loopback answering each connection in turn:
    /// a redirect to `/final`, then the body. Returns its address and how
    /// many connections it accepted.
    fn redirecting_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{BufRead, Write};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let seen = std::sync::Arc::new(AtomicUsize::new(0));
        let (count, to) = (std::sync::Arc::clone(&seen), base.clone());
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let mut r = std::io::BufReader::new(&s);
                let mut first = String::new();
                r.read_line(&mut first).unwrap();
                while r.read_line(&mut String::new()).unwrap() > 2 {}
                let reply = if first.contains("/final") {
                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nfinal"
                        .to_string()
                } else {
                    format!("HTTP/1.1 302 Found\r\nLocation: {to}/final\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                };
                (&s).write_all(reply.as_bytes()).unwrap();
            }
        });
        (base, seen)
    }

    /// The HTTPS-only agent (what `https://` catalog URLs get) sends
    /// nothing over plain HTTP: ureq checks the scheme of every hop,
    /// redirects included, against the same setting shown refusing here.
    /// Plain `http://` entries (local mirrors) follow redirects as before.
    #[test]
    fn https_urls_never_fall_back_to_plain_http() {
        let (base, seen) = redirecting_server();
        let body = agent(false)
            .get(&format!("{base}/start"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        assert_eq!(body, "final");
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);
        let e = agent(true)
            .get(&format!("{base}/final"))
            .call()
            .unwrap_err()
            .to_string();
        assert!(e.to_lowercase().contains("https"), "{e}");
        assert_eq!(
            seen.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "no plain-HTTP request was sent"
        );
    }
}
