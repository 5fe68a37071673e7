//! The routes as values (docs/PROTOCOL.md §3 to §5, §7): a `Request` in,
//! a `Response` out, no socket. Tables of requests and the exact answers
//! they get, through one `check` that prints both in full; every refusal is
//! also checked to change nothing. Parked replies run to their end on the
//! test's thread with short timeouts, and streams run into a buffer after
//! the hub has closed, so nothing here waits long.

use super::{App, handle};
use crate::config::Config;
use crate::core::kind::Kind;
use crate::core::rules;
use crate::core::state::SessionSummary;
use crate::core::view::Update;
use crate::error::Error;
use crate::hub::Counts;
use crate::serve::admission::Place;
use crate::serve::early::Early;
use crate::serve::http::{JSON, Method, Parked, Parking, Reply, Request, Response};
use serde_json::{Value, json};
use std::cell::Cell;
use std::fmt;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

// ---- requests ----

fn app(flags: &[&str]) -> App {
    let args: Vec<String> = flags.iter().map(|flag| flag.to_string()).collect();
    App::new(Config::parse(&args, |_| None).expect("valid flags"), true)
}

fn url(kind: Kind, action: &str) -> String {
    format!("/api/{}/{action}", kind.as_str())
}

fn get(url: &str) -> Request {
    Request::fake(Method::Get, url, "")
}

fn post(url: &str, body: Value) -> Request {
    Request::fake(Method::Post, url, &body.to_string())
}

fn header(mut request: Request, name: &str, value: &str) -> Request {
    request
        .headers
        .push((name.to_ascii_lowercase(), value.into()));
    request
}

/// A POST as the server hands it on when its `Content-Type` is not JSON.
fn post_not_json(url: &str) -> Request {
    let mut request = Request::fake(Method::Post, url, "");
    request.headers.clear();
    request.body = Err(Error::UnsupportedMediaType);
    request
}

/// A request as the server hands it on when its body was over the limit.
fn too_large(mut request: Request) -> Request {
    request.body = Err(Error::PayloadTooLarge);
    request
}

/// `base` with the fields of `extra` set over it.
fn with(mut base: Value, extra: Value) -> Value {
    for (field, value) in extra.as_object().expect("an object") {
        base[field] = value.clone();
    }
    base
}

fn without(mut base: Value, field: &str) -> Value {
    base.as_object_mut().expect("an object").remove(field);
    base
}

/// A valid submit body for session `s`, with `extra` over it.
fn prompt(kind: Kind, extra: Value) -> Value {
    let base = match kind {
        Kind::Clarify => json!({"session_id": "s", "question": "Which database?"}),
        Kind::Approval => json!({"session_id": "s", "command": "git push origin main"}),
    };
    with(base, extra)
}

/// A valid respond body for session `s`, with `extra` over it.
fn answer(kind: Kind, extra: Value) -> Value {
    let base = match kind {
        Kind::Clarify => json!({"session_id": "s", "response": "postgres"}),
        Kind::Approval => json!({"session_id": "s", "choice": "once"}),
    };
    with(base, extra)
}

fn describe(request: &Request) -> String {
    let query: Vec<String> = request
        .query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let body = match &request.body {
        Ok(body) => String::from_utf8_lossy(body).into_owned(),
        Err(error) => format!("<{error}>"),
    };
    let (method, path, headers) = (request.method, &request.path, &request.headers);
    format!(
        "{method:?} {path}?{} {headers:?} {body:.200}",
        query.join("&")
    )
}

// ---- answers ----

/// A response as the tables write it. Entries and rules carry the hub's
/// clock, so `requested_at` and `granted_at` read 0 and `expires_at` the
/// seconds after `requested_at` (0 when the prompt never expires).
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    status: u16,
    content_type: &'static str,
    headers: Vec<(String, String)>,
    /// JSON, or the text of any other content type (or of an empty body).
    body: Value,
}

impl Seen {
    fn of(response: &Response) -> Seen {
        let body = match response.content_type == JSON && !response.body.is_empty() {
            true => timeless(response.json_body()),
            false => Value::from(String::from_utf8_lossy(&response.body)),
        };
        let headers = response.headers.iter();
        Seen {
            status: response.status,
            content_type: response.content_type,
            headers: headers.map(|(n, v)| (n.to_string(), v.clone())).collect(),
            body,
        }
    }

    fn with_header(mut self, name: &str, value: &str) -> Seen {
        self.headers.push((name.into(), value.into()));
        self
    }
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Seen {
            status,
            content_type,
            headers,
            body,
        } = self;
        write!(f, "{status} {content_type} {headers:?} {body}")
    }
}

const NOT_AN_ANSWER: &str = "response must be a string, a list of choices or a form's object";

fn timeless(mut value: Value) -> Value {
    match &mut value {
        Value::Object(fields) => {
            if let Some(at) = fields.get("requested_at").and_then(Value::as_f64) {
                let expires = fields["expires_at"].as_f64();
                let after = expires.map(|expires| ((expires - at) * 1000.0).round() / 1000.0);
                fields.insert("requested_at".into(), json!(0.0));
                fields.insert("expires_at".into(), json!(after));
            }
            if fields.get("granted_at").is_some_and(Value::is_f64) {
                fields.insert("granted_at".into(), json!(0.0));
            }
            fields.values_mut().for_each(|v| *v = timeless(v.take()));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| *v = timeless(v.take())),
        _ => {}
    }
    value
}

fn status(status: u16, body: Value) -> Seen {
    Seen {
        status,
        content_type: JSON,
        headers: Vec::new(),
        body,
    }
}

fn ok(body: Value) -> Seen {
    status(200, body)
}

fn error(code: u16, message: &str) -> Seen {
    status(code, json!({"error": message}))
}

/// A 403 and the hint it carries.
fn refused(message: &str, hint: &str) -> Seen {
    status(403, json!({"error": message, "hint": hint}))
}

/// The hint of a 403 whose page seems to be at `page`.
fn public_url_hint(page: &str) -> String {
    format!("if askgate's page is at {page}, start askgate with --public-url {page}")
}

const NULL_ORIGIN_HINT: &str = "a page whose Origin is null (a sandboxed frame, a local file, \
                                a redirect) cannot post to askgate: open askgate's own page";

fn bad(message: &str) -> Seen {
    error(400, message)
}

fn not_found(message: &str) -> Seen {
    error(404, message)
}

fn not_allowed() -> Seen {
    error(405, "method not allowed").with_header("Allow", "GET, POST")
}

fn stale(message: &str) -> Seen {
    status(409, json!({"ok": false, "error": message, "stale": true}))
}

fn unavailable() -> Seen {
    error(503, "too many open streams, try again later").with_header("Retry-After", "5")
}

/// A poll's answer: the body, and the queue's version as its `ETag`.
fn poll(pending: Value, pending_count: usize, version: u64) -> Seen {
    let body = json!({"pending": pending, "pending_count": pending_count, "version": version});
    ok(body).with_header("ETag", &format!("\"{version}\""))
}

// ---- checks ----

/// Everything a request could change: the state (any change moves the
/// version), the sessions and their queues, subscribers and places.
#[derive(Debug, PartialEq)]
struct Snapshot {
    counts: Counts,
    sessions: Vec<SessionSummary>,
    queues: Vec<Update>,
    places: [usize; 2],
}

impl Snapshot {
    fn of(app: &App) -> Snapshot {
        let sessions = app.hub.sessions();
        let names = sessions.iter().map(|s| s.session_id.as_str());
        let queues = names.flat_map(|s| Kind::ALL.map(|kind| app.hub.pending(s, kind)));
        Snapshot {
            counts: app.hub.counts(),
            queues: queues.collect(),
            sessions,
            places: [Place::Stream, Place::Parked].map(|p| app.admission.held(p)),
        }
    }
}

fn compare(what: &str, got: &Seen, expected: &Seen) {
    if got != expected {
        panic!("{what}\nexpected: {expected}\n     got: {got}");
    }
}

/// The reply to a request that must be answered at once.
fn at_once(app: &App, request: &Request) -> Response {
    match handle(app, request) {
        Reply::Done(response) => response,
        Reply::Park(_) => panic!("{} parked", describe(request)),
        Reply::Stream(_) => panic!("{} opened a stream", describe(request)),
    }
}

