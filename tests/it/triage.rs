//! The human's triage of many agents (docs/PROTOCOL.md §7) over loopback:
//! the agents waiting, pausing one, and the stop switch for one agent or
//! all; each journaled (kept across a restart) and audited, and bad input
//! a 400 that changes nothing.

use crate::support::{Client, TempDir, TestServer};
use serde_json::{Value, json};
use std::fs;

/// An approval from `agent` in `session_id`; its id.
fn ask(server: &Client, agent: &str, session_id: &str, command: &str) -> String {
    let body = json!({"session_id": session_id, "command": command, "agent": agent});
    let reply = server.post("/api/approval/submit", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["approval_id"].as_str().unwrap().to_string()
}

fn agents(server: &Client) -> Value {
    let reply = server.get("/api/agents");
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["agents"].clone()
}

fn status(server: &Client, session_id: &str, id: &str) -> Value {
    let path = format!("/api/approval/wait?session_id={session_id}&approval_id={id}&timeout=0");
    server.get(&path).outcome()["status"].clone()
}

fn pause(server: &Client, agent: &str, paused: bool) -> u16 {
    let body = json!({"agent": agent, "paused": paused});
    server.post("/api/agents/pause", &body).status
}

#[test]
fn the_agents_waiting_are_listed_by_name_with_their_sessions_and_counts() {
    let server = TestServer::start(&[]);
    ask(&server, "claude-code", "web-1a2b", "make test");
    ask(&server, "claude-code", "web-1a2b", "make lint");
    ask(&server, "codex", "api-9f8e", "cargo build");
    server.submit_clarify("api-9f8e", "Which database?");

    assert_eq!(
        agents(&server),
        json!([
            {"agent": "agent", "paused": false, "sessions": ["api-9f8e"],
             "pending": {"clarify": 1, "approval": 0}},
            {"agent": "claude-code", "paused": false, "sessions": ["web-1a2b"],
             "pending": {"clarify": 0, "approval": 2}},
            {"agent": "codex", "paused": false, "sessions": ["api-9f8e"],
             "pending": {"clarify": 0, "approval": 1}},
        ])
    );
}

#[test]
fn stop_cancels_every_prompt_of_one_agent_and_leaves_the_others_waiting() {
    let server = TestServer::start(&[]);
    let first = ask(&server, "codex", "api", "cargo build");
    let second = ask(&server, "codex", "api", "cargo test");
    let third = ask(&server, "codex", "other", "rm -rf target");
    let kept = ask(&server, "claude-code", "web", "make test");

    let reply = server.post("/api/agents/stop", &json!({"agent": "codex"}));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let mut cancelled: Vec<String> =
        serde_json::from_value(reply.json()["cancelled"].clone()).unwrap();
    cancelled.sort();
    let mut expected = vec![first.clone(), second.clone(), third.clone()];
    expected.sort();
    assert_eq!(cancelled, expected);
    for (session_id, id) in [("api", &first), ("api", &second), ("other", &third)] {
        assert_eq!(status(&server, session_id, id), "cancelled");
    }
    assert_eq!(status(&server, "web", &kept), "pending");

    let reply = server.post("/api/agents/stop", &json!({"all": true}));
    assert_eq!(reply.json()["cancelled"], json!([kept]));
    assert_eq!(status(&server, "web", &kept), "cancelled");
    assert_eq!(agents(&server), json!([]));
}

#[test]
fn bad_triage_requests_are_400s_that_change_nothing() {
    let server = TestServer::start(&[]);
    let id = ask(&server, "codex", "api", "cargo build");
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
        let reply = server.post(path, &body);
        assert_eq!(reply.status, 400, "{path} {body}: {}", reply.text());
        assert!(reply.json()["error"].is_string(), "{}", reply.text());
    }
    assert_eq!(status(&server, "api", &id), "pending");
    assert_eq!(agents(&server)[0]["paused"], false);
}

#[test]
fn paused_agents_are_bounded() {
    let server = TestServer::start(&[]);
    for n in 0..64 {
        assert_eq!(pause(&server, &format!("agent-{n}"), true), 200);
    }
    let reply = server.post(
        "/api/agents/pause",
        &json!({"agent": "one-more", "paused": true}),
    );
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
    let dir = TempDir::new("triage");
    let data_dir = dir.join("data");
    let flags = ["--data-dir", data_dir.to_str().unwrap()];
    let server = TestServer::start(&flags);
    let id = ask(&server, "codex", "api", "cargo build");
    assert_eq!(pause(&server, "codex", true), 200);
    assert_eq!(pause(&server, "claude-code", true), 200);
    assert_eq!(pause(&server, "claude-code", false), 200);
    drop(server);

    let server = TestServer::start(&flags);
    let listed = agents(&server);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(
        (&listed[0]["agent"], &listed[0]["paused"]),
        (&json!("codex"), &json!(true))
    );
    assert_eq!(
        status(&server, "api", &id),
        "pending",
        "a paused agent's prompt waits"
    );
    let reply = server.post("/api/agents/stop", &json!({"all": true}));
    assert_eq!(reply.status, 200);
    drop(server);

    let audit = fs::read_to_string(data_dir.join("audit.log")).unwrap();
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
            "event=agent_paused agent=codex by=human".into(),
            "event=agent_paused agent=claude-code by=human".into(),
            "event=agent_resumed agent=claude-code by=human".into(),
            "event=cancelled kind=approval id=".to_string() + &id,
        ]
    );
    assert!(
        audit.lines().last().unwrap().contains(" by=human"),
        "{audit}"
    );
}
