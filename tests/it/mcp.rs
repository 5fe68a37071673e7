//! `askgate mcp`: the real binary spoken to as an MCP client would, line by
//! line over its stdin and stdout, against a server with tokens; and the
//! official MCP Python SDK (`tests/mcp/sdk_client.py`) driving it.

use crate::binary::askgate;
use crate::support::{DEADLINE, TestServer};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const AGENT: &str = "agent-token-for-mcp-tests";
const HUMAN: &str = "human-token-for-mcp-tests";

fn server() -> TestServer {
    TestServer::start(&["--agent-token", AGENT, "--human-token", HUMAN])
}

/// A request to the server with a token.
fn call(server: &TestServer, token: &str, method: &str, path: &str, body: &Value) -> Value {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Authorization", bearer.as_str())];
    let body = match method {
        "POST" => {
            headers.push(("Content-Type", "application/json"));
            body.to_string()
        }
        _ => String::new(),
    };
    let reply = server.request(method, path, &headers, &body);
    assert!(reply.status < 500, "{method} {path}: {}", reply.text());
    reply.json()
}

/// The head of a queue, once something is pending there (the human's long-poll).
fn pending(server: &TestServer, kind: &str, session_id: &str) -> Value {
    let mut since = 0;
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        let path = format!("/api/{kind}/pending?session_id={session_id}&since={since}&wait=5");
        let poll = call(server, HUMAN, "GET", &path, &Value::Null);
        if !poll["pending"].is_null() {
            return poll["pending"].clone();
        }
        since = poll["version"].as_u64().unwrap();
    }
    panic!("nothing pending in {kind} {session_id} within {DEADLINE:?}");
}

fn respond(server: &TestServer, kind: &str, session_id: &str, id: &Value, answer: &str) {
    let (id_field, answer_field) = match kind {
        "clarify" => ("clarify_id", "response"),
        _ => ("approval_id", "choice"),
    };
    let body = json!({"session_id": session_id, id_field: id, answer_field: answer});
    let reply = call(
        server,
        HUMAN,
        "POST",
        &format!("/api/{kind}/respond"),
        &body,
    );
    assert_eq!(reply["ok"], true, "{reply}");
}

/// The outcome the server keeps for a prompt, as the agent would collect it.
fn outcome(server: &TestServer, kind: &str, session_id: &str, id: &Value) -> Value {
    let id = id.as_str().unwrap();
    let path = format!("/api/{kind}/wait?session_id={session_id}&{kind}_id={id}&timeout=5");
    call(server, AGENT, "GET", &path, &Value::Null)
}

/// `askgate mcp` with piped stdin and stdout; every stdout line must be JSON.
struct McpProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl McpProcess {
    fn start(server: &TestServer, session_id: &str, token: Option<&str>) -> McpProcess {
        McpProcess::start_with(server, session_id, token, &[])
    }

    /// With more flags, after `--server`, so they may replace it.
    fn start_with(
        server: &TestServer,
        session_id: &str,
        token: Option<&str>,
        flags: &[&str],
    ) -> McpProcess {
        let mut command = askgate();
        command
            .arg("mcp")
            .args(["--server", &format!("http://{}", server.addr)]);
        McpProcess::spawn(command, session_id, token, flags)
    }

    /// `command` (`askgate mcp` and what it is to ask) with the session,
    /// the token and more flags.
    fn spawn(
        mut command: Command,
        session_id: &str,
        token: Option<&str>,
        flags: &[&str],
    ) -> McpProcess {
        command
            .args(["--session", session_id])
            .args(flags)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(token) = token {
            command.env("ASKGATE_TOKEN", token);
        }
        let mut child = command.spawn().expect("askgate mcp starts");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        McpProcess {
            child,
            stdin,
            lines,
        }
    }

    fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn send(&mut self, message: Value) {
        self.send_line(&message.to_string());
    }

    fn request(&mut self, id: u64, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
    }

    fn call_tool(&mut self, id: u64, name: &str, arguments: Value) {
        self.request(
            id,
            "tools/call",
            json!({"name": name, "arguments": arguments}),
        );
    }

