//! Test support: the honest client that keeps working while an attack
//! runs (a human's stream, and an agent and a human taking turns on a
//! keep-alive connection), timing every step against its deadline.

use crate::support::SseClient;
use serde_json::{Value, json};
use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long each step of the honest client may take. Generous: the tests
/// run in parallel on two cores, in a debug build, beside other builds
/// (load 8-11 on 2 cores made a 1 s deadline fail). What the deadline
/// proves is that an attack starves no honest step: a starved step
/// waits for the attack to end (seconds) or for ever, never 5 s and done.
/// The latencies themselves are printed, not asserted.
pub const HONEST_DEADLINE: Duration = Duration::from_secs(5);
/// The honest client's rounds start at most this often.
pub const HONEST_PACE: Duration = Duration::from_millis(10);

/// An HTTP/1.1 client on one keep-alive connection, reconnecting once when
/// the server has closed it. Every read and write has a deadline.
pub struct KeepAlive {
    addr: SocketAddr,
    reader: Option<BufReader<TcpStream>>,
}

impl KeepAlive {
    pub fn new(addr: SocketAddr) -> KeepAlive {
        KeepAlive { addr, reader: None }
    }

    pub fn get(&mut self, path: &str) -> io::Result<(u16, String)> {
        self.request("GET", path, None)
    }

    pub fn post(&mut self, path: &str, body: &Value) -> io::Result<(u16, String)> {
        self.request("POST", path, Some(&body.to_string()))
    }

    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> io::Result<(u16, String)> {
        let reused = self.reader.is_some();
        match self.exchange(method, path, body) {
            // A kept connection the server has since closed: once more.
            Err(_) if reused => self.exchange(method, path, body),
            done => done,
        }
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> io::Result<(u16, String)> {
        let mut reader = match self.reader.take() {
            Some(reader) => reader,
            None => BufReader::new(connect(self.addr)?),
        };
        let body = body.unwrap_or("");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        reader
            .get_mut()
            .write_all(format!("{head}{body}").as_bytes())?;
        let (status, text, close) = read_response(&mut reader)?;
        if !close {
            self.reader = Some(reader);
        }
        Ok((status, text))
    }
}

/// A loopback connection whose connect, reads and writes give up after
/// the honest deadline.
pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpStream::connect_timeout(&addr, HONEST_DEADLINE)?;
    socket.set_read_timeout(Some(HONEST_DEADLINE))?;
    socket.set_write_timeout(Some(HONEST_DEADLINE))?;
    Ok(socket)
}

/// One response with a `Content-Length`: status, body, and whether the
/// server closes the connection after it.
fn read_response(reader: &mut impl BufRead) -> io::Result<(u16, String, bool)> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(ErrorKind::UnexpectedEof, "closed"));
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not a status line: {line:?}")))?;
    let (mut length, mut close) = (0, false);
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let Some((name, value)) = line.trim_end().split_once(':') else {
            break;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().map_err(io::Error::other)?,
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned(), close))
}

/// Latencies of one kind of honest step.
#[derive(Default, Clone)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    /// The `percent` percentile (nearest rank), or zero when empty.
    pub fn percentile(&self, percent: usize) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        let rank = (sorted.len() * percent).div_ceil(100).max(1);
        sorted.get(rank - 1).copied().unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// What the honest client saw during an attack.
#[derive(Default)]
pub struct HonestReport {
    pub healthz: Latencies,
    pub submit: Latencies,
    pub respond: Latencies,
    pub frame: Latencies,
    /// Rounds that went all the way: submit, frame, answer, frame.
    pub rounds: usize,
    /// Submits refused as the attack allows (the memory budget: 507).
    pub refused: usize,
    pub failures: Vec<String>,
}

/// The honest client: a human's stream on `/api/events`, and an agent and
/// a human taking turns on one keep-alive connection, as the page and the
/// CLI do: `/healthz`, a clarify submit, its frame, the answer, its frame.
pub struct Honest {
    http: KeepAlive,
    stream: SseClient,
    addr: SocketAddr,
    round: u64,
}

const HONEST_SESSION: &str = "honest";

