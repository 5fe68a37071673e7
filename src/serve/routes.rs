//! Routes: parsed requests in, replies out. The browser API of
//! docs/PROTOCOL.md §3 and §4, the agent API of §5, and the operational
//! endpoints.
//!
//! Handlers validate everything before they touch the hub, so bad input gets
//! a 4xx and changes nothing. They never see a socket: blocking work is
//! returned as a `Reply::Park` closure and streams as a `Reply::Stream`.
//!
//! Every route is one row of `ROUTES` (method, path, role, handler), which
//! both the access check and the dispatch read, so the two cannot disagree;
//! the checks (`Host`, no credential in a URL, the role, a POST's `Origin`)
//! run before any handler, and every 403 is logged with what was sent and
//! what was expected.

use crate::config::Config;
use crate::core::history::MAX_HISTORY;
use crate::core::kind::Kind;
use crate::core::prompt::{Answer, Choice, Outcome};
use crate::core::rules::{RUNNERS, Rule, Runner, Scope};
use crate::core::state::{Limits, Submitted};
use crate::core::validate;
use crate::core::view::{Interest, Update, Watch};
use crate::error::{self, Error, Refusal, Result};
use crate::hooks;
use crate::hub::subscriber::{Next, Published};
use crate::hub::{Asker, Hub, Responded, WaitResult, ids};
use crate::notify::Notifier;
use crate::notify::capability::{self, Capabilities};
use crate::serve::act;
use crate::serve::admission::{Admission, Place};
use crate::serve::auth::{self, Auth, Caller, Credential, Role, SignInError};
use crate::serve::early::EarlyPoll;
use crate::serve::hook_route;
use crate::serve::http::{JSON, LEFT_CHECK_EVERY, Method, Parking, Reply, Request, Response};
use crate::serve::metrics::{Metrics, Places};
use crate::serve::origin;
use crate::serve::static_files;
use crate::serve::stream::{self, Format, Stream};
use crate::serve::triage;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What every handler may use: the hub, the counters, the places and the
/// configuration.
pub struct App {
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub admission: Arc<Admission>,
    pub auth: Arc<Auth>,
    pub config: Config,
    /// Bound to a loopback address: only local host names may reach the API.
    pub loopback: bool,
    /// The key of the notifications' capabilities, and those used.
    pub capabilities: Arc<Capabilities>,
    /// Sends notifications of new prompts, when configured.
    pub notifier: Option<Arc<Notifier>>,
    /// The open streams, swept for clients that left.
    pub streams: Arc<stream::Watch>,
}

impl App {
    /// An app whose state lives in memory only.
    pub fn new(config: Config, loopback: bool) -> App {
        let hub = Hub::new(App::limits(&config), config.subscriber_buffer);
        App::with_hub(config, loopback, hub, Auth::new(None))
    }

    pub fn limits(config: &Config) -> Limits {
        Limits {
            max_pending: config.max_pending,
            max_prompts: config.max_prompts,
            max_state_bytes: config.max_state_bytes,
            max_sessions: config.max_sessions,
            result_ttl: config.result_ttl.as_secs_f64(),
        }
    }

    pub fn with_hub(config: Config, loopback: bool, hub: Hub, auth: Auth) -> App {
        App {
            hub: Arc::new(hub),
            metrics: Arc::new(Metrics::default()),
            admission: Arc::new(Admission::new(config.max_streams, config.max_parked)),
            auth: Arc::new(auth),
            config,
            loopback,
            capabilities: Arc::new(Capabilities::ephemeral().expect("the OS gives random bytes")),
            notifier: None,
            streams: Arc::default(),
        }
    }
}

/// Entries a history request returns when it names no `limit`.
const DEFAULT_HISTORY: usize = 20;

/// Seconds a client refused a stream place should wait before trying again.
const RETRY_AFTER_SECS: u32 = 5;

/// The two sides of the API, as the audit log names who acted.
pub(super) const HUMAN: &str = "human";
const AGENT: &str = "agent";

/// Who sent a request, for the audit log's `by` (docs/PROTOCOL.md §8): the
/// credential it carried (`agent token`, `human token`, `human (page)`),
/// or, on a server without tokens, the side of the API its route serves.
pub(super) fn actor(app: &App, request: &Request, side: &'static str) -> String {
    match caller(app, request) {
        Caller::Open => side.to_string(),
        caller => caller.name(),
    }
}

/// The agent credential an agent's request comes from, by name: what owns
/// the prompts it submits (docs/PROTOCOL.md §7).
pub(super) fn agent_name(app: &App, request: &Request) -> String {
    let caller = caller(app, request);
    caller.agent().unwrap_or(auth::AGENT).to_string()
}

/// Who sent a request (docs/PROTOCOL.md §7): its credential, or, without
/// one, a local caller (a loopback peer, no forwarded headers) that the
/// server may take for an agent.
fn caller(app: &App, request: &Request) -> Caller {
    app.auth.identify(
        &app.hub,
        request.header("authorization"),
        request.header("cookie"),
        local(request),
    )
}

/// A loopback peer with no forwarded headers.
fn local(request: &Request) -> bool {
    let forwarded = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|name| request.header(name).is_some());
    !forwarded && request.peer.is_some_and(|peer| peer.ip().is_loopback())
}

/// Whether the credential a request came with still gives its caller
/// `role`: asked by what outlives the request's check, a stream now and
/// then and a parked wait before it hands over an outcome, so that a
/// revoked credential (or a signed-out page) gets no more
/// (docs/PROTOCOL.md §7).
pub(super) fn still(app: &App, request: &Request, role: Role) -> Box<dyn Fn() -> bool + Send> {
    let (auth, hub) = (app.auth.clone(), app.hub.clone());
    let (authorization, cookie) =
        auth.kept(request.header("authorization"), request.header("cookie"));
    let local = local(request);
    Box::new(move || {
        let caller = auth.identify(&hub, authorization.as_deref(), cookie.as_deref(), local);
        caller == Caller::Open || caller.role() == Some(role)
    })
}

