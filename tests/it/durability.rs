//! Durability with the real binary on a data directory (docs/PROTOCOL.md §6,
//! issue 9): what was acknowledged survives `kill -9` at any moment, waiting
//! agents and resuming streams get the truth after a restart, prompts expire
//! while the server is down, damage is named or refused, a directory has one
//! server, and a full or unwritable disk is a 507 with nothing applied that
//! heals without a restart.
//!
//! Every test works in a data directory of its own under the system's temp
//! directory, removed at the end, and ends only the processes it started.

mod crash;
mod load;
mod model;

use crate::binary::{Exited, ServerProcess, ask_at, askgate, finish, pending_head};
use crate::support::{Client, DEADLINE, Event, SseClient, eventually};
use serde_json::{Value, json};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Versions skipped at each restart of a non-empty journal.
const RESTART_SKIP: u64 = 1 << 20;

/// A directory of its own under the temp directory, removed when dropped.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "askgate-it-{name}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(unique);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }

    fn journal(&self) -> PathBuf {
        self.path.join("journal")
    }

    fn arg(&self) -> &str {
        self.path.to_str().expect("a UTF-8 temp path")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The server binary with its journal in `dir`.
fn serve_on(dir: &TempDir, flags: &[&str]) -> ServerProcess {
    try_serve_on(dir, flags).unwrap_or_else(|exited| panic!("the server did not start: {exited:?}"))
}

fn try_serve_on(dir: &TempDir, flags: &[&str]) -> Result<ServerProcess, Exited> {
    ServerProcess::launch(askgate(), &[&["--data-dir", dir.arg()], flags].concat())
}

fn unix_now() -> f64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    now.as_secs_f64()
}

/// The id field of a kind: `clarify_id` or `approval_id`.
fn id_field(kind: &str) -> String {
    format!("{kind}_id")
}

/// What `wait` says of a prompt at once (`timeout=0`): status and body.
fn outcome(client: &Client, kind: &str, session_id: &str, id: &str) -> (u16, Value) {
    let path = format!(
        "/api/{kind}/wait?session_id={session_id}&{}={id}&timeout=0",
        id_field(kind)
    );
    let reply = client.get(&path);
    (reply.status, reply.outcome())
}

