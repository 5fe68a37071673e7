//! The Pi profile: askgate pinned to one core (`taskset -c 0`) in a cgroup
//! v1 memory cgroup capped at 64 MiB (kernel memory, thread stacks and
//! socket buffers included), at 100 and 1,000 streams; and at default
//! limits with a journal, 10,000 one-prompt sessions from four clients,
//! then cancel+submit churn across compactions, then a crash and a
//! restart in the same cgroup (issue 18).

use crate::harness::{self, millis, percentile};
use crate::{Row, Target};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Instant;

const CAP: u64 = 64 << 20;
const CGROUPS: &str = "/sys/fs/cgroup/memory";

pub fn bench(repeat: usize) {
    println!("## Pi profile: one core (taskset -c 0), 64 MiB memory cgroup (v1)\n");
    let check = Cgroup::create("check").and_then(|cgroup| cgroup.remove());
    if let Err(why) = check {
        println!("(not run: {why})\n");
        return;
    }
    println!(
        "| run | streams | p50 | p99 | RSS per stream | peak RSS | cgroup max_usage_in_bytes | failcnt | OOM kills | refused or killed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for run in 1..=repeat {
        for count in [100, 1000] {
            let row = Cgroup::create(&format!("{count}-{run}")).and_then(|cgroup| {
                let result = measure(&cgroup, count);
                let usage = cgroup.usage();
                cgroup.remove()?;
                Ok((result, usage))
            });
            match row {
                Ok((result, usage)) => print(run, count, result, usage),
                Err(why) => println!("| {run} | {count} | not run: {why} | | | | | | | |"),
            }
        }
    }
    println!();
}

fn measure(cgroup: &Cgroup, count: usize) -> Result<Row, String> {
    let join = format!(
        "echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"",
        cgroup.dir.display()
    );
    let wrapper = ["sh", "-c", &join, "taskset", "-c", "0"];
    let mut target: Target = crate::askgate_target(harness::start_askgate(&wrapper));
    let result = crate::run(&mut target, count);
    harness::stop(&mut target.process);
    result
}

/// What the cgroup recorded: peak bytes charged, failures to charge, OOM kills.
struct Usage {
    max_usage: u64,
    failcnt: u64,
    oom_kills: u64,
}

fn print(run: usize, count: usize, result: Result<Row, String>, usage: Usage) {
    let mib = |bytes: u64| format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64);
    let cells = match &result {
        Ok(row) => format!(
            "{} | {} | {:.1} KiB | {} | ",
            millis(percentile(&row.deliveries, 0.5)),
            millis(row.p99()),
            row.per_stream_kib(count),
            mib(row.peak_kib << 10),
        ),
        Err(_) => " | | | | ".into(),
    };
    let refused = result.err().unwrap_or_else(|| "no".into());
    println!(
        "| {run} | {count} | {cells}{} | {} | {} | {refused} |",
        mib(usage.max_usage),
        usage.failcnt,
        usage.oom_kills
    );
}

struct Cgroup {
    dir: PathBuf,
}

