//! Credentials and roles (docs/PROTOCOL.md §7), played as an attacker
//! would: every route of the role table with no credential, the agent's
//! and the human's; tokens in URLs; the sign-in cookie and its flags; the
//! sign-in rate limit; an agent that tries to answer its own prompt; and a
//! server that refuses to listen off loopback without credentials.

use crate::binary::askgate;
use crate::support::TestServer;
use askgate::serve::auth::COOKIE;
use askgate::serve::http::Method;
use askgate::serve::routes::{Access, ROUTES, Route};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

const AGENT: &str = "agent-token-0123456789";
const HUMAN: &str = "human-token-0123456789";

fn server() -> TestServer {
    TestServer::start(&["--agent-token", AGENT, "--human-token", HUMAN])
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// The status of a request, read from its status line alone, so a route
/// that opens a stream answers too.
pub fn status(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> u16 {
    let mut socket = server.connect();
    let mut raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        server.addr
    );
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    socket.write_all(raw.as_bytes()).unwrap();
    let mut line = String::new();
    BufReader::new(socket).read_line(&mut line).unwrap();
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Who may do what, written out apart from the server's table: the agent
/// asks, waits and cancels; the human reads and answers; few are open.
fn expected_role(pattern: &str) -> Option<&'static str> {
    let action = pattern.rsplit('/').next().unwrap();
    match action {
        "submit" | "wait" | "cancel" | "claude-code" => Some("agent"),
        "pending" | "stream" | "respond" | "events" | "sessions" | "history" | "metrics"
        | "rules" | "revoke" | "presence" | "agents" | "pause" | "stop" => Some("human"),
        "healthz" | "config" | "login" | "logout" => None,
        // The public key that verifies receipts: public.
        "key" => None,
        "act" => Some("capability"),
        other => panic!("route {other} is missing from this test's list"),
    }
}

#[test]
fn every_route_of_the_table_is_refused_to_the_wrong_role() {
    for &Route {
        path: pattern,
        access,
        ..
    } in ROUTES
    {
        let declared = match access {
            Access::Open => None,
            Access::Needs(role) => Some(role.as_str()),
            Access::Capability => Some("capability"),
        };
        assert_eq!(
            declared,
            expected_role(pattern),
            "the table's role for {pattern}"
        );
    }
    let server = server();
    let body = r#"{"session_id": "s", "question": "q?", "command": "ls", "token": "x"}"#;
    for &Route {
        method,
        path: pattern,
        access,
        ..
    } in ROUTES
    {
        for kind in ["clarify", "approval"] {
            let path = pattern.replace("{kind}", kind);
            let path = format!(
                "{path}?session_id=s&clarify_id=000000000000&approval_id={}",
                "0".repeat(32)
            );
            let method = match method {
                Method::Post => "POST",
                _ => "GET",
            };
            let agent = bearer(AGENT);
            let human = bearer(HUMAN);
            // A session belongs to the first agent credential that used it
            // (names.rs): the agent token asks in a session of its own.
            let (agent_path, agent_body) = (
                path.replace("session_id=s&", "session_id=s2&"),
                body.replace(r#""s""#, r#""s2""#),
            );
            let got = [
                status(&server, method, &path, &[], body),
                status(
                    &server,
                    method,
                    &agent_path,
                    &[("Authorization", &agent)],
                    &agent_body,
                ),
                status(&server, method, &path, &[("Authorization", &human)], body),
                status(
                    &server,
                    method,
                    &path,
                    &[("Authorization", "Bearer guess-guess-guess")],
                    body,
                ),
            ];
            let refused = |code: u16| code == 401 || code == 403;
            match access {
                Access::Open => assert!(!got.contains(&403), "{method} {path}: {got:?}"),
                // Only a notification's capability: no token will do, and
                // the agent's is refused as the wrong role.
                Access::Capability => {
                    assert_eq!(got, [401, 403, 401, 401], "{method} {path}: {got:?}")
                }
                Access::Needs(role) => {
                    let (agent_ok, human_ok) = match role {
                        askgate::serve::auth::Role::Agent => (true, false),
                        askgate::serve::auth::Role::Human => (false, true),
                    };
                    // A local caller without a credential is an agent
                    // (auth_default.rs), asked for a credential elsewhere.
                    assert_eq!(
                        !refused(got[0]),
                        agent_ok,
                        "{method} {path} without a credential: {got:?}"
                    );
                    assert!(refused(got[0]) == (got[0] == 401), "{got:?}");
                    assert_eq!(got[3], 401, "{method} {path} with a wrong token: {got:?}");
                    assert_eq!(
                        !refused(got[1]),
                        agent_ok,
                        "{method} {path} as the agent: {got:?}"
                    );
                    assert_eq!(
                        !refused(got[2]),
                        human_ok,
                        "{method} {path} as the human: {got:?}"
                    );
                    assert!(
                        got[1] == 403 || got[2] == 403,
                        "the wrong role is 403: {got:?}"
                    );
                }
            }
            if !pattern.contains("{kind}") {
                break;
            }
        }
    }
}

#[test]
fn an_agent_token_can_never_answer() {
    let server = server();
    let agent = bearer(AGENT);
    let headers = [
        ("Authorization", agent.as_str()),
        ("Content-Type", "application/json"),
    ];
    let submit = json!({"session_id": "s", "command": "rm -rf /"}).to_string();
    let asked = server.request("POST", "/api/approval/submit", &headers, &submit);
    assert_eq!(asked.status, 200, "{}", asked.text());
    let id = asked.json()["approval_id"].as_str().unwrap().to_string();
    for choice in ["once", "always"] {
        let answer = json!({"session_id": "s", "approval_id": id, "choice": choice}).to_string();
        let reply = server.request("POST", "/api/approval/respond", &headers, &answer);
        assert_eq!(reply.status, 403, "{}", reply.text());
    }
    let wait = format!("/api/approval/wait?session_id=s&approval_id={id}&timeout=0");
    let still = server.request("GET", &wait, &headers[..1], "");
    assert_eq!(still.json()["status"], "pending", "nothing was answered");
}

#[test]
fn a_token_in_a_query_string_is_refused() {
    let server = server();
    for path in [
        format!("/api/sessions?token={HUMAN}"),
        format!("/api/events?access_token={HUMAN}"),
        format!("/api/clarify/wait?session_id=s&clarify_id=000000000000&token={AGENT}"),
    ] {
        let reply = server.get(&path);
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
        assert!(
            reply.text().contains("never accepted in a URL"),
            "{}",
            reply.text()
        );
    }
}

#[test]
fn signing_in_sets_a_strict_cookie_that_reads_but_never_answers_alone() {
    let server = server();
    let wrong = server.post("/api/login", &json!({"token": AGENT}));
    assert_eq!(
        (wrong.status, wrong.json()),
        (401, json!({"error": "wrong token"}))
    );
    assert!(wrong.header("set-cookie").is_none());
    let right = server.post("/api/login", &json!({"token": HUMAN}));
    assert_eq!(right.status, 200, "{}", right.text());
    let cookie = right.header("set-cookie").expect("a cookie").to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "not over plain http: {cookie}");
    let pair = cookie.split(';').next().unwrap();
    assert!(pair.starts_with(&format!("{COOKIE}=")), "{cookie}");

    let read = server.request("GET", "/api/sessions", &[("Cookie", pair)], "");
    assert_eq!(read.status, 200, "the page reads with its cookie");
    let stream = status(&server, "GET", "/api/events", &[("Cookie", pair)], "");
    assert_eq!(stream, 200, "and streams");
    let poll = server.request(
        "GET",
        "/api/clarify/pending?session_id=s",
        &[("Cookie", pair)],
        "",
    );
    assert_eq!(poll.status, 200, "and polls");

    let submitted = server.request(
        "POST",
        "/api/clarify/submit",
        &[
            ("Authorization", &bearer(AGENT)),
            ("Content-Type", "application/json"),
        ],
        &json!({"session_id": "s", "question": "go?"}).to_string(),
    );
    assert_eq!(submitted.status, 200);
    let answer = json!({"session_id": "s", "response": "yes"}).to_string();
    let json_type = ("Content-Type", "application/json");
    let alone = server.request(
        "POST",
        "/api/clarify/respond",
        &[("Cookie", pair), json_type],
        &answer,
    );
    assert_eq!(
        alone.status,
        403,
        "a cookie without an Origin never answers: {}",
        alone.text()
    );
    let origin = format!("http://{}", server.addr);
    let foreign = [
        ("Cookie", pair),
        json_type,
        ("Origin", "http://evil.example"),
    ];
    assert_eq!(
        server
            .request("POST", "/api/clarify/respond", &foreign, &answer)
            .status,
        403
    );
    let own = [("Cookie", pair), json_type, ("Origin", origin.as_str())];
    let answered = server.request("POST", "/api/clarify/respond", &own, &answer);
    assert_eq!(answered.status, 200, "{}", answered.text());

    let out = server.request("POST", "/api/logout", &own, "{}");
    assert!(
        out.header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0"))
    );
    let after = server.request("GET", "/api/sessions", &[("Cookie", pair)], "");
    assert_eq!(after.status, 401, "signed out");
}

#[test]
fn failed_sign_ins_are_rate_limited() {
    let server = server();
    for _ in 0..5 {
        assert_eq!(
            server
                .post("/api/login", &json!({"token": "guess-guess-guess"}))
                .status,
            401
        );
    }
    let limited = server.post("/api/login", &json!({"token": HUMAN}));
    assert_eq!(
        limited.status,
        429,
        "even the right token waits: {}",
        limited.text()
    );
}

#[test]
fn behind_a_trusted_proxy_failed_sign_ins_are_counted_per_forwarded_client() {
    // One LAN host guessing must not lock everyone behind the same proxy out.
    let server = TestServer::start(&[
        "--agent-token",
        AGENT,
        "--human-token",
        HUMAN,
        "--trusted-proxy",
        "127.0.0.1",
    ]);
    let sign_in = |forwarded: &[&str], token: &str| {
        let mut headers = vec![("Content-Type", "application/json")];
        headers.extend(forwarded.iter().map(|value| ("X-Forwarded-For", *value)));
        let body = json!({ "token": token }).to_string();
        server.request("POST", "/api/login", &headers, &body).status
    };
    for _ in 0..5 {
        assert_eq!(sign_in(&["192.0.2.1"], "guess-guess-guess"), 401);
    }
    assert_eq!(sign_in(&["192.0.2.1"], HUMAN), 429, "the guesser waits");
    assert_eq!(
        sign_in(&["192.0.2.2"], HUMAN),
        200,
        "another client does not"
    );
    assert_eq!(
        sign_in(&["192.0.2.1", "192.0.2.3"], HUMAN),
        200,
        "of several lines the last, the proxy's, names the client"
    );
    for _ in 0..5 {
        assert_eq!(sign_in(&["unknown"], "guess-guess-guess"), 401);
    }
    assert_eq!(
        sign_in(&["unknown"], HUMAN),
        429,
        "a value that is no address is a client of its own"
    );
    assert_eq!(sign_in(&[], HUMAN), 200, "and not the proxy's own");
}

#[test]
fn a_failed_sign_in_behind_a_proxy_is_logged_with_the_forwarded_client() {
    let server = crate::binary::ServerProcess::start(&[
        "--agent-token",
        AGENT,
        "--human-token",
        HUMAN,
        "--trusted-proxy",
        "127.0.0.1",
    ]);
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Forwarded-For", "192.0.2.77"),
    ];
    let body = json!({"token": "guess-guess-guess"}).to_string();
    assert_eq!(
        server.request("POST", "/api/login", &headers, &body).status,
        401
    );
    crate::support::eventually(
        "the failure is logged",
        crate::support::DEADLINE,
        &mut || server.stderr().contains("failed sign-in from 192.0.2.77"),
    );
}

