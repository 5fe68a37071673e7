//! The agent API (docs/PROTOCOL.md §5.1, §5.2) over `ureq`: submit a prompt,
//! wait for its outcome, cancel it. `askgate clarify`/`approve` and
//! `askgate mcp` all ask through this one `Client`.
//!
//! The wait survives a server that is briefly unreachable or busy (it retries
//! with a growing pause, or as long as a 503's `Retry-After` asks) and says
//! clearly when the server stays away. `ureq` speaks HTTP and https: chunked
//! bodies, redirects and a base url with a path (a reverse proxy's `/askgate`)
//! all work, and an answer that is not JSON is named, never taken for null.

use crate::core::kind::Kind;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use ureq::http::{Response, StatusCode, Uri};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::{Agent, Body, RequestBuilder};

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

/// A base url (`http://host:port` or `https://host/askgate`), the agent that
/// calls it, and the token to send.
pub struct Client {
    base: String,
    agent: Agent,
    token: Option<String>,
}

/// What a submit came to: a prompt now pending, or one a rule the human
/// granted answered at once (its final `wait` body).
#[derive(Debug, PartialEq)]
pub enum Submitted {
    Pending(String),
    Settled(Value),
}

impl Submitted {
    /// The prompt's id: the one handed out, or the one the rule's answer
    /// names.
    pub fn id(&self, kind: Kind) -> String {
        match self {
            Submitted::Pending(id) => id.clone(),
            Submitted::Settled(outcome) => {
                let id = outcome[kind.id_field()].as_str();
                id.unwrap_or_default().to_string()
            }
        }
    }
}

impl Client {
    pub fn new(url: &str, token: Option<String>, ca_file: Option<&str>) -> Result<Client, String> {
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
            // Redirects are followed by `Client::follow`.
            .max_redirects(0)
            .user_agent(concat!("askgate/", env!("CARGO_PKG_VERSION")))
            .accept("application/json")
            .tls_config(tls);
        Ok(Client {
            base,
            agent: config.build().new_agent(),
            token,
        })
    }

    /// `GET /healthz`: whether the server answers 200 (`askgate health`, a
    /// container's `HEALTHCHECK`).
    pub fn health(&self) -> Result<(), String> {
        let reply = self.get("/healthz", &[])?;
        match reply.status {
            200 => Ok(()),
            _ => Err(format!("the server answered {}", reply.status_text())),
        }
    }

    /// `GET` of a JSON document (`/api/receipts/key`): its body when 200.
    pub fn get_json(&self, path: &str) -> Result<Value, String> {
        let reply = self.get(path, &[])?;
        match reply.status {
            200 => reply.json().cloned(),
            _ => Err(format!("the server answered {}", reply.status_text())),
        }
    }

    /// The server's base url, for messages.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Submits a prompt of this kind (`body` as §5.1 or §5.2 describe it).
    pub fn submit(&self, kind: Kind, body: &Value) -> Result<Submitted, String> {
        let reply = self
            .post(&format!("/api/{}/submit", kind.as_str()), body)
            .map_err(|error| format!("cannot reach the server at {}: {error}", self.base))?;
        let body = reply.json()?;
        if reply.status != 200 {
            return Err(format!(
                "the server refused the prompt ({}): {}",
                reply.status,
                error_text(body)
            ));
        }
        if body["status"] == "answered" {
            return Ok(Submitted::Settled(body.clone()));
        }
        let id = body[kind.id_field()]
            .as_str()
            .ok_or("the server's answer had no id")?;
        Ok(Submitted::Pending(id.to_string()))
    }

