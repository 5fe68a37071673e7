//! The `askgate clarify` and `askgate approve` commands (SPEC §5.3).

use std::process::ExitCode;

pub const CLARIFY_USAGE: &str =
    "askgate clarify --session S \"question\" [--choice A]... [--timeout SECS]";
pub const APPROVE_USAGE: &str = "askgate approve --session S --command \"...\" [--pattern KEY]... [--description D] [--timeout SECS]";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Command {
    Clarify,
    Approve,
}

pub fn main(_command: Command, _args: &[String]) -> ExitCode {
    eprintln!("askgate: not implemented yet");
    ExitCode::from(2)
}
