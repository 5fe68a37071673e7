//! The browser API of docs/PROTOCOL.md §3: every row of the respond tables with its exact
//! body, polling, the JSON headers, and rules granted, listed and revoked.

use crate::support::TestServer;
use serde_json::{Value, json};

/// One request and the exact response it must get.
struct Case {
    name: &'static str,
    body: Value,
    status: u16,
    expected: Value,
}

fn check(server: &TestServer, path: &str, setup: impl Fn(&TestServer) -> Value, cases: Vec<Case>) {
    for case in cases {
        let ids = setup(server);
        let mut body = case.body.clone();
        // "$id" in a body stands for the id the setup returned.
        if let Some(fields) = body.as_object_mut() {
            for value in fields.values_mut() {
                if value == "$id" {
                    *value = ids.clone();
                }
            }
        }
        let reply = server.post(path, &body);
        assert_eq!(
            (reply.status, reply.json()),
            (case.status, case.expected.clone()),
            "case {:?}: expected {} {}, got {} {}",
            case.name,
            case.status,
            case.expected,
            reply.status,
            reply.text()
        );
    }
}

#[test]
fn clarify_respond_table() {
    let server = TestServer::start(&[]);
    let fresh = |server: &TestServer| {
        server.post("/api/clarify/cancel", &json!({"session_id": "t"}));
        Value::from(server.submit_clarify("t", "q?"))
    };
    let stale = |server: &TestServer| {
        let id = fresh(server);
        server.post(
            "/api/clarify/respond",
            &json!({"session_id": "t", "clarify_id": id, "response": "x"}),
        );
        id
    };
    let nothing = |server: &TestServer| {
        server.post("/api/clarify/cancel", &json!({"session_id": "t"}));
        Value::Null
    };
    let stale_body = |error: &str| json!({"ok": false, "error": error, "stale": true});
    #[rustfmt::skip]
    check(&server, "/api/clarify/respond", fresh, vec![
        Case { name: "answered, trimmed", body: json!({"session_id": "t", "clarify_id": "$id", "response": "  yes \n"}), status: 200, expected: json!({"ok": true, "response": "yes"}) },
        Case { name: "head without id", body: json!({"session_id": "t", "response": "h"}), status: 200, expected: json!({"ok": true, "response": "h"}) },
        Case { name: "answer alias", body: json!({"session_id": "t", "answer": "a"}), status: 200, expected: json!({"ok": true, "response": "a"}) },
        Case { name: "choice alias", body: json!({"session_id": "t", "choice": "c"}), status: 200, expected: json!({"ok": true, "response": "c"}) },
        Case { name: "no session_id", body: json!({"response": "x"}), status: 400, expected: json!({"error": "session_id is required"}) },
        Case { name: "empty response", body: json!({"session_id": "t", "response": "   "}), status: 400, expected: json!({"error": "response is required"}) },
        Case { name: "no response", body: json!({"session_id": "t"}), status: 400, expected: json!({"error": "response is required"}) },
    ]);
    check(
        &server,
        "/api/clarify/respond",
        stale,
        vec![Case {
            name: "id not pending",
            body: json!({"session_id": "t", "clarify_id": "$id", "response": "x"}),
            status: 409,
            expected: stale_body("clarify is no longer pending"),
        }],
    );
    check(
        &server,
        "/api/clarify/respond",
        nothing,
        vec![Case {
            name: "nothing pending",
            body: json!({"session_id": "t", "response": "x"}),
            status: 409,
            expected: stale_body("no clarify is pending"),
        }],
    );
}

