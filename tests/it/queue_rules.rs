//! Queue rules 1 to 9 of docs/PROTOCOL.md §2, one test each (rule 10 lives in `agent`),
//! plus churn: streams opened and closed while prompts come and go.

use crate::support::{DEADLINE, Event, SseClient, TestServer, within};
use serde_json::{Value, json};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

const SHORT: Duration = Duration::from_millis(300);

fn clarify_stream(server: &TestServer, session_id: &str) -> SseClient {
    let mut stream = server.stream(&format!("/api/clarify/stream?session_id={session_id}"));
    assert_eq!(stream.status, 200, "{}", stream.head);
    assert_eq!(stream.expect_event("initial").event, "initial");
    stream
}

fn pending(server: &TestServer, kind: &str, session_id: &str) -> Value {
    server
        .get(&format!("/api/{kind}/pending?session_id={session_id}"))
        .json()
}

#[test]
fn rule1_concurrent_submits_reach_every_stream_as_counts_1_to_n_in_order() {
    const SUBMITTERS: usize = 8;
    const EACH: usize = 4;
    let server = TestServer::start(&["--subscriber-buffer", "64"]);
    let mut streams: Vec<SseClient> = (0..3).map(|_| clarify_stream(&server, "r1")).collect();
    let mut multiplexed = server.stream("/api/events?session_id=r1");
    multiplexed.events_until("ready");
    let barrier = Arc::new(Barrier::new(SUBMITTERS));
    thread::scope(|scope| {
        for submitter in 0..SUBMITTERS {
            let (server, barrier) = (&server, barrier.clone());
            scope.spawn(move || {
                barrier.wait();
                for n in 0..EACH {
                    server.submit_clarify("r1", &format!("question {submitter}.{n}"));
                }
            });
        }
    });
    let expected: Vec<u64> = (1..=(SUBMITTERS * EACH) as u64).collect();
    for stream in &mut streams {
        let counts: Vec<u64> = expected
            .iter()
            .map(|_| stream.expect_event("clarify").count())
            .collect();
        assert_eq!(counts, expected);
    }
    let frames: Vec<Event> = expected
        .iter()
        .map(|_| multiplexed.expect_event("clarify"))
        .collect();
    let counts: Vec<u64> = frames.iter().map(Event::count).collect();
    assert_eq!(counts, expected, "the multiplexed stream too");
    let versions: Vec<u64> = frames
        .iter()
        .map(|f| f.id.as_ref().unwrap().parse().unwrap())
        .collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions increase: {versions:?}"
    );
}

#[test]
fn rule2_frames_and_polls_carry_the_head_not_the_newest() {
    let server = TestServer::start(&[]);
    let mut stream = clarify_stream(&server, "r2");
    let first = server.submit_clarify("r2", "first?");
    server.submit_clarify("r2", "second?");
    stream.expect_event("first frame");
    let frame = stream.expect_event("second frame").json();
    assert_eq!(
        (
            frame["pending"]["clarify_id"].as_str(),
            frame["pending_count"].as_u64()
        ),
        (Some(&*first), Some(2))
    );
    assert_eq!(frame["pending"]["question"], "first?");
    let poll = pending(&server, "clarify", "r2");
    assert_eq!(
        (
            poll["pending"]["clarify_id"].as_str(),
            poll["pending_count"].as_u64()
        ),
        (Some(&*first), Some(2))
    );
}

#[test]
fn rule3_removing_the_head_surfaces_the_next_at_once() {
    let server = TestServer::start(&[]);
    let first = server.submit_clarify("r3", "first?");
    let second = server.submit_clarify("r3", "second?");
    let mut stream = clarify_stream(&server, "r3");
    let answer = json!({"session_id": "r3", "clarify_id": first, "response": "ok"});
    assert_eq!(server.post("/api/clarify/respond", &answer).status, 200);
    let frame = stream.expect_event("next head").json();
    assert_eq!(frame["pending"]["clarify_id"].as_str(), Some(&*second));
    assert_eq!(frame["pending_count"], 1);
    assert_eq!(
        pending(&server, "clarify", "r3")["pending"]["clarify_id"].as_str(),
        Some(&*second)
    );
}