    /// The next message on stdout, which must be one JSON-RPC object.
    fn recv(&self) -> Value {
        let line = match self.lines.recv_timeout(DEADLINE) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("no message within {DEADLINE:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("stdout ended"),
        };
        let message: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON on stdout: {line}"));
        assert_eq!(message["jsonrpc"], "2.0", "{line}");
        message
    }

    fn initialize(&mut self, version: &str) -> Value {
        let params = json!({"protocolVersion": version, "capabilities": {},
                            "clientInfo": {"name": "askgate-test", "version": "1"}});
        self.request(0, "initialize", params);
        let reply = self.recv();
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        reply["result"].clone()
    }

    /// Closes stdin; returns every message written after it and the exit status.
    fn close(mut self, deadline: Duration) -> (Vec<Value>, ExitStatus) {
        drop(self.stdin.take());
        let end = Instant::now() + deadline;
        let mut rest = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => rest.push(serde_json::from_str(&line).expect("JSON on stdout")),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("askgate mcp did not exit within {deadline:?} of stdin ending");
                }
            }
        }
        (rest, self.child.wait().unwrap())
    }
}

impl Drop for McpProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn versions_are_negotiated_and_tools_listed_per_revision() {
    let server = server();
    for (asked, spoken, structured) in [
        ("2025-11-25", "2025-11-25", true),
        ("2025-06-18", "2025-06-18", true),
        ("2025-03-26", "2025-03-26", false),
        ("2024-11-05", "2024-11-05", false),
        ("1999-01-01", "2025-11-25", true),
    ] {
        let mut mcp = McpProcess::start(&server, "v", Some(AGENT));
        let result = mcp.initialize(asked);
        assert_eq!(result["protocolVersion"], spoken, "{asked}");
        assert_eq!(result["serverInfo"]["name"], "askgate");
        assert!(result["capabilities"]["tools"].is_object());
        mcp.request(1, "tools/list", json!({}));
        let tools = mcp.recv()["result"]["tools"].clone();
        let names: Vec<&str> = tools
            .as_array()
            .unwrap()
            .iter()
            .map(|tool| tool["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["ask_human", "request_approval", "permission_prompt"]
        );
        assert_eq!(
            tools[1].get("outputSchema").is_some(),
            structured,
            "{asked}"
        );
        let (rest, status) = mcp.close(DEADLINE);
        assert!(rest.is_empty() && status.success(), "{rest:?} {status}");
    }
}

#[test]
fn what_is_not_a_call_is_refused_by_the_json_rpc_codes() {
    let server = server();
    let mut mcp = McpProcess::start(&server, "refusals", Some(AGENT));
    mcp.initialize("2025-11-25");
    let error = |message: &Value| (message["id"].clone(), message["error"]["code"].clone());
    mcp.send_line("this is not json");
    assert_eq!(error(&mcp.recv()), (Value::Null, json!(-32700)));
    mcp.send_line(r#"[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]"#);
    assert_eq!(error(&mcp.recv()), (Value::Null, json!(-32600)));
    mcp.request(2, "resources/list", json!({}));
    assert_eq!(error(&mcp.recv()), (json!(2), json!(-32601)));
    mcp.call_tool(3, "rm_rf", json!({}));
    assert_eq!(error(&mcp.recv()), (json!(3), json!(-32602)));
    mcp.request(4, "ping", json!({}));
    assert_eq!(mcp.recv(), json!({"jsonrpc": "2.0", "id": 4, "result": {}}));
    // Arguments that do not fit, and the server's own refusals, are tool
    // errors the model can read.
    mcp.call_tool(5, "ask_human", json!({"choices": ["a"]}));
    let result = mcp.recv()["result"].clone();
    assert_eq!(result["isError"], true);
    assert!(
        result["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("question is required")
    );
    mcp.call_tool(6, "ask_human", json!({"question": "q".repeat(5000)}));
    let result = mcp.recv()["result"].clone();
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(
        result["isError"] == true && text.contains("longer than 4096"),
        "{result}"
    );
    // A notification for nothing, and a response nobody asked for, are ignored.
    mcp.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}}),
    );
    mcp.send(json!({"jsonrpc": "2.0", "id": 7, "result": {}}));
    mcp.request(8, "ping", json!({}));
    assert_eq!(mcp.recv()["id"], 8);
    let (rest, status) = mcp.close(DEADLINE);
    assert!(rest.is_empty() && status.success(), "{rest:?} {status}");
}

