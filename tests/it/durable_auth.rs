//! Sign-ins and spent notification buttons are durable state (issue 21,
//! docs/PROTOCOL.md §3.4, §7): a restart on the same data directory (the
//! real binary, killed with -9) keeps the page signed in, a sign-out stays
//! signed out, and a spent sign-in code or button stays spent; with Redis,
//! a sign-in on one instance holds on another, a code spent on one is
//! spent on all, and a button minted by one instance answers through
//! another once, then is refused everywhere.

use crate::binary::ServerProcess;
use crate::notify::{Sink, approval, button, press};
use crate::redis::{Redis, instance_with, redis_call, redis_server};
use crate::support::{Client, TempDir};
use askgate::serve::auth::Role;
use askgate::serve::credentials;
use askgate::serve::signin;
use askgate::store::resp::Reply;
use serde_json::{Value, json};

const AGENT: &str = "agent-token-durable-0123";
const HUMAN: &str = "human-token-durable-0123";
const TOKENS: [&str; 4] = ["--agent-token", AGENT, "--human-token", HUMAN];

fn on_dir(dir: &TempDir, flags: &[&str]) -> ServerProcess {
    let path = dir.path.to_str().unwrap();
    ServerProcess::start(&[&["--data-dir", path], &TOKENS[..], flags].concat())
}

/// Signs the page in; its cookie (`name=value`).
fn sign_in(server: &Client) -> String {
    let reply = server.post("/api/login", &json!({"token": HUMAN}));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let cookie = reply.header("set-cookie").expect("a cookie");
    cookie.split(';').next().unwrap().to_string()
}

/// A one-time sign-in code, as `askgate signin-link` mints it.
fn code() -> String {
    signin::mint(&signin::key(HUMAN)).unwrap()
}

/// What signing in with a code gets: the status and the error, if any.
fn sign_in_with(server: &Client, code: &str) -> (u16, Value) {
    let reply = server.post("/api/login", &json!({"code": code}));
    (reply.status, reply.json()["error"].clone())
}

fn used_code() -> (u16, Value) {
    let message = signin::Refused::Used.message();
    (401, json!(message))
}

fn sign_out(server: &Client, cookie: &str) {
    let origin = format!("http://{}", server.addr);
    let headers = [("Cookie", cookie), ("Origin", origin.as_str())];
    let reply = server.request("POST", "/api/logout", &headers, "{}");
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// What a read with the page's cookie gets: 200 signed in, 401 not.
fn read_with(server: &Client, cookie: &str) -> u16 {
    let reply = server.request("GET", "/api/sessions", &[("Cookie", cookie)], "");
    reply.status
}

/// A notification's button pressed against `server` (the instance it was
/// not sent from, or the same one restarted on another port).
fn press_at(server: &Client, action: &Value) -> (u16, Value) {
    let url = action["url"].as_str().unwrap();
    let path = &url[url.find("/api/").unwrap()..];
    let mut moved = action.clone();
    moved["url"] = json!(format!("http://{}{path}", server.addr));
    press(&moved)
}

#[test]
fn a_sign_in_survives_a_restart_and_a_sign_out_stays_signed_out() {
    let dir = TempDir::new("durable-sign-in");
    let server = on_dir(&dir, &[]);
    let kept = sign_in(&server);
    let signed_out = sign_in(&server);
    let code = code();
    assert_eq!(sign_in_with(&server, &code).0, 200);
    assert_eq!(sign_in_with(&server, &code), used_code(), "once");
    assert_eq!(read_with(&server, &kept), 200);
    sign_out(&server, &signed_out);
    assert_eq!(read_with(&server, &signed_out), 401);
    let journal = std::fs::read(dir.join("journal")).unwrap();
    let value = kept.split_once('=').unwrap().1;
    assert!(
        !journal.windows(value.len()).any(|w| w == value.as_bytes()),
        "the journal keeps a digest of the cookie, never the cookie"
    );
    server.kill();

    let server = on_dir(&dir, &[]);
    assert_eq!(read_with(&server, &kept), 200, "still signed in");
    assert_eq!(read_with(&server, &signed_out), 401, "still signed out");
    assert_eq!(
        sign_in_with(&server, &code),
        used_code(),
        "a spent code stays spent"
    );
    sign_out(&server, &kept);
    server.kill();

    let server = on_dir(&dir, &[]);
    assert_eq!(read_with(&server, &kept), 401, "the sign-out holds too");
}

#[test]
fn a_spent_button_stays_spent_across_a_restart() {
    let sink = Sink::start();
    let dir = TempDir::new("durable-button");
    let ntfy = sink.url("/topic");
    let server = on_dir(&dir, &["--notify-ntfy", &ntfy]);
    approval(&server, "s1", "make deploy");
    let notification = sink.next().body;
    let allow = button(&notification, "Allow once");
    assert_eq!(press(allow), (200, json!({"ok": true, "choice": "once"})));
    server.kill();

    let server = on_dir(&dir, &["--notify-ntfy", &ntfy]);
    let (status, body) = press_at(&server, allow);
    assert_eq!(
        (status, &body["error"]),
        (409, &json!("the capability has been used")),
        "{body}"
    );
}

#[test]
fn across_redis_instances_a_sign_in_holds_and_a_code_or_button_answers_once() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let sink = Sink::start();
    let ntfy = sink.url("/topic");
    let a = instance_with(&redis, &[&TOKENS[..], &["--notify-ntfy", &ntfy]].concat());
    let b = instance_with(&redis, &TOKENS);

    let cookie = sign_in(&a);
    assert_eq!(read_with(&b, &cookie), 200, "signed in on A, in on B");
    sign_out(&b, &cookie);
    assert_eq!(read_with(&a, &cookie), 401, "signed out on B, out on A");
    let code = code();
    assert_eq!(sign_in_with(&a, &code).0, 200);
    assert_eq!(sign_in_with(&b, &code), used_code(), "spent on A, on B");

    let id = approval(&a, "s1", "make deploy");
    let notification = sink.next().body;
    assert_eq!(notification["sequence_id"], json!(id));
    let deny = button(&notification, "Deny");
    assert_eq!(
        press_at(&b, deny),
        (200, json!({"ok": true, "choice": "deny"})),
        "minted by A, taken by B"
    );
    for server in [&a, &b] {
        let (status, body) = press_at(server, deny);
        assert_eq!(
            (status, &body["error"]),
            (409, &json!("the capability has been used")),
            "{body}"
        );
    }
}

