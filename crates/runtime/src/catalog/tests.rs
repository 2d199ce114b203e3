use super::*;

#[test]
fn the_built_in_catalog_parses_and_every_entry_verifies() {
    let c = Catalog::load(&[]).unwrap();
    assert!(c.get("debian-12-arm64").is_ok());
    assert!(c.entries.iter().all(|e| e.checksums.is_some()));
    assert!(c.get("nope").is_err());
}

#[test]
fn entries_must_pin_a_digest_and_name_a_file() {
    let e = parse(
        "[[image]]\nname = \"a\"\narch = \"aarch64\"\nurl = \"https://x/a.img\"\n",
        "t",
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("exactly one of"), "{e}");
    let e = parse(
        "[[image]]\nname = \"a\"\narch = \"aarch64\"\nurl = \"https://x/\"\nsha256 = \"00\"\n",
        "t",
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("names no file"), "{e}");
    assert!(parse("[[image]]\nname = \"a\"\narch = \"aarch64\"\nurl = \"https://x/a.img\"\nsha256 = \"00\"\nmirror = 1\n", "t").is_err());
    assert_eq!(file_name("https://h/p/a.qcow2?x=1"), Some("a.qcow2"));
    assert_eq!(file_name("https://h/p/.."), None);
}
