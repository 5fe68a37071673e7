//! Test support: a real server on port 0, a tiny HTTP client and an SSE
//! client over plain loopback sockets. Every wait has a deadline; nothing
//! sleeps to wait for something to happen.

pub mod attack;
pub mod honest;
pub mod proxy;

use askgate::{Config, Server};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Deref;
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub server: Server,
    pub addr: SocketAddr,
    client: Client,
}

impl TestServer {
    /// A server on the data directory `dir` with the legacy tokens (and the
    /// named credentials `dir` holds), then `flags`.
    pub fn with_tokens(dir: &TempDir, agent: &str, human: &str, flags: &[&str]) -> TestServer {
        let data = dir.path.to_str().unwrap();
        let tokens = [
            "--data-dir",
            data,
            "--agent-token",
            agent,
            "--human-token",
            human,
        ];
        TestServer::start(&[&tokens[..], flags].concat())
    }

    /// A server in this process, in memory on a free loopback port, open
    /// (`--insecure-no-auth`) unless `flags` give tokens (which then win)
    /// or say `--insecure-no-auth=false` (as shipped: tokens made at start,
    /// see `auth_default.rs`): most tests speak as both sides at once.
    pub fn start(flags: &[&str]) -> TestServer {
        let mut args = [
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
            "none",
            "--insecure-no-auth",
        ]
        .map(String::from)
        .to_vec();
        args.extend(flags.iter().map(|flag| flag.to_string()));
        let config = Config::parse(&args, |_| None).expect("valid flags");
        let server = start_on(config);
        let addr = server.addr();
        TestServer {
            server,
            addr,
            client: Client { addr },
        }
    }
}

/// Starts a server in this process. On a data directory that a server of
/// this process has just left, a child that another test forked meanwhile
/// may hold copies of its lock files (and so its locks, which belong to
/// the open file) until it execs, when close-on-exec closes them: a
/// restart would be refused as "in use" for those moments (issue 20:
/// `names::two_humans_…` failed 7 runs in 300 beside load, and none in 300
/// with no test spawning a process beside it). So a start refused so waits
/// for the locks to be let go (a blocking flock, not a sleep) and tries
/// again, until `DEADLINE`. Waiting before the first start is not enough:
/// a copy can also be made of a lock the wait itself or a refused attempt
/// held for a moment. A server that really runs there is still refused.
fn start_on(config: Config) -> Server {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match Server::start(config.clone()) {
            Ok(server) => return server,
            Err(error) if error.to_string().contains("in use by another askgate") => {
                let dir = config.data_dir.as_deref().expect("a data directory");
                if !wait_until_unlocked(dir, deadline) {
                    panic!("server starts: {error}");
                }
            }
            Err(error) => panic!("server starts: {error}"),
        }
    }
}

/// Whether `dir`'s lock files were both free before `deadline`: each taken
/// and let go at once.
fn wait_until_unlocked(dir: &std::path::Path, deadline: Instant) -> bool {
    use std::os::fd::AsRawFd;
    ["lock", "journal"].iter().all(|name| {
        let Ok(file) = std::fs::File::open(dir.join(name)) else {
            return true;
        };
        let (free, freed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // SAFETY: flock only reads the descriptor, which `file` keeps
            // open; dropping `file` lets go of the lock at once.
            let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0;
            drop(file);
            let _ = free.send(locked);
        });
        let left = deadline.saturating_duration_since(Instant::now());
        freed.recv_timeout(left) == Ok(true)
    })
}

