//! Upgrades (issue 21 §1): every data directory an earlier askgate wrote,
//! kept under `tests/fixtures/format-N/` (tests/fixtures/README.md), is
//! started on by this build, copied to a temporary directory, and every
//! pending head, rule, session, history and outcome it held is there
//! over HTTP, as the build that wrote it answered just before it stopped
//! (`expected.json`); its tokens still sign in.
//!
//! `write_a_fixture` (ignored: it is run by hand, with the build before a
//! format change) makes such a directory through the HTTP API, with a
//! snapshot in the middle (taken with that build's own library), and
//! records what it answers.

use crate::binary::{Exited, ServerProcess, askgate};
use crate::support::{Client, DEADLINE, TempDir, eventually};
use askgate::hub::durable;
use askgate::store::journal::Journal;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// The formats this build must read, each a directory under tests/fixtures.
const FIXTURES: &[&str] = &["format-1"];

/// The test knob that sets the server's clock at start (Unix seconds), so
/// a directory written long ago is read as if just after it was written:
/// nothing in it expires or is forgotten for its age.
const CLOCK_VARIABLE: &str = "ASKGATE_TEST_CLOCK";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Copies the fixture's data directory (its `data/`) into a fresh
/// temporary one, private as askgate wants it.
pub fn copy_fixture(name: &str) -> TempDir {
    let dir = TempDir::new(&format!("upgrade-{name}"));
    let from = fixture(name).join("data");
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(&entry.file_name().to_string_lossy())).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o700)).unwrap();
    for entry in std::fs::read_dir(&dir.path).unwrap() {
        let path = entry.unwrap().path();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    dir
}

fn serve_at(dir: &Path, clock: f64, flags: &[&str]) -> Result<ServerProcess, Exited> {
    let mut command = askgate();
    command.env(CLOCK_VARIABLE, format!("{clock}"));
    let dir = dir.to_str().unwrap();
    ServerProcess::launch(command, &[&["--data-dir", dir], flags].concat())
}

/// Removes every `version` field, at any depth: a restart moves the global
/// version ahead, and nothing else.
/// Fields the page's JSON gained after the fixture was written, which
/// the old build could not have said: the asking credential's name, the
/// answerer's, a rule's plain words. What they say of old data is
/// checked apart (`an_old_directory_reads_as_the_legacy_credentials`).
const NEWER_FIELDS: [&str; 3] = ["agent_name", "by", "covers"];

fn without_versions(mut value: Value) -> Value {
    match &mut value {
        Value::Object(fields) => {
            fields.remove("version");
            for newer in NEWER_FIELDS {
                fields.remove(newer);
            }
            // A receipt now names an edited action too (docs/PROTOCOL.md
            // §10), so its payload may gain `edited` and its signature
            // changes with it: what it said before must still be there.
            if let Some(receipt) = fields.get_mut("receipt") {
                let payload = receipt["payload"].as_str().unwrap_or_default();
                let mut said: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
                if let Some(said) = said.as_object_mut() {
                    said.remove("edited");
                }
                *receipt = said;
            }
            for field in fields.values_mut() {
                *field = without_versions(field.take());
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                *item = without_versions(item.take());
            }
        }
        _ => {}
    }
    value
}

const KINDS: [&str; 2] = ["clarify", "approval"];

/// What a server says of everything the fixture holds: each session's
/// heads and counts, history, the rules, and the outcome of every prompt
/// that got one.
fn observe(client: &Client, outcomes: &[(String, String, String)]) -> Value {
    let sessions = client.get("/api/sessions").json();
    let mut queues = json!({});
    let mut histories = json!({});
    let ids = sessions["sessions"].as_array().cloned().unwrap_or_default();
    for session in ids
        .iter()
        .map(|s| s["session_id"].as_str().unwrap().to_string())
    {
        for kind in KINDS {
            let poll = client.get(&format!("/api/{kind}/pending?session_id={session}"));
            queues[format!("{session}/{kind}")] = poll.json();
        }
        let history = client.get(&format!("/api/history?session_id={session}&limit=50"));
        histories[&session] = history.json();
    }
    let mut waited = json!({});
    for (kind, session, id) in outcomes {
        let path = format!("/api/{kind}/wait?session_id={session}&{kind}_id={id}&timeout=0");
        let reply = client.get(&path);
        waited[id] = json!({"status": reply.status, "body": reply.json()});
    }
    without_versions(json!({
        "sessions": sessions,
        "queues": queues,
        "history": histories,
        "rules": client.get("/api/rules").json(),
        "outcomes": waited,
    }))
}