#[test]
fn calls_overlap_and_a_cancelled_call_cancels_its_prompt_and_answers_nothing() {
    let server = server();
    let mut mcp = McpProcess::start(&server, "overlap", Some(AGENT));
    mcp.initialize("2025-11-25");
    mcp.call_tool(
        1,
        "ask_human",
        json!({"question": "Which database?", "choices": ["postgres", "sqlite"]}),
    );
    mcp.call_tool(
        2,
        "request_approval",
        json!({"command": "rm -rf /tmp/build", "description": "clean"}),
    );
    let question = pending(&server, "clarify", "overlap");
    assert_eq!(question["choices_offered"], json!(["postgres", "sqlite"]));
    let approval = pending(&server, "approval", "overlap");
    assert_eq!(approval["command"], "rm -rf /tmp/build");

    // Both wait at once: cancel the first, answer the second.
    let cancel = json!({"requestId": 1, "reason": "the user pressed escape"});
    mcp.send(json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": cancel}));
    let cancelled = outcome(&server, "clarify", "overlap", &question["clarify_id"]);
    assert_eq!(cancelled["status"], "cancelled");
    respond(
        &server,
        "approval",
        "overlap",
        &approval["approval_id"],
        "session",
    );
    let reply = mcp.recv();
    assert_eq!(
        reply["id"], 2,
        "the cancelled call answers nothing: {reply}"
    );
    assert_eq!(
        reply["result"]["structuredContent"],
        json!({"approved": true, "choice": "session", "auto": false})
    );

    // The human's "session" rule answers the same command at once.
    mcp.call_tool(
        3,
        "request_approval",
        json!({"command": "rm -rf /tmp/build"}),
    );
    let reply = mcp.recv();
    assert_eq!(reply["id"], 3);
    assert_eq!(
        reply["result"]["structuredContent"],
        json!({"approved": true, "choice": "session", "auto": true})
    );
    mcp.call_tool(4, "request_approval", json!({"command": "reboot"}));
    let approval = pending(&server, "approval", "overlap");
    respond(
        &server,
        "approval",
        "overlap",
        &approval["approval_id"],
        "deny",
    );
    let reply = mcp.recv();
    assert_eq!(
        (reply["id"].clone(), reply["result"]["isError"].clone()),
        (json!(4), json!(false))
    );
    assert_eq!(reply["result"]["structuredContent"]["approved"], false);

    let (rest, status) = mcp.close(DEADLINE);
    assert!(
        rest.is_empty(),
        "nothing more, and nothing for id 1: {rest:?}"
    );
    assert!(status.success());
}

#[test]
fn a_human_answer_comes_back_as_the_tool_s_text() {
    let server = server();
    let mut mcp = McpProcess::start(&server, "answer", Some(AGENT));
    mcp.initialize("2025-06-18");
    mcp.call_tool(1, "ask_human", json!({"question": "Ship it?"}));
    let question = pending(&server, "clarify", "answer");
    respond(
        &server,
        "clarify",
        "answer",
        &question["clarify_id"],
        "  yes, ship  ",
    );
    assert_eq!(
        mcp.recv()["result"],
        json!({"content": [{"type": "text", "text": "yes, ship"}], "isError": false})
    );
    // Expired: an error result that says so.
    mcp.call_tool(
        2,
        "ask_human",
        json!({"question": "Quick?", "timeout_seconds": 1}),
    );
    let result = mcp.recv()["result"].clone();
    assert_eq!(result["isError"], true);
    assert!(
        result["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[test]
fn stdin_ending_cancels_the_prompts_still_waiting() {
    let server = server();
    let mut mcp = McpProcess::start(&server, "gone", Some(AGENT));
    mcp.initialize("2025-11-25");
    mcp.call_tool(1, "request_approval", json!({"command": "shutdown now"}));
    let approval = pending(&server, "approval", "gone");
    let (rest, status) = mcp.close(DEADLINE);
    assert!(rest.is_empty() && status.success(), "{rest:?} {status}");
    let ended = outcome(&server, "approval", "gone", &approval["approval_id"]);
    assert_eq!(ended["status"], "cancelled");
}

#[test]
fn without_the_agent_token_a_call_is_an_error_that_says_why() {
    let server = server();
    // No token at all is an agent on loopback (auth_default.rs); a wrong
    // token and the human's are not the agent's.
    for token in [Some("not-a-token-0123456789"), Some(HUMAN)] {
        let mut mcp = McpProcess::start(&server, "tokenless", token);
        mcp.initialize("2025-11-25");
        mcp.call_tool(1, "ask_human", json!({"question": "Hello?"}));
        let result = mcp.recv()["result"].clone();
        let text = result["content"][0]["text"].as_str().unwrap().to_string();
        assert_eq!(result["isError"], true, "{token:?}: {text}");
        assert!(
            text.contains("401") || text.contains("403"),
            "{token:?}: {text}"
        );
    }
}

#[test]
fn a_bad_session_or_flag_exits_2_before_reading_anything() {
    for args in [
        &["mcp", "--session", "not a session"][..],
        &["mcp", "--nope"],
        &["mcp", "--server", "ftp://x"],
    ] {
        let output = askgate().args(args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            output.stdout.is_empty(),
            "{args:?}: stdout stays JSON-RPC only"
        );
    }
}

/// The behavior JSON a `permission_prompt` result carries as its text.
fn behavior(reply: &Value) -> Value {
    let result = &reply["result"];
    assert_eq!(result["isError"], false, "{reply}");
    let text = result["content"][0]["text"].as_str().expect("a text");
    serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Claude Code's `--permission-prompt-tool` call: a tool call asked about
/// as the hooks ask it, and the human's answer as `behavior` JSON: allowed
/// as sent, allowed as edited, denied with the reason; a read-only tool
/// passes without asking.
#[test]
fn the_permission_prompt_asks_as_the_hooks_do_and_answers_behavior_json() {
    let server = server();
    let session = "permission";
    let mut mcp = McpProcess::start(&server, session, Some(AGENT));
    mcp.initialize("2025-06-18");
    let input = json!({"command": "rm -rf build", "description": "Clean the build"});
    let arguments = json!({"tool_name": "Bash", "input": input, "tool_use_id": "toolu_1"});
    for (id, answer, expected) in [
        (
            1,
            json!({"choice": "once"}),
            json!({"behavior": "allow", "updatedInput": input}),
        ),
        (
            2,
            // The edited command; the rest of the action as asked.
            json!({"choice": "once", "edited": "rm -rf build/tmp"}),
            json!({"behavior": "allow", "updatedInput": {"command": "rm -rf build/tmp", "description": "Clean the build"}}),
        ),
        (
            3,
            json!({"choice": "deny", "reason": "use make clean"}),
            json!({"behavior": "deny", "message": "denied by the human through askgate: use make clean"}),
        ),
    ] {
        mcp.call_tool(id, "permission_prompt", arguments.clone());
        let head = pending(&server, "approval", session);
        assert_eq!(head["agent"], "claude-code", "{head}");
        assert_eq!(head["reason"], "Clean the build", "{head}");
        assert_eq!(head["action"]["type"], "command", "{head}");
        assert_eq!(head["action"]["command"], "rm -rf build", "{head}");
        let mut body = answer.clone();
        body["session_id"] = json!(session);
        body["approval_id"] = head["approval_id"].clone();
        if let Some(command) = answer["edited"].as_str() {
            body["edited"] = head["action"].clone();
            body["edited"]["command"] = json!(command);
        }
        let reply = call(&server, HUMAN, "POST", "/api/approval/respond", &body);
        assert_eq!(reply["ok"], true, "{reply}");
        let result = mcp.recv();
        assert_eq!(result["id"], id, "{result}");
        assert_eq!(behavior(&result), expected, "{answer}");
    }
    let read = json!({"tool_name": "Read", "input": {"file_path": "/r/a"}});
    mcp.call_tool(4, "permission_prompt", read);
    assert_eq!(
        behavior(&mcp.recv()),
        json!({"behavior": "allow", "updatedInput": {"file_path": "/r/a"}})
    );
    let poll = call(
        &server,
        HUMAN,
        "GET",
        &format!("/api/approval/pending?session_id={session}"),
        &Value::Null,
    );
    assert_eq!(poll["pending_count"], 0, "Read was not asked about: {poll}");
    let (rest, status) = mcp.close(DEADLINE);
    assert!(rest.is_empty() && status.success(), "{rest:?} {status}");
}

/// No answer in time is said to be a timeout, never the human's denial;
/// an askgate that cannot be reached denies, saying what to fix.
#[test]
fn the_permission_prompt_denies_honestly_on_a_timeout_or_an_askgate_away() {
    let server = server();
    let arguments = json!({"tool_name": "Bash", "input": {"command": "make deploy"}});
    let mut mcp =
        McpProcess::start_with(&server, "permission-late", Some(AGENT), &["--timeout", "1"]);
    mcp.initialize("2025-06-18");
    mcp.call_tool(1, "permission_prompt", arguments.clone());
    let said = behavior(&mcp.recv());
    assert_eq!(
        said,
        json!({"behavior": "deny", "message": "no answer from the human within 1 s through askgate; not run"})
    );
    // Port 1 on loopback: nothing listens there.
    let flags = ["--server", "http://127.0.0.1:1", "--retry-secs", "0"];
    let mut mcp = McpProcess::start_with(&server, "permission-away", Some(AGENT), &flags);
    mcp.initialize("2025-06-18");
    mcp.call_tool(1, "permission_prompt", arguments);
    let said = behavior(&mcp.recv());
    assert_eq!(said["behavior"], "deny", "{said}");
    let message = said["message"].as_str().unwrap();
    assert!(
        message.contains("askgate could not ask the human")
            && message.contains("start askgate, or set ASKGATE_URL"),
        "{message}"
    );
}

/// With `--verify-key` (or `ASKGATE_VERIFY_KEY`, as the hooks read it),
/// the permission prompt allows only on a receipt that the key verifies
/// for the call that runs: the real server's, for the command asked or as
/// the human edited it; never a fake server's "approved" with no receipt,
/// one for another command, or one that does not name the edit it gives
/// back; nor another server's key.
#[test]
fn the_permission_prompt_with_a_key_allows_only_on_a_receipt_for_the_call_that_runs() {
    let server = server();
    let key = crate::receipts::public_key(&server);
    let session = "permission-verified";
    let mut mcp = McpProcess::start_with(&server, session, Some(AGENT), &["--verify-key", &key]);
    mcp.initialize("2025-06-18");
    let input = json!({"command": "rm -rf build"});
    let arguments = json!({"tool_name": "Bash", "input": input});
    for (id, edited, expected) in [
        (1, None, input.clone()),
        (
            2,
            Some("rm -rf build/tmp"),
            json!({"command": "rm -rf build/tmp"}),
        ),
    ] {
        mcp.call_tool(id, "permission_prompt", arguments.clone());
        let head = pending(&server, "approval", session);
        let mut body =
            json!({"session_id": session, "approval_id": head["approval_id"], "choice": "once"});
        if let Some(command) = edited {
            body["edited"] = head["action"].clone();
            body["edited"]["command"] = json!(command);
        }
        let reply = call(&server, HUMAN, "POST", "/api/approval/respond", &body);
        assert_eq!(reply["ok"], true, "{reply}");
        let said = behavior(&mcp.recv());
        assert_eq!(
            said,
            json!({"behavior": "allow", "updatedInput": expected}),
            "{edited:?}"
        );
    }
    drop(mcp);

    // Another server's key, by the variable: the real receipt does not verify.
    let other = crate::support::TestServer::start(&[]);
    let other_key = crate::receipts::public_key(&other);
    let mut command = askgate();
    command
        .args(["mcp", "--server", &format!("http://{}", server.addr)])
        .env("ASKGATE_VERIFY_KEY", &other_key);
    let mut mcp = McpProcess::spawn(command, session, Some(AGENT), &[]);
    mcp.initialize("2025-06-18");
    mcp.call_tool(3, "permission_prompt", arguments.clone());
    let head = pending(&server, "approval", session);
    respond(&server, "approval", session, &head["approval_id"], "once");
    let said = behavior(&mcp.recv());
    assert_eq!(said["behavior"], "deny", "{said}");
    assert!(
        said["message"]
            .as_str()
            .unwrap()
            .contains("does not verify"),
        "{said}"
    );
    drop(mcp);

    // Fake servers that say "approved (once)".
    use crate::receipts::{FAKE_ID, FakeServer, approving};
    let signer = askgate::receipt_key::ephemeral().unwrap();
    let cwd = std::env::current_dir().unwrap();
    let action = |command: &str| json!({"type": "command", "command": command, "cwd": cwd});
    let edit = action("rm -rf /");
    let cases = [
        (None, json!({}), "the server's answer carries no receipt"),
        (
            Some(approving(&signer, FAKE_ID, &action("ls"), None)),
            json!({}),
            "the receipt is for another action",
        ),
        // An edit the receipt does not name, beside a receipt for the call.
        (
            Some(approving(&signer, FAKE_ID, &action("rm -rf build"), None)),
            json!({"edited": edit}),
            "the receipt is for another action",
        ),
    ];
    for (receipt, extra, why) in cases {
        let fake = FakeServer::answering(receipt, extra.clone());
        let mut command = askgate();
        command.args(["mcp", "--server", &format!("http://{}", fake.addr)]);
        let flags = ["--verify-key", &signer.public_key()];
        let mut mcp = McpProcess::spawn(command, "w", Some(AGENT), &flags);
        mcp.initialize("2025-06-18");
        mcp.call_tool(1, "permission_prompt", arguments.clone());
        let said = behavior(&mcp.recv());
        assert_eq!(said["behavior"], "deny", "{why}: {said}");
        let message = said["message"].as_str().unwrap();
        assert!(message.contains(why), "{why}: {message}");
    }
    // The same fake with a receipt for the call and no edit: it verifies,
    // so the key is what the denials above turned on.
    let receipt = approving(&signer, FAKE_ID, &action("rm -rf build"), None);
    let fake = FakeServer::answering(Some(receipt), json!({}));
    let mut command = askgate();
    command.args(["mcp", "--server", &format!("http://{}", fake.addr)]);
    let flags = ["--verify-key", &signer.public_key()];
    let mut mcp = McpProcess::spawn(command, "w", Some(AGENT), &flags);
    mcp.initialize("2025-06-18");
    mcp.call_tool(1, "permission_prompt", arguments);
    assert_eq!(
        behavior(&mcp.recv()),
        json!({"behavior": "allow", "updatedInput": input})
    );
}

/// A call that carries a progress token is told of progress while the
/// human has not answered, and not after its result; a call without one
/// is told nothing.
#[test]
fn a_waiting_call_with_a_progress_token_is_told_of_progress_until_its_result() {
    let server = server();
    let session = "progress";
    let mut mcp = McpProcess::start_with(&server, session, Some(AGENT), &["--progress-secs", "1"]);
    mcp.initialize("2025-11-25");
    mcp.call_tool(1, "request_approval", json!({"command": "make quiet"}));
    let quiet = pending(&server, "approval", session);
    let params = json!({"name": "request_approval", "arguments": {"command": "make deploy"},
                        "_meta": {"progressToken": "p-2"}});
    mcp.request(2, "tools/call", params);
    let mut progress = Vec::new();
    while progress.len() < 2 {
        let message = mcp.recv();
        assert_eq!(message["method"], "notifications/progress", "{message}");
        assert_eq!(message["params"]["progressToken"], "p-2", "{message}");
        let message_text = message["params"]["message"].as_str().unwrap();
        assert!(
            message_text.starts_with("waiting for the human ("),
            "{message}"
        );
        progress.push(message["params"]["progress"].as_u64().unwrap());
    }
    assert!(progress[0] < progress[1], "{progress:?}");
    let poll = call(
        &server,
        HUMAN,
        "GET",
        &format!("/api/approval/pending?session_id={session}"),
        &Value::Null,
    );
    assert_eq!(
        poll["pending_count"], 2,
        "still waiting for the human: {poll}"
    );
    respond(&server, "approval", session, &quiet["approval_id"], "once");
    // The progress of call 2 may go on meanwhile; call 1's result comes.
    let first = loop {
        let message = mcp.recv();
        if message["method"] != "notifications/progress" {
            break message;
        }
        assert_eq!(message["params"]["progressToken"], "p-2", "{message}");
    };
    assert_eq!(first["id"], 1, "{first}");
    let deploy = pending(&server, "approval", session);
    respond(&server, "approval", session, &deploy["approval_id"], "once");
    let second = loop {
        let message = mcp.recv();
        if message["method"] != "notifications/progress" {
            break message;
        }
    };
    assert_eq!(second["id"], 2, "{second}");
    assert_eq!(
        second["result"]["structuredContent"]["approved"], true,
        "{second}"
    );
    let (rest, status) = mcp.close(DEADLINE);
    assert!(rest.is_empty(), "nothing after the result: {rest:?}");
    assert!(status.success(), "{status}");
}

/// The python with the MCP SDK: `tests/mcp/install.sh`'s virtual
/// environment when there is one, else the system's python3.
fn sdk_python() -> std::path::PathBuf {
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/target/mcp-venv/bin/python3");
    match std::path::Path::new(venv).exists() {
        true => venv.into(),
        false => "python3".into(),
    }
}

/// The official MCP Python SDK (PyPI `mcp`) runs `tests/mcp/sdk_client.py`
/// against `askgate mcp`: it lists the tools, calls both while the script
/// answers as the human, and cancels a call. Skipped, saying why, when
/// python3 or the SDK is missing, unless `ASKGATE_REQUIRE_MCP_SDK` is set
/// (as `.ci/run` does after installing it).
#[test]
fn the_official_mcp_python_sdk_lists_calls_and_cancels() {
    let required = std::env::var_os("ASKGATE_REQUIRE_MCP_SDK").is_some();
    let python = sdk_python();
    let sdk = Command::new(&python)
        .args(["-c", "import mcp.client.stdio"])
        .output();
    if !sdk.as_ref().is_ok_and(|output| output.status.success()) {
        let why = match &sdk {
            Err(error) => format!("python3 cannot run ({error})"),
            Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_string(),
        };
        assert!(!required, "the MCP Python SDK is required here: {why}");
        eprintln!(
            "SKIPPED the_official_mcp_python_sdk_lists_calls_and_cancels: the MCP Python SDK is \
             not installed ({why}); `sh tests/mcp/install.sh` (make test runs it) installs it into \
             target/mcp-venv"
        );
        return;
    }
    let server = server();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/sdk_client.py");
    let child = Command::new(&python)
        .arg(script)
        .env("ASKGATE_BIN", env!("CARGO_BIN_EXE_askgate"))
        .env("ASKGATE_URL", format!("http://{}", server.addr))
        .env("ASKGATE_AGENT_TOKEN", AGENT)
        .env("ASKGATE_HUMAN_TOKEN", HUMAN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let output = crate::binary::finish(child, Duration::from_secs(90));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("all checks passed"), "{stdout}\n{stderr}");
}
