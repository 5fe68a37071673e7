//! Test support for hostile clients: the real server process with what
//! `/proc` says of it (resident memory, its peak, threads, CPU time), and
//! `attack`, which runs one attack and checks what must hold during it
//! and after it.
//!
//! An attack is a closure given a `Ctx` (the server's address and when to
//! stop); the honest client (`support::honest`) loops meanwhile, and a
//! sampler reads the server's RSS. Nothing sleeps to wait for the server:
//! every wait polls with a deadline. With `ASKGATE_HOSTILE_TARGET=PID@ADDR`
//! every attack goes to that server process instead, one after another
//! (`tests/bench/hostile_rss.py` reads its RSS after the whole suite).

use crate::binary::{ServerProcess, askgate};
use crate::support::honest::{Honest, HonestReport, KeepAlive};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;

/// How soon after an attack its places must be back (a parked request
/// notices its client left within 0.5 s).
pub const PLACES_BACK_WITHIN: Duration = Duration::from_secs(2);
/// Anonymous memory that may stay above the baseline once settled: pages
/// the allocator's two arenas keep partly used (measured: about 2.5 MiB
/// after a minute of 300 long-polls closing at once, no more after 20 s).
/// Not enough in the 30 s soak: outcomes the honest client leaves during
/// an attack pin the pages they share with its garbage until they are
/// forgotten (BENCHMARKS.md, "hostile clients").
pub const SETTLED_SLACK: u64 = 4 * MIB;
/// Milliseconds between the server's malloc trims in `make test` (the test
/// knob `ASKGATE_TEST_TRIM_MS`); the soak keeps the real 10 s.
const TEST_TRIM_MS: &str = "1000";

/// `HOSTILE_SECS` (`make soak-hostile`): how long each attack runs.
fn soak_length() -> Option<Duration> {
    let secs = std::env::var("HOSTILE_SECS").ok()?;
    secs.parse().ok().map(Duration::from_secs_f64)
}

/// How long each attack runs: `HOSTILE_SECS`, or `default` in `make test`.
pub fn attack_length(default: Duration) -> Duration {
    soak_length().unwrap_or(default)
}

/// `ASKGATE_HOSTILE_TARGET`: a server already running (`PID@ADDR`), started
/// with the suite's flags and the server's own trims, that every attack
/// goes to instead of a server of its own.
fn external_target() -> Option<(u32, SocketAddr)> {
    let target = std::env::var("ASKGATE_HOSTILE_TARGET").ok()?;
    let (pid, addr) = target.split_once('@')?;
    Some((pid.parse().ok()?, addr.parse().ok()?))
}

/// How soon after an attack threads and memory must be back: idle
/// tiny_http pool threads end after 5 s of rest, and the server trims
/// malloc every second in `make test`, every 10 s in the soak and in an
/// external target.
fn settled_within() -> Duration {
    match soak_length().is_some() || external_target().is_some() {
        true => Duration::from_secs(18),
        false => Duration::from_secs(8),
    }
}

/// The server binary under attack, and its figures from `/proc`.
pub struct Target {
    /// The server this test started; `None` for an external target.
    pub process: Option<ServerProcess>,
    pid: u32,
    pub addr: SocketAddr,
}

impl Target {
    /// The server to attack: the external target if there is one (which
    /// must have been started with `flags`), or a new one with `flags`.
    pub fn start(flags: &[&str]) -> Target {
        match external_target() {
            Some((pid, addr)) => Target::external(pid, addr, flags),
            None => Target::own(flags),
        }
    }

    /// A new server with `flags`, whatever the environment says.
    pub fn own(flags: &[&str]) -> Target {
        let mut command = askgate();
        if soak_length().is_none() {
            command.env("ASKGATE_TEST_TRIM_MS", TEST_TRIM_MS);
        }
        let process = ServerProcess::start_with(command, flags);
        let (pid, addr) = (process.child.id(), process.addr);
        Target {
            process: Some(process),
            pid,
            addr,
        }
    }