/// The queue's poll: `{"pending": head, "pending_count": N, "version": V}`.
fn poll(client: &Client, kind: &str, session_id: &str) -> Value {
    let reply = client.get(&format!("/api/{kind}/pending?session_id={session_id}"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

fn submit(client: &Client, kind: &str, body: Value) -> String {
    let reply = client.post(&format!("/api/{kind}/submit"), &body);
    assert_eq!(reply.status, 200, "{body}: {}", reply.text());
    reply.json()[id_field(kind)].as_str().unwrap().to_string()
}

fn clarify(client: &Client, session_id: &str, question: &str, timeout_seconds: i64) -> String {
    let body =
        json!({"session_id": session_id, "question": question, "timeout_seconds": timeout_seconds});
    submit(client, "clarify", body)
}

/// Where a journal's high-water mark lies (store/format.rs), from format 2.
const MARK: Range<usize> = 24..40;

/// The start and end of every record in a journal file, from its on-disk
/// format (store/format.rs): a 40-byte header (24 in format 1), then
/// records of a 16-byte head (payload length, checksum, version) and the
/// payload; zeros after.
fn journal_records(path: &Path) -> Vec<Range<usize>> {
    let bytes = std::fs::read(path).unwrap();
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let header = if u32_at(8) == 1 { 24 } else { MARK.end };
    let (mut at, mut records) = (header, Vec::new());
    while at + 16 <= bytes.len() && u64_at(at + 8) != 0 {
        let end = at + 16 + u32_at(at);
        records.push(at..end);
        at = end;
    }
    records
}

fn journal_check(dir: &TempDir) -> Output {
    askgate()
        .args(["journal", "check", dir.arg()])
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// `ASKGATE_CRASH_KILLS` sets the number of kills (20; `make soak` runs
/// 100), `ASKGATE_CRASH_SEED` repeats a run's choice of operations.
#[test]
fn a_crash_at_random_moments_loses_nothing_acknowledged() {
    let kills = std::env::var("ASKGATE_CRASH_KILLS")
        .ok()
        .and_then(|kills| kills.parse().ok())
        .unwrap_or(20);
    let seed = std::env::var("ASKGATE_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    crash::run(kills, seed);
}

#[test]
fn an_agent_waiting_across_a_restart_gets_its_true_outcome() {
    let dir = TempDir::new("agent");
    let server = serve_on(&dir, &[]);
    let addr = server.addr;
    let command = [
        "approve",
        "--session",
        "restart",
        "--command",
        "deploy --prod",
    ];
    let child = ask_at(
        &format!("http://{addr}"),
        askgate().args(command).args(["--retry-secs", "30"]),
    );
    let head = pending_head(&server, "approval", "restart");
    let parked = |server: &ServerProcess| server.metric("askgate_longpolls_parked") == 1.0;
    eventually("the command waits", DEADLINE, &mut || parked(&server));
    server.kill();

    let bind = format!("{addr}");
    let server = serve_on(&dir, &["--bind", &bind]);
    eventually(
        "the command waits on the restarted server",
        Duration::from_secs(15),
        &mut || parked(&server),
    );
    let answer =
        json!({"session_id": "restart", "approval_id": head["approval_id"], "choice": "deny"});
    assert_eq!(
        server.post("/api/approval/respond", &answer).json(),
        json!({"ok": true, "choice": "deny"})
    );
    let output = finish(child, DEADLINE);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("denied"), "{stderr}");
}

/// What a client knows of every queue: (session, kind) to the frame's data.
type Known = std::collections::BTreeMap<(String, String), Value>;

/// Reads a stream's prelude: the frames before `ready`, its data and id.
fn prelude(stream: &mut SseClient) -> (Vec<Event>, Value, u64) {
    let mut frames = stream.events_until("ready");
    let ready = frames.pop().unwrap();
    let id = ready.id.as_deref().unwrap().parse().unwrap();
    (frames, ready.json(), id)
}

fn apply(known: &mut Known, frames: &[Event]) {
    for frame in frames {
        let data = frame.json();
        let session_id = data["session_id"].as_str().unwrap().to_string();
        known.insert((session_id, frame.event.clone()), data);
    }
}

/// The queues a full watch-all stream shows: every non-empty one.
fn truth(client: &Client) -> Known {
    let mut stream = client.stream("/api/events");
    let (frames, ready, _) = prelude(&mut stream);
    assert_eq!(ready["full"], true);
    let mut known = Known::new();
    apply(&mut known, &frames);
    known
}

fn non_empty(known: &Known) -> Known {
    let mut known = known.clone();
    known.retain(|_, data| data["pending_count"] != 0);
    known
}

fn resume(client: &Client, last_event_id: u64) -> (Vec<Event>, Value, u64) {
    let id = last_event_id.to_string();
    let mut stream = SseClient::open(client.addr, "/api/events", &[("Last-Event-ID", &id)]);
    prelude(&mut stream)
}

fn queues_of(frames: &[Event]) -> Vec<(String, String)> {
    let queue = |f: &Event| {
        let session_id = f.json()["session_id"].as_str().unwrap().to_string();
        (session_id, f.event.clone())
    };
    let mut queues: Vec<_> = frames.iter().map(queue).collect();
    queues.sort();
    queues
}

fn queues(names: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut queues: Vec<_> = names
        .iter()
        .map(|(s, k)| (s.to_string(), k.to_string()))
        .collect();
    queues.sort();
    queues
}

#[test]
fn a_stream_resuming_after_a_restart_gets_exactly_what_it_missed() {
    let dir = TempDir::new("resume");
    let server = serve_on(&dir, &[]);
    let first = clarify(&server, "r1", "first?", 600);
    let approval = server.submit_approval("r2", "make", &[]);
    let mut stream = server.stream("/api/events");
    let (frames, _, _) = prelude(&mut stream);
    let mut known = Known::new();
    apply(&mut known, &frames);
    clarify(&server, "r3", "third?", 600);
    let seen = stream.expect_event("the third prompt");
    apply(&mut known, std::slice::from_ref(&seen));
    let last_seen = seen.id.unwrap().parse().unwrap();
    drop(stream);

    // Missed before the crash, and after the restart.
    let answer = json!({"session_id": "r1", "clarify_id": first, "response": "yes"});
    assert_eq!(server.post("/api/clarify/respond", &answer).status, 200);
    clarify(&server, "r4", "fourth?", 600);
    let at_crash = server.metric("askgate_version") as u64;
    server.kill();
    let server = serve_on(&dir, &[]);
    let cancel = json!({"session_id": "r2", "approval_id": approval["approval_id"]});
    assert_eq!(server.post("/api/approval/cancel", &cancel).status, 200);
    server.submit_approval("r5", "deploy", &[]);

    let (frames, ready, version) = resume(&server, last_seen);
    assert_eq!(ready["full"], false, "{frames:?}");
    let missed = [
        ("r1", "clarify"),
        ("r2", "approval"),
        ("r4", "clarify"),
        ("r5", "approval"),
    ];
    assert_eq!(queues_of(&frames), queues(&missed), "{frames:?}");
    assert!(
        version >= at_crash + RESTART_SKIP,
        "{version} after {at_crash}"
    );
    apply(&mut known, &frames);
    assert_eq!(
        non_empty(&known),
        truth(&server),
        "it ends on the true state"
    );

    // The id of the crash itself is still exact: only what came after.
    let (frames, ready, _) = resume(&server, at_crash);
    assert_eq!(ready["full"], false);
    let after = [("r2", "approval"), ("r5", "approval")];
    assert_eq!(queues_of(&frames), queues(&after), "{frames:?}");

    // An id inside the restart's gap may name a change that was shown and
    // lost: the full state.
    for inside in [at_crash + 1, at_crash + RESTART_SKIP - 1] {
        let (frames, ready, _) = resume(&server, inside);
        assert_eq!(ready["full"], true, "{inside}");
        let mut full = Known::new();
        apply(&mut full, &frames);
        assert_eq!(full, truth(&server), "{inside}");
    }
}

#[test]
fn a_prompt_that_expired_while_down_is_expired_at_start() {
    let dir = TempDir::new("expiry");
    let server = serve_on(&dir, &[]);
    let long = clarify(&server, "x2", "later?", 600);
    let long_head = poll(&server, "clarify", "x2")["pending"].clone();
    let submitted = unix_now();
    let short = clarify(&server, "x1", "soon?", 1);
    server.kill();
    let killed = unix_now();
    assert!(
        killed < submitted + 1.0,
        "the kill came {} s after the submit, too late to test an expiry while down",
        killed - submitted
    );

    // Time passing is what is tested: sleep until the deadline (at most a
    // second after the kill) is behind us.
    while unix_now() <= killed + 1.05 {
        std::thread::sleep(Duration::from_millis(50));
    }
    let server = serve_on(&dir, &[]);
    let expired = (200, json!({"status": "expired"}));
    assert_eq!(outcome(&server, "clarify", "x1", &short), expired);
    assert_eq!(poll(&server, "clarify", "x1")["pending_count"], 0);
    let pending = (200, json!({"status": "pending"}));
    assert_eq!(outcome(&server, "clarify", "x2", &long), pending);
    assert_eq!(poll(&server, "clarify", "x2")["pending"], long_head);
    server.kill();

    // The expiry itself was made durable.
    let server = serve_on(&dir, &[]);
    assert_eq!(outcome(&server, "clarify", "x1", &short), expired);
    assert_eq!(poll(&server, "clarify", "x2")["pending"], long_head);
}

#[test]
fn a_torn_tail_starts_with_a_warning() {
    let dir = TempDir::new("torn");
    let server = serve_on(&dir, &[]);
    let mut ids: Vec<String> = ["one?", "two?"]
        .iter()
        .map(|question| clarify(&server, "t", question, 600))
        .collect();
    // The high-water mark as a crash while the third record is written
    // leaves it: at the second, the last synced.
    let marked_2 = std::fs::read(dir.journal()).unwrap()[MARK].to_vec();
    ids.push(clarify(&server, "t", "three?", 600));
    server.kill();
    let records = journal_records(&dir.journal());
    assert_eq!(records.len(), 3, "one record per submit");
    let last = records[2].clone();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.journal())
        .unwrap();
    file.set_len((last.start + last.len() / 2) as u64).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &marked_2, MARK.start as u64).unwrap();
    drop(file);

    let warning = format!(
        "{}: a torn last record at byte {}",
        dir.journal().display(),
        last.start
    );
    let check = journal_check(&dir);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stderr));
    assert!(
        text(&check.stdout).contains(&warning),
        "{}",
        text(&check.stdout)
    );

    let server = serve_on(&dir, &[]);
    eventually("the warning is logged", DEADLINE, &mut || {
        server.stderr().contains(&warning)
    });
    let head = poll(&server, "clarify", "t");
    assert_eq!(
        (
            head["pending"]["clarify_id"].as_str(),
            head["pending_count"].as_u64()
        ),
        (Some(ids[0].as_str()), Some(2))
    );
    assert_eq!(
        outcome(&server, "clarify", "t", &ids[1]).1["status"],
        "pending"
    );
    assert_eq!(
        outcome(&server, "clarify", "t", &ids[2]).0,
        404,
        "cut off whole"
    );

    // The torn bytes were cut off, so what is written next reads back.
    let fourth = clarify(&server, "t", "four?", 600);
    server.kill();
    let server = serve_on(&dir, &[]);
    assert_eq!(poll(&server, "clarify", "t")["pending_count"], 3);
    assert_eq!(
        outcome(&server, "clarify", "t", &fourth).1["status"],
        "pending"
    );
    let stderr = server.kill();
    assert!(!stderr.contains("torn"), "{stderr}");
}

