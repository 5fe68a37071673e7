//! Wider rules for actions that are not commands (issue 19 §3,
//! docs/PROTOCOL.md §3.2) over loopback: a tool with any input, a URL
//! prefix, files under a directory. Each is granted only from the human's
//! respond body and only when it covers the prompt's own action; each then
//! answers what it covers and asks about every trick (another host, a
//! `..`, a sibling directory, another tool, another method or type);
//! `GET /api/rules` says what it covers in plain words; it survives a
//! restart and is revoked as any rule.

use crate::support::{Client, TempDir, TestServer};
use serde_json::{Value, json};

/// Submits `action` in `session_id` (with `cwd` when given): `Some(choice)`
/// when a rule answered it at once, `None` when it was queued.
fn submit(server: &Client, session_id: &str, action: &Value, cwd: Option<&str>) -> Option<String> {
    let mut body = json!({"session_id": session_id, "action": action, "timeout_seconds": 0});
    if let Some(cwd) = cwd {
        body["cwd"] = json!(cwd);
    }
    let reply = server.post("/api/approval/submit", &body);
    assert_eq!(reply.status, 200, "{action}: {}", reply.text());
    let reply = reply.json();
    match reply["auto"].as_bool() {
        Some(true) => Some(reply["choice"].as_str().unwrap().to_string()),
        _ => None,
    }
}

/// Submits `action` and answers it with `choice` and `scope`: the status
/// and body of the respond.
fn grant(
    server: &Client,
    session_id: &str,
    action: &Value,
    cwd: Option<&str>,
    scope: Value,
) -> (u16, Value) {
    assert_eq!(submit(server, session_id, action, cwd), None, "asked first");
    let body = json!({"session_id": session_id, "choice": "always", "scope": scope});
    let reply = server.post("/api/approval/respond", &body);
    (reply.status, reply.json())
}

fn rules(server: &Client) -> Vec<Value> {
    server.get("/api/rules").json()["rules"]
        .as_array()
        .unwrap()
        .clone()
}

fn tool(name: &str, input: Value) -> Value {
    json!({"type": "tool", "name": name, "input": input})
}

fn fetch(url: &str, method: &str) -> Value {
    json!({"type": "fetch", "url": url, "method": method})
}

fn edit(path: &str) -> Value {
    json!({"type": "edit", "path": path, "edits": [{"old": "a", "new": "b"}]})
}

fn write(path: &str) -> Value {
    json!({"type": "write", "path": path, "content": "x\n"})
}

/// For each action: whether the rule answers it (`true`) or it is asked.
fn check_covered(server: &Client, cases: &[(Value, Option<&str>, bool)]) {
    for (n, (action, cwd, covered)) in cases.iter().enumerate() {
        let got = submit(server, &format!("later{n}"), action, *cwd);
        assert_eq!(got.is_some(), *covered, "{action} in {cwd:?}: {got:?}");
    }
}

#[test]
fn a_tool_rule_covers_that_tool_with_any_input_and_nothing_else() {
    let server = TestServer::start(&[]);
    let asked = tool("mcp__db__query", json!({"sql": "select 1"}));
    let scope = json!({"tool": "mcp__db__query"});
    assert_eq!(grant(&server, "t", &asked, None, scope).0, 200);
    let listed = rules(&server);
    assert_eq!(
        listed[0]["scope"],
        json!({"tool": "mcp__db__query"}),
        "{listed:?}"
    );
    assert_eq!(listed[0]["covers"], "this tool, with any input");
    check_covered(
        &server,
        &[
            (
                tool("mcp__db__query", json!({"sql": "drop table x"})),
                None,
                true,
            ),
            (tool("mcp__db__query", json!({})), None, true),
            (
                tool("mcp__db__query2", json!({"sql": "select 1"})),
                None,
                false,
            ),
            (
                tool("mcp__db__exec", json!({"sql": "select 1"})),
                None,
                false,
            ),
            (
                json!({"type": "command", "command": "mcp__db__query"}),
                None,
                false,
            ),
        ],
    );
}