    /// Asks for the outcome until there is one (`answered`, `expired` or
    /// `cancelled`, the wait's whole body), or until `abandoned` says the
    /// caller no longer wants it (`None`), checked before each call. A server
    /// that cannot be reached, or answers 502, 503 or 504 (busy, or a proxy
    /// in front of a server that is away), is asked again until `retry`
    /// passes without an answer.
    pub fn wait(
        &self,
        kind: Kind,
        session_id: &str,
        id: &str,
        retry: Duration,
        abandoned: &dyn Fn() -> bool,
    ) -> Result<Option<Value>, String> {
        let kind_name = kind.as_str();
        let wait_secs = WAIT_SECS.to_string();
        let query = [
            ("session_id", session_id),
            (kind.id_field(), id),
            ("timeout", wait_secs.as_str()),
        ];
        let mut budget = Retry::new(retry);
        while !abandoned() {
            let called = self.get(&format!("/api/{kind_name}/wait"), &query);
            match step(called, kind_name, id)? {
                Step::Pending => budget.reset(),
                Step::Outcome(reply) => return Ok(Some(reply)),
                Step::Again { why, asked } => {
                    if !budget.pause(asked) {
                        return Err(format!(
                            "the server at {} has not answered for {} s ({why}); {kind_name} {id} may still be pending",
                            self.base,
                            retry.as_secs()
                        ));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Cancels a pending prompt: `true` when this cancelled it, `false` when
    /// it had already ended (answered, expired or cancelled before).
    pub fn cancel(&self, kind: Kind, session_id: &str, id: &str) -> Result<bool, String> {
        let body = json!({"session_id": session_id, kind.id_field(): id});
        let reply = self
            .post(&format!("/api/{}/cancel", kind.as_str()), &body)
            .map_err(|error| format!("cannot reach the server at {}: {error}", self.base))?;
        let body = reply.json()?;
        match reply.status {
            200 => Ok(true),
            409 => Ok(false),
            status => Err(format!(
                "cancelling failed ({status}): {}",
                error_text(body)
            )),
        }
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Reply, String> {
        let pairs: Vec<String> = query
            .iter()
            .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
            .collect();
        let url = format!("{}{path}?{}", self.base, pairs.join("&"));
        let timeout = Duration::from_secs(WAIT_SECS + CALL_SECS);
        self.follow(&url, |uri, with_token| {
            let request = self
                .agent
                .get(uri)
                .config()
                .max_redirects(0)
                .timeout_global(Some(timeout))
                .build();
            self.authorized(request, with_token).call()
        })
    }

    /// POSTs `body`, following redirects with the same method and body (ureq
    /// turns a redirected POST into a GET, which askgate refuses).
    fn post(&self, path: &str, body: &Value) -> Result<Reply, String> {
        let body = body.to_string();
        let url = format!("{}{path}", self.base);
        self.follow(&url, |uri, with_token| {
            let request = self
                .agent
                .post(uri)
                .config()
                .max_redirects(0)
                .timeout_global(Some(Duration::from_secs(CALL_SECS)))
                .build();
            self.authorized(request, with_token)
                .content_type("application/json")
                .send(body.as_bytes())
        })
    }

    /// Makes a call with `call` and follows its redirects here rather than
    /// in ureq, whose rule for the token ignores the port: the token goes
    /// along only while `token_may_follow` says so.
    fn follow(
        &self,
        url: &str,
        call: impl Fn(&Uri, bool) -> Result<Response<Body>, ureq::Error>,
    ) -> Result<Reply, String> {
        let mut uri: Uri = url.parse().map_err(|_| format!("invalid url {url}"))?;
        let mut with_token = true;
        for _ in 0..=MAX_REDIRECTS {
            let response = call(&uri, with_token).map_err(describe)?;
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

/// Whether the token may follow a redirect: only to the same scheme, host
/// and port, or from http up to https on the same host's port 443. Another
/// port may be another program (on loopback, any local user's), so the
/// token never goes there, and never from https down to http.
fn token_may_follow(from: &Uri, to: &Uri) -> bool {
    let same_host = from.host() == to.host();
    let same_origin = from.scheme() == to.scheme() && port(from) == port(to);
    let upgrade = from.scheme_str() == Some("http")
        && to.scheme_str() == Some("https")
        && port(to) == Some(443);
    same_host && (same_origin || upgrade)
}

/// A URL's port, or its scheme's default.
fn port(uri: &Uri) -> Option<u16> {
    uri.port_u16().or(match uri.scheme_str() {
        Some("http") => Some(80),
        Some("https") => Some(443),
        _ => None,
    })
}

/// A query's name or value with every byte but the unreserved ones
/// (RFC 3986 §2.3) as `%XX`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
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
/// The CAs an outgoing https connection trusts by default: `SSL_CERT_FILE`,
/// else the system's bundle, else the bundled webpki roots.
pub fn system_roots() -> RootCerts {
    root_certs(None).unwrap_or(RootCerts::WebPki)
}

fn root_certs(ca_file: Option<&str>) -> Result<RootCerts, String> {
    if let Some(path) = ca_file {
        return pem_certificates(path)
            .map(RootCerts::from)
            .map_err(|error| format!("cannot use the CA file {error}"));
    }
    let system = crate::system_ca::bundle_paths().find_map(|path| pem_certificates(&path).ok());
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
        assert!(token_may_follow(&from, &uri("http://h:1/askgate/x")));
        assert!(token_may_follow(&from, &uri("https://h/x")));
        assert!(token_may_follow(&uri("http://h/x"), &uri("http://h:80/y")));
        assert!(
            !token_may_follow(&from, &uri("http://h:2/x")),
            "another port"
        );
        assert!(!token_may_follow(&from, &uri("https://h:8443/x")));
        assert!(!token_may_follow(&from, &uri("http://other:1/x")));
        assert!(!token_may_follow(&uri("https://h/x"), &uri("http://h/x")));
        assert!(!token_may_follow(
            &uri("https://h/x"),
            &uri("http://h:443/x")
        ));
        assert_eq!(percent_encode("a b&c=d/é~"), "a%20b%26c%3Dd%2F%C3%A9~");
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
