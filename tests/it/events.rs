//! The multiplexed stream (docs/PROTOCOL.md §4), long-polling and ETags (§3.1),
//! `/api/sessions`, and the cap on streams and parked long-polls.

use crate::queue_rules::slow_subscriber_ends_on_the_true_state;
use crate::support::{DEADLINE, Event, SseClient, TestServer, eventually, within};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

const SHORT: Duration = Duration::from_millis(300);

/// What a client knows: the latest frame data per (session, kind).
type Picture = BTreeMap<(String, String), Value>;

fn apply(picture: &mut Picture, events: &[Event]) {
    for event in events
        .iter()
        .filter(|e| e.event == "clarify" || e.event == "approval")
    {
        let data = event.json();
        let key = (
            data["session_id"].as_str().unwrap().to_string(),
            event.event.clone(),
        );
        picture.insert(
            key,
            json!({"pending": data["pending"], "pending_count": data["pending_count"]}),
        );
    }
}

/// The server's truth for one (session, kind), as a picture entry.
fn truth(server: &TestServer, session_id: &str, kind: &str) -> Value {
    let poll = server
        .get(&format!("/api/{kind}/pending?session_id={session_id}"))
        .json();
    json!({"pending": poll["pending"], "pending_count": poll["pending_count"]})
}

fn last_id(events: &[Event]) -> String {
    events
        .last()
        .and_then(|e| e.id.clone())
        .expect("every frame has an id")
}

#[test]
fn a_stream_starts_with_retry_the_state_and_ready_and_every_frame_has_an_id() {
    let server = TestServer::start(&[]);
    server.submit_clarify("one", "q?");
    let mut stream = server.stream("/api/events?session_id=one&session_id=two");
    assert!(stream.head.contains("text/event-stream"));
    let events = stream.events_until("ready");
    let names: Vec<(String, Value)> = events
        .iter()
        .map(|e| (e.event.clone(), e.json()["session_id"].clone()))
        .collect();
    assert_eq!(
        names.len(),
        5,
        "two sessions, two kinds, then ready: {names:?}"
    );
    assert!(events.iter().all(|e| e.id.is_some()), "ids on every frame");
    let ready = events.last().unwrap();
    assert_eq!(ready.json(), json!({"version": 1, "full": true}));
    assert_eq!(ready.id.as_deref(), Some("1"));
    let mut picture = Picture::new();
    apply(&mut picture, &events);
    for session_id in ["one", "two"] {
        for kind in ["clarify", "approval"] {
            assert_eq!(
                picture[&(session_id.to_string(), kind.to_string())],
                truth(&server, session_id, kind)
            );
        }
    }
}

#[test]
fn watching_all_shows_new_sessions_and_watching_named_ones_shows_only_those() {
    let server = TestServer::start(&[]);
    let mut all = server.stream("/api/events");
    let initial = all.events_until("ready");
    assert_eq!(initial.len(), 1, "nothing pending yet, so only ready");
    let mut named = server.stream("/api/events?session_id=watched");
    named.events_until("ready");
    server.submit_clarify("newcomer", "hello?");
    server.submit_approval("watched", "ls", &[]);
    let first = all.expect_event("newcomer").json();
    assert_eq!(
        (
            first["session_id"].as_str(),
            first["pending_count"].as_u64()
        ),
        (Some("newcomer"), Some(1))
    );
    let second = all.expect_event("watched").json();
    assert_eq!(second["session_id"], "watched");
    let only = named.expect_event("watched").json();
    assert_eq!(
        (
            only["session_id"].as_str(),
            only["pending"]["command"].as_str()
        ),
        (Some("watched"), Some("ls"))
    );
    assert!(
        named.next_event(SHORT).is_none(),
        "nothing of other sessions"
    );
}

