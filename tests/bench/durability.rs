//! `make bench`, durability: what the journal costs. Submit latency, one
//! at a time, with the journal against in memory; throughput of concurrent
//! submits (group commit); and replay time and disk size for a directory of
//! 10,000 pending prompts and 100,000 outcomes. Prints Markdown tables;
//! BENCHMARKS.md records the figures.

#[allow(dead_code)]
mod harness;

use askgate::core::change::Change;
use askgate::core::prompt::{Outcome, Payload, Prompt};
use askgate::core::state::State;
use askgate::hub::durable;
use askgate::store::journal::Journal;
use harness::{spawn_askgate, submit_latency, submit_rate};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SEQUENTIAL: usize = 2_000;
const THREADS: usize = 16;
const PER_THREAD: usize = 300;

fn main() {
    println!("| store | submit p50 | submit p99 | {THREADS} clients, submits/s |");
    println!("|---|---|---|---|");
    let dir = scratch("latency");
    for (name, data_dir) in [
        ("memory", "none".to_string()),
        ("journal", dir.display().to_string()),
    ] {
        let mut server = start(&data_dir);
        let (p50, p99) = submit_latency(&[server.addr], SEQUENTIAL);
        let rate = submit_rate(&[server.addr], THREADS, PER_THREAD);
        println!("| {name} | {p50:.3} ms | {p99:.3} ms | {rate:.0} |");
        server.stop();
    }
    let _ = std::fs::remove_dir_all(&dir);
    replay();
}

struct Server {
    child: Child,
    addr: SocketAddr,
    started: Duration,
}

impl Server {
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn start(data_dir: &str) -> Server {
    let binary = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/askgate");
    let began = Instant::now();
    let mut command = Command::new(binary);
    command
        .args(["serve", "--bind", "127.0.0.1:0", "--log-level", "warn"])
        .args(["--data-dir", data_dir, "--insecure-no-auth"])
        .args(["--max-pending", "100000", "--max-prompts", "1000000"])
        .args(["--max-sessions", "1000000"]);
    let (child, addr) = spawn_askgate(&mut command);
    Server {
        child,
        addr,
        started: began.elapsed(),
    }
}

/// Writes a directory holding 10,000 pending prompts and 100,000 outcomes
/// through the journal itself, then times the server's start on it.
fn replay() {
    let dir = scratch("replay");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    {
        let (journal, _) = Journal::open(&dir).expect("a fresh directory opens");
        let mut state = State::default();
        let mut write = |changes: Vec<Change>| {
            let version = durable::version_after(&state, &changes);
            journal
                .append(version, durable::encode(&changes))
                .expect("room");
            changes.iter().for_each(|change| {
                state.apply(change);
            });
            version
        };
        let mut last = 0;
        for n in 0..110_000u64 {
            let choices = vec!["yes".into(), "no".into()];
            let payload = Payload::question(format!("question number {n}?"), choices);
            let id = format!("{n:012x}");
            let session = format!("s{}", n % 1000);
            let prompt = Prompt::new(id.clone(), session.clone(), now, 3600, payload);
            last = write(vec![Change::Submitted(prompt.into())]);
            // Let the journal thread sync and top its reserve up.
            if n % 1000 == 0 {
                journal.wait_durable(last).expect("durable");
            }
            if n >= 10_000 {
                let outcome = Outcome::Cancelled;
                let resolved = Change::Resolved {
                    session_id: session,
                    kind: askgate::core::kind::Kind::Clarify,
                    id,
                    outcome,
                    at: now,
                    grant: None,
                    by: None,
                };
                last = write(vec![resolved]);
            }
        }
        journal.wait_durable(last).expect("durable");
    }
    let journal_bytes = size_of_dir(&dir);
    let mut server = start(&dir.display().to_string());
    let first = server.started;
    server.stop();
    let mut server = start(&dir.display().to_string());
    let again = server.started;
    let deadline = Instant::now() + Duration::from_secs(10);
    while size_of_dir(&dir) >= journal_bytes && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    server.stop();
    let compacted = size_of_dir(&dir);
    let mut server = start(&dir.display().to_string());
    let from_snapshot = server.started;
    server.stop();
    println!("\n| 10,000 pending + 100,000 outcomes | start (replay) | disk |");
    println!("|---|---|---|");
    println!(
        "| from 210,000 journal records | {:.0} ms | {:.1} MiB |",
        first.as_secs_f64() * 1000.0,
        mib(journal_bytes)
    );
    println!(
        "| the same, second start | {:.0} ms | |",
        again.as_secs_f64() * 1000.0
    );
    println!(
        "| from the snapshot after compaction | {:.0} ms | {:.1} MiB |",
        from_snapshot.as_secs_f64() * 1000.0,
        mib(compacted)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Bytes the directory's files hold on disk (preallocation included).
fn size_of_dir(dir: &Path) -> u64 {
    let files = std::fs::read_dir(dir).unwrap().filter_map(Result::ok);
    files
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("askgate-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