    /// The running server `pid`, whose command line must hold `flags` in
    /// order: the bounds the attacks check are those flags'.
    fn external(pid: u32, addr: SocketAddr, flags: &[&str]) -> Target {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("the target runs");
        let args: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
        let flags: Vec<&[u8]> = flags.iter().map(|flag| flag.as_bytes()).collect();
        assert!(
            args.windows(flags.len()).any(|window| window == flags),
            "the external target {pid} was not started with {:?}",
            flags
                .iter()
                .map(|f| String::from_utf8_lossy(f))
                .collect::<Vec<_>>()
        );
        Target {
            process: None,
            pid,
            addr,
        }
    }

    fn pid(&self) -> u32 {
        self.pid
    }

    /// A number from `/proc/PID/status` (kB for the `Vm` lines).
    fn status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the server runs");
        let line = status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"));
        let number = line.trim().trim_end_matches("kB").trim();
        number.parse().expect("a number")
    }

    pub fn rss(&self) -> u64 {
        self.status("VmRSS") * KIB
    }

    /// Resident anonymous memory: the heap and stacks, without the pages
    /// of the binary and libraries (which grow as more code runs).
    pub fn anon_rss(&self) -> u64 {
        self.status("RssAnon") * KIB
    }

    /// The highest RSS since the server started.
    pub fn peak_rss(&self) -> u64 {
        self.status("VmHWM") * KIB
    }

    /// The largest anonymous mappings (KiB resident, KiB mapped), for a
    /// failure to show where memory stayed.
    pub fn anon_mappings(&self) -> Vec<(u64, u64)> {
        let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", self.pid())).unwrap();
        let mut mapped = 0;
        let mut found = Vec::new();
        for line in smaps.lines() {
            let mut words = line.split_whitespace();
            let first = words.next().unwrap_or("");
            if let Some((start, end)) = first.split_once('-') {
                let span = |hex| u64::from_str_radix(hex, 16).unwrap_or(0);
                mapped = (span(end) - span(start)) / KIB;
            } else if first == "Anonymous:" {
                let resident: u64 = words.next().unwrap_or("0").parse().unwrap_or(0);
                found.push((resident, mapped));
            }
        }
        found.sort_unstable_by(|a, b| b.cmp(a));
        found.truncate(8);
        found
    }

    pub fn threads(&self) -> u64 {
        self.status("Threads")
    }

    /// User and system CPU time the server has used.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the command's closing parenthesis, from the state
        // (field 3): utime and stime are fields 14 and 15.
        let fields: Vec<u64> = stat
            .rsplit_once(") ")
            .unwrap()
            .1
            .split(' ')
            .map(|field| field.parse().unwrap_or(0))
            .collect();
        // SAFETY: sysconf only reads a constant of the system.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Duration::from_secs_f64((fields[11] + fields[12]) as f64 / ticks)
    }

    /// Times the server's threads have blocked and been woken again: the
    /// sum of `voluntary_ctxt_switches` over its live threads. Load from
    /// other processes adds involuntary switches, not these, so a count of
    /// wake-ups holds on a busy machine where CPU time does not. Threads
    /// that end take their count with them: a difference is a lower bound.
    pub fn wakeups(&self) -> u64 {
        let tasks = format!("/proc/{}/task", self.pid());
        let Ok(entries) = std::fs::read_dir(tasks) else {
            return 0;
        };
        entries
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("status")).ok())
            .filter_map(|status| {
                let line = status
                    .lines()
                    .find(|line| line.starts_with("voluntary_ctxt_switches:"))?;
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .sum()
    }

    /// One line of `/metrics`, on a connection of its own; `None` when the
    /// server refused it (the connection cap) or did not answer in time.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (status, text) = KeepAlive::new(self.addr).get("/metrics").ok()?;
        let value = text
            .lines()
            .find(|line| line.split(' ').next() == Some(name))?
            .rsplit(' ')
            .next()?;
        (status == 200).then(|| value.parse().ok()).flatten()
    }

    /// Open streams and parked requests, as `/metrics` counts them.
    pub fn places(&self) -> Option<(f64, f64)> {
        let streams = self.metric("askgate_streams_open")?;
        Some((streams, self.metric("askgate_longpolls_parked")?))
    }
}

/// What an attack is given: where the server is, and when to stop.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub addr: SocketAddr,
    pub until: Instant,
    pub target: &'a Target,
    /// Other attacks run at the same time: their places, connections and
    /// budget are not this attack's to count.
    pub mixed: bool,
    pub baseline: Baseline,
}

