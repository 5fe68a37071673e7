//! The `askgate` command: `serve` (the default) runs the server; `clarify`
//! and `approve` ask through a running server and wait for the answer.

use askgate::cli::client;
use askgate::serve::signals::ShutdownSignals;
use askgate::{Config, Server};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("clarify") => client::main(client::Command::Clarify, &args[1..]),
        Some("approve") => client::main(client::Command::Approve, &args[1..]),
        Some("serve") => serve(&args[1..]),
        Some("journal") => journal(&args[1..]),
        Some("-h" | "--help" | "help") => {
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

const JOURNAL_USAGE: &str =
    "askgate journal check DIR   (reads a data directory and reports damage, changing nothing)";

/// `askgate journal check DIR`: exit 0 when the directory would replay,
/// 1 when it is damaged (the message names the file and offset), 2 on
/// usage errors.
fn journal(args: &[String]) -> ExitCode {
    let [command, dir] = args else {
        eprintln!("usage: {JOURNAL_USAGE}");
        return ExitCode::from(2);
    };
    if command != "check" {
        eprintln!("usage: {JOURNAL_USAGE}");
        return ExitCode::from(2);
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

fn usage() -> String {
    format!(
        "askgate: agents ask, a human answers from the browser\n\n\
         usage:\n  askgate [serve] [FLAGS]\n  {}\n  {}\n  {JOURNAL_USAGE}\n\n{}",
        client::CLARIFY_USAGE,
        client::APPROVE_USAGE,
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
