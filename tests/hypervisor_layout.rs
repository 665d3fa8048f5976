//! The hypervisor driver's structs and constants against Xen's own public
//! headers: compiles tests/layout/xen_layout.c with gcc against Debian's
//! libxen-dev (installed by scripts/deps) and compares every size, offset
//! and number it prints with the Rust definitions.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use domfs::driver::hypervisor::sys::{CONSTANTS, LAYOUTS};
use domfs::driver::hypervisor::VERSIONS;
mod c_facts;
use std::collections::BTreeMap;

/// The C program's `NAME VALUE` and `NAME size VALUE` lines; `tag` keeps
/// the build directories of parallel tests apart.
fn c_facts(tag: &str) -> Option<BTreeMap<String, u64>> {
    let lines = c_facts::run(
        "xen_layout.c",
        "/usr/include/xen/domctl.h",
        &["-D__XEN_TOOLS__"],
        tag,
    )?;
    let mut facts = BTreeMap::new();
    for (name, value) in lines {
        let name = name.replace(" size", ".size");
        assert!(
            facts
                .insert(name.clone(), value.parse::<u64>().unwrap())
                .is_none(),
            "{name} twice"
        );
    }
    Some(facts)
}

#[test]
fn struct_layouts_match_xen_headers() {
    let Some(c) = c_facts("struct") else { return };
    let mut rust = BTreeMap::new();
    for l in LAYOUTS {
        rust.insert(format!("{}.size", l.name), l.size as u64);
        for (f, off) in l.fields {
            rust.insert(format!("{}.{f}", l.name), *off as u64);
        }
    }
    let c_layout: BTreeMap<_, _> = c
        .iter()
        .filter(|(k, _)| k.contains('.'))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    // The same set of structs and fields on both sides, with equal values.
    let keys: std::collections::BTreeSet<_> = rust.keys().chain(c_layout.keys()).collect();
    let differ: Vec<String> = keys
        .into_iter()
        .filter(|k| rust.get(*k) != c_layout.get(*k))
        .map(|k| format!("{k}: Rust {:?}, C {:?}", rust.get(k), c_layout.get(k)))
        .collect();
    assert!(differ.is_empty(), "layouts differ:\n{}", differ.join("\n"));
    assert!(rust.len() > 40, "the comparison covers every field");
}

#[test]
fn constants_match_xen_headers() {
    let Some(c) = c_facts("constants") else {
        return;
    };
    for (name, value) in CONSTANTS {
        assert_eq!(c.get(*name), Some(value), "{name}");
    }
}

#[test]
fn the_version_table_matches_the_installed_headers() {
    // Debian 12's libxen-dev is Xen 4.17; its interface versions must be
    // the table's 4.17 entry.
    let Some(c) = c_facts("versions") else { return };
    let v417 = VERSIONS
        .iter()
        .find(|v| (v.major, v.minor) == (4, 17))
        .expect("Xen 4.17 is in the table");
    assert_eq!(c["XEN_SYSCTL_INTERFACE_VERSION"], u64::from(v417.sysctl));
    assert_eq!(c["XEN_DOMCTL_INTERFACE_VERSION"], u64::from(v417.domctl));
}
