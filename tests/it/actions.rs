//! Issue 19 over loopback: every action type submitted and shown (pending,
//! per-kind stream, /api/events) with its action and a command summary;
//! bad shapes refused naming the field; answers with a deny's reason, an
//! edited action and a note, and the 400s where they do not apply; rules
//! on exactly one non-command action; forms and multiple choices checked
//! by the server; the hermes-webui wire (no `expires_at` for a prompt that
//! never expires).

use crate::support::{Client, TestServer};
use serde_json::{Value, json};

fn submit(server: &Client, session_id: &str, action: Value) -> String {
    let body = json!({"session_id": session_id, "action": action, "timeout_seconds": 0});
    let reply = server.post("/api/approval/submit", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["approval_id"]
        .as_str()
        .expect("queued")
        .to_string()
}

fn pending(server: &Client, kind: &str, session_id: &str) -> Value {
    let reply = server.get(&format!("/api/{kind}/pending?session_id={session_id}"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// The outcome a wait says, without its receipt (tests/it/receipts.rs).
fn wait(server: &Client, kind: &str, session_id: &str, id: &str) -> Value {
    let path = format!("/api/{kind}/wait?session_id={session_id}&{kind}_id={id}&timeout=0");
    server.get(&path).outcome()
}

fn respond(server: &Client, kind: &str, body: Value) -> (u16, Value) {
    let reply = server.post(&format!("/api/{kind}/respond"), &body);
    (reply.status, reply.json())
}

fn edit() -> Value {
    json!({"type": "edit", "path": "config.toml", "edits": [
        {"old": "debug = false", "new": "debug = true\nlevel = 3\nx = 1"}]})
}

#[test]
fn every_action_type_is_shown_with_its_action_and_a_one_line_command() {
    let server = TestServer::start(&[]);
    let cases = [
        (
            json!({"type": "command", "command": "make test", "cwd": "/src"}),
            "make test",
        ),
        (edit(), "edit config.toml (1 edit, +3 -1)"),
        (
            json!({"type": "write", "path": "notes.md", "content": "a\nb\n"}),
            "write notes.md (4 bytes, 2 lines)",
        ),
        (
            json!({"type": "fetch", "url": "https://example.org/x", "method": "POST"}),
            "fetch POST https://example.org/x",
        ),
        (
            json!({"type": "tool", "name": "mcp__db__query", "input": {"sql": "select 1", "db": "main"}}),
            "tool mcp__db__query (2 inputs)",
        ),
    ];
    for (n, (action, summary)) in cases.into_iter().enumerate() {
        let session_id = format!("act{n}");
        let mut per_kind = server.stream(&format!("/api/approval/stream?session_id={session_id}"));
        per_kind.expect_event("initial");
        let mut events = server.stream(&format!("/api/events?session_id={session_id}"));
        events.events_until("ready");
        let body = json!({"session_id": session_id, "action": action, "agent": "claude-code",
            "cwd": "/src", "reason": "to check the build", "timeout_seconds": 0});
        let reply = server.post("/api/approval/submit", &body);
        assert_eq!(reply.status, 200, "{}", reply.text());
        let heads = [
            pending(&server, "approval", &session_id)["pending"].clone(),
            per_kind.expect_event("approval").json()["pending"].clone(),
            events.expect_event("approval").json()["pending"].clone(),
        ];
        for head in heads {
            assert_eq!(head["action"], action, "{head}");
            assert_eq!(head["command"], summary, "{head}");
            assert_eq!(head["agent"], "claude-code");
            assert_eq!(head["reason"], "to check the build");
            assert_eq!(head["cwd"], "/src");
            assert_eq!(
                head["expires_at"],
                Value::Null,
                "never expires: no deadline"
            );
        }
    }
}

#[test]
fn a_bad_action_is_a_400_naming_the_field_and_changes_nothing() {
    let server = TestServer::start(&[]);
    let before = pending(&server, "approval", "bad");
    let long = "x".repeat(61 * 1024);
    let cases = [
        (
            json!({"command": "ls", "action": {"type": "command", "command": "ls"}}),
            "either command or action",
        ),
        (json!({"action": "ls"}), "action must be an object"),
        (
            json!({"action": {"type": "delete"}}),
            "action.type must be one of",
        ),
        (
            json!({"action": {"type": "command"}}),
            "action.command is required",
        ),
        (
            json!({"action": {"type": "edit", "path": "a", "edits": [{"old": 1, "new": "b"}]}}),
            "action.edits[0].old must be a string",
        ),
        (
            json!({"action": {"type": "edit", "path": "a", "edits": []}}),
            "action.edits must be a list",
        ),
        (
            json!({"action": {"type": "write", "path": "a\u{1b}[2J", "content": ""}}),
            "action.path must be one line",
        ),
        (
            json!({"action": {"type": "write", "path": "a", "content": long}}),
            "action.content is longer than",
        ),
        (
            json!({"action": {"type": "fetch", "url": "not a url"}}),
            "action.url must be an absolute URL",
        ),
        (
            json!({"action": {"type": "tool", "name": "t", "input": "x"}}),
            "action.input must be an object",
        ),
        (
            json!({"action": {"type": "write", "path": "a", "content": "", "mode": "0777"}}),
            "action.mode is not a field",
        ),
        (
            json!({"command": "ls", "agent": "a\nb"}),
            "agent must be one line",
        ),
        (
            json!({"command": "ls", "reason": "r".repeat(2049)}),
            "reason is longer than 2048 bytes",
        ),
    ];
    for (mut body, message) in cases {
        body["session_id"] = json!("bad");
        let reply = server.post("/api/approval/submit", &body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        let error = reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains(message), "{message:?} in {error:?}");
    }
    assert_eq!(
        pending(&server, "approval", "bad"),
        before,
        "nothing changed"
    );
}

#[test]
fn a_deny_carries_its_reason_and_an_approval_its_edit_and_note() {
    let server = TestServer::start(&[]);
    let denied = submit(
        &server,
        "ans",
        json!({"type": "command", "command": "rm -rf build"}),
    );
    let body = json!({"session_id": "ans", "approval_id": denied, "choice": "deny",
        "reason": "use the make target"});
    assert_eq!(respond(&server, "approval", body).0, 200);
    assert_eq!(
        wait(&server, "approval", "ans", &denied),
        json!({"status": "answered", "choice": "deny", "reason": "use the make target"})
    );

    let edited_id = submit(&server, "ans", edit());
    let edited = json!({"type": "edit", "path": "config.toml", "edits": [
        {"old": "debug = false", "new": "debug = true"}]});
    let body = json!({"session_id": "ans", "approval_id": edited_id, "choice": "once",
        "edited": edited, "note": "only the flag"});
    assert_eq!(respond(&server, "approval", body).0, 200);
    assert_eq!(
        wait(&server, "approval", "ans", &edited_id),
        json!({"status": "answered", "choice": "once", "edited": edited, "note": "only the flag"})
    );

    let history = server.get("/api/history?session_id=ans").json();
    let entry = &history["history"][0];
    assert_eq!(
        (&entry["approval_id"], &entry["action"], &entry["edited"]),
        (&json!(edited_id), &edit(), &edited),
        "the history shows the action asked and the one approved"
    );

    let command = submit(
        &server,
        "ans",
        json!({"type": "command", "command": "make deploy"}),
    );
    let body = json!({"session_id": "ans", "approval_id": command, "choice": "once",
        "edited": {"type": "command", "command": "make deploy --dry-run"}});
    assert_eq!(respond(&server, "approval", body).0, 200);
    let answer = wait(&server, "approval", "ans", &command);
    assert_eq!(answer["edited"]["command"], "make deploy --dry-run");
    let history = server.get("/api/history?session_id=ans").json();
    assert_eq!(
        history["history"][0]["command"], "make deploy",
        "what was asked"
    );
    assert_eq!(
        history["history"][0]["edited"]["command"], "make deploy --dry-run",
        "and what was approved"
    );
}

#[test]
fn answer_fields_where_they_do_not_apply_are_400_and_change_nothing() {
    let server = TestServer::start(&[]);
    let id = submit(&server, "no", edit());
    let other_path = json!({"type": "edit", "path": "other.toml", "edits": [
        {"old": "debug = false", "new": "x"}]});
    let other_old = json!({"type": "edit", "path": "config.toml", "edits": [
        {"old": "something else", "new": "x"}]});
    let cases = [
        (
            json!({"choice": "once", "reason": "why"}),
            "reason goes only with the deny choice",
        ),
        (
            json!({"choice": "deny", "note": "hi"}),
            "note goes only with an approving choice",
        ),
        (
            json!({"choice": "session", "edited": edit()}),
            "an edited answer never grants a rule",
        ),
        (
            json!({"choice": "always", "edited": edit()}),
            "an edited answer never grants a rule",
        ),
        (
            json!({"choice": "deny", "edited": edit()}),
            "edited goes only with the once choice",
        ),
        (
            json!({"choice": "once", "edited": {"type": "write", "path": "config.toml", "content": ""}}),
            "edited.type must be edit",
        ),
        (
            json!({"choice": "once", "edited": other_path}),
            "edited.path must be the one asked",
        ),
        (
            json!({"choice": "once", "edited": other_old}),
            "edited.edits[].old must be the one asked",
        ),
        (
            json!({"choice": "once", "edited": {"type": "edit"}}),
            "edited.path is required",
        ),
        (
            json!({"choice": "deny", "reason": "r".repeat(2049)}),
            "reason is longer than 2048 bytes",
        ),
        (
            json!({"choice": "once", "reason": 7}),
            "reason must be a string",
        ),
        (
            json!({"choice": "session", "scope": "edit"}),
            "scope applies only to command actions",
        ),
    ];
    for (mut body, message) in cases {
        body["session_id"] = json!("no");
        body["approval_id"] = json!(id);
        let (status, reply) = respond(&server, "approval", body.clone());
        assert_eq!(status, 400, "{body}: {reply}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{message:?} in {error:?}");
    }
    assert_eq!(wait(&server, "approval", "no", &id)["status"], "pending");
    assert_eq!(server.get("/api/rules").json()["rules"], json!([]));
}

#[test]
fn a_rule_on_an_action_that_is_not_a_command_covers_that_exact_action_only() {
    let server = TestServer::start(&[]);
    let first = submit(&server, "r1", edit());
    let body = json!({"session_id": "r1", "approval_id": first, "choice": "always"});
    assert_eq!(respond(&server, "approval", body).0, 200);
    let rules = server.get("/api/rules").json()["rules"].clone();
    assert_eq!(rules[0]["scope"], json!({"action": edit()}), "{rules}");
    assert_eq!(rules[0]["command"], "edit config.toml (1 edit, +3 -1)");

    let again = json!({"session_id": "r2", "action": edit()});
    let reply = server.post("/api/approval/submit", &again).json();
    assert_eq!(
        (reply["status"].as_str(), reply["auto"].as_bool()),
        (Some("answered"), Some(true))
    );
    assert_eq!(reply["choice"], "always");

    let mut other = edit();
    other["edits"][0]["new"] = json!("debug = true\nrm = 1\nx = 1");
    let same_summary = json!({"type": "command", "command": "edit config.toml (1 edit, +3 -1)"});
    let other_path = json!({"type": "edit", "path": "other.toml", "edits": edit()["edits"]});
    for action in [other, same_summary, other_path] {
        let body = json!({"session_id": "r2", "action": action});
        let reply = server.post("/api/approval/submit", &body).json();
        assert!(
            reply["approval_id"].is_string() && reply.get("status").is_none(),
            "{action}: {reply}"
        );
    }

    let fetch = json!({"type": "fetch", "url": "https://example.org/a"});
    let id = submit(&server, "s1", fetch.clone());
    let body = json!({"session_id": "s1", "approval_id": id, "choice": "session"});
    assert_eq!(respond(&server, "approval", body).0, 200);
    let here = server.post(
        "/api/approval/submit",
        &json!({"session_id": "s1", "action": fetch}),
    );
    assert_eq!(
        here.json()["choice"],
        "session",
        "the same fetch in the same session"
    );
    let elsewhere = server.post(
        "/api/approval/submit",
        &json!({"session_id": "s2", "action": fetch}),
    );
    assert!(
        elsewhere.json()["approval_id"].is_string() && elsewhere.json().get("status").is_none()
    );
}

fn form() -> Value {
    json!({"type": "object", "properties": {
        "name": {"type": "string", "title": "Name", "minLength": 1, "maxLength": 20},
        "email": {"type": "string", "format": "email"},
        "start": {"type": "string", "format": "date"},
        "db": {"type": "string", "enum": ["pg", "my"], "enumNames": ["Postgres", "MySQL"]},
        "plan": {"type": "string", "oneOf": [{"const": "s", "title": "Small"}, {"const": "l", "title": "Large"}]},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 5, "default": 1},
        "ratio": {"type": "number", "minimum": 0, "maximum": 1},
        "backups": {"type": "boolean", "default": true},
        "regions": {"type": "array", "items": {"type": "string", "enum": ["eu", "us", "ap"]},
                    "minItems": 1, "maxItems": 2}
    }, "required": ["name", "db"]})
}

#[test]
fn a_form_is_checked_at_submit_and_every_answer_against_it() {
    let server = TestServer::start(&[]);
    let bad_schemas = [
        (json!("form"), "schema must be an object"),
        (
            json!({"type": "object", "properties": {"a": {"type": "object"}}}),
            "schema.properties.a.type",
        ),
        (
            json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}}),
            "schema.properties.a.pattern is not supported",
        ),
        (
            json!({"type": "object", "properties": {"a": {"type": "integer", "minimum": 5, "maximum": 1}}}),
            "schema.properties.a.minimum",
        ),
        (
            json!({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string"}}}}),
            "schema.properties.a.items",
        ),
        (
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}),
            "schema.required",
        ),
    ];
    for (schema, message) in bad_schemas {
        let body = json!({"session_id": "f", "question": "Set up?", "schema": schema});
        let reply = server.post("/api/clarify/submit", &body);
        assert_eq!(reply.status, 400, "{schema}");
        let error = reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains(message), "{message:?} in {error:?}");
    }
    assert_eq!(pending(&server, "clarify", "f")["pending_count"], 0);

    let body = json!({"session_id": "f", "question": "Set up?", "schema": form()});
    let reply = server.post("/api/clarify/submit", &body).json();
    let id = reply["clarify_id"].as_str().unwrap().to_string();
    assert_eq!(
        pending(&server, "clarify", "f")["pending"]["schema"],
        form()
    );
    let bad_answers = [
        (json!("yes"), "response must be an object"),
        (json!({"db": "pg"}), "response.name is required"),
        (
            json!({"name": "", "db": "pg"}),
            "response.name must be 1 to 20",
        ),
        (
            json!({"name": "a", "db": "oracle"}),
            "response.db must be one of",
        ),
        (
            json!({"name": "a", "db": "pg", "email": "nope"}),
            "response.email must be a valid email",
        ),
        (
            json!({"name": "a", "db": "pg", "start": "2025-13-01"}),
            "response.start must be a valid date",
        ),
        (
            json!({"name": "a", "db": "pg", "plan": "m"}),
            "response.plan must be one of",
        ),
        (
            json!({"name": "a", "db": "pg", "replicas": 9}),
            "response.replicas must be between",
        ),
        (
            json!({"name": "a", "db": "pg", "replicas": 2.5}),
            "response.replicas must be a whole number",
        ),
        (
            json!({"name": "a", "db": "pg", "ratio": "half"}),
            "response.ratio must be a number",
        ),
        (
            json!({"name": "a", "db": "pg", "backups": "yes"}),
            "response.backups must be true or false",
        ),
        (
            json!({"name": "a", "db": "pg", "regions": ["eu", "us", "ap"]}),
            "response.regions must pick",
        ),
        (
            json!({"name": "a", "db": "pg", "regions": ["mars"]}),
            "response.regions must list",
        ),
        (
            json!({"name": "a", "db": "pg", "admin": true}),
            "response.admin is not a field of the form",
        ),
    ];
    for (response, message) in bad_answers {
        let body = json!({"session_id": "f", "clarify_id": id, "response": response});
        let (status, reply) = respond(&server, "clarify", body);
        assert_eq!(status, 400, "{response}: {reply}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{message:?} in {error:?}");
    }
    assert_eq!(
        wait(&server, "clarify", "f", &id)["status"],
        "pending",
        "nothing changed"
    );

    let answer = json!({"name": "ann", "db": "pg", "email": "ann@example.org",
        "start": "2025-02-28", "plan": "l", "replicas": 3, "ratio": 0.5, "backups": false,
        "regions": ["eu", "ap"]});
    let body = json!({"session_id": "f", "clarify_id": id, "response": answer});
    assert_eq!(respond(&server, "clarify", body).0, 200);
    assert_eq!(
        wait(&server, "clarify", "f", &id),
        json!({"status": "answered", "response": answer})
    );
}

