//! What a revoked named credential leaves behind (THREATS.md,
//! "Credentials"): revoking a human and adding one of the same name (the
//! way to give them a new token) must not bring back the pages that signed
//! in with the old token, whoever holds them now; the new token signs in.

use crate::support::{TempDir, TestServer};
use askgate::serve::auth::Role;
use askgate::serve::credentials;
use serde_json::json;

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
    ])
}

/// Signs the page in with `token`: the `Cookie` header to send after.
fn sign_in(server: &TestServer, token: &str) -> String {
    let login = server.post("/api/login", &json!({ "token": token }));
    assert_eq!(login.status, 200, "{}", login.text());
    let cookie = login.header("set-cookie").unwrap();
    cookie.split(';').next().unwrap().to_string()
}

fn sessions_status(server: &TestServer, cookie: &str) -> u16 {
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
