//! Notifications (docs/PROTOCOL.md §3.4, §8) against the real binary: a
//! local HTTP sink stands in for ntfy and for a webhook and records what
//! askgate sends; the test then presses a button exactly as ntfy would
//! (the POST its action describes) and plays the attacker with it: a
//! replay, a transplant to another prompt or choice, a tampered capability.

use crate::binary::{ServerProcess, askgate};
use crate::lifecycle::{EXIT_WITHIN, signal_and_wait};
use crate::support::{Client, DEADLINE, eventually, within};
use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use std::{env, fs, process, thread};

/// One request the sink received.
#[derive(Debug)]
pub struct Received {
    method: String,
    pub path: String,
    headers: Vec<(String, String)>,
    pub body: Value,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        let found = self.headers.iter().find(|(key, _)| key == name);
        found.map(|(_, value)| value.as_str())
    }
}

/// A local HTTP server that answers every POST `200 {}` and hands each
/// request to the test. Its thread ends with the test process.
pub struct Sink {
    addr: SocketAddr,
    received: Receiver<Received>,
}

impl Sink {
    pub fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (sender, received) = crossbeam_channel::unbounded();
        thread::spawn(move || {
            for socket in listener.incoming().flatten() {
                if let Some(request) = read_request(socket) {
                    let _ = sender.send(request);
                }
            }
        });
        Sink { addr, received }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request, within the deadline.
    pub fn next(&self) -> Received {
        match self.received.recv_timeout(DEADLINE) {
            Ok(request) => request,
            Err(RecvTimeoutError::Timeout) => panic!("no notification within {DEADLINE:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the sink stopped"),
        }
    }

    /// The next request to each of ntfy (any path but `/hook`) and the
    /// webhook (`/hook`), which come from two threads in either order.
    fn next_pair(&self) -> (Received, Received) {
        let (first, second) = (self.next(), self.next());
        match first.path.as_str() {
            "/hook" => (second, first),
            _ => (first, second),
        }
    }
}

