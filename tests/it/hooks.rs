//! Agents' hooks against a real server: `askgate hook claude-code` with
//! Claude Code's hook input on stdin (what it asks, what each answer,
//! timeout and failure prints, and that a signal cancels the prompt, as for
//! `askgate approve` and `clarify`); and `contrib/hooks/pre-push` under a
//! real `git push` to a local repository. tests/agents drives the real
//! agents.

use crate::binary::{answer, askgate, finish};
use crate::support::{DEADLINE, TempDir, TestServer};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

pub fn hook(name: &str) -> String {
    format!("{}/contrib/hooks/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// PATH with the askgate under test first, as a user's install would be.
fn path_with_askgate() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_askgate")).parent().unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{}:{path}", bin.display())
}

/// `command` with askgate on its PATH, aimed at `url`, and no other askgate settings.
pub fn with_askgate<'a>(command: &'a mut Command, url: &str) -> &'a mut Command {
    for name in [
        "ASKGATE_TOKEN",
        "ASKGATE_SESSION",
        "ASKGATE_TIMEOUT",
        "ASKGATE_BIN",
        "ASKGATE_CA_FILE",
    ] {
        command.env_remove(name);
    }
    command
        .env("PATH", path_with_askgate())
        .env("ASKGATE_URL", url)
}

const AGENT: &str = "hooks-agent-token-0123456789";
const HUMAN: &str = "hooks-human-token-0123456789";

/// A server with both tokens: the hooks send the agent's, the test
/// answers with the human's, as the page does.
fn server_with_tokens() -> TestServer {
    TestServer::start(&["--agent-token", AGENT, "--human-token", HUMAN])
}

fn as_human(server: &TestServer, method: &str, path: &str, body: &Value) -> Value {
    let bearer = format!("Bearer {HUMAN}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let text = match method {
        "GET" => String::new(),
        _ => body.to_string(),
    };
    let reply = server.request(method, path, &headers, &text);
    assert_eq!(reply.status, 200, "{method} {path}: {}", reply.text());
    reply.json()
}

/// Blocks until an approval is pending in the session; its head.
fn human_pending(server: &TestServer, session_id: &str) -> Value {
    let mut since = 0;
    loop {
        let path = format!("/api/approval/pending?session_id={session_id}&since={since}&wait=5");
        let poll = as_human(server, "GET", &path, &Value::Null);
        if !poll["pending"].is_null() {
            return poll["pending"].clone();
        }
        since = poll["version"].as_u64().unwrap();
    }
}

/// Answers the session's pending approval as the human; its head.
fn human_answer(server: &TestServer, session_id: &str, choice: &str) -> Value {
    let head = human_pending(server, session_id);
    let body =
        json!({"session_id": session_id, "approval_id": head["approval_id"], "choice": choice});
    as_human(server, "POST", "/api/approval/respond", &body);
    head
}

/// `askgate hook AGENT ARGS` with `event` on its stdin, aimed at `url`
/// with the agent's token.
fn run_hook(url: &str, args: &[&str], event: &str) -> Child {
    let mut command = askgate();
    command
        .arg("hook")
        .args(args)
        .env("ASKGATE_URL", url)
        .env("ASKGATE_TOKEN", AGENT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in [
        "ASKGATE_SESSION",
        "ASKGATE_HOOK_TIMEOUT",
        "ASKGATE_ALLOW_TOOLS",
        "ASKGATE_ON_TIMEOUT",
        "ASKGATE_ON_ERROR",
    ] {
        command.env_remove(name);
    }
    let mut child = command.spawn().expect("the hook runs");
    // A hook that refuses its flags exits without reading its input.
    let _ = child.stdin.take().unwrap().write_all(event.as_bytes());
    child
}

/// The Claude Code answer the hook printed, exit 0:
/// (permissionDecision, permissionDecisionReason, the whole specific output).
fn decision(output: &Output) -> (String, String, Value) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout} {:?}",
        output.stderr
    );
    let said: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("not JSON: {stdout}"));
    let specific = &said["hookSpecificOutput"];
    assert_eq!(specific["hookEventName"], "PreToolUse", "{said}");
    let text = |field: &str| specific[field].as_str().unwrap_or_default().to_string();
    (
        text("permissionDecision"),
        text("permissionDecisionReason"),
        specific.clone(),
    )
}

