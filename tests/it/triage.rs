//! The human's triage of many agents (docs/PROTOCOL.md §3.6) over loopback,
//! with a named credential per agent (docs/PROTOCOL.md §7): the agents
//! waiting, pausing one, and the stop switch for one agent or all; each
//! journaled (kept across a restart) and audited, and bad input a 400 that
//! changes nothing. An agent is its credential: what it says of itself in
//! `agent` neither pauses nor stops another.

use crate::support::{Reply, TempDir, TestServer};
use askgate::serve::auth::Role;
use askgate::serve::credentials;
use serde_json::{Value, json};
use std::fs;

const AGENT: &str = "triage-agent-token-0123456789";
const HUMAN: &str = "triage-human-token-0123456789";

/// A server on `dir` with the legacy tokens and the agents `codex` and
/// `claude-code`; their tokens.
struct Desk {
    server: TestServer,
    codex: String,
    claude: String,
}

fn desk(dir: &TempDir) -> Desk {
    let codex = credentials::add(&dir.path, Role::Agent, "codex").unwrap();
    let claude = credentials::add(&dir.path, Role::Agent, "claude-code").unwrap();
    Desk {
        server: start(dir),
        codex,
        claude,
    }
}

fn start(dir: &TempDir) -> TestServer {
    TestServer::with_tokens(dir, AGENT, HUMAN, &[])
}

