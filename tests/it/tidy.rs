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
            "ring",
            "rustls",
            "serde_json",
            "tiny_http",
            "ureq",
            "webpki-roots"
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

/// Every source file, by its path under `src/` (`core/state.rs`).
fn source_paths() -> Vec<String> {
    let mut files = Vec::new();
    source_files(&root().join("src"), &mut files);
    let src = root().join("src");
    let relative =
        |path: &std::path::PathBuf| path.strip_prefix(&src).unwrap().display().to_string();
    files.iter().map(relative).collect()
}

fn read_source(path: &str) -> String {
    fs::read_to_string(root().join("src").join(path)).unwrap()
}

#[test]
fn architecture_names_every_module() {
    let architecture = fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let missing: Vec<String> = source_paths()
        .into_iter()
        .filter(|path| !architecture.contains(&format!("`{path}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md does not name {missing:?}"
    );
}

/// A list written twice drifts apart: the system's CA bundle places are
/// one list (`system_ca.rs`), which every TLS client of askgate reads.
#[test]
fn the_system_ca_bundle_places_are_written_once() {
    let writing: Vec<String> = source_paths()
        .into_iter()
        .filter(|path| read_source(path).contains("\"/etc/ssl/certs/ca-certificates.crt\""))
        .collect();
    assert_eq!(writing, ["system_ca.rs"], "the CA bundle places written in");
}

/// The lines of a file that are code, not comments.
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter(|line| {
        let line = line.trim_start();
        !line.starts_with("//")
    })
}

#[test]
fn the_state_machine_reads_no_clock_takes_no_lock_draws_no_random_number() {
    let state = read_source("core/state.rs");
    let forbidden = [
        "Mutex",
        "RwLock",
        "Condvar",
        "Instant::now",
        "SystemTime",
        "random",
        "thread::",
        "ids::",
    ];
    let found: Vec<&str> = forbidden
        .into_iter()
        .filter(|word| code_lines(&state).any(|line| line.contains(word)))
        .collect();
    assert!(found.is_empty(), "core/state.rs uses {found:?}");
}

#[test]
fn layers_point_one_way() {
    // (files under this folder, what they may not import)
    let rules = [
        (
            "core/",
            ["crate::hub", "crate::serve", "crate::store", "crate::cli"].as_slice(),
        ),
        ("hub/", ["crate::serve", "crate::cli"].as_slice()),
        (
            "store/",
            ["crate::hub", "crate::serve", "crate::cli", "crate::core"].as_slice(),
        ),
        (
            "serve/http.rs",
            ["crate::hub", "crate::serve::stream", "crate::core"].as_slice(),
        ),
        (
            "cli/",
            ["crate::hub", "crate::serve", "crate::store"].as_slice(),
        ),
        (
            "notify/",
            ["crate::hub", "crate::serve", "crate::store"].as_slice(),
        ),
        (
            "hooks/",
            ["crate::hub", "crate::serve", "crate::store", "crate::cli"].as_slice(),
        ),
    ];
    let mut broken = Vec::new();
    for path in source_paths() {
        for (layer, forbidden) in rules {
            if !path.starts_with(layer) {
                continue;
            }
            let text = read_source(&path);
            for import in forbidden {
                if code_lines(&text).any(|line| line.contains(import)) {
                    broken.push(format!("{path} uses {import}"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "layers broken: {broken:?}");
}

/// The arms of every `match` whose arms name `Kind::` variants: none may be
/// a wildcard, so a new kind makes the compiler name every place it touches.
#[test]
fn no_match_on_kind_has_a_wildcard_arm() {
    let mut found = Vec::new();
    for path in source_paths() {
        let text = read_source(&path);
        for (start, _) in text.match_indices("match ") {
            let Some(open) = text[start..].find('{').map(|i| start + i) else {
                continue;
            };
            let body = block(&text[open..]);
            let arms: Vec<&str> = top_level_arms(body);
            let on_kind = arms
                .iter()
                .any(|arm| arm.trim_start().starts_with("Kind::"));
            if on_kind && arms.iter().any(|arm| arm.trim_start().starts_with("_ =>")) {
                let line = text[..start].lines().count() + 1;
                found.push(format!("{path}:{line}"));
            }
        }
    }
    assert!(found.is_empty(), "wildcard arms on Kind at {found:?}");
}

/// The text of the brace block that `text` opens, without its braces.
fn block(text: &str) -> &str {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &text[1..i];
                }
            }
            _ => {}
        }
    }
    text
}

/// The lines of a match body that start an arm at its top level.
fn top_level_arms(body: &str) -> Vec<&str> {
    let mut depth = 0i32;
    let mut arms = Vec::new();
    for line in body.lines() {
        if depth == 0 && !line.trim().is_empty() {
            arms.push(line);
        }
        depth += line.matches(['{', '(', '[']).count() as i32;
        depth -= line.matches(['}', ')', ']']).count() as i32;
    }
    arms
}

/// Issue 19 §5: the page derives every per-kind list from one table,
/// `www/kinds.js`, whose names are the server's kinds; no other page file
/// lists the kinds: no code line names two kinds, and no object has a
/// kind's name for a key (a map per kind).
#[test]
fn the_page_lists_the_kinds_in_one_table_only() {
    use askgate::core::kind::Kind;
    let www = root().join("www");
    let table = fs::read_to_string(www.join("kinds.js")).expect("www/kinds.js");
    for kind in Kind::ALL {
        let row = format!("{{ kind: '{}'", kind.as_str());
        assert!(table.contains(&row), "www/kinds.js has no row {row:?}");
    }
    let names: Vec<&str> = Kind::ALL.iter().map(|kind| kind.as_str()).collect();
    let mut found = Vec::new();
    for entry in fs::read_dir(&www).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".js") || name == "kinds.js" {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        for (at, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            let code = line.split(" // ").next().unwrap_or(line);
            let named = names.iter().filter(|kind| code.contains(**kind)).count();
            let keyed = names.iter().any(|kind| {
                code.match_indices(*kind).any(|(i, _)| {
                    let before = code[..i].chars().next_back();
                    let after = code[i + kind.len()..].trim_start();
                    !before.is_some_and(|c| c.is_alphanumeric() || "_-.'\"`#$".contains(c))
                        && after.starts_with(':')
                        && !after.starts_with("::")
                })
            });
            if named > 1 || keyed {
                found.push(format!("www/{name}:{}: {line}", at + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "kinds listed outside www/kinds.js: {found:#?}"
    );
}