const CLAUDE_SESSION: &str = "8d3f6a1e-0b7c-4c11-9a55-2f0e4f1b9c3d";

fn claude_event(tool_name: &str, tool_input: Value) -> String {
    json!({
        "session_id": CLAUDE_SESSION,
        "transcript_path": "/tmp/transcript.jsonl",
        "cwd": "/home/u/myrepo",
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": tool_name,
        "tool_input": tool_input,
        "tool_use_id": "toolu_01ABC123",
    })
    .to_string()
}

fn bash_event(command: &str) -> String {
    claude_event(
        "Bash",
        json!({"command": command, "description": "Remove the build folder"}),
    )
}

fn claude_session() -> String {
    askgate::hooks::session_name("/home/u/myrepo", CLAUDE_SESSION)
}

#[test]
fn the_claude_code_hook_allows_what_the_human_approves_and_denies_the_rest() {
    let server = server_with_tokens();
    let url = format!("http://{}", server.addr);
    let session_id = claude_session();
    assert!(session_id.starts_with("myrepo-"), "{session_id}");
    for (choice, expected) in [("once", "allow"), ("deny", "deny")] {
        let child = run_hook(&url, &["claude-code"], &bash_event("rm -rf ./build"));
        let head = human_answer(&server, &session_id, choice);
        assert_eq!(
            (
                &head["action"],
                &head["command"],
                &head["agent"],
                &head["reason"]
            ),
            (
                &json!({"type": "command", "command": "rm -rf ./build", "cwd": "/home/u/myrepo"}),
                &json!("rm -rf ./build"),
                &json!("claude-code"),
                &json!("Remove the build folder")
            ),
            "the human sees the command Claude would run, where, and Claude's claim apart"
        );
        let (decided, reason, _) = decision(&finish(child, DEADLINE));
        assert_eq!(decided, expected, "{choice}: {reason}");
        let said = match choice {
            "once" => "approved by the human through askgate (once)",
            _ => "denied by the human through askgate",
        };
        assert_eq!(reason, said);
    }
}

#[test]
fn the_claude_code_hook_shows_an_edit_whole_and_lets_read_only_tools_pass() {
    let server = server_with_tokens();
    let url = format!("http://{}", server.addr);
    let edit = json!({"file_path": "/home/u/myrepo/a.toml", "old_string": "port = 1", "new_string": "port = 2"});
    let child = run_hook(&url, &["claude-code"], &claude_event("Edit", edit));
    let head = human_answer(&server, &claude_session(), "once");
    assert_eq!(
        head["action"],
        json!({"type": "edit", "path": "/home/u/myrepo/a.toml",
               "edits": [{"old": "port = 1", "new": "port = 2"}]}),
        "the whole edit, for the page to show as a diff"
    );
    assert_eq!(
        head["command"],
        "edit /home/u/myrepo/a.toml (1 edit, +1 -1)"
    );
    assert_eq!(decision(&finish(child, DEADLINE)).0, "allow");

    // An edit of every occurrence is not the one replacement a diff would
    // show: the human sees the call whole, `replace_all` included.
    for (tool, input) in [
        (
            "Edit",
            json!({"file_path": "/home/u/myrepo/a.toml", "old_string": "1", "new_string": "2", "replace_all": true}),
        ),
        (
            "MultiEdit",
            json!({"file_path": "/home/u/myrepo/a.toml", "edits": [{"old_string": "1", "new_string": "2", "replace_all": true}]}),
        ),
    ] {
        let child = run_hook(&url, &["claude-code"], &claude_event(tool, input.clone()));
        let head = human_answer(&server, &claude_session(), "deny");
        assert_eq!(
            head["action"],
            json!({"type": "tool", "name": tool, "input": input}),
            "{tool}"
        );
        assert_eq!(decision(&finish(child, DEADLINE)).0, "deny");
    }

    // A read-only tool passes untouched: no output, nothing asked.
    let read = claude_event("Read", json!({"file_path": "/etc/hosts"}));
    let output = finish(run_hook(&url, &["claude-code"], &read), DEADLINE);
    assert_eq!((output.status.code(), output.stdout.len()), (Some(0), 0));
    // Unless the policy says otherwise.
    let child = run_hook(&url, &["claude-code", "--allow-tools", "Glob"], &read);
    human_answer(&server, &claude_session(), "deny");
    assert_eq!(decision(&finish(child, DEADLINE)).0, "deny");
}

