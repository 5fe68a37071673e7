//! The command line besides `serve`: the agent-side commands that ask
//! through a running server and say the outcome by exit code.

pub mod api;
pub mod client;
pub mod hook;
pub mod interrupt;
pub mod mcp;
pub mod permission;
pub mod receipt;
pub mod tools;
pub mod wrap;

/// One line on stdout. A reader that went away (`askgate journal check |
/// head`) is no error and no panic, as `println!` would make it: the line
/// is dropped and the command ends as it would have.
pub fn say(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}
