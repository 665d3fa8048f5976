//! The libxl driver's binary assumptions against libxen-dev's headers:
//! compiles tests/layout/libxl_layout.c with gcc and compares every size,
//! offset and constant it prints with `domfs::driver::libxl::sys`. The
//! driver passes structs as JSON, so this list is short on purpose.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use domfs::driver::libxl::sys::{CONSTANTS, LAYOUTS};
mod c_facts;
use std::collections::BTreeMap;

/// The C program's `NAME VALUE` lines; `tag` keeps parallel tests' build
/// directories apart. None when libxen-dev is missing outside CI.
fn c_facts(tag: &str) -> Option<BTreeMap<String, i64>> {
    let lines = c_facts::run("libxl_layout.c", "/usr/include/libxl.h", &[], tag)?;
    let mut facts = BTreeMap::new();
    for (name, value) in lines {
        assert!(
            facts
                .insert(name.clone(), value.parse::<i64>().unwrap())
                .is_none(),
            "{name} twice"
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
