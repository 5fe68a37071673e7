//! Across instances: streams on one see changes made through the others in
//! order; waits, answers and resumes on another instance than the submit;
//! each instance audits its own decisions; a lagging stream learns of a
//! session another instance forgot.

use super::*;
use crate::support::SseClient;
use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn streams_on_one_instance_see_changes_made_through_the_others_in_order() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let [a, b, c] = [instance(&redis), instance(&redis), instance(&redis)];
    let mut stream = a.stream("/api/events?session_id=shared");
    stream.events_until("ready");

    let first = submit(&b, "shared", "first?");
    let second = submit(&b, "shared", "second?");
    assert_eq!(answer(&c, "shared", &first, "yes"), 200);
    submit(&c, "shared", "third?");
    let frames: Vec<_> = (0..4)
        .map(|_| frame(&stream.expect_event("a change")))
        .collect();
    let shared = |count, head: &String| ("shared".to_string(), count, Some(head.clone()));
    assert_eq!(
        frames,
        [
            shared(1, &first),
            shared(2, &first),
            shared(1, &second),
            shared(2, &second)
        ],
        "made through B and C, seen on A in order"
    );
    // Reads on an instance are as fresh as the records it has applied
    // (a publish away); answers and waits read the log first.
    for server in [&a, &b, &c] {
        eventually("every instance shows it", DEADLINE, &mut || {
            pending(server, "shared") == (2, Some(second.clone()))
        });
    }

    // An agent waiting on A learns the answer given on C.
    let waiting = {
        let (a, second) = (a.addr, second.clone());
        thread::spawn(move || {
            let client = Client { addr: a };
            let path =
                format!("/api/clarify/wait?session_id=shared&clarify_id={second}&timeout=30");
            let started = Instant::now();
            (client.get(&path), started.elapsed())
        })
    };
    eventually("the wait is parked on A", DEADLINE, &mut || {
        a.metric("askgate_longpolls_parked") == 1.0
    });
    assert_eq!(answer(&c, "shared", &second, "from C"), 200);
    let (reply, took) = waiting.join().unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["response"], "from C", "{}", reply.text());
    assert!(took < Duration::from_secs(5), "{took:?}");
    // A conflicting answer through another instance at the same moment is stale.
    assert_eq!(answer(&b, "shared", &second, "late"), 409);

    // Round-robin through nginx: every instance serves the same state.
    let Some(nginx) = nginx() else { return };
    let proxy = Nginx::start(&nginx, &[a.addr, b.addr, c.addr]);
    let client = proxy.client();
    let ids: Vec<String> = (0..6)
        .map(|n| submit(&client, "rr", &format!("q{n}")))
        .collect();
    for server in [&a, &b, &c] {
        eventually("every instance shows them", DEADLINE, &mut || {
            pending(server, "rr") == (6, Some(ids[0].clone()))
        });
    }
    // Waiting through nginx right after a submit through nginx (another
    // instance, round-robin) finds the prompt.
    for n in 0..6 {
        let id = submit(&client, "rw", &format!("w{n}"));
        let reply = client.get(&format!(
            "/api/clarify/wait?session_id=rw&clarify_id={id}&timeout=0"
        ));
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(answer(&client, "rw", &id, "at once"), 200);
    }
    assert!(proxy.client().get("/healthz").text().starts_with("ok"));
}