#[test]
fn every_fixture_starts_with_everything_it_held() {
    for name in FIXTURES {
        let expected: Value = {
            let text = std::fs::read_to_string(fixture(name).join("expected.json")).unwrap();
            without_versions(serde_json::from_str(&text).unwrap())
        };
        let clock = expected["written_at"].as_f64().unwrap() + 1.0;
        let outcomes: Vec<(String, String, String)> =
            serde_json::from_value(expected["asked"].clone()).unwrap();
        let dir = copy_fixture(name);
        let check = askgate()
            .args(["journal", "check", dir.path.to_str().unwrap()])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&check.stdout).to_string();
        assert!(check.status.success(), "{name}: {said}{:?}", check.stderr);
        let server = serve_at(&dir.path, clock, &[]).expect("the fixture starts");
        let seen = observe(&server, &outcomes);
        let held = |part: &str| {
            expected["seen"][part]
                .as_object()
                .map_or(0, |part| part.len())
        };
        assert!(
            held("queues") > 0 && held("outcomes") > 0,
            "{name}: {expected}"
        );
        for part in ["sessions", "queues", "history", "rules", "outcomes"] {
            assert_eq!(seen[part], expected["seen"][part], "{name}: {part}");
        }
        server.kill();
        // Its tokens still sign in: the human's reads, the agent's submits.
        let server = serve_at(&dir.path, clock, &["--insecure-no-auth=false"]).unwrap();
        let tokens = std::fs::read_to_string(dir.join("tokens")).unwrap();
        let human = tokens.lines().find_map(|line| line.strip_prefix("human="));
        let human = format!("Bearer {}", human.expect("the human's token"));
        let reply = server.request("GET", "/api/rules", &[("Authorization", &human)], "");
        assert_eq!(reply.status, 200, "{name}: {}", reply.text());
        let again = without_versions(reply.json());
        assert_eq!(
            again, expected["seen"]["rules"],
            "{name}: rules with the token"
        );
        server.kill();
        // And once more, from a snapshot this build wrote of it: what this
        // build writes reads back too.
        snapshot_now(&dir.path);
        let server = serve_at(&dir.path, clock + 2.0, &[]).unwrap();
        let seen = observe(&server, &outcomes);
        for part in ["sessions", "queues", "history", "rules", "outcomes"] {
            assert_eq!(seen[part], expected["seen"][part], "{name}: {part} again");
        }
        server.kill();
    }
}

// ---- the generator ----

fn submit(client: &Client, kind: &str, body: Value) -> String {
    let reply = client.post(&format!("/api/{kind}/submit"), &body);
    assert_eq!(reply.status, 200, "{body}: {}", reply.text());
    reply.json()[format!("{kind}_id")]
        .as_str()
        .unwrap()
        .to_string()
}

fn respond(client: &Client, kind: &str, session: &str, id: &str, answer: Value) {
    let mut body = answer;
    body["session_id"] = json!(session);
    body[format!("{kind}_id")] = json!(id);
    let reply = client.post(&format!("/api/{kind}/respond"), &body);
    assert_eq!(reply.status, 200, "{body}: {}", reply.text());
}

/// Prompts that got (or will get) an outcome: kind, session, id.
type Asked = Vec<(String, String, String)>;

