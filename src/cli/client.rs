//! The `askgate clarify` and `askgate approve` commands (docs/PROTOCOL.md §5.3): submit a
//! prompt, wait for its outcome, and say it through stdout and the exit code.
//! The calls themselves are `cli/api.rs`'s.

use crate::cli::api::Client;
use crate::cli::{interrupt, receipt, say, wrap};
use crate::core::kind::Kind;
use crate::core::receipt as receipt_core;
use serde_json::{Value, json};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

pub const CLARIFY_USAGE: &str = "askgate clarify --session S \"question\" [--choice A]... [--multiple] [--schema FILE] [--timeout SECS]\n    \
    --multiple: the human may pick several choices, printed one a line; \
    --schema FILE: a form (MCP elicitation's JSON Schema), its answer printed as one JSON object";
pub const APPROVE_USAGE: &str = "askgate approve --session S --command \"...\" [--pattern KEY]... [--description D] [--timeout SECS] [--verify-key KEY] [-- CMD [ARG]...]\n    \
    with -- CMD ARGS: the command shown is CMD ARGS shell-quoted (another --command is shown as its description), \
    and it runs once approved; askgate then exits with its status (128+N for signal N); when it did not run, \
    askgate exits 77 denied, 75 expired or cancelled, 69 no answer could be had (server unreachable or refusing), \
    codes a command rarely uses (sysexits.h); with --verify-key KEY (or ASKGATE_VERIFY_KEY, the hex key of \
    askgate receipts key) CMD runs only if the answer's receipt verifies with KEY, names this prompt and this \
    argv, approves and has not expired, else askgate exits 2 saying why";
pub const COMMON_USAGE: &str = "--timeout SECS is how long the human has to answer: default 900 (15 minutes) for a question and an approval alike, 0 waits until answered. \
                            clarify, approve and mcp take --server URL (or ASKGATE_URL, default http://127.0.0.1:8787, \
                            http:// or https://, with a path behind a reverse proxy), \
                            --retry-secs N (how long to keep retrying an unreachable or busy server \
                            while waiting, default 60) and --ca-file PATH (or ASKGATE_CA_FILE: trust \
                            only the CAs of this PEM file for https, instead of the system's roots); \
                            ASKGATE_TOKEN is sent as a bearer token";
const DEFAULT_SERVER: &str = "http://127.0.0.1:8787";

pub const EXIT_APPROVED: u8 = 0;
pub const EXIT_DENIED: u8 = 1;
pub const EXIT_ERROR: u8 = 2;
pub const EXIT_EXPIRED: u8 = 3;
/// Approved once, but an edited command: not the one asked (printed on
/// stdout), so `askgate approve && CMD` does not run what was not approved.
const EXIT_EDITED: u8 = 4;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Command {
    Clarify,
    Approve,
}

impl Command {
    fn kind(self) -> Kind {
        match self {
            Command::Clarify => Kind::Clarify,
            Command::Approve => Kind::Approval,
        }
    }

    fn usage(self) -> &'static str {
        match self {
            Command::Clarify => CLARIFY_USAGE,
            Command::Approve => APPROVE_USAGE,
        }
    }
}

/// Where the server is and how to reach it: the flags every agent-side
/// command (`clarify`, `approve`, `mcp`) takes.
#[derive(Debug, PartialEq)]
pub struct Connection {
    pub server: String,
    /// A PEM file of the only CAs to trust for https.
    pub ca_file: Option<String>,
    /// How long a wait keeps retrying a server that does not answer.
    pub retry: Duration,
}

impl Connection {
    /// The defaults, under `ASKGATE_URL` and `ASKGATE_CA_FILE`.
    pub fn from_env(env: &impl Fn(&str) -> Option<String>) -> Connection {
        Connection {
            server: env("ASKGATE_URL").unwrap_or_else(|| DEFAULT_SERVER.into()),
            ca_file: env("ASKGATE_CA_FILE"),
            retry: Duration::from_secs(60),
        }
    }

