//! What a revoked named credential leaves behind (THREATS.md,
//! "Credentials"): revoking a human and adding one of the same name (the
//! way to give them a new token) must not bring back the pages that signed
//! in with the old token, whoever holds them now; the new token signs in.
//! Rotating the legacy human token (`askgate tokens rotate human`, then a
//! restart) signs out the pages signed in with the old one, though
//! sign-ins outlive a restart. A stream a revoked human (or a signed-out
//! page) had open ends within about a second (the next sweep) rather than
//! showing them every prompt until its next keepalive, and
//! a revoked agent's wait, parked before the revoke, is not handed the
//! answer.

use crate::binary::ServerProcess;
use crate::support::{Client, DEADLINE, SseClient, TempDir, TestServer, eventually};
use askgate::serve::auth::Role;
use askgate::serve::credentials;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const AGENT: &str = "agent-token-0123456789";
const HUMAN: &str = "human-token-0123456789";

fn server(dir: &TempDir) -> TestServer {
    TestServer::with_tokens(dir, AGENT, HUMAN, &["--keepalive-secs", "1"])
}

/// Signs the page in with `token`: the `Cookie` header to send after.
fn sign_in(server: &Client, token: &str) -> String {
    let login = server.post("/api/login", &json!({ "token": token }));
    assert_eq!(login.status, 200, "{}", login.text());
    let cookie = login.header("set-cookie").unwrap();
    cookie.split(';').next().unwrap().to_string()
}

fn sessions_status(server: &Client, cookie: &str) -> u16 {
    let headers = [("Cookie", cookie)];
    server.request("GET", "/api/sessions", &headers, "").status
}

#[test]
fn a_human_added_again_under_a_revoked_name_does_not_revive_the_old_sign_ins() {
    let dir = TempDir::new("revoked-readded");
    let server = server(&dir);
    let old_token = credentials::add(&dir.path, Role::Human, "anna").unwrap();
    let stolen = sign_in(&server, &old_token);
    assert_eq!(sessions_status(&server, &stolen), 200);
    credentials::revoke(&dir.path, "anna").unwrap();
    assert_eq!(sessions_status(&server, &stolen), 401, "revoked");
    let new_token = credentials::add(&dir.path, Role::Human, "anna").unwrap();
    assert_eq!(
        sessions_status(&server, &stolen),
        401,
        "a page signed in with the revoked token stays signed out"
    );
    let fresh = sign_in(&server, &new_token);
    assert_eq!(
        sessions_status(&server, &fresh),
        200,
        "the new token signs in"
    );
    let legacy = sign_in(&server, HUMAN);
    assert_eq!(
        sessions_status(&server, &legacy),
        200,
        "the legacy human too"
    );
}

#[test]
fn the_streams_of_a_revoked_human_and_a_signed_out_page_end_long_before_a_keepalive() {
    let dir = TempDir::new("revoked-streams");
    // A keepalive a minute apart: the streams must end on the sweep after
    // the revoke (about a second), not at their next keepalive.
    let server = TestServer::with_tokens(&dir, AGENT, HUMAN, &["--keepalive-secs", "60"]);
    let anna = credentials::add(&dir.path, Role::Human, "anna").unwrap();
    let bearer = format!("Bearer {anna}");
    let cookie = sign_in(&server, &anna);
    let page = sign_in(&server, HUMAN);
    let open = |path: &str, header: (&str, &str)| {
        let mut stream = SseClient::open(server.addr, path, &[header]);
        let first = if path.contains("/stream") {
            "initial"
        } else {
            "ready"
        };
        stream.events_until(first);
        stream
    };
    let mut with_token = open(
        "/api/approval/stream?session_id=s1",
        ("Authorization", &bearer),
    );
    let mut with_cookie = open("/api/events", ("Cookie", &cookie));
    let mut signed_out = open("/api/events", ("Cookie", &page));
    let mut kept = open("/api/events", ("Authorization", &format!("Bearer {HUMAN}")));
    credentials::revoke(&dir.path, "anna").unwrap();
    let origin = format!("http://{}", server.addr);
    let headers = [("Cookie", page.as_str()), ("Origin", origin.as_str())];
    assert_eq!(
        server.request("POST", "/api/logout", &headers, "").status,
        200
    );
    let deadline = Duration::from_secs(20);
    with_token.expect_end(deadline);
    with_cookie.expect_end(deadline);
    signed_out.expect_end(deadline);
    // Asked too, it goes on: the next prompt reaches it.
    let body = json!({"session_id": "s2", "command": "ls"});
    let submitted = server.call(AGENT, "POST", "/api/approval/submit", &body);
    assert_eq!(submitted.status, 200, "{}", submitted.text());
    let event = kept.next_event(DEADLINE);
    assert!(
        !kept.ended && event.is_some(),
        "a stream whose credential lives goes on"
    );
}