fn asked(list: &mut Asked, kind: &str, session: &str, id: &str) {
    list.push((kind.into(), session.into(), id.into()));
}

/// Before the snapshot: pending prompts of every shape, rules of both
/// lifetimes and every scope, and outcomes of every kind.
fn before_the_snapshot(client: &Client, list: &mut Asked) {
    let never = 0;
    submit(
        client,
        "clarify",
        json!({"session_id": "q-choices", "question": "Ship it?\n\"now\"", "choices": ["yes", "no"], "timeout_seconds": never}),
    );
    submit(
        client,
        "clarify",
        json!({"session_id": "q-multiple", "question": "Which?", "choices": ["a", "b", "c"], "multiple": true, "timeout_seconds": 86400}),
    );
    let schema = json!({"type": "object", "properties": {"name": {"type": "string", "title": "Name"}, "age": {"type": "integer", "minimum": 0, "maximum": 150}}, "required": ["name"]});
    submit(
        client,
        "clarify",
        json!({"session_id": "q-form", "question": "Who?", "schema": schema, "timeout_seconds": never, "urgency": "high"}),
    );
    submit(
        client,
        "approval",
        json!({"session_id": "a-command", "command": "make deploy", "agent": "claude-code", "cwd": "/srv/app", "reason": "ship the fix", "description": "deploy", "pattern_keys": ["make"], "timeout_seconds": never}),
    );
    let edit =
        json!({"type": "edit", "path": "src/main.rs", "edits": [{"old": "a\n", "new": "b\nc\n"}]});
    submit(
        client,
        "approval",
        json!({"session_id": "a-edit", "action": edit, "timeout_seconds": never}),
    );
    // Rules: an always prefix with options, a session exact, an action.
    let rules = "rules-bot";
    let id = submit(
        client,
        "approval",
        json!({"session_id": rules, "command": "git push origin main"}),
    );
    respond(
        client,
        "approval",
        rules,
        &id,
        json!({"choice": "always", "scope": {"prefix": "git push", "options": true}}),
    );
    asked(list, "approval", rules, &id);
    let id = submit(
        client,
        "approval",
        json!({"session_id": rules, "command": "cargo test --release"}),
    );
    respond(client, "approval", rules, &id, json!({"choice": "session"}));
    asked(list, "approval", rules, &id);
    let fetch = json!({"type": "fetch", "url": "https://example.com/x", "method": "POST"});
    let id = submit(
        client,
        "approval",
        json!({"session_id": rules, "action": fetch}),
    );
    respond(client, "approval", rules, &id, json!({"choice": "always"}));
    asked(list, "approval", rules, &id);
    // Answered by a rule, never queued.
    let id = submit(
        client,
        "approval",
        json!({"session_id": rules, "command": "git push --force origin dev"}),
    );
    asked(list, "approval", rules, &id);
    // Outcomes: a deny with a reason, an edited once with a note, texts.
    let done = "done-bot";
    let id = submit(
        client,
        "approval",
        json!({"session_id": done, "command": "rm -rf build"}),
    );
    respond(
        client,
        "approval",
        done,
        &id,
        json!({"choice": "deny", "reason": "use make clean"}),
    );
    asked(list, "approval", done, &id);
    let id = submit(
        client,
        "approval",
        json!({"session_id": done, "command": "make deploy"}),
    );
    let edited = json!({"type": "command", "command": "make deploy --dry-run"});
    respond(
        client,
        "approval",
        done,
        &id,
        json!({"choice": "once", "edited": edited, "note": "dry run first"}),
    );
    asked(list, "approval", done, &id);
    let id = submit(
        client,
        "clarify",
        json!({"session_id": done, "question": "Name?", "schema": schema}),
    );
    respond(
        client,
        "clarify",
        done,
        &id,
        json!({"response": {"name": "Ada", "age": 36}}),
    );
    asked(list, "clarify", done, &id);
    let id = submit(
        client,
        "clarify",
        json!({"session_id": done, "question": "Cancel me"}),
    );
    let cancel = json!({"session_id": done, "clarify_id": id});
    assert_eq!(client.post("/api/clarify/cancel", &cancel).status, 200);
    asked(list, "clarify", done, &id);
    let id = submit(
        client,
        "clarify",
        json!({"session_id": done, "question": "Expire me", "timeout_seconds": 1}),
    );
    let path = format!("/api/clarify/wait?session_id={done}&clarify_id={id}&timeout=0");
    eventually("the prompt expired", DEADLINE * 2, &mut || {
        client.get(&path).json()["status"] == "expired"
    });
    asked(list, "clarify", done, &id);
}

