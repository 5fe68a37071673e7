//! The repository checks itself: no async runtime, only the approved
//! dependencies, a `//!` doc atop every source file, and an ARCHITECTURE.md
//! that names every module.

use std::fs;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn locked_packages() -> Vec<String> {
    let lock = fs::read_to_string(root().join("Cargo.lock")).expect("Cargo.lock is committed");
    let names = lock
        .lines()
        .filter_map(|line| line.strip_prefix("name = \""));
    names
        .map(|name| name.trim_end_matches('"').to_string())
        .collect()
}

#[test]
fn no_async_runtime_in_the_lock_file() {
    let runtimes = [
        "tokio",
        "async-std",
        "smol",
        "async-io",
        "async-executor",
        "futures-executor",
    ];
    let found: Vec<String> = locked_packages()
        .into_iter()
        .filter(|name| runtimes.contains(&name.as_str()))
        .collect();
    assert!(
        found.is_empty(),
        "askgate is synchronous by design; found {found:?} in Cargo.lock"
    );
}

#[test]
fn only_approved_direct_dependencies() {
    let manifest = fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let section = manifest
        .split("[dependencies]")
        .nth(1)
        .unwrap()
        .split("\n[")
        .next()
        .unwrap();
    let mut names: Vec<&str> = section
        .lines()
        .filter_map(|line| line.split_once(" = "))
        .map(|(name, _)| name.trim())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "crossbeam-channel",
            "libc",
            "log",
            "serde_json",
            "simple_logger",
            "tiny_http"
        ]
    );
}

fn source_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_opens_with_a_module_doc() {
    let mut files = Vec::new();
    for dir in ["src", "tests"] {
        source_files(&root().join(dir), &mut files);
    }
    files.push(root().join("build.rs"));
    let missing: Vec<String> = files
        .iter()
        .filter(|path| !fs::read_to_string(path).unwrap().starts_with("//!"))
        .map(|path| path.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! module doc: {missing:?}"
    );
}

#[test]
fn architecture_names_every_module() {
    let architecture = fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let mut files = Vec::new();
    source_files(&root().join("src"), &mut files);
    let missing: Vec<String> = files
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().to_string())
        .filter(|name| !architecture.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name {missing:?}"
    );
}