#[test]
fn a_flipped_byte_refuses_to_start_and_check_names_it() {
    let dir = TempDir::new("flipped");
    let server = serve_on(&dir, &[]);
    for question in ["one?", "two?", "three?"] {
        clarify(&server, "f", question, 600);
    }
    server.kill();
    let records = journal_records(&dir.journal());
    let mut bytes = std::fs::read(dir.journal()).unwrap();
    bytes[records[1].start + 20] ^= 0x20;
    std::fs::write(dir.journal(), &bytes).unwrap();

    let damaged = format!(
        "{} is damaged at byte {}",
        dir.journal().display(),
        records[1].start
    );
    let exited = try_serve_on(&dir, &[])
        .err()
        .expect("the server refuses to start");
    assert!(
        exited.code.is_some_and(|code| code != 0) && exited.stderr.contains(&damaged),
        "{exited:?}"
    );
    assert_eq!(
        std::fs::read(dir.journal()).unwrap(),
        bytes,
        "refusing changes nothing"
    );
    let check = journal_check(&dir);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check.stdout));
    assert!(
        text(&check.stderr).contains(&damaged),
        "{}",
        text(&check.stderr)
    );
}

/// Start refuses and `journal check` exits 1, both saying `missing`; the
/// journal is left as it was.
fn refused_as_missing(dir: &TempDir, missing: &str) {
    let before = std::fs::read(dir.journal()).ok();
    let exited = try_serve_on(dir, &[])
        .err()
        .expect("the server refuses to start");
    assert!(
        exited.code.is_some_and(|code| code != 0) && exited.stderr.contains(missing),
        "{exited:?}"
    );
    let check = journal_check(dir);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check.stdout));
    assert!(
        text(&check.stderr).contains(missing),
        "{}",
        text(&check.stderr)
    );
    assert_eq!(std::fs::read(dir.journal()).ok(), before, "nothing changed");
}