pub fn handle(app: &App, request: &Request) -> Reply {
    // An oversized body is refused whatever the route, even one that would
    // not read it (a stream, a poll).
    if let Err(error @ Error::PayloadTooLarge) = &request.body {
        return error.clone().into();
    }
    route(app, request).unwrap_or_else(|error| {
        if let Error::Forbidden(refusal) = &error {
            log_refusal(request, refusal);
        }
        Reply::from(error)
    })
}

/// Every 403 is logged with what was sent, what was expected and the hint
/// (the body carries only the first and the last).
fn log_refusal(request: &Request, refusal: &Refusal) {
    let peer = request
        .peer
        .map_or_else(|| "an unknown peer".to_string(), |peer| peer.to_string());
    log::warn!(
        "403 {} {} from {peer}: {}; expected {}; {}",
        request.method.name(),
        request.path,
        refusal.message,
        refusal.expected,
        refusal.hint
    );
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Access {
    Open,
    Needs(Role),
    /// A notification's capability (its header), whatever the tokens; never
    /// with the agent's token. The handler checks it against the body.
    Capability,
}

/// What serves a route: a handler of the route alone, or of one kind of
/// prompt (its `{kind}`).
#[derive(Clone, Copy)]
pub enum Handler {
    Plain(fn(&App, &Request) -> Result<Reply>),
    PerKind(fn(&App, &Request, Kind) -> Result<Reply>),
}

/// One row of the route table: method, path, the role it needs, handler.
#[derive(Clone, Copy)]
pub struct Route {
    pub method: Method,
    /// `{kind}` stands for each kind of prompt.
    pub path: &'static str,
    pub access: Access,
    pub handler: Handler,
}

const fn row(method: Method, path: &'static str, access: Access, handler: Handler) -> Route {
    Route {
        method,
        path,
        access,
        handler,
    }
}

/// Every route, the role it needs and its handler: the access check and
/// the dispatch read this one table. An API path not listed needs the
/// human; the page's own files are open.
#[rustfmt::skip]
pub const ROUTES: &[Route] = {
    use Access::{Capability, Needs, Open};
    use Handler::{PerKind, Plain};
    use Method::{Get, Post};
    use Role::{Agent, Human};
    &[
        row(Get, "/healthz", Open, Plain(|app, _| Ok(health(app).into()))),
        row(Get, "/metrics", Needs(Human), Plain(|app, _| Ok(metrics(app).into()))),
        row(Get, "/api/config", Open, Plain(config)),
        row(Post, "/api/login", Open, Plain(login)),
        row(Post, "/api/logout", Open, Plain(logout)),
        row(Get, "/api/{kind}/pending", Needs(Human), PerKind(pending)),
        row(Get, "/api/{kind}/stream", Needs(Human), PerKind(per_kind_stream)),
        row(Post, "/api/{kind}/respond", Needs(Human), PerKind(respond)),
        row(Get, "/api/events", Needs(Human), Plain(events)),
        row(Get, "/api/sessions", Needs(Human), Plain(|app, _| Ok(sessions(app).into()))),
        row(Post, "/api/{kind}/submit", Needs(Agent), PerKind(submit)),
        row(Get, "/api/{kind}/wait", Needs(Agent), PerKind(wait)),
        row(Post, "/api/{kind}/cancel", Needs(Agent), PerKind(cancel)),
        row(Post, "/api/hooks/claude-code", Needs(Agent), Plain(hook_route::claude_code)),
        row(Get, "/api/history", Needs(Human), Plain(history)),
        row(Get, "/api/rules", Needs(Human), Plain(|app, _| Ok(rules(app).into()))),
        row(Post, "/api/rules/revoke", Needs(Human), Plain(revoke)),
        row(Post, "/api/presence", Needs(Human), Plain(presence)),
        row(Get, "/api/agents", Needs(Human), Plain(triage::agents)),
        row(Post, "/api/agents/pause", Needs(Human), Plain(triage::pause)),
        row(Post, "/api/agents/stop", Needs(Human), Plain(triage::stop)),
        row(Post, "/api/act", Capability, Plain(act::act)),
        row(Get, "/api/receipts/key", Open, Plain(|app, _| receipts_key(app))),
    ]
};

impl Route {
    /// Whether the path is this route's; with its `{kind}`, if it has one.
    fn matches(&self, path: &str) -> Option<Option<Kind>> {
        // Split at a byte, not at "{kind}": a string pattern built a
        // searcher for every route a request was matched against.
        match self.path.split_once('{') {
            None => (self.path == path).then_some(None),
            Some((before, rest)) => path
                .strip_prefix(before)
                .and_then(|tail| tail.strip_suffix(rest.strip_prefix("kind}").unwrap_or(rest)))
                .and_then(Kind::parse)
                .map(Some),
        }
    }

    /// A GET outside the API also answers HEAD.
    fn takes(&self, method: Method) -> bool {
        let head = method == Method::Head && self.method == Method::Get;
        self.method == method || (head && !self.path.starts_with("/api/"))
    }

    fn call(&self, app: &App, request: &Request, kind: Option<Kind>) -> Result<Reply> {
        match (self.handler, kind) {
            (Handler::Plain(handler), _) => handler(app, request),
            (Handler::PerKind(handler), Some(kind)) => handler(app, request, kind),
            (Handler::PerKind(_), None) => Err(not_found()),
        }
    }
}

/// The access the route table gives a path.
pub fn access(path: &str) -> Access {
    let listed = ROUTES.iter().find(|route| route.matches(path).is_some());
    match listed {
        Some(route) => route.access,
        None if path.starts_with("/api/") => Access::Needs(Role::Human),
        None => Access::Open,
    }
}

fn route(app: &App, request: &Request) -> Result<Reply> {
    let path = request.path.as_str();
    let api = path.strip_prefix("/api/");
    if api.is_some() || path == "/metrics" {
        origin::check_host(&app.config, app.loopback, request)?;
    }
    refuse_credentials_in_url(request)?;
    let caller = caller(app, request);
    let has_capability = request.header(capability::HEADER).is_some();
    check_access(access(path), &caller, has_capability)?;
    if request.method == Method::Post {
        check_cookie_origin(request, &caller)?;
        origin::check_origin(&app.config, request)?;
    }
    dispatch(app, request, api.is_some())
}

/// The table's route for the request: 405 when the path is a route's but
/// the method is not; else an API path is 404, any other a page file.
fn dispatch(app: &App, request: &Request, api: bool) -> Result<Reply> {
    let path = request.path.as_str();
    let mut known = false;
    for route in ROUTES {
        let Some(kind) = route.matches(path) else {
            continue;
        };
        known = true;
        if route.takes(request.method) {
            return route.call(app, request, kind);
        }
    }
    if known {
        return Err(Error::MethodNotAllowed);
    }
    if api {
        return Err(not_found());
    }
    let file = static_files::lookup(path).ok_or_else(not_found)?;
    match request.method {
        Method::Get | Method::Head => Ok(file.into()),
        _ => Err(Error::MethodNotAllowed),
    }
}

fn config(app: &App, _request: &Request) -> Result<Reply> {
    let body = json!({
        "keepalive_secs": app.config.keepalive.as_secs_f64(),
        "auth": app.auth.required(),
        "rule_runners": RUNNERS.iter().copied().map(Runner::to_json).collect::<Vec<_>>(),
        "deny_reasons": app.config.deny_reasons,
        "read_only_tools": read_only_tools(),
    });
    Ok(Response::json(200, &body).into())
}

/// Each agent's tools that only read (docs/agents.md): the page's triage
/// list answers those together (docs/PROTOCOL.md §3.6).
fn read_only_tools() -> Value {
    let agents = hooks::Agent::ALL.into_iter();
    let lists = agents.map(|agent| (agent.as_str().to_string(), json!(agent.default_allowed())));
    Value::Object(lists.collect())
}

/// Credentials are never taken from a URL, where logs, history and
/// referrers keep them: a query naming one is refused outright.
fn refuse_credentials_in_url(request: &Request) -> Result<()> {
    let named = [
        "token",
        "access_token",
        "auth",
        "password",
        "code",
        "signin",
    ];
    match request
        .query
        .iter()
        .any(|(key, _)| named.contains(&key.as_str()))
    {
        true => Err(Error::bad_request(
            "credentials are never accepted in a URL; send Authorization: Bearer",
        )),
        false => Ok(()),
    }
}

/// 401 without a credential the route accepts, 403 with one of the wrong
/// role (an agent's token never answers, not even with a capability).
fn check_access(access: Access, caller: &Caller, has_capability: bool) -> Result<()> {
    if access == Access::Capability {
        return match (caller, has_capability) {
            (Caller::Bearer(Role::Agent, _), _) => Err(Error::Forbidden(Refusal::new(
                "the agent credential never answers",
                "send a notification's action without the agent's token",
            ))),
            (_, false) => Err(Error::Unauthorized),
            (_, true) => Ok(()),
        };
    }
    let (Access::Needs(needed), false) = (access, *caller == Caller::Open) else {
        return Ok(());
    };
    match caller.role() {
        None => Err(Error::Unauthorized),
        Some(role) if role == needed => Ok(()),
        // No credential at all: asked for one, not told it is the agent.
        Some(_) if *caller == Caller::Local => Err(Error::Unauthorized),
        Some(role) => Err(Error::Forbidden(Refusal::new(
            format!(
                "the {} credential cannot do this; it needs the {}'s",
                role.as_str(),
                needed.as_str()
            ),
            format!("use the {} credential for this", needed.as_str()),
        ))),
    }
}

// ---- signing in (docs/PROTOCOL.md §7) ----

fn login(app: &App, request: &Request) -> Result<Reply> {
    let body = request.json()?;
    let credential = match (body.get("token"), body.get("code")) {
        (Some(Value::String(token)), None) => Credential::Token(token),
        (None, Some(Value::String(code))) => Credential::Code(code),
        _ => {
            return Err(Error::bad_request(
                "token or code is required (one of them)",
            ));
        }
    };
    let client = origin::client(&app.config, request);
    match app.auth.sign_in(&app.hub, credential, client) {
        Ok(id) if id.is_empty() => Ok(Response::json(200, &json!({"ok": true})).into()),
        Ok(id) => {
            let cookie = session_cookie(app, request, &id, auth::SESSION_LIFETIME.as_secs());
            Ok(Response::json(200, &json!({"ok": true}))
                .with_header("Set-Cookie", cookie)
                .into())
        }
        Err(SignInError::WrongToken) => Err(Error::WrongCredential("wrong token".into())),
        Err(SignInError::BadCode(refused)) => Err(Error::WrongCredential(refused.message().into())),
        Err(SignInError::TooMany) => Err(Error::TooMany(
            "too many failed sign-ins; wait a minute".into(),
        )),
        Err(SignInError::NotKept(error)) => Err(error),
    }
}

/// Signs out: the state forgets the sign-in (a store that cannot take the
/// change refuses, and the cookie still signs in), and the cookie goes.
fn logout(app: &App, request: &Request) -> Result<Reply> {
    app.auth.sign_out(&app.hub, request.header("cookie"))?;
    let expired = session_cookie(app, request, "", 0);
    let response = Response::json(200, &json!({"ok": true})).with_header("Set-Cookie", expired);
    Ok(response.into())
}

/// The sign-in cookie: the page's only way in, out of reach of scripts and
/// of other sites' requests.
fn session_cookie(app: &App, request: &Request, id: &str, max_age: u64) -> String {
    let secure = match origin::is_https(&app.config, request) {
        true => "; Secure",
        false => "",
    };
    format!(
        "{}={id}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}",
        auth::COOKIE,
        app.config.base_path()
    )
}

/// A POST that rides on the page's cookie must carry an `Origin` (which the
/// Origin check then judges): a cookie alone never answers.
fn check_cookie_origin(request: &Request, caller: &Caller) -> Result<()> {
    match (caller, request.header("origin")) {
        (Caller::SignedIn(_), None) => Err(Error::Forbidden(Refusal::new(
            "a signed-in POST must carry an Origin",
            "send the request from askgate's page, or with a token",
        ))),
        _ => Ok(()),
    }
}

fn not_found() -> Error {
    Error::NotFound("not found".into())
}

// ---- browser API: polling (docs/PROTOCOL.md §3.1) ----

fn pending(app: &App, request: &Request, kind: Kind) -> Result<Reply> {
    let Some(session_id) = request.query("session_id") else {
        let empty = Update {
            session_id: String::new(),
            kind,
            pending: None,
            pending_count: 0,
            version: 0,
        };
        return Ok(pending_response(&empty).into());
    };
    validate::session_id(session_id)?;
    let since = optional_query::<u64>(request, "since")?;
    let wait = optional_query::<f64>(request, "wait")?.unwrap_or(0.0);
    validate::wait_seconds("wait", wait)?;
    if let Some(since) = since.filter(|_| wait > 0.0) {
        return long_poll(
            app,
            request,
            session_id,
            kind,
            since,
            Duration::from_secs_f64(wait),
        );
    }
    let update = app.hub.pending(session_id, kind);
    if etag_matches(request, update.version) {
        return Ok(Response::text(304, "application/json", "")
            .with_header("ETag", etag(update.version))
            .into());
    }
    Ok(pending_response(&update).into())
}

fn long_poll(
    app: &App,
    request: &Request,
    session_id: &str,
    kind: Kind,
    since: u64,
    wait: Duration,
) -> Result<Reply> {
    // A change the client has not seen is answered at once, without a place.
    let current = app.hub.pending(session_id, kind);
    if current.version != since {
        return Ok(pending_response(&current).into());
    }
    // Once a revoke or a sign-out was swept since the request came in
    // (before its credential was checked), whether the caller may still
    // read is asked again before it is answered.
    let (watch, seen) = (app.streams.clone(), request.revocations);
    let still_human = still(app, request, Role::Human);
    let place = take_place(app, request, Place::Parked)?;
    let subscription = match app.hub.subscribe_unless_changed(session_id, kind, since) {
        Ok(subscription) => subscription,
        Err(current) => return Ok(pending_response(&current).into()),
    };
    let (hub, session_id) = (app.hub.clone(), session_id.to_string());
    let deadline = Instant::now() + wait;
    Ok(Reply::Park(Box::new(move |parking: &Parking| {
        let _place = place;
        let inbox = &subscription.inbox;
        inbox.read_here();
        // The fan-out thread answers on the socket when it takes the
        // response at once (serve/early.rs); this thread is woken after.
        if let Some(early) = &parking.early {
            inbox.deliver_with(Arc::new(EarlyPoll {
                early: early.clone(),
                feed: inbox.feed(),
                respond: woken_reply,
                watch: watch.clone(),
                seen,
            }));
        }
        // Checked every so often, so a place held for a client that left is
        // given back within a second, not at the end of the wait.
        let mut check_left_at = Instant::now() + LEFT_CHECK_EVERY;
        let mut woken = loop {
            if parking.answered_early() || inbox.resync.load(Ordering::Acquire) {
                break None;
            }
            match inbox.try_next() {
                Some(Next::Update(published)) => break Some(published),
                Some(Next::Closed | Next::Timeout) => break None,
                None => {}
            }
            let now = Instant::now();
            if now >= deadline {
                break None;
            }
            if now >= check_left_at {
                if parking.client_left() {
                    break None;
                }
                check_left_at = now + LEFT_CHECK_EVERY;
            }
            inbox.wait(deadline.min(check_left_at));
        };
        if parking.answered_early() {
            // Not written: the server writes what the socket did not take.
            return Response::text(200, JSON, "");
        }
        if watch.revocations() != seen && !still_human() {
            return Response::error(&Error::Unauthorized);
        }
        // The newest change delivered is this queue's state now: its
        // body is made once for every poll it wakes, and none of them
        // takes the hub lock to read it again (1,000 polls woken at once
        // queued on it). After an overflow, the state is read.
        while let Some(Next::Update(newer)) = inbox.try_next() {
            woken = Some(newer);
        }
        let fell_behind = inbox.resync.load(Ordering::Acquire);
        drop(subscription);
        match woken.filter(|_| !fell_behind) {
            Some(published) => woken_reply(&published),
            None => pending_response(&hub.pending(&session_id, kind)),
        }
    })))
}

/// A long-poll's answer to the update that woke it, on its thread or on
/// the fan-out thread's (`EarlyPoll`): the same bytes.
fn woken_reply(published: &Published) -> Response {
    pending_reply(
        published.rendered(LONG_POLL_BODY, pending_body),
        published.update.version,
    )
}

/// The slot of a published update where its long-poll body is kept
/// (`Published::rendered`; the streams use the ones below).
const LONG_POLL_BODY: usize = 2;

fn pending_response(update: &Update) -> Response {
    pending_reply(pending_body(update), update.version)
}

fn pending_body(update: &Update) -> String {
    format!(
        r#"{{"pending": {}, "pending_count": {}, "version": {}}}"#,
        update.pending_json(),
        update.pending_count,
        update.version
    )
}

fn pending_reply(body: impl Into<Vec<u8>>, version: u64) -> Response {
    Response::text(200, "application/json", body).with_header("ETag", etag(version))
}

fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

fn etag_matches(request: &Request, version: u64) -> bool {
    let Some(header) = request.header("if-none-match") else {
        return false;
    };
    let current = etag(version);
    header
        .split(',')
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == current || tag == "*")
}