/// An approval from the agent holding `token`; its id. It also names
/// itself `claude-code`, which changes nothing.
fn ask(server: &TestServer, token: &str, session_id: &str, command: &str) -> String {
    let body = json!({"session_id": session_id, "command": command, "agent": "claude-code"});
    let reply = server.call(token, "POST", "/api/approval/submit", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["approval_id"].as_str().unwrap().to_string()
}

fn human(server: &TestServer, path: &str, body: &Value) -> Reply {
    let method = if body.is_null() { "GET" } else { "POST" };
    server.call(HUMAN, method, path, body)
}

fn agents(server: &TestServer) -> Value {
    let reply = human(server, "/api/agents", &Value::Null);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["agents"].clone()
}

fn status(server: &TestServer, token: &str, session_id: &str, id: &str) -> Value {
    let path = format!("/api/approval/wait?session_id={session_id}&approval_id={id}&timeout=0");
    let reply = server.call(token, "GET", &path, &Value::Null);
    reply.outcome()["status"].clone()
}

fn pause(server: &TestServer, agent: &str, paused: bool) -> u16 {
    let body = json!({"agent": agent, "paused": paused});
    human(server, "/api/agents/pause", &body).status
}

#[test]
fn the_agents_waiting_are_listed_by_credential_with_their_sessions_and_counts() {
    let dir = TempDir::new("triage-list");
    let Desk {
        server,
        codex,
        claude,
    } = desk(&dir);
    ask(&server, &claude, "web-1a2b", "make test");
    ask(&server, &claude, "web-1a2b", "make lint");
    ask(&server, &codex, "api-9f8e", "cargo build");
    let body = json!({"session_id": "docs", "question": "Which database?"});
    let reply = server.call(AGENT, "POST", "/api/clarify/submit", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());

    assert_eq!(
        agents(&server),
        json!([
            {"agent": "agent", "paused": false, "sessions": ["docs"], "session_count": 1,
             "pending": {"clarify": 1, "approval": 0}},
            {"agent": "claude-code", "paused": false, "sessions": ["web-1a2b"],
             "session_count": 1, "pending": {"clarify": 0, "approval": 2}},
            {"agent": "codex", "paused": false, "sessions": ["api-9f8e"],
             "session_count": 1, "pending": {"clarify": 0, "approval": 1}},
        ])
    );
}

#[test]
fn stop_cancels_every_prompt_of_one_agent_and_leaves_the_others_waiting() {
    let dir = TempDir::new("triage-stop");
    let Desk {
        server,
        codex,
        claude,
    } = desk(&dir);
    let first = ask(&server, &codex, "api", "cargo build");
    let second = ask(&server, &codex, "api", "cargo test");
    let third = ask(&server, &codex, "other", "rm -rf target");
    // Named `claude-code` by its credential and by itself alike: a stop of
    // `codex` is about the credential, whatever a prompt says it is.
    let kept = ask(&server, &claude, "web", "make test");

    let reply = human(&server, "/api/agents/stop", &json!({"agent": "codex"}));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let mut cancelled: Vec<String> =
        serde_json::from_value(reply.json()["cancelled"].clone()).unwrap();
    cancelled.sort();
    let mut expected = vec![first.clone(), second.clone(), third.clone()];
    expected.sort();
    assert_eq!(cancelled, expected);
    for (session_id, id) in [("api", &first), ("api", &second), ("other", &third)] {
        assert_eq!(status(&server, &codex, session_id, id), "cancelled");
    }
    assert_eq!(status(&server, &claude, "web", &kept), "pending");

    let reply = human(&server, "/api/agents/stop", &json!({"all": true}));
    assert_eq!(reply.json()["cancelled"], json!([kept]));
    assert_eq!(status(&server, &claude, "web", &kept), "cancelled");
    assert_eq!(agents(&server), json!([]));
}

#[test]
fn an_agent_can_neither_pause_nor_stop_nor_list() {
    let dir = TempDir::new("triage-roles");
    let Desk { server, codex, .. } = desk(&dir);
    let id = ask(&server, &codex, "api", "cargo build");
    for (method, path, body) in [
        ("GET", "/api/agents", Value::Null),
        (
            "POST",
            "/api/agents/pause",
            json!({"agent": "codex", "paused": false}),
        ),
        ("POST", "/api/agents/stop", json!({"all": true})),
    ] {
        let reply = server.call(&codex, method, path, &body);
        assert_eq!(reply.status, 403, "{path}: {}", reply.text());
    }
    assert_eq!(status(&server, &codex, "api", &id), "pending");
}

#[test]
fn bad_triage_requests_are_400s_that_change_nothing() {
    let dir = TempDir::new("triage-bad");
    let Desk { server, codex, .. } = desk(&dir);
    let id = ask(&server, &codex, "api", "cargo build");
    for (path, body) in [
        ("/api/agents/stop", json!({})),
        ("/api/agents/stop", json!({"agent": "codex", "all": true})),
        ("/api/agents/stop", json!({"all": "yes"})),
        ("/api/agents/stop", json!({"agent": 7})),
        ("/api/agents/pause", json!({"agent": "codex"})),
        ("/api/agents/pause", json!({"paused": true})),
        ("/api/agents/pause", json!({"agent": "", "paused": true})),
        (
            "/api/agents/pause",
            json!({"agent": "x".repeat(129), "paused": true}),
        ),
        (
            "/api/agents/pause",
            json!({"agent": "codex", "paused": "yes"}),
        ),
    ] {
        let reply = human(&server, path, &body);
        assert_eq!(reply.status, 400, "{path} {body}: {}", reply.text());
        assert!(reply.json()["error"].is_string(), "{}", reply.text());
    }
    assert_eq!(status(&server, &codex, "api", &id), "pending");
    assert_eq!(agents(&server)[0]["paused"], false);
}

#[test]
fn paused_agents_are_bounded() {
    let dir = TempDir::new("triage-bound");
    let server = start(&dir);
    for n in 0..64 {
        assert_eq!(pause(&server, &format!("agent-{n}"), true), 200);
    }
    let body = json!({"agent": "one-more", "paused": true});
    let reply = human(&server, "/api/agents/pause", &body);
    assert_eq!(reply.status, 429, "{}", reply.text());
    assert_eq!(
        pause(&server, "agent-0", true),
        200,
        "pausing again changes nothing"
    );
    assert_eq!(pause(&server, "agent-0", false), 200);
    assert_eq!(pause(&server, "one-more", true), 200);
}

#[test]
fn a_pause_waits_out_a_restart_and_every_step_is_audited() {
    let dir = TempDir::new("triage-restart");
    let Desk { server, codex, .. } = desk(&dir);
    let id = ask(&server, &codex, "api", "cargo build");
    assert_eq!(pause(&server, "codex", true), 200);
    assert_eq!(pause(&server, "claude-code", true), 200);
    assert_eq!(pause(&server, "claude-code", false), 200);
    drop(server);

    let server = start(&dir);
    let listed = agents(&server);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(
        (&listed[0]["agent"], &listed[0]["paused"]),
        (&json!("codex"), &json!(true))
    );
    assert_eq!(
        status(&server, &codex, "api", &id),
        "pending",
        "a paused agent's prompt waits"
    );
    let reply = human(&server, "/api/agents/stop", &json!({"all": true}));
    assert_eq!(reply.status, 200);
    drop(server);

    let audit = fs::read_to_string(dir.join("audit.log")).unwrap();
    let events: Vec<String> = audit
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').skip(1).take(3).collect();
            fields.join(" ")
        })
        .collect();
    assert_eq!(
        events,
        [
            "event=asked kind=approval id=".to_string() + &id,
            "event=agent_paused agent=codex by=\"human".into(),
            "event=agent_paused agent=claude-code by=\"human".into(),
            "event=agent_resumed agent=claude-code by=\"human".into(),
            "event=cancelled kind=approval id=".to_string() + &id,
        ]
    );
    // The human's credential answered each: the legacy token's name.
    for line in audit.lines().skip(1) {
        assert!(line.contains(" by=\"human token\""), "{line}");
    }
}

