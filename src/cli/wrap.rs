//! `askgate approve ... -- CMD ARGS`: the approval gates the very command
//! that runs. Its argv, shell-quoted, is the prompt's command; it runs only
//! once approved, and its exit status becomes askgate's.
//!
//! Invariants: nothing runs without an approval; what runs is exactly the
//! argv whose quoting the human saw (a `--command` naming it otherwise is
//! shown only as its description), or the command line the human edited
//! it into, printed on stderr before it runs through `sh -c`; the
//! command inherits stdin, stdout and stderr, and askgate prints nothing on
//! stdout, so a pipeline sees the command's output alone.

use std::io::ErrorKind;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

/// The argv as a POSIX shell would need it typed: words of safe characters
/// as they are, anything else in single quotes.
pub fn quote(argv: &[String]) -> String {
    let words: Vec<String> = argv.iter().map(|word| quote_word(word)).collect();
    words.join(" ")
}

fn quote_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Denied, with `-- CMD`: sysexits.h's EX_NOPERM, which no shell and few
/// commands use, so a script can tell "the human said no" from "the
/// command failed" (plain `askgate approve` says 1).
pub const EXIT_DENIED: u8 = 77;
/// Expired or cancelled, with `-- CMD` (EX_TEMPFAIL; plain: 3).
pub const EXIT_UNANSWERED: u8 = 75;
/// No answer could be had: the server unreachable, refusing, or the
/// request refused (EX_UNAVAILABLE; plain: 2).
pub const EXIT_NO_ANSWER: u8 = 69;

/// The exit code when the command did not run, from plain `approve`'s.
pub fn not_run(code: u8) -> u8 {
    use crate::cli::client::{EXIT_DENIED as DENIED, EXIT_EXPIRED};
    match code {
        DENIED => EXIT_DENIED,
        EXIT_EXPIRED => EXIT_UNANSWERED,
        _ => EXIT_NO_ANSWER,
    }
}

/// The command's pid while it runs, for the signal handler.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Runs the approved command and returns its exit status: its own code,
/// 128 + N when a signal N ended it, 127 when it cannot be found and 126
/// when it cannot be started (as shells and `env` say).
pub fn run(argv: &[String]) -> u8 {
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    run_command(command, &argv[0])
}

/// Runs a command the human edited, as they typed it: through `sh -c`.
pub fn run_shell(command_line: &str) -> u8 {
    let mut command = Command::new("sh");
    command.args(["-c", command_line]);
    run_command(command, "sh")
}

fn run_command(mut command: Command, name: &str) -> u8 {
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            eprintln!("askgate: cannot run {name}: {error}");
            return match error.kind() {
                ErrorKind::NotFound => 127,
                _ => 126,
            };
        }
    };
    CHILD.store(child.id() as i32, Ordering::SeqCst);
    pass_signals_to_the_command();
    let status = child.wait();
    CHILD.store(0, Ordering::SeqCst);
    match status {
        Ok(status) => exit_code(status),
        Err(error) => {
            eprintln!("askgate: lost the command {name}: {error}");
            2
        }
    }
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => 128u8.wrapping_add(signal as u8),
        (None, None) => 2,
    }
}

/// While the command runs, askgate stays to report its status: a terminal's
/// SIGINT and SIGQUIT reach the command through its process group and are
/// ignored here (as `system(3)` does), and a SIGTERM or SIGHUP sent to
/// askgate is passed on to the command. Set after the spawn, so the command
/// starts with the default actions.
fn pass_signals_to_the_command() {
    let forward = forward as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: `signal` only changes this process's dispositions; `forward`
    // calls nothing but the async-signal-safe `kill`.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, forward);
        libc::signal(libc::SIGHUP, forward);
    }
}

extern "C" fn forward(signal: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: `kill` is async-signal-safe and touches no memory of ours.
        unsafe { libc::kill(pid, signal) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_quoted_as_a_shell_would_need_it() {
        for (argv, quoted) in [
            (&["sh", "-c", "exit 7"][..], "sh -c 'exit 7'"),
            (&["ls", "-la", "/tmp/a_b.c"], "ls -la /tmp/a_b.c"),
            (&["echo", ""], "echo ''"),
            (&["echo", "it's"], r"echo 'it'\''s'"),
            (&["rm", "-rf", "$HOME"], "rm -rf '$HOME'"),
            (&["printf", "a\nb"], "printf 'a\nb'"),
            (&["x", "a;b", "*", "~"], "x 'a;b' '*' '~'"),
            (&["key=value", "user@host:/p"], "key=value user@host:/p"),
        ] {
            let argv: Vec<String> = argv.iter().map(|word| word.to_string()).collect();
            assert_eq!(quote(&argv), quoted, "{argv:?}");
        }
    }

    #[test]
    fn the_quoting_reads_back_as_the_same_argv_in_sh() {
        let argv: Vec<String> = ["a b", "it's", "", "$x `y`", "\\n", "tab\there", "é"]
            .iter()
            .map(|word| word.to_string())
            .collect();
        let script = format!("for a in {}; do printf '[%s]' \"$a\"; done", quote(&argv));
        let output = Command::new("sh").args(["-c", &script]).output().unwrap();
        let expected: String = argv.iter().map(|word| format!("[{word}]")).collect();
        assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
    }
}
