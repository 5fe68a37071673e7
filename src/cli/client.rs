//! The `askgate clarify` and `askgate approve` commands (docs/PROTOCOL.md §5.3): submit a
//! prompt, wait for its outcome, and say it through stdout and the exit code.
//!
//! The wait survives a server that is briefly unreachable or busy (it retries
//! with a growing pause, or as long as a 503's `Retry-After` asks) and says
//! clearly when the server stays away. `ureq` speaks HTTP and https: chunked
//! bodies, redirects and a base url with a path (a reverse proxy's `/askgate`)
//! all work, and an answer that is not JSON is named, never taken for null.

use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use ureq::http::{Response, StatusCode, Uri};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::{Agent, Body, RequestBuilder};

pub const CLARIFY_USAGE: &str =
    "askgate clarify --session S \"question\" [--choice A]... [--timeout SECS]";
pub const APPROVE_USAGE: &str = "askgate approve --session S --command \"...\" [--pattern KEY]... [--description D] [--timeout SECS]";
const COMMON_USAGE: &str = "both take --server URL (or ASKGATE_URL, default http://127.0.0.1:8787, \
                            http:// or https://, with a path behind a reverse proxy), \
                            --retry-secs N (how long to keep retrying an unreachable or busy server \
                            while waiting, default 60) and --ca-file PATH (or ASKGATE_CA_FILE: trust \
                            only the CAs of this PEM file for https, instead of the system's roots); \
                            ASKGATE_TOKEN is sent as a bearer token";
const DEFAULT_SERVER: &str = "http://127.0.0.1:8787";
/// How long one wait call asks the server to hold on.
const WAIT_SECS: u64 = 25;
/// How long a submit may take, and a wait beyond what it asked the server for.
const CALL_SECS: u64 = 10;
/// The most a reply body may weigh; askgate's are a few hundred bytes.
const MAX_BODY: u64 = 1 << 20;
/// Redirects followed for one call.
const MAX_REDIRECTS: u32 = 10;
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);
/// Where the system's CA bundle lives (Debian, Fedora, openSUSE, RHEL, Alpine
/// and macOS); `SSL_CERT_FILE` comes first.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

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
    /// A PEM file of the only CAs to trust for https.
    ca_file: Option<String>,
}