impl Ctx<'_> {
    pub fn going(&self) -> bool {
        Instant::now() < self.until
    }
}

/// The server's figures before an attack, to come back to after it.
#[derive(Clone, Copy, Debug)]
pub struct Baseline {
    pub rss: u64,
    pub anon_rss: u64,
    pub threads: u64,
    pub places: (f64, f64),
}

/// What one attack did to the server.
pub struct Report {
    pub name: String,
    pub length: Duration,
    pub baseline: Baseline,
    pub peak_rss: u64,
    pub bound: u64,
    pub honest: HonestReport,
    pub recovery: Recovery,
    pub anon_rss_after: u64,
    pub threads_after: u64,
}

impl Report {
    pub fn print(&self) {
        let mib = |bytes: u64| bytes as f64 / MIB as f64;
        let ms = |latency: Duration| latency.as_secs_f64() * 1000.0;
        let secs = |back: &Result<Duration, String>| match back {
            Ok(took) => format!("{:.2} s", took.as_secs_f64()),
            Err(_) => "NOT in time".to_string(),
        };
        let (honest, recovery) = (&self.honest, &self.recovery);
        println!(
            "hostile {}: {:.1} s; peak RSS {:.1} MiB (baseline {:.1}, bound {:.1}); \
             healthz p50 {:.2} ms p99 {:.2} ms over {}; frame p99 {:.2} ms; honest rounds {} \
             ({} submits refused, {} failures); places back in {}, threads in {}, memory in {}: \
             {:.1} MiB anonymous (baseline {:.1}) and {} threads (baseline {})",
            self.name,
            self.length.as_secs_f64(),
            mib(self.peak_rss),
            mib(self.baseline.rss),
            mib(self.bound),
            ms(honest.healthz.percentile(50)),
            ms(honest.healthz.percentile(99)),
            honest.healthz.len(),
            ms(honest.frame.percentile(99)),
            honest.rounds,
            honest.refused,
            honest.failures.len(),
            secs(&recovery.places),
            secs(&recovery.threads),
            secs(&recovery.memory),
            mib(self.anon_rss_after),
            mib(self.baseline.anon_rss),
            self.threads_after,
            self.baseline.threads,
        );
    }

    /// What must hold: every honest step answered in time, the peak within
    /// the worst case, and places, threads and memory back.
    fn check(&self) {
        let (name, honest) = (&self.name, &self.honest);
        assert!(
            honest.failures.is_empty(),
            "{name}: the honest client failed {} times in {} rounds: {:#?}",
            honest.failures.len(),
            honest.rounds,
            &honest.failures[..honest.failures.len().min(10)]
        );
        assert!(honest.rounds > 0, "{name}: no honest round went through");
        assert!(
            self.peak_rss <= self.bound,
            "{name}: peak RSS {} KiB over the worst case {} KiB",
            self.peak_rss / KIB,
            self.bound / KIB
        );
        let recovery = &self.recovery;
        for back in [&recovery.places, &recovery.threads, &recovery.memory] {
            if let Err(failure) = back {
                panic!("{failure}");
            }
        }
    }
}

/// What an attack may leave behind and what the honest client may be told.
#[derive(Clone, Copy)]
pub struct Allowed {
    /// Statuses the honest submit may get instead of 200.
    pub refusals: &'static [u16],
    /// Memory the attack may leave held as state (pending prompts and
    /// outcomes it stored), above the settled slack.
    pub kept_state: u64,
}

pub const NOTHING: Allowed = Allowed {
    refusals: &[],
    kept_state: 0,
};

