//! Group commit: an instance's concurrent operations go to Redis in
//! batches (one script call, one fsync), decided on the state ahead of the
//! shown one. These tests hold the rules batching must keep: the log, every
//! instance's state and every stream's frames agree, versions are
//! contiguous, no prompt is lost or doubled, each client gets its own
//! result; a batch that lost the race is decided again on the fresh state;
//! Redis killed with batches in flight loses nothing acknowledged.

use super::*;
use crate::support::SseClient;
use askgate::core::change::Change;
use askgate::hub::durable;
use askgate::store::resp::Reply;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

/// One record of the log in Redis: (base, version, its changes).
type Logged = (u64, u64, Vec<Change>);

/// The whole log in Redis, oldest first, each record decoded.
fn read_log(redis: &Redis) -> Vec<Logged> {
    let reply = redis_call(redis, &["XRANGE", "askgate:log", "-", "+"]);
    let entries = reply.as_array().expect("XRANGE gives a list");
    entries.iter().map(logged).collect()
}

fn logged(entry: &Reply) -> Logged {
    let [id, fields] = entry.as_array().unwrap() else {
        panic!("an entry is an id and its fields: {entry:?}");
    };
    let id = std::str::from_utf8(id.as_bytes().unwrap()).unwrap();
    let version: u64 = id.strip_suffix("-0").unwrap().parse().unwrap();
    let fields = fields.as_array().unwrap();
    let field = |name: &[u8]| {
        let at = fields
            .iter()
            .position(|f| f.as_bytes() == Some(name))
            .unwrap();
        fields[at + 1].as_bytes().unwrap().to_vec()
    };
    let base = String::from_utf8(field(b"b")).unwrap().parse().unwrap();
    let changes = durable::decode(&field(b"r")).expect("a record is a list of changes");
    (base, version, changes)
}

/// Every record follows the one before it: versions contiguous, one
/// entry per operation.
fn assert_contiguous(log: &[Logged]) {
    for pair in log.windows(2) {
        assert_eq!(
            pair[1].0, pair[0].1,
            "record {} follows {}",
            pair[1].1, pair[0].1
        );
    }
    for (base, version, changes) in log {
        let used: u64 = changes.iter().map(Change::versions_used).sum();
        assert_eq!(
            base + used,
            *version,
            "record {version} reaches its version"
        );
    }
}