// ---- browser API: responding (docs/PROTOCOL.md §3.2) ----

fn respond(app: &App, request: &Request, kind: Kind) -> Result<Reply> {
    let body = request.json()?;
    let session_id = required_session(&body)?;
    let answer = read_answer(kind, &body)?;
    let id = optional_id(&body, kind)?;
    let picked = read_scope(&answer, &body)?;
    let by = actor(app, request, HUMAN);
    let caller = caller(app, request);
    let responded = app
        .hub
        .respond(session_id, id, answer.clone(), picked, &by, caller.human())?;
    respond_body(kind, &answer, id.is_some(), responded).map(Reply::from)
}

/// The wider scope a human picked for the rule an answer grants
/// (`scope`, docs/PROTOCOL.md §3.2): a command's prefix, a string or
/// `{"prefix": <string>, "options": <bool>}` when the human ticked "and
/// any options"; for another action `{"tool": <name>}`, `{"url_prefix":
/// <url>}` or `{"directory": <path>}`, checked against the prompt's action
/// by the state. Only with a choice that grants one; a clarify answer
/// ignores the field.
fn read_scope(answer: &Answer, body: &Map<String, Value>) -> Result<Option<Scope>> {
    let Some(decision) = answer.decision() else {
        return Ok(None);
    };
    let scope = match body.get("scope") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(prefix)) => Scope::Prefix {
            prefix: prefix.clone(),
            options: false,
        },
        Some(Value::Object(scope)) => read_scope_object(scope)?,
        Some(_) => return Err(Error::bad_request(SCOPE_SHAPE)),
    };
    match decision.choice.grants_rule() {
        false => Err(Error::bad_request(
            "scope applies only to the session and always choices",
        )),
        true => Ok(Some(scope)),
    }
}

