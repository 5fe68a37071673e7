//! `askgate approve ... -- CMD ARGS`: the command runs only when approved,
//! the human sees exactly what runs, and its exit status comes back.

use crate::binary::{answer, ask, finish};
use crate::support::{DEADLINE, TempDir, TestServer};
use serde_json::json;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn an_approved_command_runs_and_its_exit_status_comes_back() {
    let server = TestServer::start(&[]);
    let child = ask(
        server.addr,
        &["approve", "--session", "s", "--", "sh", "-c", "exit 7"],
    );
    let head = answer(&server, "approval", "s", "once");
    assert_eq!(head["command"], "sh -c 'exit 7'", "the human saw the argv");
    let output = finish(child, DEADLINE);
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));

    // Its stdout is the command's alone; an explicit --command equal to the
    // quoted argv is accepted.
    let child = ask(
        server.addr,
        &[
            "approve",
            "--session",
            "s",
            "--command",
            "echo 'hello world'",
            "--",
            "echo",
            "hello world",
        ],
    );
    answer(&server, "approval", "s", "once");
    let output = finish(child, DEADLINE);
    assert_eq!(
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).as_ref()
        ),
        (Some(0), "hello world\n"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_denied_or_unanswered_command_never_runs() {
    let server = TestServer::start(&[]);
    let dir = TempDir::new("wrapper");
    let marker = dir.join("ran");
    let marker = marker.to_str().unwrap();
    let child = ask(
        server.addr,
        &["approve", "--session", "d", "--", "touch", marker],
    );
    answer(&server, "approval", "d", "deny");
    let output = finish(child, DEADLINE);
    assert_eq!(output.status.code(), Some(77), "{}", stderr(&output));
    assert!(!dir.join("ran").exists(), "a denied command did not run");

    let expired = ask(
        server.addr,
        &[
            "approve",
            "--session",
            "d",
            "--timeout",
            "1",
            "--",
            "touch",
            marker,
        ],
    );
    assert_eq!(finish(expired, DEADLINE).status.code(), Some(75));
    assert!(!dir.join("ran").exists(), "an expired approval ran nothing");

    // The same command, approved, does run: the marker proves the test.
    let child = ask(
        server.addr,
        &["approve", "--session", "d", "--", "touch", marker],
    );
    answer(&server, "approval", "d", "once");
    assert_eq!(finish(child, DEADLINE).status.code(), Some(0));
    assert!(dir.join("ran").exists());
}

#[test]
fn a_command_named_otherwise_still_shows_and_runs_what_runs() {
    // `--command 'x' -- sh -c 'exit 7'`: the human sees and approves the
    // argv; 'x' is only the caller's name for it, in the description.
    let server = TestServer::start(&[]);
    let named = [
        "approve",
        "--session",
        "m",
        "--command",
        "x",
        "--",
        "sh",
        "-c",
        "exit 7",
    ];
    let child = ask(server.addr, &named);
    let head = answer(&server, "approval", "m", "once");
    assert_eq!(
        (&head["command"], &head["description"]),
        (&json!("sh -c 'exit 7'"), &json!("x")),
        "the human saw what runs"
    );
    let output = finish(child, DEADLINE);
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));

    let child = ask(server.addr, &named);
    answer(&server, "approval", "m", "deny");
    let output = finish(child, DEADLINE);
    assert_eq!(
        output.status.code(),
        Some(77),
        "denied, it did not run: 77, never a code the command could have said"
    );

    let output = finish(
        ask(server.addr, &["approve", "--session", "m", "--"]),
        DEADLINE,
    );
    assert_eq!(output.status.code(), Some(2));
    let poll = server.get("/api/approval/pending?session_id=m").json();
    assert_eq!(poll["pending_count"], 0, "nothing was asked");
}

