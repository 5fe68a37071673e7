//! `make bench`: askgate's streams against nginx + nchan, with the same
//! client harness, and what else a thread per stream costs or gains.
//!
//! - Fan-out: for each subscriber count it opens that many SSE streams,
//!   publishes 20 changes one at a time, and records when every subscriber
//!   saw each one; memory per stream is the server's RSS growth divided by
//!   the streams; threads per stream and how soon a stream is down to one.
//! - Long-poll wake latency (`longpoll.rs`), polling throughput against
//!   nginx serving the same JSON as a file (`polling.rs`), and the Pi
//!   profile: one core, a 64 MiB memory cgroup (`pi.rs`): streams, and
//!   10,000 sessions with churn across compactions and a restart; and
//!   RSS after a burst of 5,000 streams that close (`burst.rs`).
//!
//! Each configuration runs `BENCH_REPEAT` times (2); `BENCH_SUBSCRIBERS`
//! picks the counts (100,1000,5000), `BENCH_ONLY` the parts
//! (fanout,longpoll,polling,pi,burst; pi-churn for the churn alone),
//! `BENCH_BURST` the burst's streams (5000), `BENCH_ROUNDS` the changes per fan-out
//! run (20); `BENCH_ASKGATE` another askgate binary (to compare builds),
//! `BENCH_NCHAN=0` skips nchan, `BENCH_WARMUP` the fan-out's warm-up runs
//! before it measures (1; printed, not in the ratios); `BENCH_TRACE=1`
//! prints each round's first, median and last delivery in order (to stderr),
//! to see which rounds set the p99. Prints Markdown; BENCHMARKS.md keeps it.

mod burst;
mod harness;
mod longpoll;
mod pi;
mod polling;

use harness::{knob, millis, percentile};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Child;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread;
use std::time::{Duration, Instant};

const SESSION: &str = "bench";
/// How long after the last stream opened memory is read.
pub const SETTLE: Duration = Duration::from_secs(4);
/// How long to watch for a stream to be down to one thread.
const THREAD_WATCH: Duration = Duration::from_secs(10);

/// A server under test: how to subscribe, how to publish, whose memory to read.
pub struct Target {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub subscribe_path: String,
    pub process: Child,
    pub publish: fn(SocketAddr, usize),
    /// Extracts the round number from a `data:` line, if it carries one.
    pub round_of: fn(&str) -> Option<usize>,
    /// Whether to watch threads (askgate: a thread per stream).
    pub threaded: bool,
}

/// What one fan-out run measured.
pub struct Row {
    pub deliveries: Vec<Duration>,
    pub lasts: Vec<Duration>,
    pub idle_kib: u64,
    pub loaded_kib: u64,
    pub peak_kib: u64,
    pub threads_per_stream: f64,
    /// The server's CPU time (user and system) per frame delivered.
    pub cpu_per_frame: Duration,
    /// From the last stream opening until the server held one thread per stream.
    pub down_to_one: Option<Duration>,
}

impl Row {
    pub fn p99(&self) -> Duration {
        percentile(&self.deliveries, 0.99)
    }

    pub fn per_stream_kib(&self, count: usize) -> f64 {
        self.loaded_kib.saturating_sub(self.idle_kib) as f64 / count as f64
    }
}

fn main() {
    let counts: Vec<usize> = knob("BENCH_SUBSCRIBERS", "100,1000,5000")
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let repeat: usize = knob("BENCH_REPEAT", "2").parse().unwrap_or(2);
    let only = knob("BENCH_ONLY", "fanout,longpoll,polling,pi,burst");
    if only.contains("fanout") {
        fanout(&counts, repeat);
    }
    if only.contains("longpoll") {
        longpoll::bench(repeat);
    }
    if only.contains("polling") {
        polling::bench(repeat);
    }
    let parts: Vec<&str> = only.split(',').map(str::trim).collect();
    if parts.contains(&"pi") {
        pi::bench(repeat);
    }
    if parts.contains(&"pi") || parts.contains(&"pi-churn") {
        pi::churn(repeat);
    }
    if parts.contains(&"burst") {
        burst::bench(repeat);
    }
}

