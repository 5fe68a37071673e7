//! Credentials and roles: who may call which route.
//!
//! Two roles. An agent's token may submit, wait and cancel, nothing else; a
//! human (the human's token as a bearer, or the page's sign-in cookie) may
//! read prompts, answer them and manage rules. An agent's token never
//! answers. Tokens come from flags, the environment or files, or are made
//! on first start in the data directory; they are compared in constant
//! time and never read from a URL. Without any token the server is open,
//! which it allows only on a loopback address.
//!
//! Invariants: secrets come from the OS's random source; a failed sign-in
//! is logged and rate-limited per client and overall; signed-in sessions
//! are bounded in number and age.

use crate::private_file;
use crate::serve::origin::Client;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie the page signs in with.
pub const COOKIE: &str = "askgate_session";
/// How long a sign-in lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Signed-in sessions kept at once; the oldest goes first.
const MAX_SESSIONS: usize = 256;
/// Failed sign-ins allowed per client, and overall, per window.
const FAILURES_PER_CLIENT: usize = 5;
const FAILURES_OVERALL: usize = 30;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Agent,
    Human,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Human => "human",
        }
    }
}

/// Who made a request, as far as its credential says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No credential is needed: the server runs without tokens.
    Open,
    /// No credential, or one that matches nothing.
    Unknown,
    Bearer(Role),
    /// The page, signed in with a cookie (a human).
    SignedIn,
}

impl Caller {
    /// The role a credential has; a server without tokens checks none.
    pub fn role(self) -> Option<Role> {
        match self {
            Caller::Open | Caller::SignedIn => Some(Role::Human),
            Caller::Bearer(role) => Some(role),
            Caller::Unknown => None,
        }
    }

    /// What the audit log calls this caller.
    pub fn name(self) -> &'static str {
        match self {
            Caller::Open => "human (no auth)",
            Caller::Unknown => "unknown",
            Caller::Bearer(Role::Agent) => "agent token",
            Caller::Bearer(Role::Human) => "human token",
            Caller::SignedIn => "human (page)",
        }
    }
}

/// The two tokens; `None` when the server runs open.
#[derive(Clone, Debug, PartialEq)]
pub struct Tokens {
    pub agent: String,
    pub human: String,
}

pub struct Auth {
    tokens: Option<Tokens>,
    sessions: Mutex<Sessions>,
    failures: Mutex<Failures>,
}

#[derive(Default)]
struct Sessions {
    expiry: HashMap<String, Instant>,
    order: VecDeque<String>,
}

#[derive(Default)]
struct Failures {
    recent: VecDeque<(Instant, Option<Client>)>,
}

/// Why a sign-in was refused.
#[derive(Debug, PartialEq)]
pub enum SignInError {
    WrongToken,
    TooMany,
}

