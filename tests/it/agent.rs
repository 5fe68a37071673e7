//! The agent API of docs/PROTOCOL.md §5: wait, cancel, server-side expiry (queue rule
//! 10) and outcome retention.

use crate::support::{DEADLINE, SseClient, TestServer, eventually};
use serde_json::{Value, json};
use std::thread;
use std::time::{Duration, Instant};

fn wait(server: &TestServer, kind: &str, session_id: &str, id: &str, timeout: f64) -> (u16, Value) {
    let reply = server.get(&format!(
        "/api/{kind}/wait?session_id={session_id}&{kind}_id={id}&timeout={timeout}"
    ));
    (reply.status, reply.outcome())
}

fn submit(server: &TestServer, session_id: &str, question: &str, timeout_seconds: i64) -> String {
    let body =
        json!({"session_id": session_id, "question": question, "timeout_seconds": timeout_seconds});
    server.post("/api/clarify/submit", &body).json()["clarify_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_wait_returns_within_a_second_of_the_answer() {
    let server = TestServer::start(&[]);
    let id = server.submit_clarify("w", "Ship it?");
    let (waited, answered) = thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let outcome = wait(&server, "clarify", "w", &id, 30.0);
            (outcome, Instant::now())
        });
        // The waiter is parked once the server counts it.
        eventually("the wait is parked", DEADLINE, &mut || {
            server.metric("askgate_longpolls_parked") == 1.0
        });
        let answered = Instant::now();
        server.post(
            "/api/clarify/respond",
            &json!({"session_id": "w", "clarify_id": id, "response": "yes"}),
        );
        (waiter.join().unwrap(), answered)
    });
    let ((status, body), returned) = waited;
    assert_eq!(
        (status, body),
        (200, json!({"status": "answered", "response": "yes"}))
    );
    assert!(
        returned - answered < Duration::from_secs(1),
        "returned {:?} after the answer",
        returned - answered
    );
}