const SCOPE_SHAPE: &str = "scope must be a string, {\"prefix\": <string>, \"options\": <boolean>}, {\"tool\": <string>}, {\"url_prefix\": <string>} or {\"directory\": <string>}";

/// A scope object: exactly one of `prefix` (with `options`), `tool`,
/// `url_prefix` and `directory`, its value a string.
fn read_scope_object(scope: &Map<String, Value>) -> Result<Scope> {
    let string = |name: &str| match scope.get(name) {
        Some(Value::String(text)) => Ok(text.clone()),
        _ => Err(Error::bad_request(format!("scope.{name} must be a string"))),
    };
    let fields = |allowed: &[&str]| match scope.keys().all(|key| allowed.contains(&key.as_str())) {
        true => Ok(()),
        false => Err(Error::bad_request(SCOPE_SHAPE)),
    };
    let named = ["prefix", "tool", "url_prefix", "directory"];
    match named.into_iter().find(|name| scope.contains_key(*name)) {
        Some("prefix") => {
            fields(&["prefix", "options"])?;
            let options = match scope.get("options").unwrap_or(&Value::Null) {
                Value::Null => false,
                Value::Bool(options) => *options,
                _ => return Err(Error::bad_request("scope.options must be true or false")),
            };
            let prefix = string("prefix")?;
            Ok(Scope::Prefix { prefix, options })
        }
        Some("tool") => fields(&["tool"]).and(string("tool").map(Scope::Tool)),
        // The method and the action's type are the prompt's (`Scope::for_action`).
        Some("url_prefix") => fields(&["url_prefix"])
            .and(string("url_prefix"))
            .map(|prefix| {
                let method = String::new();
                Scope::UrlPrefix { prefix, method }
            }),
        Some("directory") => fields(&["directory"])
            .and(string("directory"))
            .map(|directory| {
                let action_type = "";
                Scope::Directory {
                    directory,
                    action_type,
                }
            }),
        _ => Err(Error::bad_request(SCOPE_SHAPE)),
    }
}

