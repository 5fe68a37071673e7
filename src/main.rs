//! The `askgate` command: `serve` (the default) runs the server; `clarify`
//! and `approve` ask through a running server and wait for the answer;
//! `mcp` offers the same to an agent as an MCP server on stdin and stdout;
//! `signin-link` prints a one-time link that signs the page in.

use askgate::cli::{client, hook, mcp, receipt, say};
use askgate::notify::capability;
use askgate::serve::auth::{self, Role};
use askgate::serve::credentials;
use askgate::serve::signals::ShutdownSignals;
use askgate::serve::signin;
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
        Some("backup") => backup(&args[1..]),
        Some("tokens") => tokens(&args[1..]),
        Some("health") => health(&args[1..]),
        Some("signin-link") => signin_link(&args[1..]),
        Some("notify") => notify(&args[1..]),
        Some("verify") => receipt::verify_main(&args[1..]),
        Some("receipts") => match args.get(1).map(String::as_str) {
            Some("key") => receipt::key_main(&args[2..]),
            _ => usage_error(receipt::KEY_USAGE),
        },
        Some("help") => {
            say(&usage());
            ExitCode::SUCCESS
        }
        Some("-V" | "--version") => {
            say(&format!("askgate {}", env!("CARGO_PKG_VERSION")));
            ExitCode::SUCCESS
        }
        _ => serve(&args),
    }
}

/// The usage of the command whose own flags (those before a `--`) hold
/// `-h` or `--help`: help goes to stdout and exits 0, whatever else was
/// given.
fn help_asked(args: &[String]) -> Option<String> {
    const COMMANDS: [&str; 13] = [
        "clarify",
        "approve",
        "mcp",
        "hook",
        "serve",
        "journal",
        "backup",
        "tokens",
        "health",
        "signin-link",
        "notify",
        "verify",
        "receipts",
    ];
    let (command, flags) = match args.first().map(String::as_str) {
        Some(command) if COMMANDS.contains(&command) => (command, &args[1..]),
        _ => ("serve", args),
    };
    let asked = flags
        .iter()
        .take_while(|arg| *arg != "--")
        .any(|arg| arg == "-h" || arg == "--help");
    let agent_side = |usage: &str| format!("usage: {usage}\n\n{}", client::COMMON_USAGE);
    asked.then(|| match command {
        "clarify" => agent_side(client::CLARIFY_USAGE),
        "approve" => agent_side(client::APPROVE_USAGE),
        "mcp" => agent_side(mcp::MCP_USAGE),
        "hook" => agent_side(hook::HOOK_USAGE),
        "journal" => format!("usage: {JOURNAL_USAGE}"),
        "backup" => format!("usage: {BACKUP_USAGE}"),
        "tokens" => format!("usage: {TOKENS_USAGE}"),
        "health" => format!("usage: {HEALTH_USAGE}"),
        "notify" => format!("usage: {NOTIFY_USAGE}"),
        "verify" => format!("usage: {}", receipt::VERIFY_USAGE),
        "receipts" => format!("usage: {}", receipt::KEY_USAGE),
        "signin-link" => format!("usage: {SIGNIN_USAGE}"),
        _ if args.first().is_some_and(|first| first == "serve") => Config::usage(),
        _ => usage(),
    })
}

const NOTIFY_USAGE: &str = "askgate notify test [--data-dir D] [the serve flags: --notify-ntfy URL, --notify-webhook URL, --public-url URL, ...]   (sends one test notification to each configured sink and says what each answered; exit 1 when one failed)";

/// `askgate notify test`: the serve flags (and `ASKGATE_*`), one test
/// notification per sink, and what became of each.
fn notify(args: &[String]) -> ExitCode {
    let Some(("test", flags)) = args
        .split_first()
        .map(|(first, rest)| (first.as_str(), rest))
    else {
        return usage_error(NOTIFY_USAGE);
    };
    let config = match Config::parse(flags, |name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("askgate notify test: {message}");
            return usage_error(NOTIFY_USAGE);
        }
    };
    let settings = &config.notify;
    if !settings.any() {
        eprintln!("askgate notify test: no sink: give --notify-ntfy URL or --notify-webhook URL");
        return ExitCode::from(2);
    }
    let base = match &config.public_url {
        Some(url) => url.to_string(),
        None => {
            let base = format!("http://{}", config.bind.replace("0.0.0.0", "127.0.0.1"));
            say(&format!(
                "WARNING: no --public-url: notifications link to {base} and carry buttons that post there; \
                 a phone elsewhere can open neither"
            ));
            base
        }
    };
    let links = askgate::notify::message::Links { base };
    let mut failed = false;
    for (name, result) in askgate::notify::send_test(settings, &links) {
        match result {
            Ok(()) => say(&format!("{name}: sent (the sink took it)")),
            Err(why) => {
                failed = true;
                say(&format!("{name}: FAILED: {why}"));
            }
        }
    }
    match failed {
        true => ExitCode::from(1),
        false => ExitCode::SUCCESS,
    }
}

