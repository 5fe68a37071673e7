//! Named credentials (docs/PROTOCOL.md §7), played as one agent against
//! another: a prompt is its submitter's alone (waiting on or cancelling
//! another's is exactly an unknown id), deduplication never crosses
//! credentials, a session is its first agent's (403 to the others, so no
//! rule of its is inherited), a revoked token is refused at once; and two
//! humans, each named in the audit, the history and the receipts.

use crate::binary::askgate;
use crate::support::{Reply, TempDir, TestServer};
use askgate::serve::auth::Role;
use askgate::serve::credentials;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;

const AGENT: &str = "agent-token-0123456789";
const HUMAN: &str = "human-token-0123456789";

/// A server with the two legacy tokens and the named credentials of `dir`.
fn server(dir: &TempDir) -> TestServer {
    TestServer::with_tokens(dir, AGENT, HUMAN, &[])
}

fn add(dir: &TempDir, role: Role, name: &str) -> String {
    credentials::add(&dir.path, role, name).expect("a new credential")
}

fn submit(server: &TestServer, token: &str, kind: &str, body: Value) -> Reply {
    server.call(token, "POST", &format!("/api/{kind}/submit"), &body)
}

fn approval(server: &TestServer, token: &str, session: &str, command: &str) -> String {
    let body = json!({"session_id": session, "command": command});
    let reply = submit(server, token, "approval", body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["approval_id"].as_str().unwrap().to_string()
}

fn wait(server: &TestServer, token: &str, session: &str, id: &str) -> Reply {
    let path = format!("/api/approval/wait?session_id={session}&approval_id={id}&timeout=0");
    server.call(token, "GET", &path, &Value::Null)
}

fn cancel(server: &TestServer, token: &str, session: &str, id: Option<&str>) -> Reply {
    let body = json!({"session_id": session, "approval_id": id});
    server.call(token, "POST", "/api/approval/cancel", &body)
}

fn respond(server: &TestServer, token: &str, session: &str, id: &str, choice: &str) -> Reply {
    let body = json!({"session_id": session, "approval_id": id, "choice": choice});
    server.call(token, "POST", "/api/approval/respond", &body)
}

/// Status and body: what tells two replies apart.
fn seen(reply: &Reply) -> (u16, String) {
    (reply.status, reply.text())
}

#[test]
fn waiting_on_or_cancelling_another_agents_prompt_is_exactly_an_unknown_id() {
    let dir = TempDir::new("names-own");
    let server = server(&dir);
    let bot = add(&dir, Role::Agent, "build-bot");
    let other = add(&dir, Role::Agent, "other-bot");
    let id = approval(&server, &bot, "s1", "make deploy");
    let unknown = "0".repeat(32);

    let as_unknown = seen(&wait(&server, &other, "s1", &unknown));
    assert_eq!(as_unknown.0, 404, "{as_unknown:?}");
    assert_eq!(seen(&wait(&server, &other, "s1", &id)), as_unknown);
    assert_eq!(
        seen(&wait(&server, AGENT, "s1", &id)),
        as_unknown,
        "the legacy agent token is another credential too"
    );
    let cancel_unknown = seen(&cancel(&server, &other, "s1", Some(&unknown)));
    assert_eq!(
        seen(&cancel(&server, &other, "s1", Some(&id))),
        cancel_unknown
    );
    let all = cancel(&server, &other, "s1", None);
    assert_eq!(all.json()["cancelled"], json!([]), "none of its own there");

    assert_eq!(wait(&server, &bot, "s1", &id).json()["status"], "pending");
    assert_eq!(respond(&server, HUMAN, "s1", &id, "once").status, 200);
    assert_eq!(wait(&server, &bot, "s1", &id).json()["status"], "answered");
    assert_eq!(
        seen(&wait(&server, &other, "s1", &id)),
        as_unknown,
        "nor its outcome"
    );
    // A local caller without a token is its own credential, `local`.
    let local = server.get(&format!(
        "/api/approval/wait?session_id=s1&approval_id={id}&timeout=0"
    ));
    assert_eq!(seen(&local), as_unknown);
}

#[test]
fn a_session_is_its_first_agents_and_the_same_question_from_another_is_never_deduped() {
    let dir = TempDir::new("names-session");
    let server = server(&dir);
    let bot = add(&dir, Role::Agent, "build-bot");
    let other = add(&dir, Role::Agent, "other-bot");
    let question = json!({"session_id": "s1", "question": "Which database?"});
    let first = submit(&server, &bot, "clarify", question.clone()).json();
    let again = submit(&server, &bot, "clarify", question.clone()).json();
    assert_eq!(again["deduped"], true, "{again}");
    assert_eq!(again["clarify_id"], first["clarify_id"]);

    let captured = submit(&server, &other, "clarify", question.clone());
    assert_eq!(captured.status, 403, "{}", captured.text());
    let body = captured.json();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains(r#"session "s1" belongs to another agent credential"#),
        "{body}"
    );
    assert!(body.get("clarify_id").is_none(), "no id leaks: {body}");
    assert!(
        !captured.text().contains("build-bot"),
        "nor the owner's name"
    );
    // In a session of its own, the same question is a new prompt.
    let own = submit(
        &server,
        &other,
        "clarify",
        json!({"session_id": "s2", "question": "Which database?"}),
    );
    assert_eq!(own.json()["deduped"], false, "{}", own.text());
    assert_ne!(own.json()["clarify_id"], first["clarify_id"]);

    // A session rule of build-bot's never answers another credential.
    let id = approval(&server, &bot, "s1", "cargo test");
    assert_eq!(respond(&server, HUMAN, "s1", &id, "session").status, 200);
    let covered = submit(
        &server,
        &bot,
        "approval",
        json!({"session_id": "s1", "command": "cargo test"}),
    );
    assert_eq!(covered.json()["auto"], true, "{}", covered.text());
    let refused = submit(
        &server,
        &other,
        "approval",
        json!({"session_id": "s1", "command": "cargo test"}),
    );
    assert_eq!(refused.status, 403, "{}", refused.text());
    let pending = server.call(
        HUMAN,
        "GET",
        "/api/clarify/pending?session_id=s1",
        &Value::Null,
    );
    assert_eq!(pending.json()["pending_count"], 1, "nothing was added");
}

#[test]
fn a_revoked_token_is_refused_at_once_and_an_added_one_works_at_once() {
    let dir = TempDir::new("names-revoke");
    let server = server(&dir);
    let bot = add(&dir, Role::Agent, "build-bot");
    approval(&server, &bot, "s1", "ls");
    credentials::revoke(&dir.path, "build-bot").unwrap();
    let refused = submit(
        &server,
        &bot,
        "approval",
        json!({"session_id": "s1", "command": "ls"}),
    );
    assert_eq!(refused.status, 401, "{}", refused.text());
    assert_eq!(wait(&server, &bot, "s1", &"0".repeat(32)).status, 401);
    let anna = add(&dir, Role::Human, "anna");
    let read = server.call(&anna, "GET", "/api/sessions", &Value::Null);
    assert_eq!(read.status, 200, "{}", read.text());
    assert_eq!(
        submit(
            &server,
            &anna,
            "approval",
            json!({"session_id": "s9", "command": "ls"})
        )
        .status,
        403,
        "a human's token never asks"
    );
    credentials::revoke(&dir.path, "anna").unwrap();
    let read = server.call(&anna, "GET", "/api/sessions", &Value::Null);
    assert_eq!(read.status, 401);
}

fn receipt_payload(reply: &Value) -> Value {
    let payload = reply["receipt"]["payload"].as_str().expect("a receipt");
    serde_json::from_str(payload).unwrap()
}

fn audit_line(dir: &Path, event: &str, id: &str) -> String {
    let text = std::fs::read_to_string(dir.join("audit.log")).expect("the audit file");
    let line = text
        .lines()
        .find(|line| line.contains(&format!("event={event} ")) && line.contains(id));
    line.unwrap_or_else(|| panic!("no {event} line for {id} in {text}"))
        .to_string()
}

#[test]
fn two_humans_answer_and_the_audit_history_and_receipts_name_each() {
    let dir = TempDir::new("names-humans");
    let server = server(&dir);
    let bot = add(&dir, Role::Agent, "build-bot");
    let anna = add(&dir, Role::Human, "anna");
    let bert = add(&dir, Role::Human, "bert");
    let first = approval(&server, &bot, "s1", "make one");
    let second = approval(&server, &bot, "s1", "make two");
    let pending = server.call(
        &anna,
        "GET",
        "/api/approval/pending?session_id=s1",
        &Value::Null,
    );
    assert_eq!(
        pending.json()["pending"]["agent_name"],
        "build-bot",
        "the card names the credential"
    );
    assert_eq!(respond(&server, &anna, "s1", &first, "once").status, 200);
    assert_eq!(respond(&server, &bert, "s1", &second, "deny").status, 200);

    for (id, human) in [(&first, "anna"), (&second, "bert")] {
        let payload = receipt_payload(&wait(&server, &bot, "s1", id).json());
        assert_eq!(payload["by"], human, "{payload}");
        assert_eq!(payload["agent"], "build-bot", "{payload}");
    }
    let history = server.call(&anna, "GET", "/api/history?session_id=s1", &Value::Null);
    let entries = history.json()["history"].as_array().unwrap().clone();
    let by = |id: &str| {
        let entry = entries.iter().find(|e| e["approval_id"] == id).unwrap();
        (entry["by"].clone(), entry["agent_name"].clone())
    };
    assert_eq!(by(&first), (json!("anna"), json!("build-bot")));
    assert_eq!(by(&second), (json!("bert"), json!("build-bot")));
    drop(server);
    assert!(audit_line(&dir.path, "answered", &first).contains(" by=anna"));
    assert!(audit_line(&dir.path, "answered", &second).contains(" by=bert"));
    assert!(audit_line(&dir.path, "asked", &first).contains(" by=build-bot"));

    // Names survive a restart: the journal keeps who asked and answered.
    let server = self::server(&dir);
    let payload = receipt_payload(&wait(&server, &bot, "s1", &first).json());
    assert_eq!(
        (payload["by"].clone(), payload["agent"].clone()),
        (json!("anna"), json!("build-bot"))
    );
    assert_eq!(
        submit(
            &server,
            AGENT,
            "approval",
            json!({"session_id": "s1", "command": "ls"})
        )
        .status,
        403,
        "the session is still build-bot's"
    );
}

/// The legacy tokens file, which `askgate signin-link` keys its codes with.
fn write_legacy_tokens(dir: &TempDir) {
    let tokens = format!("agent={AGENT}\nhuman={HUMAN}\n");
    std::fs::write(dir.join("tokens"), tokens).unwrap();
}

/// `askgate signin-link --human HUMAN` on `dir`.
fn signin_link(dir: &TempDir, human: &str) -> std::process::Output {
    let data = dir.path.to_str().unwrap();
    askgate()
        .args(["signin-link", "--human", human, "--data-dir", data])
        .output()
        .unwrap()
}

/// The code of the link a successful `signin-link` printed.
fn code_of(made: std::process::Output) -> String {
    assert!(made.status.success(), "{made:?}");
    let stdout = String::from_utf8(made.stdout).unwrap();
    stdout.trim().split("#signin=").nth(1).unwrap().to_string()
}

#[test]
fn a_named_human_signs_in_with_a_link_of_their_own() {
    let dir = TempDir::new("names-signin");
    let server = server(&dir);
    write_legacy_tokens(&dir);
    let bot = add(&dir, Role::Agent, "build-bot");
    add(&dir, Role::Human, "anna");
    let refused = signin_link(&dir, "nobody");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no human named"));
    let code = code_of(signin_link(&dir, "anna"));
    assert!(code.starts_with("anna~"), "{code}");
    let login = server.post("/api/login", &json!({"code": code}));
    assert_eq!(login.status, 200, "{}", login.text());
    let cookie = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let id = approval(&server, &bot, "s1", "make it");
    let origin = format!("http://{}", server.addr);
    let body = json!({"session_id": "s1", "approval_id": id, "choice": "once"});
    let headers = [
        ("Cookie", cookie.as_str()),
        ("Origin", origin.as_str()),
        ("Content-Type", "application/json"),
    ];
    let answered = server.request("POST", "/api/approval/respond", &headers, &body.to_string());
    assert_eq!(answered.status, 200, "{}", answered.text());
    let payload = receipt_payload(&wait(&server, &bot, "s1", &id).json());
    assert_eq!(payload["by"], "anna", "{payload}");
    // Revoked, her signed-in page is refused at once.
    credentials::revoke(&dir.path, "anna").unwrap();
    let headers = [("Cookie", cookie.as_str())];
    assert_eq!(
        server.request("GET", "/api/sessions", &headers, "").status,
        401
    );
}

#[test]
fn a_link_minted_before_its_human_was_revoked_and_added_again_signs_in_no_one() {
    let dir = TempDir::new("names-signin-revoked");
    let server = server(&dir);
    write_legacy_tokens(&dir);
    add(&dir, Role::Human, "anna");
    let link = || code_of(signin_link(&dir, "anna"));
    let before = link();
    credentials::revoke(&dir.path, "anna").unwrap();
    let login = |code: &str| server.post("/api/login", &json!({ "code": code }));
    assert_eq!(login(&before).status, 401, "revoked, anna's link is void");
    add(&dir, Role::Human, "anna");
    let refused = login(&before);
    assert_eq!(
        refused.status,
        401,
        "a human added again under the name does not bring the old link back: {}",
        refused.text()
    );
    let after = link();
    let signed_in = login(&after);
    assert_eq!(signed_in.status, 200, "{}", signed_in.text());
}

#[test]
fn askgate_tokens_adds_lists_and_revokes_named_credentials() {
    let dir = TempDir::new("names-cli");
    let data = dir.path.to_str().unwrap();
    let tokens = |args: &[&str]| {
        let output = askgate()
            .arg("tokens")
            .args(args)
            .args(["--data-dir", data])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let errors = String::from_utf8_lossy(&output.stderr).to_string();
        (output.status.code(), text, errors)
    };
    let (code, added, _) = tokens(&["add", "agent", "build-bot"]);
    assert_eq!(code, Some(0), "{added}");
    let token = added
        .split_whitespace()
        .find(|word| word.len() == 48)
        .expect("the token, printed once")
        .to_string();
    assert_eq!(tokens(&["add", "human", "anna"]).0, Some(0));
    for (args, why) in [
        (["add", "agent", "build-bot"], "exists already"),
        (["add", "agent", "agent"], "reserved"),
        (["add", "agent", "Build Bot"], "a name is"),
        (["add", "robot", "r2"], "agent or human"),
    ] {
        let (code, _, errors) = tokens(&args);
        assert_eq!(code, Some(1), "{args:?}");
        assert!(errors.contains(why), "{args:?}: {errors}");
    }
    let (code, list, _) = tokens(&["list"]);
    assert_eq!(code, Some(0));
    assert!(
        list.contains("build-bot") && list.contains("anna"),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|line| line.starts_with("anna ") && line.contains(" human "))
    );
    assert!(!list.contains(&token), "never a token: {list}");
    let stored = std::fs::read_to_string(dir.join("credentials")).unwrap();
    assert!(!stored.contains(&token), "only its digest is kept");

    // A running server takes it at once, and refuses it once revoked.
    let server = server(&dir);
    let body = json!({"session_id": "s1", "command": "ls"});
    assert_eq!(
        submit(&server, &token, "approval", body.clone()).status,
        200
    );
    assert_eq!(tokens(&["revoke", "build-bot"]).0, Some(0));
    assert_eq!(submit(&server, &token, "approval", body).status, 401);
    assert!(!tokens(&["list"]).1.contains("build-bot"));
    assert_eq!(tokens(&["revoke", "build-bot"]).0, Some(1));
}

/// `askgate tokens add` run many times at once: each takes its turn at
/// the credentials file, so none is lost and `tokens list` shows them all.
#[test]
fn many_tokens_added_at_once_are_all_kept() {
    let dir = TempDir::new("names-many");
    let data = dir.path.to_str().unwrap();
    let names: Vec<String> = (0..16).map(|n| format!("bot-{n}")).collect();
    let adding: Vec<_> = names
        .iter()
        .map(|name| {
            let args = ["tokens", "add", "agent", name, "--data-dir", data];
            let mut command = askgate();
            command
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            command.spawn().expect("askgate tokens add starts")
        })
        .collect();
    for (name, child) in names.iter().zip(adding) {
        let output = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{name}: {said}");
    }
    let listed = askgate()
        .args(["tokens", "list", "--data-dir", data])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    let lost: Vec<&String> = names
        .iter()
        .filter(|name| {
            !listed
                .lines()
                .any(|line| line.starts_with(&format!("{name} ")))
        })
        .collect();
    assert!(lost.is_empty(), "lost {lost:?}:\n{listed}");
    let entries = credentials::read(&dir.path).unwrap();
    assert_eq!(entries.len(), names.len(), "{entries:?}");
}