#[test]
fn a_wait_with_nothing_happening_returns_pending_after_its_timeout() {
    let server = TestServer::start(&[]);
    let id = server.submit_clarify("w", "still there?");
    let started = Instant::now();
    assert_eq!(
        wait(&server, "clarify", "w", &id, 1.0),
        (200, json!({"status": "pending"}))
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert_eq!(
        wait(&server, "clarify", "w", &id, 0.0),
        (200, json!({"status": "pending"})),
        "timeout 0 polls"
    );
}

#[test]
fn an_answer_given_before_any_wait_is_collected_later_until_the_result_ttl() {
    let server = TestServer::start(&["--result-ttl", "1"]);
    let id = server.submit_clarify("early", "q?");
    let approval = server.submit_approval("early", "ls", &[])["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    server.post(
        "/api/clarify/respond",
        &json!({"session_id": "early", "response": "already"}),
    );
    server.post(
        "/api/approval/respond",
        &json!({"session_id": "early", "choice": "once"}),
    );
    assert_eq!(
        wait(&server, "clarify", "early", &id, 5.0),
        (200, json!({"status": "answered", "response": "already"}))
    );
    assert_eq!(
        wait(&server, "approval", "early", &approval, 5.0),
        (200, json!({"status": "answered", "choice": "once"}))
    );
    assert_eq!(
        wait(&server, "clarify", "early", &id, 0.0).0,
        200,
        "collecting does not consume"
    );
    eventually(
        "the outcome passes retention",
        Duration::from_secs(4),
        &mut || wait(&server, "clarify", "early", &id, 0.0).0 == 404,
    );
    assert_eq!(
        wait(&server, "clarify", "early", &id, 0.0).1,
        json!({"error": "no such clarify"})
    );
}

#[test]
fn an_expired_prompt_leaves_its_queue_and_every_stream_and_waiter_learns_it() {
    let server = TestServer::start(&[]);
    let mut streams: Vec<SseClient> = (0..2)
        .map(|_| {
            let mut stream = server.stream("/api/clarify/stream?session_id=x");
            stream.expect_event("initial");
            stream
        })
        .collect();
    let mut multiplexed = server.stream("/api/events");
    multiplexed.events_until("ready");
    let submitted = Instant::now();
    let short = submit(&server, "x", "short-lived?", 1);
    let long = submit(&server, "x", "long-lived?", 0);
    let (status, outcome) = wait(&server, "clarify", "x", &short, 10.0);
    assert_eq!((status, outcome), (200, json!({"status": "expired"})));
    assert!(
        submitted.elapsed() < Duration::from_secs(2),
        "expired after {:?}",
        submitted.elapsed()
    );
    for stream in &mut streams {
        let counts: Vec<u64> = (0..3)
            .map(|_| stream.expect_event("clarify").count())
            .collect();
        assert_eq!(counts, [1, 2, 1]);
    }
    let frames: Vec<Value> = (0..3)
        .map(|_| multiplexed.expect_event("clarify").json())
        .collect();
    assert_eq!(
        frames[2]["pending"]["clarify_id"].as_str(),
        Some(&*long),
        "the next head surfaces"
    );
    assert!(submitted.elapsed() < Duration::from_secs(2));
    let poll = server.get("/api/clarify/pending?session_id=x").json();
    assert_eq!(
        (
            poll["pending"]["clarify_id"].as_str(),
            poll["pending"]["expires_at"].clone()
        ),
        (Some(&*long), Value::Null),
        "a prompt that never expires has no deadline"
    );
}

#[test]
fn a_queue_of_prompts_with_different_expiries_empties_in_expiry_order() {
    let server = TestServer::start(&[]);
    let mut stream = server.stream("/api/clarify/stream?session_id=order");
    stream.expect_event("initial");
    let late = submit(&server, "order", "late", 3);
    let early = submit(&server, "order", "early", 1);
    let middle = submit(&server, "order", "middle", 2);
    let mut heads = Vec::new();
    for _ in 0..3 {
        stream.expect_event("submit");
    }
    for _ in 0..3 {
        let frame = stream.expect_event("expiry").json();
        heads.push((
            frame["pending"]["question"].as_str().map(str::to_string),
            frame["pending_count"].as_u64().unwrap(),
        ));
    }
    let expected = vec![
        (Some("late".to_string()), 2),
        (Some("late".to_string()), 1),
        (None, 0),
    ];
    assert_eq!(heads, expected, "early, then middle, then late leave");
    for id in [early, middle, late] {
        assert_eq!(
            wait(&server, "clarify", "order", &id, 0.0).1,
            json!({"status": "expired"})
        );
    }
}

#[test]
fn cancel_one_or_all_and_what_streams_see() {
    let server = TestServer::start(&[]);
    let ids: Vec<String> = (0..3)
        .map(|n| server.submit_clarify("c", &format!("q{n}")))
        .collect();
    let mut stream = server.stream("/api/clarify/stream?session_id=c");
    assert_eq!(stream.expect_event("initial").count(), 3);
    let one = server.post(
        "/api/clarify/cancel",
        &json!({"session_id": "c", "clarify_id": ids[1]}),
    );
    assert_eq!(one.json(), json!({"ok": true, "cancelled": [ids[1]]}));
    let frame = stream.expect_event("after one").json();
    assert_eq!(
        (
            frame["pending"]["clarify_id"].as_str(),
            frame["pending_count"].as_u64()
        ),
        (Some(&*ids[0]), Some(2))
    );
    assert_eq!(
        wait(&server, "clarify", "c", &ids[1], 0.0).1,
        json!({"status": "cancelled"})
    );
    let again = server.post(
        "/api/clarify/cancel",
        &json!({"session_id": "c", "clarify_id": ids[1]}),
    );
    assert_eq!(
        (again.status, again.json()["stale"].as_bool()),
        (409, Some(true)),
        "a stale cancel changes nothing"
    );

    let all = server.post("/api/clarify/cancel", &json!({"session_id": "c"}));
    assert_eq!(
        all.json(),
        json!({"ok": true, "cancelled": [ids[0], ids[2]]})
    );
    let frames: Vec<Value> = (0..2)
        .map(|_| stream.expect_event("after all").json())
        .collect();
    assert_eq!(frames[0]["pending"]["clarify_id"].as_str(), Some(&*ids[2]));
    assert_eq!(frames[1], json!({"pending": null, "pending_count": 0}));
    for id in [&ids[0], &ids[2]] {
        assert_eq!(
            wait(&server, "clarify", "c", id, 0.0).1,
            json!({"status": "cancelled"})
        );
    }
    let nothing = server.post("/api/approval/cancel", &json!({"session_id": "c"}));
    assert_eq!(nothing.json(), json!({"ok": true, "cancelled": []}));
}

#[test]
fn a_cancelled_approval_wakes_its_waiter() {
    let server = TestServer::start(&[]);
    let id = server.submit_approval("ca", "reboot", &[])["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    thread::scope(|scope| {
        let waiter = scope.spawn(|| wait(&server, "approval", "ca", &id, 30.0));
        eventually("the wait is parked", DEADLINE, &mut || {
            server.metric("askgate_longpolls_parked") == 1.0
        });
        server.post(
            "/api/approval/cancel",
            &json!({"session_id": "ca", "approval_id": id}),
        );
        assert_eq!(
            waiter.join().unwrap(),
            (200, json!({"status": "cancelled"}))
        );
    });
}