fn fanout(counts: &[usize], repeat: usize) {
    let nchan = nchan_installed() && knob("BENCH_NCHAN", "1") != "0";
    println!("## Fan-out\n");
    println!(
        "| server | streams | p50 | p99 | last subscriber, p50 | memory per stream | peak RSS | idle RSS | threads per stream | one thread per stream after | server CPU per frame |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    // The first measurement of a bench was askgate's slowest in every run
    // (issue 23): warm-up runs, one of each server at the first count,
    // printed and left out of the ratios, say whether that is the bench
    // and the machine waking up or the server.
    let warmups: usize = knob("BENCH_WARMUP", "1").parse().unwrap_or(1);
    for _ in 0..warmups {
        let Some(&count) = counts.first() else { break };
        let mut ours = start_askgate();
        ours.name = "askgate (warm-up)";
        run_and_print(ours, count);
        if nchan {
            let mut theirs = start_nchan().expect("nginx starts");
            theirs.name = "nginx + nchan (warm-up)";
            run_and_print(theirs, count);
        }
    }
    let mut ratios = Vec::new();
    for run in 0..repeat {
        for &count in counts {
            let ours = run_and_print(start_askgate(), count);
            let theirs = nchan.then(|| run_and_print(start_nchan().expect("nginx starts"), count));
            if let (Some(ours), Some(Some(theirs))) = (ours, theirs) {
                ratios.push((run, count, ours.p99(), theirs.p99()));
            }
        }
    }
    if !nchan {
        println!(
            "\n(nginx with the nchan module is not installed: `apt-get install nginx-light libnginx-mod-nchan`)"
        );
    }
    println!("\n| run | streams | askgate p99 / nchan p99 |\n|---|---|---|");
    for (run, count, ours, theirs) in ratios {
        let ratio = ours.as_secs_f64() / theirs.as_secs_f64();
        println!("| {} | {count} | {ratio:.2} |", run + 1);
    }
    println!();
}

fn run_and_print(mut target: Target, count: usize) -> Option<Row> {
    let result = run(&mut target, count);
    harness::stop(&mut target.process);
    match result {
        Ok(row) => {
            print_row(target.name, count, &row);
            Some(row)
        }
        Err(error) => {
            println!("| {} | {count} | {error} | | | | | | | | |", target.name);
            None
        }
    }
}

pub fn print_row(name: &str, count: usize, row: &Row) {
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let threads = match name.contains("nchan") {
        true => "(event loop)".to_string(),
        false => format!("{:.2}", row.threads_per_stream),
    };
    let down = match (name.contains("nchan"), row.down_to_one) {
        (true, _) => String::new(),
        (false, Some(after)) => format!("{:.2} s", after.as_secs_f64()),
        (false, None) => format!("> {} s", THREAD_WATCH.as_secs()),
    };
    println!(
        "| {name} | {count} | {} | {} | {} | {:.1} KiB | {} | {} | {threads} | {down} | {:.1} µs |",
        millis(percentile(&row.deliveries, 0.50)),
        millis(row.p99()),
        millis(percentile(&row.lasts, 0.50)),
        row.per_stream_kib(count),
        mib(row.peak_kib),
        mib(row.idle_kib),
        row.cpu_per_frame.as_secs_f64() * 1e6,
    );
}

/// Opens `count` streams, lets them settle, publishes ROUNDS changes.
pub fn run(target: &mut Target, count: usize) -> Result<Row, String> {
    let pid = target.process.id();
    // tiny_http starts its connection threads on its accept thread: once
    // a request was answered, they are all there.
    harness::request(target.addr, "GET", "/", None);
    thread::sleep(Duration::from_millis(300));
    let (idle_kib, idle_threads) = (harness::rss_kib(pid), harness::threads(pid));
    let (sender, receipts) = channel();
    let mut subscribers = Vec::new();
    for _ in 0..count {
        match subscribe(target, sender.clone()) {
            Some(subscriber) => subscribers.push(subscriber),
            None => return Err(format!("refused after {} streams", subscribers.len())),
        }
    }
    let (loaded_kib, down_to_one) = settle(target, count, idle_threads);
    let threads = harness::threads(pid).saturating_sub(idle_threads);
    let cpu_before = harness::cpu_ticks(pid);
    let (deliveries, lasts) = measure(target, count, &receipts)?;
    let cpu = Duration::from_millis(10 * harness::cpu_ticks(pid).saturating_sub(cpu_before));
    let cpu_per_frame = cpu / deliveries.len().max(1) as u32;
    let peak_kib = harness::status_field(pid, "VmHWM:");
    drop(subscribers);
    Ok(Row {
        deliveries,
        lasts,
        idle_kib,
        loaded_kib,
        peak_kib,
        threads_per_stream: threads as f64 / count as f64,
        cpu_per_frame,
        down_to_one,
    })
}

/// Waits SETTLE and reads memory then; meanwhile (and on until
/// THREAD_WATCH) watches for the server to hold one thread per stream.
fn settle(target: &Target, count: usize, idle_threads: u64) -> (u64, Option<Duration>) {
    let pid = target.process.id();
    let opened = Instant::now();
    let (mut loaded, mut down_to_one) = (None, None);
    loop {
        let elapsed = opened.elapsed();
        let extra = harness::threads(pid).saturating_sub(idle_threads);
        if down_to_one.is_none() && target.threaded && extra <= count as u64 {
            down_to_one = Some(elapsed);
        }
        if loaded.is_none() && elapsed >= SETTLE {
            loaded = Some(harness::rss_kib(pid));
        }
        let watching = target.threaded && down_to_one.is_none() && elapsed < THREAD_WATCH;
        if let (Some(loaded), false) = (loaded, watching) {
            return (loaded, down_to_one);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Publishes the rounds, each after the last was seen by everyone.
fn measure(
    target: &mut Target,
    count: usize,
    receipts: &Receiver<(usize, Instant)>,
) -> Result<(Vec<Duration>, Vec<Duration>), String> {
    let rounds: usize = knob("BENCH_ROUNDS", "20").parse().unwrap_or(20);
    let (mut deliveries, mut lasts) = (Vec::new(), Vec::new());
    let mut trace = Vec::new();
    for round in 1..=rounds {
        let published = Instant::now();
        (target.publish)(target.addr, round);
        let mut seen = 0;
        let mut last = Duration::ZERO;
        while seen < count {
            let Ok((got, at)) = receipts.recv_timeout(Duration::from_secs(30)) else {
                let exited = target.process.try_wait().ok().flatten();
                let why = exited.map_or(String::new(), |status| format!(" (server {status})"));
                return Err(format!("round {round} reached {seen} streams{why}"));
            };
            if got == round {
                let latency = at.saturating_duration_since(published);
                deliveries.push(latency);
                last = last.max(latency);
                seen += 1;
            }
        }
        lasts.push(last);
        trace.push(round_summary(
            round,
            &deliveries[deliveries.len() - count..],
        ));
    }
    if knob("BENCH_TRACE", "0") != "0" {
        eprintln!("{} {}", target.name, trace.join(" "));
    }
    deliveries.sort();
    lasts.sort();
    Ok((deliveries, lasts))
}

/// `rN:first/median/last` in milliseconds, for one round's deliveries.
fn round_summary(round: usize, latencies: &[Duration]) -> String {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let ms = |at: Duration| at.as_secs_f64() * 1e3;
    let (first, last) = (sorted[0], sorted[sorted.len() - 1]);
    let median = sorted[sorted.len() / 2];
    format!(
        "r{round}:{:.2}/{:.2}/{:.2}",
        ms(first),
        ms(median),
        ms(last)
    )
}

pub fn subscribe(target: &Target, receipts: Sender<(usize, Instant)>) -> Option<TcpStream> {
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

pub fn start_askgate() -> Target {
    askgate_target(harness::start_askgate(&[]))
}

pub fn askgate_target((process, addr): (Child, SocketAddr)) -> Target {
    Target {
        name: "askgate",
        addr,
        subscribe_path: format!("/api/events?session_id={SESSION}"),
        process,
        publish: |addr, round| {
            let body = format!(
                r#"{{"session_id": "{SESSION}", "question": "q{round}", "timeout_seconds": 0}}"#
            );
            harness::request(addr, "POST", "/api/clarify/submit", Some(&body));
        },
        // Round r is the r-th submit: the frame that shows r pending.
        round_of: |data| harness::json_number(data, "pending_count").map(|n| n as usize),
        threaded: true,
    }
}

fn nchan_installed() -> bool {
    std::path::Path::new(harness::NCHAN_MODULE).exists() && harness::nginx_installed()
}

/// nginx with nchan on a free port, one worker process.
fn start_nchan() -> Option<Target> {
    let locations = format!(
        "location = /sub {{ nchan_subscriber; nchan_channel_id {SESSION}; }}\n\
         location = /pub {{ nchan_publisher; nchan_channel_id {SESSION}; }}"
    );
    let (process, addr, _) =
        harness::start_nginx("nchan", Some(harness::NCHAN_MODULE), &locations)?;
    Some(Target {
        name: "nginx + nchan",
        addr,
        subscribe_path: "/sub".into(),
        process,
        publish: |addr, round| {
            let mut socket = TcpStream::connect(addr).expect("publish connects");
            let body = format!("round {round}");
            let request = format!(
                "POST /pub HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: text/plain\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            socket.write_all(request.as_bytes()).unwrap();
            let _ = socket.read_to_end(&mut Vec::new());
        },
        round_of: |data| data.trim().strip_prefix("round ")?.parse().ok(),
        threaded: false,
    })
}