#[test]
fn a_url_prefix_rule_covers_its_origin_and_path_and_refuses_the_tricks() {
    let server = TestServer::start(&[]);
    let asked = fetch("https://docs.example.org/api/v1/users?page=2", "GET");
    let scope = json!({"url_prefix": "HTTPS://Docs.Example.org:443/api"});
    assert_eq!(grant(&server, "u", &asked, None, scope).0, 200);
    let listed = rules(&server);
    let expected = json!({"url_prefix": "https://docs.example.org/api", "method": "GET"});
    assert_eq!(listed[0]["scope"], expected, "normalized: {listed:?}");
    assert!(
        listed[0]["covers"]
            .as_str()
            .unwrap()
            .starts_with("GET requests to any URL under this prefix")
    );
    let get = |url: &str| fetch(url, "GET");
    check_covered(
        &server,
        &[
            (get("https://docs.example.org/api"), None, true),
            (get("https://docs.example.org/api/v2/x?q=1#top"), None, true),
            (get("https://DOCS.example.org:443/api/x"), None, true),
            (
                json!({"type": "fetch", "url": "https://docs.example.org/api/x"}),
                None,
                true,
            ),
            (fetch("https://docs.example.org/api/x", "POST"), None, false),
            (get("http://docs.example.org/api/x"), None, false),
            (get("https://docs.example.org:8443/api/x"), None, false),
            (get("https://docs.example.org.evil/api/x"), None, false),
            (get("https://evil.org/api"), None, false),
            (get("https://docs.example.org@evil.org/api/x"), None, false),
            (get("https://docs.example.org/apix"), None, false),
            (get("https://docs.example.org/api2/x"), None, false),
            (get("https://docs.example.org/api/../admin"), None, false),
            (
                get("https://docs.example.org/api/%2e%2e/admin"),
                None,
                false,
            ),
            (
                get("https://docs.example.org/api%2f..%2fadmin"),
                None,
                false,
            ),
            (get("https://docs.example.org/api//x"), None, false),
            (get("https://docs.example.org/"), None, false),
        ],
    );
}

#[test]
fn a_directory_rule_covers_files_under_it_by_name_and_refuses_the_tricks() {
    let server = TestServer::start(&[]);
    let asked = edit("src/main.rs");
    let scope = json!({"directory": "/work/app/src/"});
    assert_eq!(grant(&server, "d", &asked, Some("/work/app"), scope).0, 200);
    let listed = rules(&server);
    let expected = json!({"directory": "/work/app/src/", "type": "edit"});
    assert_eq!(listed[0]["scope"], expected, "{listed:?}");
    assert!(
        listed[0]["covers"]
            .as_str()
            .unwrap()
            .contains("symlinks are not followed")
    );
    check_covered(
        &server,
        &[
            (edit("/work/app/src/lib.rs"), None, true),
            (edit("/work/app/src/deep/mod.rs"), Some("/elsewhere"), true),
            (edit("lib.rs"), Some("/work/app/src"), true),
            (edit("src/lib.rs"), Some("/work/app"), true),
            (edit("lib.rs"), None, false),
            (edit("/work/app/src2/x.rs"), None, false),
            (edit("/work/app/src"), None, false),
            (edit("/work/app/src/../../../etc/passwd"), None, false),
            (edit("../Cargo.toml"), Some("/work/app/src"), false),
            (edit("/work/app/src/./x.rs"), None, false),
            (edit("/work/app/src//x.rs"), None, false),
            (edit("~/x.rs"), Some("/work/app/src"), false),
            (edit("x.rs"), Some("/work/app/src/.."), false),
            (write("/work/app/src/lib.rs"), None, false),
        ],
    );
}

#[test]
fn a_write_rule_on_a_directory_covers_writes_only() {
    let server = TestServer::start(&[]);
    let scope = json!({"directory": "/tmp/out/"});
    assert_eq!(
        grant(&server, "w", &write("/tmp/out/a.txt"), None, scope).0,
        200
    );
    check_covered(
        &server,
        &[
            (write("/tmp/out/b/c.txt"), None, true),
            (edit("/tmp/out/a.txt"), None, false),
        ],
    );
}