#[test]
fn acknowledged_changes_missing_from_the_journal_refuse_to_start() {
    // Issue 21 §2: a truncation at a record's end, or a damaged last record
    // whose length holds, read as a clean end or a torn tail, and a journal
    // deleted beside its snapshot started from the snapshot: acknowledged
    // changes were dropped in silence.
    let dir = TempDir::new("missing");
    let server = serve_on(&dir, &[]);
    for question in ["one?", "two?", "three?"] {
        clarify(&server, "m", question, 600);
    }
    server.kill();
    let original = std::fs::read(dir.journal()).unwrap();
    let records = journal_records(&dir.journal());
    let version = |record: &Range<usize>| {
        u64::from_le_bytes(
            original[record.start + 8..record.start + 16]
                .try_into()
                .unwrap(),
        )
    };
    let (second, third) = (version(&records[1]), version(&records[2]));
    let missing = format!("versions after {second} up to {third} were acknowledged");
    std::fs::write(dir.journal(), &original[..records[1].end]).unwrap();
    refused_as_missing(&dir, &missing);
    let mut flipped = original.clone();
    flipped[records[2].end - 1] ^= 0x20;
    std::fs::write(dir.journal(), &flipped).unwrap();
    refused_as_missing(&dir, &missing);
    std::fs::write(dir.journal(), &original).unwrap();
    // A snapshot, a change after it, and the journal deleted.
    {
        use askgate::store::journal::Journal;
        let (journal, recovered) = Journal::open(dir.path.as_path()).unwrap();
        let state = askgate::hub::durable::restore(&recovered).unwrap();
        let view = state.snapshot_view();
        journal.compact_with(view.version(), Box::new(move |out| view.write_lines(out)));
    }
    let server = serve_on(&dir, &[]);
    clarify(&server, "m", "four?", 600);
    server.kill();
    std::fs::remove_file(dir.journal()).unwrap();
    refused_as_missing(&dir, "missing beside the snapshot of version");
}