/// Sends `request` through the routes: it must be answered at once with
/// `expected`, and a refusal (4xx, 5xx) must change nothing.
fn check(app: &App, request: Request, expected: Seen) {
    let changes_nothing = expected.status >= 400;
    check_answer(app, request, expected, changes_nothing);
}

/// Like `check`, for an answer that must change nothing whatever its status.
fn check_changes_nothing(app: &App, request: Request, expected: Seen) {
    check_answer(app, request, expected, true);
}

fn check_answer(app: &App, request: Request, expected: Seen, changes_nothing: bool) {
    let before = Snapshot::of(app);
    let what = describe(&request);
    compare(&what, &Seen::of(&at_once(app, &request)), &expected);
    if changes_nothing {
        assert_eq!(Snapshot::of(app), before, "{what} changed something");
    }
}

fn check_all(app: &App, cases: Vec<(Request, Seen)>) {
    for (request, expected) in cases {
        check(app, request, expected);
    }
}

/// Submits a prompt; returns its id and the answer, with the id as sent.
fn submit(app: &App, kind: Kind, body: Value) -> (String, Seen) {
    let response = at_once(app, &post(&url(kind, "submit"), body));
    let id = response.json_body()[kind.id_field()]
        .as_str()
        .map(str::to_string);
    (id.unwrap_or_default(), Seen::of(&response))
}

/// Queues a prompt that must be accepted; returns its id.
fn queued(app: &App, kind: Kind, body: Value) -> String {
    let (id, seen) = submit(app, kind, body);
    assert_eq!((seen.status, id.len()), (200, kind.id_len()), "{seen}");
    id
}

/// A reply that must park, holding a place until its work has run.
fn park(app: &App, request: &Request) -> Parked {
    let held = app.admission.held(Place::Parked);
    let Reply::Park(work) = handle(app, request) else {
        panic!("{} did not park", describe(request));
    };
    assert_eq!(
        app.admission.held(Place::Parked),
        held + 1,
        "a place is held"
    );
    work
}

/// Runs parked work to its end; it gives its place back.
fn run(app: &App, work: Parked) -> Seen {
    let held = app.admission.held(Place::Parked);
    let parking = Parking {
        client_left: &|| false,
        early: None,
    };
    let seen = Seen::of(&work(&parking));
    assert_eq!(
        app.admission.held(Place::Parked),
        held - 1,
        "the place is back"
    );
    seen
}

/// The head entry of a queue, as the tables write it.
fn head(app: &App, session_id: &str, kind: Kind) -> Value {
    let update = app.hub.pending(session_id, kind);
    timeless(serde_json::from_str(update.pending_json()).expect("the head is JSON"))
}

/// A stream's writer, readable once the stream has ended.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Opens a stream, closes the hub so the stream ends after its first bytes,
/// and returns what it wrote (HTTP/1.0, so unchunked).
fn streamed(app: &App, request: Request) -> String {
    let Reply::Stream(work) = handle(app, &request) else {
        panic!("{} is not a stream", describe(&request));
    };
    app.hub.close();
    let buffer = Buffer::default();
    work(Box::new(buffer.clone()), false, None);
    assert_eq!(app.admission.held(Place::Stream), 0, "the place is back");
    assert_eq!(app.hub.counts().subscribers, 0, "the subscriber is gone");
    String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
}

const STREAM_HEAD: &str = "HTTP/1.0 200 OK\r\n\
    Content-Type: text/event-stream; charset=utf-8\r\n\
    Cache-Control: no-cache\r\n\
    X-Accel-Buffering: no\r\n\r\n";

const INVALID_SESSION: &str = "invalid session_id: 1 to 128 characters from A-Z a-z 0-9 . _ : -";

// ---- routing and bodies ----

#[test]
fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
    use Method::{Get, Head, Other, Post};
    let app = app(&[]);
    #[rustfmt::skip]
    let unknown = ["/nope", "/api", "/api/", "/api/nope", "/api/events/", "/api/bogus/pending",
        "/api/clarify", "/api/clarify/nope", "/api/approval/pending/more", "/api/rules/",
        "/api/rules/nope", "/api/rules/revoke/more"];
    let mut cases: Vec<_> = unknown
        .map(|path| (get(path), not_found("not found")))
        .into();
    for method in [Post, Other] {
        cases.push((Request::fake(method, "/nope", "{}"), not_found("not found")));
    }
    let mut wrong: Vec<(Method, String)> = vec![];
    for path in ["/healthz", "/metrics", "/"] {
        wrong.extend([Post, Other].map(|method| (method, path.into())));
    }
    for path in ["/api/events", "/api/sessions", "/api/config", "/api/rules"] {
        wrong.extend([Post, Head, Other].map(|method| (method, path.into())));
    }
    wrong.extend([Get, Head, Other].map(|method| (method, "/api/rules/revoke".into())));
    for kind in Kind::ALL {
        for action in ["pending", "stream", "wait"] {
            wrong.extend([Post, Head, Other].map(|method| (method, url(kind, action))));
        }
        for action in ["respond", "submit", "cancel"] {
            wrong.extend([Get, Head, Other].map(|method| (method, url(kind, action))));
        }
    }
    let wrong = wrong
        .into_iter()
        .map(|(method, path)| Request::fake(method, &path, "{}"));
    cases.extend(wrong.map(|request| (request, not_allowed())));
    check_all(&app, cases);
}