#[test]
fn the_claude_code_hook_says_a_timeout_is_one_and_fails_closed() {
    let server = server_with_tokens();
    let url = format!("http://{}", server.addr);
    // No answer in time: said so, never as the human's denial.
    let child = run_hook(&url, &["claude-code", "--timeout", "1"], &bash_event("ls"));
    let (decided, reason, _) = decision(&finish(child, DEADLINE));
    assert_eq!(
        (decided.as_str(), reason.as_str()),
        (
            "deny",
            "no answer from the human within 1 s through askgate; not run"
        )
    );
    let child = run_hook(
        &url,
        &["claude-code", "--timeout=1", "--on-timeout=ask"],
        &bash_event("ls"),
    );
    let (decided, reason, _) = decision(&finish(child, DEADLINE));
    assert_eq!(
        (decided.as_str(), reason.as_str()),
        ("ask", "no answer from the human within 1 s through askgate")
    );

    // askgate unreachable, a wrong token: deny, saying what to fix.
    let gone = "http://127.0.0.1:1";
    let (decided, reason, _) = decision(&finish(
        run_hook(gone, &["claude-code"], &bash_event("ls")),
        DEADLINE,
    ));
    assert_eq!(decided, "deny");
    assert!(
        reason.contains("cannot reach the server") && reason.contains("start askgate"),
        "{reason}"
    );
    let mut command = askgate();
    command
        .args(["hook", "claude-code"])
        .env("ASKGATE_URL", &url)
        .env("ASKGATE_TOKEN", "not-the-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(bash_event("ls").as_bytes())
        .unwrap();
    let (decided, reason, _) = decision(&finish(child, DEADLINE));
    assert_eq!(decided, "deny");
    assert!(
        reason.contains("(401)") && reason.contains("ASKGATE_TOKEN"),
        "{reason}"
    );

    // A malformed input, or a bad flag: blocked by exit 2, never exit 1.
    for (args, input, said) in [
        (&["claude-code"][..], "{not json", "not JSON"),
        (
            &["claude-code", "--on-timeout", "allow"],
            "{}",
            "deny or ask",
        ),
        (&["nobody"], "{}", "no hook for nobody"),
    ] {
        let output = finish(run_hook(&url, args, input), DEADLINE);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(said), "{stderr}");
    }
    let pending = as_human(
        &server,
        "GET",
        &format!("/api/approval/pending?session_id={}", claude_session()),
        &Value::Null,
    );
    assert_eq!(pending["pending_count"], 0, "nothing left pending");
}

/// Codex's `PreToolUse` and Gemini CLI's `BeforeTool`, with the input
/// their documentation gives, each answered the way its agent reads.
#[test]
fn the_codex_and_gemini_hooks_answer_in_their_agents_shapes() {
    let server = server_with_tokens();
    let url = format!("http://{}", server.addr);
    let codex = json!({"session_id": "019a-codex", "transcript_path": null, "cwd": "/w/api",
        "hook_event_name": "PreToolUse", "model": "gpt-5", "tool_name": "Bash",
        "tool_input": {"command": "cargo publish"}, "tool_use_id": "call_1"})
    .to_string();
    let gemini = json!({"session_id": "g-1", "transcript_path": "/t.json", "cwd": "/w/site",
        "hook_event_name": "BeforeTool", "timestamp": "2026-12-06T07:00:00Z",
        "tool_name": "run_shell_command", "tool_input": {"command": "npm publish", "dir_path": "/w/site/pkg"}})
    .to_string();
    let codex_session = askgate::hooks::session_name("/w/api", "019a-codex");
    let gemini_session = askgate::hooks::session_name("/w/site", "g-1");
    for (agent, input, session_id, choice, stdout) in [
        ("codex", &codex, &codex_session, "once", String::new()),
        (
            "codex",
            &codex,
            &codex_session,
            "deny",
            json!({"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "deny",
                   "permissionDecisionReason": "denied by the human through askgate"}})
            .to_string(),
        ),
        (
            "gemini",
            &gemini,
            &gemini_session,
            "once",
            json!({"decision": "allow", "reason": "approved by the human through askgate (once)"}).to_string(),
        ),
        (
            "gemini",
            &gemini,
            &gemini_session,
            "deny",
            json!({"decision": "deny", "reason": "denied by the human through askgate"}).to_string(),
        ),
    ] {
        let child = run_hook(&url, &[agent], input);
        let head = human_answer(&server, session_id, choice);
        let output = finish(child, DEADLINE);
        assert_eq!(output.status.code(), Some(0), "{agent} {choice}: {output:?}");
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), stdout, "{agent} {choice}");
        if agent == "gemini" {
            assert_eq!(head["command"], "npm publish");
            assert_eq!(
                (&head["action"]["cwd"], &head["cwd"], &head["agent"]),
                (&json!("/w/site/pkg"), &json!("/w/site"), &json!("gemini"))
            );
        }
    }
}

