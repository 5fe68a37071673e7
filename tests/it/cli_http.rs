//! The `clarify` and `approve` commands over real HTTP as it comes through a
//! reverse proxy: under a sub-path, chunked, redirected, as an HTML error
//! page, busy with `Retry-After`, and over https with a private CA.

use crate::binary::{ask_at, askgate, finish, pending_head};
use crate::support::proxy::{Proxy, tls_dir};
use crate::support::{DEADLINE, TestServer, eventually};
use serde_json::json;
use std::net::TcpListener;
use std::process::Output;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// Answers the clarify pending in `session_id` through the server itself.
fn answer_clarify(server: &TestServer, session_id: &str, response: &str) {
    let head = pending_head(server, "clarify", session_id);
    let body =
        json!({"session_id": session_id, "clarify_id": head["clarify_id"], "response": response});
    assert_eq!(server.post("/api/clarify/respond", &body).status, 200);
}

#[test]
fn clarify_through_a_proxy_under_a_sub_path_with_chunked_bodies() {
    let server = TestServer::start(&[]);
    let proxy = Proxy::start(server.addr);
    let child = ask_at(
        &proxy.url("/askgate/"),
        askgate().args(["clarify", "--session", "sub", "Through the proxy?"]),
    );
    answer_clarify(&server, "sub", "yes, chunked");
    let output = finish(child, DEADLINE);
    assert_eq!(
        (output.status.code(), stdout(&output)),
        (Some(0), "yes, chunked\n".to_string()),
        "{}",
        stderr(&output)
    );
    let seen = proxy.seen();
    let targets: Vec<&str> = seen.iter().map(|seen| seen.target.as_str()).collect();
    assert_eq!(targets[0], "/askgate/api/clarify/submit", "{targets:?}");
    assert!(
        targets[1..].iter().all(
            |target| target.starts_with("/askgate/api/clarify/wait?session_id=sub&clarify_id=")
        ),
        "{targets:?}"
    );
}

#[test]
fn redirects_are_followed_and_the_token_only_goes_to_the_same_host() {
    let server = TestServer::start(&[]);
    for (prefix, token_follows) in [("/old", true), ("/away", false)] {
        let proxy = Proxy::start(server.addr);
        let session_id = &prefix[1..];
        let child = ask_at(
            &proxy.url(prefix),
            askgate()
                .args(["approve", "--session", session_id, "--command", "reboot"])
                .env("ASKGATE_TOKEN", "agent-token"),
        );
        let head = pending_head(&server, "approval", session_id);
        let body =
            json!({"session_id": session_id, "approval_id": head["approval_id"], "choice": "once"});
        assert_eq!(server.post("/api/approval/respond", &body).status, 200);
        let output = finish(child, DEADLINE);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{prefix}: {}",
            stderr(&output)
        );
        let seen = proxy.seen();
        let calls: Vec<(&str, &str)> = seen
            .iter()
            .map(|seen| (seen.method.as_str(), seen.target.split('?').next().unwrap()))
            .collect();
        let submit = format!("{prefix}/api/approval/submit");
        let wait = format!("{prefix}/api/approval/wait");
        assert_eq!(
            calls[..4],
            [
                ("POST", submit.as_str()),
                ("POST", "/askgate/api/approval/submit"),
                ("GET", wait.as_str()),
                ("GET", "/askgate/api/approval/wait"),
            ],
            "a redirected POST stays a POST"
        );
        let bearer = Some("Bearer agent-token".to_string());
        for seen in &seen {
            let expected = match seen.target.starts_with(prefix) {
                true => &bearer,
                false if token_follows => &bearer,
                false => &None,
            };
            assert_eq!(&seen.authorization, expected, "{seen:?}");
        }
    }
}

/// A loopback listener that answers every request with a `307` to the
/// same path under `/askgate` at `target`, reading each request whole first.
fn redirect_every_request_to(target: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            socket.set_read_timeout(Some(DEADLINE)).unwrap();
            let mut reader = BufReader::new(&socket);
            let (mut line, mut length) = (String::new(), 0);
            let _ = reader.read_line(&mut line);
            let path = line.split(' ').nth(1).unwrap_or("/").to_string();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let _ = reader.take(length).read_to_end(&mut Vec::new());
            let reply = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{target}/askgate{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = (&socket).write_all(reply.as_bytes());
        }
    });
    addr
}

