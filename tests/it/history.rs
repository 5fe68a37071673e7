//! `GET /api/history` (docs/PROTOCOL.md §3.4): a session's kept outcomes,
//! newest first, with what was asked; bounded, refused with a 400 for bad
//! input, and kept across a restart like the outcomes it reads.

use crate::support::{TempDir, TestServer};
use serde_json::{Value, json};

fn history(server: &TestServer, query: &str) -> (u16, Value) {
    let reply = server.get(&format!("/api/history?{query}"));
    (reply.status, reply.json())
}

/// The entries without their times, which the server's clock decides.
fn without_times(history: &Value) -> Vec<Value> {
    let entries = history["history"].as_array().expect("a list");
    let strip = |entry: &Value| {
        let mut entry = entry.clone();
        assert!(entry["at"].as_f64().is_some_and(|at| at > 0.0), "{entry}");
        entry.as_object_mut().unwrap().remove("at");
        entry
    };
    entries.iter().map(strip).collect()
}

/// In session `s`: a clarify answered, an approval denied, a clarify
/// cancelled, in that order; and one answered in session `other`.
fn seed(server: &TestServer) -> (String, String, String) {
    let answered = server.submit_clarify("s", "Which disk?");
    let body = json!({"session_id": "s", "clarify_id": answered, "response": " usb "});
    assert_eq!(server.post("/api/clarify/respond", &body).status, 200);
    let denied = server.submit_approval("s", "rm -rf /tmp/x", &[])["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"session_id": "s", "approval_id": denied, "choice": "deny"});
    assert_eq!(server.post("/api/approval/respond", &body).status, 200);
    let cancelled = server.submit_clarify("s", "Still there?");
    let body = json!({"session_id": "s", "clarify_id": cancelled});
    assert_eq!(server.post("/api/clarify/cancel", &body).status, 200);
    let other = server.submit_clarify("other", "Elsewhere?");
    let body = json!({"session_id": "other", "clarify_id": other, "response": "no"});
    assert_eq!(server.post("/api/clarify/respond", &body).status, 200);
    (answered, denied, cancelled)
}

fn expected(answered: &str, denied: &str, cancelled: &str) -> Vec<Value> {
    vec![
        json!({"kind": "clarify", "clarify_id": cancelled, "session_id": "s",
               "question": "Still there?", "status": "cancelled", "auto": false, "agent_name": "agent"}),
        json!({"kind": "approval", "approval_id": denied, "session_id": "s",
               "command": "rm -rf /tmp/x", "status": "answered", "choice": "deny", "auto": false, "agent_name": "agent"}),
        json!({"kind": "clarify", "clarify_id": answered, "session_id": "s",
               "question": "Which disk?", "status": "answered", "response": "usb", "auto": false, "agent_name": "agent"}),
    ]
}

#[test]
fn a_history_is_the_sessions_outcomes_newest_first() {
    let server = TestServer::start(&[]);
    let (answered, denied, cancelled) = seed(&server);
    let (status, body) = history(&server, "session_id=s");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["session_id"], "s");
    assert_eq!(
        without_times(&body),
        expected(&answered, &denied, &cancelled)
    );
    let (_, one) = history(&server, "session_id=s&limit=1");
    assert_eq!(
        without_times(&one),
        expected(&answered, &denied, &cancelled)[..1]
    );
    let (status, nobody) = history(&server, "session_id=nobody");
    assert_eq!((status, nobody["history"].clone()), (200, json!([])));
}

#[test]
fn a_session_answered_by_a_rule_shows_the_auto_answer() {
    let server = TestServer::start(&[]);
    let first = server.submit_approval("s", "make test", &[])["approval_id"].clone();
    let body = json!({"session_id": "s", "approval_id": first, "choice": "session"});
    assert_eq!(server.post("/api/approval/respond", &body).status, 200);
    let auto = server.submit_approval("s", "make test", &[]);
    assert_eq!(auto["auto"], true, "{auto}");
    let (_, body) = history(&server, "session_id=s");
    let entries = without_times(&body);
    assert_eq!(
        entries,
        [
            json!({"kind": "approval", "approval_id": auto["approval_id"], "session_id": "s",
                   "command": "make test", "status": "answered", "choice": "session", "auto": true, "agent_name": "agent"}),
            json!({"kind": "approval", "approval_id": first, "session_id": "s",
                   "command": "make test", "status": "answered", "choice": "session", "auto": false, "agent_name": "agent"}),
        ]
    );
}

#[test]
fn bad_history_requests_are_400_and_other_methods_405() {
    let server = TestServer::start(&[]);
    let refused = [
        ("", "session_id is required"),
        ("session_id=a%20b", ""),
        ("session_id=s&limit=0", "limit must be 1 to 50"),
        ("session_id=s&limit=51", "limit must be 1 to 50"),
        ("session_id=s&limit=many", ""),
    ];
    for (query, message) in refused {
        let (status, body) = history(&server, query);
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(message),
            "{query}: {body}"
        );
    }
    let reply = server.post("/api/history", &json!({"session_id": "s"}));
    assert_eq!(reply.status, 405, "{}", reply.text());
}

#[test]
fn a_history_is_kept_across_a_restart() {
    let dir = TempDir::new("history");
    let data = dir.path.to_str().unwrap().to_string();
    let server = TestServer::start(&["--data-dir", &data]);
    let (answered, denied, cancelled) = seed(&server);
    let (_, before) = history(&server, "session_id=s");
    server.server.shutdown();

    let server = TestServer::start(&["--data-dir", &data]);
    let (_, after) = history(&server, "session_id=s");
    assert_eq!(after, before);
    assert_eq!(
        without_times(&after),
        expected(&answered, &denied, &cancelled)
    );
}
