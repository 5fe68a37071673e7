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
struct Received {
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        let found = self.headers.iter().find(|(key, _)| key == name);
        found.map(|(_, value)| value.as_str())
    }
}

/// A local HTTP server that answers every POST `200 {}` and hands each
/// request to the test. Its thread ends with the test process.
struct Sink {
    addr: SocketAddr,
    received: Receiver<Received>,
}

impl Sink {
    fn start() -> Sink {
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

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next request, within the deadline.
    fn next(&self) -> Received {
        match self.received.recv_timeout(DEADLINE) {
            Ok(request) => request,
            Err(RecvTimeoutError::Timeout) => panic!("no notification within {DEADLINE:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the sink stopped"),
        }
    }

    /// The next request to each of ntfy (`/`) and the webhook (`/hook`),
    /// which come from two threads in either order.
    fn next_pair(&self) -> (Received, Received) {
        let (first, second) = (self.next(), self.next());
        match first.path.as_str() {
            "/" => (first, second),
            _ => (second, first),
        }
    }
}

fn read_request(socket: TcpStream) -> Option<Received> {
    socket.set_read_timeout(Some(DEADLINE)).ok()?;
    let mut reader = BufReader::new(socket.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
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
    Some(Received {
        path,
        headers,
        body: serde_json::from_slice(&body).ok()?,
    })
}

fn server(sink: &Sink, flags: &[&str]) -> ServerProcess {
    let ntfy = sink.url("/askgate-topic");
    let webhook = sink.url("/hook");
    let mut all = vec!["--notify-ntfy", &ntfy, "--notify-webhook", &webhook];
    all.extend_from_slice(flags);
    ServerProcess::start(&all)
}

fn approval(server: &Client, session_id: &str, command: &str) -> String {
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
fn press(action: &Value) -> (u16, Value) {
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
fn button<'a>(notification: &'a Value, label: &str) -> &'a Value {
    let actions = notification["actions"].as_array().unwrap();
    let found = actions.iter().find(|action| action["label"] == label);
    found.unwrap_or_else(|| panic!("no {label:?} in {notification}"))
}

#[test]
fn each_new_prompt_is_notified_once_and_never_while_a_page_watches() {
    let sink = Sink::start();
    let server = server(&sink, &[]);
    let id = approval(&server, "s1", "make deploy");
    let (ntfy, webhook) = sink.next_pair();

    assert_eq!(ntfy.path, "/", "ntfy's publish JSON goes to its root");
    let ntfy = ntfy.body;
    assert_eq!(ntfy["topic"], "askgate-topic");
    assert_eq!(ntfy["title"], "Approve a command? (s1)");
    assert_eq!(ntfy["message"], "$ make deploy");
    assert_eq!(ntfy["priority"], 4);
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
    assert_eq!(webhook["prompt"]["command"], "make deploy");
    assert_eq!(webhook["actions"].as_array().unwrap().len(), 2);

    // A page watching the session: nothing is sent for its prompts, and a
    // duplicate clarify is not a new prompt. The next notifications each
    // sink gets (one thread each, in order) are for the unwatched session.
    let mut page = server.stream("/api/events?session_id=watched");
    page.expect_event("ready");
    approval(&server, "watched", "ls");
    clarify(&server, "s2", "Which?", &["a", "b"]);
    let again = clarify(&server, "s2", "Which?", &["a", "b"]);
    assert_eq!(again["deduped"], true);
    approval(&server, "s3", "make test");
    let (ntfy, webhook) = sink.next_pair();
    assert_eq!(
        (&ntfy.body["title"], &webhook.body["session_id"]),
        (&json!("A question (s2)"), &json!("s2"))
    );
    let (ntfy, webhook) = sink.next_pair();
    assert_eq!(
        (&ntfy.body["title"], &webhook.body["session_id"]),
        (&json!("Approve a command? (s3)"), &json!("s3"))
    );
    assert_eq!(server.metric("askgate_notifications_watched_total"), 1.0);

    // A prompt a rule answers at once is no new prompt either.
    let grant = json!({"session_id": "s3", "choice": "session"});
    assert_eq!(server.post("/api/approval/respond", &grant).status, 200);
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
    drop(page);
}

#[test]
fn with_notify_when_always_a_watched_prompt_is_notified_too() {
    let sink = Sink::start();
    let server = server(&sink, &["--notify-when", "always"]);
    let mut page = server.stream("/api/events");
    page.expect_event("ready");
    approval(&server, "s1", "make deploy");
    let (ntfy, webhook) = sink.next_pair();
    assert_eq!(ntfy.body["message"], "$ make deploy");
    assert_eq!(webhook.body["session_id"], "s1");
    assert_eq!(server.metric("askgate_notifications_watched_total"), 0.0);
    drop(page);
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
fn a_sink_that_never_answers_delays_no_submit_and_drops_what_does_not_fit() {
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
        assert!(took < Duration::from_secs(1), "submit {n} took {took:?}");
    }
    let dropped =
        server.metric("askgate_notifications_total{sink=\"webhook\",outcome=\"dropped\"}");
    assert!(
        (5.0..=6.0).contains(&dropped),
        "64 wait, one is on its way: {dropped}"
    );

    // Shutdown does not wait for them either.
    let mut server = server;
    let (status, took) = signal_and_wait(&mut server, libc::SIGTERM);
    assert!(
        status.success() && took < EXIT_WITHIN,
        "{status} after {took:?}"
    );
    drop(hole);
}
