//! Signed receipts (docs/PROTOCOL.md §9): every decision's wait answer
//! carries one that a verifier in another language (node's standard
//! library, `tests/receipts/verify.mjs`) accepts, and that fails once any
//! field is touched; the key outlives a restart; `askgate verify`; and
//! `askgate approve --verify-key -- CMD`, which runs nothing on the word
//! "approved" alone, against a fake server and the real one.

use crate::binary::{ServerProcess, answer, ask, askgate, finish, pending_head};
use crate::hooks::{git, hook, remote_main, with_askgate};
use crate::redis::{Redis, instance, redis_server};
use crate::support::{Client, DEADLINE, TempDir, TestServer};
use askgate::core::action::Action;
use askgate::core::kind::Kind;
use askgate::core::prompt::{Answer, Choice, Outcome};
use askgate::core::receipt::{self, Decision, Signer};
use serde_json::{Map, Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

const VERIFIER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/receipts/verify.mjs");

/// What the node verifier says: `Ok(payload)` or `Err(why)`; with
/// `action`, it also checks the receipt names that action's digest.
fn node_verify(key: &str, receipt: &Value, action: Option<&Value>) -> Result<String, String> {
    let mut command = Command::new("node");
    command.arg(VERIFIER).arg(key);
    if let Some(action) = action {
        command.arg(action.to_string());
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let input = receipt.to_string();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = finish(child, DEADLINE);
    match output.status.code() {
        Some(0) => Ok(String::from_utf8_lossy(&output.stdout).trim().to_string()),
        _ => Err(String::from_utf8_lossy(&output.stderr).trim().to_string()),
    }
}

pub fn public_key(server: &Client) -> String {
    let reply = server.get("/api/receipts/key");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["algorithm"], "Ed25519");
    body["public_key"].as_str().unwrap().to_string()
}

fn wait(server: &Client, kind: &str, session_id: &str, id: &str) -> Value {
    let path = format!("/api/{kind}/wait?session_id={session_id}&{kind}_id={id}&timeout=10");
    let reply = server.get(&path);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

fn submit_approval(server: &Client, session_id: &str, command: &str, timeout: i64) -> Value {
    let body = json!({"session_id": session_id, "command": command, "timeout_seconds": timeout});
    let reply = server.post("/api/approval/submit", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

fn respond(server: &Client, session_id: &str, id: &str, choice: &str) {
    let body = json!({"session_id": session_id, "approval_id": id, "choice": choice});
    let reply = server.post("/api/approval/respond", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
}

fn command_action(command: &str) -> Value {
    json!({"type": "command", "command": command})
}

fn payload_of(reply: &Value) -> Map<String, Value> {
    let payload = reply["receipt"]["payload"].as_str().expect("a receipt");
    serde_json::from_str::<Value>(payload)
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The receipt with its payload changed by `change` and written back
/// canonically (so only the signature can tell).
fn tampered(reply: &Value, change: impl FnOnce(&mut Map<String, Value>)) -> Value {
    let mut payload = payload_of(reply);
    change(&mut payload);
    let mut receipt = reply["receipt"].clone();
    receipt["payload"] = json!(Value::Object(payload).to_string());
    receipt
}

#[test]
fn every_decision_carries_a_receipt_the_node_verifier_accepts() {
    let server = TestServer::start(&[]);
    let key = public_key(&server);
    let approved = |session: &str, command: &str, choice: &str| {
        let id = submit_approval(&server, session, command, 0)["approval_id"]
            .as_str()
            .unwrap()
            .to_string();
        respond(&server, session, &id, choice);
        (id.clone(), wait(&server, "approval", session, &id))
    };
    // (reply, id, action, expected fields)
    let mut cases = Vec::new();
    for choice in ["once", "session", "always", "deny"] {
        let command = format!("echo {choice}");
        let (id, reply) = approved(&format!("s-{choice}"), &command, choice);
        let expected = json!({"status": "answered", "answer": choice, "by": "human"});
        cases.push((reply, id, command_action(&command), expected));
    }
    // The session rule answers the same command again, at submit.
    let auto = submit_approval(&server, "s-session", "echo session", 0);
    assert_eq!(auto["auto"], true, "{auto}");
    let id = auto["approval_id"].as_str().unwrap().to_string();
    let rule = cases[1].1.clone();
    let expected = json!({"status": "answered", "answer": "session", "by": "rule", "rule": rule});
    cases.push((
        auto.clone(),
        id.clone(),
        command_action("echo session"),
        expected,
    ));
    // A wait on it says the same.
    let waited = wait(&server, "approval", "s-session", &id);
    assert_eq!(waited["receipt"], auto["receipt"]);

    let expiring = submit_approval(&server, "s-expired", "echo late", 1);
    let id = expiring["approval_id"].as_str().unwrap().to_string();
    let reply = wait(&server, "approval", "s-expired", &id);
    let expected = json!({"status": "expired", "by": "server"});
    cases.push((reply, id, command_action("echo late"), expected));

    let cancelled = submit_approval(&server, "s-cancel", "echo never", 0);
    let id = cancelled["approval_id"].as_str().unwrap().to_string();
    let body = json!({"session_id": "s-cancel", "approval_id": id});
    assert_eq!(server.post("/api/approval/cancel", &body).status, 200);
    let reply = wait(&server, "approval", "s-cancel", &id);
    let expected = json!({"status": "cancelled", "by": "agent"});
    cases.push((reply, id, command_action("echo never"), expected));

    let body =
        json!({"session_id": "s-clarify", "question": "Which db?", "choices": ["pg", "sqlite"]});
    let id = server.post("/api/clarify/submit", &body).json()["clarify_id"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"session_id": "s-clarify", "clarify_id": id, "response": "pg, please"});
    assert_eq!(server.post("/api/clarify/respond", &body).status, 200);
    let reply = wait(&server, "clarify", "s-clarify", &id);
    let question = json!({"type": "clarify", "question": "Which db?", "choices": ["pg", "sqlite"]});
    let expected = json!({"status": "answered", "answer": "pg, please", "by": "human"});
    cases.push((reply, id, question, expected));

    let before = now();
    for (reply, id, action, expected) in &cases {
        let checked = node_verify(&key, reply, Some(action));
        assert!(checked.is_ok(), "{reply}: {checked:?}");
        let payload = payload_of(reply);
        assert_eq!(payload["id"], json!(id), "{reply}");
        for (field, value) in expected.as_object().unwrap() {
            assert_eq!(&payload[field], value, "{field} of {reply}");
        }
        let at = payload["at"].as_u64().unwrap();
        assert!(at <= before && at + 60 > before, "{reply}");
        assert_eq!(payload["expires"].as_u64(), Some(at + 300), "{reply}");
        assert_eq!(payload["agent"], "agent");
        assert_eq!(payload["v"], 1);
        // Another action's digest fails, even with a valid signature.
        let other = command_action("rm -rf /");
        assert!(node_verify(&key, reply, Some(&other)).is_err());
    }

    // An edit the human changed before approving: the receipt names the
    // edited action, which may run, and the one asked no longer may.
    let asked =
        json!({"type": "edit", "path": "a.toml", "edits": [{"old": "x = 1", "new": "x = 2"}]});
    let body = json!({"session_id": "s-edit", "action": asked});
    let id = server.post("/api/approval/submit", &body).json()["approval_id"].clone();
    let edited =
        json!({"type": "edit", "path": "a.toml", "edits": [{"old": "x = 1", "new": "x = 3"}]});
    let body =
        json!({"session_id": "s-edit", "approval_id": id, "choice": "once", "edited": edited});
    assert_eq!(server.post("/api/approval/respond", &body).status, 200);
    let reply = wait(&server, "approval", "s-edit", id.as_str().unwrap());
    assert_eq!(reply["edited"], edited, "{reply}");
    let payload = payload_of(&reply);
    assert!(payload["edited"].is_string(), "{payload:?}");
    let verified = node_verify(&key, &reply, Some(&reply["edited"]));
    assert!(verified.is_ok(), "{reply}: {verified:?}");
    assert!(
        node_verify(&key, &reply, Some(&asked)).is_err(),
        "the action asked may not run"
    );
}

#[test]
fn an_auto_approved_action_has_a_receipt_for_the_whole_action_asked() {
    let server = TestServer::start(&[]);
    let key = public_key(&server);
    let edit = json!({"type": "edit", "path": "/src/app/main.rs",
        "edits": [{"old": "let a = 1;", "new": "let a = 2;"}]});
    let command = json!({"type": "command", "command": "make test", "cwd": "/src"});
    for (n, action) in [edit, command].into_iter().enumerate() {
        let session = format!("auto{n}");
        let body = json!({"session_id": session, "action": action, "timeout_seconds": 0});
        let first = server.post("/api/approval/submit", &body).json();
        let id = first["approval_id"].as_str().unwrap();
        respond(&server, &session, id, "session");
        let again = server.post("/api/approval/submit", &body).json();
        assert_eq!(again["auto"], true, "{again}");
        let id = again["approval_id"].as_str().unwrap();
        let reply = wait(&server, "approval", &session, id);
        let checked = node_verify(&key, &reply, Some(&action));
        assert!(checked.is_ok(), "{action}: {reply}: {checked:?}");
        let canonical = receipt::action_digest(&action.to_string());
        assert_eq!(payload_of(&reply)["action"], json!(canonical), "{reply}");
        assert_eq!(payload_of(&reply)["by"], "rule", "{reply}");
    }
}

#[test]
fn tampering_with_any_field_the_signature_or_the_key_fails_the_node_verifier() {
    let server = TestServer::start(&[]);
    let key = public_key(&server);
    let id = submit_approval(&server, "t", "git push", 0)["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    respond(&server, "t", &id, "once");
    let reply = wait(&server, "approval", "t", &id);
    assert!(node_verify(&key, &reply, None).is_ok());
    let fields: Vec<String> = payload_of(&reply).keys().cloned().collect();
    assert_eq!(
        fields,
        [
            "action", "agent", "answer", "at", "by", "expires", "id", "kind", "session", "status",
            "v"
        ]
    );
    for field in &fields {
        let receipt = tampered(&reply, |payload| {
            let value = &payload[field];
            let changed = match value.as_u64() {
                Some(number) => json!(number + 1),
                None => json!(format!("{}x", value.as_str().unwrap())),
            };
            payload.insert(field.clone(), changed);
        });
        let checked = node_verify(&key, &receipt, None);
        assert!(checked.is_err(), "{field} changed: {checked:?}");
        let removed = tampered(&reply, |payload| {
            payload.remove(field);
        });
        assert!(
            node_verify(&key, &removed, None).is_err(),
            "{field} removed"
        );
    }
    let added = tampered(&reply, |payload| {
        payload.insert("rule".into(), json!("x"));
    });
    assert!(node_verify(&key, &added, None).is_err(), "a field added");
    // The payload not canonical (a space) fails even the signature.
    let mut spaced = reply["receipt"].clone();
    let payload = spaced["payload"].as_str().unwrap().replacen(',', ", ", 1);
    spaced["payload"] = json!(payload);
    assert!(node_verify(&key, &spaced, None).is_err());
    // One hex digit of the signature.
    let mut forged = reply["receipt"].clone();
    let signature = forged["signature"].as_str().unwrap();
    let flipped = if signature.starts_with('0') { "1" } else { "0" };
    forged["signature"] = json!(format!("{flipped}{}", &signature[1..]));
    assert!(node_verify(&key, &forged, None).is_err());
    // Another server's key.
    let other = TestServer::start(&[]);
    let other_key = public_key(&other);
    assert_ne!(other_key, key);
    assert!(node_verify(&other_key, &reply, None).is_err());
}

#[test]
fn the_key_survives_a_restart_and_receipts_handed_out_before_still_verify() {
    let dir = TempDir::new("receipts");
    let data_dir = dir.path.to_str().unwrap();
    let server = ServerProcess::start(&["--data-dir", data_dir]);
    let key = public_key(&server);
    let id = submit_approval(&server, "r", "make deploy", 0)["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    respond(&server, "r", &id, "once");
    let reply = wait(&server, "approval", "r", &id);
    assert!(node_verify(&key, &reply, Some(&command_action("make deploy"))).is_ok());
    // The audit line carries the same receipt.
    let signature = reply["receipt"]["signature"].as_str().unwrap();
    let audit = std::fs::read_to_string(dir.join("audit.log")).unwrap();
    let line = audit
        .lines()
        .find(|line| line.contains("event=answered"))
        .expect("an answered line");
    assert!(line.contains(&format!("signature={signature}")), "{line}");
    assert!(line.contains(" receipt=\"{\\\"action\\\":"), "{line}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("receipts.key"))
        .unwrap()
        .permissions();
    assert_eq!(mode.mode() & 0o777, 0o600);
    drop(server.kill());

    let again = ServerProcess::start(&["--data-dir", data_dir]);
    assert_eq!(public_key(&again), key, "the same key after a restart");
    let replayed = wait(&again, "approval", "r", &id);
    assert_eq!(
        replayed["receipt"], reply["receipt"],
        "the same receipt, replayed"
    );
    assert!(node_verify(&public_key(&again), &reply, None).is_ok());
    let printed = askgate()
        .args(["receipts", "key", "--data-dir", data_dir])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&printed.stdout).trim(), key);
    let url = format!("http://{}", again.addr);
    let printed = askgate()
        .args(["receipts", "key", "--server", &url])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&printed.stdout).trim(), key);
}

#[test]
fn askgate_verify_checks_a_receipt_against_a_key_and_an_action() {
    let server = TestServer::start(&[]);
    let key = public_key(&server);
    let id = submit_approval(&server, "v", "cargo publish", 0)["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    respond(&server, "v", &id, "once");
    let reply = wait(&server, "approval", "v", &id);
    let dir = TempDir::new("verify");
    let file = dir.join("receipt.json");
    std::fs::write(&file, reply.to_string()).unwrap();
    let file = file.to_str().unwrap();
    let action = dir.join("action.json");
    std::fs::write(&action, command_action("cargo publish").to_string()).unwrap();
    let action = action.to_str().unwrap();
    let verify = |args: &[&str]| {
        let output = askgate().arg("verify").args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        (output.status.code(), stderr)
    };
    for (args, code, says) in [
        (vec!["--key", &key, "--receipt", file], 0, ""),
        (
            vec![
                "--key",
                &key,
                "--receipt",
                file,
                "--command",
                "cargo publish",
            ],
            0,
            "",
        ),
        (
            vec!["--key", &key, "--receipt", file, "--action", action],
            0,
            "",
        ),
        (
            vec!["--key", &key, "--receipt", file, "--command", "cargo yank"],
            1,
            "another action",
        ),
        (
            vec!["--key", &"0".repeat(64), "--receipt", file],
            1,
            "does not verify",
        ),
        (vec!["--receipt", file], 2, "--key is required"),
        (vec!["--key", &key], 2, "--receipt is required"),
    ] {
        let (got, stderr) = verify(&args);
        assert_eq!(got, Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    // From stdin, tampered.
    let forged = tampered(&reply, |payload| {
        payload.insert("answer".into(), json!("always"));
    });
    let mut child = askgate()
        .args(["verify", "--key", &key, "--receipt", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = json!({"receipt": forged}).to_string();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = finish(child, DEADLINE);
    assert_eq!(output.status.code(), Some(1));
}

/// A loopback server that speaks the agent API as a liar would: every
/// submit is pending, every wait says "approved (once)" with `receipt`
/// (or none) for the prompt id it handed out.
pub struct FakeServer {
    pub addr: SocketAddr,
}

pub const FAKE_ID: &str = "0123456789abcdef0123456789abcdef";

impl FakeServer {
    pub fn start(receipt: Option<Value>) -> FakeServer {
        FakeServer::answering(receipt, json!({}))
    }

    /// Its wait answers carry `extra`'s fields too (an `edited`, say).
    pub fn answering(receipt: Option<Value>, extra: Value) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let answers = Arc::new((receipt, extra));
        // A connection each on its own thread: a stray one that sends
        // nothing (another test's client, with a second test run beside
        // this one) cannot hold up the wrapper's.
        thread::spawn(move || {
            for socket in listener.incoming() {
                let Ok(mut socket) = socket else { return };
                let answers = answers.clone();
                thread::spawn(move || {
                    let (receipt, extra) = &*answers;
                    socket.set_read_timeout(Some(DEADLINE)).unwrap();
                    let path = read_request(&mut socket);
                    let body = match path.starts_with("/api/approval/submit") {
                        true => json!({"approval_id": FAKE_ID, "pending_count": 1}),
                        false => {
                            let mut body = json!({"status": "answered", "choice": "once"});
                            for (field, value) in extra.as_object().unwrap() {
                                body[field] = value.clone();
                            }
                            if let Some(receipt) = receipt {
                                body["receipt"] = receipt.clone();
                            }
                            body
                        }
                    };
                    let body = body.to_string();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = socket.write_all(format!("{head}{body}").as_bytes());
                });
            }
        });
        FakeServer { addr }
    }
}

/// Reads one request (head and body) and returns its path.
fn read_request(socket: &mut std::net::TcpStream) -> String {
    let mut reader = BufReader::new(socket);
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    let path = line.split(' ').nth(1).unwrap_or_default().to_string();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    path
}

/// A receipt signed by `signer` that once-approves `command` for `id`,
/// decided at `at`.
fn signed(signer: &Signer, id: &str, command: &str, choice: Choice, at: u64) -> Value {
    let action = receipt::action_digest(&receipt::command_action(command));
    let outcome = Outcome::Answered(Answer::choice(choice));
    let decision = Decision::of(id, "w", Kind::Approval, &action, &outcome).at(at as f64);
    signer.sign(&decision).to_json()
}

/// A receipt signed by `signer` that once-approves `action` (its JSON) for
/// `id`, or `edited` in its place when given, decided now.
pub fn approving(signer: &Signer, id: &str, action: &Value, edited: Option<&Value>) -> Value {
    let read = |action: &Value| Action::from_json(action).expect("an action");
    let answer = askgate::core::prompt::Decision {
        edited: edited.map(|edited| Box::new(read(edited))),
        ..askgate::core::prompt::Decision::plain(Choice::Once)
    };
    let digest = receipt::action_digest(&read(action).key());
    let outcome = Outcome::Answered(Answer::Decision(answer));
    let decision = Decision::of(id, "w", Kind::Approval, &digest, &outcome).at(now() as f64);
    signer.sign(&decision).to_json()
}

/// The receipt a fake server sends for a command, if any.
type SignFor<'a> = dyn Fn(&str) -> Option<Value> + 'a;

#[test]
fn the_wrapper_runs_nothing_on_a_fake_approval() {
    let signer = askgate::receipt_key::ephemeral().unwrap();
    let key = signer.public_key();
    let forger = askgate::receipt_key::ephemeral().unwrap();
    let now = now();
    // Each case signs (or not) for the command the wrapper will ask about.
    let cases: Vec<(&str, Box<SignFor<'_>>, &str)> = vec![
        ("no receipt", Box::new(|_| None), "carries no receipt"),
        (
            "forged",
            Box::new(|command| Some(signed(&forger, FAKE_ID, command, Choice::Once, now))),
            "does not verify",
        ),
        (
            "another command",
            Box::new(|_| {
                Some(signed(
                    &signer,
                    FAKE_ID,
                    "touch /tmp/other",
                    Choice::Once,
                    now,
                ))
            }),
            "another action",
        ),
        (
            "expired",
            Box::new(|command| Some(signed(&signer, FAKE_ID, command, Choice::Once, now - 1000))),
            "expired",
        ),
        (
            "another prompt",
            Box::new(|command| {
                let other = "fedcba9876543210fedcba9876543210";
                Some(signed(&signer, other, command, Choice::Once, now))
            }),
            "another prompt",
        ),
        (
            "a denial",
            Box::new(|command| Some(signed(&signer, FAKE_ID, command, Choice::Deny, now))),
            "does not approve",
        ),
    ];
    for (case, receipt, says) in &cases {
        for by_env in [false, true] {
            let dir = TempDir::new("receipt-wrapper");
            let marker = dir.join("ran");
            let command = format!("touch {}", marker.display());
            let fake = FakeServer::start(receipt(&command));
            let (code, stderr, ran) = run_wrapper(fake.addr, Some(&key), by_env, &marker);
            assert_eq!(code, Some(2), "{case}: {stderr}");
            assert!(stderr.contains(says), "{case}: {stderr}");
            assert!(!ran, "{case}: the command ran");
        }
    }
    // The same fake server with a good receipt: the command runs, so the
    // refusals above are the receipts' doing.
    let dir = TempDir::new("receipt-wrapper");
    let marker = dir.join("ran");
    let command = format!("touch {}", marker.display());
    let fake = FakeServer::start(Some(signed(&signer, FAKE_ID, &command, Choice::Once, now)));
    let (code, stderr, ran) = run_wrapper(fake.addr, Some(&key), false, &marker);
    assert_eq!((code, ran), (Some(0), true), "{stderr}");
    // Without a key, the word "approved" is taken on trust, as before.
    std::fs::remove_file(&marker).unwrap();
    let fake = FakeServer::start(None);
    let (code, stderr, ran) = run_wrapper(fake.addr, None, false, &marker);
    assert_eq!((code, ran), (Some(0), true), "{stderr}");
}

/// Runs `askgate approve --session w -- touch MARKER` against the server
/// at `addr`, with the key by flag or by `ASKGATE_VERIFY_KEY`: its exit
/// code, its stderr, and whether the command ran.
fn run_wrapper(
    addr: SocketAddr,
    key: Option<&str>,
    by_env: bool,
    marker: &Path,
) -> (Option<i32>, String, bool) {
    let mut command = askgate();
    command.env("ASKGATE_URL", format!("http://{addr}"));
    command.args(["approve", "--session", "w"]);
    match (key, by_env) {
        (None, _) => &mut command,
        (Some(key), true) => command.env("ASKGATE_VERIFY_KEY", key),
        (Some(key), false) => command.args(["--verify-key", key]),
    };
    let child = command
        .args(["--", "touch"])
        .arg(marker)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = finish(child, DEADLINE);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    (output.status.code(), stderr, marker.exists())
}

#[test]
fn the_wrapper_runs_a_command_the_real_server_approved() {
    let server = TestServer::start(&[]);
    let key = public_key(&server);
    let dir = TempDir::new("receipt-real");
    let marker = dir.join("ran");
    let marker = marker.to_str().unwrap();
    let child = ask(
        server.addr,
        &[
            "approve",
            "--session",
            "w",
            "--verify-key",
            &key,
            "--",
            "touch",
            marker,
        ],
    );
    answer(&server, "approval", "w", "once");
    let output = finish(child, DEADLINE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(Path::new(marker).exists(), "the approved command ran");

    // Another server's key: the real approval does not verify, nothing runs.
    let other = TestServer::start(&[]);
    let other_key = public_key(&other);
    std::fs::remove_file(marker).unwrap();
    let child = ask(
        server.addr,
        &[
            "approve",
            "--session",
            "w",
            "--verify-key",
            &other_key,
            "--",
            "touch",
            marker,
        ],
    );
    answer(&server, "approval", "w", "once");
    let output = finish(child, DEADLINE);
    assert_eq!(output.status.code(), Some(2));
    assert!(!Path::new(marker).exists());

    // Plain approve (as the pre-push hook runs it) verifies too, given a key.
    let mut command = askgate();
    command
        .env("ASKGATE_URL", format!("http://{}", server.addr))
        .env("ASKGATE_VERIFY_KEY", &other_key)
        .args([
            "approve",
            "--session",
            "p",
            "--command",
            "git push origin main",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().unwrap();
    let head = pending_head(&server, "approval", "p");
    let body = json!({"session_id": "p", "approval_id": head["approval_id"], "choice": "once"});
    assert_eq!(server.post("/api/approval/respond", &body).status, 200);
    let output = finish(child, DEADLINE);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn an_edited_command_runs_only_on_a_receipt_that_names_the_edit() {
    let server = TestServer::start(&[]);
    let key = public_key(&server);
    let dir = TempDir::new("receipt-edited");
    let (asked, edited) = (dir.join("asked"), dir.join("edited"));
    let (asked, edited) = (asked.to_str().unwrap(), edited.to_str().unwrap());
    let child = ask(
        server.addr,
        &[
            "approve",
            "--session",
            "e",
            "--verify-key",
            &key,
            "--",
            "touch",
            asked,
        ],
    );
    let head = pending_head(&server, "approval", "e");
    let instead = format!("touch '{edited}'");
    let body = json!({
        "session_id": "e", "approval_id": head["approval_id"], "choice": "once",
        "edited": {"type": "command", "command": instead},
    });
    assert_eq!(server.post("/api/approval/respond", &body).status, 200);
    let output = finish(child, DEADLINE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(Path::new(edited).exists(), "the edit the receipt names ran");
    assert!(!Path::new(asked).exists(), "the command asked did not");

    // A liar that says "edited" beside a receipt for the command asked:
    // the edit is not what the human approved, and nothing runs.
    let signer = askgate::receipt_key::ephemeral().unwrap();
    let asked_command = format!("touch {asked}");
    let now = now();
    let receipt = signed(&signer, FAKE_ID, &asked_command, Choice::Once, now);
    let edit = json!({"edited": {"type": "command", "command": format!("touch {edited}-2")}});
    let fake = FakeServer::answering(Some(receipt), edit);
    let mut command = askgate();
    command
        .env("ASKGATE_URL", format!("http://{}", fake.addr))
        .args([
            "approve",
            "--session",
            "w",
            "--verify-key",
            &signer.public_key(),
            "--",
            "touch",
            asked,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = finish(command.spawn().unwrap(), DEADLINE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("for another action"), "{stderr}");
    assert!(!Path::new(&format!("{edited}-2")).exists());
    assert!(!Path::new(asked).exists());
}

#[test]
fn instances_sharing_redis_share_one_key() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let first = instance(&redis);
    let second = instance(&redis);
    let key = public_key(&first);
    assert_eq!(public_key(&second), key);
    let id = submit_approval(&first, "x", "deploy", 0)["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    respond(&first, "x", &id, "once");
    let from_first = wait(&first, "approval", "x", &id);
    let from_second = wait(&second, "approval", "x", &id);
    assert_eq!(from_first["receipt"], from_second["receipt"]);
    assert!(node_verify(&key, &from_second, Some(&command_action("deploy"))).is_ok());
    // A restarted instance keeps it.
    drop(first);
    let third = instance(&redis);
    assert_eq!(public_key(&third), key);
}

/// `git push` through the pre-push hook, with `ASKGATE_VERIFY_KEY` set.
fn verified_push(work: &Path, url: &str, key: &str) -> std::process::Child {
    let mut command = Command::new("git");
    command
        .current_dir(work)
        .args(["push", "origin", "HEAD:refs/heads/main"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", work)
        .env("ASKGATE_VERIFY_KEY", key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    with_askgate(&mut command, url).spawn().unwrap()
}

#[test]
fn the_pre_push_hook_given_a_key_pushes_only_on_a_receipt() {
    let found = Command::new("git").arg("--version").output();
    if !found.is_ok_and(|output| output.status.success()) {
        eprintln!("SKIPPED: the pre-push hook test needs git, which is missing");
        return;
    }
    let server = TestServer::start(&[]);
    let key = public_key(&server);
    let dir = TempDir::new("pre-push-receipt");
    let (remote, work) = (dir.join("remote.git"), dir.join("work"));
    git(&dir.path, &["init", "-q", "--bare", "remote.git"]);
    git(&dir.path, &["init", "-q", "work"]);
    git(&work, &["commit", "-q", "--allow-empty", "-m", "first"]);
    git(
        &work,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    std::fs::copy(hook("pre-push"), work.join(".git/hooks/pre-push")).unwrap();

    // A fake server's bare "approved": the push is refused.
    let fake = FakeServer::start(None);
    let output = finish(
        verified_push(&work, &format!("http://{}", fake.addr), &key),
        DEADLINE,
    );
    assert!(!output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("carries no receipt"));
    assert_eq!(remote_main(&remote), None, "nothing was pushed");

    // The real server's approval, with its receipt: the push goes out.
    let child = verified_push(&work, &format!("http://{}", server.addr), &key);
    answer(&server, "approval", "git-work", "once");
    let output = finish(child, DEADLINE);
    assert!(output.status.success(), "{output:?}");
    assert!(remote_main(&remote).is_some(), "the approved push arrived");
}
