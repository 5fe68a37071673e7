//! Credentials as shipped (docs/PROTOCOL.md §7), on loopback: tokens made
//! at first start, every human route closed to a local caller without
//! the human's credential, a tokenless local caller an agent and never
//! the human, the one-time sign-in link (printed at start, or by
//! `askgate signin-link` from another process), `--insecure-no-auth` as
//! the loud way back, and equal tokens refused.

use crate::auth::status;
use crate::binary::{ServerProcess, askgate};
use crate::support::{DEADLINE, TempDir, TestServer, eventually};
use askgate::serve::auth::Role;
use askgate::serve::http::Method;
use askgate::serve::routes::{Access, ROUTES, Route};
use askgate::serve::signin;
use serde_json::json;

/// A server as shipped: no token flags, tokens made in `dir`.
fn shipped(dir: &TempDir, flags: &[&str]) -> TestServer {
    let data = dir.path.to_str().unwrap();
    let base = ["--data-dir", data, "--insecure-no-auth=false"];
    TestServer::start(&[&base[..], flags].concat())
}

/// The (agent, human) tokens the server made in `dir`.
fn made_tokens(dir: &TempDir) -> (String, String) {
    let text = std::fs::read_to_string(dir.join("tokens")).expect("tokens made at start");
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
            .expect("a token")
            .to_string()
    };
    (field("agent"), field("human"))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A request's path with every query a route of the table may need.
fn concrete(pattern: &str, kind: &str) -> String {
    let path = pattern.replace("{kind}", kind);
    format!(
        "{path}?session_id=s&clarify_id=000000000000&approval_id={}&timeout=0",
        "0".repeat(32)
    )
}

#[test]
fn a_local_caller_without_a_credential_is_an_agent_and_never_the_human() {
    let dir = TempDir::new("shipped-roles");
    let server = shipped(&dir, &[]);
    let (agent, human) = made_tokens(&dir);
    let body = r#"{"session_id": "s", "question": "q?", "command": "ls", "rule_id": "r"}"#;
    for &Route {
        method,
        path: pattern,
        access,
        ..
    } in ROUTES
    {
        let method = match method {
            Method::Post => "POST",
            _ => "GET",
        };
        let path = concrete(pattern, "approval");
        let none = status(&server, method, &path, &[], body);
        let as_agent = status(
            &server,
            method,
            &path,
            &[("Authorization", &bearer(&agent))],
            body,
        );
        let as_human = status(
            &server,
            method,
            &path,
            &[("Authorization", &bearer(&human))],
            body,
        );
        let got = (none, as_agent, as_human);
        match access {
            Access::Needs(Role::Human) => {
                assert_eq!((none, as_agent), (401, 403), "{method} {path}: {got:?}");
                assert!(![401, 403].contains(&as_human), "{method} {path}: {got:?}");
            }
            Access::Needs(Role::Agent) => {
                assert!(![401, 403].contains(&none), "{method} {path}: {got:?}");
                assert_eq!(as_human, 403, "{method} {path}: {got:?}");
            }
            Access::Capability => assert_eq!(none, 401, "{method} {path}: {got:?}"),
            Access::Open => assert!(![401, 403].contains(&none), "{method} {path}: {got:?}"),
        }
    }
}