    /// Takes `flag` if it is one of these (`false` when it is not), its
    /// value from `value`.
    pub fn take(
        &mut self,
        flag: &str,
        value: &mut dyn FnMut() -> Result<String, String>,
    ) -> Result<bool, String> {
        match flag {
            "--server" => self.server = value()?,
            "--ca-file" => self.ca_file = Some(value()?),
            "--retry-secs" => {
                let seconds = value()?;
                self.retry = Duration::from_secs(
                    seconds
                        .parse()
                        .map_err(|_| format!("invalid --retry-secs: {seconds}"))?,
                );
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub fn client(&self, token: Option<String>) -> Result<Client, String> {
        Client::new(&self.server, token, self.ca_file.as_deref())
    }
}

/// What the command line asked for.
#[derive(Debug, PartialEq)]
struct Ask {
    connection: Connection,
    session_id: String,
    body: Value,
    /// `approve ... -- CMD ARGS`: what runs once approved.
    run: Option<Vec<String>>,
    /// `--verify-key` (or `ASKGATE_VERIFY_KEY`): the command runs only on a
    /// receipt this key verifies (docs/PROTOCOL.md §10).
    verify_key: Option<String>,
}

pub fn main(command: Command, args: &[String]) -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let ask = match parse(command, args, env) {
        Ok(ask) => ask,
        Err(message) => {
            eprintln!(
                "askgate {}: {message}\nusage: {}\n{COMMON_USAGE}",
                command.kind().as_str(),
                command.usage()
            );
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let client = match ask.connection.client(env("ASKGATE_TOKEN")) {
        Ok(client) => Arc::new(client),
        Err(message) => return fail(&message),
    };
    let ran = run(command, client, &ask);
    if let (Ok((code @ (EXIT_APPROVED | EXIT_EDITED), edited, reply, id)), Some(key)) =
        (&ran, &ask.verify_key)
        && command == Command::Approve
    {
        // What will run: the command asked, or the one the human edited it
        // to, which the receipt names in its `edited` (docs/PROTOCOL.md §10).
        let asked = ask.body["command"].as_str().unwrap_or_default();
        let runs = match (*code, edited) {
            (EXIT_EDITED, Some(edited)) => edited.as_str(),
            _ => asked,
        };
        let action = receipt_core::command_action(runs);
        if let Err(why) = receipt::check_reply(key, reply, id, &action, receipt::now()) {
            eprintln!("askgate: not approved: {}", visible(&why));
            return ExitCode::from(EXIT_ERROR);
        }
    }
    match (ran.map(|(code, edited, ..)| (code, edited)), &ask.run) {
        (Ok((EXIT_APPROVED, _)), Some(argv)) => ExitCode::from(wrap::run(argv)),
        (Ok((EXIT_EDITED, Some(edited))), Some(_)) => {
            // The human approved this command instead: shown before it runs.
            eprintln!(
                "askgate: running the command as the human edited it: {}",
                visible(&edited)
            );
            ExitCode::from(wrap::run_shell(&edited))
        }
        (Ok((EXIT_EDITED, Some(edited))), None) => {
            say(&edited);
            ExitCode::from(EXIT_EDITED)
        }
        (Ok((code, _)), Some(_)) => ExitCode::from(wrap::not_run(code)),
        (Ok((code, _)), None) => ExitCode::from(code),
        (Err(message), Some(_)) => {
            fail(&message);
            ExitCode::from(wrap::not_run(EXIT_ERROR))
        }
        (Err(message), None) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("askgate: {}", visible(message));
    ExitCode::from(EXIT_ERROR)
}

/// Text for the terminal with control and bidi characters written as
/// escapes: a server's message quotes what an agent sent, and must not be
/// able to move the cursor, clear the line or turn text around.
pub fn visible(text: &str) -> String {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
    };
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match hidden(c) {
            true => out.extend(c.escape_unicode()),
            false => out.push(c),
        }
    }
    out
}

fn parse(
    command: Command,
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Ask, String> {
    let mut connection = Connection::from_env(&env);
    let mut session_id = None;
    let mut timeout = None;
    let (mut text, mut description) = (None, None);
    let mut list = Vec::new();
    let mut run = None;
    let (mut multiple, mut schema) = (false, None);
    let mut verify_key = env("ASKGATE_VERIFY_KEY").filter(|key| !key.is_empty());
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if command == Command::Clarify && arg == "--multiple" {
            multiple = true;
            continue;
        }
        if command == Command::Approve && arg == "--" {
            run = Some(args.by_ref().cloned().collect::<Vec<_>>());
            break;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        if !flag.starts_with("--") {
            match (command, &text) {
                (Command::Clarify, None) => text = Some(arg.clone()),
                _ => return Err(format!("unexpected argument: {arg}")),
            }
            continue;
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or(format!("{flag} needs a value"))
        };
        if connection.take(flag, &mut value)? {
            continue;
        }
        match (command, flag) {
            (_, "--session") => session_id = Some(value()?),
            (_, "--timeout") => {
                let seconds = value()?;
                timeout = Some(
                    seconds
                        .parse::<i64>()
                        .map_err(|_| format!("invalid --timeout: {seconds}"))?,
                );
            }
            (Command::Clarify, "--choice") | (Command::Approve, "--pattern") => list.push(value()?),
            (Command::Approve, "--command") => text = Some(value()?),
            (Command::Approve, "--description") => description = Some(value()?),
            (Command::Clarify, "--schema") => schema = Some(read_schema(&value()?)?),
            (Command::Approve, "--verify-key") => verify_key = Some(value()?),
            _ => return Err(format!("unknown flag: {flag}")),
        }
    }
    let session_id = session_id.ok_or("--session is required")?;
    let mut body = match command {
        Command::Clarify => {
            let question = text.ok_or("the question is required")?;
            let mut body = json!({"session_id": session_id, "question": question, "choices": list});
            if multiple {
                body["multiple"] = json!(true);
            }
            if let Some(schema) = schema {
                body["schema"] = schema;
            }
            body
        }
        Command::Approve => {
            let (command, description) = match &run {
                Some(argv) => command_that_runs(argv, text, description)?,
                None => (
                    text.ok_or("--command is required (or -- CMD ARGS)")?,
                    description,
                ),
            };
            json!({"session_id": session_id, "command": command, "pattern_keys": list,
                   "description": description.unwrap_or_default()})
        }
    };
    if let Some(timeout) = timeout {
        body["timeout_seconds"] = timeout.into();
    }
    Ok(Ask {
        connection,
        session_id,
        body,
        run,
        verify_key,
    })
}

/// The command the human is shown and approves for `-- CMD ARGS`: their
/// quoting, always; the human must see what runs. An explicit `--command`
/// other than that is only the caller's name for it, and goes into the
/// description (before `--description`, if any), never in its place.
fn command_that_runs(
    argv: &[String],
    given: Option<String>,
    description: Option<String>,
) -> Result<(String, Option<String>), String> {
    if argv.is_empty() {
        return Err("-- needs the command to run".into());
    }
    let quoted = wrap::quote(argv);
    let description = match (given.filter(|given| *given != quoted), description) {
        (Some(given), Some(description)) => Some(format!("{given}: {description}")),
        (given, description) => given.or(description),
    };
    Ok((quoted, description))
}

/// A form's schema from a JSON file; the server checks what it says.
fn read_schema(path: &str) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read --schema {path}: {error}"))?;
    serde_json::from_str(&text).map_err(|error| format!("--schema {path} is not JSON: {error}"))
}

/// How to wait longer, said whenever a prompt expired.
pub const RAISE_TIMEOUT: &str = "to give the human longer, pass --timeout SECS (\"timeout_seconds\" in a submit; 0 waits until answered); the default is 900 s (15 min)";

/// Submits, then waits until the prompt has an outcome: the exit code, and
/// the edited command when the human approved another one. A SIGTERM,
/// SIGINT or SIGHUP meanwhile cancels the prompt and exits 128 + its number.
/// What came of asking: the exit code, the edited command when the human
/// approved another one, the server's last answer and the prompt's id.
type Ran = (u8, Option<String>, Value, String);

fn run(command: Command, client: Arc<Client>, ask: &Ask) -> Result<Ran, String> {
    let last_word: interrupt::LastWord = Box::new(|signal| {
        eprintln!("askgate: stopped by signal {signal}; the prompt was cancelled");
        128u8.wrapping_add(signal as u8)
    });
    let kind = command.kind();
    let retry = ask.connection.retry;
    let (outcome, id) = interrupt::ask(client, kind, &ask.session_id, &ask.body, retry, last_word)?;
    let edited = outcome["edited"]["command"].as_str().map(str::to_string);
    let code = conclude(command, &outcome);
    Ok((code, edited.filter(|_| code == EXIT_EDITED), outcome, id))
}

/// Prints what the human said and picks the exit code: a clarify's text,
/// its picks one a line, or its form as one JSON object on stdout; an
/// approval's reason, note and edit on stderr.
fn conclude(command: Command, reply: &Value) -> u8 {
    match (command, reply["status"].as_str()) {
        (Command::Clarify, Some("answered")) => {
            // A reader that went away (`| head`) is no panic; the answer stands.
            match &reply["response"] {
                Value::String(text) => say(text),
                Value::Array(picks) => picks
                    .iter()
                    .for_each(|pick| say(pick.as_str().unwrap_or_default())),
                other => say(&other.to_string()),
            }
            EXIT_APPROVED
        }
        (Command::Approve, Some("answered")) => {
            let choice = reply["choice"].as_str().unwrap_or("deny");
            let auto = if reply["auto"] == true {
                " by an earlier rule"
            } else {
                ""
            };
            if choice == "deny" {
                match reply["reason"].as_str() {
                    Some(reason) => eprintln!("askgate: denied: {}", visible(reason)),
                    None => eprintln!("askgate: denied"),
                }
                return EXIT_DENIED;
            }
            eprintln!("askgate: approved ({choice}){auto}");
            if let Some(note) = reply["note"].as_str() {
                eprintln!("askgate: note: {}", visible(note));
            }
            match reply["edited"]["command"].as_str() {
                Some(edited) => {
                    eprintln!("askgate: edited to: {}", visible(edited));
                    EXIT_EDITED
                }
                None => EXIT_APPROVED,
            }
        }
        (_, Some("expired")) => {
            eprintln!("askgate: the prompt expired before the human answered; {RAISE_TIMEOUT}");
            EXIT_EXPIRED
        }
        (_, status) => {
            eprintln!(
                "askgate: the prompt {}",
                status.unwrap_or("ended without an answer")
            );
            EXIT_EXPIRED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_for_the_terminal_show_hidden_characters_escaped() {
        assert_eq!(visible("plain text"), "plain text");
        assert_eq!(
            visible("a\u{202E}b\x1b[2Jc\nd"),
            "a\\u{202e}b\\u{1b}[2Jc\\u{a}d"
        );
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| arg.to_string()).collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn command_lines_become_prompts() {
        let ask = parse(
            Command::Clarify,
            &args(&[
                "--session",
                "demo",
                "Ship it?",
                "--choice",
                "yes",
                "--choice=no",
                "--timeout",
                "5",
            ]),
            no_env,
        )
        .unwrap();
        let expected = json!({"session_id": "demo", "question": "Ship it?", "choices": ["yes", "no"], "timeout_seconds": 5});
        assert_eq!((ask.session_id.as_str(), ask.body), ("demo", expected));
        assert_eq!(
            (ask.connection.server.as_str(), ask.connection.ca_file),
            (DEFAULT_SERVER, None)
        );
        let ask = parse(
            Command::Approve,
            &args(&[
                "--session=nas",
                "--command",
                "reboot",
                "--pattern",
                "reboot",
            ]),
            no_env,
        )
        .unwrap();
        assert_eq!(ask.body["pattern_keys"], json!(["reboot"]));
        for (command, bad) in [
            (Command::Clarify, vec!["Ship it?"]),
            (Command::Clarify, vec!["--session", "s"]),
            (Command::Clarify, vec!["--session", "s", "a", "b"]),
            (Command::Approve, vec!["--session", "s"]),
            (
                Command::Approve,
                vec!["--session", "s", "--command", "x", "--choice", "a"],
            ),
            (
                Command::Clarify,
                vec!["--session", "s", "q", "--timeout", "soon"],
            ),
            (Command::Clarify, vec!["--session", "s", "q", "--ca-file"]),
        ] {
            assert!(parse(command, &args(&bad), no_env).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn approve_with_a_command_to_run_shows_its_quoting() {
        let parsed = |list: &[&str]| parse(Command::Approve, &args(list), no_env);
        let ask = parsed(&["--session", "s", "--", "sh", "-c", "exit 7", "--session"]).unwrap();
        assert_eq!(ask.body["command"], "sh -c 'exit 7' --session");
        assert_eq!(ask.run, Some(args(&["sh", "-c", "exit 7", "--session"])));
        let same = [
            "--session",
            "s",
            "--command",
            "sh -c 'exit 7'",
            "--",
            "sh",
            "-c",
            "exit 7",
        ];
        assert_eq!(parsed(&same).unwrap().body["command"], "sh -c 'exit 7'");
        // Another --command is a name for it, shown beside what runs.
        let named = [
            "--session",
            "s",
            "--command",
            "x",
            "--",
            "sh",
            "-c",
            "exit 7",
        ];
        let ask = parsed(&named).unwrap();
        assert_eq!(
            (&ask.body["command"], &ask.body["description"]),
            (&json!("sh -c 'exit 7'"), &json!("x"))
        );
        let described = [&named[..4], &["--description", "why"], &named[4..]].concat();
        assert_eq!(parsed(&described).unwrap().body["description"], "x: why");
        let error = parsed(&["--session", "s", "--"]).unwrap_err();
        assert!(error.contains("-- needs the command to run"), "{error}");
        let clarify = parse(
            Command::Clarify,
            &args(&["--session", "s", "q", "--", "x"]),
            no_env,
        );
        assert!(clarify.is_err());
    }

    #[test]
    fn the_server_and_ca_file_come_from_flags_over_the_environment() {
        let env = |name: &str| Some(format!("from {name}"));
        let ask = parse(Command::Clarify, &args(&["--session", "s", "q"]), env).unwrap();
        assert_eq!(
            (
                ask.connection.server.as_str(),
                ask.connection.ca_file.as_deref()
            ),
            ("from ASKGATE_URL", Some("from ASKGATE_CA_FILE"))
        );
        let flags = args(&[
            "--session",
            "s",
            "q",
            "--server",
            "https://h/a",
            "--ca-file=ca.pem",
        ]);
        let ask = parse(Command::Clarify, &flags, env).unwrap();
        assert_eq!(
            (
                ask.connection.server.as_str(),
                ask.connection.ca_file.as_deref()
            ),
            ("https://h/a", Some("ca.pem"))
        );
    }
}
