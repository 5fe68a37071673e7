//! Embeds every file of `www/` in the binary, so `askgate` serves the page
//! with no files beside it. Writes `$OUT_DIR/www.rs`: a table of
//! (name, bytes) that `src/static_files.rs` includes. Scripts and styles go
//! in without their comments and their lines' indentation (`bare_js`,
//! `bare_css`): a third of their bytes, which the binary's budget needs
//! more than a reader of the served page does (the sources keep them). In a release build
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
        let text = fs::read(&path).expect("a file of www/");
        let bare = match (name.rsplit_once('.'), String::from_utf8(text.clone())) {
            (Some((_, "js")), Ok(text)) => bare_js(&text).into_bytes(),
            (Some((_, "css")), Ok(text)) => bare_css(&text).into_bytes(),
            _ => text,
        };
        let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join(&name);
        fs::write(&out, &bare).expect("OUT_DIR is writable");
        table.push_str(&format!(
            "    ({name:?}, {{ static PAGE_FILE: [u8; {}] = *include_bytes!({:?}); &PAGE_FILE }} as &[u8]),\n",
            bare.len(),
            out.display().to_string()
        ));
    }
    table.push_str("]\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("www.rs");
    fs::write(out, table).expect("OUT_DIR is writable");
}

/// A script without its comments and its lines' indentation. Strings,
/// template literals (with their `${}`s) and regular expressions are
/// copied as they are; a comment alone on its line goes with its line,
/// and a block comment that held a line break leaves one (so no two
/// statements join).
fn bare_js(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    // The `${` depths of the template literals we are inside.
    let mut templates: Vec<usize> = Vec::new();
    let mut depth = 0;
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        let next = chars.get(at + 1).copied();
        match c {
            '\'' | '"' => at = copy_quoted(&chars, at, c, &mut out),
            '`' => at = copy_template(&chars, at + 1, &mut out, &mut templates, depth),
            '}' if templates.last() == Some(&depth) => {
                templates.pop();
                at = copy_template(&chars, at + 1, &mut out, &mut templates, depth);
            }
            '/' if next == Some('/') => {
                while at < chars.len() && chars[at] != '\n' {
                    at += 1;
                }
                let kept = out.trim_end_matches([' ', '\t']).len();
                out.truncate(kept);
                if out.ends_with('\n') || out.is_empty() {
                    at = skip_indent(&chars, at + 1);
                }
            }
            '/' if next == Some('*') => {
                let end = find(&chars, at + 2, "*/").unwrap_or(chars.len());
                if chars[at..end].contains(&'\n') && !out.ends_with('\n') {
                    out.push('\n');
                }
                at = end + 2;
            }
            '/' if starts_regex(&out) => at = copy_regex(&chars, at, &mut out),
            '\n' => {
                if !out.ends_with('\n') && !out.is_empty() {
                    out.push('\n');
                }
                at = skip_indent(&chars, at + 1);
            }
            _ => {
                depth += usize::from(c == '{');
                depth -= usize::from(c == '}' && depth > 0);
                out.push(c);
                at += 1;
            }
        }
    }
    out
}

/// Copies a quoted string from its opening quote; returns where it ends.
fn copy_quoted(chars: &[char], from: usize, quote: char, out: &mut String) -> usize {
    out.push(quote);
    let mut at = from + 1;
    while at < chars.len() {
        out.push(chars[at]);
        if chars[at] == '\\' && at + 1 < chars.len() {
            out.push(chars[at + 1]);
            at += 2;
            continue;
        }
        at += 1;
        if chars[at - 1] == quote || chars[at - 1] == '\n' {
            break;
        }
    }
    at
}

/// Copies a template literal's text from just after its backtick or a
/// `${}`'s closing brace, up to its closing backtick or its next `${`
/// (pushing `depth`, the brace depth its code resumes at).
fn copy_template(
    chars: &[char],
    from: usize,
    out: &mut String,
    templates: &mut Vec<usize>,
    depth: usize,
) -> usize {
    out.push(chars[from - 1]);
    let mut at = from;
    while at < chars.len() {
        let c = chars[at];
        out.push(c);
        at += 1;
        match c {
            '\\' if at < chars.len() => {
                out.push(chars[at]);
                at += 1;
            }
            '`' => return at,
            '$' if chars.get(at) == Some(&'{') => {
                out.push('{');
                templates.push(depth);
                return at + 1;
            }
            _ => {}
        }
    }
    at
}

/// Whether a `/` here begins a regular expression rather than divides:
/// what comes before it cannot end an operand.
fn starts_regex(out: &str) -> bool {
    let before = out.trim_end_matches([' ', '\t']);
    let Some(last) = before.chars().last() else {
        return true;
    };
    if last.is_alphanumeric() || last == '_' || last == '$' {
        let word: String = before
            .chars()
            .rev()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
            .collect();
        let word: String = word.chars().rev().collect();
        return [
            "return",
            "typeof",
            "case",
            "do",
            "else",
            "in",
            "of",
            "new",
            "delete",
            "void",
            "throw",
            "instanceof",
            "yield",
            "await",
        ]
        .contains(&word.as_str());
    }
    !matches!(last, ')' | ']' | '}' | '\'' | '"' | '`')
}

/// Copies a regular expression literal from its opening slash.
fn copy_regex(chars: &[char], from: usize, out: &mut String) -> usize {
    out.push('/');
    let mut at = from + 1;
    let mut class = false;
    while at < chars.len() && chars[at] != '\n' {
        let c = chars[at];
        out.push(c);
        at += 1;
        match c {
            '\\' if at < chars.len() => {
                out.push(chars[at]);
                at += 1;
            }
            '[' => class = true,
            ']' => class = false,
            '/' if !class => break,
            _ => {}
        }
    }
    at
}

/// Past the spaces and tabs that start a line.
fn skip_indent(chars: &[char], mut at: usize) -> usize {
    while at < chars.len() && (chars[at] == ' ' || chars[at] == '\t') {
        at += 1;
    }
    at
}

/// Where `needle` first occurs in `chars` at or after `from`.
fn find(chars: &[char], from: usize, needle: &str) -> Option<usize> {
    let needle: Vec<char> = needle.chars().collect();
    (from..chars.len()).find(|&at| chars[at..].starts_with(&needle))
}

/// A style sheet without its comments and its lines' indentation; its
/// strings are copied as they are.
fn bare_css(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < chars.len() {
        match chars[at] {
            quote @ ('\'' | '"') => at = copy_quoted(&chars, at, quote, &mut out),
            '/' if chars.get(at + 1) == Some(&'*') => {
                at = find(&chars, at + 2, "*/").map_or(chars.len(), |end| end + 2);
            }
            '\n' => {
                if !out.ends_with('\n') && !out.is_empty() {
                    out.push('\n');
                }
                at = skip_indent(&chars, at + 1);
            }
            c => {
                out.push(c);
                at += 1;
            }
        }
    }
    out
}