#[test]
fn multiple_choices_take_a_list_of_distinct_choices_offered() {
    let server = TestServer::start(&[]);
    let body = json!({"session_id": "m", "question": "Which?", "choices": ["a", "b", "c"],
        "multiple": true});
    let id = server.post("/api/clarify/submit", &body).json()["clarify_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        pending(&server, "clarify", "m")["pending"]["multiple"],
        true
    );
    let bad = [
        (json!("a"), "response must be a list"),
        (json!([]), "at least one"),
        (json!(["a", "d"]), "response[1] must be one of the choices"),
        (
            json!(["a", "a"]),
            "response[1] must be one of the choices offered, once",
        ),
        (json!([1]), "response must be a list of the choices picked"),
    ];
    for (response, message) in bad {
        let body = json!({"session_id": "m", "clarify_id": id, "response": response});
        let (status, reply) = respond(&server, "clarify", body);
        assert_eq!(status, 400, "{response}");
        assert!(
            reply["error"]
                .as_str()
                .unwrap_or_default()
                .contains(message),
            "{reply}"
        );
    }
    let body = json!({"session_id": "m", "clarify_id": id, "response": ["c", "a"]});
    assert_eq!(respond(&server, "clarify", body).0, 200);
    assert_eq!(
        wait(&server, "clarify", "m", &id)["response"],
        json!(["c", "a"])
    );

    let one = json!({"session_id": "m", "question": "Which?", "choices": ["a"], "multiple": true});
    assert_eq!(server.post("/api/clarify/submit", &one).status, 400);
    let single = json!({"session_id": "m", "question": "One?", "choices": ["a", "b"]});
    let id = server.post("/api/clarify/submit", &single).json()["clarify_id"].clone();
    let body = json!({"session_id": "m", "clarify_id": id, "response": ["a"]});
    assert_eq!(
        respond(&server, "clarify", body).0,
        400,
        "one choice is a string"
    );
}

#[test]
fn deny_reasons_reach_the_page_through_its_config() {
    let server = TestServer::start(&[
        "--deny-reasons",
        "not now; use the make target ;ask me first",
    ]);
    let config = server.get("/api/config").json();
    assert_eq!(
        config["deny_reasons"],
        json!(["not now", "use the make target", "ask me first"])
    );
}
