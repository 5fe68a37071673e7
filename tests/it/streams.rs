//! The SSE transport: exact first bytes, promptness, keepalives, bursts of
//! streams, and cleanup when a client goes away.

use crate::support::{DEADLINE, SseClient, TestServer, eventually};
use serde_json::json;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

#[test]
fn the_first_bytes_of_a_stream_are_exact_and_later_frames_arrive_at_once() {
    let server = TestServer::start(&[]);
    let mut socket = server.connect();
    let request = format!(
        "GET /api/approval/stream?session_id=b HTTP/1.1\r\nHost: {}\r\n\r\n",
        server.addr
    );
    socket.write_all(request.as_bytes()).unwrap();
    let frame = "event: initial\ndata: {\"pending\": null, \"pending_count\": 0}\n\n";
    let expected = format!(
        "HTTP/1.1 200 OK\r\n\
         Content-Type: text/event-stream; charset=utf-8\r\n\
         Cache-Control: no-cache\r\n\
         X-Accel-Buffering: no\r\n\
         Transfer-Encoding: chunked\r\n\
         \r\n\
         {:x}\r\n{frame}\r\n",
        frame.len()
    );
    let mut got = vec![0; expected.len()];
    socket
        .read_exact(&mut got)
        .expect("the head and the initial frame arrive without waiting");
    assert_eq!(String::from_utf8_lossy(&got), expected);

    let published = Instant::now();
    server.submit_approval("b", "make deploy", &[]);
    let mut size_line = Vec::new();
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut byte = [0];
    while !size_line.ends_with(b"\r\n") {
        socket
            .read_exact(&mut byte)
            .expect("a later frame within 1 s");
        size_line.push(byte[0]);
    }
    let size = usize::from_str_radix(String::from_utf8_lossy(&size_line).trim(), 16).unwrap();
    let mut chunk = vec![0; size + 2];
    socket
        .read_exact(&mut chunk)
        .expect("the whole frame within 1 s");
    assert!(published.elapsed() < Duration::from_secs(1));
    let text = String::from_utf8_lossy(&chunk);
    assert!(
        text.starts_with("event: approval\ndata: {\"pending\": {") && text.ends_with("\n\n\r\n"),
        "{text}"
    );
}

#[test]
fn a_per_kind_stream_needs_a_session() {
    let server = TestServer::start(&[]);
    for kind in ["clarify", "approval"] {
        let reply = server.get(&format!("/api/{kind}/stream"));
        assert_eq!(
            (reply.status, reply.json()),
            (400, json!({"error": "session_id is required"}))
        );
    }
}

#[test]
fn a_silent_stream_gets_a_keepalive_comment_after_the_interval() {
    let server = TestServer::start(&["--keepalive-secs", "1"]);
    let mut stream = server.stream("/api/clarify/stream?session_id=k");
    stream.expect_event("initial");
    let opened = Instant::now();
    let comment = stream
        .next_comment(Duration::from_secs(3))
        .expect("a keepalive within 3 s");
    let elapsed = opened.elapsed();
    assert_eq!(comment, "keepalive");
    assert!(
        elapsed >= Duration::from_millis(800) && elapsed < Duration::from_millis(2500),
        "{elapsed:?}"
    );
}

