//! Facts about Xen's C headers as gcc sees them: compiles a program of
//! `tests/layout/` against libxen-dev (installed by scripts/deps) and
//! returns its `NAME VALUE` lines, so a layout test compares Rust's
//! definitions with the headers' own sizes, offsets and numbers.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// The lines `tests/layout/SOURCE` prints, as (name, value) pairs, built
/// with `flags`; `tag` keeps parallel tests' build directories apart.
/// None when `header` is missing outside CI (under `CI=true` a missing
/// header fails: scripts/deps installs it).
pub fn run(source: &str, header: &str, flags: &[&str], tag: &str) -> Option<Vec<(String, String)>> {
    if !Path::new(header).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "libxen-dev is missing under CI=true: scripts/deps installs it"
        );
        eprintln!("skipped: {header} missing (apt-get install libxen-dev)");
        return None;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/layout")
        .join(source);
    let dir = std::env::temp_dir().join(format!("domfs-{source}-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("build directory");
    let exe = dir.join("facts");
    let cc = Command::new("gcc")
        .args(flags)
        .args(["-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("gcc runs (scripts/deps installs it)");
    assert!(
        cc.status.success(),
        "gcc failed:\n{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let out = Command::new(&exe).output().expect("run the facts program");
    assert!(out.status.success());
    std::fs::remove_dir_all(&dir).ok();
    let text = String::from_utf8(out.stdout).expect("utf-8");
    Some(
        text.lines()
            .map(|line| {
                let (name, value) = line.rsplit_once(' ').expect("NAME VALUE");
                (name.to_string(), value.to_string())
            })
            .collect(),
    )
}
