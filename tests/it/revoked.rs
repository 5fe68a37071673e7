//! What a revoked named credential leaves behind (THREATS.md,
//! "Credentials"): revoking a human and adding one of the same name (the
//! way to give them a new token) must not bring back the pages that signed
//! in with the old token, whoever holds them now; the new token signs in.
//! Rotating the legacy human token (`askgate tokens rotate human`, then a
//! restart) signs out the pages signed in with the old one, though
//! sign-ins outlive a restart. A stream a revoked human (or a signed-out page) had open ends within a
//! keepalive interval rather than showing them every prompt for good.

use crate::binary::ServerProcess;
use crate::support::{Client, SseClient, TempDir, TestServer};
use askgate::serve::auth::Role;
use askgate::serve::credentials;
use serde_json::json;
use std::time::Duration;

const AGENT: &str = "agent-token-0123456789";
const HUMAN: &str = "human-token-0123456789";

fn server(dir: &TempDir) -> TestServer {
    let data = dir.path.to_str().unwrap();
    TestServer::start(&[
        "--data-dir",
        data,
        "--agent-token",
        AGENT,
        "--human-token",
        HUMAN,
        "--keepalive-secs",
        "1",
    ])
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
fn the_streams_of_a_revoked_human_and_a_signed_out_page_end() {
    let dir = TempDir::new("revoked-streams");
    let server = server(&dir);
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
    // Checked at least once meanwhile (every keepalive interval), it goes on.
    kept.next_event(Duration::from_secs(3));
    assert!(!kept.ended, "a stream whose credential lives goes on");
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