#[test]
fn a_reconnect_with_last_event_id_gets_exactly_what_changed_then_ready() {
    let server = TestServer::start(&[]);
    let sessions = ["a", "b", "c", "d"];
    // a: clarify stays; b: approval answered to empty; c untouched; d: new.
    server.submit_clarify("a", "a1");
    server.submit_approval("b", "b1", &[]);
    server.submit_clarify("c", "c1");
    let mut stream = server.stream("/api/events");
    let events = stream.events_until("ready");
    let mut picture = Picture::new();
    apply(&mut picture, &events);
    let seen = last_id(&events);
    drop(stream);

    server.submit_clarify("a", "a2");
    server.post(
        "/api/approval/respond",
        &json!({"session_id": "b", "choice": "deny"}),
    );
    let d = server.submit_clarify("d", "d1");
    server.post(
        "/api/clarify/respond",
        &json!({"session_id": "d", "clarify_id": d, "response": "x"}),
    );
    server.submit_approval("d", "d2", &[]);

    let mut stream = SseClient::open(server.addr, "/api/events", &[("Last-Event-ID", &seen)]);
    let resumed = stream.events_until("ready");
    let changed: Vec<(String, String, u64)> = resumed[..resumed.len() - 1]
        .iter()
        .map(|e| {
            (
                e.json()["session_id"].as_str().unwrap().to_string(),
                e.event.clone(),
                e.count(),
            )
        })
        .collect();
    let expected: Vec<(String, String, u64)> = [
        ("a", "clarify", 2),
        ("b", "approval", 0),
        ("d", "clarify", 0),
        ("d", "approval", 1),
    ]
    .iter()
    .map(|(s, k, n)| (s.to_string(), k.to_string(), *n))
    .collect();
    assert_eq!(
        changed, expected,
        "exactly the changed states, the emptied ones as empty"
    );
    assert_eq!(resumed.last().unwrap().json()["full"], false);
    apply(&mut picture, &resumed);
    for session_id in sessions {
        for kind in ["clarify", "approval"] {
            let known = picture
                .get(&(session_id.to_string(), kind.to_string()))
                .cloned();
            let known = known.unwrap_or(json!({"pending": null, "pending_count": 0}));
            assert_eq!(
                known,
                truth(&server, session_id, kind),
                "{session_id} {kind}"
            );
        }
    }
    // The query parameter works as the header does.
    let mut by_query = server.stream(&format!("/api/events?last_event_id={seen}"));
    assert_eq!(by_query.events_until("ready").len(), resumed.len());
}

#[test]
fn an_id_the_server_cannot_honour_gets_the_full_state() {
    let server = TestServer::start(&[]);
    server.submit_clarify("f", "q?");
    server.submit_approval("g", "ls", &[]);
    for id in ["garbage", "999999", "-1", ""] {
        let mut stream = SseClient::open(server.addr, "/api/events", &[("Last-Event-ID", id)]);
        let events = stream.events_until("ready");
        assert_eq!(
            events.len(),
            3,
            "Last-Event-ID {id:?}: both non-empty queues, then ready"
        );
        assert_eq!(events[2].json()["full"], true);
    }
}

#[test]
fn the_server_ends_a_stream_after_its_lifetime_and_a_resume_misses_nothing() {
    let server = TestServer::start(&[
        "--stream-lifetime-secs",
        "1-1.5",
        "--header-timeout-secs",
        "1",
    ]);
    let mut stream = server.stream("/api/events?session_id=life");
    let events = stream.events_until("ready");
    let opened = Instant::now();
    assert!(!events.is_empty());
    server.submit_clarify("life", "before the end");
    let seen = last_id(&[stream.expect_event("clarify")]);
    stream.expect_end(Duration::from_secs(3));
    // The receive timeout frees tiny_http's reading thread: the socket closes.
    stream.expect_closed(Duration::from_secs(3));
    let lived = opened.elapsed();
    assert!(
        lived >= Duration::from_millis(900) && lived < Duration::from_millis(2500),
        "lived {lived:?}"
    );
    // Changes while the client is away come back on the resume.
    server.submit_clarify("life", "while away");
    server.submit_approval("life", "also while away", &[]);
    let mut stream = SseClient::open(
        server.addr,
        "/api/events?session_id=life",
        &[("Last-Event-ID", &seen)],
    );
    let resumed = stream.events_until("ready");
    let mut picture = Picture::new();
    apply(&mut picture, &resumed);
    assert_eq!(picture.len(), 2);
    for kind in ["clarify", "approval"] {
        assert_eq!(
            picture[&("life".to_string(), kind.to_string())],
            truth(&server, "life", kind)
        );
    }
}

#[test]
fn multiplexed_keepalives_are_ping_events() {
    let server = TestServer::start(&["--keepalive-secs", "1"]);
    let mut stream = server.stream("/api/events");
    let ready = stream.events_until("ready");
    let ping = stream
        .next_event(Duration::from_secs(3))
        .expect("a ping within 3 s");
    assert_eq!((ping.event.as_str(), ping.data.as_str()), ("ping", "{}"));
    assert_eq!(
        ping.id,
        ready.last().unwrap().id,
        "a ping repeats the last id"
    );
}

