//! Embeds every file of `www/` in the binary, so `askgate` serves the page
//! with no files beside it. Writes `$OUT_DIR/www.rs`: a table of
//! (name, bytes) that `src/static_files.rs` includes.

use std::fs;
use std::path::Path;

fn main() {
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
        table.push_str(&format!(
            "    ({name:?}, include_bytes!({:?}) as &[u8]),\n",
            path.display().to_string()
        ));
    }
    table.push_str("]\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("www.rs");
    fs::write(out, table).expect("OUT_DIR is writable");
}