/// A stream whose credential was checked when it opened, and revoked (and
/// swept) before its thread first looked: its first look asks again. Its
/// thread is held in writing the initial state to a client that does not
/// read yet, while another stream of the same human ends on the sweep.
#[test]
fn a_stream_revoked_between_its_opening_and_its_first_look_ends_long_before_a_keepalive() {
    let dir = TempDir::new("revoked-opening");
    let flags = ["--keepalive-secs", "60", "--max-state-bytes", "256M"];
    let server = TestServer::with_tokens(&dir, AGENT, HUMAN, &flags);
    // An initial state of about 14 MB, more than the sockets hold.
    let (command, description) = ("c".repeat(8 * 1024), "d".repeat(4 * 1024));
    for n in 0..800 {
        let body =
            json!({"session_id": format!("s{n}"), "command": command, "description": description});
        let submitted = server.call(AGENT, "POST", "/api/approval/submit", &body);
        assert_eq!(submitted.status, 200, "{}", submitted.text());
    }
    let anna = credentials::add(&dir.path, Role::Human, "anna").unwrap();
    let bearer = format!("Bearer {anna}");
    let mut witness = SseClient::open(server.addr, "/api/events", &[("Authorization", &bearer)]);
    witness.events_until("ready");
    // Opened and allowed; its initial state is not read yet.
    let mut held = SseClient::open(server.addr, "/api/events", &[("Authorization", &bearer)]);
    credentials::revoke(&dir.path, "anna").unwrap();
    let deadline = Duration::from_secs(20);
    witness.expect_end(deadline);
    held.expect_end(deadline);
}

#[test]
fn a_rotated_human_token_signs_out_the_pages_signed_in_with_the_old_one() {
    let dir = TempDir::new("revoked-rotated");
    let data = dir.path.to_str().unwrap();
    let start = |human: &str| {
        let flags = [
            "--data-dir",
            data,
            "--agent-token",
            AGENT,
            "--human-token",
            human,
        ];
        ServerProcess::start(&flags)
    };
    let server = start(HUMAN);
    let cookie = sign_in(&server, HUMAN);
    server.kill();
    let server = start(HUMAN);
    assert_eq!(sessions_status(&server, &cookie), 200, "a restart keeps it");
    server.kill();
    let rotated = "human-token-rotated-0123456789";
    let server = start(rotated);
    assert_eq!(
        sessions_status(&server, &cookie),
        401,
        "signed in with the old token: out"
    );
    let fresh = sign_in(&server, rotated);
    assert_eq!(sessions_status(&server, &fresh), 200);
    server.kill();
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Parked waits, as the server's metrics count them.
fn parked(server: &Client) -> f64 {
    let headers = [("Authorization", bearer(HUMAN))];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let text = server.request("GET", "/metrics", &headers, "").text();
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("askgate_longpolls_parked "))
        .expect("the metric");
    line.trim().parse().unwrap()
}

