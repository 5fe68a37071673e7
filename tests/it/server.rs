//! The server as a whole: it keeps accepting after sitting idle longer than
//! its socket timeouts, and slow or idle connections are cut off.

use crate::support::TestServer;
use std::io::{Read, Write};
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