/// `POST /api/hooks/claude-code` as the agent's token sends it.
fn post_hook(server: &TestServer, query: &str, event: &str) -> (u16, Value) {
    let bearer = format!("Bearer {AGENT}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let path = format!("/api/hooks/claude-code{query}");
    let reply = server.request("POST", &path, &headers, event);
    (reply.status, reply.json())
}

/// Claude Code's `"type": "http"` hook: the route parks until the human
/// answers and replies with the hook's answer, always a 200 (any other
/// status lets the call through).
#[test]
fn the_claude_code_http_hook_route_answers_as_the_command_does() {
    let server = server_with_tokens();
    for (choice, decided, reason) in [
        (
            "once",
            "allow",
            "approved by the human through askgate (once)",
        ),
        ("deny", "deny", "denied by the human through askgate"),
    ] {
        let addr = server.addr;
        let asking = std::thread::spawn(move || {
            let client = crate::support::Client { addr };
            let bearer = format!("Bearer {AGENT}");
            let headers = [
                ("Authorization", bearer.as_str()),
                ("Content-Type", "application/json"),
            ];
            let reply = client.request(
                "POST",
                "/api/hooks/claude-code",
                &headers,
                &bash_event("make deploy"),
            );
            (reply.status, reply.json())
        });
        let head = human_answer(&server, &claude_session(), choice);
        assert_eq!(head["command"], "make deploy");
        let (status, said) = asking.join().unwrap();
        assert_eq!(status, 200);
        let specific = &said["hookSpecificOutput"];
        assert_eq!(
            (
                specific["permissionDecision"].as_str(),
                specific["permissionDecisionReason"].as_str()
            ),
            (Some(decided), Some(reason)),
            "{said}"
        );
    }
    // A timeout, as the query asks, is said to be one.
    let (status, said) = post_hook(&server, "?timeout=1", &bash_event("ls"));
    assert_eq!(status, 200);
    assert_eq!(
        said["hookSpecificOutput"]["permissionDecisionReason"],
        "no answer from the human within 1 s through askgate; not run"
    );
    // A read-only tool passes with no opinion; a malformed input is denied.
    let (status, said) = post_hook(
        &server,
        "",
        &claude_event("Read", json!({"file_path": "/x"})),
    );
    assert_eq!((status, said), (200, json!({})));
    let (status, said) = post_hook(&server, "", r#"{"hook_event_name": "PreToolUse"}"#);
    assert_eq!(status, 200);
    assert_eq!(
        said["hookSpecificOutput"]["permissionDecision"], "deny",
        "{said}"
    );
    // A prompt the server refuses is a deny saying why, still a 200.
    let long = "x".repeat(9000);
    let (status, said) = post_hook(&server, "", &bash_event(&long));
    assert_eq!(status, 200);
    let reason = said["hookSpecificOutput"]["permissionDecisionReason"]
        .as_str()
        .unwrap();
    assert!(
        reason.contains("(400)") && reason.starts_with("askgate could not ask the human"),
        "{reason}"
    );
}

/// hermes-agent's `pre_tool_call` shell hook, with the input its
/// `agent/shell_hooks.py` documents: a block is JSON on stdout, never an
/// exit code (hermes-agent lets the call through on any failure).
#[test]
fn the_hermes_hook_blocks_in_json_only() {
    let server = server_with_tokens();
    let url = format!("http://{}", server.addr);
    let event = json!({"hook_event_name": "pre_tool_call", "tool_name": "terminal",
        "tool_input": {"command": "rm -rf /srv/data"}, "session_id": "sess_abc123",
        "cwd": "/home/u/ops", "extra": {"task_id": "", "tool_call_id": "call_1"}})
    .to_string();
    let session_id = askgate::hooks::session_name("/home/u/ops", "sess_abc123");
    for (choice, stdout) in [
        ("once", String::new()),
        (
            "deny",
            json!({"decision": "block", "reason": "denied by the human through askgate"})
                .to_string(),
        ),
    ] {
        let child = run_hook(&url, &["hermes"], &event);
        assert_eq!(
            human_answer(&server, &session_id, choice)["command"],
            "rm -rf /srv/data"
        );
        let output = finish(child, DEADLINE);
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            stdout,
            "{choice}"
        );
    }
    for (args, input) in [
        (&["hermes"][..], "{not json"),
        (&["hermes", "--timeout", "0"], "{}"),
    ] {
        let output = finish(run_hook(&url, args, input), DEADLINE);
        let said: Value = serde_json::from_slice(&output.stdout).expect("a JSON block");
        assert_eq!(
            (output.status.code(), &said["decision"]),
            (Some(0), &json!("block")),
            "{args:?}"
        );
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The session's history as the human sees it: (status, choice) newest first.
fn outcomes(server: &TestServer, session_id: &str) -> Vec<String> {
    let history = as_human(
        server,
        "GET",
        &format!("/api/history?session_id={session_id}"),
        &Value::Null,
    );
    history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["status"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_killed_hook_or_command_cancels_its_prompt() {
    let server = server_with_tokens();
    let url = format!("http://{}", server.addr);
    let child = run_hook(&url, &["claude-code"], &bash_event("sleep 1"));
    human_pending(&server, &claude_session());
    signal(&child, "TERM");
    let (decided, reason, _) = decision(&finish(child, DEADLINE));
    assert_eq!(decided, "deny");
    assert!(reason.contains("stopped (signal 15)"), "{reason}");
    assert_eq!(outcomes(&server, &claude_session()), ["cancelled"]);

    for (args, name, code) in [
        (
            &["approve", "--session", "cli", "--command", "reboot"][..],
            "INT",
            130,
        ),
        (&["clarify", "--session", "cli", "Which disk?"], "HUP", 129),
    ] {
        let mut command = askgate();
        command.args(args).env("ASKGATE_TOKEN", AGENT);
        let child = crate::binary::ask_at(&url, &mut command);
        let kind = if args[0] == "approve" {
            "approval"
        } else {
            "clarify"
        };
        let mut since = 0;
        loop {
            let path = format!("/api/{kind}/pending?session_id=cli&since={since}&wait=5");
            let poll = as_human(&server, "GET", &path, &Value::Null);
            if !poll["pending"].is_null() {
                break;
            }
            since = poll["version"].as_u64().unwrap();
        }
        signal(&child, name);
        let output = finish(child, DEADLINE);
        assert_eq!(output.status.code(), Some(code), "{output:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("the prompt was cancelled"));
        assert_eq!(outcomes(&server, "cli")[0], "cancelled", "{args:?}");
    }
}

pub fn git(dir: &Path, args: &[&str]) -> Output {
    let output = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.invalid",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?}: {output:?}");
    output
}

/// `git push` with the hook installed, running until the test answers.
fn push(work: &Path, url: &str) -> Child {
    let mut command = Command::new("git");
    command
        .current_dir(work)
        .args(["push", "origin", "HEAD:refs/heads/main"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", work)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    with_askgate(&mut command, url)
        .spawn()
        .expect("git push runs")
}

pub fn remote_main(remote: &Path) -> Option<String> {
    let output = Command::new("git")
        .args([
            "--git-dir",
            remote.to_str().unwrap(),
            "rev-parse",
            "--verify",
            "--quiet",
            "refs/heads/main",
        ])
        .output()
        .unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

#[test]
fn the_pre_push_hook_lets_a_push_out_only_once_approved() {
    let found = Command::new("git").arg("--version").output();
    if !found.is_ok_and(|output| output.status.success()) {
        eprintln!("SKIPPED: the pre-push hook test needs git, which is missing");
        return;
    }
    let server = TestServer::start(&[]);
    let url = format!("http://{}", server.addr);
    let dir = TempDir::new("pre-push");
    let (remote, work) = (dir.join("remote.git"), dir.join("work"));
    git(&dir.path, &["init", "-q", "--bare", "remote.git"]);
    git(&dir.path, &["init", "-q", "work"]);
    git(&work, &["commit", "-q", "--allow-empty", "-m", "first"]);
    git(
        &work,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    std::fs::copy(hook("pre-push"), work.join(".git/hooks/pre-push")).unwrap();

    let child = push(&work, &url);
    let head = answer(&server, "approval", "git-work", "once");
    assert_eq!(head["command"], "git push origin HEAD:refs/heads/main");
    let description = head["description"].as_str().unwrap();
    assert!(
        description.contains("refs/heads/main") && description.contains("(new) first"),
        "{description}"
    );
    let output = finish(child, DEADLINE);
    assert!(output.status.success(), "{output:?}");
    let first = remote_main(&remote).expect("the approved push arrived");

    git(&work, &["commit", "-q", "--allow-empty", "-m", "second"]);
    let child = push(&work, &url);
    answer(&server, "approval", "git-work", "deny");
    let output = finish(child, DEADLINE);
    assert!(!output.status.success(), "a denied push fails");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not approved through askgate"), "{stderr}");
    assert_eq!(
        remote_main(&remote),
        Some(first),
        "the denied push sent nothing"
    );
}

#[test]
fn a_hook_given_a_key_allows_only_on_a_receipt_for_the_call_that_runs() {
    let server = server_with_tokens();
    let url = format!("http://{}", server.addr);
    let key = crate::receipts::public_key(&server);
    let session_id = claude_session();
    let verified = ["claude-code", "--verify-key", key.as_str()];

    // Approved on the real server: the receipt verifies, the call runs.
    let child = run_hook(&url, &verified, &bash_event("rm -rf build"));
    human_answer(&server, &session_id, "once");
    let (said, why, _) = decision(&finish(child, DEADLINE));
    assert_eq!(said, "allow", "{why}");

    // Edited before approval: the edited call runs, verified by `edited`.
    let child = run_hook(&url, &verified, &bash_event("rm -rf build"));
    let head = human_pending(&server, &session_id);
    let body = json!({
        "session_id": session_id, "approval_id": head["approval_id"], "choice": "once",
        "edited": {"type": "command", "command": "rm -rf build/tmp", "cwd": "/home/u/myrepo"},
    });
    as_human(&server, "POST", "/api/approval/respond", &body);
    let (said, why, specific) = decision(&finish(child, DEADLINE));
    assert_eq!(said, "allow", "{why}");
    assert_eq!(specific["updatedInput"]["command"], "rm -rf build/tmp");

    // A server that says "approved" with no receipt, or another server's
    // key: denied, saying why.
    let fake = crate::receipts::FakeServer::start(None);
    let child = run_hook(
        &format!("http://{}", fake.addr),
        &verified,
        &bash_event("rm -rf build"),
    );
    let (said, why, _) = decision(&finish(child, DEADLINE));
    assert_eq!(
        (said.as_str(), why.contains("carries no receipt")),
        ("deny", true),
        "{why}"
    );
    let other = TestServer::start(&[]);
    let other_key = crate::receipts::public_key(&other);
    let args = ["claude-code", "--verify-key", other_key.as_str()];
    let child = run_hook(&url, &args, &bash_event("rm -rf build"));
    human_answer(&server, &session_id, "once");
    let (said, why, _) = decision(&finish(child, DEADLINE));
    assert_eq!(
        (said.as_str(), why.contains("does not verify")),
        ("deny", true),
        "{why}"
    );
}