impl Honest {
    pub fn connect(addr: SocketAddr) -> Honest {
        let path = format!("/api/events?session_id={HONEST_SESSION}");
        let mut stream = SseClient::open(addr, &path, &[]);
        assert_eq!(stream.status, 200, "{}", stream.head);
        stream.events_until("ready");
        Honest {
            http: KeepAlive::new(addr),
            stream,
            addr,
            round: 0,
        }
    }

    /// Rounds until `stop`, each step timed against `HONEST_DEADLINE`, one
    /// every `HONEST_PACE` at most: a busy human and agent, not a flood
    /// (each round also leaves an outcome in the state).
    pub fn run(&mut self, stop: &AtomicBool, refusals: &[u16]) -> HonestReport {
        let mut report = HonestReport::default();
        while !stop.load(Ordering::Acquire) {
            let next = Instant::now() + HONEST_PACE;
            if let Err(failure) = self.round(&mut report, refusals) {
                report
                    .failures
                    .push(format!("round {}: {failure}", self.round));
                // Whatever state the connection was left in, start afresh.
                self.http = KeepAlive::new(self.addr);
            }
            thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        report
    }

    /// One round; `Err` names the step that failed or overran.
    pub fn round(&mut self, report: &mut HonestReport, refusals: &[u16]) -> Result<(), String> {
        self.round += 1;
        let started = Instant::now();
        let (status, body) = self
            .http
            .get("/healthz")
            .map_err(|e| format!("healthz: {e}"))?;
        timed(
            "healthz",
            started,
            &mut report.healthz,
            status == 200 && body == "ok",
        )?;
        let started = Instant::now();
        let question =
            json!({"session_id": HONEST_SESSION, "question": format!("round {}?", self.round)});
        let (status, body) = self
            .http
            .post("/api/clarify/submit", &question)
            .map_err(|e| format!("submit: {e}"))?;
        if refusals.contains(&status) {
            report.refused += 1;
            return timed("submit", started, &mut report.submit, true);
        }
        timed("submit", started, &mut report.submit, status == 200)
            .map_err(|e| format!("{e}: {status} {body}"))?;
        let id = serde_json::from_str::<Value>(&body).map_err(|e| e.to_string())?["clarify_id"]
            .as_str()
            .ok_or("no clarify_id")?
            .to_string();
        self.frame(&mut report.frame, started, |data| {
            data["pending"]["clarify_id"] == id.as_str()
        })?;
        let started = Instant::now();
        let answer = json!({"session_id": HONEST_SESSION, "clarify_id": id, "response": "yes"});
        let (status, body) = self
            .http
            .post("/api/clarify/respond", &answer)
            .map_err(|e| format!("respond: {e}"))?;
        timed("respond", started, &mut report.respond, status == 200)
            .map_err(|e| format!("{e}: {status} {body}"))?;
        self.frame(&mut report.frame, started, |data| {
            data["pending_count"] == 0
        })?;
        report.rounds += 1;
        Ok(())
    }

    /// Waits for the honest session's clarify frame that `wanted` accepts,
    /// skipping any other.
    fn frame(
        &mut self,
        latencies: &mut Latencies,
        since: Instant,
        wanted: impl Fn(&Value) -> bool,
    ) -> Result<(), String> {
        loop {
            let left = (since + HONEST_DEADLINE).saturating_duration_since(Instant::now());
            let Some(event) = self.stream.next_event(left) else {
                return Err(format!("no frame within {HONEST_DEADLINE:?}"));
            };
            if event.event == "clarify" && wanted(&event.json()) {
                return timed("frame", since, latencies, true);
            }
        }
    }
}

/// Records a step's latency; `Err` when it failed or took too long.
fn timed(step: &str, started: Instant, into: &mut Latencies, ok: bool) -> Result<(), String> {
    let took = started.elapsed();
    into.0.push(took);
    match (ok, took <= HONEST_DEADLINE) {
        (true, true) => Ok(()),
        (false, _) => Err(format!("{step} failed after {took:?}")),
        (true, false) => Err(format!("{step} took {took:?}")),
    }
}
