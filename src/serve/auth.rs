//! Credentials and roles: who may call which route.
//!
//! Two roles. An agent's token may submit, wait and cancel, nothing else; a
//! human (the human's token as a bearer, or the page's sign-in cookie) may
//! read prompts, answer them and manage rules. An agent's token never
//! answers. Tokens come from flags, the environment or files, or are made
//! on first start in the data directory; they are compared in constant
//! time and never read from a URL. A local caller with no credential
//! (a loopback peer, no forwarded headers, the server bound to loopback and
//! not behind a proxy) is an agent, never the human. Only
//! `--insecure-no-auth` runs the server open. The page signs in with the
//! human's token or a one-time code (`signin`). Besides the two legacy
//! tokens (named `agent` and `human`), named agents and humans each have
//! their own (`credentials`), and a caller carries its credential's name.
//!
//! Invariants: secrets come from the OS's random source; a failed sign-in
//! is logged and rate-limited per client and overall; signed-in sessions
//! are kept by the hub's state (`core/credentials.rs`) as the SHA-256 of
//! their cookie, never the cookie itself, bounded in number and age, so a
//! restart or another instance keeps them.
//!
//! The tokens live in the data directory (`$XDG_STATE_HOME/askgate` by
//! default, out of any working directory an agent works in); any process
//! that can read that file can answer, or mint a sign-in link, so only a
//! separate user account keeps an agent from it (README, docs/deploy.md).

use crate::core::receipt::hex;
use crate::error::Error;
use crate::hub::Hub;
use crate::hub::credentials::CodeSignIn;
use crate::private_file;
use crate::serve::credentials;
use crate::serve::origin::Client;
use crate::serve::signin;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The cookie the page signs in with.
pub const COOKIE: &str = "askgate_session";
/// How long a sign-in lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
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

/// A credential's name (docs/PROTOCOL.md §7).
pub type Name = Arc<str>;

/// The legacy tokens' names, and what a tokenless local caller is called.
pub const AGENT: &str = "agent";
pub const HUMAN: &str = "human";
pub const LOCAL: &str = "local";

/// Who made a request, as far as its credential says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No credential is needed: the server runs without tokens.
    Open,
    /// No credential, from this machine, where a tokenless caller is an
    /// agent: it may submit, wait and cancel, never act as the human.
    Local,
    /// No credential, or one that matches nothing.
    Unknown,
    /// A token, of this role and name.
    Bearer(Role, Name),
    /// The page, signed in with a cookie by the human of this name.
    SignedIn(Name),
}

impl Caller {
    /// The role a credential has; a server without tokens checks none.
    pub fn role(&self) -> Option<Role> {
        match self {
            Caller::Open | Caller::SignedIn(_) => Some(Role::Human),
            Caller::Local => Some(Role::Agent),
            Caller::Bearer(role, _) => Some(*role),
            Caller::Unknown => None,
        }
    }

    /// What the audit log calls this caller: a named credential by its
    /// name, the legacy ones as before names.
    pub fn name(&self) -> String {
        match self {
            Caller::Open => "human (no auth)".into(),
            Caller::Local => "agent (local, no token)".into(),
            Caller::Unknown => "unknown".into(),
            Caller::Bearer(Role::Agent, name) if &**name == AGENT => "agent token".into(),
            Caller::Bearer(Role::Human, name) if &**name == HUMAN => "human token".into(),
            Caller::SignedIn(name) if &**name == HUMAN => "human (page)".into(),
            Caller::Bearer(_, name) | Caller::SignedIn(name) => name.to_string(),
        }
    }

    /// The agent credential's name that owns what this caller submits
    /// (docs/PROTOCOL.md §7): a tokenless local caller is `local`; on a
    /// server without tokens every agent is `agent`.
    pub fn agent(&self) -> Option<&str> {
        match self {
            Caller::Open => Some(AGENT),
            Caller::Local => Some(LOCAL),
            Caller::Bearer(Role::Agent, name) => Some(name),
            Caller::Bearer(Role::Human, _) | Caller::SignedIn(_) | Caller::Unknown => None,
        }
    }

    /// The human's name, when a human credential made the request.
    pub fn human(&self) -> Option<&str> {
        match self {
            Caller::Bearer(Role::Human, name) | Caller::SignedIn(name) => Some(name),
            Caller::Bearer(Role::Agent, _) | Caller::Open | Caller::Local | Caller::Unknown => None,
        }
    }
}

