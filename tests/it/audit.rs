//! The audit file of docs/PROTOCOL.md §8 against a real data directory:
//! every decision's line, in order, across a restart, with an agent's
//! line breaks and bidi characters escaped so they can neither split a
//! line nor hide in one.

use crate::support::TestServer;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::{env, fs, process};

/// A data directory under the system's temp dir, removed when dropped.
struct DataDir(PathBuf);

impl DataDir {
    fn new(name: &str) -> DataDir {
        let path = env::temp_dir().join(format!("askgate-it-{name}-{}", process::id()));
        let _ = fs::remove_dir_all(&path);
        DataDir(path)
    }

    fn start(&self) -> TestServer {
        TestServer::start(&["--data-dir", self.0.to_str().unwrap()])
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn id(reply: &Value) -> String {
    reply["approval_id"]
        .as_str()
        .expect("an approval id")
        .to_string()
}

/// The lines of the audit file without their `at=` field, and without
/// the receipt a decision's line ends with (`receipts.rs` checks those).
fn audit_lines(dir: &Path) -> Vec<String> {
    let text = fs::read_to_string(dir.join("audit.log")).expect("the audit file");
    let without_time = |line: &str| match line.split_once(' ') {
        Some((at, rest)) if at.starts_with("at=") => rest.to_string(),
        _ => panic!("a line that does not start with at=: {line:?}"),
    };
    let without_receipt = |line: String| match line.split_once(" receipt=") {
        Some((before, receipt)) => {
            assert!(receipt.contains(" signature="), "{line}");
            before.to_string()
        }
        None => line,
    };
    text.lines()
        .map(without_time)
        .map(without_receipt)
        .collect()
}

#[test]
fn the_audit_file_holds_every_decision_across_a_restart_escaped() {
    let dir = DataDir::new("audit");
    let command = "deploy\n\u{202e}--force";
    let escaped = r#""deploy\n\u202E--force""#;

    let server = dir.start();
    let asked = id(&server.submit_approval("s1", command, &[]));
    let body = json!({"session_id": "s1", "approval_id": asked, "choice": "always"});
    assert_eq!(server.post("/api/approval/respond", &body).status, 200);
    let covered = server.submit_approval("s2", command, &[]);
    assert_eq!(covered["auto"], true, "{covered}");
    let cancelled = id(&server.submit_approval("s3", "ls", &[]));
    server.post("/api/approval/cancel", &json!({"session_id": "s3"}));
    drop(server);

    let server = dir.start();
    let rules = server.get("/api/rules").json()["rules"].clone();
    assert_eq!(
        rules[0]["rule_id"],
        json!(asked),
        "the rule survived the restart"
    );
    let revoked = server.post("/api/rules/revoke", &json!({"rule_id": asked}));
    assert_eq!(revoked.status, 200, "{}", revoked.text());
    let asked_again = id(&server.submit_approval("s2", command, &[]));
    drop(server);

    let rule = format!("rule={asked} lifetime=always match=exact scope={escaped}");
    let expected = [
        format!("event=asked kind=approval id={asked} session=s1 by=agent command={escaped}"),
        format!("event=answered kind=approval id={asked} session=s1 by=human choice=always"),
        format!("event=rule_granted {rule} by=human command={escaped}"),
        format!(
            "event=auto_approved kind=approval id={} session=s2 {rule} choice=always command={escaped}",
            id(&covered)
        ),
        format!("event=asked kind=approval id={cancelled} session=s3 by=agent command=ls"),
        format!("event=cancelled kind=approval id={cancelled} session=s3 by=agent"),
        // The restart.
        format!("event=rule_revoked {rule} by=human"),
        format!("event=asked kind=approval id={asked_again} session=s2 by=agent command={escaped}"),
    ];
    assert_eq!(audit_lines(dir.path()), expected);
    let raw = fs::read_to_string(dir.path().join("audit.log")).unwrap();
    let receipted = raw
        .lines()
        .filter(|line| line.contains(" receipt="))
        .count();
    assert_eq!(
        receipted, 3,
        "each decision's line carries its receipt: {raw}"
    );
    assert!(!raw.contains('\u{202e}'), "no raw bidi character: {raw}");
    let mode = fs::metadata(dir.path().join("audit.log"))
        .unwrap()
        .permissions();
    assert_eq!(
        mode.mode() & 0o777,
        0o600,
        "the audit file is the user's alone"
    );
}
