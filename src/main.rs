//! The `askgate` command: `serve` (the default) runs the server; `clarify`
//! and `approve` ask through a running server and wait for the answer;
//! `mcp` offers the same to an agent as an MCP server on stdin and stdout.

use askgate::cli::{client, hook, mcp};
use askgate::notify::capability;
use askgate::serve::auth::{self, Role};
use askgate::serve::signals::ShutdownSignals;
use askgate::{Config, Server};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(usage) = help_asked(&args) {
        println!("{usage}");
        return ExitCode::SUCCESS;
    }
    match args.first().map(String::as_str) {
        Some("clarify") => client::main(client::Command::Clarify, &args[1..]),
        Some("approve") => client::main(client::Command::Approve, &args[1..]),
        Some("mcp") => mcp::main(&args[1..]),
        Some("hook") => hook::main(&args[1..]),
        Some("serve") => serve(&args[1..]),
        Some("journal") => journal(&args[1..]),
        Some("tokens") => tokens(&args[1..]),
        Some("help") => {
            println!("{}", usage());
            ExitCode::SUCCESS
        }
        Some("-V" | "--version") => {
            println!("askgate {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => serve(&args),
    }
}

/// The usage of the command whose own flags (those before a `--`) hold
/// `-h` or `--help`: help goes to stdout and exits 0, whatever else was
/// given.
fn help_asked(args: &[String]) -> Option<String> {
    let (command, flags) = match args.first().map(String::as_str) {
        Some(
            command @ ("clarify" | "approve" | "mcp" | "hook" | "serve" | "journal" | "tokens"),
        ) => (command, &args[1..]),
        _ => ("serve", args),
    };
    let asked = flags
        .iter()
        .take_while(|arg| *arg != "--")
        .any(|arg| arg == "-h" || arg == "--help");
    let common = client::COMMON_USAGE;
    asked.then(|| match command {
        "clarify" => format!(
            "usage: {}

{common}",
            client::CLARIFY_USAGE
        ),
        "approve" => format!(
            "usage: {}

{common}",
            client::APPROVE_USAGE
        ),
        "mcp" => format!(
            "usage: {}

{common}",
            mcp::MCP_USAGE
        ),
        "hook" => format!(
            "usage: {}

{common}",
            hook::HOOK_USAGE
        ),
        "journal" => format!("usage: {JOURNAL_USAGE}"),
        "tokens" => format!("usage: {TOKENS_USAGE}"),
        _ if args.first().is_some_and(|first| first == "serve") => Config::usage(),
        _ => usage(),
    })
}

const JOURNAL_USAGE: &str =
    "askgate journal check DIR   (reads a data directory and reports damage, changing nothing)";

/// `askgate journal check DIR`: exit 0 when the directory would replay,
/// 1 when it is damaged (the message names the file and offset), 2 on
/// usage errors.
fn journal(args: &[String]) -> ExitCode {
    let [command, dir] = args else {
        return usage_error(JOURNAL_USAGE);
    };
    if command != "check" {
        return usage_error(JOURNAL_USAGE);
    }
    match askgate::store::journal::check(std::path::Path::new(dir)) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("askgate: {error}");
            ExitCode::from(1)
        }
    }
}

const TOKENS_USAGE: &str = "askgate tokens rotate agent|human|notify [--data-dir DIR]   (new token in DIR/tokens, or notification key in DIR/notify.key; restart the server)";

/// `askgate tokens rotate agent|human`: replaces one token in the data
/// directory's tokens file (made on first start off loopback) and prints it.
/// `notify` replaces the notifications' key, so no button sent before
/// answers any more.
fn tokens(args: &[String]) -> ExitCode {
    let (role, rest) = match args {
        [command, role, rest @ ..] if command == "rotate" => (role.as_str(), rest),
        _ => return usage_error(TOKENS_USAGE),
    };
    let dir = match rest {
        [] => "./data".to_string(),
        [flag, dir] if flag == "--data-dir" => dir.clone(),
        _ => return usage_error(TOKENS_USAGE),
    };
    let dir = std::path::Path::new(&dir);
    if role == "notify" {
        return rotate_notify_key(dir);
    }
    let keep = match role {
        "agent" => Role::Human,
        "human" => Role::Agent,
        _ => return usage_error(TOKENS_USAGE),
    };
    let rotated = auth::read_tokens(dir).and_then(|old| match old {
        Some(old) => auth::write_new_tokens(dir, Some((keep, &old))),
        None => Err(std::io::Error::other(format!(
            "{} holds no tokens file",
            dir.display()
        ))),
    });
    match rotated {
        Ok(tokens) => {
            let token = if role == "agent" {
                tokens.agent
            } else {
                tokens.human
            };
            println!("new {role} token: {token}\nrestart the server for it to take effect");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("askgate: {error}");
            ExitCode::from(1)
        }
    }
}

fn rotate_notify_key(dir: &std::path::Path) -> ExitCode {
    match capability::write_new_key(dir) {
        Ok(_) => {
            println!(
                "new notification key in {}\nrestart the server: buttons sent before no longer answer",
                dir.join(capability::KEY_FILE).display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("askgate: {error}");
            ExitCode::from(1)
        }
    }
}

fn usage_error(usage: &str) -> ExitCode {
    eprintln!("usage: {usage}");
    ExitCode::from(2)
}

fn usage() -> String {
    format!(
        "askgate: agents ask, a human answers from the browser\n\n\
         usage:\n  askgate [serve] [FLAGS]\n  {}\n  {}\n  {}\n  {}\n  {JOURNAL_USAGE}\n  {TOKENS_USAGE}\n\n{}",
        client::CLARIFY_USAGE,
        client::APPROVE_USAGE,
        mcp::MCP_USAGE,
        hook::HOOK_USAGE,
        Config::usage()
    )
}

fn serve(args: &[String]) -> ExitCode {
    // Before any thread starts, so that every thread inherits the mask and
    // only `Server::wait` takes SIGTERM and SIGINT.
    let signals = match ShutdownSignals::block() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("askgate: cannot block SIGTERM and SIGINT: {error}");
            return ExitCode::from(2);
        }
    };
    let config = match Config::parse(args, |name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("askgate: {message}\n\n{}", Config::usage());
            return ExitCode::from(2);
        }
    };
    let _ = simple_logger::SimpleLogger::new()
        .with_level(config.log_level)
        .init();
    let server = match Server::start(config) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("askgate: cannot start: {error}");
            return ExitCode::from(2);
        }
    };
    // Tests and scripts read the address from this first line of stdout.
    println!("askgate listening on http://{}", server.addr());
    server.wait(signals);
    ExitCode::SUCCESS
}