#[test]
fn approval_respond_table() {
    let server = TestServer::start(&[]);
    // A new command each time: a `session` or `always` answer grants a
    // rule for the command it answered.
    let asked = std::cell::Cell::new(0);
    let fresh = |server: &TestServer| {
        server.post("/api/approval/cancel", &json!({"session_id": "t"}));
        asked.set(asked.get() + 1);
        let command = format!("rm -rf /tmp/a{}", asked.get());
        server.submit_approval("t", &command, &[])["approval_id"].clone()
    };
    let stale_while_pending = |server: &TestServer| {
        let id = fresh(server);
        server.post(
            "/api/approval/respond",
            &json!({"session_id": "t", "approval_id": id, "choice": "deny"}),
        );
        server.submit_approval("t", "another", &[]);
        id
    };
    let stale_nothing_pending = |server: &TestServer| {
        let id = fresh(server);
        server.post(
            "/api/approval/respond",
            &json!({"session_id": "t", "approval_id": id, "choice": "deny"}),
        );
        id
    };
    let mut cases = Vec::new();
    for choice in ["once", "session", "always", "deny"] {
        cases.push(Case {
            name: "answered",
            body: json!({"session_id": "t", "approval_id": "$id", "choice": choice}),
            status: 200,
            expected: json!({"ok": true, "choice": choice}),
        });
    }
    #[rustfmt::skip]
    cases.extend([
        Case { name: "absent choice means deny", body: json!({"session_id": "t", "approval_id": "$id"}), status: 200, expected: json!({"ok": true, "choice": "deny"}) },
        Case { name: "head without id", body: json!({"session_id": "t", "choice": "once"}), status: 200, expected: json!({"ok": true, "choice": "once"}) },
        Case { name: "invalid choice", body: json!({"session_id": "t", "choice": "maybe"}), status: 400, expected: json!({"error": "Invalid choice: maybe"}) },
        Case { name: "no session_id", body: json!({"choice": "once"}), status: 400, expected: json!({"error": "session_id is required"}) },
    ]);
    check(&server, "/api/approval/respond", fresh, cases);
    #[rustfmt::skip]
    check(&server, "/api/approval/respond", stale_nothing_pending, vec![
        Case { name: "stale, nothing pending", body: json!({"session_id": "t", "approval_id": "$id", "choice": "once"}), status: 200, expected: json!({"ok": true, "choice": "once", "stale_cleared": true}) },
    ]);
    #[rustfmt::skip]
    check(&server, "/api/approval/respond", stale_while_pending, vec![
        Case { name: "stale while another is pending", body: json!({"session_id": "t", "approval_id": "$id", "choice": "once"}), status: 200, expected: json!({"ok": false, "choice": "once"}) },
    ]);
    // The "stale while pending" respond resolved nothing.
    let poll = server.get("/api/approval/pending?session_id=t").json();
    assert_eq!(
        (
            poll["pending"]["command"].as_str(),
            poll["pending_count"].as_u64()
        ),
        (Some("another"), Some(1))
    );
}

#[test]
fn session_and_always_rules_answer_later_submits_at_once() {
    let server = TestServer::start(&[]);
    let answer = |session_id: &str, id: &Value, choice: &str, scope: Option<&str>| {
        let mut body = json!({"session_id": session_id, "approval_id": id, "choice": choice});
        if let Some(scope) = scope {
            body["scope"] = json!(scope);
        }
        let reply = server.post("/api/approval/respond", &body);
        assert_eq!(reply.status, 200, "{}", reply.text());
    };
    let first = server.submit_approval("a", "git push", &["git push"]);
    answer("a", &first["approval_id"], "session", None);
    let again = server.submit_approval("a", "git push", &[]);
    assert_eq!(
        (
            again["status"].as_str(),
            again["choice"].as_str(),
            again["auto"].as_bool()
        ),
        (Some("answered"), Some("session"), Some(true))
    );
    assert_eq!(
        server.get("/api/approval/pending?session_id=a").json()["pending_count"],
        0,
        "never shown"
    );
    let wider = server.submit_approval("a", "git push origin", &["git push"]);
    assert_eq!(
        wider["pending_count"], 1,
        "an exact rule covers that command only"
    );
    let elsewhere = server.submit_approval("b", "git push", &["git push"]);
    assert_eq!(
        elsewhere["pending_count"], 1,
        "a session rule stays in its session"
    );

    answer("b", &elsewhere["approval_id"], "always", Some("git push"));
    let anywhere = server.submit_approval("c", "git push origin main", &[]);
    assert_eq!(
        (anywhere["choice"].as_str(), anywhere["auto"].as_bool()),
        (Some("always"), Some(true)),
        "a prefix the human picked covers its arguments"
    );
    let chained = server.submit_approval("c", "git push && rm -rf ~", &["git push"]);
    assert_eq!(
        chained["pending_count"], 1,
        "never what follows a shell operator"
    );
    let once = server.submit_approval("d", "ls", &["ls"]);
    answer("d", &once["approval_id"], "once", None);
    assert_eq!(
        server.submit_approval("d", "ls", &["ls"])["pending_count"],
        1,
        "once persists nothing"
    );
}