/// After the snapshot, in records: more prompts, answers, a revoke, rules.
fn after_the_snapshot(client: &Client, list: &mut Asked) {
    let never = 0;
    let write = json!({"type": "write", "path": "notes.txt", "content": "one\ntwo\n"});
    submit(
        client,
        "approval",
        json!({"session_id": "a-write", "action": write, "timeout_seconds": never}),
    );
    let tool = json!({"type": "tool", "name": "browser.open", "input": {"url": "https://example.com", "tabs": 2}});
    submit(
        client,
        "approval",
        json!({"session_id": "a-tool", "action": tool, "timeout_seconds": never}),
    );
    let fetch = json!({"type": "fetch", "url": "https://example.com/y"});
    submit(
        client,
        "approval",
        json!({"session_id": "a-fetch", "action": fetch, "timeout_seconds": 86400}),
    );
    // Two in one queue.
    for question in ["First?", "Second?"] {
        submit(
            client,
            "clarify",
            json!({"session_id": "q-two", "question": question, "timeout_seconds": never}),
        );
    }
    let rules = "rules-bot";
    let id = submit(
        client,
        "approval",
        json!({"session_id": rules, "command": "ls -la src"}),
    );
    respond(
        client,
        "approval",
        rules,
        &id,
        json!({"choice": "session", "scope": "ls"}),
    );
    asked(list, "approval", rules, &id);
    let id = submit(
        client,
        "approval",
        json!({"session_id": rules, "command": "npm publish"}),
    );
    respond(client, "approval", rules, &id, json!({"choice": "always"}));
    asked(list, "approval", rules, &id);
    let revoke = json!({"rule_id": id});
    assert_eq!(client.post("/api/rules/revoke", &revoke).status, 200);
    let done = "done-bot";
    let id = submit(
        client,
        "clarify",
        json!({"session_id": done, "question": "Pick", "choices": ["x", "y", "z"], "multiple": true}),
    );
    respond(
        client,
        "clarify",
        done,
        &id,
        json!({"response": ["x", "z"]}),
    );
    asked(list, "clarify", done, &id);
    let id = submit(
        client,
        "clarify",
        json!({"session_id": done, "question": "Say \u{1}something"}),
    );
    respond(
        client,
        "clarify",
        done,
        &id,
        json!({"response": "ok \u{7}"}),
    );
    asked(list, "clarify", done, &id);
}

/// Takes a snapshot of the directory with this build's own library, as a
/// compaction would.
fn snapshot_now(dir: &Path) {
    let (journal, recovered) = Journal::open(dir).expect("the directory opens");
    let state = durable::restore(&recovered).expect("it replays");
    let view = state.snapshot_view();
    journal.compact_with(view.version(), Box::new(move |out| view.write_lines(out)));
    journal.close();
    assert!(dir.join("snapshot").exists());
}

fn stop(server: ServerProcess) {
    let pid = server.pid() as libc::pid_t;
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let mut server = server;
    eventually("the server stopped", DEADLINE, &mut || !server.is_running());
}