/// The two tokens; `None` when the server runs open.
#[derive(Clone, Debug, PartialEq)]
pub struct Tokens {
    pub agent: String,
    pub human: String,
}

impl Tokens {
    /// The tokens, unless they are equal: then an agent would hold the
    /// human's credential (`from` names where they came from).
    pub fn distinct(self, from: &str) -> io::Result<Tokens> {
        match same(&self.agent, &self.human) {
            true => Err(io::Error::other(format!(
                "the agent and human tokens are equal ({from}): an agent would hold the human's \
                 credential and could answer its own prompts; give them different values"
            ))),
            false => Ok(self),
        }
    }
}

pub struct Auth {
    tokens: Option<Tokens>,
    /// Whether a local caller without a credential is an agent.
    local_agents: bool,
    /// The key of the one-time sign-in codes, from the human's token.
    code_key: Option<ring::hmac::Key>,
    /// The named credentials of the data directory, when there is one.
    named: Option<credentials::Live>,
    failures: Mutex<Failures>,
    /// Cookies this instance does not know looked for in the shared log.
    lookups: Lookups,
}

/// Cookies this instance does not know may be looked for in the shared log
/// (Redis) at most this many times a second, all clients together: made-up
/// cookies cost a client nothing, and each look is a trip to Redis on the
/// connection every change takes. A sign-in on another instance reaches
/// this one through the log's follower anyway, a moment later.
const LOOKUPS_PER_SECOND: usize = 8;

#[derive(Default)]
struct Lookups(Mutex<VecDeque<Instant>>);

impl Lookups {
    /// Whether one more look fits this second's budget (then it is spent).
    fn take(&self) -> bool {
        let mut recent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let second = Duration::from_secs(1);
        while recent.front().is_some_and(|at| at.elapsed() >= second) {
            recent.pop_front();
        }
        let room = recent.len() < LOOKUPS_PER_SECOND;
        if room {
            recent.push_back(Instant::now());
        }
        room
    }
}