#[test]
fn an_agent_cannot_widen_a_rule_with_pattern_keys() {
    let server = TestServer::start(&[]);
    let reboot = server.submit_approval("s1", "reboot", &["reboot"]);
    let body =
        json!({"session_id": "s1", "approval_id": reboot["approval_id"], "choice": "always"});
    assert_eq!(server.post("/api/approval/respond", &body).status, 200);
    let forged = server.submit_approval("s2", "rm -rf / --no-preserve-root", &["reboot"]);
    assert_eq!(
        (forged["pending_count"].as_u64(), forged["auto"].as_bool()),
        (Some(1), None),
        "pattern keys never decide what a rule matches"
    );
}

#[test]
fn a_scope_that_is_not_a_prefix_of_the_command_is_400_and_answers_nothing() {
    let server = TestServer::start(&[]);
    let asked = server.submit_approval("s", "git push origin", &[]);
    for scope in ["rm", "git pu", "git push origin main"] {
        let body = json!({"session_id": "s", "approval_id": asked["approval_id"], "choice": "always", "scope": scope});
        let reply = server.post("/api/approval/respond", &body);
        assert_eq!(reply.status, 400, "{scope}: {}", reply.text());
    }
    let poll = server.get("/api/approval/pending?session_id=s").json();
    assert_eq!(poll["pending_count"], 1, "nothing was answered");
}

#[test]
fn pending_polls_show_head_count_version_and_etag() {
    let server = TestServer::start(&[]);
    let empty = server.get("/api/clarify/pending?session_id=p");
    assert_eq!(
        empty.json(),
        json!({"pending": null, "pending_count": 0, "version": 0})
    );
    assert_eq!(
        (empty.header("content-type"), empty.header("cache-control")),
        (Some("application/json"), Some("no-store"))
    );
    for kind in ["clarify", "approval"] {
        let missing = server.get(&format!("/api/{kind}/pending"));
        assert_eq!(
            (missing.status, missing.json()["pending"].clone()),
            (200, Value::Null),
            "{kind} without session_id"
        );
    }
    let id = server.submit_clarify("p", "q?");
    let reply = server.get("/api/clarify/pending?session_id=p");
    let poll = reply.json();
    assert_eq!(
        (
            poll["pending"]["clarify_id"].as_str(),
            poll["pending_count"].as_u64()
        ),
        (Some(&*id), Some(1))
    );
    let version = poll["version"].as_u64().unwrap();
    assert!(version > 0);
    assert_eq!(reply.header("etag"), Some(&*format!("\"{version}\"")));
    let entry = &poll["pending"];
    for field in [
        "clarify_id",
        "session_id",
        "kind",
        "question",
        "choices_offered",
        "requested_at",
        "timeout_seconds",
        "expires_at",
    ] {
        assert!(entry.get(field).is_some(), "entry has {field}: {entry}");
    }
    let expected = entry["requested_at"].as_f64().unwrap() + 900.0;
    assert!((entry["expires_at"].as_f64().unwrap() - expected).abs() < 0.01);
}

#[test]
fn approval_entries_have_the_spec_fields() {
    let server = TestServer::start(&[]);
    let body = json!({"session_id": "e", "command": "rm -rf /tmp/a", "description": "recursive delete",
                      "pattern_keys": ["recursive delete", "rm"], "timeout_seconds": 0});
    let submitted = server.post("/api/approval/submit", &body).json();
    assert_eq!(submitted["approval_id"].as_str().map(str::len), Some(32));
    let entry = server.get("/api/approval/pending?session_id=e").json()["pending"].clone();
    let expected = json!({
        "approval_id": submitted["approval_id"], "session_id": "e", "kind": "approval",
        "agent_name": "agent",
        "command": "rm -rf /tmp/a", "description": "recursive delete",
        "pattern_key": "recursive delete", "pattern_keys": ["recursive delete", "rm"],
        "requested_at": entry["requested_at"], "timeout_seconds": 0,
        // Never expires: null, what hermes-webui-style clients read as no expiry.
        "expires_at": null,
        "action": {"type": "command", "command": "rm -rf /tmp/a"},
    });
    assert_eq!(entry, expected);
}