#[test]
fn a_second_server_on_the_same_dir_is_refused() {
    let dir = TempDir::new("second");
    let first = serve_on(&dir, &[]);
    let id = clarify(&first, "one", "mine?", 600);
    let exited = try_serve_on(&dir, &[])
        .err()
        .expect("the second is refused");
    let holder = format!("in use by another askgate (pid {})", first.pid());
    assert!(
        exited.code.is_some_and(|code| code != 0) && exited.stderr.contains(&holder),
        "{exited:?}"
    );
    assert_eq!(
        outcome(&first, "clarify", "one", &id).1["status"],
        "pending"
    );
    first.kill();
    // The lock dies with its holder.
    let next = serve_on(&dir, &[]);
    assert_eq!(outcome(&next, "clarify", "one", &id).1["status"], "pending");
}

#[test]
fn journal_check_into_a_closed_pipe_ends_quietly() {
    // `askgate journal check DIR | head`: the reader may be gone before a
    // line is written.
    let dir = TempDir::new("pipe");
    let output = askgate()
        .args(["journal", "check", dir.arg()])
        .stdout(crate::binary::closed_pipe())
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let by_sigpipe =
        std::os::unix::process::ExitStatusExt::signal(&output.status) == Some(libc::SIGPIPE);
    assert!(
        output.status.code() == Some(0) || by_sigpipe,
        "{:?}: {stderr}",
        output.status
    );
}

#[test]
fn deleting_the_lock_file_lets_no_second_server_in() {
    // The journal file itself is locked too: two servers on one journal
    // would each acknowledge prompts the other then overwrites.
    let dir = TempDir::new("lock-deleted");
    let first = serve_on(&dir, &[]);
    let id = clarify(&first, "one", "mine?", 600);
    std::fs::remove_file(dir.path.join("lock")).unwrap();
    let exited = try_serve_on(&dir, &[])
        .err()
        .expect("the second is refused");
    assert!(
        exited.code.is_some_and(|code| code != 0)
            && exited.stderr.contains("in use by another askgate"),
        "{exited:?}"
    );
    assert_eq!(
        outcome(&first, "clarify", "one", &id).1["status"],
        "pending"
    );
}

#[test]
fn a_data_dir_others_may_write_to_is_refused_naming_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("shared");
    let everyone = std::fs::Permissions::from_mode(0o777);
    std::fs::set_permissions(&dir.path, everyone).unwrap();
    let exited = try_serve_on(&dir, &[])
        .err()
        .expect("a directory everyone may write to is refused");
    let fix = format!("chmod 700 {}", dir.arg());
    assert!(
        exited.code.is_some_and(|code| code != 0) && exited.stderr.contains(&fix),
        "{exited:?}"
    );
}

fn prlimit_missing() -> bool {
    let found = Command::new("prlimit").arg("--version").output();
    !found.is_ok_and(|output| output.status.success())
}

/// A large clarify (about 8 KiB of journal), so the reserve runs out soon;
/// fifty to a session.
fn large_clarify(n: usize) -> Value {
    let choices: Vec<String> = (0..16)
        .map(|c| format!("{c:03}{}", "c".repeat(250)))
        .collect();
    json!({
        "session_id": format!("full{}", n / 50),
        "question": format!("{n} {}", "q".repeat(4000)),
        "choices": choices,
        "timeout_seconds": 0,
    })
}

/// The next frame that is not a keepalive.
fn next_change(stream: &mut SseClient) -> Event {
    loop {
        let event = stream.expect_event("a change");
        if event.event != "ping" {
            return event;
        }
    }
}

fn pending_total(client: &Client) -> f64 {
    client.metric("askgate_pending_prompts{kind=\"clarify\"}")
        + client.metric("askgate_pending_prompts{kind=\"approval\"}")
}

