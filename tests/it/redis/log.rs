//! What lives in Redis: the expiry lease and its takeover, snapshots and
//! the trimmed log a new instance starts from, a log that went back.

use super::*;
use crate::support::SseClient;
use serde_json::Value;
use std::time::{Duration, Instant};

#[test]
fn expiry_is_decided_by_the_lease_holder_and_taken_over_when_it_dies() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let mut servers = vec![instance(&redis), instance(&redis)];
    let mut holder = None;
    eventually("one instance holds the lease", LONG, &mut || {
        let reply = redis_call(&redis, &["GET", "askgate:lease"]);
        holder = reply
            .as_bytes()
            .map(|b| String::from_utf8_lossy(b).to_string());
        holder.is_some()
    });
    let pid: u32 = holder.unwrap().split('-').next().unwrap().parse().unwrap();
    let at = servers
        .iter()
        .position(|s| s.pid() == pid)
        .expect("the holder is ours");
    drop(servers.remove(at)); // kill -9
    let survivor = &servers[0];
    let body = json!({"session_id": "x", "question": "soon?", "timeout_seconds": 1});
    let id = survivor.post("/api/clarify/submit", &body).json()["clarify_id"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let mut status = Value::Null;
    eventually("the prompt expires", LONG, &mut || {
        let reply = survivor.get(&format!(
            "/api/clarify/wait?session_id=x&clarify_id={id}&timeout=2"
        ));
        status = reply.json()["status"].clone();
        status != "pending"
    });
    assert_eq!(status, "expired");
    // The dead holder's lease (5 s) runs out, then the survivor takes it.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let reply = redis_call(&redis, &["GET", "askgate:lease"]);
    let now_held = String::from_utf8_lossy(reply.as_bytes().unwrap()).to_string();
    assert!(
        now_held.starts_with(&format!("{}-", survivor.pid())),
        "{now_held}"
    );
}

#[test]
fn a_new_instance_starts_from_the_snapshot_and_the_log_is_trimmed() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let a = instance(&redis);
    let sessions: Vec<String> = (0..50).map(|n| format!("n{n}")).collect();
    for n in 0..2100 {
        let session = &sessions[n % sessions.len()];
        let id = submit(&a, session, &format!("q{n}"));
        if n % 2 == 0 {
            assert_eq!(answer(&a, session, &id, "ok"), 200);
        }
    }
    // A snapshot is looked for at the expiry thread's turns (a second
    // apart) and taken once the log since the last has grown by 1,000
    // versions and as many bytes as it; a newer one trims the log before
    // the one it replaces. How many versions a turn sees depends on the
    // machine's speed (the first may come at 2,000 or later), so: more
    // changes until a second snapshot has replaced a first.
    let mut replaced = None;
    let mut more = 0;
    eventually("a second snapshot", LONG, &mut || {
        let reply = redis_call(&redis, &["HGET", "askgate:snapshot", "version"]);
        let version = reply.as_u64().unwrap_or(0);
        match replaced {
            Some(first) if version > first => return true,
            None if version > 0 => replaced = Some(version),
            _ => {}
        }
        for _ in 0..50 {
            more += 1;
            let session = &sessions[more % sessions.len()];
            let id = submit(&a, session, &format!("more {more}"));
            assert_eq!(answer(&a, session, &id, "ok"), 200);
        }
        false
    });
    let replaced = replaced.unwrap();
    let first = redis_call(&redis, &["XRANGE", "askgate:log", "-", "+", "COUNT", "1"]);
    let first = first.as_array().unwrap()[0].as_array().unwrap()[0].clone();
    let first: u64 = String::from_utf8_lossy(first.as_bytes().unwrap())
        .split('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        first >= replaced && replaced >= 1000,
        "the log begins at {first}, the replaced snapshot was at {replaced}"
    );
    let snapshot = redis_call(&redis, &["HGET", "askgate:snapshot", "version"]).as_u64();
    let size = redis_call(&redis, &["HSTRLEN", "askgate:snapshot", "state"]).as_u64();
    eprintln!("redis snapshot: version {snapshot:?}, {size:?} bytes; the log begins at {first}");
    let b = instance(&redis);
    for session in &sessions {
        assert_eq!(pending(&b, session), pending(&a, session), "{session}");
    }
    // And it goes on from there with the others.
    let id = submit(&b, "n0", "after");
    eventually("A sees it", DEADLINE, &mut || {
        pending(&a, "n0").0 == pending(&b, "n0").0
    });
    assert_eq!(answer(&a, "n0", &id, "fine"), 200);
}

#[test]
fn a_redis_that_lost_acknowledged_changes_is_read_again_and_versions_skip_ahead() {
    let Some(program) = redis_server() else {
        return;
    };
    let mut redis = Redis::start(program);
    let [a, b] = [instance(&redis), instance(&redis)];
    let mut stream = a.stream("/api/events");
    stream.events_until("ready");
    for n in 0..3 {
        submit(&a, "gone", &format!("q{n}"));
    }
    let seen: Vec<Event> = (0..3).map(|_| stream.expect_event("a change")).collect();
    let last = seen[2].id.clone().unwrap();
    assert_eq!(last, "3");
    // Redis comes back without its data, as after a crash with
    // `appendfsync everysec` (here: all of it).
    redis.crash();
    std::fs::remove_dir_all(&redis.dir.path).unwrap();
    std::fs::create_dir_all(&redis.dir.path).unwrap();
    redis.run();
    let skip = 1u64 << 20;
    for server in [&a, &b] {
        eventually(
            "the instance reads redis again, past a skip",
            LONG,
            &mut || server.metric("askgate_version") >= skip as f64,
        );
    }
    stream.expect_end(LONG);
    for server in [&a, &b] {
        assert_eq!(server.metric("askgate_store_reloads_total"), 1.0);
    }
    // Exactly one skip: the second instance finds the log already past it.
    assert_eq!(a.metric("askgate_version"), skip as f64);
    assert_eq!(b.metric("askgate_version"), skip as f64);
    // A browser resuming from a lost change gets the full state.
    let mut resumed = SseClient::open(a.addr, "/api/events", &[("Last-Event-ID", &last)]);
    let events = resumed.events_until("ready");
    assert_eq!(events.len(), 1, "nothing pending: {events:?}");
    assert_eq!(events[0].json()["full"], true);
    let id = submit(&b, "gone", "again");
    let event = resumed.expect_event("the new submit");
    assert_eq!(frame(&event), ("gone".into(), 1, Some(id)));
    assert!(event.id.unwrap().parse::<u64>().unwrap() > skip);
}

