//! Every fuzz target's property, run on its committed seeds and on every
//! input that ever made it fail (fuzz/regressions/TARGET/), so `cargo test`
//! keeps each fixed crash fixed without a fuzzer installed.

#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::path::Path;

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

#[test]
fn every_target_has_a_fuzz_binary_and_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut bins: Vec<String> = inputs(&root.join("fuzz_targets"))
        .iter()
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
        .collect();
    bins.sort();
    let mut names: Vec<String> = checks::TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    names.sort();
    assert_eq!(bins, names, "fuzz/fuzz_targets and TARGETS disagree");
    for name in &names {
        let seeds = inputs(&root.join("seeds").join(name));
        assert!(!seeds.is_empty(), "fuzz/seeds/{name} holds no seed");
    }
}

#[test]
fn seeds_and_past_crashes_pass_every_property() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut ran = 0;
    for (name, check) in checks::TARGETS {
        for dir in ["seeds", "regressions"] {
            for file in inputs(&root.join(dir).join(name)) {
                let data = std::fs::read(&file).expect("read fuzz input");
                let outcome = std::panic::catch_unwind(|| check(&data));
                assert!(outcome.is_ok(), "{name}: {} fails", file.display());
                ran += 1;
            }
        }
    }
    println!("{ran} fuzz inputs checked");
}