/// The answer a respond body carries: the clarify's trimmed text (from
/// `response`, `answer` or `choice`), its list of picks or its form's
/// object; or the approval's choice (`deny` when absent) with its reason,
/// edited action and note. Checked against the prompt by the state.
fn read_answer(kind: Kind, body: &Map<String, Value>) -> Result<Answer> {
    match kind {
        Kind::Clarify => {
            let field = ["response", "answer", "choice"]
                .into_iter()
                .find_map(|f| body.get(f));
            let text = match field {
                None | Some(Value::Null) => "",
                Some(Value::String(text)) => text.trim(),
                Some(Value::Object(form)) => return Ok(Answer::Form(form.clone())),
                Some(Value::Array(picks)) => return read_picks(picks),
                Some(_) => {
                    return Err(Error::bad_request(
                        "response must be a string, a list of choices or a form's object",
                    ));
                }
            };
            match text.is_empty() {
                true => Err(Error::bad_request("response is required")),
                false => Ok(Answer::Text(text.to_string())),
            }
        }
        Kind::Approval => {
            let choice = match body.get("choice") {
                None | Some(Value::Null) => Choice::Deny,
                Some(Value::String(name)) => Choice::parse(name).ok_or_else(|| {
                    Error::bad_request(format!("Invalid choice: {}", error::quoted(name)))
                })?,
                Some(other) => {
                    return Err(Error::bad_request(format!(
                        "Invalid choice: {}",
                        error::quoted(&other.to_string())
                    )));
                }
            };
            validate::decision(choice, body).map(Answer::Decision)
        }
    }
}