#[test]
fn rule4_an_emptied_queue_is_sent_as_null_and_zero() {
    let server = TestServer::start(&[]);
    let id = server.submit_clarify("r4", "only?");
    let mut stream = clarify_stream(&server, "r4");
    let mut approvals = server.stream("/api/approval/stream?session_id=r4");
    approvals.expect_event("initial");
    let approval = server.submit_approval("r4", "ls", &[]);
    approvals.expect_event("approval");
    server.post(
        "/api/clarify/respond",
        &json!({"session_id": "r4", "clarify_id": id, "response": "x"}),
    );
    let frame = stream.expect_event("empty state");
    assert_eq!(
        (frame.event.as_str(), frame.data.as_str()),
        ("clarify", r#"{"pending": null, "pending_count": 0}"#)
    );
    let body =
        json!({"session_id": "r4", "approval_id": approval["approval_id"], "choice": "deny"});
    server.post("/api/approval/respond", &body);
    let frame = approvals.expect_event("empty state");
    assert_eq!(
        (frame.event.as_str(), frame.data.as_str()),
        ("approval", r#"{"pending": null, "pending_count": 0}"#)
    );
}

#[test]
fn rule5_subscribe_and_snapshot_are_atomic_under_concurrent_submits() {
    // Streams open while submits race them: each stream's initial count and
    // the frames after it must continue without a gap or a repeat.
    const SUBMITS: u64 = 40;
    let server = TestServer::start(&["--subscriber-buffer", "64"]);
    let streams = thread::scope(|scope| {
        let submitter = scope.spawn(|| {
            for n in 0..SUBMITS {
                server.submit_clarify("r5", &format!("q{n}"));
            }
        });
        let opener = scope.spawn(|| {
            let mut opened = Vec::new();
            for _ in 0..10 {
                let mut stream = server.stream("/api/clarify/stream?session_id=r5");
                let initial = stream.expect_event("initial").count();
                opened.push((initial, stream));
            }
            opened
        });
        submitter.join().unwrap();
        opener.join().unwrap()
    });
    for (initial, mut stream) in streams {
        let counts: Vec<u64> = (initial..SUBMITS)
            .map(|_| stream.expect_event("clarify").count())
            .collect();
        assert_eq!(
            counts,
            (initial + 1..=SUBMITS).collect::<Vec<_>>(),
            "after initial {initial}"
        );
        assert!(
            stream.next_event(SHORT).is_none(),
            "nothing after the last change"
        );
    }
}

#[test]
fn rule5_a_stream_opened_on_a_non_empty_queue_gets_its_initial_state() {
    // hermes-webui's clarify handler deadlocked here: lock taken twice.
    let server = TestServer::start(&[]);
    let id = server.submit_clarify("r5b", "pending already?");
    let mut stream = server.stream("/api/clarify/stream?session_id=r5b");
    let initial = stream.expect_event("initial").json();
    assert_eq!(initial["pending"]["clarify_id"].as_str(), Some(&*id));
    assert_eq!(
        server.get("/healthz").status,
        200,
        "and the server still answers"
    );
}

#[test]
fn rule6_a_stream_only_sees_the_sessions_it_watches() {
    let server = TestServer::start(&[]);
    let mut mine = clarify_stream(&server, "mine");
    let mut named = server.stream("/api/events?session_id=mine");
    named.events_until("ready");
    server.submit_clarify("theirs", "not for you");
    server.submit_approval("mine", "not a clarify", &[]);
    server.submit_clarify("mine", "for you");
    let frame = mine.expect_event("own frame").json();
    assert_eq!(frame["pending"]["question"], "for you");
    let approval = named.expect_event("approval frame").json();
    assert_eq!(
        (
            approval["session_id"].as_str(),
            approval["pending"]["command"].as_str()
        ),
        (Some("mine"), Some("not a clarify"))
    );
    let clarify = named.expect_event("clarify frame").json();
    assert_eq!(
        (
            clarify["session_id"].as_str(),
            clarify["pending"]["question"].as_str()
        ),
        (Some("mine"), Some("for you"))
    );
    assert!(mine.next_event(SHORT).is_none() && named.next_event(SHORT).is_none());
}

/// A stream whose client stops reading while `changes` happen, then reads
/// again, must end on the true final state, with what it did see in order.
pub fn slow_subscriber_ends_on_the_true_state(path: &str) {
    let server = TestServer::start(&["--max-pending", "1000", "--write-timeout-secs", "60"]);
    let mut stream = server.stream(path);
    stream.next_event(DEADLINE).expect("a first frame");
    // Every frame carries the head, so a big head makes every frame big:
    // megabytes in all, far more than the socket buffers hold.
    let big = json!({"session_id": "slow", "question": "x".repeat(4000),
                     "choices": (0..16).map(|n| format!("{n:0>250}")).collect::<Vec<_>>()});
    assert_eq!(server.post("/api/clarify/submit", &big).status, 200);
    for n in 1..997 {
        server.submit_clarify("slow", &format!("q{n}"));
    }
    for _ in 0..3 {
        server.post(
            "/api/clarify/respond",
            &json!({"session_id": "slow", "response": "done"}),
        );
    }
    // 1,000 changes: counts 1..997 then 996, 995, 994.
    let truth: Vec<u64> = (1..=997).chain([996, 995, 994]).collect();
    let expected = pending(&server, "clarify", "slow");
    assert!(
        server.metric("askgate_resyncs_total") >= 1.0,
        "the channel overflowed and was marked, not grown"
    );
    let mut seen = Vec::new();
    loop {
        let frame = stream.expect_event("catching up");
        if frame.event != "clarify" {
            continue;
        }
        let data = frame.json();
        if data.get("session_id").is_some_and(|s| s != "slow") {
            continue;
        }
        seen.push(frame.count());
        if data["pending"] == expected["pending"]
            && data["pending_count"] == expected["pending_count"]
        {
            break;
        }
    }
    let mut truth_left = truth.iter();
    for count in &seen {
        assert!(
            truth_left.any(|t| t == count),
            "count {count} out of order in {seen:?}"
        );
    }
    assert!(
        stream.next_event(SHORT).is_none(),
        "nothing after the final state"
    );
}

#[test]
fn rule7_a_slow_per_kind_stream_ends_on_the_true_state() {
    slow_subscriber_ends_on_the_true_state("/api/clarify/stream?session_id=slow");
}

#[test]
fn rule8_a_stale_id_never_resolves_another_prompt() {
    let server = TestServer::start(&[]);
    let old = server.submit_clarify("r8", "old?");
    server.post(
        "/api/clarify/respond",
        &json!({"session_id": "r8", "clarify_id": old, "response": "a"}),
    );
    let current = server.submit_clarify("r8", "current?");
    let mut stream = clarify_stream(&server, "r8");
    let stale = server.post(
        "/api/clarify/respond",
        &json!({"session_id": "r8", "clarify_id": old, "response": "b"}),
    );
    assert_eq!(stale.status, 409);
    let poll = pending(&server, "clarify", "r8");
    assert_eq!(
        (
            poll["pending"]["clarify_id"].as_str(),
            poll["pending_count"].as_u64()
        ),
        (Some(&*current), Some(1))
    );

    let old = server.submit_approval("r8", "old", &[])["approval_id"].clone();
    server.post(
        "/api/approval/respond",
        &json!({"session_id": "r8", "approval_id": old, "choice": "deny"}),
    );
    let current = server.submit_approval("r8", "current", &[])["approval_id"].clone();
    let stale = server.post(
        "/api/approval/respond",
        &json!({"session_id": "r8", "approval_id": old, "choice": "once"}),
    );
    assert_eq!(stale.json(), json!({"ok": false, "choice": "once"}));
    assert_eq!(
        pending(&server, "approval", "r8")["pending"]["approval_id"],
        current
    );
    assert!(
        stream.next_event(SHORT).is_none(),
        "no clarify frame for a stale respond"
    );
}

#[test]
fn rule9_a_repeat_of_the_last_clarify_is_deduplicated_without_a_frame() {
    let server = TestServer::start(&[]);
    let mut stream = clarify_stream(&server, "r9");
    let ask = |question: &str, choices: &[&str]| {
        server
            .post(
                "/api/clarify/submit",
                &json!({"session_id": "r9", "question": question, "choices": choices}),
            )
            .json()
    };
    let first = ask("which db?", &["pg", "sqlite"]);
    assert_eq!(
        (first["deduped"].as_bool(), first["pending_count"].as_u64()),
        (Some(false), Some(1))
    );
    let again = ask("which db?", &["pg", "sqlite"]);
    assert_eq!(
        again,
        json!({"clarify_id": first["clarify_id"], "pending_count": 1, "deduped": true})
    );
    stream.expect_event("first submit");
    assert!(
        stream.next_event(SHORT).is_none(),
        "a deduplicated submit sends no frame"
    );
    let other_choices = ask("which db?", &["pg"]);
    assert_eq!(
        (
            other_choices["deduped"].as_bool(),
            other_choices["pending_count"].as_u64()
        ),
        (Some(false), Some(2))
    );
    // Only the last entry counts: the first question again is new.
    let first_again = ask("which db?", &["pg", "sqlite"]);
    assert_eq!(
        (
            first_again["deduped"].as_bool(),
            first_again["pending_count"].as_u64()
        ),
        (Some(false), Some(3))
    );
}

#[test]
fn churn_of_streams_under_submits_and_responds_never_deadlocks_or_loses_the_final_state() {
    within(Duration::from_secs(60), || {
        let server = TestServer::start(&["--subscriber-buffer", "4"]);
        let sessions = ["c0", "c1", "c2", "c3"];
        let survivors = thread::scope(|scope| {
            for worker in 0..8 {
                let server = &server;
                scope.spawn(move || {
                    let session_id = sessions[worker % sessions.len()];
                    for n in 0..40 {
                        server.submit_clarify(session_id, &format!("w{worker} q{n}"));
                        if n % 3 != 2 {
                            server.post(
                                "/api/clarify/respond",
                                &json!({"session_id": session_id, "response": "ok"}),
                            );
                        }
                    }
                });
            }
            let mut survivors = Vec::new();
            for n in 0..200 {
                let session_id = sessions[n % sessions.len()];
                let mut stream =
                    server.stream(&format!("/api/clarify/stream?session_id={session_id}"));
                let initial = stream.expect_event("initial").json();
                if n % 20 == 0 {
                    survivors.push((session_id, stream, initial));
                }
            }
            survivors
        });
        for (session_id, mut stream, initial) in survivors {
            let truth = pending(&server, "clarify", session_id);
            let expected =
                json!({"pending": truth["pending"], "pending_count": truth["pending_count"]});
            let mut last = initial;
            while last != expected {
                last = stream
                    .expect_event(&format!("the final state of {session_id}"))
                    .json();
            }
            assert!(
                stream.next_event(SHORT).is_none(),
                "nothing after the final state of {session_id}"
            );
        }
    });
}
