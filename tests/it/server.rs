//! The server as a whole: it keeps accepting after sitting idle longer than
//! its socket timeouts, slow or idle connections are cut off, and a
//! connection left open across a shutdown holds nothing of the server.

use crate::support::{TempDir, TestServer, read_one_response};
use std::io::{BufReader, Read, Write};
use std::time::{Duration, Instant};

#[test]
fn still_accepts_after_idle_longer_than_its_socket_timeouts() {
    // FACTS.md, tiny_http point 4: a receive timeout on the listener used to
    // end tiny_http's accept loop after that long without a connection.
    let server = TestServer::start(&["--header-timeout-secs", "1", "--write-timeout-secs", "1"]);
    assert_eq!(server.get("/healthz").status, 200);
    // Idleness is what is tested here, so this one test does wait on purpose.
    std::thread::sleep(Duration::from_secs(3) + Duration::from_millis(200));
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(server.get("/healthz").text(), "ok");
}

#[test]
fn slow_request_headers_and_idle_connections_are_cut_off() {
    let server = TestServer::start(&["--header-timeout-secs", "1"]);
    let mut slow = server.connect();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "cut off after {elapsed:?}"
    );
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));

    let mut idle = server.connect();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let mut response = Vec::new();
    let _ = idle.read_to_end(&mut response);
    assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "an idle keep-alive connection closes"
    );
}

#[test]
fn the_page_and_health_are_served() {
    let server = TestServer::start(&[]);
    let page = server.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let policy = page
        .header("content-security-policy")
        .expect("a content security policy");
    assert!(
        policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"),
        "{policy}"
    );
    assert!(
        page.text().contains("<html")
            || page.text().contains("<!doctype html")
            || page.text().contains("<!DOCTYPE html")
    );
    let health = server.get("/healthz");
    assert_eq!((health.status, health.text()), (200, "ok".to_string()));
    let metrics = server.get("/metrics").text();
    for name in [
        "askgate_streams_open 0",
        "askgate_longpolls_parked 0",
        "askgate_frames_sent_total",
    ] {
        assert!(metrics.contains(name), "{name} in {metrics}");
    }
}

#[test]
fn a_keep_alive_connection_open_across_a_shutdown_holds_nothing_and_gets_a_503() {
    let dir = TempDir::new("keep-alive-shutdown");
    let data = dir.path.to_str().unwrap().to_string();
    let flags = ["--data-dir", data.as_str(), "--header-timeout-secs", "60"];
    let server = TestServer::start(&flags);
    let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut socket = server.connect();
    let mut reader = BufReader::new(socket.try_clone().unwrap());
    socket.write_all(request).unwrap();
    assert_eq!(read_one_response(&mut reader), "HTTP/1.1 200 OK");
    server.server.shutdown();
    // Its connection's thread still waits for a next request, and holds
    // nothing: the data directory (its lock) is free for the next server.
    let next = TestServer::start(&flags);
    assert_eq!(next.get("/healthz").text(), "ok");
    // A request read after the shutdown is refused, and its connection closes.
    socket.write_all(request).unwrap();
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert!(rest.starts_with("HTTP/1.1 503"), "{rest}");
    assert!(rest.contains("shutting down"), "{rest}");
}