/// What the page signs in with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Credential<'a> {
    /// The human's token, typed or pasted.
    Token(&'a str),
    /// A one-time code from a sign-in link.
    Code(&'a str),
}

#[derive(Default)]
struct Failures {
    recent: VecDeque<(Instant, Option<Client>)>,
}

/// Why a sign-in was refused.
#[derive(Debug, PartialEq)]
pub enum SignInError {
    WrongToken,
    BadCode(signin::Refused),
    TooMany,
    /// The sign-in could not be kept (a full disk, Redis unreachable).
    NotKept(Error),
}

impl Auth {
    pub fn new(tokens: Option<Tokens>) -> Auth {
        Auth {
            code_key: tokens.as_ref().map(|tokens| signin::key(&tokens.human)),
            tokens,
            local_agents: false,
            named: None,
            failures: Mutex::default(),
            lookups: Lookups::default(),
        }
    }

    /// Lets a local caller without a credential act as an agent.
    pub fn with_local_agents(mut self, allowed: bool) -> Auth {
        self.local_agents = allowed;
        self
    }

    /// Takes named credentials from `dir/credentials` too, read again
    /// whenever it changes.
    pub fn with_named(mut self, dir: &Path) -> Auth {
        self.named = Some(credentials::Live::new(dir));
        self
    }

    pub fn required(&self) -> bool {
        self.tokens.is_some()
    }

    /// Who a request's credential names: its bearer token, else its
    /// cookie (signed in as the `hub` keeps it); with neither, a `local`
    /// caller may be an agent.
    pub fn identify(
        &self,
        hub: &Hub,
        authorization: Option<&str>,
        cookie: Option<&str>,
        local: bool,
    ) -> Caller {
        let Some(tokens) = &self.tokens else {
            return Caller::Open;
        };
        if authorization.is_none() && cookie.and_then(session_id).is_none() {
            return match self.local_agents && local {
                true => Caller::Local,
                false => Caller::Unknown,
            };
        }
        if let Some(token) = authorization.and_then(bearer) {
            return match self.token(tokens, token) {
                Some((role, name)) => Caller::Bearer(role, name),
                None => Caller::Unknown,
            };
        }
        let Some(id) = cookie.and_then(session_id) else {
            return Caller::Unknown;
        };
        // The shared log is asked about a sign-in this instance knows only
        // while its cookie is bound to its human (a revoked human's is
        // refused whatever the log says), about one it does not know within
        // a budget: neither is a trip to Redis per request for a stranger.
        let look_further = |known: Option<&str>| match known {
            Some(name) => self.bound(name, id),
            None => self.lookups.take(),
        };
        match hub.signed_in(&digest(id), look_further) {
            Some(name) if self.bound(&name, id) => Caller::SignedIn(Arc::from(name)),
            _ => Caller::Unknown,
        }
    }

    /// What `identify` reads of a request's `Authorization` and `Cookie`,
    /// as headers it reads the same, for what asks again later
    /// (`routes::still`) to keep instead of the headers (each up to
    /// 16 KiB): the bearer token, else the cookie's session id; nothing on
    /// a server without tokens.
    pub fn kept(
        &self,
        authorization: Option<&str>,
        cookie: Option<&str>,
    ) -> (Option<String>, Option<String>) {
        if self.tokens.is_none() {
            return (None, None);
        }
        let token = authorization.and_then(bearer);
        // Another scheme is kept as an empty value: no bearer, as before.
        let authorization =
            authorization.map(|_| token.map_or(String::new(), |t| format!("Bearer {t}")));
        let cookie = match token {
            Some(_) => None,
            None => cookie
                .and_then(session_id)
                .map(|id| format!("{COOKIE}={id}")),
        };
        (authorization, cookie)
    }

    /// The role and name of a token: a legacy one, else a named one.
    fn token(&self, tokens: &Tokens, token: &str) -> Option<(Role, Name)> {
        match () {
            _ if same(token, &tokens.agent) => Some((Role::Agent, Arc::from(AGENT))),
            _ if same(token, &tokens.human) => Some((Role::Human, Arc::from(HUMAN))),
            _ => self.named.as_ref()?.find(token),
        }
    }

    /// What a sign-in of the human `name` is bound to, while they may sign
    /// in: their token's digest as it is now, a named human's as the
    /// credentials file has it (a revoke ends their sign-ins, and adding
    /// them again under the same name does not bring those back), the
    /// legacy human's as the server was started with (a rotated token
    /// signs out the pages of the old one, though sign-ins outlive a
    /// restart).
    fn binding(&self, name: &str) -> Option<String> {
        match name == HUMAN {
            true => Some(credentials::digest(&self.tokens.as_ref()?.human)),
            false => self.named.as_ref()?.digest_of(Role::Human, name),
        }
    }

    /// What, when it moves, may have taken a credential away: the named
    /// credentials file's version, and how many page sign-ins ended.
    pub fn revocations(&self, hub: &Hub) -> (Option<credentials::Stamp>, u64) {
        let named = self.named.as_ref().and_then(credentials::Live::stamp);
        (named, hub.sign_ins_ended())
    }

    /// Whether the cookie `id`, signed in as `name`, is bound to that
    /// human's credential as it is now (`cookie_id`).
    fn bound(&self, name: &str, id: &str) -> bool {
        let Some(binding) = self.binding(name) else {
            return false;
        };
        let (random, seal) = id.split_at(id.len().min(SESSION_RANDOM_HEX));
        same(&sealed(&binding, random), seal)
    }

    /// The page's sign-in: the human's token, or a one-time code, for a
    /// new session id, kept by the `hub`. Every failure counts against the
    /// same limit.
    pub fn sign_in(
        &self,
        hub: &Hub,
        credential: Credential<'_>,
        client: Option<Client>,
    ) -> Result<String, SignInError> {
        let (Some(tokens), Some(key)) = (&self.tokens, &self.code_key) else {
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
        let checked = match credential {
            Credential::Token(token) => match self.token(tokens, token) {
                Some((Role::Human, name)) => Ok((name.to_string(), None)),
                Some((Role::Agent, _)) | None => Err(SignInError::WrongToken),
            },
            Credential::Code(code) => {
                match signin::check(key, code, signin::now(), |name| self.binding(name)) {
                    Ok((name, expires, nonce)) => Ok((name.to_string(), Some((expires, nonce)))),
                    Err(refused) => Err(SignInError::BadCode(refused)),
                }
            }
        };
        let binding = checked.and_then(|(name, code)| {
            let binding = self.binding(&name).ok_or(SignInError::WrongToken)?;
            Ok((name, code, binding))
        });
        let (name, code, binding) = match binding {
            Ok(checked) => checked,
            Err(error) => return Err(failures.failed(client, error)),
        };
        drop(failures);
        let id = cookie_id(&binding).map_err(|error| {
            log::error!("no random bytes for a sign-in: {error}");
            SignInError::NotKept(Error::Internal)
        })?;
        let digest = digest(&id);
        let spent = match code {
            None => hub
                .sign_in(&digest, SESSION_LIFETIME, &name, PAGE)
                .map(|()| None),
            Some((expires, nonce)) => hub
                .sign_in_with_code(
                    nonce,
                    expires as f64,
                    &digest,
                    SESSION_LIFETIME,
                    &name,
                    PAGE,
                )
                .map(Some),
        };
        let refused = match spent.map_err(SignInError::NotKept)? {
            None | Some(CodeSignIn::SignedIn) => None,
            Some(CodeSignIn::Used) => Some(signin::Refused::Used),
            Some(CodeSignIn::Busy) => Some(signin::Refused::Busy),
        };
        if let Some(refused) = refused {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            return Err(failures.failed(client, SignInError::BadCode(refused)));
        }
        log::info!("{name} signed in from {}", shown(client.as_ref()));
        Ok(id)
    }

    /// Forgets the sign-in of the request's cookie, if it has one.
    pub fn sign_out(&self, hub: &Hub, cookie: Option<&str>) -> Result<(), Error> {
        match cookie.and_then(session_id) {
            Some(id) => hub.sign_out(&digest(id), PAGE),
            None => Ok(()),
        }
    }
}

/// Who signs in and out, for the log.
const PAGE: &str = "human (page)";

/// The random part of a cookie's value, in hex.
const SESSION_RANDOM_HEX: usize = 64;

/// A new cookie value: random, then its seal with the `binding` of its
/// human's credential (`Auth::binding`), so that it signs in only while
/// that credential is the one their name has.
fn cookie_id(binding: &str) -> io::Result<String> {
    let random = random_hex(SESSION_RANDOM_HEX / 2)?;
    let seal = sealed(binding, &random);
    Ok(random + &seal)
}

/// The HMAC-SHA256 of a cookie's random part keyed by a credential's
/// `binding`, hex.
fn sealed(binding: &str, random: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, binding.as_bytes());
    hex(ring::hmac::sign(&key, random.as_bytes()).as_ref())
}

/// What the state keeps of a sign-in: the SHA-256 of its cookie's value,
/// hex, so a copy of the data directory or of Redis signs nobody in.
fn digest(session_id: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, session_id.as_bytes()).as_ref())
}