/// Runs `work` against `target` for `length` while the honest client
/// loops, then checks: every honest step answered within its deadline,
/// the server's peak RSS within `bound`, and after the attack its places
/// back within `PLACES_BACK_WITHIN`, its threads and RSS back within
/// `settled_within()`.
pub fn attack(
    target: &Target,
    name: &str,
    length: Duration,
    bound: u64,
    allowed: Allowed,
    work: impl FnOnce(&Ctx) + Send,
) -> Report {
    // On a target shared by the whole suite, what the attack before left
    // (its honest client's stream) ends first, or the baseline counts it.
    settle(
        "no place taken before the attack",
        PLACES_BACK_WITHIN,
        || {
            let places = target.places();
            (places == Some((0.0, 0.0)), format!("{places:?}"))
        },
    );
    let mut honest = Honest::connect(target.addr);
    honest
        .round(&mut HonestReport::default(), &[])
        .expect("an honest round before the attack");
    let baseline = measure_baseline(target);
    let stop = AtomicBool::new(false);
    let peak = Arc::new(Mutex::new(0));
    let started = Instant::now();
    let ctx = Ctx {
        addr: target.addr,
        until: started + length,
        target,
        mixed: false,
        baseline,
    };
    let honest_report = thread::scope(|scope| {
        let sampler = scope.spawn(|| sample_rss(target, &stop, &peak));
        let honest = scope.spawn(|| honest.run(&stop, allowed.refusals));
        let attacker = scope.spawn(|| work(&ctx));
        let attacked = attacker.join();
        stop.store(true, Ordering::Release);
        let report = honest.join().expect("the honest client does not panic");
        sampler.join().unwrap();
        if let Err(panic) = attacked {
            std::panic::resume_unwind(panic);
        }
        report
    });
    let length = started.elapsed();
    let peak_rss = target.peak_rss().max(*peak.lock().unwrap());
    let recovery = recover(target, name, &baseline, allowed);
    let report = Report {
        name: name.to_string(),
        length,
        baseline,
        peak_rss,
        bound,
        honest: honest_report,
        recovery,
        anon_rss_after: target.anon_rss(),
        threads_after: target.threads(),
    };
    // The figures first, whatever fails: the soak is read for them.
    report.print();
    report.check();
    report
}

/// How soon after the attack places, threads and memory came back (each
/// counted from the attack's end), or what was seen when they did not in
/// time.
pub struct Recovery {
    pub places: Result<Duration, String>,
    pub threads: Result<Duration, String>,
    pub memory: Result<Duration, String>,
}

fn recover(target: &Target, name: &str, baseline: &Baseline, allowed: Allowed) -> Recovery {
    let ended = Instant::now();
    let places = try_settle(&format!("{name}: places back"), PLACES_BACK_WITHIN, || {
        let places = target.places();
        let seen = format!("{places:?} of {:?}", baseline.places);
        (places == Some(baseline.places), seen)
    });
    let threads = try_settle(&format!("{name}: threads back"), settled_within(), || {
        let threads = target.threads();
        let seen = format!("{threads} of {}", baseline.threads);
        (threads <= baseline.threads, seen)
    })
    .map(|_| ended.elapsed());
    let most = baseline.anon_rss + SETTLED_SLACK + allowed.kept_state;
    let memory = try_settle(&format!("{name}: memory back"), settled_within(), || {
        let rss = target.anon_rss();
        let seen = format!(
            "{} KiB anonymous of at most {} KiB; largest anonymous mappings (resident, mapped KiB): {:?}",
            rss / KIB,
            most / KIB,
            target.anon_mappings()
        );
        (rss <= most, seen)
    })
    .map(|_| ended.elapsed());
    Recovery {
        places,
        threads,
        memory,
    }
}

/// The server's figures with the honest client set up and idle. Threads
/// it started that end later (the stream's reading thread, after the
/// receive timeout) only make the baseline higher.
fn measure_baseline(target: &Target) -> Baseline {
    Baseline {
        rss: target.rss(),
        anon_rss: target.anon_rss(),
        threads: target.threads(),
        places: target.places().expect("/metrics answers"),
    }
}

fn sample_rss(target: &Target, stop: &AtomicBool, peak: &Mutex<u64>) {
    while !stop.load(Ordering::Acquire) {
        let rss = target.rss();
        let mut peak = peak.lock().unwrap();
        *peak = (*peak).max(rss);
        drop(peak);
        thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `check` until it holds; fails the test with what it last saw
/// after `within`. Returns how long it took.
pub fn settle(what: &str, within: Duration, check: impl FnMut() -> (bool, String)) -> Duration {
    try_settle(what, within, check).unwrap_or_else(|failure| panic!("{failure}"))
}

/// Polls `check` until it holds: how long it took, or what it last saw
/// once `within` has passed.
fn try_settle(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> (bool, String),
) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        let (done, seen) = check();
        if done {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= within {
            return Err(format!("{what}: not within {within:?}; last {seen}"));
        }
        thread::sleep(Duration::from_millis(50));
    }
}