/// The commands Redis has processed so far.
fn redis_commands(redis: &Redis) -> u64 {
    let Reply::Bulk(info) = redis_call(redis, &["INFO", "stats"]) else {
        panic!("INFO answers text");
    };
    let info = String::from_utf8(info).unwrap();
    let line = info
        .lines()
        .find_map(|line| line.strip_prefix("total_commands_processed:"))
        .expect("INFO stats counts commands");
    line.trim().parse().unwrap()
}

/// A cookie this instance does not know is looked for in the shared log
/// (another instance may have just signed it in), but a client with no
/// credential sending made-up cookies must not make every request a trip
/// to Redis on the connection that every change takes: a few per second.
#[test]
fn made_up_cookies_do_not_make_each_request_a_trip_to_redis() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let server = instance_with(&redis, &TOKENS);
    const REQUESTS: u64 = 400;
    let before = redis_commands(&redis);
    for n in 0..REQUESTS {
        let cookie = format!("askgate_session={n:064x}");
        assert_eq!(read_with(&server, &cookie), 401);
    }
    let trips = redis_commands(&redis) - before;
    // Three commands a request before; at 8 looks a second, fewer than one
    // unless the requests took over 15 s.
    assert!(
        trips < REQUESTS,
        "{trips} redis commands for {REQUESTS} requests"
    );
}

/// A cookie this instance knows whose human's credential is gone (revoked)
/// is refused without a trip to Redis: its seal no longer matches, whatever
/// the log says. Its holder, no longer anyone, must not make each request
/// a trip on the connection that every change takes, as a made-up cookie
/// may not.
#[test]
fn a_revoked_humans_cookie_does_not_make_each_request_a_trip_to_redis() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let dir = TempDir::new("durable-revoked-cookie");
    let data = dir.path.to_str().unwrap();
    let server = instance_with(&redis, &[&TOKENS[..], &["--data-dir", data]].concat());
    let anna = credentials::add(&dir.path, Role::Human, "anna").unwrap();
    let reply = server.post("/api/login", &json!({"token": anna}));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let cookie = reply.header("set-cookie").expect("a cookie");
    let cookie = cookie.split(';').next().unwrap().to_string();
    assert_eq!(read_with(&server, &cookie), 200);
    credentials::revoke(&dir.path, "anna").unwrap();
    const REQUESTS: u64 = 400;
    let before = redis_commands(&redis);
    for _ in 0..REQUESTS {
        assert_eq!(read_with(&server, &cookie), 401);
    }
    let trips = redis_commands(&redis) - before;
    assert!(
        trips < REQUESTS,
        "{trips} redis commands for {REQUESTS} requests"
    );
}