#[test]
fn a_burst_of_streams_is_all_served_and_ordinary_requests_still_answer() {
    // FACTS.md, tiny_http point 5: connections accepted back to back used to
    // queue behind pool threads busy with long-lived streams.
    let server = TestServer::start(&[]);
    let started = Instant::now();
    let mut sockets = Vec::new();
    for n in 0..64 {
        let mut socket = server.connect();
        let request = format!(
            "GET /api/clarify/stream?session_id=burst{n} HTTP/1.1\r\nHost: localhost\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).unwrap();
        sockets.push(socket);
    }
    for socket in &mut sockets {
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut received = Vec::new();
        let mut buffer = [0; 512];
        while !String::from_utf8_lossy(&received).contains("event: initial") {
            let n = socket.read(&mut buffer).expect("initial within 2 s");
            assert!(n > 0, "stream closed early");
            received.extend_from_slice(&buffer[..n]);
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "all initial frames took {:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let mut requests = Vec::new();
    for _ in 0..64 {
        let mut socket = server.connect();
        socket
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        requests.push(socket);
    }
    for mut socket in requests {
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut response = String::new();
        socket
            .read_to_string(&mut response)
            .expect("answered within 2 s");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "64 requests took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_client_that_goes_away_frees_its_subscriber_within_keepalive_and_a_second() {
    let server = TestServer::start(&["--keepalive-secs", "1"]);
    let stream = server.stream("/api/clarify/stream?session_id=gone");
    assert_eq!(server.metric("askgate_streams_open"), 1.0);
    assert_eq!(server.metric("askgate_subscribers"), 1.0);
    let closed = Instant::now();
    drop(stream);
    eventually("the stream is freed", Duration::from_secs(2), &mut || {
        server.metric("askgate_streams_open") == 0.0 && server.metric("askgate_subscribers") == 0.0
    });
    assert!(closed.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_silent_stream_whose_client_left_gives_its_place_back_within_about_a_second() {
    // No keepalive would be written for 30 s: the server sweeps the open
    // streams' sockets instead.
    let server = TestServer::start(&["--max-streams", "1"]);
    let stream = server.stream("/api/clarify/stream?session_id=gone");
    assert_eq!(
        server.get("/api/events").status,
        503,
        "the one place is taken"
    );
    let closed = Instant::now();
    drop(stream);
    eventually("the place is back", Duration::from_secs(3), &mut || {
        server.metric("askgate_streams_open") == 0.0
    });
    assert!(
        closed.elapsed() < Duration::from_secs(3),
        "{:?}",
        closed.elapsed()
    );
    let again = server.stream("/api/clarify/stream?session_id=back");
    assert_eq!(again.status, 200, "and a new stream takes it");
}

#[test]
fn a_stream_just_written_to_whose_client_left_gives_its_place_back_within_seconds() {
    // The sweep passes over a stream written to since the sweep before;
    // the one after finds its client gone, long before a keepalive.
    let server = TestServer::start(&["--max-streams", "1"]);
    let mut stream = server.stream("/api/clarify/stream?session_id=gone");
    stream.next_event(DEADLINE).expect("the initial frame");
    server.submit_clarify("gone", "still there?");
    let frame = stream.next_event(DEADLINE).expect("a frame");
    assert!(frame.data.contains("still there?"), "{}", frame.data);
    drop(stream);
    eventually("the place is back", Duration::from_secs(5), &mut || {
        server.metric("askgate_streams_open") == 0.0
    });
    let again = server.stream("/api/clarify/stream?session_id=back");
    assert_eq!(again.status, 200, "and a new stream takes it");
}

#[test]
fn http_1_0_clients_get_a_close_delimited_stream() {
    let server = TestServer::start(&[]);
    let mut socket = server.connect();
    socket
        .write_all(b"GET /api/clarify/stream?session_id=old HTTP/1.0\r\n\r\n")
        .unwrap();
    let mut got = vec![0; 200];
    let mut received = Vec::new();
    while !String::from_utf8_lossy(&received).contains("\n\n") {
        let n = socket.read(&mut got).expect("initial frame");
        assert!(n > 0);
        received.extend_from_slice(&got[..n]);
    }
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.starts_with("HTTP/1.0 200 OK\r\n") && !text.contains("chunked"),
        "{text}"
    );
    assert!(
        text.contains(
            "\r\n\r\nevent: initial\ndata: {\"pending\": null, \"pending_count\": 0}\n\n"
        ),
        "{text}"
    );
}

#[test]
fn shutdown_ends_streams_with_the_last_chunk() {
    let server = TestServer::start(&["--header-timeout-secs", "1"]);
    let mut stream: SseClient = server.stream("/api/clarify/stream?session_id=end");
    stream.expect_event("initial");
    let TestServer { server, .. } = server;
    let stopped = Instant::now();
    server.shutdown();
    stream.expect_end(Duration::from_secs(2));
    stream.expect_closed(Duration::from_secs(3));
    assert!(stopped.elapsed() < Duration::from_secs(2));
}

#[test]
fn a_per_kind_stream_outlives_the_stream_lifetime_that_ends_api_events() {
    // hermes-webui never reconnects a per-kind stream: ended, its page
    // falls back to polling for good (docs/PROTOCOL.md §4). /api/events,
    // whose clients reconnect and resume, keeps its lifetime.
    let server = TestServer::start(&["--stream-lifetime-secs", "1"]);
    let mut per_kind = server.stream("/api/approval/stream?session_id=life");
    per_kind.expect_event("initial");
    let mut events = server.stream("/api/events?session_id=life");
    events.events_until("ready");
    let opened = Instant::now();
    events.expect_end(Duration::from_secs(5));
    assert!(opened.elapsed() >= Duration::from_millis(900));
    server.submit_approval("life", "make deploy", &[]);
    let event = per_kind.expect_event("approval");
    assert_eq!(event.event, "approval", "the per-kind stream still pushes");
    assert!(!per_kind.ended);
}