#[test]
fn a_full_disk_is_507_and_recovers_without_a_restart() {
    if prlimit_missing() {
        println!(
            "skipped: prlimit (util-linux) is not installed, so no file-size limit can be set"
        );
        return;
    }
    let dir = TempDir::new("full");
    serve_on(&dir, &[]).kill();
    // The limit sits just past the preallocated journal: appends use up what
    // is preallocated, and preallocating more fails.
    let limit = std::fs::metadata(dir.journal()).unwrap().len() + 4096;
    let mut limited = Command::new("prlimit");
    limited.arg(format!("--fsize={limit}:unlimited")).arg("--");
    limited.arg(env!("CARGO_BIN_EXE_askgate"));
    let flags = ["--data-dir", dir.arg(), "--keepalive-secs", "1"];
    let server = ServerProcess::launch(limited, &flags).unwrap();
    let mut stream = server.stream("/api/events");
    prelude(&mut stream);

    let mut submitted = 0;
    let refused = loop {
        assert!(submitted < 1000, "no 507 after {submitted} large submits");
        let (session_id, count) = (format!("full{}", submitted / 50), pending_total(&server));
        let version = server.metric("askgate_version");
        let reply = server.post("/api/clarify/submit", &large_clarify(submitted));
        if reply.status == 507 {
            assert_eq!(pending_total(&server), count, "nothing applied");
            assert_eq!(server.metric("askgate_version"), version, "nothing applied");
            assert_eq!(
                poll(&server, "clarify", &session_id)["pending_count"].as_u64(),
                Some((submitted % 50) as u64)
            );
            break reply;
        }
        assert_eq!(reply.status, 200, "{}", reply.text());
        next_change(&mut stream);
        submitted += 1;
    };
    let error = refused.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("durable"), "{error}");
    assert!(submitted > 0, "some fitted before the disk was full");

    // Reads are still served, the open stream too.
    assert_eq!(server.get("/healthz").text(), "ok");
    assert_eq!(
        poll(&server, "clarify", "full0")["pending_count"],
        50.min(submitted)
    );
    assert_eq!(stream.expect_event("ping").event, "ping");

    let lifted = Command::new("prlimit")
        .args(["--pid", &server.pid().to_string(), "--fsize=unlimited"])
        .status()
        .unwrap();
    assert!(lifted.success());
    let mut after = large_clarify(submitted);
    after["session_id"] = json!("after");
    let mut accepted = Value::Null;
    // The journal retries every second; the deadline allows for a loaded machine.
    let recovery = Duration::from_secs(10);
    eventually("a submit is accepted again", recovery, &mut || {
        let reply = server.post("/api/clarify/submit", &after);
        assert!(matches!(reply.status, 200 | 507), "{}", reply.text());
        accepted = reply.json();
        reply.status == 200
    });
    let frame = next_change(&mut stream).json();
    assert_eq!(frame["pending"]["clarify_id"], accepted["clarify_id"]);
    server.kill();
    let server = serve_on(&dir, &[]);
    assert_eq!(
        pending_total(&server),
        (submitted + 1) as f64,
        "all durable"
    );
}

/// Sets the server's file-size limit (`prlimit --fsize`), soft only.
fn limit_file_size(server: &ServerProcess, soft: &str) {
    let pid = server.pid().to_string();
    let limit = format!("--fsize={soft}:unlimited");
    let set = Command::new("prlimit")
        .args(["--pid", &pid, &limit])
        .status();
    assert!(set.unwrap().success());
}

#[test]
fn an_unwritable_journal_refuses_changes_before_applying_them() {
    if prlimit_missing() {
        println!(
            "skipped: prlimit (util-linux) is not installed, so no file-size limit can be set"
        );
        return;
    }
    let dir = TempDir::new("unwritable");
    let server = serve_on(&dir, &[]);
    let id = clarify(&server, "w", "written?", 600);
    // Below where the journal writes next: every write fails (EFBIG), as
    // on a disk that went read-only, though space is preallocated.
    limit_file_size(&server, "1");
    let answer = json!({"session_id": "w", "clarify_id": id, "response": "yes"});
    assert_eq!(server.post("/api/clarify/respond", &answer).status, 507);
    let pending = (200, json!({"status": "pending"}));
    assert_eq!(
        outcome(&server, "clarify", "w", &id),
        pending,
        "an agent is told no outcome that is not durable"
    );

    // Once a write has failed, a change is refused before it is applied.
    let version = server.metric("askgate_version");
    let body = json!({"session_id": "refused", "question": "shown?"});
    let refused = server.post("/api/clarify/submit", &body);
    assert_eq!(refused.status, 507, "{}", refused.text());
    let error = refused.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("nothing was changed"), "{error}");
    assert_eq!(poll(&server, "clarify", "refused")["pending_count"], 0);
    assert_eq!(server.metric("askgate_version"), version);

    limit_file_size(&server, "unlimited");
    let mut accepted = Value::Null;
    let body = json!({"session_id": "after", "question": "written?"});
    eventually(
        "a submit is accepted again",
        Duration::from_secs(10),
        &mut || {
            let reply = server.post("/api/clarify/submit", &body);
            accepted = reply.json();
            reply.status == 200
        },
    );
    let told = outcome(&server, "clarify", "w", &id);
    server.kill();
    let server = serve_on(&dir, &[]);
    assert_eq!(
        outcome(&server, "clarify", "w", &id),
        told,
        "what was told stays true"
    );
    assert_eq!(
        poll(&server, "clarify", "refused")["pending_count"],
        0,
        "never applied"
    );
    let after = accepted["clarify_id"].as_str().unwrap();
    assert_eq!(outcome(&server, "clarify", "after", after), pending);
}