const HEALTH_USAGE: &str = "askgate health [--server URL]   (exit 0 when the server answers GET /healthz, 1 when not: a container's HEALTHCHECK)";

/// `askgate health`: asks a running server's `/healthz`; for a container
/// image, which has no curl.
fn health(args: &[String]) -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let mut connection = client::Connection::from_env(&env);
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().cloned().ok_or(format!("{flag} needs a value"));
        match connection.take(flag, &mut value) {
            Ok(true) => {}
            Ok(false) => return usage_error(HEALTH_USAGE),
            Err(message) => {
                eprintln!("askgate health: {message}");
                return usage_error(HEALTH_USAGE);
            }
        }
    }
    let checked = connection.client(None).and_then(|client| client.health());
    match checked {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("askgate health: {message}");
            ExitCode::from(1)
        }
    }
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
            say(&report.to_string());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("askgate: {error}");
            ExitCode::from(1)
        }
    }
}

const SIGNIN_USAGE: &str = "askgate signin-link [--human NAME] [--data-dir DIR] [--server URL]   (prints a link that signs the page in, once, within 10 minutes; as the named human NAME, else as the legacy human)";

const BACKUP_USAGE: &str = "askgate backup [--data-dir DIR] DEST   (copies a running server's data directory, consistently and without stopping it, to DEST, a new or empty directory; restore by starting a server on a copy of DEST; not for --store redis://, back up Redis itself)";

/// `askgate backup DEST`: exit 0 with DEST whole, 1 when it could not be
/// made (DEST then as it was), 2 on usage errors.
fn backup(args: &[String]) -> ExitCode {
    let (dir, dest) = match args {
        [dest] => (None, dest),
        [flag, dir, dest] if flag == "--data-dir" => (Some(dir), dest),
        _ => return usage_error(BACKUP_USAGE),
    };
    // As `serve` finds it: the flag, else ASKGATE_DATA_DIR, else the default.
    let dir = dir
        .cloned()
        .or_else(|| std::env::var("ASKGATE_DATA_DIR").ok());
    let Some(dir) = data_dir(dir.as_ref()) else {
        eprintln!("askgate: neither XDG_STATE_HOME nor HOME is set: give --data-dir");
        return ExitCode::from(2);
    };
    askgate::logger::init(log::LevelFilter::Warn);
    match askgate::backup::backup(&dir, std::path::Path::new(dest)) {
        Ok(done) => {
            say(&done.to_string());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("askgate backup: {error}");
            ExitCode::from(1)
        }
    }
}

/// The data directory a command names (`--data-dir DIR`), else the
/// default one, as `askgate serve` would use.
fn data_dir(given: Option<&String>) -> Option<std::path::PathBuf> {
    match given {
        Some(dir) => Some(dir.into()),
        None => askgate::config::default_data_dir(&|name: &str| std::env::var(name).ok()),
    }
}

