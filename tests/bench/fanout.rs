//! `make bench`: fan-out latency and memory per stream of askgate, measured
//! with the same client harness against nginx + nchan when it is installed.
//!
//! For each subscriber count it opens that many SSE streams, publishes 20
//! changes one at a time, and records when every subscriber saw each one.
//! Memory per stream is the server's RSS growth divided by the streams.
//! Prints a Markdown table; BENCHMARKS.md records the figures.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread;
use std::time::{Duration, Instant};

const ROUNDS: usize = 20;
const SESSION: &str = "bench";

/// A server under test: how to subscribe, how to publish, whose memory to read.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    subscribe_path: String,
    processes: Vec<Child>,
    publish: fn(SocketAddr, usize),
    /// Extracts the round number from a `data:` line, if it carries one.
    round_of: fn(&str) -> Option<usize>,
}

fn main() {
    let counts: Vec<usize> = std::env::var("BENCH_SUBSCRIBERS")
        .unwrap_or_else(|_| "100,1000,5000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    println!(
        "| server | subscribers | p50 | p99 | last subscriber, p50 | memory per stream | idle RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &count in &counts {
        run(start_askgate(), count);
    }
    if !nchan_installed() {
        println!(
            "\n(nginx with the nchan module is not installed: `apt-get install nginx-light libnginx-mod-nchan`)"
        );
        return;
    }
    for &count in &counts {
        run(start_nchan().expect("nginx starts"), count);
    }
}

fn run(mut target: Target, count: usize) {
    let idle = rss_kib(&target.processes);
    let (sender, receipts) = channel();
    let mut subscribers = Vec::new();
    for _ in 0..count {
        match subscribe(&target, sender.clone()) {
            Some(subscriber) => subscribers.push(subscriber),
            None => {
                println!(
                    "| {} | {count} | refused after {} streams | | | | |",
                    target.name,
                    subscribers.len()
                );
                stop(&mut target);
                return;
            }
        }
    }
    // Let connection threads settle (askgate frees tiny_http's reading
    // thread after its receive timeout) before reading memory.
    thread::sleep(Duration::from_secs(4));
    let loaded = rss_kib(&target.processes);
    let (deliveries, lasts) = measure(&target, count, &receipts);
    let per_stream = loaded.saturating_sub(idle) as f64 / count as f64;
    println!(
        "| {} | {count} | {} | {} | {} | {per_stream:.1} KiB | {:.1} MiB |",
        target.name,
        millis(percentile(&deliveries, 0.50)),
        millis(percentile(&deliveries, 0.99)),
        millis(percentile(&lasts, 0.50)),
        idle as f64 / 1024.0
    );
    drop(subscribers);
    stop(&mut target);
}

/// Publishes ROUNDS changes, each after the last was seen by everyone.
fn measure(
    target: &Target,
    count: usize,
    receipts: &Receiver<(usize, Instant)>,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut deliveries, mut lasts) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        let published = Instant::now();
        (target.publish)(target.addr, round);
        let mut seen = 0;
        let mut last = Duration::ZERO;
        while seen < count {
            let Ok((got, at)) = receipts.recv_timeout(Duration::from_secs(30)) else {
                panic!(
                    "{}: round {round} reached {seen} of {count} subscribers",
                    target.name
                );
            };
            if got == round {
                let latency = at.saturating_duration_since(published);
                deliveries.push(latency);
                last = last.max(latency);
                seen += 1;
            }
        }
        lasts.push(last);
    }
    deliveries.sort();
    lasts.sort();
    (deliveries, lasts)
}

fn subscribe(target: &Target, receipts: Sender<(usize, Instant)>) -> Option<TcpStream> {
    let mut socket = TcpStream::connect(target.addr).ok()?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n",
        target.subscribe_path
    );
    socket.write_all(request.as_bytes()).ok()?;
    let mut reader = BufReader::new(socket.try_clone().ok()?);
    let mut status = String::new();
    reader.read_line(&mut status).ok()?;
    if !status.contains(" 200 ") {
        return None;
    }
    let round_of = target.round_of;
    thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if let Some(round) = line.strip_prefix("data:").and_then(round_of) {
                    let _ = receipts.send((round, Instant::now()));
                }
                line.clear();
            }
        })
        .ok()?;
    Some(socket)
}

fn start_askgate() -> Target {
    let binary = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/askgate");
    let mut child = Command::new(binary)
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--log-level",
            "warn",
            "--max-streams",
            "20000",
        ])
        .args([
            "--max-pending",
            "1000",
            "--header-timeout-secs",
            "2",
            "--data-dir",
            "none",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("target/release/askgate (make bench builds it)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    Target {
        name: "askgate",
        addr,
        subscribe_path: format!("/api/events?session_id={SESSION}"),
        processes: vec![child],
        publish: |addr, round| {
            let body = format!(
                r#"{{"session_id": "{SESSION}", "question": "q{round}", "timeout_seconds": 0}}"#
            );
            post(addr, "/api/clarify/submit", "application/json", &body);
        },
        // Round r is the r-th submit: the frame that shows r pending.
        round_of: |data| {
            let count = data.split("\"pending_count\": ").nth(1)?;
            count
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        },
    }
}

const NCHAN_MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";

fn nchan_installed() -> bool {
    std::path::Path::new(NCHAN_MODULE).exists() && Command::new("nginx").arg("-v").output().is_ok()
}

/// nginx with nchan on a free port, one worker process.
fn start_nchan() -> Option<Target> {
    let module = NCHAN_MODULE;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let dir = std::env::temp_dir().join(format!("askgate-bench-nchan-{port}"));
    std::fs::create_dir_all(&dir).ok()?;
    let config = format!(
        "load_module {module};\nworker_processes 1;\nworker_rlimit_nofile 30000;\npid {dir}/nginx.pid;\n\
         error_log {dir}/error.log warn;\ndaemon off;\nevents {{ worker_connections 20000; }}\n\
         http {{ access_log off; client_body_temp_path {dir}; server {{ listen 127.0.0.1:{port};\n\
         location = /sub {{ nchan_subscriber; nchan_channel_id {SESSION}; }}\n\
         location = /pub {{ nchan_publisher; nchan_channel_id {SESSION}; }} }} }}\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), config).ok()?;
    let child = Command::new("nginx")
        .args([
            "-c",
            &dir.join("nginx.conf").display().to_string(),
            "-p",
            &dir.display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
    Some(Target {
        name: "nginx + nchan",
        addr,
        subscribe_path: "/sub".into(),
        processes: vec![child],
        publish: |addr, round| post(addr, "/pub", "text/plain", &format!("round {round}")),
        round_of: |data| data.trim().strip_prefix("round ")?.parse().ok(),
    })
}

fn post(addr: SocketAddr, path: &str, content_type: &str, body: &str) {
    let mut socket = TcpStream::connect(addr).expect("publish connects");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = socket.read_to_end(&mut response);
}

/// Resident memory of the processes and all their descendants, in KiB.
fn rss_kib(processes: &[Child]) -> u64 {
    let mut pids: Vec<u32> = processes.iter().map(Child::id).collect();
    let mut total = 0;
    while let Some(pid) = pids.pop() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss = status.lines().find_map(|line| line.strip_prefix("VmRSS:"));
        total += rss
            .and_then(|kb| kb.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        pids.extend(
            children
                .split_whitespace()
                .filter_map(|child| child.parse::<u32>().ok()),
        );
    }
    total
}

fn stop(target: &mut Target) {
    for child in &mut target.processes {
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let _ = child.wait();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}