impl Cgroup {
    fn create(name: &str) -> Result<Cgroup, String> {
        let dir = Path::new(CGROUPS).join(format!("askgate-bench-{}-{name}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let cgroup = Cgroup { dir };
        cgroup.write("memory.limit_in_bytes", &CAP.to_string())?;
        Ok(cgroup)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        std::fs::write(self.dir.join(file), value).map_err(|e| format!("{file}: {e}"))
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }

    fn usage(&self) -> Usage {
        let number = |file: &str| self.read(file).trim().parse().unwrap_or(0);
        let oom = self.read("memory.oom_control");
        let oom_kills = oom
            .lines()
            .find_map(|line| line.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        Usage {
            max_usage: number("memory.max_usage_in_bytes"),
            failcnt: number("memory.failcnt"),
            oom_kills,
        }
    }

    /// Starts `max_usage_in_bytes` and `failcnt` again from now.
    fn reset_peak(&self) {
        let _ = self.write("memory.max_usage_in_bytes", "0");
        let _ = self.write("memory.failcnt", "0");
    }

    fn remove(self) -> Result<(), String> {
        std::fs::remove_dir(&self.dir).map_err(|e| format!("rmdir {}: {e}", self.dir.display()))
    }
}

/// Sessions of one prompt each, and the cancel+submit pairs of the churn.
const SESSIONS: usize = 10_000;
const CHURN_PAIRS: usize = 8_000;
const CLIENTS: usize = 4;

/// 10,000 one-prompt sessions, churn, a crash and a restart, at default
/// limits with a journal, in one 64 MiB cgroup on one core.
pub fn churn(repeat: usize) {
    println!(
        "## Pi profile, issue 18: 10,000 one-prompt sessions (four clients), {CHURN_PAIRS} cancel+submit pairs, a crash and a restart; one core, 64 MiB cgroup, default limits, a journal\n"
    );
    let check = Cgroup::create("churn-check").and_then(|cgroup| cgroup.remove());
    if let Err(why) = check {
        println!("(not run: {why})\n");
        return;
    }
    println!(
        "| run | phase | requests refused or lost | peak charged (max_usage_in_bytes, page cache included) | peak RSS (VmHWM) | snapshots written | failcnt | OOM kills | seconds |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for run in 1..=repeat {
        let result = Cgroup::create(&format!("churn-{run}")).and_then(|cgroup| {
            let result = churn_run(&cgroup, run);
            cgroup.remove()?;
            result
        });
        if let Err(why) = result {
            println!("| {run} | not run: {why} | | | | | | | |");
        }
    }
    println!();
}

fn churn_run(cgroup: &Cgroup, run: usize) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("askgate-pi-churn-{}-{run}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (mut child, addr) = start_in(cgroup, &dir);
    let addr = addr.ok_or("askgate did not start")?;
    let began = Instant::now();
    let refused = fill(addr);
    row(run, "fill", refused, cgroup, &mut child, addr, began);
    cgroup.reset_peak();
    let began = Instant::now();
    let refused = churn_pairs(addr);
    row(
        run,
        "churn (compactions)",
        refused,
        cgroup,
        &mut child,
        addr,
        began,
    );
    let acknowledged = pending_prompts(addr).ok_or("no pending count before the crash")?;
    let _ = child.kill();
    let _ = child.wait();
    cgroup.reset_peak();
    let began = Instant::now();
    let (mut child, addr) = start_in(cgroup, &dir);
    let Some(addr) = addr else {
        let _ = child.wait();
        let usage = cgroup.usage();
        println!(
            "| {run} | restart | killed before it listened | {:.1} MiB | killed | - | {} | {} | {:.1} |",
            usage.max_usage as f64 / (1 << 20) as f64,
            usage.failcnt,
            usage.oom_kills,
            began.elapsed().as_secs_f64()
        );
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    };
    // Lost: prompts pending when the crash came (every request had been
    // answered) and not after the restart.
    let kept = pending_prompts(addr).unwrap_or(0);
    row(
        run,
        &format!("restart ({acknowledged} pending at the crash)"),
        acknowledged.saturating_sub(kept),
        cgroup,
        &mut child,
        addr,
        began,
    );
    harness::stop(&mut child);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// askgate at its defaults with a journal in `dir`, in `cgroup`, on core 0,
/// and the address it listens on (`None` if it died first). Open, as
/// everywhere in the bench: the clients speak as agent and human (with
/// tokens, `/metrics` and the pending counts were a 401 to them).
fn start_in(cgroup: &Cgroup, dir: &Path) -> (Child, Option<SocketAddr>) {
    let release = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/askgate");
    let binary = harness::knob("BENCH_ASKGATE", release);
    let join = format!(
        "echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"",
        cgroup.dir.display()
    );
    let mut command = Command::new("sh");
    command.args(["-c", &join, "taskset", "-c", "0", &binary, "serve"]);
    command.args(["--bind", "127.0.0.1:0", "--log-level", "warn"]);
    command.args(["--insecure-no-auth", "--data-dir"]);
    command
        .arg(dir)
        .stderr(Stdio::null())
        .stdout(Stdio::piped());
    let mut child = command.spawn().expect("sh and taskset");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped");
    let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
    let addr = line
        .trim()
        .rsplit('/')
        .next()
        .and_then(|addr| addr.parse().ok());
    (child, addr)
}

/// One request on a connection of its own: status and body, or `None`
/// when the server is gone.
fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Option<(u16, String)> {
    let mut socket = TcpStream::connect(addr).ok()?;
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    socket.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    Some((status, harness::body_of(&response).to_string()))
}

/// Clarify prompts pending, as `/metrics` counts them.
fn pending_prompts(addr: SocketAddr) -> Option<usize> {
    let (status, metrics) = try_request(addr, "GET", "/metrics", None)?;
    let line = metrics
        .lines()
        .find_map(|line| line.strip_prefix("askgate_pending_prompts{kind=\"clarify\"} "))?;
    (status == 200).then(|| line.trim().parse().ok())?
}

fn submit(addr: SocketAddr, session: usize) -> bool {
    let body = format!(
        r#"{{"session_id": "s{session}", "question": "Which branch should I deploy for session {session}?", "choices": ["main", "next"]}}"#
    );
    matches!(
        try_request(addr, "POST", "/api/clarify/submit", Some(&body)),
        Some((200, _))
    )
}

fn cancel(addr: SocketAddr, session: usize) -> bool {
    let body = format!(r#"{{"session_id": "s{session}"}}"#);
    matches!(
        try_request(addr, "POST", "/api/clarify/cancel", Some(&body)),
        Some((200, _))
    )
}

/// Four clients, each `work(n)` for its share of `0..count`: how many failed.
fn on_clients(count: usize, work: impl Fn(usize) -> bool + Sync) -> usize {
    let failed = AtomicUsize::new(0);
    thread::scope(|scope| {
        for client in 0..CLIENTS {
            let (work, failed) = (&work, &failed);
            scope.spawn(move || {
                for n in (client..count).step_by(CLIENTS) {
                    if !work(n) {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    failed.into_inner()
}

fn fill(addr: SocketAddr) -> usize {
    on_clients(SESSIONS, |session| submit(addr, session))
}

/// A session's prompt cancelled and asked again: two records, an outcome.
fn churn_pairs(addr: SocketAddr) -> usize {
    on_clients(CHURN_PAIRS, |n| {
        let session = n * 7 % SESSIONS;
        cancel(addr, session) & submit(addr, session)
    })
}

fn row(
    run: usize,
    phase: &str,
    refused: usize,
    cgroup: &Cgroup,
    child: &mut Child,
    addr: SocketAddr,
    began: Instant,
) {
    let seconds = began.elapsed().as_secs_f64();
    let alive = matches!(child.try_wait(), Ok(None));
    let metrics = try_request(addr, "GET", "/metrics", None)
        .map(|(_, body)| body)
        .unwrap_or_default();
    let snapshots = metrics
        .lines()
        .find_map(|line| line.strip_prefix("askgate_journal_snapshots_total "))
        .unwrap_or("-")
        .to_string();
    let peak = match alive {
        true => format!(
            "{:.1} MiB",
            harness::status_field(child.id(), "VmHWM:") as f64 / 1024.0
        ),
        false => "killed".into(),
    };
    let usage = cgroup.usage();
    let mib = |bytes: u64| format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64);
    println!(
        "| {run} | {phase} | {refused} | {} | {peak} | {snapshots} | {} | {} | {seconds:.1} |",
        mib(usage.max_usage),
        usage.failcnt,
        usage.oom_kills
    );
}