#[test]
fn bodies_that_are_not_json_objects_are_refused() {
    let app = app(&[]);
    queued(&app, Kind::Clarify, prompt(Kind::Clarify, json!({})));
    let not_object = "request body must be a JSON object";
    let mut cases = vec![];
    let urls = Kind::ALL.into_iter().flat_map(|kind| {
        let prompt = prompt(kind, json!({}));
        ["submit", "respond", "cancel"].map(|action| (url(kind, action), prompt.clone()))
    });
    let revoke = ("/api/rules/revoke".to_string(), json!({"rule_id": "r"}));
    for (url, body) in urls.chain([revoke]) {
        let raw = |body: &str| Request::fake(Method::Post, &url, body);
        #[rustfmt::skip]
        cases.extend([
            (post_not_json(&url), error(415, "request body must be application/json")),
            (too_large(post(&url, body.clone())), error(413, "request body too large")),
            (raw(""), bad("malformed JSON: EOF while parsing a value at line 1 column 0")),
            (raw(r#"{"session_id": "#), bad("malformed JSON: EOF while parsing a value at line 1 column 15")),
            (raw("{'session_id': 's'}"), bad("malformed JSON: key must be a string at line 1 column 2")),
            (raw("[1]"), bad(not_object)),
            (raw("null"), bad(not_object)),
            (raw(r#""s""#), bad(not_object)),
            (raw("7"), bad(not_object)),
        ]);
    }
    check_all(&app, cases);
}

/// docs/PROTOCOL.md "Order of checks": 413, Host, Origin, routing, 415,
/// 400, then the operation (409, 429, 503).
#[test]
fn checks_run_in_the_documented_order() {
    let app = app(&[
        "--max-pending",
        "1",
        "--max-streams",
        "0",
        "--max-parked",
        "0",
    ]);
    let id = queued(&app, Kind::Clarify, prompt(Kind::Clarify, json!({})));
    let foreign = |request| header(header(request, "Host", "evil.example"), "Origin", "null");
    let submit = url(Kind::Clarify, "submit");
    let other_id = "0".repeat(12);
    #[rustfmt::skip]
    let cases = vec![
        (too_large(foreign(get("/api/nope"))), error(413, "request body too large")),
        (foreign(post(&submit, prompt(Kind::Clarify, json!({})))), refused("host not allowed: evil.example", &public_url_hint("http://evil.example"))),
        (header(post("/nope", json!({})), "Origin", "null"), refused("origin not allowed: null", NULL_ORIGIN_HINT)),
        (post_not_json("/nope"), not_found("not found")),
        (post_not_json(&url(Kind::Clarify, "pending")), not_allowed()),
        (post_not_json(&submit), error(415, "request body must be application/json")),
        // The queue is full (429), the id is stale (409), no place is free (503).
        (post(&submit, prompt(Kind::Clarify, json!({"question": " "}))), bad("question is required")),
        (post(&url(Kind::Clarify, "respond"), answer(Kind::Clarify, json!({"clarify_id": other_id, "response": ""}))), bad("response is required")),
        (post(&url(Kind::Clarify, "cancel"), json!({"session_id": 7, "clarify_id": other_id})), bad("session_id must be a string")),
        (get("/api/events?session_id=a%2Fb"), bad(INVALID_SESSION)),
        (get(&format!("/api/clarify/wait?session_id=s&clarify_id={id}&timeout=x")), bad("invalid timeout: \"x\"")),
        (get("/api/clarify/pending?session_id=s&since=1&wait=61"), bad("wait must be between 0 and 60 seconds")),
    ];
    check_all(&app, cases);
}

// ---- validation, kind by kind ----

#[test]
fn submits_with_bad_fields_are_400_and_change_nothing() {
    let app = app(&[]);
    // Not the question below, which would be a duplicate (rule 9).
    queued(
        &app,
        Kind::Clarify,
        json!({"session_id": "s", "question": "Earlier?"}),
    );
    let timeout = "timeout_seconds must be a whole number of seconds, at most 2592000";
    let long = |n: usize| "x".repeat(n);
    let list = |n: usize| json!(vec!["k"; n]);
    let mut cases = vec![];
    for kind in Kind::ALL {
        let submit = |body| post(&url(kind, "submit"), body);
        #[rustfmt::skip]
        cases.extend([
            (submit(without(prompt(kind, json!({})), "session_id")), bad("session_id is required")),
            (submit(prompt(kind, json!({"session_id": null}))), bad("session_id is required")),
            (submit(prompt(kind, json!({"session_id": ""}))), bad("session_id is required")),
            (submit(prompt(kind, json!({"session_id": 7}))), bad("session_id must be a string")),
            (submit(prompt(kind, json!({"session_id": "a b"}))), bad(INVALID_SESSION)),
            (submit(prompt(kind, json!({"session_id": "a/b"}))), bad(INVALID_SESSION)),
            (submit(prompt(kind, json!({"session_id": long(129)}))), bad(INVALID_SESSION)),
            (submit(prompt(kind, json!({"timeout_seconds": 1.5}))), bad(timeout)),
            (submit(prompt(kind, json!({"timeout_seconds": "5"}))), bad(timeout)),
            (submit(prompt(kind, json!({"timeout_seconds": true}))), bad(timeout)),
            (submit(prompt(kind, json!({"timeout_seconds": 2_592_001}))), bad(timeout)),
            (submit(prompt(kind, json!({"timeout_seconds": 1e300}))), bad(timeout)),
        ]);
    }
    let clarify = |extra| post(&url(Kind::Clarify, "submit"), prompt(Kind::Clarify, extra));
    let choices =
        "choices must be a list of at most 16 non-empty strings of at most 256 characters";
    #[rustfmt::skip]
    cases.extend([
        (post("/api/clarify/submit", json!({"session_id": "s"})), bad("question is required")),
        (clarify(json!({"question": null})), bad("question is required")),
        (clarify(json!({"question": " \n "})), bad("question is required")),
        (clarify(json!({"question": 7})), bad("question must be a string")),
        (clarify(json!({"question": long(4097)})), bad("question is longer than 4096 bytes")),
        (clarify(json!({"question": "é".repeat(2049)})), bad("question is longer than 4096 bytes")),
        (clarify(json!({"choices": "a"})), bad(choices)),
        (clarify(json!({"choices": {"a": 1}})), bad(choices)),
        (clarify(json!({"choices": [1]})), bad(choices)),
        (clarify(json!({"choices": [""]})), bad(choices)),
        (clarify(json!({"choices": ["a", " "]})), bad(choices)),
        (clarify(json!({"choices": list(17)})), bad(choices)),
        (clarify(json!({"choices": [long(257)]})), bad(choices)),
    ]);
    let approval = |extra| {
        post(
            &url(Kind::Approval, "submit"),
            prompt(Kind::Approval, extra),
        )
    };
    let keys =
        "pattern_keys must be a list of at most 16 non-empty strings of at most 256 characters";
    #[rustfmt::skip]
    cases.extend([
        (post("/api/approval/submit", json!({"session_id": "s"})), bad("command is required")),
        (approval(json!({"command": null})), bad("command is required")),
        (approval(json!({"command": "  "})), bad("command is required")),
        (approval(json!({"command": ["ls"]})), bad("command must be a string")),
        (approval(json!({"command": long(8193)})), bad("command is longer than 8192 bytes")),
        (approval(json!({"description": 7})), bad("description must be a string")),
        (approval(json!({"description": long(4097)})), bad("description is longer than 4096 bytes")),
        (approval(json!({"pattern_keys": "k"})), bad(keys)),
        (approval(json!({"pattern_keys": [1]})), bad(keys)),
        (approval(json!({"pattern_keys": [""]})), bad(keys)),
        (approval(json!({"pattern_keys": list(17)})), bad(keys)),
        (approval(json!({"pattern_keys": [long(257)]})), bad(keys)),
    ]);
    check_all(&app, cases);
}

#[test]
fn submits_at_their_limits_are_accepted() {
    let app = app(&[]);
    #[rustfmt::skip]
    let cases = [
        (Kind::Clarify, json!({"session_id": "x".repeat(128), "question": "x".repeat(4096)})),
        (Kind::Clarify, json!({"session_id": "a.b_c:d-e", "choices": vec!["x".repeat(256); 16]})),
        (Kind::Clarify, json!({"choices": ["é".repeat(256)], "timeout_seconds": 2_592_000})),
        (Kind::Approval, json!({"command": "x".repeat(8192), "description": "x".repeat(4096)})),
        (Kind::Approval, json!({"pattern_keys": vec!["k"; 16], "timeout_seconds": null})),
    ];
    for (kind, extra) in cases {
        queued(&app, kind, prompt(kind, extra));
    }
    let id = queued(
        &app,
        Kind::Clarify,
        json!({"session_id": "t", "question": "Now?", "timeout_seconds": 5.0}),
    );
    let entry = json!({"agent_name": "agent", "choices_offered": [], "clarify_id": id, "expires_at": 5.0,
        "kind": "clarify", "question": "Now?", "requested_at": 0.0, "session_id": "t",
        "timeout_seconds": 5});
    check(
        &app,
        get("/api/clarify/pending?session_id=t"),
        poll(entry, 1, 6),
    );
    let body = json!({"session_id": "t", "command": "reboot", "timeout_seconds": -1});
    let id = queued(&app, Kind::Approval, body);
    let entry = json!({"agent_name": "agent", "approval_id": id, "command": "reboot", "description": "",
        "action": {"type": "command", "command": "reboot"},
        "expires_at": null, "kind": "approval", "pattern_key": "", "pattern_keys": [],
        "requested_at": 0.0, "session_id": "t", "timeout_seconds": -1});
    check(
        &app,
        get("/api/approval/pending?session_id=t"),
        poll(entry, 1, 7),
    );
}

#[test]
fn responds_with_bad_fields_are_400_and_change_nothing() {
    let app = app(&[]);
    for kind in Kind::ALL {
        queued(&app, kind, prompt(kind, json!({})));
    }
    let mut cases = vec![];
    for kind in Kind::ALL {
        let respond = |body| post(&url(kind, "respond"), body);
        let id_field = kind.id_field();
        let not_string = format!("{id_field} must be a string");
        #[rustfmt::skip]
        cases.extend([
            (respond(without(answer(kind, json!({})), "session_id")), bad("session_id is required")),
            (respond(answer(kind, json!({"session_id": null}))), bad("session_id is required")),
            (respond(answer(kind, json!({"session_id": ""}))), bad("session_id is required")),
            (respond(answer(kind, json!({"session_id": ["s"]}))), bad("session_id must be a string")),
            (respond(answer(kind, json!({"session_id": "a b"}))), bad(INVALID_SESSION)),
            (respond(answer(kind, json!({id_field: 7}))), bad(&not_string)),
            (respond(answer(kind, json!({id_field: {}}))), bad(&not_string)),
        ]);
    }
    let clarify = |body| post(&url(Kind::Clarify, "respond"), body);
    #[rustfmt::skip]
    cases.extend([
        (clarify(json!({"session_id": "s"})), bad("response is required")),
        (clarify(json!({"session_id": "s", "response": null})), bad("response is required")),
        (clarify(json!({"session_id": "s", "response": " \n "})), bad("response is required")),
        (clarify(json!({"session_id": "s", "answer": ""})), bad("response is required")),
        (clarify(json!({"session_id": "s", "choice": "\t"})), bad("response is required")),
        (clarify(json!({"session_id": "s", "response": 7})), bad(NOT_AN_ANSWER)),
        (clarify(json!({"session_id": "s", "answer": true})), bad(NOT_AN_ANSWER)),
        (clarify(json!({"session_id": "s", "choice": [1]})), bad("response must be a list of the choices picked")),
    ]);
    let approval = |extra| {
        post(
            &url(Kind::Approval, "respond"),
            answer(Kind::Approval, extra),
        )
    };
    let not_prefix = "scope must be a prefix of the command that ends at a word boundary";
    const SHAPE: &str = r#"scope must be a string, {"prefix": <string>, "options": <boolean>}, {"tool": <string>}, {"url_prefix": <string>} or {"directory": <string>}"#;
    let runs_others = "a prefix may not end at `git`: it runs other programs or code, so the prefix must also name what it runs (docs/PROTOCOL.md §3.2); pick a longer prefix or the exact command";
    #[rustfmt::skip]
    cases.extend([
        (approval(json!({"choice": "maybe"})), bad("Invalid choice: maybe")),
        (approval(json!({"choice": ""})), bad("Invalid choice: ")),
        (approval(json!({"choice": "ONCE"})), bad("Invalid choice: ONCE")),
        (approval(json!({"choice": 3})), bad("Invalid choice: 3")),
        (approval(json!({"choice": true})), bad("Invalid choice: true")),
        (approval(json!({"choice": {"a": 1}})), bad(r#"Invalid choice: {"a":1}"#)),
        (approval(json!({"scope": 7})), bad(SHAPE)),
        (approval(json!({"choice": "always", "scope": {"prefix": 7}})), bad("scope.prefix must be a string")),
        (approval(json!({"choice": "always", "scope": {"exact": "git push origin main"}})), bad(SHAPE)),
        (approval(json!({"choice": "always", "scope": {"prefix": "git push", "tool": "x"}})), bad(SHAPE)),
        (approval(json!({"choice": "always", "scope": {"tool": 7}})), bad("scope.tool must be a string")),
        (approval(json!({"choice": "always", "scope": {"url_prefix": null}})), bad("scope.url_prefix must be a string")),
        (approval(json!({"choice": "always", "scope": {"directory": ["/"]}})), bad("scope.directory must be a string")),
        (approval(json!({"choice": "always", "scope": {"tool": "git"}})), bad("a tool scope applies only to tool actions, not to this command action")),
        (approval(json!({"choice": "once", "scope": {"directory": "/src/"}})), bad("scope applies only to the session and always choices")),
        (approval(json!({"choice": "always", "scope": {"prefix": "git push", "options": "yes"}})), bad("scope.options must be true or false")),
        (approval(json!({"choice": "always", "scope": {"prefix": "git", "options": true}})), bad(runs_others)),
        (approval(json!({"choice": "session", "scope": "git"})), bad(runs_others)),
        (approval(json!({"choice": "once", "scope": "git push"})), bad("scope applies only to the session and always choices")),
        (approval(json!({"scope": "git push"})), bad("scope applies only to the session and always choices")),
        (approval(json!({"choice": "session", "scope": "rm"})), bad(not_prefix)),
        (approval(json!({"choice": "session", "scope": "git pu"})), bad(not_prefix)),
        (approval(json!({"choice": "always", "scope": " "})), bad(rules::NOT_PLAIN)),
        (approval(json!({"choice": "always", "scope": "git push origin main --force"})), bad(not_prefix)),
    ]);
    check_all(&app, cases);
}

#[test]
fn acts_answer_once_and_bad_ones_are_refused_changing_nothing() {
    use crate::notify::capability::{Claim, HEADER};
    let app = app(&[]);
    let id = queued(&app, Kind::Approval, prompt(Kind::Approval, json!({})));
    let claim = Claim {
        session_id: "s",
        kind: Kind::Approval,
        id: &id,
        choice: "deny",
    };
    let capability = app.capabilities.mint(&claim, 0).unwrap();
    let act = |body: Value, capability: &str| header(post("/api/act", body), HEADER, capability);
    let body = json!({"session_id": "s", "approval_id": id, "choice": "deny"});
    let hint = "use the notification's button as it came; each answers its own prompt once";
    let forged = |message| refused(message, hint);
    let one_id = "name the prompt by one clarify_id or approval_id";
    let clarify_id = "0".repeat(12);
    #[rustfmt::skip]
    let cases = vec![
        (post("/api/act", body.clone()), error(401, "authentication required").with_header("WWW-Authenticate", "Bearer")),
        (act(without(body.clone(), "session_id"), &capability), bad("session_id is required")),
        (act(without(body.clone(), "approval_id"), &capability), bad(one_id)),
        (act(with(body.clone(), json!({"clarify_id": clarify_id})), &capability), bad(one_id)),
        (act(with(body.clone(), json!({"approval_id": 7})), &capability), bad(one_id)),
        (act(with(body.clone(), json!({"approval_id": "abc"})), &capability), bad("invalid approval_id: 32 lowercase hex characters")),
        (act(without(body.clone(), "choice"), &capability), bad("choice is required")),
        (act(with(body.clone(), json!({"choice": 1})), &capability), bad("choice must be a string")),
        (act(body.clone(), "v1.0.00"), forged("malformed capability")),
        (act(with(body.clone(), json!({"choice": "once"})), &capability), forged("the capability does not match this prompt and choice")),
        (act(with(body.clone(), json!({"choice": "always"})), &capability), forged("a capability never grants a rule")),
        (act(with(body.clone(), json!({"session_id": "t"})), &capability), forged("the capability does not match this prompt and choice")),
    ];
    check_all(&app, cases);
    check(
        &app,
        act(body.clone(), &capability),
        ok(json!({"ok": true, "choice": "deny"})),
    );
    check(
        &app,
        act(body, &capability),
        stale("the capability has been used"),
    );
}

#[test]
fn cancels_with_bad_fields_are_400_and_change_nothing() {
    let app = app(&[]);
    let mut cases = vec![];
    for kind in Kind::ALL {
        queued(&app, kind, prompt(kind, json!({})));
        let cancel = |body| post(&url(kind, "cancel"), body);
        let id_field = kind.id_field();
        #[rustfmt::skip]
        cases.extend([
            (cancel(json!({})), bad("session_id is required")),
            (cancel(json!({"session_id": null})), bad("session_id is required")),
            (cancel(json!({"session_id": ""})), bad("session_id is required")),
            (cancel(json!({"session_id": 1.5})), bad("session_id must be a string")),
            (cancel(json!({"session_id": "s\n"})), bad(INVALID_SESSION)),
            (cancel(json!({"session_id": "s", id_field: 7})), bad(&format!("{id_field} must be a string"))),
        ]);
    }
    check_all(&app, cases);
}

#[test]
fn waits_polls_and_streams_with_bad_parameters_are_400() {
    let app = app(&[]);
    let between = |name: &str| bad(&format!("{name} must be between 0 and 60 seconds"));
    let mut cases = vec![];
    for kind in Kind::ALL {
        let (k, id_field, len) = (kind.as_str(), kind.id_field(), kind.id_len());
        let id = queued(&app, kind, prompt(kind, json!({})));
        let wait = |query: &str| get(&format!("/api/{k}/wait?{query}"));
        let valid = format!("session_id=s&{id_field}={id}");
        let invalid_id = format!("invalid {id_field}: {len} lowercase hex characters");
        let other_len = 44 - len;
        #[rustfmt::skip]
        cases.extend([
            (wait(""), bad("session_id is required")),
            (wait(&format!("{id_field}={id}")), bad("session_id is required")),
            (wait(&format!("session_id=&{id_field}={id}")), bad(INVALID_SESSION)),
            (wait(&format!("session_id=a%2Fb&{id_field}={id}")), bad(INVALID_SESSION)),
            (wait("session_id=s"), bad(&format!("{id_field} is required"))),
            (wait(&format!("session_id=s&{id_field}=")), bad(&invalid_id)),
            (wait(&format!("session_id=s&{id_field}=xyz")), bad(&invalid_id)),
            (wait(&format!("session_id=s&{id_field}={}", "A".repeat(len))), bad(&invalid_id)),
            (wait(&format!("session_id=s&{id_field}={}", "0".repeat(other_len))), bad(&invalid_id)),
            (wait(&format!("{valid}&timeout=x")), bad("invalid timeout: \"x\"")),
            (wait(&format!("{valid}&timeout=")), bad("invalid timeout: \"\"")),
            (wait(&format!("{valid}&timeout=61")), between("timeout")),
            (wait(&format!("{valid}&timeout=-1")), between("timeout")),
            (wait(&format!("{valid}&timeout=NaN")), between("timeout")),
            (wait(&format!("{valid}&timeout=inf")), between("timeout")),
            (wait(&format!("session_id=s&{id_field}={}&timeout=0", "0".repeat(len))), not_found(&format!("no such {k}"))),
            (wait(&format!("session_id=other&{id_field}={id}&timeout=0")), not_found(&format!("no such {k}"))),
        ]);
        let pending = |query: &str| get(&format!("/api/{k}/pending?{query}"));
        #[rustfmt::skip]
        cases.extend([
            (pending("session_id="), bad(INVALID_SESSION)),
            (pending("session_id=a+b"), bad(INVALID_SESSION)),
            (pending("session_id=s&since=x"), bad("invalid since: \"x\"")),
            (pending("session_id=s&since=-1"), bad("invalid since: \"-1\"")),
            (pending("session_id=s&since=1.5&wait=1"), bad("invalid since: \"1.5\"")),
            (pending("session_id=s&wait=x"), bad("invalid wait: \"x\"")),
            (pending("session_id=s&since=1&wait=61"), between("wait")),
            (pending("session_id=s&since=1&wait=-0.5"), between("wait")),
            (pending("session_id=s&wait=NaN"), between("wait")),
            (get(&format!("/api/{k}/stream")), bad("session_id is required")),
            (get(&format!("/api/{k}/stream?session_id=")), bad(INVALID_SESSION)),
            (get(&format!("/api/{k}/stream?session_id=%C3%A9")), bad(INVALID_SESSION)),
        ]);
    }
    let many: Vec<String> = (0..65).map(|n| format!("session_id=s{n}")).collect();
    #[rustfmt::skip]
    cases.extend([
        (get("/api/events?session_id="), bad(INVALID_SESSION)),
        (get("/api/events?session_id=s&session_id=a%2Fb"), bad(INVALID_SESSION)),
        (get(&format!("/api/events?{}", many.join("&"))), bad("at most 64 session_id parameters")),
    ]);
    check_all(&app, cases);
}

// ---- the Host and Origin checks (docs/PROTOCOL.md §7) ----

#[test]
fn on_loopback_the_api_answers_only_local_host_names() {
    let app = app(&[]);
    let submit = || post("/api/clarify/submit", prompt(Kind::Clarify, json!({})));
    let health = Seen {
        content_type: "text/plain; charset=utf-8",
        ..ok(json!("ok"))
    };
    let mut cases = vec![];
    for host in [
        "evil.example",
        "evil.example:8787",
        "localhost.evil",
        "127.0.0.1.nip.io",
    ] {
        let page = format!("http://{host}");
        let refused = || {
            refused(
                &format!("host not allowed: {host}"),
                &public_url_hint(&page),
            )
        };
        cases.push((header(get("/api/sessions"), "Host", host), refused()));
        cases.push((header(submit(), "Host", host), refused()));
        cases.push((header(get("/healthz"), "Host", host), health.clone()));
    }
    #[rustfmt::skip]
    let local = ["localhost", "localhost:8787", "LocalHost:1", "app.localhost:8787",
        "127.0.0.1:8787", "[::1]:8787", "[::1]", "10.1.2.3"];
    for host in local {
        cases.push((
            header(get("/api/sessions"), "Host", host),
            ok(json!({"sessions": []})),
        ));
    }
    cases.push((get("/api/sessions"), ok(json!({"sessions": []}))));
    check_all(&app, cases);

    let anywhere = App::new(Config::parse(&[], |_| None).unwrap(), false);
    let request = header(get("/api/sessions"), "Host", "askgate.example");
    check(&anywhere, request, ok(json!({"sessions": []})));
}

#[test]
fn posts_from_a_foreign_origin_are_403_and_change_nothing() {
    let app = app(&[
        "--allow-origin",
        "https://askgate.example,http://other.example/",
    ]);
    let own = |request| header(request, "Host", "127.0.0.1:8787");
    let from = |origin: &str, request| header(own(request), "Origin", origin);
    let cancel = || post("/api/clarify/cancel", json!({"session_id": "s"}));
    let submit = || post("/api/clarify/submit", prompt(Kind::Clarify, json!({})));
    let passed = || ok(json!({"cancelled": [], "ok": true}));
    let refused = |origin: &str| match origin {
        "null" => refused("origin not allowed: null", NULL_ORIGIN_HINT),
        "askgate.example" => refused(
            "origin not allowed: askgate.example",
            "a page whose Origin is askgate.example (a sandboxed frame, a local file, \
             a redirect) cannot post to askgate: open askgate's own page",
        ),
        origin => refused(
            &format!("origin not allowed: {origin}"),
            &public_url_hint(origin),
        ),
    };
    #[rustfmt::skip]
    let cases = vec![
        (from("http://evil.example", submit()), refused("http://evil.example")),
        (from("null", submit()), refused("null")),
        (from("http://127.0.0.1:8788", submit()), refused("http://127.0.0.1:8788")),
        (from("https://askgate.example.evil", cancel()), refused("https://askgate.example.evil")),
        (from("askgate.example", cancel()), refused("askgate.example")),
        // Without a `Host`, no origin is the server's own.
        (header(submit(), "Origin", "http://127.0.0.1:8787"), refused("http://127.0.0.1:8787")),
        (from("http://evil.example", post("/nope", json!({}))), refused("http://evil.example")),
        (from("http://evil.example", post("/healthz", json!({}))), refused("http://evil.example")),
        (from("http://evil.example", post("/api/rules/revoke", json!({"rule_id": "r"}))), refused("http://evil.example")),
        (cancel(), passed()),
        (own(cancel()), passed()),
        (from("http://127.0.0.1:8787", cancel()), passed()),
        (from("http://127.0.0.1:8787/", cancel()), passed()),
        (from("https://askgate.example", cancel()), passed()),
        (from("https://askgate.example/", cancel()), passed()),
        (from("http://other.example", cancel()), passed()),
        (from("http://evil.example", get("/api/sessions")), ok(json!({"sessions": []}))),
    ];
    check_all(&app, cases);
}

// ---- happy paths: the exact bodies ----

#[test]
fn a_clarify_is_submitted_polled_answered_and_collected() {
    let app = app(&[]);
    let body = json!({"session_id": "s1", "question": "Which database?",
        "choices": ["postgres", "sqlite"], "timeout_seconds": 120});
    let (id, seen) = submit(&app, Kind::Clarify, body.clone());
    compare(
        "submit",
        &seen,
        &ok(json!({"clarify_id": id, "deduped": false, "pending_count": 1})),
    );
    // Rule 9: the same question and choices, whatever the timeout.
    let again = post(
        "/api/clarify/submit",
        with(body, json!({"timeout_seconds": 5})),
    );
    let deduped = ok(json!({"clarify_id": id, "deduped": true, "pending_count": 1}));
    check_changes_nothing(&app, again, deduped);
    let wait = |query: &str| {
        get(&format!(
            "/api/clarify/wait?session_id=s1&clarify_id={id}{query}"
        ))
    };
    check_changes_nothing(&app, wait("&timeout=0"), ok(json!({"status": "pending"})));
    let entry = json!({"agent_name": "agent", "choices_offered": ["postgres", "sqlite"], "clarify_id": id,
        "expires_at": 120.0, "kind": "clarify", "question": "Which database?",
        "requested_at": 0.0, "session_id": "s1", "timeout_seconds": 120});
    let summary = json!({"approval_count": 0, "attention": "clarify", "clarify_count": 1,
        "session_id": "s1", "version": 1});
    let respond = |body| post("/api/clarify/respond", body);
    let answer = json!({"session_id": "s1", "clarify_id": id, "response": " postgres "});
    let collected = || ok(json!({"response": "postgres", "status": "answered"}));
    let zeros = "0".repeat(32);
    #[rustfmt::skip]
    let steps = vec![
        (get("/api/clarify/pending?session_id=s1"), poll(entry, 1, 1)),
        (get("/api/approval/pending?session_id=s1"), poll(Value::Null, 0, 0)),
        (get("/api/sessions"), ok(json!({"sessions": [summary]}))),
        (respond(answer.clone()), ok(json!({"ok": true, "response": "postgres"}))),
        (wait("&timeout=0"), collected()),
        // Known outcomes are answered at once, whatever the timeout.
        (wait("&timeout=25"), collected()),
        (wait(""), collected()),
        (get("/api/clarify/pending?session_id=s1"), poll(Value::Null, 0, 2)),
        (respond(answer), stale("clarify is no longer pending")),
        (respond(json!({"session_id": "s1", "response": "x"})), stale("no clarify is pending")),
        (get(&format!("/api/clarify/wait?session_id=s2&clarify_id={id}")), not_found("no such clarify")),
        (get(&format!("/api/approval/wait?session_id=s1&approval_id={zeros}")), not_found("no such approval")),
    ];
    check_all(&app, steps);
}

#[test]
fn a_clarify_answer_may_name_any_entry_and_come_in_any_of_three_fields() {
    let app = app(&[]);
    let ask = |question| queued(&app, Kind::Clarify, prompt(Kind::Clarify, question));
    let ids = [
        json!({"question": "a?"}),
        json!({"question": "b?"}),
        json!({"question": "c?"}),
    ];
    let ids = ids.map(ask);
    let respond = |extra| {
        post(
            "/api/clarify/respond",
            with(json!({"session_id": "s"}), extra),
        )
    };
    let answered = |text: &str| ok(json!({"ok": true, "response": text}));
    let wait = |id: &str| get(&format!("/api/clarify/wait?session_id=s&clarify_id={id}"));
    let collected = |text: &str| ok(json!({"response": text, "status": "answered"}));
    #[rustfmt::skip]
    let steps = vec![
        (respond(json!({"clarify_id": ids[1], "answer": "second"})), answered("second")),
        (respond(json!({"clarify_id": "", "choice": " first\n"})), answered("first")),
        (respond(json!({"response": "one", "answer": "two", "choice": "three"})), answered("one")),
        (wait(&ids[0]), collected("first")),
        (wait(&ids[1]), collected("second")),
        (wait(&ids[2]), collected("one")),
    ];
    check_all(&app, steps);
}

#[test]
fn an_approval_is_answered_and_stale_answers_say_what_they_did() {
    let app = app(&[]);
    let body = json!({"session_id": "s1", "command": "rm -rf /tmp/build",
        "description": "clean the build tree", "pattern_keys": ["rm -rf /tmp/build"]});
    let (first, seen) = submit(&app, Kind::Approval, body.clone());
    compare(
        "submit",
        &seen,
        &ok(json!({"approval_id": first, "pending_count": 1})),
    );
    // Approvals are never de-duplicated.
    let (second, seen) = submit(&app, Kind::Approval, body);
    compare(
        "again",
        &seen,
        &ok(json!({"approval_id": second, "pending_count": 2})),
    );
    let entry = json!({"agent_name": "agent", "approval_id": first, "command": "rm -rf /tmp/build",
        "action": {"type": "command", "command": "rm -rf /tmp/build"},
        "description": "clean the build tree", "expires_at": 900.0, "kind": "approval",
        "pattern_key": "rm -rf /tmp/build", "pattern_keys": ["rm -rf /tmp/build"],
        "requested_at": 0.0, "session_id": "s1", "timeout_seconds": 900});
    let summary = json!({"approval_count": 2, "attention": "approval", "clarify_count": 0,
        "session_id": "s1", "version": 2});
    let respond = |extra| {
        post(
            "/api/approval/respond",
            with(json!({"session_id": "s1"}), extra),
        )
    };
    let wait = |id: &str| {
        get(&format!(
            "/api/approval/wait?session_id=s1&approval_id={id}"
        ))
    };
    let once = || json!({"approval_id": second, "choice": "once"});
    let collected = |choice: &str| ok(json!({"choice": choice, "status": "answered"}));
    #[rustfmt::skip]
    let steps = vec![
        (get("/api/approval/pending?session_id=s1"), poll(entry, 2, 2)),
        (get("/api/sessions"), ok(json!({"sessions": [summary]}))),
        (respond(once()), ok(json!({"choice": "once", "ok": true}))),
        (wait(&second), collected("once")),
    ];
    check_all(&app, steps);
    // Stale while another is pending: nothing is resolved.
    check_changes_nothing(
        &app,
        respond(once()),
        ok(json!({"choice": "once", "ok": false})),
    );
    // No choice is a deny, of the head.
    let deny = ok(json!({"choice": "deny", "ok": true}));
    check(&app, respond(json!({"choice": null})), deny);
    check(&app, wait(&first), collected("deny"));
    // Stale with nothing pending: the page may clear its card.
    let cleared = |choice: &str| ok(json!({"choice": choice, "ok": true, "stale_cleared": true}));
    check_changes_nothing(&app, respond(once()), cleared("once"));
    check_changes_nothing(
        &app,
        respond(json!({"choice": "always"})),
        cleared("always"),
    );
    let elsewhere = post("/api/approval/respond", json!({"session_id": "nobody"}));
    check_changes_nothing(&app, elsewhere, cleared("deny"));
}

#[test]
fn a_rule_answers_later_submits_of_what_the_human_chose() {
    let app = app(&[]);
    let ask = |session: &str, command: &str| json!({"session_id": session, "command": command});
    let respond = |id: &str, extra| {
        post(
            "/api/approval/respond",
            with(json!({"session_id": "s1", "approval_id": id}), extra),
        )
    };
    let auto = |id: &str, choice: &str| {
        ok(json!({"approval_id": id, "auto": true, "choice": choice, "status": "answered"}))
    };
    let main = queued(&app, Kind::Approval, ask("s1", "git push origin main"));
    let session = ok(json!({"choice": "session", "ok": true}));
    check(&app, respond(&main, json!({"choice": "session"})), session);
    let (again, seen) = submit(&app, Kind::Approval, ask("s1", "git push origin main"));
    compare("the same command, again", &seen, &auto(&again, "session"));
    let wait = format!("/api/approval/wait?session_id=s1&approval_id={again}");
    check(
        &app,
        get(&wait),
        ok(json!({"choice": "session", "status": "answered"})),
    );
    // A session rule covers its own session, and the exact command only.
    queued(&app, Kind::Approval, ask("s2", "git push origin main"));
    let dev = queued(&app, Kind::Approval, ask("s1", "git push origin dev"));
    let prefix = json!({"choice": "always", "scope": "git push "});
    check(
        &app,
        respond(&dev, prefix),
        ok(json!({"choice": "always", "ok": true})),
    );
    let (other, seen) = submit(&app, Kind::Approval, ask("s3", "git push origin other"));
    compare("under the prefix", &seen, &auto(&other, "always"));
    for command in ["git push; rm -rf /", "git pushx", "git pull"] {
        queued(&app, Kind::Approval, ask("s3", command));
    }
}

#[test]
fn rules_are_listed_with_where_they_came_from_and_revoked_by_id() {
    let app = app(&[]);
    let ask = |session: &str, command: &str| json!({"session_id": session, "command": command});
    let respond = |session: &str, id: &str, extra| {
        let body = json!({"session_id": session, "approval_id": id});
        post("/api/approval/respond", with(body, extra))
    };
    let revoke = |body| post("/api/rules/revoke", body);
    let listed = |rules: Vec<Value>| ok(json!({ "rules": rules }));
    check(&app, get("/api/rules"), listed(vec![]));

    let main = queued(&app, Kind::Approval, ask("s1", "git push origin main"));
    let dev = queued(&app, Kind::Approval, ask("s2", "git push origin dev"));
    let answered = |choice| ok(json!({"choice": choice, "ok": true}));
    let prefix = json!({"choice": "always", "scope": "git push"});
    check(&app, respond("s2", &dev, prefix), answered("always"));
    let session = json!({"choice": "session"});
    check(&app, respond("s1", &main, session), answered("session"));
    #[rustfmt::skip]
    let session_rule = json!({"rule_id": main, "scope": {"exact": "git push origin main"},
        "lifetime": "session", "session_id": "s1", "granted_at": 0.0, "command": "git push origin main",
        "covers": "exactly this command"});
    #[rustfmt::skip]
    let always_rule = json!({"rule_id": dev, "scope": {"prefix": "git push"},
        "lifetime": "always", "session_id": null, "granted_at": 0.0, "command": "git push origin dev",
        "covers": "commands starting with this prefix, then only plain words that are not options"});
    let both = listed(vec![always_rule, session_rule.clone()]);
    check_changes_nothing(&app, get("/api/rules"), both);

    let no_such_rule = not_found("no such rule");
    #[rustfmt::skip]
    check_all(&app, vec![
        (revoke(json!({})), bad("rule_id is required")),
        (revoke(json!({"rule_id": null})), bad("rule_id is required")),
        (revoke(json!({"rule_id": ""})), bad("rule_id is required")),
        (revoke(json!({"rule_id": 7})), bad("rule_id must be a string")),
        (revoke(json!({"rule_id": ["x"]})), bad("rule_id must be a string")),
        (revoke(json!({"rule_id": "0".repeat(32)})), no_such_rule.clone()),
        (revoke(json!({"rule_id": dev.to_uppercase()})), no_such_rule.clone()),
        (revoke(json!({"rule_id": dev})), ok(json!({"ok": true}))),
        (revoke(json!({"rule_id": dev})), no_such_rule),
        (get("/api/rules"), listed(vec![session_rule])),
    ]);
    let (_, seen) = submit(&app, Kind::Approval, ask("s3", "git push origin dev"));
    assert_eq!(
        seen.body["pending_count"], 1,
        "a revoked rule answers nothing: {seen}"
    );
}

#[test]
fn cancel_lists_what_it_cancelled_and_a_stale_id_is_409() {
    let app = app(&[]);
    for kind in Kind::ALL {
        let (k, id_field) = (kind.as_str(), kind.id_field());
        let [one, two] = ["one", "two"].map(|text| {
            let extra = match kind {
                Kind::Clarify => json!({"question": text}),
                Kind::Approval => json!({"command": text}),
            };
            queued(&app, kind, prompt(kind, extra))
        });
        let cancel = |extra| {
            post(
                &url(kind, "cancel"),
                with(json!({"session_id": "s"}), extra),
            )
        };
        let cancelled = |ids: &[&str]| ok(json!({"cancelled": ids, "ok": true}));
        let gone = format!("{k} is no longer pending");
        let wait = |id: &str| get(&format!("/api/{k}/wait?session_id=s&{id_field}={id}"));
        #[rustfmt::skip]
        let steps = vec![
            (cancel(json!({id_field: two})), cancelled(&[&two])),
            (cancel(json!({id_field: two})), stale(&gone)),
            (cancel(json!({id_field: "0".repeat(kind.id_len())})), stale(&gone)),
            (cancel(json!({"session_id": "other", id_field: one})), stale(&gone)),
            (cancel(json!({id_field: ""})), cancelled(&[&one])),
            (wait(&one), ok(json!({"status": "cancelled"}))),
            (wait(&two), ok(json!({"status": "cancelled"}))),
        ];
        check_all(&app, steps);
        check_changes_nothing(&app, cancel(json!({})), cancelled(&[]));
    }
}

#[test]
fn polls_honour_if_none_match_unless_they_wait() {
    let app = app(&[]);
    queued(&app, Kind::Clarify, prompt(Kind::Clarify, json!({})));
    let current = || poll(head(&app, "s", Kind::Clarify), 1, 1);
    let not_modified = || status(304, json!("")).with_header("ETag", "\"1\"");
    let tagged = |query: &str, tag: &str| {
        header(
            get(&format!("/api/clarify/pending?{query}")),
            "If-None-Match",
            tag,
        )
    };
    #[rustfmt::skip]
    let cases = vec![
        (tagged("session_id=s", "\"1\""), not_modified()),
        (tagged("session_id=s", "W/\"1\""), not_modified()),
        (tagged("session_id=s", "\"0\", \"1\""), not_modified()),
        (tagged("session_id=s", "*"), not_modified()),
        (tagged("session_id=s&since=1&wait=0", "\"1\""), not_modified()),
        (tagged("session_id=s", "\"0\""), current()),
        (tagged("session_id=s", "1"), current()),
        // A long-poll ignores If-None-Match; this one is answered at once.
        (tagged("session_id=s&since=0&wait=30", "\"1\""), current()),
        // Without a session: the empty answer, whatever else is asked.
        (tagged("", "\"0\""), poll(Value::Null, 0, 0)),
        (tagged("since=x&wait=x", "*"), poll(Value::Null, 0, 0)),
    ];
    check_all(&app, cases);
}

#[test]
fn operational_routes_answer() {
    let app = app(&["--keepalive-secs", "15"]);
    let text = Seen {
        content_type: "text/plain; charset=utf-8",
        ..ok(json!("ok"))
    };
    #[rustfmt::skip]
    let cases = vec![
        (get("/healthz"), text.clone()),
        (Request::fake(Method::Head, "/healthz", ""), text),
        (get("/api/config"), ok(json!({
            "keepalive_secs": 15.0,
            "auth": false,
            "rule_runners": rules::RUNNERS.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
            "deny_reasons": [],
            "read_only_tools": {
                "claude-code": crate::hooks::claude_code::READ_ONLY,
                "codex": crate::hooks::codex::READ_ONLY,
                "gemini": crate::hooks::gemini::READ_ONLY,
                "hermes": crate::hooks::hermes::READ_ONLY,
            },
        }))),
        (get("/api/sessions"), ok(json!({"sessions": []}))),
        (get("/nope.js"), not_found("not found")),
    ];
    check_all(&app, cases);
    let metrics = at_once(&app, &get("/metrics"));
    let body = String::from_utf8_lossy(&metrics.body);
    assert_eq!(
        metrics.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(body.contains("\naskgate_version 0\n"), "{body}");
    let page = at_once(&app, &get("/"));
    assert_eq!(
        (page.status, page.content_type),
        (200, "text/html; charset=utf-8")
    );
}

// ---- limits: 429 and 503 ----

#[test]
fn full_queues_are_429_and_change_nothing() {
    let app = app(&["--max-pending", "1"]);
    for kind in Kind::ALL {
        queued(&app, kind, prompt(kind, json!({})));
    }
    let request = |kind, extra| post(&url(kind, "submit"), prompt(kind, extra));
    let full = |k: &str| {
        error(
            429,
            &format!("too many pending {k} prompts in this session (limit 1)"),
        )
    };
    check(
        &app,
        request(Kind::Clarify, json!({"question": "Other?"})),
        full("clarify"),
    );
    check(&app, request(Kind::Approval, json!({})), full("approval"));
    // Rule 9: a duplicate is answered even when its queue is full.
    let (_, seen) = submit(&app, Kind::Clarify, prompt(Kind::Clarify, json!({})));
    assert_eq!(
        (seen.status, &seen.body["deduped"]),
        (200, &json!(true)),
        "{seen}"
    );

    let app = self::app(&["--max-prompts", "1"]);
    queued(&app, Kind::Clarify, prompt(Kind::Clarify, json!({})));
    let elsewhere = request(Kind::Approval, json!({"session_id": "s2"}));
    check(
        &app,
        elsewhere,
        error(429, "too many pending prompts (limit 1)"),
    );

    let app = self::app(&["--max-sessions", "1"]);
    let id = queued(&app, Kind::Clarify, prompt(Kind::Clarify, json!({})));
    let elsewhere = || request(Kind::Clarify, json!({"session_id": "s2"}));
    check(&app, elsewhere(), error(429, "too many sessions (limit 1)"));
    // Once `s` is idle, it makes room.
    let cancel = post("/api/clarify/cancel", json!({"session_id": "s"}));
    check(&app, cancel, ok(json!({"cancelled": [id], "ok": true})));
    queued(
        &app,
        Kind::Clarify,
        prompt(Kind::Clarify, json!({"session_id": "s2"})),
    );
}

#[test]
fn without_a_free_place_waits_and_streams_are_503_unless_answered_at_once() {
    let app = app(&["--max-streams", "0", "--max-parked", "0"]);
    let id = queued(&app, Kind::Clarify, prompt(Kind::Clarify, json!({})));
    let wait = |query: &str| get(&format!("/api/clarify/wait?session_id=s{query}"));
    let zeros = "0".repeat(12);
    #[rustfmt::skip]
    let cases = vec![
        (get("/api/events"), unavailable()),
        (get("/api/events?session_id=s"), unavailable()),
        (get("/api/clarify/stream?session_id=s"), unavailable()),
        (get("/api/approval/stream?session_id=s"), unavailable()),
        (get("/api/clarify/pending?session_id=s&since=1&wait=1"), unavailable()),
        (get("/api/approval/pending?session_id=s&since=0&wait=1"), unavailable()),
        (wait(&format!("&clarify_id={id}&timeout=1")), unavailable()),
        (wait(&format!("&clarify_id={id}&timeout=0")), ok(json!({"status": "pending"}))),
        (wait(&format!("&clarify_id={zeros}&timeout=1")), not_found("no such clarify")),
        (get("/api/clarify/pending?session_id=s&since=0&wait=1"), poll(head(&app, "s", Kind::Clarify), 1, 1)),
        (get("/api/approval/pending?session_id=s"), poll(Value::Null, 0, 0)),
    ];
    check_all(&app, cases);
}

// ---- parked replies and streams ----

/// Parks a long-poll for session `s` since version 0 and, once its work
/// runs (at its first look whether its client left), submits there:
/// whether the fan-out thread answered it early, and what its own thread
/// answered.
fn woken_long_poll(app: &App, request: &Request) -> (bool, Seen) {
    let work = park(app, request);
    let (socket, _peer) = UnixStream::pair().expect("a socket pair");
    let fd = socket.as_raw_fd();
    // The socket lives as long as the printer, which the early holds.
    let print = Box::new(move |response: Response| {
        let _open = &socket;
        response.body
    });
    let early = Arc::new(Early::new(fd, print));
    let submitted = Cell::new(false);
    let client_left = || {
        if !submitted.replace(true) {
            queued(app, Kind::Clarify, prompt(Kind::Clarify, json!({})));
        }
        false
    };
    let parking = Parking {
        client_left: &client_left,
        early: Some(early.clone()),
    };
    let seen = Seen::of(&work(&parking));
    (early.finish().is_some(), seen)
}

/// A revoke swept (`Watch::recheck`) after a long-poll came in, between
/// the check of its credential and its parking, leaves its answer to its
/// thread, which asks again (docs/PROTOCOL.md §7): the fan-out thread
/// answers only a poll whose revocations have not moved since it came in.
/// (An open server: the caller may still read, so it gets the change.)
#[test]
fn a_revoke_swept_as_a_long_poll_parks_leaves_its_answer_to_its_thread() {
    let url = "/api/clarify/pending?session_id=s&since=0&wait=30";
    let (early, _) = woken_long_poll(&app(&[]), &get(url));
    assert!(early, "with nothing swept, the fan-out thread answers");

    let app = app(&[]);
    let request = get(url);
    app.streams.recheck();
    let (early, seen) = woken_long_poll(&app, &request);
    assert!(!early, "answered by the fan-out thread without asking");
    compare(
        "the poll, asked again",
        &seen,
        &poll(head(&app, "s", Kind::Clarify), 1, 1),
    );
}

#[test]
fn parked_requests_hold_a_place_and_answer_when_their_work_runs() {
    let app = app(&[]);
    let id = queued(&app, Kind::Clarify, prompt(Kind::Clarify, json!({})));
    let entry = head(&app, "s", Kind::Clarify);
    let wait = |timeout: &str| {
        get(&format!(
            "/api/clarify/wait?session_id=s&clarify_id={id}&timeout={timeout}"
        ))
    };
    // When nothing happens, each answers after its (short) timeout.
    let work = park(&app, &wait("0.01"));
    compare(
        "a quiet wait",
        &run(&app, work),
        &ok(json!({"status": "pending"})),
    );
    let work = park(
        &app,
        &get("/api/approval/pending?session_id=s&since=0&wait=0.01"),
    );
    compare(
        "a quiet long-poll",
        &run(&app, work),
        &poll(Value::Null, 0, 0),
    );
    assert_eq!(app.hub.counts().subscribers, 0);
    // A change of its queue wakes a long-poll; an answer wakes a wait.
    let long_poll = park(
        &app,
        &get("/api/clarify/pending?session_id=s&since=1&wait=30"),
    );
    let waiting = park(&app, &wait("30"));
    queued(
        &app,
        Kind::Clarify,
        prompt(Kind::Clarify, json!({"question": "And?"})),
    );
    compare(
        "a woken long-poll",
        &run(&app, long_poll),
        &poll(entry.clone(), 2, 2),
    );
    // Two changes before its thread runs: it answers with the newer one
    // (the woken poll answers from what it was sent, not from the hub).
    let long_poll = park(
        &app,
        &get("/api/clarify/pending?session_id=s&since=2&wait=30"),
    );
    for question in ["Then?", "Last?"] {
        queued(
            &app,
            Kind::Clarify,
            prompt(Kind::Clarify, json!({"question": question})),
        );
    }
    compare(
        "a long-poll woken twice",
        &run(&app, long_poll),
        &poll(entry, 4, 4),
    );
    let body = json!({"session_id": "s", "clarify_id": id, "response": "yes"});
    check(
        &app,
        post("/api/clarify/respond", body),
        ok(json!({"ok": true, "response": "yes"})),
    );
    let answered = ok(json!({"response": "yes", "status": "answered"}));
    compare("an answered wait", &run(&app, waiting), &answered);
}

#[test]
fn streams_open_with_the_state_they_watch() {
    // Each stream gets an app with one clarify pending in `s` (version 1).
    let opened = |request: Request| {
        let app = app(&[]);
        queued(&app, Kind::Clarify, prompt(Kind::Clarify, json!({})));
        let head = app
            .hub
            .pending("s", Kind::Clarify)
            .pending_json()
            .to_string();
        (streamed(&app, request), head)
    };
    let resumed = |id: &str| header(get("/api/events"), "Last-Event-ID", id);
    let frame = |session: &str, kind: &str, head: &str, count: u8, version: u8| {
        let data = format!(
            r#"{{"session_id": "{session}", "pending": {head}, "pending_count": {count}, "version": {version}}}"#
        );
        format!("id: {version}\nevent: {kind}\ndata: {data}\n\n")
    };
    let ready =
        |full: bool| format!("id: 1\nevent: ready\ndata: {{\"version\": 1, \"full\": {full}}}\n\n");
    let prelude = format!("{STREAM_HEAD}retry: 3000\n\n");

    let (bytes, head) = opened(get("/api/clarify/stream?session_id=s"));
    let initial =
        format!("event: initial\ndata: {{\"pending\": {head}, \"pending_count\": 1}}\n\n");
    assert_eq!(bytes, format!("{STREAM_HEAD}{initial}"));
    let (bytes, _) = opened(get("/api/approval/stream?session_id=s"));
    let empty = "event: initial\ndata: {\"pending\": null, \"pending_count\": 0}\n\n";
    assert_eq!(bytes, format!("{STREAM_HEAD}{empty}"));
    // A full snapshot: a first connect, or an id the server cannot honour.
    for request in [
        get("/api/events"),
        get("/api/events?last_event_id=99"),
        resumed("garbage"),
    ] {
        let what = describe(&request);
        let (bytes, head) = opened(request);
        let expected = format!(
            "{prelude}{}{}",
            frame("s", "clarify", &head, 1, 1),
            ready(true)
        );
        assert_eq!(bytes, expected, "{what}");
    }
    // A resume sends what changed after its id; the header beats the parameter.
    let (bytes, head) = opened(get("/api/events?last_event_id=0"));
    let expected = format!(
        "{prelude}{}{}",
        frame("s", "clarify", &head, 1, 1),
        ready(false)
    );
    assert_eq!(bytes, expected);
    let (bytes, _) = opened(header(
        get("/api/events?last_event_id=0"),
        "Last-Event-ID",
        "1",
    ));
    assert_eq!(bytes, format!("{prelude}{}", ready(false)));
    // Named sessions are sent even when empty, each once.
    let (bytes, _) = opened(get("/api/events?session_id=t&session_id=t"));
    let empty = [
        frame("t", "clarify", "null", 0, 0),
        frame("t", "approval", "null", 0, 0),
    ];
    assert_eq!(bytes, format!("{prelude}{}{}", empty.concat(), ready(true)));
}