#[test]
fn a_scope_that_does_not_cover_the_prompts_own_action_is_a_400_and_grants_nothing() {
    let server = TestServer::start(&[]);
    let cases = [
        (
            tool("mcp__db__query", json!({})),
            None,
            json!({"tool": "mcp__db__drop"}),
            "scope.tool must be the name of the tool asked",
        ),
        (
            tool("mcp__db__query", json!({})),
            None,
            json!({"url_prefix": "https://e.org/"}),
            "a url_prefix scope applies only to fetch actions, not to this tool action",
        ),
        (
            fetch("https://e.org/a/b", "GET"),
            None,
            json!({"url_prefix": "https://e.org/b"}),
            "scope.url_prefix must cover the URL asked",
        ),
        (
            fetch("https://e.org/a/b", "GET"),
            None,
            json!({"url_prefix": "https://e.org.evil/a"}),
            "scope.url_prefix must cover the URL asked",
        ),
        (
            fetch("https://e.org/a/b", "GET"),
            None,
            json!({"url_prefix": "https://e.org/a?x=1"}),
            "scope.url_prefix must be an http or https URL",
        ),
        (
            fetch("https://e.org/a/b", "GET"),
            None,
            json!({"url_prefix": "https://me@e.org/a"}),
            "scope.url_prefix must be an http or https URL",
        ),
        (
            fetch("https://e.org/a/../b", "GET"),
            None,
            json!({"url_prefix": "https://e.org/a"}),
            "scope.url_prefix must cover the URL asked",
        ),
        (
            fetch("ftp://e.org/a", "GET"),
            None,
            json!({"url_prefix": "ftp://e.org/"}),
            "scope.url_prefix must be an http or https URL",
        ),
        (
            edit("/src/a.rs"),
            None,
            json!({"directory": "/src2/"}),
            "scope.directory must contain the file asked",
        ),
        (
            edit("/src/a.rs"),
            None,
            json!({"directory": "/src"}),
            "scope.directory must be an absolute path ending in `/`",
        ),
        (
            edit("/src/../etc/a"),
            None,
            json!({"directory": "/src/"}),
            "scope.directory must contain the file asked",
        ),
        (
            edit("a.rs"),
            None,
            json!({"directory": "/src/"}),
            "scope.directory must contain the file asked",
        ),
        (
            edit("/src/a.rs"),
            None,
            json!({"tool": "edit"}),
            "a tool scope applies only to tool actions, not to this edit action",
        ),
        (
            edit("/src/a.rs"),
            None,
            json!({"prefix": "edit"}),
            "a prefix scope applies only to command actions, not to this edit action",
        ),
        (
            json!({"type": "command", "command": "ls /src"}),
            None,
            json!({"directory": "/src/"}),
            "a directory scope applies only to",
        ),
    ];
    for (n, (action, cwd, scope, error)) in cases.into_iter().enumerate() {
        let session = format!("bad{n}");
        let (status, body) = grant(&server, &session, &action, cwd, scope.clone());
        assert_eq!(status, 400, "{scope} on {action}: {body}");
        let message = body["error"].as_str().unwrap();
        assert!(message.starts_with(error), "{scope} on {action}: {message}");
        let pending = server
            .get(&format!("/api/approval/pending?session_id={session}"))
            .json();
        assert_eq!(pending["pending_count"], 1, "nothing answered: {pending}");
    }
    assert_eq!(rules(&server), Vec::<Value>::new(), "no rule granted");
}

#[test]
fn wider_rules_survive_a_restart_and_are_revoked_as_any_rule() {
    let dir = TempDir::new("action-rules");
    let data = dir.path.to_str().unwrap().to_string();
    let flags = ["--data-dir", data.as_str()];
    let server = TestServer::start(&flags);
    let scope = json!({"url_prefix": "https://e.org/a/"});
    assert_eq!(
        grant(
            &server,
            "r",
            &fetch("https://e.org/a/1", "GET"),
            None,
            scope
        )
        .0,
        200
    );
    let scope = json!({"directory": "/src/"});
    assert_eq!(grant(&server, "r", &edit("/src/x"), None, scope).0, 200);
    let scope = json!({"tool": "t"});
    assert_eq!(
        grant(&server, "r", &tool("t", json!({})), None, scope).0,
        200
    );
    let before = rules(&server);
    server.server.shutdown();

    let server = TestServer::start(&flags);
    assert_eq!(rules(&server), before, "replayed from the journal");
    let covered = [
        fetch("https://e.org/a/2", "GET"),
        edit("/src/y"),
        tool("t", json!({"x": 1})),
    ];
    for action in &covered {
        assert!(submit(&server, "again", action, None).is_some(), "{action}");
    }
    for rule in &before {
        let body = json!({"rule_id": rule["rule_id"]});
        assert_eq!(server.post("/api/rules/revoke", &body).status, 200);
    }
    for action in &covered {
        assert_eq!(submit(&server, "revoked", action, None), None, "{action}");
    }
}