#[test]
fn reached_from_the_network_without_credentials_the_server_refuses_to_start() {
    let cases: [&[&str]; 2] = [
        &["--bind", "0.0.0.0:0"],
        // Behind a proxy, a loopback bind is reached from the network too.
        &[
            "--bind",
            "127.0.0.1:0",
            "--public-url",
            "https://home.example/askgate",
        ],
    ];
    for flags in cases {
        let output = askgate()
            .args(["serve", "--data-dir", "none"])
            .args(flags)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(
            stderr.contains("without credentials"),
            "{flags:?}: {stderr}"
        );
    }
}

#[test]
fn off_loopback_with_a_data_dir_tokens_are_made_once_and_kept_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("askgate-tokens-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = askgate()
        .args([
            "serve",
            "--bind",
            "0.0.0.0:0",
            "--log-level",
            "warn",
            "--data-dir",
        ])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("askgate listening"), "{line}");
    let tokens = std::fs::read_to_string(dir.join("tokens")).unwrap();
    let mode = std::fs::metadata(dir.join("tokens"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the tokens file is its owner's alone");
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let agent = tokens
        .lines()
        .find_map(|l| l.strip_prefix("agent="))
        .unwrap();
    assert!(
        stderr.contains(agent),
        "printed once, with how to use it: {stderr}"
    );
    let rotated = askgate()
        .args(["tokens", "rotate", "agent", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(rotated.status.code(), Some(0));
    let after = std::fs::read_to_string(dir.join("tokens")).unwrap();
    assert!(!after.contains(agent), "rotate makes a new agent token");
    assert_eq!(
        after.lines().nth(1),
        tokens.lines().nth(1),
        "and keeps the human's"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