#[test]
fn a_revoked_rule_no_longer_answers() {
    let server = TestServer::start(&[]);
    let asked = server.submit_approval("r1", "make deploy STAGE=prod", &[]);
    let id = asked["approval_id"].as_str().unwrap().to_string();
    let body =
        json!({"session_id": "r1", "approval_id": id, "choice": "always", "scope": "make deploy"});
    assert_eq!(server.post("/api/approval/respond", &body).status, 200);
    let listed = server.get("/api/rules");
    let rules = listed.json()["rules"].clone();
    assert_eq!(
        (
            listed.status,
            rules[0]["rule_id"].as_str(),
            rules[0]["scope"].clone()
        ),
        (200, Some(id.as_str()), json!({"prefix": "make deploy"})),
        "{}",
        listed.text()
    );
    let covered = server.submit_approval("r2", "make deploy STAGE=dev", &[]);
    assert_eq!(covered["auto"], true, "the rule answers: {covered}");

    let revoked = server.post("/api/rules/revoke", &json!({"rule_id": id}));
    assert_eq!((revoked.status, revoked.json()), (200, json!({"ok": true})));
    assert_eq!(server.get("/api/rules").json(), json!({"rules": []}));
    let asked_again = server.submit_approval("r2", "make deploy STAGE=dev", &[]);
    assert_eq!(
        (
            asked_again["pending_count"].as_u64(),
            asked_again["auto"].as_bool()
        ),
        (Some(1), None),
        "a revoked rule answers nothing"
    );
    let again = server.post("/api/rules/revoke", &json!({"rule_id": id}));
    assert_eq!(
        (again.status, again.json()),
        (404, json!({"error": "no such rule"}))
    );
    let bad = server.post("/api/rules/revoke", &json!({"rule_id": 1}));
    assert_eq!(
        (bad.status, bad.json()),
        (400, json!({"error": "rule_id must be a string"}))
    );
}

#[test]
fn a_session_rule_leaves_with_its_session() {
    let server = TestServer::start(&["--max-sessions", "2"]);
    let asked = server.submit_approval("old", "ls -la", &[]);
    let body =
        json!({"session_id": "old", "approval_id": asked["approval_id"], "choice": "session"});
    assert_eq!(server.post("/api/approval/respond", &body).status, 200);
    let rules = server.get("/api/rules").json()["rules"].clone();
    assert_eq!(
        (
            rules[0]["lifetime"].as_str(),
            rules[0]["session_id"].as_str()
        ),
        (Some("session"), Some("old"))
    );
    // Two busy sessions: the idle one, with its rule, makes room.
    server.submit_approval("busy1", "true", &[]);
    server.submit_approval("busy2", "true", &[]);
    assert_eq!(server.get("/api/rules").json(), json!({"rules": []}));
    server.post("/api/approval/cancel", &json!({"session_id": "busy1"}));
    let back = server.submit_approval("old", "ls -la", &[]);
    assert_eq!(
        (back["pending_count"].as_u64(), back["auto"].as_bool()),
        (Some(1), None),
        "the rule left with its session"
    );
}

#[test]
fn rules_are_capped_per_session_and_a_grant_beyond_is_429_answering_nothing() {
    let server = TestServer::start(&[]);
    let grant = |n: usize| {
        let asked = server.submit_approval("many", &format!("make target{n}"), &[]);
        let body =
            json!({"session_id": "many", "approval_id": asked["approval_id"], "choice": "session"});
        server.post("/api/approval/respond", &body)
    };
    for n in 0..64 {
        assert_eq!(grant(n).status, 200, "rule {n}");
    }
    let refused = grant(64);
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert!(
        refused.text().contains("revoke some first"),
        "{}",
        refused.text()
    );
    let pending = server.get("/api/approval/pending?session_id=many").json();
    assert_eq!(
        pending["pending_count"], 1,
        "the refused answer answered nothing"
    );
    assert_eq!(
        server.get("/api/rules").json()["rules"]
            .as_array()
            .unwrap()
            .len(),
        64
    );
}