#[test]
fn a_long_poll_returns_on_change_or_after_its_wait() {
    let server = TestServer::start(&[]);
    let version = server.get("/api/clarify/pending?session_id=lp").json()["version"]
        .as_u64()
        .unwrap();
    let (reply, answered_after) = thread::scope(|scope| {
        let poller = scope.spawn(|| {
            let reply = server.get(&format!(
                "/api/clarify/pending?session_id=lp&since={version}&wait=30"
            ));
            (reply, Instant::now())
        });
        eventually("the poll is parked", DEADLINE, &mut || {
            server.metric("askgate_longpolls_parked") == 1.0
        });
        let submitted = Instant::now();
        server.submit_clarify("lp", "wake up");
        let (reply, returned) = poller.join().unwrap();
        (reply, returned - submitted)
    });
    assert!(
        answered_after < Duration::from_secs(1),
        "returned {answered_after:?} after the change"
    );
    let poll = reply.json();
    assert_eq!(
        (
            poll["pending"]["question"].as_str(),
            poll["pending_count"].as_u64()
        ),
        (Some("wake up"), Some(1))
    );
    assert_eq!(server.metric("askgate_longpolls_parked"), 0.0);

    let current = poll["version"].as_u64().unwrap();
    let started = Instant::now();
    let unchanged = server.get(&format!(
        "/api/clarify/pending?session_id=lp&since={current}&wait=1"
    ));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(unchanged.json(), poll, "the unchanged state after the wait");
    let stale = server.get(&format!(
        "/api/clarify/pending?session_id=lp&since={}&wait=30",
        current - 1
    ));
    assert_eq!(
        stale.json(),
        poll,
        "a since that is already stale returns at once"
    );
    let other_kind = server.get("/api/approval/pending?session_id=lp&since=0&wait=0.2");
    assert_eq!(
        other_kind.json()["pending_count"],
        0,
        "the clarify change does not wake an approval poll"
    );
}

#[test]
fn an_etag_that_is_still_current_gets_304() {
    let server = TestServer::start(&[]);
    server.submit_approval("et", "ls", &[]);
    let first = server.get("/api/approval/pending?session_id=et");
    let etag = first.header("etag").unwrap().to_string();
    let again = server.request(
        "GET",
        "/api/approval/pending?session_id=et",
        &[("If-None-Match", &etag)],
        "",
    );
    assert_eq!((again.status, again.body.len()), (304, 0));
    server.submit_approval("et", "pwd", &[]);
    let changed = server.request(
        "GET",
        "/api/approval/pending?session_id=et",
        &[("If-None-Match", &etag)],
        "",
    );
    assert_eq!(
        (changed.status, changed.json()["pending_count"].as_u64()),
        (200, Some(2))
    );
    assert_ne!(changed.header("etag"), Some(&*etag));
}

#[test]
fn the_stream_cap_refuses_with_503_and_retry_after_and_frees_places() {
    let server = TestServer::start(&["--max-streams", "2", "--max-parked", "0"]);
    let first = server.stream("/api/events");
    let mut second = server.stream("/api/clarify/stream?session_id=cap");
    second.expect_event("initial");
    for path in [
        "/api/events",
        "/api/approval/stream?session_id=cap",
        "/api/clarify/pending?session_id=cap&since=0&wait=5",
    ] {
        let refused = server.get(path);
        assert_eq!(refused.status, 503, "{path}");
        assert_eq!(
            refused.json(),
            json!({"error": "too many open streams, try again later"})
        );
        assert!(
            refused
                .header("retry-after")
                .is_some_and(|s| s.parse::<u32>().is_ok()),
            "{path}"
        );
    }
    assert_eq!(
        server.get("/api/clarify/pending?session_id=cap").status,
        200,
        "plain polls are not capped"
    );
    drop(first);
    // The freed place is noticed at the next write: a change writes a frame.
    let mut third = None;
    eventually("a place frees up", Duration::from_secs(5), &mut || {
        server.submit_clarify("cap", &format!("nudge {:?}", Instant::now()));
        let stream = server.stream("/api/events");
        let ok = stream.status == 200;
        third = ok.then_some(stream);
        ok
    });
    assert!(third.is_some());
}