#[test]
fn the_token_never_follows_a_redirect_to_another_port() {
    // Another port on the same host may be another program; on loopback,
    // any local user's.
    let server = TestServer::start(&[]);
    let other_port = Proxy::start(server.addr);
    let redirector = redirect_every_request_to(other_port.addr);
    let child = ask_at(
        &format!("http://{redirector}"),
        askgate()
            .args(["approve", "--session", "port", "--command", "reboot"])
            .env("ASKGATE_TOKEN", "agent-token-0123456789"),
    );
    let head = pending_head(&server, "approval", "port");
    let body = json!({"session_id": "port", "approval_id": head["approval_id"], "choice": "once"});
    assert_eq!(server.post("/api/approval/respond", &body).status, 200);
    let output = finish(child, DEADLINE);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let seen = other_port.seen();
    let methods: Vec<&str> = seen.iter().map(|seen| seen.method.as_str()).collect();
    assert!(
        methods.contains(&"POST") && methods.contains(&"GET"),
        "{methods:?}"
    );
    for seen in &seen {
        assert_eq!(seen.authorization, None, "{seen:?}");
    }
}

#[test]
fn an_answer_that_is_not_json_exits_2_naming_the_status() {
    let gone = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = Proxy::start(gone);
    for (path, status) in [
        ("/askgate", "502 Bad Gateway"),
        ("/elsewhere", "404 Not Found"),
    ] {
        let output = finish(
            ask_at(
                &proxy.url(path),
                askgate().args(["clarify", "--session", "s", "q"]),
            ),
            DEADLINE,
        );
        let stderr = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{path}: {stderr}");
        assert!(
            stderr.contains(status) && stderr.contains("not JSON") && stderr.contains("<html>"),
            "{path}: {stderr}"
        );
    }
}

#[test]
fn a_busy_wait_honours_retry_after_within_retry_secs() {
    let server = TestServer::start(&[]);
    let proxy = Proxy::start(server.addr);
    proxy.busy_waits.store(1, Ordering::Release);
    let child = ask_at(
        &proxy.url("/askgate"),
        askgate().args(["clarify", "--session", "busy", "Still there?"]),
    );
    eventually("the first wait is refused", DEADLINE, &mut || {
        proxy.busy_waits.load(Ordering::Acquire) == 0
    });
    answer_clarify(&server, "busy", "here");
    let output = finish(child, DEADLINE);
    assert_eq!(
        (output.status.code(), stdout(&output)),
        (Some(0), "here\n".to_string()),
        "{}",
        stderr(&output)
    );
    let waits: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|seen| seen.target.contains("/wait?"))
        .collect();
    let pause = waits[1].at - waits[0].at;
    assert!(
        pause >= Duration::from_millis(900),
        "asked again after {pause:?}, not Retry-After: 1"
    );

    // A Retry-After longer than what is left of --retry-secs is cut short.
    proxy.busy_waits.store(usize::MAX, Ordering::Release);
    proxy.retry_after.store(30, Ordering::Release);
    let output = finish(
        ask_at(
            &proxy.url("/askgate"),
            askgate().args([
                "approve",
                "--session",
                "busy",
                "--command",
                "x",
                "--retry-secs",
                "1",
            ]),
        ),
        DEADLINE,
    );
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("has not answered for 1 s (503 Service Unavailable)")
            && stderr.contains("may still be pending"),
        "{stderr}"
    );
}

#[test]
fn https_checks_the_server_against_the_system_roots_or_the_ca_file() {
    let server = TestServer::start(&[]);
    let proxy = Proxy::start_tls(server.addr);
    let url = proxy.https_url("/askgate");
    let mut unknown = askgate();
    unknown
        .args(["clarify", "--session", "tls", "Private CA?"])
        .env_remove("SSL_CERT_FILE");
    let output = finish(ask_at(&url, &mut unknown), DEADLINE);
    let stderr_text = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr_text}");
    assert!(
        stderr_text.contains("cannot reach the server") && stderr_text.contains("--ca-file"),
        "{stderr_text}"
    );
    assert!(
        proxy.seen().is_empty(),
        "nothing is sent to an unknown server"
    );

    let ca_file = tls_dir().join("ca.pem");
    let by_flag = ["clarify", "--session", "tls", "Private CA?", "--ca-file"];
    let child = ask_at(&url, askgate().args(by_flag).arg(&ca_file));
    answer_clarify(&server, "tls", "trusted");
    let output = finish(child, DEADLINE);
    assert_eq!(
        (output.status.code(), stdout(&output)),
        (Some(0), "trusted\n".to_string()),
        "{}",
        stderr(&output)
    );
    // The CA file by its variable, and the system bundle (`SSL_CERT_FILE`).
    for variable in ["ASKGATE_CA_FILE", "SSL_CERT_FILE"] {
        let by_env = [
            "approve",
            "--session",
            "tls",
            "--command",
            "x",
            "--timeout",
            "1",
        ];
        let child = ask_at(&url, askgate().args(by_env).env(variable, &ca_file));
        let output = finish(child, DEADLINE);
        assert_eq!(
            output.status.code(),
            Some(3),
            "{variable}: {}",
            stderr(&output)
        );
    }
}
