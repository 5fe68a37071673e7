//! `make bench`, redis: the Redis store (`--store redis://`) against the
//! journal, with one instance and with three. Submit latency one at a time
//! and the rate of concurrent submits (16 clients), spread over the
//! instances; fan-out latency: `BENCH_REDIS_SUBSCRIBERS` streams (300)
//! spread over the instances, 20 submits made through the first, and how
//! long after each submit was sent every stream had its frame (so with
//! three instances two thirds of the streams are on an instance that
//! learns the change from Redis). Redis is Debian's `redis-server` on a
//! loopback port with AOF on, `appendfsync always` unless said otherwise.
//! Skipped when redis-server is missing. Prints Markdown; BENCHMARKS.md
//! keeps it.

#[allow(dead_code)]
mod harness;

use harness::{Client, knob, millis, percentile, spawn_askgate, submit_latency, submit_rate};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Sender, channel};
use std::thread;
use std::time::{Duration, Instant};

const SEQUENTIAL: usize = 1_000;
const THREADS: usize = 16;
const PER_THREAD: usize = 200;
const ROUNDS: usize = 20;

fn main() {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        println!(
            "redis bench skipped: redis-server is not installed (apt-get install redis-server)"
        );
        return;
    }
    let subscribers: usize = knob("BENCH_REDIS_SUBSCRIBERS", "300").parse().unwrap();
    println!(
        "| store | instances | submit p50 | submit p99 | {THREADS} clients, submits/s | fan-out to {subscribers}: p50 | p99 | max |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let setups: [(&str, Option<&str>, usize); 4] = [
        ("journal", None, 1),
        ("redis, appendfsync always", Some("always"), 1),
        ("redis, appendfsync always", Some("always"), 3),
        ("redis, appendfsync everysec", Some("everysec"), 3),
    ];
    for (name, fsync, count) in setups {
        let dir = scratch(&format!("{}-{count}", fsync.unwrap_or("journal")));
        let mut redis = fsync.map(|fsync| Redis::start(&dir, fsync));
        let mut servers: Vec<(Child, SocketAddr)> = (0..count)
            .map(|n| {
                let store = match &redis {
                    Some(redis) => vec!["--store".to_string(), redis.url()],
                    None => vec![
                        "--data-dir".into(),
                        dir.join(format!("j{n}")).display().to_string(),
                    ],
                };
                start(&store)
            })
            .collect();
        let addrs: Vec<SocketAddr> = servers.iter().map(|(_, addr)| *addr).collect();
        let (p50, p99) = submit_latency(&addrs, SEQUENTIAL);
        let rate = submit_rate(&addrs, THREADS, PER_THREAD);
        let fan = fanout(&addrs, subscribers);
        println!(
            "| {name} | {count} | {p50:.3} ms | {p99:.3} ms | {rate:.0} | {} | {} | {} |",
            millis(fan.0),
            millis(fan.1),
            millis(fan.2)
        );
        for (child, _) in &mut servers {
            harness::stop(child);
        }
        drop(redis.take());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

struct Redis {
    child: Child,
    port: u16,
}

/// Ended by its pid when dropped, so that a panic leaves no Redis behind.
impl Drop for Redis {
    fn drop(&mut self) {
        harness::stop(&mut self.child);
    }
}

impl Redis {
    fn start(dir: &std::path::Path, fsync: &str) -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir)
            .args(["--appendonly", "yes", "--appendfsync", fsync, "--save", ""])
            .args(["--daemonize", "no", "--logfile", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        let end = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "redis-server did not listen");
            thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

fn start(store: &[String]) -> (Child, SocketAddr) {
    let release = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/askgate");
    let mut command = Command::new(knob("BENCH_ASKGATE", release));
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--log-level", "warn"])
        .args(["--insecure-no-auth", "--data-dir", "none"])
        .args(["--max-pending", "100000", "--max-prompts", "1000000"])
        .args(["--max-sessions", "1000000", "--max-streams", "20000"])
        .args(store);
    spawn_askgate(&mut command)
}

/// Streams spread over the instances; `ROUNDS` submits through the first;
/// (p50, p99, max) of the time from sending a submit to a stream's frame.
fn fanout(addrs: &[SocketAddr], subscribers: usize) -> (Duration, Duration, Duration) {
    let (receipts, received) = channel();
    let (ready, all_ready) = channel();
    let streams: Vec<TcpStream> = (0..subscribers)
        .map(|n| subscribe(addrs[n % addrs.len()], receipts.clone(), ready.clone()))
        .collect();
    for _ in 0..subscribers {
        all_ready
            .recv_timeout(Duration::from_secs(30))
            .expect("every stream ready");
    }
    let mut client = Client::new(addrs[0]);
    let mut latencies = Vec::new();
    for round in 0..ROUNDS {
        let sent = Instant::now();
        client.submit("fan", round);
        for _ in 0..subscribers {
            let (_, at): (usize, Instant) = received
                .recv_timeout(Duration::from_secs(30))
                .expect("every stream gets the frame");
            latencies.push(at.duration_since(sent));
        }
    }
    drop(streams);
    latencies.sort();
    (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        *latencies.last().unwrap(),
    )
}

fn subscribe(addr: SocketAddr, receipts: Sender<(usize, Instant)>, ready: Sender<()>) -> TcpStream {
    let socket = TcpStream::connect(addr).unwrap();
    let request = "GET /api/events?session_id=fan HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n";
    (&socket).write_all(request.as_bytes()).unwrap();
    let reader = socket.try_clone().unwrap();
    thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut lines = BufReader::new(reader).lines();
            let mut is_ready = false;
            let mut count = 0;
            while let Some(Ok(line)) = lines.next() {
                if line.starts_with("event: ready") {
                    is_ready = true;
                    let _ = ready.send(());
                } else if is_ready && line.starts_with("event: clarify") {
                    count += 1;
                    if receipts.send((count, Instant::now())).is_err() {
                        return;
                    }
                }
            }
        })
        .unwrap();
    socket
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("askgate-bench-redis-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
