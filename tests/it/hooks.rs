//! The recipes in `contrib/hooks`, run as their hosts run them against a
//! real server: Claude Code's PreToolUse hook with a sample event on stdin,
//! and git's pre-push hook under a real `git push` to a local repository.

use crate::binary::{answer, finish};
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

fn python3_missing() -> bool {
    let found = Command::new("python3").arg("--version").output();
    if found.is_ok_and(|output| output.status.success()) {
        return false;
    }
    eprintln!("SKIPPED: contrib/hooks/claude-pretooluse needs python3, which is missing");
    true
}

/// Runs the Claude Code hook with `event` on its stdin.
fn claude_hook(url: &str, event: &Value) -> Child {
    let mut command = Command::new(hook("claude-pretooluse"));
    with_askgate(&mut command, url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("the hook runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(event.to_string().as_bytes()).unwrap();
    drop(stdin);
    child
}

/// The decision the hook printed: (permissionDecision, permissionDecisionReason).
fn decision(output: &Output) -> (String, String) {
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
    (text("permissionDecision"), text("permissionDecisionReason"))
}

fn bash_event(command: &str) -> Value {
    json!({
        "session_id": "8d3f6a1e-0b7c-4c11-9a55-2f0e4f1b9c3d",
        "transcript_path": "/tmp/transcript.jsonl",
        "cwd": "/tmp",
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": command, "description": "Remove the build folder"},
        "tool_use_id": "toolu_01ABC123",
    })
}

#[test]
fn the_claude_code_hook_allows_what_the_human_approves_and_denies_the_rest() {
    if python3_missing() {
        return;
    }
    let server = TestServer::start(&[]);
    let url = format!("http://{}", server.addr);
    let session_id = "claude-8d3f6a1e-0b7c-4c11-9a55-2f0e4f1b9c3d";
    for (choice, expected) in [("once", "allow"), ("deny", "deny")] {
        let child = claude_hook(&url, &bash_event("rm -rf ./build"));
        let head = answer(&server, "approval", session_id, choice);
        assert_eq!(
            (head["command"].as_str(), head["description"].as_str()),
            (Some("rm -rf ./build"), Some("Remove the build folder")),
            "the human sees the command Claude would run"
        );
        let (decided, reason) = decision(&finish(child, DEADLINE));
        assert_eq!(decided, expected, "{choice}: {reason}");
        assert!(reason.contains("askgate"), "{reason}");
    }

    // Another tool passes through untouched: no output, nothing asked.
    let read = json!({"session_id": "x", "hook_event_name": "PreToolUse",
                      "tool_name": "Read", "tool_input": {"file_path": "/etc/hosts"}});
    let output = finish(claude_hook(&url, &read), DEADLINE);
    assert_eq!((output.status.code(), output.stdout.len()), (Some(0), 0));

    // When askgate cannot ask, the gate fails closed.
    let gone = "http://127.0.0.1:1";
    let (decided, reason) = decision(&finish(claude_hook(gone, &bash_event("ls")), DEADLINE));
    assert_eq!(decided, "deny");
    assert!(reason.contains("cannot reach the server"), "{reason}");
    assert_eq!(
        server.get("/api/approval/pending?session_id=x").json()["pending_count"],
        0
    );
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