fn read_picks(picks: &[Value]) -> Result<Answer> {
    let picks: Option<Vec<String>> = picks
        .iter()
        .map(|pick| pick.as_str().map(str::to_string))
        .collect();
    picks
        .map(Answer::Picks)
        .ok_or_else(|| Error::bad_request("response must be a list of the choices picked"))
}

/// What each kind says back: a stale clarify is a 409; a stale approval is
/// a 200 that tells the page whether it may clear its card.
fn respond_body(
    kind: Kind,
    answer: &Answer,
    id_given: bool,
    responded: Responded,
) -> Result<Response> {
    let field = kind.answer_field();
    let answer = answer.value();
    let body = match (kind, responded) {
        (_, Responded::Answered) => json!({"ok": true, field: answer}),
        (Kind::Clarify, Responded::Stale { .. }) => {
            return Err(Error::Stale(match id_given {
                true => "clarify is no longer pending".into(),
                false => "no clarify is pending".into(),
            }));
        }
        (Kind::Approval, Responded::Stale { still_pending: 0 }) => {
            json!({"ok": true, field: answer, "stale_cleared": true})
        }
        (Kind::Approval, Responded::Stale { .. }) => json!({"ok": false, field: answer}),
    };
    Ok(Response::json(200, &body))
}

// ---- browser API: rules (docs/PROTOCOL.md §3.2) ----

/// A rule as the page lists it: its record, and what it covers in plain
/// words (`covers`).
fn rule_json(rule: &Rule) -> Value {
    let mut value = rule.to_json();
    value["covers"] = json!(rule.scope.plain_words());
    value
}

fn rules(app: &App) -> Response {
    let rules = app.hub.rules();
    let rules: Vec<Value> = rules.iter().map(rule_json).collect();
    Response::json(200, &json!({ "rules": rules }))
}

fn revoke(app: &App, request: &Request) -> Result<Reply> {
    let body = request.json()?;
    let rule_id = optional_text(&body, "rule_id")?
        .filter(|rule_id| !rule_id.is_empty())
        .ok_or_else(|| Error::bad_request("rule_id is required"))?;
    app.hub.revoke(rule_id, &actor(app, request, HUMAN))?;
    Ok(Response::json(200, &json!({"ok": true})).into())
}

/// `POST /api/presence` (docs/PROTOCOL.md §8): a page of the human says
/// whether it is visible, so the phone rings only when none is.
fn presence(app: &App, request: &Request) -> Result<Reply> {
    let body = request.json()?;
    let page = optional_text(&body, "page")?
        .filter(|page| is_page_id(page))
        .ok_or_else(|| Error::bad_request("page is required: 8 to 64 of A-Z a-z 0-9 _ -"))?;
    let visible = match body.get("visible") {
        Some(serde_json::Value::Bool(visible)) => *visible,
        _ => return Err(Error::bad_request("visible is required: true or false")),
    };
    if let Some(notifier) = &app.notifier {
        notifier.presence(page, visible);
    }
    Ok(Response::json(200, &json!({"ok": true})).into())
}

fn is_page_id(page: &str) -> bool {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    (8..=64).contains(&page.len()) && page.chars().all(valid)
}

// ---- browser API: streams (docs/PROTOCOL.md §3.3, §4) ----

fn per_kind_stream(app: &App, request: &Request, kind: Kind) -> Result<Reply> {
    let session_id = required_query_session(request)?;
    let interest = Interest {
        watch: Watch::Sessions(vec![session_id.to_string()]),
        kind: Some(kind),
    };
    open_stream(app, request, interest, None, Format::PerKind(kind))
}

fn events(app: &App, request: &Request) -> Result<Reply> {
    let mut sessions = request.query_all("session_id");
    sessions.sort_unstable();
    sessions.dedup();
    if sessions.len() > validate::MAX_WATCHED_SESSIONS {
        return Err(Error::bad_request(format!(
            "at most {} session_id parameters",
            validate::MAX_WATCHED_SESSIONS
        )));
    }
    for session_id in &sessions {
        validate::session_id(session_id)?;
    }
    let watch = match sessions.is_empty() {
        true => Watch::All,
        false => Watch::Sessions(sessions.iter().map(|s| s.to_string()).collect()),
    };
    let last_event_id = request
        .header("last-event-id")
        .or_else(|| request.query("last_event_id"));
    let since = last_event_id.and_then(|id| id.trim().parse::<u64>().ok());
    open_stream(
        app,
        request,
        Interest { watch, kind: None },
        since,
        Format::Multiplexed,
    )
}