pub fn main(command: Command, args: &[String]) -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let ask = match parse(command, args, env) {
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
    let client = match Client::new(&ask.server, env("ASKGATE_TOKEN"), ask.ca_file.as_deref()) {
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

fn parse(
    command: Command,
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Ask, String> {
    let mut server = env("ASKGATE_URL").unwrap_or_else(|| DEFAULT_SERVER.into());
    let mut ca_file = env("ASKGATE_CA_FILE");
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
            (_, "--ca-file") => ca_file = Some(value()?),
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
        ca_file,
    })
}

/// Submits, then waits until the prompt has an outcome.
fn run(command: Command, client: &Client, ask: &Ask) -> Result<u8, String> {
    let kind = command.kind();
    let reply = client
        .post(&format!("/api/{kind}/submit"), &ask.body)
        .map_err(|error| format!("cannot reach the server at {}: {error}", client.base))?;
    let body = reply.json()?;
    if reply.status != 200 {
        return Err(format!(
            "the server refused the prompt ({}): {}",
            reply.status,
            error_text(body)
        ));
    }
    if body["status"] == "answered" {
        return Ok(conclude(command, body));
    }
    let id_field = format!("{kind}_id");
    let id = body[&id_field]
        .as_str()
        .ok_or("the server's answer had no id")?;
    wait(command, client, ask, &id_field, id)
}

/// Asks for the outcome until there is one. A server that cannot be reached,
/// or answers 502, 503 or 504 (busy, or a proxy in front of a server that is
/// away), is asked again until `--retry-secs` pass without an answer.
fn wait(
    command: Command,
    client: &Client,
    ask: &Ask,
    id_field: &str,
    id: &str,
) -> Result<u8, String> {
    let kind = command.kind();
    let wait_secs = WAIT_SECS.to_string();
    let query = [
        ("session_id", ask.session_id.as_str()),
        (id_field, id),
        ("timeout", wait_secs.as_str()),
    ];
    let mut retry = Retry::new(ask.retry);
    loop {
        match step(client.get(&format!("/api/{kind}/wait"), &query), kind, id)? {
            Step::Pending => retry.reset(),
            Step::Outcome(reply) => return Ok(conclude(command, &reply)),
            Step::Again { why, asked } => {
                if !retry.pause(asked) {
                    return Err(format!(
                        "the server at {} has not answered for {} s ({why}); {kind} {id} may still be pending",
                        client.base,
                        ask.retry.as_secs()
                    ));
                }
            }
        }
    }
}

/// What one wait call says to do next.
enum Step {
    Pending,
    Outcome(Value),
    /// Ask again after a pause (as long as `asked`, when the server said).
    Again {
        why: String,
        asked: Option<Duration>,
    },
}

fn step(called: Result<Reply, String>, kind: &str, id: &str) -> Result<Step, String> {
    let reply = match called {
        Ok(reply) => reply,
        Err(why) => return Ok(Step::Again { why, asked: None }),
    };
    if matches!(reply.status, 502..=504) {
        let why = reply.status_text();
        let asked = reply.retry_after;
        return Ok(Step::Again { why, asked });
    }
    let body = reply.json()?;
    match reply.status {
        200 if body["status"] == "pending" => Ok(Step::Pending),
        200 => Ok(Step::Outcome(body.clone())),
        404 => Err(format!(
            "the server no longer knows {kind} {id} (was it restarted?)"
        )),
        status => Err(format!("waiting failed ({status}): {}", error_text(body))),
    }
}

/// The `--retry-secs` budget of a server that does not answer, counted from
/// the first failure since the last answer, and the growing pause.
struct Retry {
    budget: Duration,
    since: Option<Instant>,
    pause: Duration,
}

impl Retry {
    fn new(budget: Duration) -> Retry {
        Retry {
            budget,
            since: None,
            pause: FIRST_PAUSE,
        }
    }

    /// The server answered: the next failure starts a new budget.
    fn reset(&mut self) {
        *self = Retry::new(self.budget);
    }

    /// Sleeps before the next try, as long as the server `asked` or else the
    /// growing pause, never past the budget; `false` once it is spent.
    fn pause(&mut self, asked: Option<Duration>) -> bool {
        let since = *self.since.get_or_insert_with(Instant::now);
        let left = self.budget.saturating_sub(since.elapsed());
        if left.is_zero() {
            return false;
        }
        let pause = asked.map_or(self.pause, |asked| asked.max(FIRST_PAUSE));
        std::thread::sleep(pause.min(left));
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        true
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

/// One answer of the server, read whole.
struct Reply {
    status: u16,
    /// The JSON body, or the start of whatever came instead.
    body: Result<Value, String>,
    /// How long a 503 asks the client to wait (`Retry-After` in seconds).
    retry_after: Option<Duration>,
}

impl Reply {
    fn read(mut response: Response<Body>) -> Result<Reply, String> {
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok()?.trim().parse().ok())
            .map(Duration::from_secs);
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|error| error.to_string())?;
        Ok(Reply {
            status: response.status().as_u16(),
            body: serde_json::from_slice(&bytes).map_err(|_| start_of(&bytes)),
            retry_after,
        })
    }

    /// The JSON body; anything else (a proxy's error page) is an error that
    /// names the status.
    fn json(&self) -> Result<&Value, String> {
        self.body.as_ref().map_err(|start| {
            format!(
                "the server answered {} with a body that is not JSON (a proxy's page, or the wrong --server path?): {start}",
                self.status_text()
            )
        })
    }

    fn status_text(&self) -> String {
        let reason = StatusCode::from_u16(self.status)
            .ok()
            .and_then(|status| status.canonical_reason());
        format!("{} {}", self.status, reason.unwrap_or(""))
            .trim_end()
            .to_string()
    }
}

/// The first line's worth of a body, for a message.
fn start_of(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.join(" ") {
        empty if empty.is_empty() => "(an empty body)".into(),
        line if line.chars().count() > 120 => line.chars().take(120).collect::<String>() + "...",
        line => line,
    }
}

/// A base url (`http://host:port` or `https://host/askgate`), the agent that
/// calls it, and the token to send.
struct Client {
    base: String,
    agent: Agent,
    token: Option<String>,
}

impl Client {
    fn new(url: &str, token: Option<String>, ca_file: Option<&str>) -> Result<Client, String> {
        let base = base_url(url)?;
        // Even for http://, which a proxy may redirect to https://.
        let tls = TlsConfig::builder()
            .root_certs(root_certs(ca_file)?)
            .build();
        let config = Agent::config_builder()
            .http_status_as_error(false)
            // Never through `HTTP_PROXY` and kin: the token goes to askgate
            // alone, and a loopback server is never asked for through a proxy.
            .proxy(None)
            .max_redirects(MAX_REDIRECTS)
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .user_agent(concat!("askgate/", env!("CARGO_PKG_VERSION")))
            .accept("application/json")
            .tls_config(tls);
        Ok(Client {
            base,
            agent: config.build().new_agent(),
            token,
        })
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Reply, String> {
        let request = self
            .agent
            .get(format!("{}{path}", self.base))
            .query_pairs(query.iter().copied())
            .config()
            .timeout_global(Some(Duration::from_secs(WAIT_SECS + CALL_SECS)))
            .build();
        let response = self.authorized(request, true).call().map_err(describe)?;
        Reply::read(response)
    }

    /// POSTs `body`, following redirects with the same method and body (ureq
    /// turns a redirected POST into a GET, which askgate refuses).
    fn post(&self, path: &str, body: &Value) -> Result<Reply, String> {
        let body = body.to_string();
        let mut uri: Uri = format!("{}{path}", self.base)
            .parse()
            .map_err(|_| format!("invalid url {}{path}", self.base))?;
        let mut with_token = true;
        for _ in 0..=MAX_REDIRECTS {
            let request = self
                .agent
                .post(&uri)
                .config()
                .max_redirects(0)
                .timeout_global(Some(Duration::from_secs(CALL_SECS)))
                .build();
            let request = self.authorized(request, with_token);
            let response = request
                .content_type("application/json")
                .send(body.as_bytes())
                .map_err(describe)?;
            match redirect(&uri, &response)? {
                Some(next) => {
                    with_token &= token_may_follow(&uri, &next);
                    uri = next;
                }
                None => return Reply::read(response),
            }
        }
        Err(format!("more than {MAX_REDIRECTS} redirects"))
    }

    fn authorized<B>(&self, request: RequestBuilder<B>, with_token: bool) -> RequestBuilder<B> {
        match &self.token {
            Some(token) if with_token => request.header("Authorization", format!("Bearer {token}")),
            _ => request,
        }
    }
}

/// The server url without its trailing slashes: `http://` or `https://`, a
/// host, and a path when askgate is served under one; no query.
fn base_url(url: &str) -> Result<String, String> {
    let uri: Uri = url
        .parse()
        .map_err(|_| format!("invalid server url {url:?}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!(
            "unsupported server url {url:?}: it must start with http:// or https://"
        ));
    }
    if uri.host().is_none_or(str::is_empty) || uri.query().is_some() || url.contains('#') {
        return Err(format!(
            "invalid server url {url:?}: a host and a path, no query"
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Where a 301, 302, 307 or 308 answer to `from` points, if it is one.
fn redirect(from: &Uri, response: &Response<Body>) -> Result<Option<Uri>, String> {
    if !matches!(response.status().as_u16(), 301 | 302 | 307 | 308) {
        return Ok(None);
    }
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .ok_or("a redirect without a location")?;
    resolve(from, location)
        .map(Some)
        .ok_or_else(|| format!("cannot follow a redirect to {location:?}"))
}

/// `location` (absolute, or a path on the same server) read against `from`.
fn resolve(from: &Uri, location: &str) -> Option<Uri> {
    let target: Uri = location.parse().ok()?;
    if target.scheme().is_some() {
        return Some(target);
    }
    if !location.starts_with('/') || location.starts_with("//") {
        return None;
    }
    let mut parts = from.clone().into_parts();
    parts.path_and_query = target.into_parts().path_and_query;
    Uri::from_parts(parts).ok()
}

/// ureq's rule for its own redirects (`RedirectAuthHeaders::SameHost`): the
/// token goes to the same host only, and never from https down to http.
fn token_may_follow(from: &Uri, to: &Uri) -> bool {
    from.host() == to.host() && (from.scheme() == to.scheme() || to.scheme_str() == Some("https"))
}

/// ureq's message, with a hint when the server's certificate was refused
/// (rustls says so through an `io` error).
fn describe(error: ureq::Error) -> String {
    let message = error.to_string();
    let tls = matches!(error, ureq::Error::Tls(_) | ureq::Error::Rustls(_));
    if tls || message.contains("peer certificate") {
        return format!("{message} (a private CA needs --ca-file)");
    }
    message
}

/// The roots an https server's certificate is checked against: the CA file's
/// alone when one is given (as curl's `--cacert`), else the system's bundle,
/// else the Mozilla roots built into ureq (a system without a bundle file).
fn root_certs(ca_file: Option<&str>) -> Result<RootCerts, String> {
    if let Some(path) = ca_file {
        return pem_certificates(path)
            .map(RootCerts::from)
            .map_err(|error| format!("cannot use the CA file {error}"));
    }
    let mut bundles = std::env::var("SSL_CERT_FILE")
        .into_iter()
        .chain(SYSTEM_BUNDLES.iter().map(|path| path.to_string()));
    let system = bundles.find_map(|path| pem_certificates(&path).ok());
    Ok(system.map_or(RootCerts::WebPki, RootCerts::from))
}

/// Every certificate of a PEM file; one at least.
fn pem_certificates(path: &str) -> Result<Vec<Certificate<'static>>, String> {
    let pem = std::fs::read(path).map_err(|error| format!("{path}: {error}"))?;
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let PemItem::Certificate(certificate) =
            item.map_err(|error| format!("{path}: {error}"))?
        {
            certificates.push(certificate);
        }
    }
    if certificates.is_empty() {
        return Err(format!("{path}: no certificate in it"));
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!((ask.server.as_str(), ask.ca_file), (DEFAULT_SERVER, None));
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
    fn the_server_and_ca_file_come_from_flags_over_the_environment() {
        let env = |name: &str| Some(format!("from {name}"));
        let ask = parse(Command::Clarify, &args(&["--session", "s", "q"]), env).unwrap();
        assert_eq!(
            (ask.server.as_str(), ask.ca_file.as_deref()),
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
            (ask.server.as_str(), ask.ca_file.as_deref()),
            ("https://h/a", Some("ca.pem"))
        );
    }

    #[test]
    fn server_urls() {
        for (url, base) in [
            (
                "http://example:9000/askgate/",
                Ok("http://example:9000/askgate"),
            ),
            (
                "http://example:9000/askgate//",
                Ok("http://example:9000/askgate"),
            ),
            ("http://localhost", Ok("http://localhost")),
            ("https://host/askgate", Ok("https://host/askgate")),
            ("http://[::1]:8787/", Ok("http://[::1]:8787")),
            ("ftp://host", Err("must start with http:// or https://")),
            ("localhost:8787", Err("must start with http:// or https://")),
            ("http://host/a?b=c", Err("no query")),
            ("http://", Err("invalid server url")),
        ] {
            let got = base_url(url);
            match base {
                Ok(base) => assert_eq!(got.as_deref(), Ok(base), "{url}"),
                Err(message) => assert!(
                    got.as_ref().is_err_and(|got| got.contains(message)),
                    "{url}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn redirects_resolve_and_keep_the_token_on_the_same_host() {
        let from: Uri = "http://h:1/old/api/clarify/submit".parse().unwrap();
        for (location, to) in [
            (
                "/askgate/api/clarify/submit",
                Some("http://h:1/askgate/api/clarify/submit"),
            ),
            ("https://h/askgate/api/x", Some("https://h/askgate/api/x")),
            ("relative/path", None),
            ("//elsewhere/x", None),
        ] {
            let got = resolve(&from, location).map(|uri| uri.to_string());
            assert_eq!(got.as_deref(), to, "{location}");
        }
        let uri = |text: &str| text.parse::<Uri>().unwrap();
        assert!(token_may_follow(&from, &uri("https://h/x")));
        assert!(token_may_follow(&from, &uri("http://h:2/x")));
        assert!(!token_may_follow(&from, &uri("http://other:1/x")));
        assert!(!token_may_follow(&uri("https://h/x"), &uri("http://h/x")));
    }

    #[test]
    fn bodies_that_are_not_json_are_shown_by_their_start() {
        assert_eq!(start_of(b""), "(an empty body)");
        assert_eq!(
            start_of(b"<html>\r\n  <h1>502 Bad Gateway</h1>\n</html>"),
            "<html> <h1>502 Bad Gateway</h1> </html>"
        );
        assert_eq!(start_of("x".repeat(200).as_bytes()).len(), 123);
        let reply = Reply {
            status: 502,
            body: Err("<html>".into()),
            retry_after: None,
        };
        let message = reply.json().unwrap_err();
        assert!(
            message.contains("502 Bad Gateway") && message.contains("not JSON"),
            "{message}"
        );
    }

    #[test]
    fn a_spent_retry_budget_does_not_pause() {
        let mut retry = Retry::new(Duration::ZERO);
        assert!(!retry.pause(Some(Duration::from_secs(30))));
    }
}