#[test]
fn each_instance_audits_the_decisions_made_through_it_in_its_own_data_dir() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let dir = TempDir::new("redis-audit");
    let (a_dir, b_dir) = (dir.join("a"), dir.join("b"));
    let flags = |d: &PathBuf| {
        vec![
            "--store".to_string(),
            redis.url(),
            "--data-dir".into(),
            d.display().to_string(),
        ]
    };
    let start = |d: &PathBuf| {
        let flags = flags(d);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        ServerProcess::start_with(askgate(), &flags)
    };
    let (a, b) = (start(&a_dir), start(&b_dir));
    let id = submit(&a, "audited", "who?");
    assert_eq!(answer(&b, "audited", &id, "me"), 200);
    let audit = |d: &PathBuf| std::fs::read_to_string(d.join("audit.log")).unwrap_or_default();
    eventually(
        "each decision in its instance's audit file",
        DEADLINE,
        &mut || audit(&a_dir).contains("event=asked") && audit(&b_dir).contains("event=answered"),
    );
    assert!(
        !audit(&a_dir).contains("event=answered"),
        "{}",
        audit(&a_dir)
    );
    assert!(!audit(&b_dir).contains("event=asked"), "{}", audit(&b_dir));
    // And every instance's lines, in one stream in Redis.
    fn texts(reply: &askgate::store::resp::Reply, into: &mut String) {
        use askgate::store::resp::Reply;
        match reply {
            Reply::Bulk(bytes) => into.push_str(&format!("{}\n", String::from_utf8_lossy(bytes))),
            Reply::Array(items) => items.iter().for_each(|item| texts(item, into)),
            _ => {}
        }
    }
    // Written by each instance's audit thread, a moment after the change.
    let mut shared = String::new();
    eventually("both lines in redis", DEADLINE, &mut || {
        shared.clear();
        texts(
            &redis_call(&redis, &["XRANGE", "askgate:audit", "-", "+"]),
            &mut shared,
        );
        shared.contains("event=asked") && shared.contains("event=answered")
    });
    // Each instance adds its own lines when its audit thread gets to them,
    // so lines of two instances may interleave (docs/PROTOCOL.md §6): their
    // `at=` says the order they were made in.
    let at = |event: &str| -> f64 {
        let line = shared
            .lines()
            .find(|line| line.contains(&format!("event={event} kind=clarify id=")))
            .expect(&shared);
        let at = line.strip_prefix("at=").expect(line);
        at.split(' ').next().unwrap().parse().expect(line)
    };
    assert!(at("asked") <= at("answered"), "made in order: {shared}");
}

#[test]
fn concurrent_submits_through_three_instances_make_one_order_every_stream_sees() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    // Room for every submit in one queue, and for every frame in a stream
    // that is read only at the end.
    let flags = ["--max-pending", "1000", "--subscriber-buffer", "1000"];
    let servers = [1, 2, 3].map(|_| instance_with(&redis, &flags));
    let mut streams: Vec<SseClient> = servers
        .iter()
        .map(|server| {
            let mut stream = server.stream("/api/events?session_id=race");
            stream.events_until("ready");
            stream
        })
        .collect();
    const PER_THREAD: usize = 25;
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let client = Client {
                addr: addrs[t % addrs.len()],
            };
            thread::spawn(move || {
                let mut mine = Vec::new();
                for n in 0..PER_THREAD {
                    mine.push(submit(&client, "race", &format!("t{t}-{n}")));
                }
                mine
            })
        })
        .collect();
    let acknowledged: Vec<Vec<String>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let total = 6 * PER_THREAD;
    // Every stream saw the same frames, versions rising one by one.
    let seen: Vec<Vec<(String, u64)>> = streams
        .iter_mut()
        .map(|stream| {
            (0..total)
                .map(|_| {
                    let event = stream.expect_event("a submit");
                    (event.id.clone().unwrap(), event.count())
                })
                .collect()
        })
        .collect();
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
    let counts: Vec<u64> = seen[0].iter().map(|(_, count)| *count).collect();
    assert_eq!(counts, (1..=total as u64).collect::<Vec<_>>());
    // Answering the head through each instance in turn drains the queue in
    // one order, and each client's submits come out in the order it made them.
    let mut order = Vec::new();
    for n in 0..total {
        // Read where the last answer was given (reads elsewhere may be a
        // publish behind), answer through the next instance.
        let (_, head) = pending(&servers[(n + 2) % 3], "race");
        let server = &servers[n % 3];
        let head = head.expect("a head");
        assert_eq!(answer(server, "race", &head, "ok"), 200);
        order.push(head);
    }
    // Every record was appended by one instance and applied by the others.
    let metric = |server: &ServerProcess, name: &str| server.metric(name) as usize;
    let appended: usize = servers
        .iter()
        .map(|s| metric(s, "askgate_store_appends_total"))
        .sum();
    assert_eq!(appended, 2 * total);
    for server in &servers {
        eventually(
            "each instance has applied the others' records",
            DEADLINE,
            &mut || {
                metric(server, "askgate_store_appends_total")
                    + metric(server, "askgate_store_applied_total")
                    == 2 * total
            },
        );
        assert_eq!(metric(server, "askgate_store_up"), 1);
        assert_eq!(metric(server, "askgate_store_reloads_total"), 0);
    }
    let conflicts: usize = servers
        .iter()
        .map(|s| metric(s, "askgate_store_conflicts_total"))
        .sum();
    eprintln!("redis concurrent submits: {conflicts} appends lost a race and were decided again");
    for mine in &acknowledged {
        let positions: Vec<usize> = mine
            .iter()
            .map(|id| order.iter().position(|o| o == id).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }
}

