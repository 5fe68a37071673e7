//! Embeds every file of `www/` in the binary, so `askgate` serves the page
//! with no files beside it. Writes `$OUT_DIR/www.rs`: a table of
//! (name, bytes) that `src/static_files.rs` includes. In a release build
//! for Linux, hands lld `link/startup.order`, so that the code start-up and
//! idle run lies together (`link/order.py` says why and regenerates it).

use std::fs;
use std::path::Path;

fn main() {
    embed_www();
    order_startup_code();
}

/// `--symbol-ordering-file` for the `askgate` binary, in release builds
/// that link with lld (Rust's default on x86_64 Linux). A symbol the file
/// names and the build lacks is skipped, quietly; without the file, or
/// with another linker, the build goes on without it. `-init` names no
/// symbol, so lld writes no DT_INIT: glibc's `_init` (crti.o) does nothing
/// for a program not built for gprof, and sits after all the text, where
/// calling it mapped 64 KiB of code that nothing else at idle runs.
fn order_startup_code() {
    let order = Path::new(env!("CARGO_MANIFEST_DIR")).join("link/startup.order");
    println!("cargo:rerun-if-changed={}", order.display());
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    let flags = env("CARGO_ENCODED_RUSTFLAGS");
    let other_linker = flags.contains("linker") || flags.contains("fuse-ld");
    if env("PROFILE") != "release"
        || env("TARGET") != "x86_64-unknown-linux-gnu"
        || other_linker
        || !links_with_lld()
        || !order.is_file()
    {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={},--no-warn-symbol-ordering,-init=askgate_no_dt_init",
        order.display()
    );
}

/// Whether rustc links this target with its own lld by default (1.90 on):
/// GNU ld knows no `--symbol-ordering-file`.
fn links_with_lld() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("-V")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
        .unwrap_or_default();
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let minor = version
        .split_whitespace()
        .nth(1)
        .and_then(|number| number.split('.').nth(1))
        .and_then(|minor| minor.parse::<u32>().ok());
    version.contains(" 1.") && minor.is_some_and(|minor| minor >= 90)
}

fn embed_www() {
    let www = Path::new(env!("CARGO_MANIFEST_DIR")).join("www");
    println!("cargo:rerun-if-changed={}", www.display());
    let mut names: Vec<String> = fs::read_dir(&www)
        .map(|entries| entries.filter_map(|entry| entry.ok()))
        .into_iter()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_file()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();
    let mut table = String::from("&[\n");
    for name in names {
        let path = www.join(&name);
        println!("cargo:rerun-if-changed={}", path.display());
        // Each file a named static, so that link/startup.order can lay the
        // page's bytes apart from the constants that start-up reads.
        let len = fs::metadata(&path).expect("a file of www/").len();
        table.push_str(&format!(
            "    ({name:?}, {{ static PAGE_FILE: [u8; {len}] = *include_bytes!({:?}); &PAGE_FILE }} as &[u8]),\n",
            path.display().to_string()
        ));
    }
    table.push_str("]\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("www.rs");
    fs::write(out, table).expect("OUT_DIR is writable");
}