/// The ids submitted and the (id, answer text) resolved in the log, in
/// log order.
fn submitted_and_answered(log: &[Logged]) -> (Vec<String>, Vec<(String, String)>) {
    let (mut submitted, mut answered) = (Vec::new(), Vec::new());
    for change in log.iter().flat_map(|(_, _, changes)| changes) {
        match change {
            Change::Submitted(prompt) => submitted.push(prompt.id.clone()),
            Change::Resolved { id, outcome, .. } => {
                let text = outcome.to_json()["answer"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                answered.push((id.clone(), text));
            }
            _ => {}
        }
    }
    (submitted, answered)
}

fn metric(server: &ServerProcess, name: &str) -> u64 {
    server.metric(name) as u64
}

/// Each of `clients` threads, spread over `addrs`, submits `rounds`
/// clarifies on `session` and answers each at once with a text of its
/// own, then reads it back as its agent would; returns (id, text) of each.
fn submit_and_answer(
    addrs: &[SocketAddr],
    session: &str,
    clients: usize,
    rounds: usize,
) -> Vec<(String, String)> {
    let start = Arc::new(Barrier::new(clients));
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            let client = Client {
                addr: addrs[t % addrs.len()],
            };
            let (start, session) = (start.clone(), session.to_string());
            thread::spawn(move || {
                start.wait();
                let mut mine = Vec::new();
                for n in 0..rounds {
                    let text = format!("{session}-{t}-{n}");
                    let id = submit(&client, &session, &text);
                    assert_eq!(answer(&client, &session, &id, &text), 200);
                    let waited = client.get(&format!(
                        "/api/clarify/wait?session_id={session}&clarify_id={id}&timeout=0"
                    ));
                    assert_eq!(waited.status, 200, "{}", waited.text());
                    assert_eq!(waited.json()["response"], text.as_str(), "its own answer");
                    mine.push((id, text));
                }
                mine
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

#[test]
fn concurrent_operations_on_one_and_two_instances_go_in_batches_and_agree_with_the_log() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let flags = ["--max-pending", "1000", "--subscriber-buffer", "5000"];
    let servers = [instance_with(&redis, &flags), instance_with(&redis, &flags)];
    let mut streams: Vec<SseClient> = servers
        .iter()
        .map(|server| {
            let mut stream = server.stream("/api/events?session_id=gc");
            stream.events_until("ready");
            stream
        })
        .collect();
    let (clients, rounds) = (16, 12);
    let one = submit_and_answer(&[servers[0].addr], "gc", clients, rounds);
    let batches = metric(&servers[0], "askgate_store_batches_total");
    let appends = metric(&servers[0], "askgate_store_appends_total");
    eprintln!("group commit, one instance: {appends} records in {batches} script calls");
    assert_eq!(appends as usize, 2 * one.len());
    assert!(batches < appends, "16 clients' records share script calls");
    let addrs = [servers[0].addr, servers[1].addr];
    let two = submit_and_answer(&addrs, "gc", clients, rounds);
    let acknowledged: Vec<(String, String)> = one.into_iter().chain(two).collect();
    let total = acknowledged.len();

    // The log: contiguous, every acknowledged prompt submitted once and
    // answered once with its own client's text, nothing else.
    let log = read_log(&redis);
    assert_contiguous(&log);
    let (submitted, answered) = submitted_and_answered(&log);
    let mine: BTreeMap<String, String> = acknowledged.iter().cloned().collect();
    assert_eq!(mine.len(), total, "no id given twice");
    assert_eq!(
        submitted.iter().cloned().collect::<BTreeSet<_>>(),
        mine.keys().cloned().collect::<BTreeSet<_>>()
    );
    assert_eq!(submitted.len(), total, "no prompt submitted twice");
    assert_eq!(answered.iter().cloned().collect::<BTreeMap<_, _>>(), mine);
    assert_eq!(answered.len(), total, "no prompt answered twice");

    // Every instance reached the log's version and shows what it holds.
    let last = log.last().unwrap().1;
    for server in &servers {
        eventually("each instance applied the whole log", LONG, &mut || {
            metric(server, "askgate_version") == last
        });
        assert_eq!(pending(server, "gc"), (0, None));
        assert_eq!(metric(server, "askgate_store_reloads_total"), 0);
    }
    // Every stream saw the same frames, one per change, in log order.
    let seen: Vec<Vec<(u64, u64)>> = streams
        .iter_mut()
        .map(|stream| {
            (0..2 * total)
                .map(|_| {
                    let event = stream.expect_event("a change");
                    (event.id.as_ref().unwrap().parse().unwrap(), event.count())
                })
                .collect()
        })
        .collect();
    assert_eq!(seen[0], seen[1]);
    let versions: Vec<u64> = log.iter().map(|(_, version, _)| *version).collect();
    let framed: Vec<u64> = seen[0].iter().map(|(version, _)| *version).collect();
    assert_eq!(framed, versions, "one frame per record, in log order");
}

/// Every file of Redis's append-only file (Redis 7 keeps several in
/// `appendonlydir`), read whole.
fn aof_bytes(redis: &Redis) -> Vec<u8> {
    fn read(dir: &Path, into: &mut Vec<u8>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            match path.is_dir() {
                true => read(&path, into),
                false if path.to_string_lossy().contains(".aof") => {
                    into.extend(std::fs::read(&path).unwrap())
                }
                false => {}
            }
        }
    }
    let mut bytes = Vec::new();
    read(&redis.dir.path, &mut bytes);
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn three_instances_racing_land_every_operation_once_and_their_turns_cost_redis_no_write() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let flags = ["--max-pending", "1000"];
    let servers = [
        instance_with(&redis, &flags),
        instance_with(&redis, &flags),
        instance_with(&redis, &flags),
    ];
    let addrs: Vec<SocketAddr> = servers.iter().map(|server| server.addr).collect();
    let conflicts = || -> u64 {
        let counted = servers.iter();
        counted
            .map(|s| metric(s, "askgate_store_conflicts_total"))
            .sum()
    };
    let mut acknowledged = Vec::new();
    for round in 0..20 {
        let session = format!("three{round}");
        acknowledged.extend(submit_and_answer(&addrs, &session, 16, 6));
        if conflicts() > 0 {
            break;
        }
    }
    assert!(conflicts() > 0, "three instances' batches raced");

    let log = read_log(&redis);
    assert_contiguous(&log);
    let (submitted, answered) = submitted_and_answered(&log);
    let mine: BTreeMap<String, String> = acknowledged.iter().cloned().collect();
    assert_eq!(mine.len(), acknowledged.len(), "no id given twice");
    assert_eq!(submitted.len(), mine.len(), "every prompt submitted once");
    assert_eq!(answered.len(), mine.len(), "every prompt answered once");
    assert_eq!(answered.into_iter().collect::<BTreeMap<_, _>>(), mine);
    let last = log.last().unwrap().1;
    for server in &servers {
        eventually("each instance applied the whole log", LONG, &mut || {
            metric(server, "askgate_version") == last
        });
    }
    // A lost race names the next writer (`askgate:turn-until`; before,
    // `askgate:turn`), but only in Redis's memory: nothing of it in the
    // AOF, so an append that lost waits for no fsync of its own
    // (store/redis.rs, APPEND).
    let aof = aof_bytes(&redis);
    assert!(contains(&aof, b"askgate:log"), "the records are in the AOF");
    assert!(!contains(&aof, b"askgate:turn"), "no turn in the AOF");
}

/// Redis's clock, in ms since the epoch.
fn redis_ms(redis: &Redis) -> u64 {
    let time = redis_call(redis, &["TIME"]);
    let parts = time.as_array().unwrap();
    let part = |n: usize| -> u64 {
        let bytes = parts[n].as_bytes().unwrap();
        std::str::from_utf8(bytes).unwrap().parse().unwrap()
    };
    part(0) * 1000 + part(1) / 1000
}

#[test]
fn a_turn_left_behind_or_from_a_clock_that_stepped_back_holds_no_writer_back() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let server = instance(&redis);
    let ten_hours = 10 * 3600 * 1000;
    let left = [
        "gone 1".to_string(),
        format!("gone {}", redis_ms(&redis) + ten_hours),
        "garbage".to_string(),
    ];
    for (n, turn) in left.iter().enumerate() {
        redis_call(&redis, &["SET", "askgate:turn-until", turn]);
        let body = json!({"session_id": "left", "question": format!("q{n}")});
        let reply = server.post("/api/clarify/submit", &body);
        assert_eq!(reply.status, 200, "after {turn:?}: {}", reply.text());
    }
    assert_eq!(metric(&server, "askgate_store_conflicts_total"), 0);
}

#[test]
fn a_batch_that_lost_the_race_is_decided_again_and_a_full_queue_refuses_what_does_not_fit() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    const ROOM: usize = 6;
    let room = ROOM.to_string();
    let flags = ["--max-pending", room.as_str()];
    let servers = [instance_with(&redis, &flags), instance_with(&redis, &flags)];
    let addrs = [servers[0].addr, servers[1].addr];
    let conflicts = || -> u64 {
        let counted = servers.iter();
        counted
            .map(|s| metric(s, "askgate_store_conflicts_total"))
            .sum()
    };
    for round in 0..40 {
        let session = format!("cap{round}");
        let clients = 2 * ROOM + 4;
        let start = Arc::new(Barrier::new(clients));
        let threads: Vec<_> = (0..clients)
            .map(|t| {
                let client = Client { addr: addrs[t % 2] };
                let (start, session) = (start.clone(), session.clone());
                thread::spawn(move || {
                    start.wait();
                    let body = json!({"session_id": session, "question": format!("q{t}")});
                    let reply = client.post("/api/clarify/submit", &body);
                    let id = reply.json()["clarify_id"].as_str().map(str::to_string);
                    (reply.status, id)
                })
            })
            .collect();
        let replies: Vec<(u16, Option<String>)> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();
        let taken: BTreeSet<String> = replies.iter().filter_map(|(_, id)| id.clone()).collect();
        let refused = replies.iter().filter(|(status, _)| *status == 429).count();
        assert_eq!(taken.len(), ROOM, "{replies:?}");
        assert_eq!(refused, clients - ROOM, "{replies:?}");
        let log = read_log(&redis);
        assert_contiguous(&log);
        let (submitted, _) = submitted_and_answered(&log);
        let here: Vec<&String> = submitted.iter().filter(|id| taken.contains(*id)).collect();
        assert_eq!(here.len(), ROOM, "each taken prompt is in the log once");
        let in_log = log.iter().flat_map(|(_, _, changes)| changes);
        let of_session = in_log
            .filter(|change| matches!(change, Change::Submitted(p) if p.session_id == session))
            .count();
        assert_eq!(of_session, ROOM, "nothing refused reached the log");
        let last = log.last().unwrap().1;
        for server in &servers {
            eventually("each instance applied the whole log", LONG, &mut || {
                metric(server, "askgate_version") == last
            });
            assert_eq!(pending(server, &session).0, ROOM as u64);
        }
        if conflicts() > 0 && round >= 2 {
            break;
        }
    }
    assert!(conflicts() > 0, "batches of two instances raced");
}

