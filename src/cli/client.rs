//! The `askgate clarify` and `askgate approve` commands (SPEC §5.3): submit a
//! prompt, wait for its outcome, and say it through stdout and the exit code.
//!
//! The wait survives a server that is briefly unreachable (it retries with a
//! growing pause) and says clearly when the server stays away. HTTP is spoken
//! with a plain `TcpStream`: one request per connection, no TLS.

use serde_json::{Value, json};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub const CLARIFY_USAGE: &str =
    "askgate clarify --session S \"question\" [--choice A]... [--timeout SECS]";
pub const APPROVE_USAGE: &str = "askgate approve --session S --command \"...\" [--pattern KEY]... [--description D] [--timeout SECS]";
const COMMON_USAGE: &str = "both take --server URL (or ASKGATE_URL, default http://127.0.0.1:8787) and \
                            --retry-secs N (how long to keep retrying an unreachable server while waiting, \
                            default 60); ASKGATE_TOKEN is sent as a bearer token";
/// How long one wait call asks the server to hold on.
const WAIT_SECS: u64 = 25;

const EXIT_APPROVED: u8 = 0;
const EXIT_DENIED: u8 = 1;
const EXIT_ERROR: u8 = 2;
const EXIT_EXPIRED: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Command {
    Clarify,
    Approve,
}

impl Command {
    fn kind(self) -> &'static str {
        match self {
            Command::Clarify => "clarify",
            Command::Approve => "approval",
        }
    }

    fn usage(self) -> &'static str {
        match self {
            Command::Clarify => CLARIFY_USAGE,
            Command::Approve => APPROVE_USAGE,
        }
    }
}

/// What the command line asked for.
#[derive(Debug, PartialEq)]
struct Ask {
    server: String,
    session_id: String,
    body: Value,
    /// How long the wait keeps retrying a server that does not answer.
    retry: Duration,
}

