//! `askgate backup DEST` with the real binary (docs/deploy.md, "Backups"):
//! copies taken under load pass `askgate journal check` and, started, hold
//! every prompt and rule acknowledged before they began; a backup killed
//! mid-way leaves no DEST, a server killed during one leaves it whole; a
//! restore gives back prompts, rules, tokens and keys; a DEST that is not
//! empty, or a directory with nothing to copy (a Redis-backed server's), is
//! refused with nothing written.
//!
//! Every test works in directories of its own under the system's temp
//! directory and ends only the processes it started, by their pid.

use crate::binary::{ServerProcess, askgate, finish};
use crate::support::{Client, TempDir, eventually};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What a backup may take at most on this machine, however busy.
const BACKUP_DEADLINE: Duration = Duration::from_secs(60);

fn arg(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

/// A server on `dir`; small state budget, so that kept outcomes stay small
/// and the journal compacts often under load.
fn serve_on(dir: &Path, flags: &[&str]) -> ServerProcess {
    let base = ["--data-dir", arg(dir), "--max-state-bytes", "1048576"];
    ServerProcess::launch(askgate(), &[&base[..], flags].concat())
        .unwrap_or_else(|exited| panic!("the server did not start: {exited:?}"))
}

fn backup_command(dir: &Path, dest: &Path) -> Command {
    let mut command = askgate();
    command
        .args(["backup", "--data-dir", arg(dir), arg(dest)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn backup(dir: &Path, dest: &Path) -> Output {
    let child = backup_command(dir, dest).spawn().unwrap();
    finish(child, BACKUP_DEADLINE)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

fn assert_backed_up(output: &Output) {
    assert!(
        output.status.success(),
        "the backup failed: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

fn journal_check(dir: &Path) -> Output {
    askgate()
        .args(["journal", "check", arg(dir)])
        .output()
        .unwrap()
}

/// What the load acknowledged: prompts left pending, rules granted.
#[derive(Clone, Default)]
struct Acknowledged {
    pending: Vec<(String, String, String)>,
    rules: Vec<String>,
    rounds: usize,
}

/// An agent and a human at once, one request after another, until `stop`
/// or the server is gone: each round submits an approval of some 12 KiB and
/// answers it (the journal grows and compacts), leaves a small question
/// pending, and every tenth grants an `always` rule. Only what the server
/// acknowledged goes into `acked`, after its 200.
fn load(server: Client, acked: Arc<Mutex<Acknowledged>>, stop: Arc<AtomicBool>) {
    static LOADS: AtomicUsize = AtomicUsize::new(0);
    let tag = LOADS.fetch_add(1, Ordering::Relaxed);
    let post = |path: &str, body: Value| -> Option<Value> {
        let reply = server.try_post(path, &body).ok()?;
        assert!(reply.status == 200, "{path}: {}", reply.text());
        Some(reply.json())
    };
    let mut round = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let command = format!("echo {round} {}", "x".repeat(8000));
        let description = "d".repeat(4 * 1024);
        let asked = json!({"session_id": "churn", "command": command, "description": description});
        let Some(reply) = post("/api/approval/submit", asked) else {
            return;
        };
        let id = reply["approval_id"].clone();
        let answer = json!({"session_id": "churn", "approval_id": id, "choice": "once"});
        if post("/api/approval/respond", answer).is_none() {
            return;
        }
        let session_id = format!("keep-{}", round % 64);
        let question =
            json!({"session_id": session_id, "question": format!("still there {round}?")});
        let Some(reply) = post("/api/clarify/submit", question) else {
            return;
        };
        let id = reply["clarify_id"].as_str().unwrap().to_string();
        acked
            .lock()
            .unwrap()
            .pending
            .push(("clarify".into(), session_id, id));
        if round.is_multiple_of(10) && !grant_always(&post, &format!("{tag}-{round}"), &acked) {
            return;
        }
        round += 1;
        acked.lock().unwrap().rounds = round;
    }
}

/// Submits `echo granted NAME` (a command no rule covers yet) and answers
/// it `always`; false when the server is gone.
fn grant_always(
    post: &dyn Fn(&str, Value) -> Option<Value>,
    name: &str,
    acked: &Mutex<Acknowledged>,
) -> bool {
    let session_id = "grants";
    let asked = json!({"session_id": session_id, "command": format!("echo granted {name}")});
    let Some(reply) = post("/api/approval/submit", asked) else {
        return false;
    };
    let id = reply["approval_id"].as_str().unwrap().to_string();
    let answer = json!({"session_id": session_id, "approval_id": id, "choice": "always"});
    if post("/api/approval/respond", answer).is_none() {
        return false;
    }
    acked.lock().unwrap().rules.push(id);
    true
}

/// The load running on `server` until dropped.
struct Load {
    acked: Arc<Mutex<Acknowledged>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Load {
    fn start(server: Client) -> Load {
        let acked = Arc::new(Mutex::new(Acknowledged::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopping) = (acked.clone(), stop.clone());
        let thread = Some(thread::spawn(move || load(server, shared, stopping)));
        Load {
            acked,
            stop,
            thread,
        }
    }

    fn acknowledged(&self) -> Acknowledged {
        self.acked.lock().unwrap().clone()
    }

    /// Waits until `more` further rounds were acknowledged.
    fn wait_rounds(&self, more: usize) {
        let from = self.acknowledged().rounds;
        let deadline = Duration::from_secs(120);
        let ended = || {
            self.thread
                .as_ref()
                .is_none_or(|thread| thread.is_finished())
        };
        eventually("the load made progress", deadline, &mut || {
            self.acknowledged().rounds >= from + more || ended()
        });
        assert!(!ended(), "the load ended early (see its panic above)");
    }

    /// Stops the load; what it acknowledged in all.
    fn finish(mut self) -> Acknowledged {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the load thread ends without a panic");
        }
        self.acknowledged()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A wait's answer at once: `pending` while the prompt waits.
fn status(server: &Client, kind: &str, session_id: &str, id: &str) -> Value {
    let path = format!("/api/{kind}/wait?session_id={session_id}&{kind}_id={id}&timeout=0");
    let reply = server.get(&path);
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    reply.json()["status"].clone()
}

fn rule_ids(server: &Client) -> BTreeSet<String> {
    let rules = server.get("/api/rules").json()["rules"].clone();
    let rules = rules.as_array().expect("a list of rules").iter();
    rules
        .map(|rule| rule["rule_id"].as_str().unwrap().to_string())
        .collect()
}

/// `dest` passes `askgate journal check`, and a server started on it holds
/// every prompt `acked` left pending and every rule it granted.
fn check_restores(dest: &Path, acked: &Acknowledged) {
    let checked = journal_check(dest);
    assert!(
        checked.status.success(),
        "journal check: {}",
        text(&checked.stderr)
    );
    let restored = serve_on(dest, &[]);
    for (kind, session_id, id) in &acked.pending {
        assert_eq!(
            status(&restored, kind, session_id, id),
            "pending",
            "{kind} {id} in {session_id}, acknowledged before the backup, is pending in it"
        );
    }
    let rules = rule_ids(&restored);
    for id in &acked.rules {
        assert!(
            rules.contains(id),
            "rule {id} granted before the backup is in {}: it holds {rules:?}, {} of {:?} acknowledged",
            dest.display(),
            acked.rules.len(),
            acked.rules
        );
    }
}

#[test]
fn backups_taken_under_load_restore_everything_acknowledged_before_them() {
    let (dir, copies) = (TempDir::new("backup-src"), TempDir::new("backup-copies"));
    let server = serve_on(&dir.path, &[]);
    let load = Load::start(*server);
    load.wait_rounds(20);
    let (mut backups, mut compactions, mut reread) = (0, 0.0, 0);
    while backups < 4 || compactions < 3.0 {
        assert!(
            backups < 40,
            "{backups} backups and still {compactions} compactions"
        );
        let before = load.acknowledged();
        let dest = copies.join(&format!("copy-{backups}"));
        let output = backup(&dir.path, &dest);
        assert_backed_up(&output);
        reread += usize::from(!text(&output.stdout).contains(", 1 read)"));
        check_restores(&dest, &before);
        backups += 1;
        compactions = server.metric("askgate_journal_snapshots_total");
        load.wait_rounds(25);
    }
    load.finish();
    println!("{backups} backups under load, across {compactions} compactions; {reread} read again");
}

/// Copies the snapshot and the journal `dir` holds now into `into`, again
/// until the two were written by one compaction (the journal follows the
/// snapshot's version): the copies race the server's compactions, and a
/// pair from two of them is what the test makes on purpose, not by chance.
/// Returns the snapshot's version.
fn take_files(dir: &Path, into: &Path) -> u64 {
    std::fs::create_dir_all(into).unwrap();
    std::fs::set_permissions(into, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut version = None;
    eventually(
        "a snapshot and its journal copied",
        Duration::from_secs(120),
        &mut || {
            for name in ["snapshot", "journal"] {
                std::fs::copy(dir.join(name), into.join(name)).unwrap();
            }
            version = one_compaction(into);
            version.is_some()
        },
    );
    version.expect("a version")
}

/// The version of `dir`'s snapshot, if its journal follows it.
fn one_compaction(dir: &Path) -> Option<u64> {
    let report = text(&journal_check(dir).stdout);
    let base = report
        .lines()
        .find_map(|line| line.strip_prefix("journal: follows version "))
        .and_then(|line| line.split(';').next()?.parse().ok());
    let version = report_version(&report)?;
    (base == Some(version)).then_some(version)
}

fn report_version(report: &str) -> Option<u64> {
    let line = report
        .lines()
        .find_map(|line| line.strip_prefix("snapshot: version "));
    line.and_then(|line| line.split(',').next()?.parse().ok())
}

fn wait_compactions(server: &Client, count: f64) {
    eventually(
        "the journal compacted",
        Duration::from_secs(120),
        &mut || server.metric("askgate_journal_snapshots_total") >= count,
    );
}

/// The version a directory's snapshot holds, as `askgate journal check`
/// says it.
fn snapshot_version(dir: &Path) -> u64 {
    let output = journal_check(dir);
    let report = text(&output.stdout);
    report_version(&report).unwrap_or_else(|| panic!("{report}{}", text(&output.stderr)))
}

#[test]
fn the_files_of_two_compactions_mixed_are_never_copied_as_one_state() {
    // What a read racing a compaction can meet: the snapshot from before it
    // and the journal from after, or (between its two renames) the new
    // snapshot and the old journal.
    let (dir, taken) = (TempDir::new("backup-mix-src"), TempDir::new("backup-mix"));
    let server = serve_on(&dir.path, &[]);
    let load = Load::start(*server);
    wait_compactions(&server, 1.0);
    let old_version = take_files(&dir.path, &taken.join("old"));
    eventually("a newer snapshot", Duration::from_secs(120), &mut || {
        take_files(&dir.path, &taken.join("new")) > old_version
    });
    load.finish();
    let mix = |name: &str, snapshot: &str, journal: &str| {
        let mixed = taken.join(name);
        std::fs::create_dir(&mixed).unwrap();
        std::fs::set_permissions(&mixed, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::copy(
            taken.join(snapshot).join("snapshot"),
            mixed.join("snapshot"),
        )
        .unwrap();
        std::fs::copy(taken.join(journal).join("journal"), mixed.join("journal")).unwrap();
        mixed
    };
    let before = mix("old-snapshot-new-journal", "old", "new");
    let dest = taken.join("copy-of-the-first");
    refused(
        &backup(&before, &dest),
        &["tries", "follows a snapshot of version"],
    );
    assert!(!dest.exists());
    let between = mix("new-snapshot-old-journal", "new", "old");
    let dest = taken.join("copy-of-the-second");
    let output = backup(&between, &dest);
    assert_backed_up(&output);
    let version = snapshot_version(&taken.join("new"));
    assert!(
        text(&output.stdout).contains(&format!("version {version},")),
        "the new snapshot's state, version {version}: {}",
        text(&output.stdout)
    );
    assert_eq!(snapshot_version(&dest), version);
}

/// True once `child` is stopped (SIGSTOP): `T` in `/proc/PID/stat`.
fn stopped(child: &Child) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
    let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
    state == Some(Some('T'))
}

/// A backup that stops itself at `stage` (the binary's test knob).
fn backup_stopped_at(dir: &Path, dest: &Path, stage: &str) -> Child {
    let mut command = backup_command(dir, dest);
    let child = command
        .env("ASKGATE_TEST_BACKUP_STOP", stage)
        .spawn()
        .unwrap();
    eventually(
        &format!("the backup stopped at {stage}"),
        BACKUP_DEADLINE,
        &mut || stopped(&child),
    );
    child
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    let entries = std::fs::read_dir(dir).unwrap();
    let names = entries.map(|entry| entry.unwrap().file_name().to_string_lossy().to_string());
    names.collect()
}

#[test]
fn a_backup_killed_mid_way_leaves_no_dest_and_the_next_one_is_whole() {
    let (dir, copies) = (TempDir::new("backup-kill-src"), TempDir::new("backup-kill"));
    let server = serve_on(&dir.path, &[]);
    let load = Load::start(*server);
    load.wait_rounds(60);
    let before = load.finish();
    let dest = copies.join("nightly");
    for stage in ["start", "written"] {
        let mut child = backup_stopped_at(&dir.path, &dest, stage);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!dest.exists(), "killed at {stage}: no {}", dest.display());
    }
    let left = names_in(&copies.path);
    assert_eq!(
        left.len(),
        1,
        "the copy killed whole, beside DEST: {left:?}"
    );
    assert_backed_up(&backup(&dir.path, &dest));
    assert_eq!(
        names_in(&copies.path),
        BTreeSet::from(["nightly".to_string()]),
        "the next backup to DEST removed what the killed one left"
    );
    check_restores(&dest, &before);
}

#[test]
fn a_server_killed_during_a_backup_leaves_it_consistent() {
    let (dir, copies) = (
        TempDir::new("backup-crash-src"),
        TempDir::new("backup-crash"),
    );
    let server = serve_on(&dir.path, &[]);
    let load = Load::start(*server);
    load.wait_rounds(30);
    // Killed while the backup reads: its journal may end in a torn record.
    let before = load.acknowledged();
    let dest = copies.join("racing");
    let racing = backup_command(&dir.path, &dest).spawn().unwrap();
    server.kill();
    load.finish();
    assert_backed_up(&finish(racing, BACKUP_DEADLINE));
    check_restores(&dest, &before);
    // Stopped before it reads, the server killed under load meanwhile.
    let server = serve_on(&dir.path, &[]);
    let load = Load::start(*server);
    load.wait_rounds(10);
    let dest = copies.join("after-the-crash");
    let stopped = backup_stopped_at(&dir.path, &dest, "start");
    load.wait_rounds(5);
    let before = load.acknowledged();
    server.kill();
    load.finish();
    // SAFETY: SIGCONT to the child this test started.
    assert_eq!(unsafe { libc::kill(stopped.id() as i32, libc::SIGCONT) }, 0);
    assert_backed_up(&finish(stopped, BACKUP_DEADLINE));
    check_restores(&dest, &before);
}

/// The (agent, human) tokens a server made in `dir`.
fn made_tokens(dir: &Path) -> (String, String) {
    let text = std::fs::read_to_string(dir.join("tokens")).expect("tokens made at start");
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
            .expect("a token")
            .to_string()
    };
    (field("agent"), field("human"))
}

/// As the human, with the token `dir` holds.
fn as_human(server: &Client, human: &str, method: &str, path: &str, body: &Value) -> Value {
    let bearer = format!("Bearer {human}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let body = match method {
        "GET" => String::new(),
        _ => body.to_string(),
    };
    let reply = server.request(method, path, &headers, &body);
    assert_eq!(reply.status, 200, "{method} {path}: {}", reply.text());
    reply.json()
}

#[test]
fn a_restore_gives_back_prompts_rules_tokens_and_keys() {
    let (dir, copies) = (
        TempDir::new("backup-restore-src"),
        TempDir::new("backup-restore"),
    );
    let shipped = ["--insecure-no-auth=false"];
    let server = serve_on(&dir.path, &shipped);
    let (agent, human) = made_tokens(&dir.path);
    let agent_headers = format!("Bearer {agent}");
    let as_agent = |path: &str, body: Value| {
        let headers = [
            ("Authorization", agent_headers.as_str()),
            ("Content-Type", "application/json"),
        ];
        let reply = server.request("POST", path, &headers, &body.to_string());
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        reply.json()
    };
    for (choice, command) in [("session", "make test"), ("always", "git status")] {
        let asked = as_agent(
            "/api/approval/submit",
            json!({"session_id": "work", "command": command}),
        );
        let id = asked["approval_id"].clone();
        let answer = json!({"session_id": "work", "approval_id": id, "choice": choice});
        as_human(&server, &human, "POST", "/api/approval/respond", &answer);
    }
    as_agent(
        "/api/clarify/submit",
        json!({"session_id": "work", "question": "Which database?", "choices": ["postgres", "sqlite"]}),
    );
    as_agent(
        "/api/approval/submit",
        json!({"session_id": "work", "command": "rm -rf build", "reason": "a clean build"}),
    );
    let queues = |server: &Client| {
        ["clarify", "approval"].map(|kind| {
            let path = format!("/api/{kind}/pending?session_id=work");
            as_human(server, &human, "GET", &path, &Value::Null)["pending"].clone()
        })
    };
    let (heads, rules) = (
        queues(&server),
        as_human(&server, &human, "GET", "/api/rules", &Value::Null),
    );
    assert_eq!(rules["rules"].as_array().unwrap().len(), 2, "{rules}");

    let dest = copies.join("restored");
    let output = backup(&dir.path, &dest);
    assert_backed_up(&output);
    assert!(
        text(&output.stdout).contains("2 pending prompts, 2 rules"),
        "it says what it copied: {}",
        text(&output.stdout)
    );
    for name in ["tokens", "notify.key", "receipts.key"] {
        let (from, to) = (dir.join(name), dest.join(name));
        assert_eq!(
            std::fs::read(&from).unwrap(),
            std::fs::read(&to).unwrap(),
            "{name}"
        );
        let mode = std::fs::metadata(&to).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{name} is its owner's alone");
    }
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o700
    );
    server.kill();

    let restored = serve_on(&dest, &shipped);
    assert_eq!(queues(&restored), heads, "the same heads, ids and all");
    let rules_after = as_human(&restored, &human, "GET", "/api/rules", &Value::Null);
    assert_eq!(rules_after, rules, "the same rules");
    let repeated = as_agent_on(&restored, &agent, "git status");
    assert_eq!(
        repeated["auto"], true,
        "the always rule answers: {repeated}"
    );
}

/// Submits `command` as the agent on `server`; the reply.
fn as_agent_on(server: &Client, agent: &str, command: &str) -> Value {
    let bearer = format!("Bearer {agent}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    let body = json!({"session_id": "work", "command": command}).to_string();
    let reply = server.request("POST", "/api/approval/submit", &headers, &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

fn refused(output: &Output, says: &[&str]) {
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    let stderr = text(&output.stderr);
    for said in says {
        assert!(stderr.contains(said), "it says {said:?}: {stderr}");
    }
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
}

#[test]
fn a_dest_that_is_not_empty_is_refused_and_left_as_it_was() {
    let (dir, copies) = (TempDir::new("backup-dest-src"), TempDir::new("backup-dest"));
    let server = serve_on(&dir.path, &[]);
    server.submit_clarify("s", "kept?");
    let taken = copies.join("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("notes.txt"), "mine").unwrap();
    let file = copies.join("a-file");
    std::fs::write(&file, "mine too").unwrap();
    for dest in [&taken, &file] {
        refused(&backup(&dir.path, dest), &["exists and is not empty"]);
    }
    assert_eq!(names_in(&taken), BTreeSet::from(["notes.txt".to_string()]));
    assert_eq!(
        std::fs::read_to_string(taken.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine too");
    assert_eq!(names_in(&copies.path).len(), 2, "nothing left beside them");
    let empty = copies.join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert_backed_up(&backup(&dir.path, &empty));
    assert!(journal_check(&empty).status.success());
}

#[test]
fn a_directory_with_no_journal_is_refused_naming_redis() {
    // What a server with `--store redis://` keeps in its data directory:
    // its tokens and keys, and the audit log; the state is in Redis.
    let (dir, copies) = (
        TempDir::new("backup-redis-src"),
        TempDir::new("backup-redis"),
    );
    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(dir.join("tokens"), "agent=a\nhuman=h\n").unwrap();
    std::fs::write(dir.join("audit.log"), "").unwrap();
    let dest: PathBuf = copies.join("copy");
    let says = [
        "holds no journal",
        "--store redis://",
        "back up Redis itself",
    ];
    refused(&backup(&dir.path, &dest), &says);
    let missing = copies.join("missing");
    refused(&backup(&missing, &dest), &[arg(&missing)]);
    assert!(names_in(&copies.path).is_empty(), "nothing written");
    // And the directory of a real instance on Redis, a prompt pending.
    let Some(program) = crate::redis::redis_server() else {
        return;
    };
    let redis = crate::redis::Redis::start(program);
    let data = TempDir::new("backup-redis-instance");
    let instance = crate::redis::instance_with(&redis, &["--data-dir", arg(&data.path)]);
    crate::redis::submit(&instance, "s", "where is my state?");
    refused(&backup(&data.path, &dest), &says);
    assert!(names_in(&copies.path).is_empty(), "nothing written");
}

#[test]
fn without_data_dir_it_reads_the_directory_serve_would() {
    let (home, copies) = (TempDir::new("backup-home"), TempDir::new("backup-default"));
    let state = home.join("state");
    let mut serve = askgate();
    serve.env("XDG_STATE_HOME", &state);
    let server = ServerProcess::launch(serve, &[]).unwrap();
    server.submit_clarify("s", "found by default?");
    let by_default = copies.join("by-default");
    let mut command = askgate();
    command.env("XDG_STATE_HOME", &state);
    let output = command.args(["backup", arg(&by_default)]).output().unwrap();
    assert_backed_up(&output);
    assert!(
        text(&output.stdout).contains("1 pending prompts"),
        "{}",
        text(&output.stdout)
    );
    let by_variable = copies.join("by-variable");
    let mut command = askgate();
    command.env("ASKGATE_DATA_DIR", state.join("askgate"));
    let output = command
        .args(["backup", arg(&by_variable)])
        .output()
        .unwrap();
    assert_backed_up(&output);
    assert!(
        text(&output.stdout).contains("1 pending prompts"),
        "{}",
        text(&output.stdout)
    );
}

#[test]
fn a_damaged_directory_is_refused_at_once_naming_the_damage() {
    let (dir, copies) = (
        TempDir::new("backup-damage-src"),
        TempDir::new("backup-damage"),
    );
    let server = serve_on(&dir.path, &[]);
    for n in 0..20 {
        server.submit_clarify("s", &format!("question {n}"));
    }
    let good = copies.join("good");
    assert_backed_up(&backup(&dir.path, &good));
    let snapshot = good.join("snapshot");
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&snapshot, bytes).unwrap();
    let dest = copies.join("from-damage");
    let output = backup(&good, &dest);
    refused(&output, &["is damaged", "(2 tries)"]);
    assert!(!dest.exists());
}