impl Failures {
    /// Logs and counts a failed sign-in.
    fn failed(&mut self, client: Option<Client>, error: SignInError) -> SignInError {
        log::warn!("failed sign-in from {}: {error:?}", shown(client.as_ref()));
        self.recent.push_back((Instant::now(), client));
        error
    }

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

/// Two new tokens, kept nowhere (a server without a data directory).
pub fn new_tokens() -> io::Result<Tokens> {
    Ok(Tokens {
        agent: random_hex(24)?,
        human: random_hex(24)?,
    })
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
    use crate::core::state::Limits;

    fn hub() -> Hub {
        let limits = Limits {
            max_pending: 4,
            max_prompts: 4,
            max_state_bytes: 1 << 20,
            max_sessions: 4,
            result_ttl: 60.0,
        };
        Hub::new(limits, 4)
    }

    fn auth() -> Auth {
        Auth::new(Some(Tokens {
            agent: "agent-secret".into(),
            human: "human-secret".into(),
        }))
    }

    #[test]
    fn credentials_name_their_role() {
        let (auth, hub) = (auth(), hub());
        let cases = [
            (
                Some("Bearer agent-secret"),
                None,
                Caller::Bearer(Role::Agent, Arc::from(AGENT)),
            ),
            (
                Some("bearer human-secret"),
                None,
                Caller::Bearer(Role::Human, Arc::from(HUMAN)),
            ),
            (Some("Bearer human-secre"), None, Caller::Unknown),
            (Some("Basic human-secret"), None, Caller::Unknown),
            (None, Some("askgate_session=nope"), Caller::Unknown),
            (None, None, Caller::Unknown),
        ];
        for (authorization, cookie, expected) in cases {
            assert_eq!(
                auth.identify(&hub, authorization, cookie, false),
                expected,
                "{authorization:?} {cookie:?}"
            );
        }
        assert_eq!(
            Auth::new(None).identify(&hub, None, None, true),
            Caller::Open
        );
        let local = auth.with_local_agents(true);
        assert_eq!(local.identify(&hub, None, None, true), Caller::Local);
        assert_eq!(local.identify(&hub, None, None, false), Caller::Unknown);
        assert_eq!(
            local.identify(&hub, Some("Bearer guess"), None, true),
            Caller::Unknown,
            "a wrong token is never taken for no token"
        );
    }

    /// What a parked request keeps of its headers identifies its caller as
    /// the headers do, and holds none of their padding.
    #[test]
    fn what_is_kept_of_the_headers_identifies_as_they_do() {
        let (auth, hub) = (auth().with_local_agents(true), hub());
        let id = auth
            .sign_in(&hub, Credential::Token("human-secret"), None)
            .unwrap();
        let pad = "p".repeat(16_000);
        let signed_in = format!("pad={pad}; {COOKIE}={id}; other={pad}");
        let padded = format!("pad={pad}");
        let authorizations = [
            None,
            Some("Bearer agent-secret"),
            Some(" bearer  human-secret "),
            Some("Bearer guess"),
            Some("Basic human-secret"),
        ];
        let cookies = [None, Some(signed_in.as_str()), Some(padded.as_str())];
        for authorization in authorizations {
            for cookie in cookies {
                let (kept_authorization, kept_cookie) = auth.kept(authorization, cookie);
                let kept = [&kept_authorization, &kept_cookie].map(|k| k.as_ref().map(String::len));
                assert!(kept.iter().flatten().all(|len| *len < 200), "{kept:?}");
                for local in [false, true] {
                    assert_eq!(
                        auth.identify(
                            &hub,
                            kept_authorization.as_deref(),
                            kept_cookie.as_deref(),
                            local
                        ),
                        auth.identify(&hub, authorization, cookie, local),
                        "{authorization:?} {:?} {local}",
                        cookie.map(|c| c.len())
                    );
                }
            }
        }
        assert_eq!(
            Auth::new(None).kept(Some("Bearer x"), Some(&signed_in)),
            (None, None)
        );
    }

    #[test]
    fn signing_in_gives_a_session_and_failures_are_limited() {
        let (auth, hub) = (auth(), hub());
        let client = Some(Client::Address([192, 168, 1, 9].into()));
        let id = auth
            .sign_in(&hub, Credential::Token("human-secret"), client.clone())
            .unwrap();
        let cookie = format!("theme=dark; {COOKIE}={id}");
        assert_eq!(
            auth.identify(&hub, None, Some(&cookie), false),
            Caller::SignedIn(Arc::from(HUMAN))
        );
        assert_eq!(
            auth.sign_in(&hub, Credential::Token("agent-secret"), client.clone()),
            Err(SignInError::WrongToken),
            "an agent's token never signs in"
        );
        for _ in 1..FAILURES_PER_CLIENT {
            assert_eq!(
                auth.sign_in(&hub, Credential::Token("guess"), client.clone()),
                Err(SignInError::WrongToken)
            );
        }
        assert_eq!(
            auth.sign_in(&hub, Credential::Token("human-secret"), client),
            Err(SignInError::TooMany),
            "even the right token, for a while"
        );
        let other = Some(Client::Address([192, 168, 1, 10].into()));
        assert!(
            auth.sign_in(&hub, Credential::Token("human-secret"), other)
                .is_ok(),
            "another client still can"
        );
        auth.sign_out(&hub, Some(&cookie)).unwrap();
        assert_eq!(
            auth.identify(&hub, None, Some(&cookie), false),
            Caller::Unknown
        );
    }

    #[test]
    fn a_code_signs_in_once_whichever_server_takes_it() {
        let hub = hub();
        let code = signin::mint(&signin::key("human-secret")).unwrap();
        let id = auth().sign_in(&hub, Credential::Code(&code), None).unwrap();
        let cookie = format!("{COOKIE}={id}");
        let restarted = auth();
        assert_eq!(
            restarted.identify(&hub, None, Some(&cookie), false),
            Caller::SignedIn(Arc::from(HUMAN))
        );
        assert_eq!(
            restarted.sign_in(&hub, Credential::Code(&code), None),
            Err(SignInError::BadCode(signin::Refused::Used)),
            "the state it spent the code in is what a restart keeps"
        );
    }

    #[test]
    fn comparison_is_exact() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", "a"));
    }
}