#[test]
fn sessions_list_counts_and_attention() {
    let server = TestServer::start(&[]);
    server.submit_clarify("only-clarify", "q");
    server.submit_clarify("both", "q");
    server.submit_approval("both", "ls", &[]);
    server.submit_approval("both", "pwd", &[]);
    let id = server.submit_clarify("answered", "q");
    server.post(
        "/api/clarify/respond",
        &json!({"session_id": "answered", "clarify_id": id, "response": "x"}),
    );
    let sessions = server.get("/api/sessions").json();
    let by_id: BTreeMap<String, Value> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["session_id"].as_str().unwrap().to_string(), s.clone()))
        .collect();
    let shape = |s: &Value| {
        (
            s["clarify_count"].as_u64(),
            s["approval_count"].as_u64(),
            s["attention"].clone(),
        )
    };
    assert_eq!(
        shape(&by_id["both"]),
        (Some(1), Some(2), json!("approval")),
        "approval outranks clarify"
    );
    assert_eq!(
        shape(&by_id["only-clarify"]),
        (Some(1), Some(0), json!("clarify"))
    );
    assert_eq!(
        shape(&by_id["answered"]),
        (Some(0), Some(0), Value::Null),
        "changed recently"
    );
    assert!(by_id["both"]["version"].as_u64().unwrap() > 0);
}

#[test]
fn rule7_a_slow_multiplexed_stream_ends_on_the_true_state() {
    slow_subscriber_ends_on_the_true_state("/api/events?session_id=slow");
    slow_subscriber_ends_on_the_true_state("/api/events");
}

/// From 1,000 streams a change's frames are written by two threads
/// (`Deliveries::run`): each stream still gets every frame, once, in order.
#[test]
fn eleven_hundred_streams_each_get_every_frame_once_and_in_order() {
    within(Duration::from_secs(120), || {
        let server = TestServer::start(&["--max-streams", "2000"]);
        let mut streams: Vec<SseClient> = (0..1100)
            .map(|_| server.stream("/api/events?session_id=split"))
            .collect();
        for stream in &mut streams {
            stream.events_until("ready");
        }
        for n in 1..=5 {
            server.submit_clarify("split", &format!("q{n}"));
        }
        for stream in &mut streams {
            let counts: Vec<u64> = (0..5)
                .map(|_| stream.expect_event("a clarify frame"))
                .map(|frame| frame.json()["pending_count"].as_u64().unwrap())
                .collect();
            assert_eq!(counts, [1, 2, 3, 4, 5]);
        }
    });
}

#[test]
fn a_thousand_streams_on_one_session_all_end_on_the_true_state() {
    within(Duration::from_secs(120), || {
        let server = TestServer::start(&["--max-streams", "2000"]);
        let mut streams: Vec<SseClient> = (0..1000)
            .map(|_| server.stream("/api/events?session_id=crowd"))
            .collect();
        for stream in &mut streams {
            stream.events_until("ready");
        }
        let slowest_health = thread::scope(|scope| {
            let prompts = scope.spawn(|| {
                for n in 0..100 {
                    let id = server.submit_clarify("crowd", &format!("q{n}"));
                    if n % 4 != 3 {
                        server.post(
                            "/api/clarify/respond",
                            &json!({"session_id": "crowd", "clarify_id": id, "response": "ok"}),
                        );
                    }
                }
            });
            let mut slowest = Duration::ZERO;
            while !prompts.is_finished() {
                let asked = Instant::now();
                assert_eq!(server.get("/healthz").status, 200);
                slowest = slowest.max(asked.elapsed());
            }
            prompts.join().unwrap();
            slowest
        });
        assert!(
            slowest_health < Duration::from_secs(1),
            "/healthz took {slowest_health:?} at worst"
        );
        let expected = truth(&server, "crowd", "clarify");
        for stream in &mut streams {
            let mut last = Value::Null;
            while last != expected {
                let frame = stream.expect_event("the final state");
                if frame.event == "clarify" {
                    let data = frame.json();
                    last =
                        json!({"pending": data["pending"], "pending_count": data["pending_count"]});
                }
            }
        }
    });
}

