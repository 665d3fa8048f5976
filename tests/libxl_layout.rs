//! The libxl driver's binary assumptions against libxen-dev's headers:
//! compiles tests/layout/libxl_layout.c with gcc and compares every size,
//! offset and constant it prints with `domfs::driver::libxl::sys`. The
//! driver passes structs as JSON, so this list is short on purpose.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use domfs::driver::libxl::sys::{CONSTANTS, LAYOUTS};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The C program's `NAME VALUE` lines; `tag` keeps parallel tests' build
/// directories apart. None when libxen-dev is missing outside CI.
fn c_facts(tag: &str) -> Option<BTreeMap<String, i64>> {
    if !Path::new("/usr/include/libxl.h").exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "libxen-dev is missing under CI=true: scripts/deps installs it"
        );
        eprintln!("skipped: /usr/include/libxl.h missing (apt-get install libxen-dev)");
        return None;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/layout/libxl_layout.c");
    let dir = std::env::temp_dir().join(format!("domfs-libxl-layout-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("libxl_layout");
    let cc = Command::new("gcc")
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
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success());
    std::fs::remove_dir_all(&dir).ok();
    let mut facts = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(
            facts
                .insert(name.to_string(), value.parse::<i64>().unwrap())
                .is_none(),
            "{line} twice"
        );
    }
    Some(facts)
}

#[test]
fn libxl_layouts_match_the_headers() {
    let Some(c) = c_facts("layouts") else {
        return;
    };
    let mut differ = Vec::new();
    let mut compared = 0;
    for l in LAYOUTS {
        let mut want = vec![(format!("{}.sizeof", l.name), l.size)];
        want.extend(
            l.fields
                .iter()
                .map(|(f, o)| (format!("{}.{f}", l.name), *o)),
        );
        for (k, v) in want {
            compared += 1;
            if c.get(&k) != Some(&(v as i64)) {
                differ.push(format!("{k}: Rust {v}, C {:?}", c.get(&k)));
            }
        }
    }
    assert!(differ.is_empty(), "layouts differ:\n{}", differ.join("\n"));
    // Every struct the C side prints is one the Rust side names.
    for k in c.keys().filter(|k| k.contains('.')) {
        let s = k.split('.').next().unwrap();
        assert!(
            LAYOUTS.iter().any(|l| l.name == s) || ["libxl_uuid", "libxl_ev_user"].contains(&s),
            "{k} printed but not checked"
        );
    }
    assert!(compared >= 16, "every size and field is compared");
}

#[test]
fn libxl_constants_match_the_headers() {
    let Some(c) = c_facts("constants") else {
        return;
    };
    for (name, value) in CONSTANTS {
        assert_eq!(c.get(*name), Some(value), "{name}");
    }
    // The types behind the foreign signatures' [u8; 16] and u64.
    assert_eq!(c["libxl_uuid.sizeof"], 16);
    assert_eq!(c["libxl_ev_user.sizeof"], 8);
}