#[test]
fn bad_input_to_the_agent_routes_is_a_clear_4xx_and_changes_nothing() {
    let server = TestServer::start(&[]);
    let clarify = server.submit_clarify("b", "q?");
    let approval = server.submit_approval("b", "ls", &[])["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    let version = server.metric("askgate_version");
    let gets = [
        (
            "/api/clarify/wait?session_id=b".to_string(),
            400,
            json!({"error": "clarify_id is required"}),
        ),
        (
            format!("/api/clarify/wait?clarify_id={clarify}"),
            400,
            json!({"error": "session_id is required"}),
        ),
        (
            "/api/clarify/wait?session_id=b&clarify_id=XYZ".into(),
            400,
            json!({"error": "invalid clarify_id: 12 lowercase hex characters"}),
        ),
        (
            format!("/api/clarify/wait?session_id=b&clarify_id={clarify}&timeout=61"),
            400,
            json!({"error": "timeout must be between 0 and 60 seconds"}),
        ),
        (
            format!("/api/clarify/wait?session_id=b&clarify_id={clarify}&timeout=1e9"),
            400,
            json!({"error": "timeout must be between 0 and 60 seconds"}),
        ),
        (
            format!("/api/clarify/wait?session_id=b&clarify_id={clarify}&timeout=-1"),
            400,
            json!({"error": "timeout must be between 0 and 60 seconds"}),
        ),
        (
            format!("/api/clarify/wait?session_id=b&clarify_id={clarify}&timeout=soon"),
            400,
            json!({"error": "invalid timeout: \"soon\""}),
        ),
        (
            "/api/clarify/wait?session_id=b&clarify_id=0123456789ab".into(),
            404,
            json!({"error": "no such clarify"}),
        ),
        (
            format!("/api/clarify/wait?session_id=other&clarify_id={clarify}"),
            404,
            json!({"error": "no such clarify"}),
        ),
        (
            format!("/api/approval/wait?session_id=b&approval_id={clarify}"),
            400,
            json!({"error": "invalid approval_id: 32 lowercase hex characters"}),
        ),
        (
            format!(
                "/api/clarify/wait?session_id=b&clarify_id={}",
                &approval[..12]
            ),
            404,
            json!({"error": "no such clarify"}),
        ),
    ];
    for (path, status, expected) in gets {
        let reply = server.get(&path);
        assert_eq!(
            (reply.status, reply.json()),
            (status, expected),
            "GET {path}"
        );
    }
    let posts = [
        (
            "/api/clarify/cancel",
            json!({}),
            400,
            json!({"error": "session_id is required"}),
        ),
        (
            "/api/clarify/cancel",
            json!({"session_id": "b", "clarify_id": 5}),
            400,
            json!({"error": "clarify_id must be a string"}),
        ),
        (
            "/api/clarify/cancel",
            json!({"session_id": "b", "clarify_id": approval}),
            409,
            json!({"ok": false, "error": "clarify is no longer pending", "stale": true}),
        ),
        (
            "/api/approval/cancel",
            json!({"session_id": "b", "approval_id": clarify}),
            409,
            json!({"ok": false, "error": "approval is no longer pending", "stale": true}),
        ),
        (
            "/api/clarify/submit",
            json!({"session_id": "b", "question": "q", "timeout_seconds": 1e12}),
            400,
            json!({"error": "timeout_seconds must be a whole number of seconds, at most 2592000"}),
        ),
    ];
    for (path, body, status, expected) in posts {
        let reply = server.post(path, &body);
        assert_eq!(
            (reply.status, reply.json()),
            (status, expected),
            "POST {path} {body}"
        );
    }
    assert_eq!(server.metric("askgate_version"), version, "nothing changed");
    assert_eq!(
        server.get("/api/clarify/pending?session_id=b").json()["pending_count"],
        1
    );
}

#[test]
fn an_answer_wakes_only_the_waits_for_its_prompt() {
    let server = TestServer::start(&["--max-streams", "200"]);
    let ids: Vec<String> = (0..100)
        .map(|n| server.submit_clarify(&format!("parked{n}"), "still there?"))
        .collect();
    thread::scope(|scope| {
        let waiters: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| {
                let server = &server;
                scope.spawn(move || wait(server, "clarify", &format!("parked{n}"), id, 30.0))
            })
            .collect();
        eventually("every wait is parked", DEADLINE, &mut || {
            server.metric("askgate_longpolls_parked") == 100.0
        });
        let before = server.metric("askgate_wait_wakeups_total");
        for n in 0..50 {
            let id = server.submit_clarify("busy", &format!("q{n}"));
            let body = json!({"session_id": "busy", "clarify_id": id, "response": "ok"});
            assert_eq!(server.post("/api/clarify/respond", &body).status, 200);
        }
        let woken = server.metric("askgate_wait_wakeups_total") - before;
        assert!(
            woken < 10.0,
            "50 unrelated answers woke parked waits {woken} times"
        );
        for (n, id) in ids.iter().enumerate() {
            let body =
                json!({"session_id": format!("parked{n}"), "clarify_id": id, "response": "yes"});
            server.post("/api/clarify/respond", &body);
        }
        for waiter in waiters {
            assert_eq!(waiter.join().unwrap().1["status"], "answered");
        }
    });
}