pub fn main(command: Command, args: &[String]) -> ExitCode {
    let server = std::env::var("ASKGATE_URL").unwrap_or_else(|_| "http://127.0.0.1:8787".into());
    let ask = match parse(command, args, server) {
        Ok(ask) => ask,
        Err(message) => {
            eprintln!(
                "askgate {}: {message}\nusage: {}\n{COMMON_USAGE}",
                command.kind(),
                command.usage()
            );
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let client = match Client::new(&ask.server, std::env::var("ASKGATE_TOKEN").ok()) {
        Ok(client) => client,
        Err(message) => return fail(&message),
    };
    match run(command, &client, &ask) {
        Ok(code) => ExitCode::from(code),
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("askgate: {message}");
    ExitCode::from(EXIT_ERROR)
}

fn parse(command: Command, args: &[String], mut server: String) -> Result<Ask, String> {
    let mut session_id = None;
    let mut timeout = None;
    let mut retry = Duration::from_secs(60);
    let (mut text, mut description) = (None, None);
    let mut list = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
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
        match (command, flag) {
            (_, "--session") => session_id = Some(value()?),
            (_, "--server") => server = value()?,
            (_, "--retry-secs") => {
                let seconds = value()?;
                retry = Duration::from_secs(
                    seconds
                        .parse()
                        .map_err(|_| format!("invalid --retry-secs: {seconds}"))?,
                );
            }
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
            _ => return Err(format!("unknown flag: {flag}")),
        }
    }
    let session_id = session_id.ok_or("--session is required")?;
    let mut body = match command {
        Command::Clarify => {
            let question = text.ok_or("the question is required")?;
            json!({"session_id": session_id, "question": question, "choices": list})
        }
        Command::Approve => {
            let command = text.ok_or("--command is required")?;
            json!({"session_id": session_id, "command": command, "pattern_keys": list,
                   "description": description.unwrap_or_default()})
        }
    };
    if let Some(timeout) = timeout {
        body["timeout_seconds"] = timeout.into();
    }
    Ok(Ask {
        server,
        session_id,
        body,
        retry,
    })
}

/// Submits, then waits until the prompt has an outcome.
fn run(command: Command, client: &Client, ask: &Ask) -> Result<u8, String> {
    let kind = command.kind();
    let (status, reply) = client
        .call(
            "POST",
            &format!("/api/{kind}/submit"),
            Some(&ask.body),
            Duration::from_secs(10),
        )
        .map_err(|error| format!("cannot reach the server at {}: {error}", client.base))?;
    if status != 200 {
        return Err(format!(
            "the server refused the prompt ({status}): {}",
            error_text(&reply)
        ));
    }
    if reply["status"] == "answered" {
        return Ok(conclude(command, &reply));
    }
    let id_field = format!("{kind}_id");
    let id = reply[&id_field]
        .as_str()
        .ok_or("the server's answer had no id")?;
    let path = format!(
        "/api/{kind}/wait?session_id={}&{id_field}={id}&timeout={WAIT_SECS}",
        ask.session_id
    );
    let mut unreachable_since: Option<Instant> = None;
    let mut pause = Duration::from_millis(250);
    loop {
        match client.call("GET", &path, None, Duration::from_secs(WAIT_SECS + 15)) {
            Ok((200, reply)) if reply["status"] == "pending" => unreachable_since = None,
            Ok((200, reply)) => return Ok(conclude(command, &reply)),
            Ok((404, _)) => {
                return Err(format!(
                    "the server no longer knows {kind} {id} (was it restarted?)"
                ));
            }
            Ok((status, reply)) => {
                return Err(format!("waiting failed ({status}): {}", error_text(&reply)));
            }
            Err(error) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= ask.retry {
                    return Err(format!(
                        "the server at {} has not answered for {} s ({error}); {kind} {id} may still be pending",
                        client.base,
                        ask.retry.as_secs()
                    ));
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Prints what the human said and picks the exit code.
fn conclude(command: Command, reply: &Value) -> u8 {
    match (command, reply["status"].as_str()) {
        (Command::Clarify, Some("answered")) => {
            println!("{}", reply["response"].as_str().unwrap_or_default());
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
                eprintln!("askgate: denied");
                return EXIT_DENIED;
            }
            eprintln!("askgate: approved ({choice}){auto}");
            EXIT_APPROVED
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

fn error_text(reply: &Value) -> String {
    reply["error"]
        .as_str()
        .map_or_else(|| reply.to_string(), str::to_string)
}

/// A base url (`http://host:port/prefix`) and the token to send.
struct Client {
    base: String,
    host: String,
    prefix: String,
    token: Option<String>,
}

impl Client {
    fn new(url: &str, token: Option<String>) -> Result<Client, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("unsupported server url {url:?}: only http:// (put TLS in a reverse proxy)")
        })?;
        let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            return Err(format!("no host in server url {url:?}"));
        }
        let host = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let prefix = format!("/{}", prefix.trim_end_matches('/'))
            .trim_end_matches('/')
            .to_string();
        Ok(Client {
            base: url.trim_end_matches('/').to_string(),
            host,
            prefix,
            token,
        })
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> io::Result<(u16, Value)> {
        let mut socket = TcpStream::connect(&self.host)?;
        socket.set_read_timeout(Some(timeout))?;
        socket.set_write_timeout(Some(Duration::from_secs(10)))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut request = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: application/json\r\n",
            self.prefix, self.host
        );
        if let Some(token) = &self.token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if method == "POST" {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        socket.write_all(request.as_bytes())?;
        let mut response = Vec::new();
        socket.read_to_end(&mut response)?;
        parse_response(&response)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed response"))
    }
}

fn parse_response(response: &[u8]) -> Option<(u16, Value)> {
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..split]).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let body = serde_json::from_slice(&response[split + 4..]).unwrap_or(Value::Null);
    Some((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn command_lines_become_prompts() {
        let server = "http://127.0.0.1:8787".to_string();
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
            server.clone(),
        )
        .unwrap();
        let expected = json!({"session_id": "demo", "question": "Ship it?", "choices": ["yes", "no"], "timeout_seconds": 5});
        assert_eq!((ask.session_id.as_str(), ask.body), ("demo", expected));
        let ask = parse(
            Command::Approve,
            &args(&[
                "--session=nas",
                "--command",
                "reboot",
                "--pattern",
                "reboot",
            ]),
            server.clone(),
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
        ] {
            assert!(
                parse(command, &args(&bad), server.clone()).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn server_urls() {
        let client = Client::new("http://example:9000/askgate/", None).unwrap();
        assert_eq!(
            (client.host.as_str(), client.prefix.as_str()),
            ("example:9000", "/askgate")
        );
        let client = Client::new("http://localhost", None).unwrap();
        assert_eq!(
            (client.host.as_str(), client.prefix.as_str()),
            ("localhost:80", "")
        );
        assert!(Client::new("https://x", None).is_err());
    }
}
