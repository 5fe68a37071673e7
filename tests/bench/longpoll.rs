//! Long-poll wake latency: `count` polls parked on
//! `GET /api/clarify/pending?session_id=&since=&wait=`, then an answer;
//! the time from sending the answer until each poll's response arrives.

use crate::harness::{self, millis, percentile};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{Sender, channel};
use std::thread;
use std::time::{Duration, Instant};

const SESSION: &str = "longpoll";
const ROUNDS: usize = 5;

pub fn bench(repeat: usize) {
    println!("## Long-poll wake latency (answer → parked poll returns), {ROUNDS} rounds\n");
    println!("| run | parked polls | p50 | p99 | last poll, p50 |\n|---|---|---|---|---|");
    for run in 1..=repeat {
        for count in [100, 1000] {
            let (mut process, addr) = harness::start_askgate(&[]);
            match rounds(addr, count) {
                Ok((wakes, lasts)) => println!(
                    "| {run} | {count} | {} | {} | {} |",
                    millis(percentile(&wakes, 0.5)),
                    millis(percentile(&wakes, 0.99)),
                    millis(percentile(&lasts, 0.5)),
                ),
                Err(error) => println!("| {run} | {count} | {error} | | |"),
            }
            harness::stop(&mut process);
        }
    }
    println!();
}

fn rounds(addr: SocketAddr, count: usize) -> Result<(Vec<Duration>, Vec<Duration>), String> {
    let (mut wakes, mut lasts) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let submit = format!(r#"{{"session_id": "{SESSION}", "question": "q{round}"}}"#);
        harness::request(addr, "POST", "/api/clarify/submit", Some(&submit));
        let path = format!("/api/clarify/pending?session_id={SESSION}");
        let pending = harness::request(addr, "GET", &path, None);
        let version = harness::json_number(harness::body_of(&pending), "version")
            .ok_or("no version in the poll")?;
        let (sender, returned) = channel();
        let polls: Vec<_> = (0..count)
            .map(|_| {
                park(
                    addr,
                    &format!("{path}&since={version}&wait=30"),
                    sender.clone(),
                )
            })
            .collect::<Result<_, _>>()?;
        wait_parked(addr, count)?;
        let answered = Instant::now();
        let answer = format!(r#"{{"session_id": "{SESSION}", "response": "ok"}}"#);
        harness::request(addr, "POST", "/api/clarify/respond", Some(&answer));
        let mut last = Duration::ZERO;
        for _ in 0..count {
            let at = returned
                .recv_timeout(Duration::from_secs(30))
                .map_err(|_| "a parked poll never returned")?;
            let wake = at.saturating_duration_since(answered);
            wakes.push(wake);
            last = last.max(wake);
        }
        lasts.push(last);
        drop(polls);
    }
    wakes.sort();
    lasts.sort();
    Ok((wakes, lasts))
}

/// Sends one long-poll; a thread reports when its first response bytes arrive.
fn park(addr: SocketAddr, path: &str, returned: Sender<Instant>) -> Result<TcpStream, String> {
    let mut socket = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    socket
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut reader = socket.try_clone().map_err(|e| format!("clone: {e}"))?;
    thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut buffer = [0u8; 1024];
            if reader.read(&mut buffer).is_ok_and(|n| n > 0) {
                let _ = returned.send(Instant::now());
            }
            let _ = reader.read_to_end(&mut Vec::new());
        })
        .map_err(|e| format!("spawn: {e}"))?;
    Ok(socket)
}

/// Waits until the server counts every poll as parked.
fn wait_parked(addr: SocketAddr, count: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let metrics = harness::request(addr, "GET", "/metrics", None);
        let parked = metrics
            .lines()
            .find_map(|line| line.strip_prefix("askgate_longpolls_parked "))
            .and_then(|n| n.trim().parse::<usize>().ok());
        if parked == Some(count) {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(10));
    }
    Err("the polls were not all parked within 20 s".into())
}