/// A multiplexed stream is ended by the server at a random point of
/// `--stream-lifetime-secs`, so half-open connections and clients that
/// stopped reading cannot pile up; browsers reconnect (and resume). A
/// per-kind stream is not: hermes-webui-style clients never reconnect one
/// and fall back to polling for good (docs/PROTOCOL.md §4); the socket
/// sweep and the send timeout still end it when its client is gone, and a
/// shutdown ends it.
fn open_stream(
    app: &App,
    request: &Request,
    interest: Interest,
    since: Option<u64>,
    format: Format,
) -> Result<Reply> {
    let (low, high) = app.config.stream_lifetime;
    let spread = (high - low).as_secs_f64() * (ids::random_u64() as f64 / u64::MAX as f64);
    let lifetime = low + Duration::from_secs_f64(spread);
    let place = take_place(app, request, Place::Stream)?;
    let stream = Stream {
        metrics: app.metrics.clone(),
        subscription: app.hub.subscribe(interest, since),
        format,
        keepalive: app.config.keepalive,
        lifetime: match format {
            Format::Multiplexed => Some(lifetime),
            Format::PerKind(_) => None,
        },
        place,
        watch: app.streams.clone(),
        still_allowed: still(app, request, Role::Human),
    };
    Ok(Reply::Stream(Box::new(move |writer, chunked, fd| {
        stream.run(writer, chunked, fd)
    })))
}

/// A parked request's place, for `hook_route`.
pub(super) fn take_parked_place(
    app: &App,
    request: &Request,
) -> Result<crate::serve::admission::PlaceGuard> {
    take_place(app, request, Place::Parked)
}

/// A place for this request's client: 503 when places of its kind are at
/// their cap, or the client holds its share of them.
fn take_place(
    app: &App,
    request: &Request,
    place: Place,
) -> Result<crate::serve::admission::PlaceGuard> {
    let client = origin::client(&app.config, request);
    app.admission
        .take(place, client)
        .ok_or(Error::Unavailable(RETRY_AFTER_SECS))
}

fn sessions(app: &App) -> Response {
    let sessions: Vec<Value> = app
        .hub
        .sessions()
        .into_iter()
        .map(|s| {
            let urgent = Kind::BY_URGENCY
                .into_iter()
                .find(|&kind| s.counts[kind] > 0);
            let mut entry = json!({
                "session_id": s.session_id,
                "attention": urgent.map(Kind::as_str),
                "version": s.version,
            });
            for (kind, count) in s.counts.iter() {
                entry[format!("{}_count", kind.as_str())] = json!(count);
            }
            entry
        })
        .collect();
    Response::json(200, &json!({ "sessions": sessions }))
}

/// A session's answered, expired and cancelled prompts, newest first
/// (docs/PROTOCOL.md §3.5): what the page shows under the cards.
fn history(app: &App, request: &Request) -> Result<Reply> {
    let session_id = required_query_session(request)?;
    let limit = optional_query::<usize>(request, "limit")?.unwrap_or(DEFAULT_HISTORY);
    if !(1..=MAX_HISTORY).contains(&limit) {
        return Err(Error::bad_request(format!(
            "limit must be 1 to {MAX_HISTORY}"
        )));
    }
    let history = app.hub.history(session_id, limit);
    Ok(Response::json(200, &json!({"session_id": session_id, "history": history})).into())
}

// ---- agent API (docs/PROTOCOL.md §5) ----

fn submit(app: &App, request: &Request, kind: Kind) -> Result<Reply> {
    let body = request.json()?;
    let session_id = required_session(&body)?;
    let payload = validate::payload(kind, &body)?;
    let timeout_seconds = validate::timeout_seconds(&body, kind.default_timeout_seconds())?;
    let urgent = match optional_text(&body, "urgency")? {
        None | Some("normal") => false,
        Some("high") => true,
        Some(_) => return Err(Error::bad_request("urgency must be \"high\" or \"normal\"")),
    };
    let id_field = kind.id_field();
    let (by, agent) = (actor(app, request, AGENT), agent_name(app, request));
    let asker = Asker {
        agent: &agent,
        by: &by,
    };
    let submitted = app
        .hub
        .submit_marked(session_id, timeout_seconds, payload, urgent, asker)?;
    let body = match submitted {
        Submitted::Queued {
            id,
            pending_count,
            deduped,
        } => {
            let mut body = json!({id_field: id, "pending_count": pending_count});
            if kind.deduplicates() {
                body["deduped"] = json!(deduped);
            }
            body
        }
        Submitted::AutoAnswered { id, answer } => {
            let field = kind.answer_field();
            let mut body =
                json!({id_field: id, "status": "answered", field: answer.value(), "auto": true});
            with_receipt(app, &mut body, &id);
            body
        }
    };
    Ok(Response::json(200, &body).into())
}

fn wait(app: &App, request: &Request, kind: Kind) -> Result<Reply> {
    let session_id = required_query_session(request)?;
    let id_field = kind.id_field();
    let id = request
        .query(id_field)
        .ok_or_else(|| Error::bad_request(format!("{id_field} is required")))?;
    validate::prompt_id(kind, id)?;
    let timeout = optional_query::<f64>(request, "timeout")?.unwrap_or(25.0);
    validate::wait_seconds("timeout", timeout)?;
    let deadline = Instant::now() + Duration::from_secs_f64(timeout);
    // What is known already is answered at once, without taking a place.
    // Another credential's prompt is unknown, exactly as one that never was.
    let agent = agent_name(app, request);
    let now = app
        .hub
        .wait_outcome(id, kind, session_id, &agent, Instant::now());
    if now != WaitResult::Pending || timeout == 0.0 {
        return Ok(wait_response(&app.hub, kind, id, now).into());
    }
    let place = take_place(app, request, Place::Parked)?;
    let (hub, session_id, id) = (app.hub.clone(), session_id.to_string(), id.to_string());
    let still_agent = still(app, request, Role::Agent);
    Ok(Reply::Park(Box::new(move |parking: &Parking| {
        let _place = place;
        loop {
            let slice = deadline.min(Instant::now() + LEFT_CHECK_EVERY);
            let result = hub.wait_outcome(&id, kind, &session_id, &agent, slice);
            if result != WaitResult::Pending && !still_agent() {
                return Response::error(&Error::Unauthorized);
            }
            let over = slice >= deadline || hub.is_closing() || parking.client_left();
            if result != WaitResult::Pending || over {
                return wait_response(&hub, kind, &id, result);
            }
        }
    })))
}