#[test]
fn a_restarted_server_still_has_the_pending_prompt() {
    // The README's story: `make run`, a prompt, a restart; the state in
    // the user's state directory by default, not the working directory.
    let home = TempDir::new("readme");
    let start = || {
        let mut command = askgate();
        command
            .current_dir(&home.path)
            .env("XDG_STATE_HOME", home.path.join("state"));
        ServerProcess::launch(command, &[]).unwrap()
    };
    let server = start();
    assert!(
        home.path.join("state/askgate/journal").exists(),
        "$XDG_STATE_HOME/askgate by default"
    );
    assert!(
        !home.path.join("data").exists(),
        "nothing in the working directory"
    );
    let question = json!({"session_id": "demo", "question": "Which database?", "choices": ["postgres", "sqlite"]});
    let id = submit(&server, "clarify", question);
    let head = poll(&server, "clarify", "demo")["pending"].clone();
    server.kill();

    let server = start();
    assert_eq!(poll(&server, "clarify", "demo")["pending"], head);
    let answer = json!({"session_id": "demo", "clarify_id": id, "response": "sqlite"});
    assert_eq!(server.post("/api/clarify/respond", &answer).status, 200);
    assert_eq!(
        outcome(&server, "clarify", "demo", &id).1,
        json!({"status": "answered", "response": "sqlite"})
    );
}

/// Writes, as an earlier server would have, `expired` prompts whose
/// deadline passed while it was down and `kept` answered outcomes of
/// 300-byte questions; returns the ids of the expired and of the kept.
fn write_a_large_journal(dir: &TempDir, expired: usize, kept: usize) -> (Vec<String>, Vec<String>) {
    use askgate::core::kind::Kind;
    use askgate::core::prompt::{Answer, Outcome, Payload, Prompt};
    use askgate::core::state::State;
    use askgate::hub::durable;
    use askgate::store::journal::Journal;
    let (journal, _) = Journal::open(dir.path.as_path()).expect("a fresh directory opens");
    let mut state = State::default();
    let mut last = 0;
    let mut write = |changes: Vec<askgate::core::change::Change>| {
        let version = durable::version_after(&state, &changes);
        journal
            .append(version, durable::encode(&changes))
            .expect("room");
        changes.iter().for_each(|change| {
            state.apply(change);
        });
        last = version;
        if version.is_multiple_of(500) {
            // Let the journal thread sync and top its reserve up.
            journal.wait_durable(version).expect("durable");
        }
    };
    let now = unix_now();
    let prompt = |n: usize, session: &str, created: f64, timeout: i64| {
        let payload = Payload::question(format!("{n} {}", "q".repeat(300)), Vec::new());
        Prompt::new(
            format!("{n:012x}"),
            session.to_string(),
            created,
            timeout,
            payload,
        )
    };
    let (mut gone, mut answered) = (Vec::new(), Vec::new());
    for n in 0..expired {
        let session = format!("e{}", n / 50);
        let late = prompt(n, &session, now - 120.0, 60);
        gone.push(late.id.clone());
        write(vec![askgate::core::change::Change::Submitted(late.into())]);
    }
    for n in expired..expired + kept {
        let session = format!("k{}", n % 100);
        let asked = prompt(n, &session, now, 600);
        let id = asked.id.clone();
        write(vec![askgate::core::change::Change::Submitted(asked.into())]);
        write(vec![askgate::core::change::Change::Resolved {
            session_id: session,
            kind: Kind::Clarify,
            id: id.clone(),
            outcome: Outcome::Answered(Answer::Text("yes".into())),
            at: now,
            grant: None,
            by: None,
        }]);
        answered.push(id);
    }
    journal.wait_durable(last).expect("durable");
    (gone, answered)
}