/// An agent with prompts in many sessions (it picks every session id, up
/// to 128 bytes each) must not make each look at the list, which the page
/// takes again after every change, cost the human's browser megabytes:
/// 10,000 sessions made 1.28 MB a response. The list names the first few
/// sessions and counts them all.
#[test]
fn an_agent_in_many_sessions_is_listed_with_a_few_of_them_and_their_count() {
    let dir = TempDir::new("triage-many");
    let Desk { server, codex, .. } = desk(&dir);
    let long = "s".repeat(120);
    for n in 0..100 {
        ask(&server, &codex, &format!("{long}{n:03}"), "cargo build");
    }
    let listed = agents(&server);
    let codex = &listed[0];
    assert_eq!(codex["agent"], "codex", "{listed}");
    assert_eq!(codex["session_count"], 100);
    assert_eq!(codex["pending"]["approval"], 100);
    let sessions = codex["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 16, "{listed}");
    assert_eq!(sessions[0], format!("{long}000"));
}

/// The stop switch is wanted most when an agent has asked a lot: every
/// pending prompt it has, across thousands of sessions, is cancelled and
/// journaled, however many there are.
#[test]
fn the_stop_switch_cancels_thousands_of_prompts_at_once() {
    let dir = TempDir::new("triage-stop-many");
    let Desk { server, codex, .. } = desk(&dir);
    let long = "s".repeat(120);
    const PROMPTS: usize = 2_000;
    for n in 0..PROMPTS {
        ask(&server, &codex, &format!("{long}{n:04}"), "cargo build");
    }
    let reply = human(&server, "/api/agents/stop", &json!({"agent": "codex"}));
    assert_eq!(reply.status, 200, "{}", reply.text());
    // The body comes chunked, which this client leaves as it is: its ids
    // are counted by their quotes (the key's two aside).
    let cancelled = (reply.text().matches('"').count() - 2) / 2;
    assert_eq!(cancelled, PROMPTS);
    assert_eq!(agents(&server), json!([]));
    drop(server);
    let server = start(&dir);
    assert_eq!(agents(&server), json!([]), "journaled");
}