fn wait_response(hub: &Hub, kind: Kind, id: &str, result: WaitResult) -> Response {
    let answer_field = kind.answer_field();
    let mut body = match result {
        WaitResult::Pending => return Response::json(200, &json!({"status": "pending"})),
        WaitResult::Done(Outcome::Answered(answer)) => {
            let mut body = Map::new();
            body.insert("status".into(), json!("answered"));
            answer.insert_into(&mut body, answer_field);
            Value::Object(body)
        }
        WaitResult::Done(outcome) => json!({"status": outcome.status()}),
        WaitResult::Unknown => {
            return Response::error(&Error::NotFound(format!("no such {}", kind.as_str())));
        }
    };
    if let Some(receipt) = hub.receipt(id) {
        body["receipt"] = receipt.to_json();
    }
    Response::json(200, &body)
}

/// Adds the receipt of the decision on `id`, when the server signs them
/// (docs/PROTOCOL.md §10).
fn with_receipt(app: &App, body: &mut Value, id: &str) {
    if let Some(receipt) = app.hub.receipt(id) {
        body["receipt"] = receipt.to_json();
    }
}

/// The public key that verifies receipts (docs/PROTOCOL.md §10): open to
/// anyone, since it is public.
fn receipts_key(app: &App) -> Result<Reply> {
    let key = app.hub.receipts_public_key().ok_or_else(not_found)?;
    let (public_key, key_id) = key;
    let body = json!({"algorithm": "Ed25519", "public_key": public_key, "key_id": key_id});
    Ok(Response::json(200, &body).into())
}

fn cancel(app: &App, request: &Request, kind: Kind) -> Result<Reply> {
    let body = request.json()?;
    let session_id = required_session(&body)?;
    let id = optional_id(&body, kind)?;
    let (by, agent) = (actor(app, request, AGENT), agent_name(app, request));
    let asker = Asker {
        agent: &agent,
        by: &by,
    };
    let cancelled = app.hub.cancel(session_id, kind, id, asker)?;
    Ok(Response::json(200, &json!({"ok": true, "cancelled": cancelled})).into())
}

// ---- operations ----

/// `ok`, or with Redis whether it answered last time (docs/PROTOCOL.md §6):
/// 503 while it does not, so a balancer can steer changes elsewhere.
fn health(app: &App) -> Response {
    let text = "text/plain; charset=utf-8";
    match app.hub.store_status() {
        None => Response::text(200, text, "ok"),
        Some((target, Ok(()))) => {
            Response::text(200, text, format!("ok: store {target} reachable\n"))
        }
        Some((target, Err(why))) => {
            Response::text(503, text, format!("store {target} unreachable: {why}\n"))
        }
    }
}

fn metrics(app: &App) -> Response {
    let places = Places {
        streams: app.admission.held(Place::Stream),
        parked: app.admission.held(Place::Parked),
    };
    let mut text = app.metrics.render(&app.hub.counts(), &places);
    if let Some(stats) = app.hub.journal_stats() {
        text.push_str(&crate::serve::metrics::render_journal(&stats));
    }
    if let Some(notifier) = &app.notifier {
        text.push_str(&crate::serve::metrics::render_notify(&notifier.counts()));
    }
    if let Some(stats) = app.hub.store_stats() {
        text.push_str(&crate::serve::metrics::render_store(&stats));
    }
    Response::text(200, "text/plain; version=0.0.4; charset=utf-8", text)
}

// ---- small parsers shared by the handlers ----

pub(super) fn required_session(body: &Map<String, Value>) -> Result<&str> {
    match body.get("session_id") {
        None | Some(Value::Null) => Err(Error::bad_request("session_id is required")),
        Some(Value::String(s)) if s.is_empty() => Err(Error::bad_request("session_id is required")),
        Some(Value::String(session_id)) => {
            validate::session_id(session_id).map(|()| session_id.as_str())
        }
        Some(_) => Err(Error::bad_request("session_id must be a string")),
    }
}

fn required_query_session(request: &Request) -> Result<&str> {
    let session_id = request
        .query("session_id")
        .ok_or_else(|| Error::bad_request("session_id is required"))?;
    validate::session_id(session_id).map(|()| session_id)
}

fn optional_id(body: &Map<String, Value>, kind: Kind) -> Result<Option<&str>> {
    let field = kind.id_field();
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) if id.is_empty() => Ok(None),
        Some(Value::String(id)) => Ok(Some(id.as_str())),
        Some(_) => Err(Error::bad_request(format!("{field} must be a string"))),
    }
}

pub(super) fn optional_text<'a>(
    body: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.as_str())),
        Some(_) => Err(Error::bad_request(format!("{field} must be a string"))),
    }
}

fn optional_query<T: std::str::FromStr>(request: &Request, name: &str) -> Result<Option<T>> {
    let Some(value) = request.query(name) else {
        return Ok(None);
    };
    let parsed = value
        .trim()
        .parse()
        .map_err(|_| Error::bad_request(format!("invalid {name}: {:?}", error::quoted(value))))?;
    Ok(Some(parsed))
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