#[test]
fn what_is_known_already_is_answered_even_when_every_place_is_taken() {
    let server = TestServer::start(&["--max-streams", "0", "--max-parked", "0"]);
    let id = server.submit_clarify("full", "q?");
    let poll = server.get("/api/clarify/pending?session_id=full&since=0&wait=30");
    assert_eq!(
        (poll.status, poll.json()["pending_count"].as_u64()),
        (200, Some(1)),
        "a stale since"
    );
    let version = poll.json()["version"].as_u64().unwrap();
    let parked = server.get(&format!(
        "/api/clarify/pending?session_id=full&since={version}&wait=30"
    ));
    assert_eq!(parked.status, 503, "parking needs a place");
    let wait = |timeout: u32| {
        server.get(&format!(
            "/api/clarify/wait?session_id=full&clarify_id={id}&timeout={timeout}"
        ))
    };
    assert_eq!(wait(0).outcome(), json!({"status": "pending"}));
    assert_eq!(wait(30).status, 503, "waiting needs a place");
    server.post(
        "/api/clarify/respond",
        &json!({"session_id": "full", "response": "yes"}),
    );
    let answered = wait(30);
    assert_eq!(
        (answered.status, answered.outcome()),
        (200, json!({"status": "answered", "response": "yes"}))
    );
}

#[test]
fn a_session_named_twice_is_watched_once() {
    let server = TestServer::start(&[]);
    server.submit_clarify("twice", "q?");
    let mut stream = server.stream("/api/events?session_id=twice&session_id=twice");
    let events = stream.events_until("ready");
    assert_eq!(events.len(), 3, "clarify, approval, ready: {events:?}");
    server.submit_clarify("twice", "again?");
    stream.expect_event("one frame");
    assert!(stream.next_event(SHORT).is_none(), "not two");
}

#[test]
fn the_lifetime_holds_under_constant_traffic() {
    let server = TestServer::start(&["--stream-lifetime-secs", "1"]);
    let mut stream = server.stream("/api/events");
    stream.events_until("ready");
    let opened = Instant::now();
    let mut n = 0;
    while !stream.ended {
        assert!(
            opened.elapsed() < Duration::from_secs(3),
            "the stream outlived its lifetime"
        );
        server.submit_clarify(&format!("busy{n}"), "q");
        n += 1;
        let _ = stream.next_event(Duration::from_millis(50));
    }
}

/// One response read off a kept-alive connection: its head's lines (but
/// `Date`, which changes with the second) and its body.
fn read_response(reader: &mut impl BufRead) -> (Vec<String>, String) {
    let mut head = Vec::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a head line");
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().expect("a length");
        }
        if !line.to_ascii_lowercase().starts_with("date:") {
            head.push(line);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("the body");
    (head, String::from_utf8(body).expect("UTF-8"))
}

fn send_get(socket: &mut TcpStream, path: &str) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    socket.write_all(request.as_bytes()).expect("sent");
}

/// Parks a long-poll of `session_id`'s approvals on a new kept-alive
/// connection.
fn park_approval_poll(server: &TestServer, session_id: &str) -> BufReader<TcpStream> {
    let pending = format!("/api/approval/pending?session_id={session_id}");
    let version = server.get(&pending).json()["version"].as_u64().unwrap();
    let socket = TcpStream::connect(server.addr).expect("connected");
    socket.set_read_timeout(Some(DEADLINE)).expect("a timeout");
    let mut reader = BufReader::new(socket);
    let parked = server.metric("askgate_longpolls_parked");
    send_get(
        reader.get_mut(),
        &format!("{pending}&since={version}&wait=30"),
    );
    eventually("the poll is parked", DEADLINE, &mut || {
        server.metric("askgate_longpolls_parked") == parked + 1.0
    });
    reader
}

#[test]
fn a_woken_long_poll_is_answered_on_its_socket_with_a_polls_bytes_and_its_connection_goes_on() {
    let server = TestServer::start(&[]);
    let mut reader = park_approval_poll(&server, "early");
    server.submit_approval("early", "ls -la", &[]);
    let (woken_head, woken_body) = read_response(&mut reader);
    eventually("the fan-out thread wrote it", DEADLINE, &mut || {
        server.metric("askgate_longpolls_answered_early_total") == 1.0
    });
    // The next request on the same connection is read and answered: the
    // same state, in the same bytes as the long-poll's.
    send_get(reader.get_mut(), "/api/approval/pending?session_id=early");
    let (polled_head, polled_body) = read_response(&mut reader);
    assert_eq!((woken_head, &woken_body), (polled_head, &polled_body));
    assert_eq!(
        serde_json::from_str::<Value>(&woken_body).unwrap()["pending"]["command"],
        "ls -la"
    );
    eventually("the place is back", DEADLINE, &mut || {
        server.metric("askgate_longpolls_parked") == 0.0
    });
}