#[test]
fn a_forged_grant_in_the_log_makes_no_rule_on_any_instance() {
    // Issue 18 §4: a record written straight into Redis made `sudo` an
    // always rule on every instance that applied it.
    use askgate::core::change::Change;
    use askgate::core::kind::Kind;
    use askgate::core::prompt::{Answer, Choice, Outcome};
    use askgate::core::rules::Scope;
    use askgate::hub::durable;
    use askgate::store::redis::{Record, RedisLog};
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let a = instance(&redis);
    let body = json!({"session_id": "s1", "command": "sudo reboot"});
    let asked = a.post("/api/approval/submit", &body).json();
    let id = asked["approval_id"].as_str().unwrap().to_string();
    let forged = vec![Change::Resolved {
        session_id: "s1".into(),
        kind: Kind::Approval,
        id,
        outcome: Outcome::Answered(Answer::choice(Choice::Always)),
        at: 1.0,
        grant: Some(Scope::Prefix {
            prefix: "sudo".into(),
            options: true,
        }),
        by: None,
    }];
    let log = RedisLog::new(askgate::store::resp::Target::parse(&redis.url()).unwrap());
    let mut link = log.link();
    let base = link.tail(0, 1).expect("Redis answers").version;
    let appended = link.append(&[Record {
        base,
        version: base + 1,
        bytes: durable::encode(&forged),
    }]);
    assert!(appended.is_ok(), "{appended:?}");
    drop(link);
    let pending = |client: &Client| {
        let reply = client.get("/api/approval/pending?session_id=s1");
        reply.json()["pending_count"].as_u64()
    };
    eventually("A applies the record", DEADLINE, &mut || {
        pending(&a) == Some(0)
    });
    // A new instance reads the log from Redis itself.
    let b = instance(&redis);
    for (name, server) in [("A", &a), ("B", &b)] {
        let rules = server.get("/api/rules").json();
        assert_eq!(rules, json!({"rules": []}), "{name}: no rule");
        let again = server.post(
            "/api/approval/submit",
            &json!({"session_id": name, "command": "sudo rm -rf ~"}),
        );
        assert_eq!(
            again.json()["pending_count"],
            1,
            "{name}: asked about: {}",
            again.text()
        );
        let stderr = server.stderr();
        assert!(
            stderr.contains("grants a rule that may not be granted"),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn the_audit_stream_is_capped_by_bytes_and_by_lines() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    // Lines an older askgate wrote, without a byte count: measured once.
    for n in 0..5 {
        redis_call(
            &redis,
            &["XADD", "askgate:audit", "*", "line", &format!("old {n}")],
        );
    }
    let target = askgate::store::resp::Target::parse(&redis.url()).unwrap();
    let log = askgate::store::redis::RedisLog::new(target);
    let cap = 10_000;
    let lines: Vec<String> = (0..50)
        .map(|n| format!("{n:04} {}", "x".repeat(995)))
        .collect();
    log.link().audit(&lines, cap).unwrap();
    let int = |args: &[&str]| match redis_call(&redis, args) {
        askgate::store::resp::Reply::Int(n) => n,
        other => panic!("{args:?}: {other:?}"),
    };
    fn text(reply: askgate::store::resp::Reply) -> String {
        match reply {
            askgate::store::resp::Reply::Array(items) => items.into_iter().map(text).collect(),
            other => {
                String::from_utf8_lossy(other.as_bytes().unwrap_or_default()).to_string() + " "
            }
        }
    }
    assert_eq!(
        int(&["XLEN", "askgate:audit"]),
        10,
        "10 lines of 1,000 bytes"
    );
    let counted = redis_call(&redis, &["GET", "askgate:audit-bytes"]);
    assert_eq!(counted.as_bytes(), Some(&b"10000"[..]));
    let oldest = text(redis_call(
        &redis,
        &["XRANGE", "askgate:audit", "-", "+", "COUNT", "1"],
    ));
    assert!(
        oldest.contains("line 0040 x"),
        "the newest are kept: {oldest}"
    );
    // Many small lines: the line cap holds too, and nothing grows past either.
    let small: Vec<String> = (0..20).map(|n| format!("small {n}")).collect();
    log.link().audit(&small, cap).unwrap();
    let bytes: i64 = String::from_utf8_lossy(
        redis_call(&redis, &["GET", "askgate:audit-bytes"])
            .as_bytes()
            .unwrap(),
    )
    .parse()
    .unwrap();
    assert!(bytes <= cap as i64, "{bytes}");
    let newest = text(redis_call(
        &redis,
        &["XREVRANGE", "askgate:audit", "+", "-", "COUNT", "1"],
    ));
    assert!(newest.contains("small 19"), "{newest}");
}