#[test]
fn signals_and_missing_commands_have_the_shell_s_exit_codes() {
    let server = TestServer::start(&[]);
    for (argv, code) in [
        (&["sh", "-c", "kill -TERM $$"][..], 128 + 15),
        (&["/nonexistent/askgate-test-command"], 127),
    ] {
        let mut args = vec!["approve", "--session", "sig", "--"];
        args.extend(argv);
        let child = ask(server.addr, &args);
        answer(&server, "approval", "sig", "once");
        let output = finish(child, DEADLINE);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{argv:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn a_denial_and_a_command_that_exits_1_have_different_codes() {
    let server = TestServer::start(&[]);
    let fails = ["approve", "--session", "e", "--", "sh", "-c", "exit 1"];
    let child = ask(server.addr, &fails);
    answer(&server, "approval", "e", "once");
    assert_eq!(
        finish(child, DEADLINE).status.code(),
        Some(1),
        "the command's own 1"
    );
    let child = ask(server.addr, &fails);
    answer(&server, "approval", "e", "deny");
    assert_eq!(
        finish(child, DEADLINE).status.code(),
        Some(77),
        "the human's no"
    );

    let plain = ask(
        server.addr,
        &["approve", "--session", "e", "--command", "x"],
    );
    answer(&server, "approval", "e", "deny");
    assert_eq!(
        finish(plain, DEADLINE).status.code(),
        Some(1),
        "without -- CMD, a denial is still 1 (docs/PROTOCOL.md §5.3)"
    );
}

#[test]
fn a_wrapper_that_cannot_reach_the_server_says_69_and_runs_nothing() {
    let dir = TempDir::new("wrapper-down");
    let marker = dir.join("ran");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let child = ask(
        addr,
        &[
            "approve",
            "--session",
            "f",
            "--retry-secs",
            "0",
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
    );
    let output = finish(child, DEADLINE);
    assert_eq!(output.status.code(), Some(69), "{}", stderr(&output));
    assert!(!marker.exists());
}

/// Answers the head approval of `session_id` with this body's fields.
fn answer_with(
    server: &TestServer,
    session_id: &str,
    fields: serde_json::Value,
) -> serde_json::Value {
    let head = crate::binary::pending_head(server, "approval", session_id);
    let mut body = json!({"session_id": session_id, "approval_id": head["approval_id"]});
    body.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    let reply = server.post("/api/approval/respond", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    head
}

#[test]
fn a_deny_reason_and_a_note_are_printed_on_stderr() {
    let server = TestServer::start(&[]);
    let child = ask(
        server.addr,
        &["approve", "--session", "r", "--command", "make deploy"],
    );
    answer_with(
        &server,
        "r",
        json!({"choice": "deny", "reason": "use the make target\u{1b}[2J"}),
    );
    let output = finish(child, DEADLINE);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("denied: use the make target\\u{1b}[2J"),
        "the reason, escaped: {}",
        stderr(&output)
    );
    let child = ask(
        server.addr,
        &["approve", "--session", "r", "--command", "make test"],
    );
    answer_with(
        &server,
        "r",
        json!({"choice": "once", "note": "then tell me"}),
    );
    let output = finish(child, DEADLINE);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("note: then tell me"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn an_edited_command_is_printed_then_run_through_sh() {
    let server = TestServer::start(&[]);
    let dir = TempDir::new("edited");
    let asked = dir.join("asked");
    let edited = dir.join("edited");
    let (asked, edited) = (asked.to_str().unwrap(), edited.to_str().unwrap());
    let child = ask(
        server.addr,
        &["approve", "--session", "e", "--", "touch", asked],
    );
    let command = format!("touch '{edited}' && exit 5");
    answer_with(
        &server,
        "e",
        json!({"choice": "once", "edited": {"type": "command", "command": command}}),
    );
    let output = finish(child, DEADLINE);
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("as the human edited it: {command}")),
        "printed before it runs: {}",
        stderr(&output)
    );
    assert!(!dir.join("asked").exists(), "what was asked did not run");
    assert!(dir.join("edited").exists(), "what was approved ran");

    // Without -- CMD: the edited command on stdout, and not exit 0, so
    // `askgate approve && CMD` does not run what was not approved.
    let child = ask(
        server.addr,
        &["approve", "--session", "e", "--command", "make deploy"],
    );
    answer_with(
        &server,
        "e",
        json!({"choice": "once", "edited": {"type": "command", "command": "make deploy --dry-run"}}),
    );
    let output = finish(child, DEADLINE);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "make deploy --dry-run\n"
    );
}

#[test]
fn clarify_with_a_schema_prints_the_json_object_and_multiple_the_picks() {
    let server = TestServer::start(&[]);
    let dir = TempDir::new("schema");
    let schema = dir.join("form.json");
    let form = json!({"type": "object", "properties": {
        "name": {"type": "string"}, "replicas": {"type": "integer", "minimum": 1}},
        "required": ["name"]});
    std::fs::write(&schema, form.to_string()).unwrap();
    let child = ask(
        server.addr,
        &[
            "clarify",
            "--session",
            "f",
            "Set up?",
            "--schema",
            schema.to_str().unwrap(),
        ],
    );
    let head = crate::binary::pending_head(&server, "clarify", "f");
    assert_eq!(head["schema"], form);
    let answer = json!({"name": "db1", "replicas": 2});
    let body = json!({"session_id": "f", "clarify_id": head["clarify_id"], "response": answer});
    assert_eq!(server.post("/api/clarify/respond", &body).status, 200);
    let output = finish(child, DEADLINE);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, answer);

    let child = ask(
        server.addr,
        &[
            "clarify",
            "--session",
            "m",
            "Which?",
            "--choice",
            "a",
            "--choice",
            "b",
            "--multiple",
        ],
    );
    let head = crate::binary::pending_head(&server, "clarify", "m");
    let body = json!({"session_id": "m", "clarify_id": head["clarify_id"], "response": ["b", "a"]});
    assert_eq!(server.post("/api/clarify/respond", &body).status, 200);
    let output = finish(child, DEADLINE);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "b\na\n");
}