impl Auth {
    pub fn new(tokens: Option<Tokens>) -> Auth {
        Auth {
            tokens,
            sessions: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    pub fn required(&self) -> bool {
        self.tokens.is_some()
    }

    /// Who a request's credential names: its bearer token, else its cookie.
    pub fn identify(&self, authorization: Option<&str>, cookie: Option<&str>) -> Caller {
        let Some(tokens) = &self.tokens else {
            return Caller::Open;
        };
        if let Some(token) = authorization.and_then(bearer) {
            return match () {
                _ if same(token, &tokens.agent) => Caller::Bearer(Role::Agent),
                _ if same(token, &tokens.human) => Caller::Bearer(Role::Human),
                _ => Caller::Unknown,
            };
        }
        match cookie.and_then(session_id) {
            Some(id) if self.signed_in(id) => Caller::SignedIn,
            _ => Caller::Unknown,
        }
    }

    fn signed_in(&self, id: &str) -> bool {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let found = sessions.expiry.iter().find(|(known, _)| same(known, id));
        found.is_some_and(|(_, expiry)| *expiry > Instant::now())
    }

    /// The page's sign-in: the human's token for a new session id.
    pub fn sign_in(&self, token: &str, client: Option<Client>) -> Result<String, SignInError> {
        let Some(tokens) = &self.tokens else {
            return Ok(String::new());
        };
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.forget_older_than(FAILURE_WINDOW);
        if failures.too_many(client.as_ref()) {
            log::warn!(
                "sign-in refused: too many failed attempts (client {})",
                shown(client.as_ref())
            );
            return Err(SignInError::TooMany);
        }
        if !same(token, &tokens.human) {
            log::warn!("failed sign-in from {}", shown(client.as_ref()));
            failures.recent.push_back((Instant::now(), client));
            return Err(SignInError::WrongToken);
        }
        drop(failures);
        let id = random_hex(32).map_err(|_| SignInError::WrongToken)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.add(id.clone());
        log::info!("signed in from {}", shown(client.as_ref()));
        Ok(id)
    }

    pub fn sign_out(&self, cookie: Option<&str>) {
        if let Some(id) = cookie.and_then(session_id) {
            let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            sessions.expiry.remove(id);
            sessions.order.retain(|known| known != id);
        }
    }
}

impl Sessions {
    fn add(&mut self, id: String) {
        let now = Instant::now();
        self.expiry.retain(|_, expiry| *expiry > now);
        let expiry = &self.expiry;
        self.order.retain(|known| expiry.contains_key(known));
        while self.order.len() >= MAX_SESSIONS {
            if let Some(oldest) = self.order.pop_front() {
                self.expiry.remove(&oldest);
            }
        }
        self.expiry.insert(id.clone(), now + SESSION_LIFETIME);
        self.order.push_back(id);
    }
}

impl Failures {
    fn forget_older_than(&mut self, window: Duration) {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| at.elapsed() > window)
        {
            self.recent.pop_front();
        }
    }

    fn too_many(&self, client: Option<&Client>) -> bool {
        let from_client = self
            .recent
            .iter()
            .filter(|(_, c)| c.as_ref() == client)
            .count();
        from_client >= FAILURES_PER_CLIENT || self.recent.len() >= FAILURES_OVERALL
    }
}

fn shown(client: Option<&Client>) -> String {
    client.map_or_else(|| "loopback".into(), Client::to_string)
}

fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The session id in a `Cookie` header.
fn session_id(cookie: &str) -> Option<&str> {
    let pairs = cookie
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='));
    pairs
        .filter(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .next()
}

/// Equality that takes as long whatever the first difference.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let differs = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    a.len() == b.len() && differs == 0
}

/// `bytes` random bytes from the OS, as lowercase hex.
pub fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buffer = vec![0u8; bytes];
    File::open("/dev/urandom")?.read_exact(&mut buffer)?;
    Ok(buffer.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// The file in a data directory that holds generated tokens.
pub const TOKENS_FILE: &str = "tokens";

/// Reads the tokens file of a data directory, if there is one.
pub fn read_tokens(dir: &Path) -> io::Result<Option<Tokens>> {
    let Some(text) = private_file::read(&dir.join(TOKENS_FILE))? else {
        return Ok(None);
    };
    let field = |name: &str| {
        let line = text
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='));
        line.map(|token| token.trim().to_string())
            .filter(|token| !token.is_empty())
    };
    match (field("agent"), field("human")) {
        (Some(agent), Some(human)) => Ok(Some(Tokens { agent, human })),
        _ => Err(io::Error::other(format!(
            "{} lacks an agent= or human= line",
            dir.join(TOKENS_FILE).display()
        ))),
    }
}

/// Makes new tokens (both, or one kept from `keep`) and writes them to the
/// data directory's tokens file, readable by its owner only.
pub fn write_new_tokens(dir: &Path, keep: Option<(Role, &Tokens)>) -> io::Result<Tokens> {
    let fresh = || random_hex(24);
    let tokens = match keep {
        Some((Role::Agent, old)) => Tokens {
            agent: old.agent.clone(),
            human: fresh()?,
        },
        Some((Role::Human, old)) => Tokens {
            agent: fresh()?,
            human: old.human.clone(),
        },
        None => Tokens {
            agent: fresh()?,
            human: fresh()?,
        },
    };
    let text = format!("agent={}\nhuman={}\n", tokens.agent, tokens.human);
    private_file::write(dir, TOKENS_FILE, &text)?;
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(Some(Tokens {
            agent: "agent-secret".into(),
            human: "human-secret".into(),
        }))
    }

    #[test]
    fn credentials_name_their_role() {
        let auth = auth();
        let cases = [
            (
                Some("Bearer agent-secret"),
                None,
                Caller::Bearer(Role::Agent),
            ),
            (
                Some("bearer human-secret"),
                None,
                Caller::Bearer(Role::Human),
            ),
            (Some("Bearer human-secre"), None, Caller::Unknown),
            (Some("Basic human-secret"), None, Caller::Unknown),
            (None, Some("askgate_session=nope"), Caller::Unknown),
            (None, None, Caller::Unknown),
        ];
        for (authorization, cookie, expected) in cases {
            assert_eq!(
                auth.identify(authorization, cookie),
                expected,
                "{authorization:?} {cookie:?}"
            );
        }
        assert_eq!(Auth::new(None).identify(None, None), Caller::Open);
    }

    #[test]
    fn signing_in_gives_a_session_and_failures_are_limited() {
        let auth = auth();
        let client = Some(Client::Address([192, 168, 1, 9].into()));
        let id = auth.sign_in("human-secret", client.clone()).unwrap();
        let cookie = format!("theme=dark; {COOKIE}={id}");
        assert_eq!(auth.identify(None, Some(&cookie)), Caller::SignedIn);
        assert_eq!(
            auth.sign_in("agent-secret", client.clone()),
            Err(SignInError::WrongToken),
            "an agent's token never signs in"
        );
        for _ in 1..FAILURES_PER_CLIENT {
            assert_eq!(
                auth.sign_in("guess", client.clone()),
                Err(SignInError::WrongToken)
            );
        }
        assert_eq!(
            auth.sign_in("human-secret", client),
            Err(SignInError::TooMany),
            "even the right token, for a while"
        );
        let other = Some(Client::Address([192, 168, 1, 10].into()));
        assert!(
            auth.sign_in("human-secret", other).is_ok(),
            "another client still can"
        );
        auth.sign_out(Some(&cookie));
        assert_eq!(auth.identify(None, Some(&cookie)), Caller::Unknown);
    }

    #[test]
    fn comparison_is_exact() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", "a"));
    }
}