/// Answers the approval `asked` with `always` and this `scope`.
fn always_with(server: &TestServer, session_id: &str, asked: &Value, scope: Value) -> u16 {
    let body = json!({"session_id": session_id, "approval_id": asked["approval_id"],
        "choice": "always", "scope": scope});
    server.post("/api/approval/respond", &body).status
}

#[test]
fn a_prefix_covers_further_operands_and_options_only_once_the_human_ticked_any_options() {
    // Issue 18 §4: `git log` allowed auto-approved
    // `git log -1 --format=… --output=~/.bashrc`, which wrote into .bashrc.
    let server = TestServer::start(&[]);
    let first = server.submit_approval("s1", "git log main", &[]);
    assert_eq!(always_with(&server, "s1", &first, json!("git log")), 200);
    let operands = server.submit_approval("s2", "git log main ~/notes", &[]);
    assert_eq!(operands["auto"], true, "further plain operands: {operands}");
    let bashrc = "git log -1 --format=x --output=~/.bashrc";
    let options = server.submit_approval("s2", bashrc, &[]);
    assert_eq!(
        (options["pending_count"].as_u64(), options["auto"].as_bool()),
        (Some(1), None),
        "an option the human did not see is asked about"
    );

    let ticked = json!({"prefix": "git log", "options": true});
    assert_eq!(always_with(&server, "s2", &options, ticked.clone()), 200);
    let rules = server.get("/api/rules").json()["rules"].clone();
    let scopes: Vec<&Value> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["scope"])
        .collect();
    assert_eq!(scopes, [&json!({"prefix": "git log"}), &ticked]);
    let any = server.submit_approval("s3", "git log -1 --format=y --output=/tmp/x", &[]);
    assert_eq!(
        (any["auto"].as_bool(), any["choice"].as_str()),
        (Some(true), Some("always")),
        "with any options: {any}"
    );
    for chained in [
        "git log --oneline; rm -rf ~",
        "git log > ~/.bashrc",
        "git log -p | sh",
    ] {
        let asked = server.submit_approval("s4", chained, &[]);
        assert_eq!(
            asked["auto"],
            Value::Null,
            "{chained}: never what follows shell syntax"
        );
    }
}

#[test]
fn a_prefix_of_only_a_program_that_runs_others_is_400_and_grants_nothing() {
    let server = TestServer::start(&[]);
    let cases = [
        ("sudo rm -rf ~", "sudo"),
        ("sudo -u root rm -rf ~", "sudo -u root"),
        ("bash -c reboot", "bash"),
        ("bash -c reboot", "bash -c"),
        ("env A=1 reboot", "env"),
        ("env A=1 reboot", "env A=1"),
        ("python exploit.py", "python"),
        ("xargs rm", "xargs"),
    ];
    for (n, (command, prefix)) in cases.into_iter().enumerate() {
        let session_id = format!("r{n}");
        let asked = server.submit_approval(&session_id, command, &[]);
        for scope in [json!(prefix), json!({"prefix": prefix, "options": true})] {
            let reply = server.post(
                "/api/approval/respond",
                &json!({"session_id": session_id, "approval_id": asked["approval_id"],
                    "choice": "always", "scope": scope}),
            );
            assert_eq!(reply.status, 400, "{command} / {scope}: {}", reply.text());
            assert!(
                reply.json()["error"]
                    .as_str()
                    .unwrap()
                    .contains("runs other programs"),
                "{}",
                reply.text()
            );
        }
        let poll = server.get(&format!("/api/approval/pending?session_id={session_id}"));
        assert_eq!(
            poll.json()["pending_count"],
            1,
            "{command}: nothing was answered"
        );
    }
    assert_eq!(server.get("/api/rules").json(), json!({"rules": []}));
    // What it runs named, the prefix is a rule like any other.
    let apt = server.submit_approval("apt", "sudo apt-get update", &[]);
    assert_eq!(
        always_with(&server, "apt", &apt, json!("sudo apt-get")),
        200
    );
    let later = server.submit_approval("apt2", "sudo apt-get update", &[]);
    assert_eq!(later["auto"], true);
    let config = server.get("/api/config").json();
    let runners = config["rule_runners"]
        .as_array()
        .expect("the list for the page");
    assert!(
        runners.contains(&json!({"runs": "sudo", "operands": 0})),
        "{config}"
    );
}