/// `ASKGATE_FIXTURE=format-N cargo test --test it upgrade::write_a_fixture
/// -- --ignored`, with the build before a format change: writes
/// tests/fixtures/format-N (see tests/fixtures/README.md).
#[test]
#[ignore]
fn write_a_fixture() {
    let name = std::env::var("ASKGATE_FIXTURE").expect("ASKGATE_FIXTURE=format-N");
    let root = fixture(&name);
    let data = root.join("data");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let dir = data.to_str().unwrap().to_string();
    // Tokens, the receipts and notification keys, made at a first start.
    let server =
        ServerProcess::launch(askgate(), &["--data-dir", &dir, "--insecure-no-auth=false"]);
    stop(server.expect("starts"));
    let mut list = Asked::new();
    let server = ServerProcess::launch(askgate(), &["--data-dir", &dir]).unwrap();
    before_the_snapshot(&server, &mut list);
    stop(server);
    snapshot_now(&data);
    let server = ServerProcess::launch(askgate(), &["--data-dir", &dir]).unwrap();
    after_the_snapshot(&server, &mut list);
    let seen = observe(&server, &list);
    let written_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    stop(server);
    let _ = std::fs::remove_file(data.join("lock"));
    let expected = json!({
        "written_at": written_at.as_secs_f64().ceil(),
        "written_by": String::from_utf8_lossy(&Command::new("git").args(["rev-parse", "HEAD"]).output().unwrap().stdout).trim(),
        "asked": list,
        "seen": seen,
    });
    let text = serde_json::to_string_pretty(&expected).unwrap();
    std::fs::write(root.join("expected.json"), text + "\n").unwrap();
}

/// Every file in `dir` with its bytes and modification time, and the
/// directory's own time.
fn everything_in(dir: &Path) -> Vec<(String, Vec<u8>, SystemTime)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read(&path).unwrap(), modified)
        })
        .collect();
    files.sort();
    let modified = std::fs::metadata(dir).unwrap().modified().unwrap();
    files.push((".".into(), Vec::new(), modified));
    files
}

/// Writes `format` into the header of `DIR/name` (after its 8-byte magic).
fn say_format(dir: &TempDir, name: &str, format: u32) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(name))
        .unwrap();
    file.write_all_at(&format.to_le_bytes(), 8).unwrap();
}

#[test]
fn a_directory_of_a_newer_format_is_refused_naming_both_and_left_untouched() {
    let refusal = format!(
        "data directory format 3 is newer than this askgate (reads up to {}); upgrade askgate",
        askgate::store::journal::FORMAT
    );
    for name in ["journal", "snapshot"] {
        let dir = copy_fixture("format-1");
        say_format(&dir, name, 3);
        let before = everything_in(&dir.path);
        let Err(exited) = serve_at(&dir.path, 0.0, &[]) else {
            panic!("{name}: a newer format started")
        };
        assert_ne!(exited.code, Some(0));
        assert!(
            exited.stderr.contains(&refusal),
            "{name}: {}",
            exited.stderr
        );
        let check = askgate()
            .args(["journal", "check", dir.path.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(check.status.code(), Some(1), "{name}");
        let said = String::from_utf8_lossy(&check.stderr);
        assert!(said.contains(&refusal), "{name}: {said}");
        assert!(
            everything_in(&dir.path) == before,
            "{name}: nothing changed"
        );
    }
}

/// What format 1 could not say reads as the legacy credentials: every
/// prompt is the `agent` credential's, and its sessions too, so the
/// legacy agent token goes on asking in them.
#[test]
fn an_old_directory_reads_as_the_legacy_credentials() {
    let name = "format-1";
    let expected: Value = {
        let text = std::fs::read_to_string(fixture(name).join("expected.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    };
    let clock = expected["written_at"].as_f64().unwrap() + 1.0;
    let dir = copy_fixture(name);
    let server = serve_at(&dir.path, clock, &[]).expect("the fixture starts");
    let agents = server.get("/api/agents").json();
    let names: Vec<&str> = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|agent| agent["agent"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["agent"], "{agents}");
    let head = server
        .get("/api/approval/pending?session_id=a-command")
        .json();
    assert_eq!(head["pending"]["agent_name"], "agent", "{head}");
    server.kill();
}