#[test]
fn a_stream_resumes_on_another_instance_from_what_it_saw_on_the_first() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let [a, b] = [instance(&redis), instance(&redis)];
    let mut on_a = a.stream("/api/events?session_id=hop");
    on_a.events_until("ready");
    for n in 0..20 {
        submit(&a, "hop", &format!("q{n}"));
        let seen = on_a.expect_event("the submit").id.unwrap();
        // At once on B, which may not have applied it yet: it reads the
        // log first, so the id resumes exactly (nothing changed since).
        let headers = [("Last-Event-ID", seen.as_str())];
        let mut on_b = SseClient::open(b.addr, "/api/events?session_id=hop", &headers);
        let events = on_b.events_until("ready");
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].json()["full"], false, "round {n}");
    }
}

/// A stream on A whose subscriber fell behind, while B (the lease holder)
/// forgot a session it had shown: the stream ends, and its resume gets the
/// full state, in which the forgotten session is empty. Before, the resync
/// sent only the queues with something pending, and the page kept showing
/// the forgotten session's prompt.
#[test]
fn a_lagging_stream_learns_that_a_session_another_instance_forgot_emptied() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let flags = [
        "--result-ttl",
        "1",
        "--max-pending",
        "5000",
        "--subscriber-buffer",
        "1",
        "--write-timeout-secs",
        "120",
    ];
    let b = instance_with(&redis, &flags);
    eventually("B holds the expiry lease", LONG, &mut || {
        let holder = redis_call(&redis, &["GET", "askgate:lease"]);
        let holder = String::from_utf8_lossy(holder.as_bytes().unwrap_or_default()).to_string();
        holder.starts_with(&format!("{}-", b.pid()))
    });
    let a = instance_with(&redis, &flags);
    let mut stream = a.stream("/api/events");
    stream.events_until("ready");
    let gone = submit(&b, "gone", "forgotten soon?");
    assert_eq!(frame(&stream.expect_event("the prompt")).1, 1);

    // The stream stops reading while big frames fill its socket and channel.
    let big = json!({"session_id": "flood", "question": "x".repeat(4000),
                     "choices": (0..16).map(|n| format!("{n:0>250}")).collect::<Vec<_>>()});
    // Every frame carries the (big) head; each submit is a new question.
    assert_eq!(a.post("/api/clarify/submit", &big).status, 200);
    let mut submitted = 0;
    while !matches!(a.metric("askgate_resyncs_total"), n if n >= 1.0) {
        for n in submitted..submitted + 50 {
            submit(&a, "flood", &format!("q{n}"));
        }
        submitted += 50;
        assert!(submitted < 4000, "the stream was never marked for resync");
    }
    // More, so that it stays marked until the test reads: a resync would
    // write at least one big frame more than the socket buffers hold.
    for n in submitted..submitted + 500 {
        submit(&a, "flood", &format!("q{n}"));
    }
    assert_eq!(answer(&b, "gone", &gone, "done"), 200);
    let history = || {
        let history = a.get("/api/history?session_id=gone").json();
        history["history"].as_array().map_or(0, Vec::len)
    };
    eventually("A applies the answer", LONG, &mut || history() == 1);
    eventually("B forgets the session, A applies that", LONG, &mut || {
        history() == 0
    });
    submit(&b, "marker", "after it all");

    // The browser's view: frames replace what it knew; a ready with
    // `full: true` replaces everything with the frames before it; an ended
    // stream resumes from its last id.
    let mut view = BTreeMap::from([("gone".to_string(), 1)]);
    let mut last_id = String::new();
    let take = |view: &mut BTreeMap<String, u64>, event: &Event| {
        if event.event == "clarify" {
            let (session, count, _) = frame(event);
            view.insert(session, count);
        }
    };
    while !view.contains_key("marker") {
        let Some(event) = stream.next_event(LONG) else {
            assert!(stream.ended, "no frame and no end within {LONG:?}");
            let headers = [("Last-Event-ID", last_id.as_str())];
            stream = SseClient::open(a.addr, "/api/events", &headers);
            let prelude = stream.events_until("ready");
            let ready = prelude.last().expect("ready").json();
            if ready["full"] == true {
                view.clear();
            }
            for event in &prelude {
                take(&mut view, event);
            }
            continue;
        };
        last_id = event.id.clone().unwrap_or(last_id);
        take(&mut view, &event);
    }
    assert!(
        view.get("gone").is_none_or(|&count| count == 0),
        "the forgotten session still shows its prompt: {view:?}"
    );
}