/// `askgate signin-link`: a fresh one-time sign-in link for the server
/// whose tokens are in the data directory, minted here from the human's
/// token; the server checks it without being told (docs/PROTOCOL.md §7).
fn signin_link(args: &[String]) -> ExitCode {
    let (mut dir, mut server, mut human) = (None, None, None);
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--data-dir", Some(value)) => dir = Some(value),
            ("--server", Some(value)) => server = Some(value.clone()),
            ("--human", Some(value)) => human = Some(value.as_str()),
            _ => return usage_error(SIGNIN_USAGE),
        }
    }
    let Some(dir) = data_dir(dir) else {
        eprintln!("askgate: neither XDG_STATE_HOME nor HOME is set: give --data-dir");
        return ExitCode::from(2);
    };
    let server = server
        .or_else(|| std::env::var("ASKGATE_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8787".into());
    let page = format!("{}/", server.trim_end_matches('/'));
    let human = human.unwrap_or(signin::LEGACY_HUMAN);
    // A named human's code is bound to their credential as it is now.
    let binding = |human: &str| {
        if human == signin::LEGACY_HUMAN {
            return Ok(String::new());
        }
        let entries = credentials::read(&dir)?;
        let entry = entries
            .into_iter()
            .find(|entry| entry.role == Role::Human && entry.name == human);
        entry.map(|entry| entry.digest).ok_or_else(|| {
            std::io::Error::other(format!("no human named {human:?} (askgate tokens list)"))
        })
    };
    let link = auth::read_tokens(&dir).and_then(|tokens| match tokens {
        Some(tokens) => binding(human)
            .and_then(|bound| signin::mint_for(&signin::key(&tokens.human), human, &bound)),
        None => Err(std::io::Error::other(format!(
            "{} holds no tokens file (is it the server's --data-dir? a server with --data-dir none \
             or tokens given by flag has none)",
            dir.display()
        ))),
    });
    match link {
        Ok(code) => {
            println!("{}", signin::link(&page, &code));
            eprintln!(
                "open it within {} minutes; it signs in once",
                signin::LIFETIME_SECS / 60
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("askgate: {error}");
            ExitCode::from(1)
        }
    }
}

const TOKENS_USAGE: &str = "askgate tokens add agent|human NAME | list | revoke NAME | rotate agent|human|notify [--data-dir DIR]
  add     a named credential in DIR/credentials; prints its token once (a running server takes it at once)
  list    names, roles and when each was made (never a token)
  revoke  removes a named credential: its next request is refused
  rotate  a new legacy token in DIR/tokens, or notification key in DIR/notify.key; restart the server";

/// `askgate tokens rotate agent|human`: replaces one token in the data
/// directory's tokens file (made on first start off loopback) and prints it.
/// `notify` replaces the notifications' key, so no button sent before
/// answers any more.
fn tokens(args: &[String]) -> ExitCode {
    let (words, dir) = match args {
        [words @ .., flag, dir] if flag == "--data-dir" => (words, data_dir(Some(dir))),
        words => (words, data_dir(None)),
    };
    let Some(dir) = dir else {
        eprintln!("askgate: neither XDG_STATE_HOME nor HOME is set: give --data-dir");
        return ExitCode::from(2);
    };
    let dir = dir.as_path();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let done = match words.as_slice() {
        ["rotate", role] => return rotate(dir, role),
        ["add", role, name] => add_credential(dir, role, name),
        ["list"] => list_credentials(dir),
        ["revoke", name] => credentials::revoke(dir, name)
            .map(|entry| format!("revoked {} ({})", entry.name, entry.role.as_str())),
        _ => return usage_error(TOKENS_USAGE),
    };
    match done {
        Ok(text) => {
            say(&text);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("askgate: {error}");
            ExitCode::from(1)
        }
    }
}

/// `askgate tokens add agent|human NAME`: the new token, printed once.
fn add_credential(dir: &std::path::Path, role: &str, name: &str) -> std::io::Result<String> {
    let role = match role {
        "agent" => Role::Agent,
        "human" => Role::Human,
        _ => return Err(std::io::Error::other("the role is agent or human")),
    };
    let token = credentials::add(dir, role, name)?;
    let how = match role {
        Role::Agent => format!("give it to the agent as ASKGATE_TOKEN={token}"),
        Role::Human => format!(
            "sign the page in with it, or: askgate signin-link --human {name} --data-dir {}",
            dir.display()
        ),
    };
    Ok(format!(
        "new {} credential {name}: {token}\nshown once, kept nowhere; {how}",
        role.as_str()
    ))
}

/// `askgate tokens list`: every credential's name, role and creation,
/// never a token.
fn list_credentials(dir: &std::path::Path) -> std::io::Result<String> {
    let mut text = String::from("NAME                             ROLE   CREATED\n");
    if auth::read_tokens(dir)?.is_some() {
        text.push_str(&format!(
            "{:<32} agent  (legacy token, DIR/tokens)\n",
            auth::AGENT
        ));
        text.push_str(&format!(
            "{:<32} human  (legacy token, DIR/tokens)\n",
            auth::HUMAN
        ));
    }
    for entry in credentials::read(dir)? {
        let role = entry.role.as_str();
        text.push_str(&format!("{:<32} {role:<6} {}\n", entry.name, entry.created));
    }
    Ok(text.trim_end().to_string())
}

/// `askgate tokens rotate agent|human|notify`.
fn rotate(dir: &std::path::Path, role: &str) -> ExitCode {
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
            say(&format!(
                "new {role} token: {token}\nrestart the server for it to take effect"
            ));
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
            say(&format!(
                "new notification key in {}\nrestart the server: buttons sent before no longer answer",
                dir.join(capability::KEY_FILE).display()
            ));
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
         usage:\n  askgate [serve] [FLAGS]\n  {}\n  {}\n  {}\n  {}\n  {JOURNAL_USAGE}\n  {BACKUP_USAGE}\n  {TOKENS_USAGE}\n  {SIGNIN_USAGE}\n  {HEALTH_USAGE}\n  {NOTIFY_USAGE}\n  {}\n  {}\n\n{}",
        client::CLARIFY_USAGE,
        client::APPROVE_USAGE,
        mcp::MCP_USAGE,
        hook::HOOK_USAGE,
        receipt::KEY_USAGE,
        receipt::VERIFY_USAGE,
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
    askgate::logger::init(config.log_level);
    let server = match Server::start(config) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("askgate: cannot start: {error}");
            return ExitCode::from(2);
        }
    };
    // Tests and scripts read the address from this first line of stdout.
    say(&format!("askgate listening on http://{}", server.addr()));
    server.wait(signals);
    ExitCode::SUCCESS
}