#[test]
fn a_long_poll_answered_while_its_client_reads_nothing_arrives_whole_after_what_came_before() {
    let server = TestServer::start(&[]);
    let pending = "/api/approval/pending?session_id=slow";
    let version = server.get(pending).json()["version"].as_u64().unwrap();
    let mut socket = TcpStream::connect(server.addr).expect("connected");
    socket.set_read_timeout(Some(DEADLINE)).expect("a timeout");
    // Pages the client does not read lie in the socket before the poll's
    // answer, which goes after them on a socket that is not empty.
    let page = server.get("/style.css").text();
    let pages = 16;
    let mut requests = "GET /style.css HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(pages);
    requests +=
        &format!("GET {pending}&since={version}&wait=30 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    socket.write_all(requests.as_bytes()).expect("sent");
    eventually("the poll is parked", DEADLINE, &mut || {
        server.metric("askgate_longpolls_parked") == 1.0
    });
    // An answer larger than the client's receive buffer.
    let description = "\"quoted\" ".repeat(400);
    let command = "\"x\" ".repeat(2000);
    let body = json!({"session_id": "slow", "command": command, "description": description});
    let reply = server.post("/api/approval/submit", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    eventually("the poll is answered", DEADLINE, &mut || {
        server.metric("askgate_longpolls_parked") == 0.0
    });
    eventually("the fan-out thread wrote it", DEADLINE, &mut || {
        server.metric("askgate_longpolls_answered_early_total") == 1.0
    });
    // Now the client reads: the pages, then the poll's answer.
    let mut reader = BufReader::new(socket);
    for _ in 0..pages {
        let (head, got) = read_response(&mut reader);
        assert_eq!(
            (head[0].as_str(), got.len()),
            ("HTTP/1.1 200 OK", page.len())
        );
    }
    let polled = server.get(pending).text();
    assert!(polled.len() > 16 * 1024, "{} bytes", polled.len());
    let (head, woken) = read_response(&mut reader);
    assert!(woken == polled, "{head:?}: {} bytes", woken.len());
    send_get(reader.get_mut(), pending);
    let (head, next) = read_response(&mut reader);
    assert!(next == polled, "the connection goes on: {head:?}, {next:?}");
}

/// A long-poll sent with more requests behind it on its connection, or
/// as HTTP/1.0, answered by the fan-out thread: each response once,
/// whole, in order, none interleaved with the next request's (HEAD is not
/// a poll: 405 on every API route).
#[test]
fn long_polls_answered_early_keep_pipelining_and_http_1_0_intact() {
    let server = TestServer::start(&[]);
    let pending = "/api/approval/pending?session_id=pipe";
    let version = server.get(pending).json()["version"].as_u64().unwrap();
    let poll = |http: &str, more: &str| {
        let mut socket = TcpStream::connect(server.addr).expect("connected");
        socket.set_read_timeout(Some(DEADLINE)).expect("a timeout");
        let request = format!(
            "GET {pending}&since={version}&wait=30 {http}\r\nHost: localhost\r\n\r\n{more}"
        );
        socket.write_all(request.as_bytes()).expect("sent");
        socket
    };
    let behind = format!("GET {pending} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let pipelined = poll("HTTP/1.1", &behind.repeat(2));
    let mut old = poll("HTTP/1.0", "");
    eventually("the polls are parked", DEADLINE, &mut || {
        server.metric("askgate_longpolls_parked") == 2.0
    });
    server.submit_approval("pipe", "ls -la", &[]);
    let polled = server.get(pending).text();
    let mut reader = BufReader::new(pipelined);
    for _ in 0..3 {
        let (head, body) = read_response(&mut reader);
        assert_eq!((head[0].as_str(), &body), ("HTTP/1.1 200 OK", &polled));
    }
    let mut rest = Vec::new();
    old.read_to_end(&mut rest).expect("closed after the answer");
    let text = String::from_utf8(rest).unwrap();
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    assert!(text.ends_with(&format!("\r\n\r\n{polled}")), "{text}");
    eventually("both polls answered early", DEADLINE, &mut || {
        server.metric("askgate_longpolls_answered_early_total") == 2.0
    });
}