#[test]
fn a_revoked_agents_parked_wait_is_not_handed_the_answer() {
    let dir = TempDir::new("revoked-wait");
    let server = server(&dir);
    let bot = credentials::add(&dir.path, Role::Agent, "bot").unwrap();
    let json_headers = |token: &str| {
        [
            ("Authorization", bearer(token)),
            ("Content-Type", "application/json".into()),
        ]
    };
    let call = |token: &str, method: &str, path: &str, body: &str| {
        let headers = json_headers(token);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        server.request(method, path, &headers, body)
    };
    let body = json!({"session_id": "s1", "command": "make deploy"}).to_string();
    let submitted = call(&bot, "POST", "/api/approval/submit", &body);
    assert_eq!(submitted.status, 200, "{}", submitted.text());
    let id = submitted.json()["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/approval/wait?session_id=s1&approval_id={id}&timeout=30");
    // Claude Code's http hook parks the same way.
    let hook_bot = credentials::add(&dir.path, Role::Agent, "hook-bot").unwrap();
    let event = json!({
        "session_id": "8d3f6a1e-0b7c-4c11-9a55-2f0e4f1b9c3d", "cwd": "/home/u/repo",
        "hook_event_name": "PreToolUse", "tool_name": "Bash",
        "tool_input": {"command": "make deploy"},
    })
    .to_string();
    let hook_path = "/api/hooks/claude-code?timeout=30";
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| call(&bot, "GET", &path, ""));
        let hook = scope.spawn(|| call(&hook_bot, "POST", hook_path, &event));
        eventually("both are parked", DEADLINE, &mut || parked(&server) == 2.0);
        credentials::revoke(&dir.path, "bot").unwrap();
        credentials::revoke(&dir.path, "hook-bot").unwrap();
        let sessions = call(HUMAN, "GET", "/api/sessions", "").json();
        for session in sessions["sessions"].as_array().unwrap() {
            let session_id = session["session_id"].as_str().unwrap();
            let pending = format!("/api/approval/pending?session_id={session_id}");
            let head = call(HUMAN, "GET", &pending, "").json()["pending"].clone();
            let answer = json!({"session_id": session_id, "approval_id": head["approval_id"], "choice": "once"});
            let answered = call(HUMAN, "POST", "/api/approval/respond", &answer.to_string());
            assert_eq!(answered.status, 200, "{}", answered.text());
        }
        let waited = waiter.join().unwrap();
        assert_eq!(waited.status, 401, "{}", waited.text());
        let hooked = hook.join().unwrap().json();
        let decision = &hooked["hookSpecificOutput"]["permissionDecision"];
        assert_eq!(decision, "deny", "{hooked}");
    });
}

/// A revoked human's long-poll, parked before the revoke, is not handed
/// the next change (the fan-out thread answers woken polls on their
/// sockets) nor the state at its deadline: a `401`, as the next request.
#[test]
fn a_revoked_humans_parked_long_poll_is_not_handed_the_next_change() {
    let dir = TempDir::new("revoked-poll");
    let server = TestServer::with_tokens(&dir, AGENT, HUMAN, &["--keepalive-secs", "60"]);
    let anna = credentials::add(&dir.path, Role::Human, "anna").unwrap();
    let headers = [("Authorization", bearer(&anna))];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Versions are the server's, so both sessions are at the same one.
    let version = server.request("GET", "/api/approval/pending?session_id=s1", &headers, "");
    let version = version.json()["version"].clone();
    let mut witness = SseClient::open(server.addr, "/api/events", &headers);
    witness.events_until("ready");
    // The first is woken by the change; the second, on another session,
    // sees its deadline pass (a while after the sweep). Read for longer
    // than the deadline.
    let poll = |session_id: &str, wait: u64| {
        let path =
            format!("/api/approval/pending?session_id={session_id}&since={version}&wait={wait}");
        let mut socket = TcpStream::connect(server.addr).expect("connected");
        socket
            .set_read_timeout(Some(Duration::from_secs(wait + 20)))
            .unwrap();
        let addr = server.addr;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {anna}\r\nConnection: close\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).expect("sent");
        let mut response = String::new();
        socket.read_to_string(&mut response).expect("a response");
        response
    };
    std::thread::scope(|scope| {
        let polls = [("s1", 30), ("s2", 15)]
            .map(|(session_id, wait)| scope.spawn(move || poll(session_id, wait)));
        eventually("both are parked", DEADLINE, &mut || parked(&server) == 2.0);
        credentials::revoke(&dir.path, "anna").unwrap();
        // The sweep has seen the revoke once anna's stream ends.
        witness.expect_end(Duration::from_secs(20));
        let body = json!({"session_id": "s1", "command": "cat ~/.ssh/id_ed25519"});
        let submitted = server.call(AGENT, "POST", "/api/approval/submit", &body);
        assert_eq!(submitted.status, 200, "{}", submitted.text());
        for poll in polls {
            let polled = poll.join().unwrap();
            assert!(polled.starts_with("HTTP/1.1 401 "), "{polled}");
        }
    });
}