impl Deref for TestServer {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

/// Speaks to a server at `addr`, in this process or another: one request
/// per connection, every read with a deadline.
#[derive(Clone, Copy, Debug)]
pub struct Client {
    pub addr: SocketAddr,
}

impl Client {
    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], "")
    }

    pub fn post(&self, path: &str, body: &Value) -> Reply {
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            &body.to_string(),
        )
    }

    /// A request with `token` as its bearer credential and `body` as JSON
    /// (none for `Value::Null`).
    pub fn call(&self, token: &str, method: &str, path: &str, body: &Value) -> Reply {
        let authorization = format!("Bearer {token}");
        let headers = [
            ("Authorization", authorization.as_str()),
            ("Content-Type", "application/json"),
        ];
        let body = match body {
            Value::Null => String::new(),
            body => body.to_string(),
        };
        self.request(method, path, &headers, &body)
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        self.raw(request_bytes(self.addr, method, path, headers, body).as_bytes())
    }

    /// A POST that may find the server gone (killed, not yet started): an
    /// error unless a whole response came back.
    pub fn try_post(&self, path: &str, body: &Value) -> std::io::Result<Reply> {
        let headers = [("Content-Type", "application/json")];
        let request = request_bytes(self.addr, "POST", path, &headers, &body.to_string());
        self.try_raw(request.as_bytes())
    }

    /// A GET that may find the server gone, as `try_post`.
    pub fn try_get(&self, path: &str) -> std::io::Result<Reply> {
        let request = request_bytes(self.addr, "GET", path, &[], "");
        self.try_raw(request.as_bytes())
    }

    /// Sends raw bytes and reads the response until the server closes.
    pub fn raw(&self, bytes: &[u8]) -> Reply {
        let mut socket = self.connect();
        socket.write_all(bytes).expect("request written");
        let mut response = Vec::new();
        let _ = socket.read_to_end(&mut response);
        Reply::parse(&response)
    }

    /// Like `raw`, but an error for a refused connection or a response cut
    /// short (no whole head, or fewer body bytes than `Content-Length`).
    pub fn try_raw(&self, bytes: &[u8]) -> std::io::Result<Reply> {
        let mut socket = TcpStream::connect_timeout(&self.addr, DEADLINE)?;
        socket.set_read_timeout(Some(DEADLINE))?;
        socket.set_write_timeout(Some(DEADLINE))?;
        socket.write_all(bytes)?;
        let mut response = Vec::new();
        socket.read_to_end(&mut response)?;
        let cut_short = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "cut short");
        let reply = Reply::try_parse(&response).ok_or_else(cut_short)?;
        let length = reply
            .header("content-length")
            .and_then(|n| n.parse::<usize>().ok());
        match length {
            Some(length) if reply.body.len() != length => Err(cut_short()),
            _ => Ok(reply),
        }
    }

    pub fn connect(&self) -> TcpStream {
        let socket = TcpStream::connect(self.addr).expect("connects");
        socket.set_read_timeout(Some(DEADLINE)).unwrap();
        socket.set_write_timeout(Some(DEADLINE)).unwrap();
        socket
    }

    pub fn stream(&self, path: &str) -> SseClient {
        SseClient::open(self.addr, path, &[])
    }

    /// Submits a clarify and returns its id.
    pub fn submit_clarify(&self, session_id: &str, question: &str) -> String {
        let body = serde_json::json!({"session_id": session_id, "question": question});
        let reply = self.post("/api/clarify/submit", &body);
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()["clarify_id"]
            .as_str()
            .expect("an id")
            .to_string()
    }

    pub fn submit_approval(&self, session_id: &str, command: &str, keys: &[&str]) -> Value {
        let body =
            serde_json::json!({"session_id": session_id, "command": command, "pattern_keys": keys});
        let reply = self.post("/api/approval/submit", &body);
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()
    }

    /// The value of one line of `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").text();
        let line = text
            .lines()
            .find(|line| line.split(' ').next() == Some(name));
        line.and_then(|line| line.rsplit(' ').next()?.parse().ok())
            .unwrap_or(f64::NAN)
    }
}

/// An HTTP/1.1 request that asks the server to close after answering.
fn request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        raw.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    raw
}

/// Reads one response (its head and a `Content-Length` body) off a
/// keep-alive connection; returns its status line.
pub fn read_one_response(reader: &mut BufReader<TcpStream>) -> String {
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
    }
    reader.read_exact(&mut vec![0; length]).unwrap();
    status.trim_end().to_string()
}

/// Re-checks `condition` until it holds, failing the test after `deadline`.
/// Used for state the server reaches asynchronously (a disconnect noticed);
/// it re-asks the server rather than sleeping a fixed time.
pub fn eventually(what: &str, deadline: Duration, condition: &mut dyn FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !condition() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::yield_now();
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `work` on its own thread and fails the test if it has not finished
/// within `deadline` (a deadlock shows up as this failure, not a hang).
pub fn within<T: Send + 'static>(
    deadline: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, finished) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = done.send(work());
    });
    match finished.recv_timeout(deadline) {
        Ok(value) => value,
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("a worker that ends sends its value"),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("not finished within {deadline:?}: deadlock or starvation")
        }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    fn parse(response: &[u8]) -> Reply {
        Reply::try_parse(response).expect("a complete response head")
    }

    fn try_parse(response: &[u8]) -> Option<Reply> {
        let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&response[..split]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
            .collect();
        Some(Reply {
            status,
            headers,
            body: response[split + 4..].to_vec(),
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.text()))
    }

    /// A wait's answer without the receipt every decision carries
    /// (`receipts.rs` checks those), for comparing outcomes whole.
    pub fn outcome(&self) -> Value {
        let mut value = self.json();
        if let Some(fields) = value.as_object_mut() {
            fields.remove("receipt");
        }
        value
    }
}

/// One parsed SSE event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|_| panic!("not JSON: {}", self.data))
    }

    /// `pending_count` of the frame's data.
    pub fn count(&self) -> u64 {
        self.json()["pending_count"]
            .as_u64()
            .expect("pending_count")
    }
}