fn read_request(socket: TcpStream) -> Option<Received> {
    socket.set_read_timeout(Some(DEADLINE)).ok()?;
    let mut reader = BufReader::new(socket.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let method = line.split(' ').next()?.to_string();
    let path = line.split(' ').nth(1)?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut socket = socket;
    let reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    socket.write_all(reply.as_bytes()).ok()?;
    let body = match body.is_empty() {
        true => Value::Null,
        false => serde_json::from_slice(&body).ok()?,
    };
    Some(Received {
        method,
        path,
        headers,
        body,
    })
}

fn server(sink: &Sink, flags: &[&str]) -> ServerProcess {
    let ntfy = sink.url("/askgate-topic");
    let webhook = sink.url("/hook");
    let mut all = vec!["--notify-ntfy", &ntfy, "--notify-webhook", &webhook];
    all.extend_from_slice(flags);
    ServerProcess::start(&all)
}

pub fn approval(server: &Client, session_id: &str, command: &str) -> String {
    let body = json!({"session_id": session_id, "command": command});
    let reply = server.post("/api/approval/submit", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["approval_id"].as_str().unwrap().to_string()
}

fn clarify(server: &Client, session_id: &str, question: &str, choices: &[&str]) -> Value {
    let body = json!({"session_id": session_id, "question": question, "choices": choices});
    let reply = server.post("/api/clarify/submit", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// Performs an ntfy `http` action as the ntfy app does: its method, url,
/// headers and body, nothing else. Returns the status and the body.
pub fn press(action: &Value) -> (u16, Value) {
    let url = action["url"].as_str().unwrap();
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let server = Client {
        addr: host.parse().unwrap(),
    };
    let headers: Vec<(&str, &str)> = action["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str().unwrap()))
        .collect();
    let method = action["method"].as_str().unwrap();
    let reply = server.request(method, path, &headers, action["body"].as_str().unwrap());
    let body = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    (reply.status, body)
}

/// The action of a notification with this label.
pub fn button<'a>(notification: &'a Value, label: &str) -> &'a Value {
    let actions = notification["actions"].as_array().unwrap();
    let found = actions.iter().find(|action| action["label"] == label);
    found.unwrap_or_else(|| panic!("no {label:?} in {notification}"))
}

#[test]
fn each_new_prompt_is_notified_once_on_each_sink_s_own_priority_scale() {
    let sink = Sink::start();
    let server = server(&sink, &["--notify-grace-secs", "0"]);
    // A page that is open but hidden (a background tab, hidden longer than
    // the grace) silences nothing.
    let mut page = server.stream("/api/events");
    page.expect_event("ready");
    presence(&server, "background-tab", false);
    let id = approval(&server, "s1", "make deploy");
    let (ntfy, webhook) = sink.next_pair();

    assert_eq!(ntfy.path, "/", "ntfy's publish JSON goes to its root");
    let ntfy = ntfy.body;
    assert_eq!(ntfy["topic"], "askgate-topic");
    assert_eq!(ntfy["title"], "Approve a command? (s1)");
    assert_eq!(ntfy["message"], "$ make deploy");
    assert_eq!(ntfy["priority"], 4);
    assert_eq!(ntfy["sequence_id"], json!(id), "so it can be cleared");
    assert_eq!(ntfy["click"], format!("http://{}/#s=s1", server.addr));
    let labels: Vec<&Value> = ntfy["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["label"])
        .collect();
    assert_eq!(labels, ["Allow once", "Deny"]);
    assert_eq!(webhook.path, "/hook");
    assert_eq!(webhook.header("content-type"), Some("application/json"));
    let webhook = webhook.body;
    assert_eq!(
        (&webhook["event"], &webhook["kind"], &webhook["approval_id"]),
        (&json!("prompt"), &json!("approval"), &json!(id))
    );
    assert_eq!(webhook["priority"], 8, "Gotify's scale: 0-10");
    assert_eq!(webhook["prompt"]["command"], "make deploy");
    assert_eq!(webhook["actions"].as_array().unwrap().len(), 2);

    // A duplicate clarify is not a new prompt.
    clarify(&server, "s2", "Which?", &["a", "b"]);
    let again = clarify(&server, "s2", "Which?", &["a", "b"]);
    assert_eq!(again["deduped"], true);
    let (ntfy, webhook) = sink.next_pair();
    assert_eq!(
        (&ntfy.body["title"], &webhook.body["session_id"]),
        (&json!("A question (s2)"), &json!("s2"))
    );
    assert_eq!(
        (&ntfy.body["priority"], &webhook.body["priority"]),
        (&json!(3), &json!(5))
    );
    approval(&server, "s3", "make test");
    let (ntfy, webhook) = sink.next_pair();
    assert_eq!(
        (&ntfy.body["title"], &webhook.body["session_id"]),
        (&json!("Approve a command? (s3)"), &json!("s3"))
    );

    // A prompt a rule answers at once is no new prompt either (the
    // answer that grants the rule clears the notification of s3).
    let grant = json!({"session_id": "s3", "choice": "session"});
    assert_eq!(server.post("/api/approval/respond", &grant).status, 200);
    let (cleared, resolved) = sink.next_pair();
    assert_eq!(cleared.method, "DELETE");
    assert_eq!(resolved.body["event"], "resolved");
    let body = json!({"session_id": "s3", "command": "make test"});
    assert_eq!(
        server.post("/api/approval/submit", &body).json()["auto"],
        true
    );
    clarify(&server, "s4", "Now?", &[]);
    let (ntfy, webhook) = sink.next_pair();
    assert_eq!(
        (&ntfy.body["title"], &webhook.body["session_id"]),
        (&json!("A question (s4)"), &json!("s4"))
    );
    assert!(
        sink.received.is_empty(),
        "one notification per prompt and sink"
    );
    assert_eq!(server.metric("askgate_notifications_watched_total"), 0.0);
    drop(page);
}

/// Says, as a page of the human, whether it is visible.
fn presence(server: &Client, page: &str, visible: bool) {
    let body = json!({"page": page, "visible": visible});
    let reply = server.post("/api/presence", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[test]
fn a_visible_page_holds_the_phone_and_once_hidden_its_grace_ends_and_the_phone_rings() {
    let sink = Sink::start();
    let server = server(&sink, &["--notify-grace-secs", "1"]);
    presence(&server, "tab-at-the-desk", true);
    let id = approval(&server, "s1", "make deploy");
    // Told before the submit answered: held, not sent.
    assert_eq!(server.metric("askgate_notifications_watched_total"), 1.0);
    assert!(sink.received.is_empty());

    // Bad presence changes nothing.
    for bad in [
        json!({"page": "short", "visible": false}),
        json!({"page": "tab-at-the-desk", "visible": "no"}),
        json!({"page": "tab at the desk", "visible": false}),
        json!({"visible": false}),
    ] {
        assert_eq!(server.post("/api/presence", &bad).status, 400, "{bad}");
    }

    // The human walks away: the tab is hidden; a grace later the phone rings
    // with the prompt still pending.
    presence(&server, "tab-at-the-desk", false);
    let (ntfy, webhook) = sink.next_pair();
    assert_eq!(ntfy.body["sequence_id"], json!(id));
    assert_eq!(webhook.body["approval_id"], json!(id));

    // Back at the desk, a new prompt waits for the page, and one answered
    // there is never sent.
    presence(&server, "tab-at-the-desk", true);
    let answered = approval(&server, "s2", "make clean");
    let respond = json!({"session_id": "s2", "approval_id": answered, "choice": "deny"});
    assert_eq!(server.post("/api/approval/respond", &respond).status, 200);
    presence(&server, "tab-at-the-desk", false);
    let later = approval(&server, "s3", "make test");
    let (ntfy, _) = sink.next_pair();
    assert_eq!(
        ntfy.body["sequence_id"],
        json!(later),
        "not the answered one"
    );
    assert!(sink.received.is_empty());
}

#[test]
fn an_answered_expired_or_cancelled_prompt_is_cleared_from_the_phone() {
    let sink = Sink::start();
    let server = server(&sink, &[]);
    let id = approval(&server, "s1", "make deploy");
    sink.next_pair();
    // Answered on the page.
    let respond = json!({"session_id": "s1", "approval_id": id, "choice": "once"});
    assert_eq!(server.post("/api/approval/respond", &respond).status, 200);
    let (ntfy, webhook) = sink.next_pair();
    assert_eq!(
        (ntfy.method.as_str(), ntfy.path.as_str()),
        ("DELETE", format!("/askgate-topic/{id}").as_str()),
        "ntfy's way to delete what it sent: DELETE /<topic>/<sequence id>"
    );
    assert_eq!(
        webhook.body,
        json!({
            "event": "resolved", "kind": "approval", "session_id": "s1", "id": id,
            "approval_id": id, "status": "answered", "priority": 0,
            "title": "An approval in s1 was answered",
            "message": "An approval in s1 was answered; nothing is left to answer.",
        })
    );

    // Expired.
    let body = json!({"session_id": "s2", "question": "Soon?", "timeout_seconds": 2});
    let asked = server.post("/api/clarify/submit", &body).json();
    let id = asked["clarify_id"].as_str().unwrap().to_string();
    sink.next_pair();
    let (ntfy, webhook) = sink.next_pair();
    assert_eq!(ntfy.path, format!("/askgate-topic/{id}"));
    assert_eq!(
        (&webhook.body["status"], &webhook.body["clarify_id"]),
        (&json!("expired"), &json!(id))
    );

    // Cancelled by the agent.
    let id = approval(&server, "s3", "make clean");
    sink.next_pair();
    let cancel = json!({"session_id": "s3", "approval_id": id});
    assert_eq!(server.post("/api/approval/cancel", &cancel).status, 200);
    let (ntfy, webhook) = sink.next_pair();
    assert_eq!(
        (ntfy.method.as_str(), &webhook.body["status"]),
        ("DELETE", &json!("cancelled"))
    );
    assert!(sink.received.is_empty());
}

#[test]
fn with_notify_when_always_a_visible_page_holds_nothing() {
    let sink = Sink::start();
    let server = server(&sink, &["--notify-when", "always"]);
    presence(&server, "tab-at-the-desk", true);
    approval(&server, "s1", "make deploy");
    let (ntfy, webhook) = sink.next_pair();
    assert_eq!(ntfy.body["message"], "$ make deploy");
    assert_eq!(webhook.body["session_id"], "s1");
    assert_eq!(server.metric("askgate_notifications_watched_total"), 0.0);
}

#[test]
fn an_action_is_notified_by_its_type_and_path_escaped_and_the_webhook_carries_it_whole() {
    let sink = Sink::start();
    let server = server(&sink, &[]);
    let action = json!({"type": "write", "path": "run\u{202E}.sh", "content": "rm -rf ~\n"});
    let body = json!({"session_id": "w1", "action": action});
    assert_eq!(server.post("/api/approval/submit", &body).status, 200);
    let (ntfy, webhook) = sink.next_pair();
    assert_eq!(ntfy.body["title"], "Approve a file write? (w1)");
    assert_eq!(
        ntfy.body["message"],
        "write: run\\u{202E}.sh\nwrite run\\u{202E}.sh (9 bytes, 1 line)"
    );
    let labels: Vec<&Value> = ntfy.body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["label"])
        .collect();
    assert_eq!(
        labels,
        [&json!("Deny")],
        "a write is allowed where its content is shown"
    );
    assert_eq!(webhook.body["action"], action, "the whole action");
    assert_eq!(webhook.body["prompt"]["action"], action);
}

/// A data directory under the system's temp dir, removed when dropped.
struct DataDir(PathBuf);

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_button_answers_its_prompt_with_its_choice_once_and_nothing_else() {
    let sink = Sink::start();
    let dir = DataDir(env::temp_dir().join(format!("askgate-it-notify-{}", process::id())));
    let _ = fs::remove_dir_all(&dir.0);
    let server = server(&sink, &["--data-dir", dir.0.to_str().unwrap()]);
    let first = approval(&server, "s1", "make deploy");
    let (first_ntfy, _) = sink.next_pair();
    let second = approval(&server, "s1", "make clean");
    let (second_ntfy, _) = sink.next_pair();
    let (first_ntfy, second_ntfy) = (first_ntfy.body, second_ntfy.body);

    // The agent waits; ntfy's "Allow once" answers it.
    let agent: Client = *server;
    let wait = format!("/api/approval/wait?session_id=s1&approval_id={first}&timeout=30");
    let waiting = thread::spawn(move || agent.get(&wait).outcome());
    let allow = button(&first_ntfy, "Allow once");
    assert_eq!(press(allow), (200, json!({"ok": true, "choice": "once"})));
    let outcome = within(DEADLINE, move || waiting.join().unwrap());
    assert_eq!(outcome, json!({"status": "answered", "choice": "once"}));
    // Its notification is cleared, so no stale button stays on the phone.
    let (cleared, resolved) = sink.next_pair();
    assert_eq!(cleared.path, format!("/askgate-topic/{first}"));
    assert_eq!(resolved.body["approval_id"], json!(first));

    // The same button again, and the other button of the answered prompt.
    let (status, body) = press(allow);
    assert_eq!(status, 409, "a used capability: {body}");
    assert_eq!(body["error"], "the capability has been used");
    assert_eq!(
        press(button(&first_ntfy, "Deny")).0,
        409,
        "the prompt has ended"
    );

    // The first prompt's capability cannot answer the second prompt, nor
    // can the second's answer it with another choice, nor a rule; a
    // tampered capability is refused; each refusal changes nothing.
    let second_allow = button(&second_ntfy, "Allow once");
    let second_deny = button(&second_ntfy, "Deny");
    let mut transplanted = first_ntfy["actions"][1].clone();
    transplanted["body"] = second_deny["body"].clone();
    let mut other_choice = second_deny.clone();
    other_choice["body"] = second_allow["body"].clone();
    let mut rule = second_allow.clone();
    let body = second_allow["body"]
        .as_str()
        .unwrap()
        .replace("\"once\"", "\"always\"");
    rule["body"] = json!(body);
    let mut tampered = second_allow.clone();
    let capability = second_allow["headers"]["X-Askgate-Capability"]
        .as_str()
        .unwrap();
    let last = capability.chars().last().unwrap();
    let flipped = format!(
        "{}{}",
        &capability[..capability.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    tampered["headers"]["X-Askgate-Capability"] = json!(flipped);
    let mut without = second_allow.clone();
    without["headers"]
        .as_object_mut()
        .unwrap()
        .remove("X-Askgate-Capability");
    for (what, action, expected) in [
        ("another prompt", &transplanted, 403),
        ("another choice", &other_choice, 403),
        ("a rule", &rule, 403),
        ("a tampered capability", &tampered, 403),
        ("no capability", &without, 401),
    ] {
        let (status, body) = press(action);
        assert_eq!(status, expected, "{what}: {body}");
    }
    let pending = server.get("/api/approval/pending?session_id=s1").json();
    assert_eq!(
        pending["pending"]["approval_id"],
        json!(second),
        "still pending"
    );

    // Its own "Deny" still works, once.
    assert_eq!(
        press(second_deny),
        (200, json!({"ok": true, "choice": "deny"}))
    );
    let (cleared, _) = sink.next_pair();
    assert_eq!(cleared.path, format!("/askgate-topic/{second}"));

    // A clarify's choices are buttons too.
    let asked = clarify(&server, "s2", "Which database?", &["postgres", "sqlite"]);
    let (ntfy, _) = sink.next_pair();
    assert_eq!(press(button(&ntfy.body, "sqlite")).0, 200);
    let id = asked["clarify_id"].as_str().unwrap();
    let wait = format!("/api/clarify/wait?session_id=s2&clarify_id={id}&timeout=0");
    assert_eq!(
        server.get(&wait).outcome(),
        json!({"status": "answered", "response": "sqlite"})
    );

    // The audit log says the answers came from a notification.
    let audit = dir.0.join("audit.log");
    let answered_by_notification = |id: &str| {
        let text = fs::read_to_string(&audit).unwrap_or_default();
        text.lines().any(|line| {
            line.contains("event=answered") && line.contains(id) && line.contains("by=notification")
        })
    };
    eventually("the answers are audited", DEADLINE, &mut || {
        answered_by_notification(&first) && answered_by_notification(&second)
    });

    // The key is the data directory's, its owner's alone, and a command
    // replaces it (every button sent before stops answering at a restart).
    let key = dir.0.join("notify.key");
    let before = fs::read_to_string(&key).unwrap();
    let mode = fs::metadata(&key).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    let rotated = askgate()
        .args(["tokens", "rotate", "notify", "--data-dir"])
        .arg(&dir.0)
        .output()
        .unwrap();
    assert_eq!(rotated.status.code(), Some(0), "{rotated:?}");
    assert_ne!(fs::read_to_string(&key).unwrap(), before);
}

#[test]
fn a_sink_that_never_answers_delays_no_submit_and_drops_nothing() {
    // Connections to it are accepted by the kernel and never answered.
    let hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", hole.local_addr().unwrap());
    let ntfy = format!("http://{}/topic", hole.local_addr().unwrap());
    let server = ServerProcess::start(&[
        "--notify-webhook",
        &url,
        "--notify-ntfy",
        &ntfy,
        "--notify-timeout-secs",
        "60",
    ]);
    for n in 0..70 {
        let started = Instant::now();
        approval(&server, &format!("s{n}"), "make deploy");
        let took = started.elapsed();
        // A submit that waited for the sink would take its 60 s timeout;
        // 5 s leaves room for load beside the test.
        assert!(took < Duration::from_secs(5), "submit {n} took {took:?}");
    }
    let dropped =
        server.metric("askgate_notifications_total{sink=\"webhook\",outcome=\"dropped\"}");
    assert_eq!(dropped, 0.0, "kept per session, bounded in bytes");

    // Shutdown does not wait for them either.
    let mut server = server;
    let (status, took) = signal_and_wait(&mut server, libc::SIGTERM);
    assert!(
        status.success() && took < EXIT_WITHIN,
        "{status} after {took:?}"
    );
    drop(hole);
}

/// A sink whose first request gets no answer until the test opens the
/// gate; `held` tells when that first connection has come.
struct Gated {
    sink: Sink,
    held: Receiver<()>,
    open: crossbeam_channel::Sender<()>,
}

fn gated_sink() -> Gated {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, received) = crossbeam_channel::unbounded();
    let (open, gate) = crossbeam_channel::bounded::<()>(1);
    let (holding, held) = crossbeam_channel::bounded::<()>(1);
    thread::spawn(move || {
        let mut first = true;
        for socket in listener.incoming().flatten() {
            if std::mem::take(&mut first) {
                let _ = holding.send(());
                let _ = gate.recv_timeout(DEADLINE);
            }
            if let Some(request) = read_request(socket) {
                let _ = sender.send(request);
            }
        }
    });
    Gated {
        sink: Sink { addr, received },
        held,
        open,
    }
}

#[test]
fn a_burst_from_one_agent_is_one_summary_and_cannot_drown_another_prompt() {
    let Gated { sink, held, open } = gated_sink();
    let hook = sink.url("/hook");
    let server = ServerProcess::start(&["--notify-webhook", &hook, "--max-pending", "200"]);
    let first = approval(&server, "build-bot", "make 0");
    held.recv_timeout(DEADLINE)
        .expect("the first notification is on its way");
    // 150 more while the sink still holds the first (the old queue held 64).
    for n in 1..=150 {
        approval(&server, "build-bot", &format!("make {n}"));
    }
    clarify(&server, "docs", "Publish?", &["yes", "no"]);
    open.send(()).unwrap();
    let told = sink.next().body;
    assert_eq!(told["approval_id"], json!(first));
    let summary = sink.next().body;
    assert_eq!(
        (&summary["event"], &summary["title"], &summary["approvals"]),
        (
            &json!("summary"),
            &json!("150 new approvals in build-bot"),
            &json!(150)
        )
    );
    assert_eq!(
        summary["click"],
        format!("http://{}/#s=build-bot", server.addr)
    );
    let other = sink.next().body;
    assert_eq!(
        (&other["event"], &other["session_id"]),
        (&json!("prompt"), &json!("docs"))
    );
    let dropped =
        server.metric("askgate_notifications_total{sink=\"webhook\",outcome=\"dropped\"}");
    assert_eq!(dropped, 0.0);
}

#[test]
fn an_unanswered_prompt_escalates_louder_and_to_a_second_topic() {
    let sink = Sink::start();
    let urgent = sink.url("/urgent-topic");
    let server = server(
        &sink,
        &[
            "--notify-escalate-after",
            "2",
            "--notify-escalate-ntfy",
            &urgent,
        ],
    );
    let id = approval(&server, "s1", "make deploy");
    let (ntfy, _) = sink.next_pair();
    assert_eq!(ntfy.body["priority"], 4);
    // Two seconds later: again, replacing the first (same sequence id), at the
    // highest priority of each scale, and to the second topic.
    let mut escalated: Vec<Received> = (0..3).map(|_| sink.next()).collect();
    escalated.sort_by_key(|r| r.body["topic"].as_str().unwrap_or("~").to_string());
    let [first_topic, second_topic, webhook] = &escalated[..] else {
        panic!("{escalated:?}")
    };
    assert_eq!(first_topic.body["topic"], "askgate-topic");
    assert_eq!(first_topic.body["sequence_id"], json!(id));
    assert_eq!(first_topic.body["priority"], 5);
    assert_eq!(
        first_topic.body["title"],
        "Still waiting: Approve a command? (s1)"
    );
    assert_eq!(second_topic.body["topic"], "urgent-topic");
    assert_eq!(second_topic.body["priority"], 5);
    assert_eq!(
        (&webhook.body["priority"], &webhook.body["escalated"]),
        (&json!(10), &json!(true))
    );
    // Answered: cleared everywhere.
    let respond = json!({"session_id": "s1", "approval_id": id, "choice": "deny"});
    assert_eq!(server.post("/api/approval/respond", &respond).status, 200);
    let mut paths: Vec<String> = (0..3).map(|_| sink.next().path).collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            format!("/askgate-topic/{id}"),
            "/hook".into(),
            format!("/urgent-topic/{id}")
        ]
    );
}

/// Seconds into the UTC day, as `HH:MM:SS`, `offset` seconds from now.
fn utc_time_of_day(offset: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let secs = (now + offset).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}

#[test]
fn quiet_hours_hold_every_push_and_end_with_one_summary() {
    let sink = Sink::start();
    // A window that began a minute ago and ends in a few seconds, in the
    // server's local time (UTC here): long enough to start the server and
    // submit on a busy machine.
    let quiet = format!("{}-{}", utc_time_of_day(-60), utc_time_of_day(8));
    let mut command = askgate();
    command.env("TZ", "UTC");
    let flags = [
        "--notify-ntfy".to_string(),
        sink.url("/askgate-topic"),
        "--notify-webhook".into(),
        sink.url("/hook"),
        "--quiet-hours".into(),
        quiet,
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = ServerProcess::start_with(command, &flags);
    approval(&server, "s1", "make deploy");
    approval(&server, "s2", "make clean");
    clarify(&server, "s3", "Which?", &[]);
    let answered = approval(&server, "s4", "rm -rf /");
    let respond = json!({"session_id": "s4", "approval_id": answered, "choice": "deny"});
    assert_eq!(server.post("/api/approval/respond", &respond).status, 200);
    assert!(sink.received.is_empty(), "held, nothing denied");
    let pending = server.get("/api/approval/pending?session_id=s1").json();
    assert_eq!(pending["pending_count"], 1, "still waiting");
    assert_eq!(server.metric("askgate_notifications_held_total"), 4.0);
    let within = Duration::from_secs(30);
    let (ntfy, webhook) = match sink.received.recv_timeout(within) {
        Ok(first) if first.path == "/hook" => (sink.next(), first),
        Ok(first) => (first, sink.next()),
        Err(_) => panic!("no summary within {within:?}"),
    };
    assert_eq!(
        (&ntfy.body["title"], &ntfy.body["message"]),
        (
            &json!("Quiet hours are over"),
            &json!("2 approvals and 1 question wait for you in askgate.")
        )
    );
    assert_eq!(
        (
            &webhook.body["event"],
            &webhook.body["approvals"],
            &webhook.body["questions"]
        ),
        (&json!("held"), &json!(2), &json!(1))
    );
    assert!(sink.received.is_empty(), "one summary");
}

#[test]
fn an_urgent_approval_rings_in_quiet_hours_only_when_the_human_allows_it() {
    let quiet = format!("{}-{}", utc_time_of_day(-60), utc_time_of_day(3600));
    for allowed in [false, true] {
        let sink = Sink::start();
        let mut command = askgate();
        command.env("TZ", "UTC");
        let mut flags = vec![
            "--notify-webhook".to_string(),
            sink.url("/hook"),
            "--quiet-hours".into(),
            quiet.clone(),
        ];
        if allowed {
            flags.push("--quiet-hours-allow-urgent".into());
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let server = ServerProcess::start_with(command, &flags);
        let body = json!({"session_id": "s1", "command": "reboot", "urgency": "high"});
        let reply = server.post("/api/approval/submit", &body);
        assert_eq!(reply.status, 200, "{}", reply.text());
        let urgent = reply.json()["approval_id"].clone();
        clarify(&server, "s2", "Urgent, says the agent?", &[]);
        let held = server.metric("askgate_notifications_held_total");
        match allowed {
            false => assert_eq!(held, 2.0),
            true => {
                assert_eq!(held, 1.0, "a question is never urgent");
                assert_eq!(sink.next().body["approval_id"], urgent);
            }
        }
        let bad = json!({"session_id": "s1", "command": "ls", "urgency": "now!"});
        assert_eq!(server.post("/api/approval/submit", &bad).status, 400);
    }
}

#[test]
fn notify_test_sends_to_each_sink_and_says_what_happened() {
    let sink = Sink::start();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let output = askgate()
        .args([
            "notify",
            "test",
            "--notify-ntfy",
            &sink.url("/askgate-topic"),
        ])
        .args(["--notify-webhook", &format!("http://{closed}/hook")])
        .args(["--notify-timeout-secs", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("WARNING: no --public-url"), "{stdout}");
    assert!(stdout.contains("ntfy: sent"), "{stdout}");
    assert!(stdout.contains("webhook: FAILED"), "{stdout}");
    let test = sink.next();
    assert_eq!(
        (
            &test.body["topic"],
            &test.body["title"],
            &test.body["priority"]
        ),
        (
            &json!("askgate-topic"),
            &json!("askgate: a test notification"),
            &json!(3)
        )
    );
}

#[test]
fn a_prompt_waits_fifteen_minutes_by_default_and_an_expiry_says_how_to_wait_longer() {
    let server = ServerProcess::start(&[]);
    clarify(&server, "s1", "Which?", &[]);
    let pending = server.get("/api/clarify/pending?session_id=s1").json();
    assert_eq!(pending["pending"]["timeout_seconds"], 900);
    let approval_id = approval(&server, "s2", "ls");
    let pending = server.get("/api/approval/pending?session_id=s2").json();
    assert_eq!(
        (
            &pending["pending"]["approval_id"],
            &pending["pending"]["timeout_seconds"]
        ),
        (&json!(approval_id), &json!(900))
    );
    let output = askgate()
        .args([
            "clarify",
            "--session",
            "s3",
            "--timeout",
            "1",
            "Still there?",
        ])
        .args(["--server", &format!("http://{}", server.addr)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("expired before the human answered"),
        "{stderr}"
    );
    assert!(stderr.contains("--timeout SECS"), "{stderr}");
    assert!(stderr.contains("the default is 900 s"), "{stderr}");
}

#[test]
fn a_prompt_answered_on_another_instance_is_cleared_from_the_phone() {
    let Some(program) = crate::redis::redis_server() else {
        return;
    };
    let redis = crate::redis::Redis::start(program);
    let sink = Sink::start();
    let ntfy = sink.url("/askgate-topic");
    let notifying = crate::redis::instance_with(&redis, &["--notify-ntfy", &ntfy]);
    let other = crate::redis::instance(&redis);
    let id = approval(&notifying, "s1", "make deploy");
    assert_eq!(sink.next().body["sequence_id"], json!(id));
    let respond = json!({"session_id": "s1", "approval_id": id, "choice": "deny"});
    assert_eq!(other.post("/api/approval/respond", &respond).status, 200);
    let cleared = sink.next();
    assert_eq!(
        (cleared.method.as_str(), cleared.path),
        ("DELETE", format!("/askgate-topic/{id}"))
    );
}

#[test]
fn a_paused_agent_rings_no_phone_until_it_is_resumed() {
    let sink = Sink::start();
    let dir = crate::support::TempDir::new("notify-paused");
    let role = askgate::serve::auth::Role::Agent;
    let codex = askgate::serve::credentials::add(&dir.path, role, "codex").unwrap();
    let (agent, human) = (
        "paused-agent-token-0123456789",
        "paused-human-token-0123456789",
    );
    let data = dir.path.to_str().unwrap();
    let flags = [
        "--data-dir",
        data,
        "--agent-token",
        agent,
        "--human-token",
        human,
    ];
    let server = server(&sink, &flags);
    let post = |token: &str, path: &str, body: Value| {
        let bearer = format!("Bearer {token}");
        let headers = [
            ("Authorization", bearer.as_str()),
            ("Content-Type", "application/json"),
        ];
        let reply = server.request("POST", path, &headers, &body.to_string());
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        reply.json()
    };
    let pause = |paused| {
        post(
            human,
            "/api/agents/pause",
            json!({"agent": "codex", "paused": paused}),
        )
    };
    pause(true);
    let body = json!({"session_id": "api", "command": "cargo build"});
    let paused = post(&codex, "/api/approval/submit", body)["approval_id"].clone();
    // Another agent (the legacy credential) that calls itself codex: rings.
    let body = json!({"session_id": "web", "command": "make test", "agent": "codex"});
    post(agent, "/api/approval/submit", body);
    let (ntfy, _) = sink.next_pair();
    assert_eq!(
        ntfy.body["message"], "$ make test",
        "the paused agent's earlier prompt was not sent"
    );
    pause(false);
    let (ntfy, webhook) = sink.next_pair();
    assert_eq!(ntfy.body["message"], "$ cargo build");
    assert_eq!(webhook.body["approval_id"], paused);
}