#[test]
fn redis_killed_with_batches_in_flight_loses_nothing_acknowledged() {
    let Some(program) = redis_server() else {
        return;
    };
    let mut redis = Redis::start(program);
    let server = instance_with(&redis, &["--max-pending", "100000"]);
    let addr = server.addr;
    let mut stream = server.stream("/api/events?session_id=k0");
    stream.events_until("ready");
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let refused = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let (acknowledged, refused, stop) =
                (acknowledged.clone(), refused.clone(), stop.clone());
            thread::spawn(move || {
                let client = Client { addr };
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    n += 1;
                    let session = format!("k{}", t % 2);
                    let body = json!({"session_id": session, "question": format!("{t}-{n}")});
                    let reply = client.post("/api/clarify/submit", &body);
                    match reply.status {
                        200 => {
                            let id = reply.json()["clarify_id"].as_str().unwrap().to_string();
                            acknowledged.lock().unwrap().push((session, id));
                        }
                        503 => {
                            refused.fetch_add(1, Ordering::AcqRel);
                        }
                        status => panic!("{status}: {}", reply.text()),
                    }
                }
            })
        })
        .collect();
    let count = |list: &Arc<Mutex<Vec<(String, String)>>>| list.lock().unwrap().len();
    eventually("batches go through", LONG, &mut || {
        count(&acknowledged) >= 200
    });
    redis.crash();
    eventually("changes are refused while redis is gone", LONG, &mut || {
        refused.load(Ordering::Acquire) >= 16
    });
    let before_restart = count(&acknowledged);
    redis.run();
    eventually("the load goes on once redis is back", LONG, &mut || {
        count(&acknowledged) >= before_restart + 100
    });
    stop.store(true, Ordering::Release);
    for thread in threads {
        thread.join().unwrap();
    }

    let log = read_log(&redis);
    assert_contiguous(&log);
    let (submitted, _) = submitted_and_answered(&log);
    let in_log: BTreeSet<&String> = submitted.iter().collect();
    assert_eq!(in_log.len(), submitted.len(), "no prompt submitted twice");
    // Every acknowledged prompt is held: a fresh instance reads it from
    // Redis (its snapshot and log) and knows it.
    let acknowledged = acknowledged.lock().unwrap().clone();
    let fresh = instance(&redis);
    for (session, id) in &acknowledged {
        let path = format!("/api/clarify/wait?session_id={session}&clarify_id={id}&timeout=0");
        let reply = fresh.get(&path);
        assert_eq!(reply.status, 200, "{id} was acknowledged: {}", reply.text());
    }
    // Nothing was shown that Redis does not hold: every frame names a
    // version some record reaches (the log before a snapshot is trimmed).
    let covered = |version: u64| {
        let first = log.first().map_or(0, |(base, _, _)| *base);
        version <= first
            || log
                .iter()
                .any(|(base, to, _)| *base < version && version <= *to)
    };
    let last = log.last().unwrap().1;
    eventually("the instance applied the whole log", LONG, &mut || {
        metric(&server, "askgate_version") == last
    });
    while let Some(event) = stream.next_event(Duration::from_millis(500)) {
        if let Some(id) = event.id.filter(|_| event.event == "clarify") {
            let version: u64 = id.parse().unwrap();
            assert!(covered(version), "frame {version} is in the log");
        }
    }
    eprintln!(
        "redis killed under batches: {} acknowledged, {} refused, {} records",
        acknowledged.len(),
        refused.load(Ordering::Acquire),
        log.len()
    );
}
