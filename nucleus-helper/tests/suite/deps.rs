//! The helper never links a CLI parser, a TOML/JSON parser or a tokio-style
//! async runtime: every line of its dependency tree runs as root.

use std::process::Command;

#[test]
fn no_parsers_or_async_runtimes_in_the_helper() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "nucleus-helper",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for banned in [
        "clap",
        "lexopt",
        "toml",
        "serde_json",
        "tokio",
        "async-std",
        "smol",
    ] {
        assert!(
            !crates.contains(&banned),
            "the helper depends on {banned}:\n{tree}"
        );
    }
    assert!(crates.contains(&"nucleus-protocol"));
}