#[test]
fn a_tokenless_agent_asks_waits_and_cancels_but_cannot_approve_itself() {
    let dir = TempDir::new("shipped-agent");
    let server = shipped(&dir, &[]);
    let asked = server.post(
        "/api/approval/submit",
        &json!({"session_id": "s", "command": "rm -rf ~/projects"}),
    );
    assert_eq!(asked.status, 200, "{}", asked.text());
    let id = asked.json()["approval_id"].as_str().unwrap().to_string();
    for choice in ["once", "always"] {
        let answer = json!({"session_id": "s", "approval_id": id, "choice": choice});
        let reply = server.post("/api/approval/respond", &answer);
        assert_eq!(reply.status, 401, "{}", reply.text());
        assert_eq!(reply.json()["error"], "authentication required");
    }
    let wait = format!("/api/approval/wait?session_id=s&approval_id={id}&timeout=0");
    let waited = server.get(&wait);
    assert_eq!(waited.status, 200, "{}", waited.text());
    assert_eq!(waited.json()["status"], "pending", "nothing was answered");
    let cancelled = server.post("/api/approval/cancel", &json!({"session_id": "s"}));
    assert_eq!(cancelled.status, 200, "{}", cancelled.text());
    drop(server);
    let audit = std::fs::read_to_string(dir.join("audit.log")).expect("an audit file");
    let lines: Vec<&str> = audit.lines().collect();
    assert_eq!(lines.len(), 2, "asked and cancelled, nothing more: {audit}");
    for line in lines {
        assert!(line.contains(r#"by="agent (local, no token)""#), "{line}");
        assert!(
            !line.contains("human"),
            "a tokenless caller is never the human: {line}"
        );
    }
}

#[test]
fn behind_a_proxy_no_caller_is_taken_for_local() {
    let dir = TempDir::new("shipped-proxy");
    let submit = json!({"session_id": "s", "question": "q?"});
    let proxied = shipped(&dir, &["--trusted-proxy", "127.0.0.1"]);
    assert_eq!(proxied.post("/api/clarify/submit", &submit).status, 401);
    drop(proxied);
    let server = shipped(&dir, &[]);
    let forwarded = [
        ("Content-Type", "application/json"),
        ("X-Forwarded-For", "192.0.2.7"),
    ];
    let reply = server.request(
        "POST",
        "/api/clarify/submit",
        &forwarded,
        &submit.to_string(),
    );
    assert_eq!(
        reply.status,
        401,
        "a forwarded request is not local: {}",
        reply.text()
    );
}

/// What the server printed to stderr, once it holds `wanted`.
fn stderr_with(server: &ServerProcess, wanted: &str) -> String {
    eventually(&format!("stderr says {wanted:?}"), DEADLINE, &mut || {
        server.stderr().contains(wanted)
    });
    server.stderr()
}

/// The sign-in link a server printed at start.
fn printed_link(stderr: &str) -> String {
    let start = stderr.find("http://").expect("a link in what was printed");
    let link = stderr[start..].split_whitespace().next().unwrap();
    assert!(
        link.contains("/#signin="),
        "the code is in the fragment: {link}"
    );
    link.to_string()
}

fn code_of(link: &str) -> &str {
    link.split_once("#signin=").unwrap().1
}

fn login(server: &crate::support::Client, body: serde_json::Value) -> crate::support::Reply {
    server.post("/api/login", &body)
}

#[test]
fn the_printed_link_signs_in_once_and_signin_link_makes_another() {
    let dir = TempDir::new("shipped-link");
    let data = dir.path.to_str().unwrap();
    let server =
        ServerProcess::launch(askgate(), &["--data-dir", data, "--insecure-no-auth=false"])
            .expect("starts");
    let (_, human) = made_tokens(&dir);
    let link = printed_link(&stderr_with(&server, "#signin="));
    assert!(
        link.starts_with(&format!("http://{}/#signin=", server.addr)),
        "{link}"
    );
    let first = login(&server, json!({"code": code_of(&link)}));
    assert_eq!(first.status, 200, "{}", first.text());
    let cookie = first.header("set-cookie").expect("a cookie").to_string();
    let pair = cookie.split(';').next().unwrap();
    let read = server.request("GET", "/api/sessions", &[("Cookie", pair)], "");
    assert_eq!(read.status, 200, "signed in: {}", read.text());
    let again = login(&server, json!({"code": code_of(&link)}));
    assert_eq!(again.status, 401, "single use: {}", again.text());
    assert!(
        again.text().contains("expired or was used"),
        "{}",
        again.text()
    );

    let made = askgate()
        .args(["signin-link", "--data-dir", data, "--server"])
        .arg(format!("http://{}", server.addr))
        .output()
        .unwrap();
    assert_eq!(made.status.code(), Some(0), "{made:?}");
    let fresh = String::from_utf8(made.stdout).unwrap().trim().to_string();
    assert!(
        fresh.starts_with(&format!("http://{}/#signin=", server.addr)),
        "{fresh}"
    );
    let other = login(&server, json!({"code": code_of(&fresh)}));
    assert_eq!(
        other.status,
        200,
        "another process's code: {}",
        other.text()
    );

    let key = signin::key(&human);
    let expired = signin::mint_at(&key, signin::now() - 1, &"ab".repeat(16));
    let refused = login(&server, json!({"code": expired}));
    assert_eq!(refused.status, 401, "expired: {}", refused.text());
    let forged = signin::mint_at(
        &signin::key("not-the-human-token"),
        signin::now() + 60,
        &"cd".repeat(16),
    );
    let refused = login(&server, json!({"code": forged}));
    assert_eq!(refused.status, 401, "forged: {}", refused.text());
    assert_eq!(refused.json()["error"], "not a valid sign-in link");

    let fresh = signin::mint(&key).unwrap();
    for path in [
        format!("/api/login?code={fresh}"),
        format!("/?signin={fresh}"),
    ] {
        let reply = server.request("POST", &path, &[("Content-Type", "application/json")], "{}");
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
    }
    let still = login(&server, json!({"code": fresh}));
    assert_eq!(
        still.status,
        200,
        "never spent through a URL: {}",
        still.text()
    );
}

#[test]
fn failed_codes_count_against_the_sign_in_limit_and_a_wrong_token_is_named() {
    let dir = TempDir::new("shipped-limit");
    let server = shipped(&dir, &[]);
    let (agent, human) = made_tokens(&dir);
    let missing = server.get("/api/sessions");
    assert_eq!(
        (missing.status, missing.json()["error"].as_str()),
        (401, Some("authentication required"))
    );
    let wrong = login(&server, json!({"token": agent}));
    assert_eq!(
        (wrong.status, wrong.json()["error"].as_str()),
        (401, Some("wrong token")),
        "the agent's token never signs in, and the page can say why"
    );
    for _ in 1..5 {
        assert_eq!(login(&server, json!({"code": "1-2-3"})).status, 401);
    }
    let code = signin::mint(&signin::key(&human)).unwrap();
    let limited = login(&server, json!({"code": code}));
    assert_eq!(limited.status, 429, "{}", limited.text());
}

#[test]
fn without_a_data_dir_tokens_live_for_the_run_and_the_link_says_so() {
    let server = ServerProcess::launch(
        askgate(),
        &["--data-dir", "none", "--insecure-no-auth=false"],
    )
    .expect("starts");
    let stderr = stderr_with(&server, "#signin=");
    assert!(
        stderr.contains("signin-link` needs a data directory"),
        "{stderr}"
    );
    assert_eq!(server.get("/api/sessions").status, 401);
    let link = printed_link(&stderr);
    let signed_in = login(&server, json!({"code": code_of(&link)}));
    assert_eq!(signed_in.status, 200, "{}", signed_in.text());
}

#[test]
fn insecure_no_auth_opens_loopback_with_a_warning() {
    let dir = TempDir::new("insecure");
    let data = dir.path.to_str().unwrap();
    let server = ServerProcess::launch(askgate(), &["--data-dir", data]).expect("starts");
    assert_eq!(server.get("/api/sessions").status, 200, "open as before");
    let warned = stderr_with(&server, "NO AUTHENTICATION");
    assert!(warned.contains("--insecure-no-auth"), "{warned}");
    assert!(!dir.join("tokens").exists(), "no tokens made");
}

#[test]
fn equal_tokens_are_refused_at_start() {
    let same = "the-same-token-0123456789";
    let given = ServerProcess::launch(
        askgate(),
        &[
            "--data-dir",
            "none",
            "--agent-token",
            same,
            "--human-token",
            same,
        ],
    );
    let exited = given.err().expect("refused");
    assert_eq!(exited.code, Some(2), "{exited:?}");
    assert!(
        exited.stderr.contains("agent and human tokens are equal"),
        "{exited:?}"
    );
    let dir = TempDir::new("equal-tokens");
    std::fs::write(dir.join("tokens"), format!("agent={same}\nhuman={same}\n")).unwrap();
    let data = dir.path.to_str().unwrap();
    let from_file =
        ServerProcess::launch(askgate(), &["--data-dir", data, "--insecure-no-auth=false"]);
    let exited = from_file.err().expect("refused");
    assert!(
        exited.stderr.contains("agent and human tokens are equal"),
        "{exited:?}"
    );
}