/// A streaming client that decodes HTTP/1.1 chunked framing and SSE.
pub struct SseClient {
    reader: BufReader<TcpStream>,
    pub status: u16,
    pub head: String,
    /// Decoded body bytes not yet parsed into events.
    pending: String,
    pub comments: Vec<String>,
    pub ended: bool,
}

impl SseClient {
    pub fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> SseClient {
        let socket = TcpStream::connect(addr).expect("connects");
        socket.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut request =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        (&socket)
            .write_all(request.as_bytes())
            .expect("request written");
        let mut reader = BufReader::new(socket);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("response head");
            head.push_str(&line);
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        SseClient {
            reader,
            status,
            head,
            pending: String::new(),
            comments: Vec::new(),
            ended: false,
        }
    }

    pub fn socket(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// Reads the next chunk of the body; `false` once the body has ended.
    fn read_chunk(&mut self, timeout: Duration) -> std::io::Result<bool> {
        self.socket().set_read_timeout(Some(timeout))?;
        let mut size_line = String::new();
        if self.reader.read_line(&mut size_line)? == 0 {
            self.ended = true;
            return Ok(false);
        }
        let size = usize::from_str_radix(size_line.trim(), 16).expect("a chunk size");
        let mut chunk = vec![0; size + 2];
        self.reader.read_exact(&mut chunk)?;
        assert_eq!(&chunk[size..], b"\r\n", "chunk ends with CRLF");
        if size == 0 {
            self.ended = true;
            return Ok(false);
        }
        self.pending
            .push_str(std::str::from_utf8(&chunk[..size]).expect("utf-8"));
        Ok(true)
    }

    /// The next event within `timeout`, or `None` (timeout or end of stream).
    pub fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(event) = self.take_event() {
                return Some(event);
            }
            let left = end
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())?;
            match self.read_chunk(left) {
                Ok(true) => {}
                Ok(false) | Err(_) => return None,
            }
        }
    }

    pub fn expect_event(&mut self, what: &str) -> Event {
        self.next_event(DEADLINE)
            .unwrap_or_else(|| panic!("no {what} event within {DEADLINE:?}"))
    }

    /// Events until (and including) one named `name`.
    pub fn events_until(&mut self, name: &str) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            let event = self.expect_event(name);
            let done = event.event == name;
            events.push(event);
            if done {
                return events;
            }
        }
    }

    /// Waits until the server ends the body with its last chunk.
    pub fn expect_end(&mut self, timeout: Duration) {
        let end = Instant::now() + timeout;
        while !self.ended {
            let left = end
                .checked_duration_since(Instant::now())
                .expect("stream ended in time");
            self.read_chunk(left)
                .expect("no error before the last chunk");
        }
    }

    /// After the last chunk, the server closes its side of the connection.
    pub fn expect_closed(&mut self, timeout: Duration) {
        self.socket().set_read_timeout(Some(timeout)).unwrap();
        let mut rest = Vec::new();
        let read = self.reader.read_to_end(&mut rest);
        assert!(
            read.is_ok() && rest.is_empty(),
            "closed with nothing more: {read:?} {rest:?}"
        );
    }

    /// Parses one complete frame out of the buffer, remembering comments.
    fn take_event(&mut self) -> Option<Event> {
        loop {
            let end = self.pending.find("\n\n")?;
            let block: String = self.pending.drain(..end + 2).collect();
            let mut event = Event {
                id: None,
                event: "message".into(),
                data: String::new(),
            };
            let mut has_data = false;
            for line in block.lines() {
                if let Some(comment) = line.strip_prefix(':') {
                    self.comments.push(comment.trim().to_string());
                } else if let Some((field, value)) = line.split_once(':') {
                    let value = value.strip_prefix(' ').unwrap_or(value).to_string();
                    match field {
                        "id" => event.id = Some(value),
                        "event" => event.event = value,
                        "data" => {
                            if has_data {
                                event.data.push('\n');
                            }
                            event.data.push_str(&value);
                            has_data = true;
                        }
                        _ => {}
                    }
                }
            }
            if has_data {
                return Some(event);
            }
        }
    }

    /// Reads until a comment arrives; returns it.
    pub fn next_comment(&mut self, timeout: Duration) -> Option<String> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(event) = self.take_event() {
                panic!("expected a comment, got {event:?}");
            }
            if !self.comments.is_empty() {
                return Some(self.comments.remove(0));
            }
            let left = end
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())?;
            if !matches!(self.read_chunk(left), Ok(true)) {
                return None;
            }
        }
    }
}

/// A directory of its own under the system's temporary one, removed when dropped.
pub struct TempDir {
    pub path: std::path::PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("askgate-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a temporary directory");
        TempDir { path }
    }

    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