#[test]
fn a_large_expiry_and_a_smaller_budget_at_start_go_in_records_the_journal_takes() {
    // 3,000 expiries at once, or forgetting 27,000 outcomes to fit a
    // smaller budget, made one record of more than the journal's largest
    // (256 KiB): the server could not start ("cannot replay the journal").
    let dir = TempDir::new("batches");
    let (expired, kept) = write_a_large_journal(&dir, 3_000, 30_000);
    let flags = ["--max-state-bytes", "8M", "--max-pending", "64"];
    let server = serve_on(&dir, &flags);
    // The first expiry compacts the journal: its snapshot (13 MB, written
    // by the journal thread in a debug build) may hold the next expiry's
    // record for several seconds.
    eventually("every late prompt expired", DEADLINE * 6, &mut || {
        (0..60).all(|n| poll(&server, "clarify", &format!("e{n}"))["pending_count"] == 0)
    });
    let (first, last) = (&expired[0], &expired[expired.len() - 1]);
    let expired_status = (200, json!({"status": "expired"}));
    assert_eq!(outcome(&server, "clarify", "e0", first), expired_status);
    assert_eq!(outcome(&server, "clarify", "e59", last), expired_status);
    // The outcomes' share of 8 MiB holds about 5,800: the oldest go.
    let newest = &kept[kept.len() - 1];
    let newest_session = format!("k{}", (3_000 + kept.len() - 1) % 100);
    eventually("the oldest outcomes are forgotten", DEADLINE, &mut || {
        outcome(&server, "clarify", "k0", &kept[0]).0 == 404
    });
    let answered = (200, json!({"status": "answered", "response": "yes"}));
    assert_eq!(
        outcome(&server, "clarify", &newest_session, newest),
        answered
    );
    server.kill();
    // What it did was made durable, in records the journal took.
    let server = serve_on(&dir, &flags);
    assert_eq!(outcome(&server, "clarify", "e0", first), expired_status);
    assert_eq!(outcome(&server, "clarify", "k0", &kept[0]).0, 404);
    let check = journal_check(&dir);
    assert!(check.status.success(), "{}", text(&check.stdout));
}

#[test]
fn a_journal_holding_a_forged_grant_yields_no_rule_after_a_restart() {
    // Issue 18 §4: `apply` granted whatever scope a record carried, so a
    // forged record could make `sudo` (or any other command) an always rule.
    use askgate::core::change::Change;
    use askgate::core::kind::Kind;
    use askgate::core::prompt::{Answer, Choice, Outcome, Payload, Prompt};
    use askgate::core::rules::Scope;
    use askgate::core::state::State;
    use askgate::hub::durable;
    use askgate::store::journal::Journal;
    let dir = TempDir::new("forged-grant");
    {
        let (journal, _) = Journal::open(dir.path.as_path()).expect("a fresh directory opens");
        let mut state = State::default();
        let now = unix_now();
        let grants = [
            (
                "f1",
                "sudo reboot",
                Scope::Prefix {
                    prefix: "sudo".into(),
                    options: true,
                },
            ),
            ("f2", "ls", Scope::Exact("rm -rf ~".into())),
            (
                "f3",
                "ls -la",
                Scope::Prefix {
                    prefix: "rm".into(),
                    options: false,
                },
            ),
            (
                "ok",
                "git push origin",
                Scope::Prefix {
                    prefix: "git push".into(),
                    options: false,
                },
            ),
        ];
        let mut last = 0;
        for (n, (session_id, command, scope)) in grants.into_iter().enumerate() {
            let command = askgate::core::action::Action::Command {
                command: command.into(),
                cwd: None,
            };
            let payload = Payload::approval(command, String::new(), Vec::new(), Default::default());
            let id = format!("{n:032x}");
            let asked = Prompt::new(id.clone(), session_id.into(), now, 600, payload);
            let answered = Change::Resolved {
                session_id: session_id.into(),
                kind: Kind::Approval,
                id,
                outcome: Outcome::Answered(Answer::choice(Choice::Always)),
                at: now,
                grant: Some(scope),
                by: None,
            };
            for changes in [vec![Change::Submitted(asked.into())], vec![answered]] {
                last = durable::version_after(&state, &changes);
                journal
                    .append(last, durable::encode(&changes))
                    .expect("room");
                changes.iter().for_each(|change| {
                    state.apply(change);
                });
            }
        }
        journal.wait_durable(last).expect("durable");
    }
    let server = serve_on(&dir, &[]);
    let rules = server.get("/api/rules").json()["rules"].clone();
    let scopes: Vec<&Value> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["scope"])
        .collect();
    assert_eq!(
        scopes,
        [&json!({"prefix": "git push"})],
        "only the grant that holds"
    );
    for (session_id, command) in [("s1", "sudo reboot"), ("s2", "rm -rf ~"), ("s3", "rm x")] {
        let asked = server.submit_approval(session_id, command, &[]);
        assert_eq!(
            asked["pending_count"], 1,
            "{command} is asked about: {asked}"
        );
    }
    let stderr = server.stderr();
    assert_eq!(
        stderr
            .matches("grants a rule that may not be granted")
            .count(),
        3,
        "each forged grant is logged: {stderr}"
    );
    // Compacted or not, a restart holds the same.
    server.kill();
    let server = serve_on(&dir, &[]);
    assert_eq!(
        server.get("/api/rules").json()["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
