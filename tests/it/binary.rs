//! The real `askgate` binary: the server process, and the `clarify` and
//! `approve` commands end to end with their exit codes.

use crate::support::{
    Client, DEADLINE, SseClient, TempDir, TestServer, eventually, read_one_response,
};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::Deref;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The binary, with none of the user's askgate variables, and a state
/// directory under the system's temporary one: a server a test starts
/// without `--data-dir` never writes to the real home.
pub fn askgate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_askgate"));
    let state = std::env::temp_dir().join(format!("askgate-it-state-{}", std::process::id()));
    command
        .env_remove("ASKGATE_URL")
        .env_remove("ASKGATE_TOKEN")
        .env_remove("ASKGATE_CA_FILE")
        .env_remove("ASKGATE_DATA_DIR")
        .env_remove("ASKGATE_INSECURE_NO_AUTH")
        .env_remove("ASKGATE_VERIFY_KEY")
        .env("XDG_STATE_HOME", state);
    command
}

/// A stdout whose reader is gone before the child starts, as `| head`'s is
/// once it has its lines: every write fails with EPIPE.
pub fn closed_pipe() -> Stdio {
    use std::os::fd::FromRawFd;
    let mut ends = [0; 2];
    // SAFETY: pipe writes two new descriptors into `ends`; the read end is
    // closed at once and the write end owned by the `OwnedFd`.
    unsafe {
        assert_eq!(libc::pipe(ends.as_mut_ptr()), 0);
        libc::close(ends[0]);
        Stdio::from(std::os::fd::OwnedFd::from_raw_fd(ends[1]))
    }
}

/// Starts `askgate clarify`/`approve` against `server`, returning the child.
pub fn ask(server: SocketAddr, args: &[&str]) -> Child {
    ask_at(&format!("http://{server}"), askgate().args(args))
}

/// Runs `command` (askgate with its arguments) against the server at `url`.
pub fn ask_at(url: &str, command: &mut Command) -> Child {
    command
        .env("ASKGATE_URL", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("askgate runs")
}

/// Waits for the child with a deadline, killing it if it overstays.
pub fn finish(child: Child, deadline: Duration) -> Output {
    let pid = child.id().to_string();
    let (done, exited) = std::sync::mpsc::channel();
    thread::spawn(move || done.send(child.wait_with_output().unwrap()));
    match exited.recv_timeout(deadline) {
        Ok(output) => output,
        Err(_) => {
            let _ = Command::new("kill").arg(&pid).status();
            panic!(
                "askgate did not exit within {deadline:?}: {:?}",
                exited.recv()
            );
        }
    }
}

/// Blocks until a prompt of this kind is pending in the session (long-poll).
pub fn pending_head(server: &Client, kind: &str, session_id: &str) -> Value {
    let mut since = 0;
    loop {
        let poll = server
            .get(&format!(
                "/api/{kind}/pending?session_id={session_id}&since={since}&wait=5"
            ))
            .json();
        if !poll["pending"].is_null() {
            return poll["pending"].clone();
        }
        since = poll["version"].as_u64().unwrap();
    }
}

/// Answers the head of the session's queue of this kind (`response` for a
/// clarify, `choice` for an approval) and returns that head.
pub fn answer(server: &TestServer, kind: &str, session_id: &str, answer: &str) -> Value {
    let head = pending_head(server, kind, session_id);
    let id_field = format!("{kind}_id");
    let answer_field = if kind == "clarify" {
        "response"
    } else {
        "choice"
    };
    let id = head[&id_field].clone();
    let body = json!({"session_id": session_id, id_field: id, answer_field: answer});
    let reply = server.post(&format!("/api/{kind}/respond"), &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    head
}

#[test]
fn clarify_into_a_closed_pipe_exits_0_without_a_panic() {
    let server = TestServer::start(&[]);
    let child = askgate()
        .env("ASKGATE_URL", format!("http://{}", server.addr))
        .args(["clarify", "--session", "piped", "Ship it?"])
        .stdout(closed_pipe())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let head = pending_head(&server, "clarify", "piped");
    let body = json!({"session_id": "piped", "clarify_id": head["clarify_id"], "response": "yes"});
    assert_eq!(server.post("/api/clarify/respond", &body).status, 200);
    let output = finish(child, DEADLINE);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(0), "{stderr}");
}

#[test]
fn clarify_prints_the_answer_and_exits_0() {
    let server = TestServer::start(&[]);
    let child = ask(
        server.addr,
        &[
            "clarify",
            "--session",
            "demo",
            "Ship it?",
            "--choice",
            "yes",
            "--choice",
            "no",
        ],
    );
    let head = pending_head(&server, "clarify", "demo");
    assert_eq!(
        (head["question"].as_str(), head["choices_offered"].clone()),
        (Some("Ship it?"), json!(["yes", "no"]))
    );
    let body = json!({"session_id": "demo", "clarify_id": head["clarify_id"], "response": "yes"});
    assert_eq!(server.post("/api/clarify/respond", &body).status, 200);
    let output = finish(child, DEADLINE);
    assert_eq!(
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).as_ref()
        ),
        (Some(0), "yes\n")
    );
}

#[test]
fn approve_exit_codes_follow_the_choice() {
    let server = TestServer::start(&[]);
    for (n, (choice, code)) in [("once", 0), ("session", 0), ("always", 0), ("deny", 1)]
        .into_iter()
        .enumerate()
    {
        let session_id = format!("ap{n}");
        // Rules cover the command the human saw: each round asks a new one.
        let command = format!("reboot {n}");
        let child = ask(
            server.addr,
            &[
                "approve",
                "--session",
                &session_id,
                "--command",
                &command,
                "--pattern",
                &format!("p{n}"),
            ],
        );
        let head = pending_head(&server, "approval", &session_id);
        let body =
            json!({"session_id": session_id, "approval_id": head["approval_id"], "choice": choice});
        server.post("/api/approval/respond", &body);
        assert_eq!(
            finish(child, DEADLINE).status.code(),
            Some(code),
            "{choice}"
        );
    }
    // After `session`, the same command in that session is approved at once.
    let again = finish(
        ask(
            server.addr,
            &[
                "approve",
                "--session",
                "ap1",
                "--command",
                "reboot 1",
                "--pattern",
                "p1",
            ],
        ),
        DEADLINE,
    );
    assert_eq!(again.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("approved (session) by an earlier rule")
    );
    assert_eq!(
        server.get("/api/approval/pending?session_id=ap1").json()["pending_count"],
        0,
        "never shown"
    );
}

#[test]
fn expired_and_cancelled_prompts_exit_3() {
    let server = TestServer::start(&[]);
    let expired = finish(
        ask(
            server.addr,
            &[
                "approve",
                "--session",
                "e",
                "--command",
                "x",
                "--timeout",
                "1",
            ],
        ),
        DEADLINE,
    );
    assert_eq!(expired.status.code(), Some(3));
    let child = ask(server.addr, &["clarify", "--session", "k", "cancel me?"]);
    pending_head(&server, "clarify", "k");
    server.post("/api/clarify/cancel", &json!({"session_id": "k"}));
    let cancelled = finish(child, DEADLINE);
    assert_eq!(cancelled.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&cancelled.stderr).contains("cancelled"));
    let child = ask(
        server.addr,
        &["approve", "--session", "k2", "--command", "rm"],
    );
    pending_head(&server, "approval", "k2");
    server.post("/api/approval/cancel", &json!({"session_id": "k2"}));
    assert_eq!(finish(child, DEADLINE).status.code(), Some(3));
}

#[test]
fn usage_and_server_errors_exit_2_with_a_clear_message() {
    let server = TestServer::start(&[]);
    let cases: [(&[&str], &str); 4] = [
        (&["clarify", "no session"], "--session is required"),
        (&["approve", "--session", "s"], "--command is required"),
        (
            &["clarify", "--session", "bad id", "q"],
            "invalid session_id",
        ),
        (
            &[
                "clarify",
                "--session",
                "s",
                "q",
                "--server",
                "http://127.0.0.1:1",
            ],
            "cannot reach the server",
        ),
    ];
    for (args, message) in cases {
        let output = finish(ask(server.addr, args), DEADLINE);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

/// A TCP relay in front of the server that can be switched off: while off,
/// it cuts the connections it carries and drops new ones at once, as an
/// unreachable server would.
struct Relay {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
    refused: Arc<AtomicUsize>,
}

impl Relay {
    fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let relay = Relay {
            addr: listener.local_addr().unwrap(),
            up: Arc::new(AtomicBool::new(true)),
            live: Arc::default(),
            refused: Arc::default(),
        };
        let (up, live, refused) = (relay.up.clone(), relay.live.clone(), relay.refused.clone());
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                // Checked and recorded under the lock, so `down` cuts it.
                let mut carried = live.lock().unwrap();
                if !up.load(Ordering::Acquire) {
                    refused.fetch_add(1, Ordering::AcqRel);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                carried.push(client.try_clone().unwrap());
                drop(carried);
                let pipe = |mut from: TcpStream, mut to: TcpStream| {
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    })
                };
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        relay
    }

    fn down(&self) {
        let mut carried = self.live.lock().unwrap();
        self.up.store(false, Ordering::Release);
        for socket in carried.drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn the_wait_survives_a_briefly_unreachable_server_and_gives_up_clearly() {
    let server = TestServer::start(&[]);
    let relay = Relay::start(server.addr);
    let child = ask(
        relay.addr,
        &["clarify", "--session", "flaky", "still there?"],
    );
    let head = pending_head(&server, "clarify", "flaky");
    eventually("the command waits", DEADLINE, &mut || {
        server.metric("askgate_longpolls_parked") == 1.0
    });
    relay.down();
    // The command's wait is cut; it retries and is refused at least once.
    eventually("a retry is refused", DEADLINE, &mut || {
        relay.refused.load(Ordering::Acquire) >= 1
    });
    let body = json!({"session_id": "flaky", "clarify_id": head["clarify_id"], "response": "yes"});
    server.post("/api/clarify/respond", &body);
    relay.up.store(true, Ordering::Release);
    let output = finish(child, Duration::from_secs(10));
    assert_eq!(
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).as_ref()
        ),
        (Some(0), "yes\n")
    );

    let child = ask(
        relay.addr,
        &[
            "approve",
            "--session",
            "gone",
            "--command",
            "x",
            "--retry-secs",
            "1",
        ],
    );
    pending_head(&server, "approval", "gone");
    eventually("the command waits", DEADLINE, &mut || {
        server.metric("askgate_longpolls_parked") == 1.0
    });
    relay.down();
    let output = finish(child, Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("has not answered for 1 s") && stderr.contains("may still be pending"),
        "{stderr}"
    );
}

/// The server binary, on a free port, killed when dropped; its stderr is
/// collected as it comes.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    client: Client,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<thread::JoinHandle<()>>,
}

/// A server that exited instead of printing its address.
#[derive(Debug)]
pub struct Exited {
    pub code: Option<i32>,
    pub stderr: String,
}

impl ServerProcess {
    /// Memory only, on a free port.
    pub fn start(flags: &[&str]) -> ServerProcess {
        ServerProcess::start_with(askgate(), flags)
    }

    /// Starts the server through `command`, which ends by running askgate;
    /// memory only unless `flags` name a `--data-dir` (later flags win).
    pub fn start_with(command: Command, flags: &[&str]) -> ServerProcess {
        let flags = [&["--data-dir", "none"], flags].concat();
        ServerProcess::launch(command, &flags).unwrap_or_else(|exited| panic!("{exited:?}"))
    }

    /// `serve --bind 127.0.0.1:0 --log-level warn --insecure-no-auth`, then
    /// `flags`: the server's own defaults for everything else (its data
    /// directory too: give one, or set `XDG_STATE_HOME`, so that a test
    /// never writes to the real home). Tokens in `flags` win over
    /// `--insecure-no-auth`; `--insecure-no-auth=false` is the shipped
    /// default (tokens made at start).
    /// Returns once the first line of stdout names the address, or what the
    /// server said if it exited instead.
    pub fn launch(mut command: Command, flags: &[&str]) -> Result<ServerProcess, Exited> {
        let mut child = command
            .args(["serve", "--bind", "127.0.0.1:0", "--log-level", "warn"])
            .arg("--insecure-no-auth")
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_reader = Some(collect_lines(child.stderr.take().unwrap(), stderr.clone()));
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        let mut server = ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            client: Client {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            },
            stderr,
            stderr_reader,
        };
        let Some(addr) = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
        else {
            let code = server.child.wait().unwrap().code();
            return Err(Exited {
                code,
                stderr: server.stderr_to_end(),
            });
        };
        server.addr = addr;
        server.client = Client { addr };
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// False once the process has ended, by itself or a signal.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGKILL, as a crash or `kill -9` would end it; returns its stderr.
    pub fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr_to_end()
    }

    /// Everything written to stderr, once the process is gone.
    pub fn stderr_to_end(&mut self) -> String {
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        self.stderr()
    }

    /// Threads of the server process.
    pub fn threads(&self) -> usize {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).unwrap();
        tasks.count()
    }

    /// Threads of the server process with this name.
    pub fn threads_named(&self, name: &str) -> usize {
        self.thread_names()
            .iter()
            .filter(|comm| *comm == name)
            .count()
    }

    /// The resident KiB of the server's largest anonymous mapping (its
    /// heap and threads' stacks included, the main thread's stack not).
    pub fn largest_anonymous_kib(&self) -> u64 {
        let anonymous = self.resident_kib(&|_, name| name.is_none_or(|name| name == "[heap]"));
        anonymous.into_iter().max().unwrap_or(0)
    }

    /// The resident KiB of the server program's own code and read-only
    /// data (its file's mappings that are not writable).
    pub fn code_kib(&self) -> u64 {
        let exe = std::fs::read_link(format!("/proc/{}/exe", self.child.id())).unwrap();
        let exe = exe.to_str().unwrap().to_string();
        let code = self.resident_kib(&|perms, name| !perms.contains('w') && name == Some(&exe));
        code.into_iter().sum()
    }

    /// The resident KiB of each mapping of the server for which `pick`,
    /// given its permissions and its name, says yes.
    fn resident_kib(&self, pick: &dyn Fn(&str, Option<&str>) -> bool) -> Vec<u64> {
        let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", self.child.id())).unwrap();
        let (mut picked, mut resident) = (false, Vec::new());
        for line in smaps.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields
                .first()
                .is_some_and(|first| first.contains('-') && !first.ends_with(':'))
            {
                picked = pick(fields[1], fields.get(5).copied());
            } else if picked && fields.first() == Some(&"Rss:") {
                resident.push(fields[1].parse().unwrap());
            }
        }
        resident
    }

    /// The names of the server's threads, sorted.
    pub fn thread_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tasks().into_iter().map(|(_, name)| name).collect();
        names.sort();
        names
    }

    /// The ids of the server's threads with this name, sorted.
    pub fn thread_ids(&self, name: &str) -> Vec<u32> {
        let tasks = self.tasks().into_iter();
        let mut ids: Vec<u32> = tasks
            .filter(|(_, comm)| comm == name)
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        ids
    }

    /// How many times the server's thread `id` gave up the CPU to wait
    /// (`None` once it has ended).
    pub fn wakes(&self, id: u32) -> Option<u64> {
        let path = format!("/proc/{}/task/{id}/status", self.child.id());
        let status = std::fs::read_to_string(path).ok()?;
        let line = status
            .lines()
            .find(|line| line.starts_with("voluntary_ctxt_switches:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Each thread of the server: its id and name.
    fn tasks(&self) -> Vec<(u32, String)> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).unwrap();
        let task = |path: std::path::PathBuf| {
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            Some((
                path.file_name()?.to_str()?.parse().ok()?,
                comm.trim().to_string(),
            ))
        };
        tasks.filter_map(|entry| task(entry.ok()?.path())).collect()
    }
}

impl Deref for ServerProcess {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Appends each line `from` gives to `into`, until it ends.
fn collect_lines(
    from: impl Read + Send + 'static,
    into: Arc<Mutex<String>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            let mut text = into.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    })
}

#[test]
fn the_server_binary_serves_health_and_frees_a_gone_client_s_threads() {
    let server = ServerProcess::start(&["--keepalive-secs", "1"]);
    assert_eq!(server.get("/healthz").text(), "ok");
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(b"GET /api/clarify/stream?session_id=t HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut first = [0; 64];
    assert!(stream.read(&mut first).unwrap() > 0);
    assert_eq!(server.threads_named("askgate-stream"), 1);
    let closed = Instant::now();
    drop(stream);
    eventually(
        "the stream thread ends",
        Duration::from_secs(2),
        &mut || server.threads_named("askgate-stream") == 0,
    );
    assert!(closed.elapsed() < Duration::from_secs(2));
    assert!(
        server
            .get("/metrics")
            .text()
            .contains("askgate_streams_open 0")
    );
}

#[test]
fn an_idle_server_runs_only_the_threads_idle_work_needs() {
    let dir = TempDir::new("idle-threads");
    let data = dir.join("data");
    let server = ServerProcess::start(&["--data-dir", data.to_str().unwrap()]);
    // The main thread (signals), tiny_http's accept thread, the journal's
    // writer and the timer (expiry, sweeps, trims): no connection thread,
    // worker, fan-out or audit writer waits while nothing happens
    // (BENCHMARKS.md, issue 23).
    let idle = [
        "askgate",
        "askgate-expiry",
        "askgate-journal",
        "http-accept",
    ];
    eventually("only the idle threads run", DEADLINE, &mut || {
        server.thread_names() == idle
    });
    // The audit file's writer starts with the first line to write.
    server.submit_clarify("idle", "which one?");
    eventually("the audit writer starts", DEADLINE, &mut || {
        server.threads_named("askgate-audit") == 1
    });
}

#[test]
fn an_idle_server_keeps_no_large_buffer_resident() {
    let dir = TempDir::new("idle-memory");
    let data = dir.join("data");
    let server = ServerProcess::start(&["--data-dir", data.to_str().unwrap()]);
    eventually("the idle threads run", DEADLINE, &mut || {
        server.threads_named("askgate-expiry") == 1
    });
    // Queues are made with the thread that reads them: the audit file's
    // (128 KiB, every slot written when made) was resident from the start
    // while no line was written (BENCHMARKS.md, idle RSS). Heap, thread
    // stacks and the rest stay well under 64 KiB each.
    let largest = server.largest_anonymous_kib();
    assert!(
        largest < 64,
        "an idle server's largest anonymous mapping holds {largest} KiB"
    );
}

/// A server that trims every `ms` milliseconds after activity, and whose
/// fan-out thread ends once idle that long (`ASKGATE_TEST_TRIM_MS`).
fn trimming_every(ms: &str) -> ServerProcess {
    trimming_every_with(ms, &[])
}

/// The same, with these flags.
fn trimming_every_with(ms: &str, args: &[&str]) -> ServerProcess {
    let mut command = askgate();
    command.env("ASKGATE_TEST_TRIM_MS", ms);
    ServerProcess::start_with(command, args)
}

#[test]
fn the_fan_out_thread_ends_when_idle_and_every_change_after_reaches_every_stream_in_order() {
    // Ending hands what the thread freed back to the allocator's trims
    // (BENCHMARKS.md, "the long-lived threads give their caches back").
    let server = trimming_every("3");
    let mut streams: Vec<SseClient> = (0..3)
        .map(|_| {
            let mut stream = server.stream("/api/clarify/stream?session_id=f");
            stream.expect_event("initial");
            stream
        })
        .collect();
    for count in 1..=40 {
        // Some changes come once the thread has ended, the others at
        // once: while it runs, or as it decides to end.
        if count % 4 == 0 {
            eventually("the idle fan-out thread ends", DEADLINE, &mut || {
                server.threads_named("askgate-fanout") == 0
            });
        }
        server.submit_clarify("f", &format!("question {count}"));
        for stream in &mut streams {
            assert_eq!(stream.expect_event("clarify").count(), count);
        }
    }
    eventually("the idle fan-out thread ends", DEADLINE, &mut || {
        server.threads_named("askgate-fanout") == 0
    });
}

#[test]
fn the_timer_goes_on_on_a_fresh_thread_after_each_trim_and_still_expires_and_trims() {
    let server = trimming_every("50");
    // A thread is named by itself, once it runs.
    let mut idle = Vec::new();
    eventually("the timer is named", DEADLINE, &mut || {
        idle = server.thread_ids("askgate-expiry");
        idle.len() == 1
    });
    let submitted = server.post(
        "/api/clarify/submit",
        &json!({"session_id": "t", "question": "short-lived?", "timeout_seconds": 1}),
    );
    let id = submitted.json()["clarify_id"].as_str().unwrap().to_string();
    // A trim after the activity hands over; the fresh thread trims and
    // hands over again.
    let handed_over = |from: &[u32]| {
        let mut ids = Vec::new();
        eventually("the timer goes on on a fresh thread", DEADLINE, &mut || {
            ids = server.thread_ids("askgate-expiry");
            ids.len() == 1 && ids != from
        });
        ids
    };
    let fresh = handed_over(&idle);
    handed_over(&fresh);
    let path = format!("/api/clarify/wait?session_id=t&clarify_id={id}&timeout=30");
    assert_eq!(server.get(&path).outcome(), json!({"status": "expired"}));
}

#[test]
fn the_code_pages_activity_read_in_are_given_back_once_the_server_is_quiet() {
    // A trim comes at least one period after the last activity, so the
    // pages are read while the activity's are still in.
    let server = trimming_every("2000");
    let idle = server.code_kib();
    for file in [
        "/",
        "/app.js",
        "/actions.js",
        "/forms.js",
        "/rules.js",
        "/style.css",
    ] {
        assert_eq!(server.get(file).status, 200, "{file}");
    }
    server.submit_approval("c", "make build", &[]);
    let denied = server.post(
        "/api/approval/respond",
        &json!({"session_id": "c", "choice": "deny"}),
    );
    assert_eq!(denied.status, 200, "{}", denied.text());
    assert_eq!(server.get("/api/nothing/here").status, 404);
    let busy = server.code_kib();
    assert!(
        busy > idle,
        "the activity read code in: {idle} -> {busy} KiB"
    );
    // Left resident, they were a megabyte after the hostile suite
    // (BENCHMARKS.md, "code pages").
    let trims = Duration::from_secs(30);
    eventually(
        "the activity's code pages are given back",
        trims,
        &mut || server.code_kib() < busy - (busy - idle) / 2,
    );
    // What runs next reads its pages back.
    assert_eq!(server.get("/app.js").status, 200);
    server.submit_clarify("c", "still there?");
}

#[test]
fn the_accept_thread_goes_on_on_a_fresh_thread_at_a_trim_after_a_connection_and_still_accepts() {
    // At its next turn after a trim asked (tiny_http patch 26): at most
    // the receive timeout (the header timeout, which the listener has too).
    let server = trimming_every_with("50", &["--header-timeout-secs", "1"]);
    let mut idle = Vec::new();
    eventually("the accept thread is named", DEADLINE, &mut || {
        idle = server.thread_ids("http-accept");
        idle.len() == 1
    });
    assert_eq!(server.get("/healthz").text(), "ok");
    let mut fresh = Vec::new();
    eventually("accepting goes on on a fresh thread", DEADLINE, &mut || {
        fresh = server.thread_ids("http-accept");
        fresh.len() == 1 && fresh != idle
    });
    assert_eq!(server.get("/healthz").text(), "ok");
}

#[test]
fn the_accept_thread_idle_after_a_connection_stays_until_a_trim() {
    // A thread's end maps glibc's code for it (libc's pages that nothing
    // else runs): the accept thread ends only with a trim, as the timer's
    // does, not while streams open (BENCHMARKS.md, memory per stream at 100).
    let server = trimming_every_with("3600000", &["--header-timeout-secs", "1"]);
    assert_eq!(server.get("/healthz").text(), "ok");
    let accepting = server.thread_ids("http-accept");
    assert_eq!(accepting.len(), 1);
    // accept() returns each receive timeout (1 s) when idle: a wake each.
    let woken = server.wakes(accepting[0]).unwrap();
    eventually("the accept thread wakes twice idle", DEADLINE, &mut || {
        server
            .wakes(accepting[0])
            .is_none_or(|wakes| wakes >= woken + 2)
    });
    assert_eq!(server.thread_ids("http-accept"), accepting);
    assert_eq!(server.get("/healthz").text(), "ok");
}

#[test]
fn a_stream_frees_the_thread_that_read_its_request_at_once() {
    // Held until the receive timeout, the reading threads would stay a minute.
    let server = ServerProcess::start(&["--header-timeout-secs", "60"]);
    // Once a request was answered, its connection's thread is there (it
    // ends after 5 s idle).
    assert_eq!(server.get("/healthz").text(), "ok");
    let idle = server.threads();
    let streams: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut stream = TcpStream::connect(server.addr).unwrap();
            stream
                .write_all(b"GET /api/events?session_id=t HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
            stream.set_read_timeout(Some(DEADLINE)).unwrap();
            assert!(stream.read(&mut [0; 64]).unwrap() > 0);
            stream
        })
        .collect();
    assert_eq!(server.threads_named("askgate-stream"), 8);
    // Reading threads leave after 5 s idle.
    eventually("one thread per stream", Duration::from_secs(8), &mut || {
        server.threads() <= idle + streams.len()
    });
}

#[test]
fn requests_are_served_on_their_connections_threads_and_start_no_other() {
    // Held until the receive timeout, the connections keep their threads.
    let server = ServerProcess::start(&["--header-timeout-secs", "60"]);
    // A thread is named by itself, once it runs.
    eventually("the idle threads are named", DEADLINE, &mut || {
        server.threads_named("askgate") == 1
    });
    let idle = server.thread_names();
    let mut connections: Vec<(TcpStream, BufReader<TcpStream>)> = (0..4)
        .map(|_| {
            let socket = TcpStream::connect(server.addr).unwrap();
            socket.set_read_timeout(Some(DEADLINE)).unwrap();
            let reader = BufReader::new(socket.try_clone().unwrap());
            (socket, reader)
        })
        .collect();
    for _ in 0..10 {
        for (socket, reader) in &mut connections {
            socket
                .write_all(
                    b"GET /api/clarify/pending?session_id=t HTTP/1.1\r\nHost: localhost\r\n\r\n",
                )
                .unwrap();
            assert_eq!(read_one_response(reader), "HTTP/1.1 200 OK");
        }
    }
    // One thread per connection, and nothing else: no worker, no spare.
    let mut expected = [idle, vec!["http-conn".to_string(); 4]].concat();
    expected.sort();
    assert_eq!(server.thread_names(), expected);
}

#[test]
fn the_server_raises_its_soft_open_file_limit_to_the_hard_one() {
    let mut limited = Command::new("sh");
    limited.args([
        "-c",
        "ulimit -Sn 256 && exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_askgate"),
    ]);
    let server = ServerProcess::start_with(limited, &[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child.id())).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(
        numbers[0], numbers[1],
        "soft limit raised to the hard one: {line}"
    );
    assert_ne!(numbers[0], "256", "{line}");
}

#[test]
fn running_out_of_file_descriptors_does_not_stop_the_listener_for_good() {
    // A shell lowers the limit, then becomes askgate.
    let mut limited = Command::new("sh");
    limited.args([
        "-c",
        "ulimit -n 48 && exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_askgate"),
    ]);
    let server = ServerProcess::start_with(limited, &["--header-timeout-secs", "1"]);
    let mut held = Vec::new();
    for _ in 0..80 {
        if let Ok(socket) = TcpStream::connect(server.addr) {
            held.push(socket);
        }
    }
    drop(held);
    // Once the connections are gone, the server accepts again.
    eventually(
        "the server accepts again",
        Duration::from_secs(5),
        &mut || {
            let Ok(mut socket) = TcpStream::connect(server.addr) else {
                return false;
            };
            let _ = socket.set_read_timeout(Some(Duration::from_secs(1)));
            let _ = socket.write_all(
                b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            );
            let mut response = String::new();
            let _ = socket.read_to_string(&mut response);
            response.ends_with("\r\n\r\nok")
        },
    );
}

#[test]
fn answers_slower_than_the_receive_timeout_neither_kill_threads_nor_mislead_keep_alive() {
    // `--workers` is accepted and has no effect (docs/PROTOCOL.md §8).
    let server = ServerProcess::start(&["--workers", "1", "--header-timeout-secs", "1"]);
    // A body over 1 KiB, trickled past the timeout, is read on its
    // connection's thread, which answers it when it is whole.
    let mut slow = TcpStream::connect(server.addr).unwrap();
    let body = format!(
        r#"{{"session_id": "slow", "question": "{}"}}"#,
        "q".repeat(2000)
    );
    let head = format!(
        "POST /api/clarify/submit HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).unwrap();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    slow.write_all(first).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut nothing = [0; 1];
    assert!(
        slow.read(&mut nothing).is_err(),
        "no answer before the body is whole"
    );
    slow.write_all(&rest[..rest.len() - 1]).unwrap();
    assert!(
        slow.read(&mut nothing).is_err(),
        "no answer before the body is whole"
    );
    slow.write_all(&rest[rest.len() - 1..]).unwrap();
    slow.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut response = String::new();
    let _ = slow.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // A long-poll answered after the timeout is parked on its connection's
    // own thread, which then reads the next request: the connection stays
    // open, and its next request is answered.
    let mut kept = TcpStream::connect(server.addr).unwrap();
    kept.set_read_timeout(Some(DEADLINE)).unwrap();
    let poll = "GET /api/clarify/pending?session_id=slow&since=1&wait=1.5 HTTP/1.1\r\nHost: localhost\r\n\r\n";
    kept.write_all(poll.as_bytes()).unwrap();
    let mut reader = BufReader::new(kept.try_clone().unwrap());
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        assert!(reader.read_line(&mut head).unwrap() > 0, "{head}");
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let length: usize = head
        .to_ascii_lowercase()
        .lines()
        .find_map(|line| {
            line.strip_prefix("content-length:")
                .map(|n| n.trim().parse().unwrap())
        })
        .expect("a length");
    reader.read_exact(&mut vec![0; length]).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert!(read_one_response(&mut reader).starts_with("HTTP/1.1 200"));
    assert_eq!(server.get("/healthz").text(), "ok");
    assert!(!server.stderr().contains("panicked"), "{}", server.stderr());
}

#[test]
fn help_goes_to_stdout_and_exits_0_for_every_command() {
    let cases: [(&[&str], &str); 8] = [
        (&["--help"], "askgate clarify"),
        (&["-h"], "askgate clarify"),
        (&["serve", "--help"], "--bind"),
        (&["serve", "--bind", "127.0.0.1:0", "-h"], "--bind"),
        (&["clarify", "--help"], "askgate clarify --session"),
        (
            &["approve", "--session", "s", "--help"],
            "askgate approve --session",
        ),
        (&["mcp", "--help"], "askgate mcp"),
        (&["journal", "--help"], "askgate journal check"),
    ];
    for (args, expected) in cases {
        let output = askgate().args(args).output().expect("askgate runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stdout}");
        assert!(stdout.contains(expected), "{args:?}: {stdout}");
        assert!(
            !String::from_utf8_lossy(&output.stderr).contains("unknown flag"),
            "{args:?}"
        );
    }
}

#[test]
fn a_bad_bind_says_the_accepted_form_and_a_taken_one_names_its_address() {
    let output = askgate()
        .args(["serve", "--bind", "localhost", "--data-dir", "none"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("127.0.0.1:8787"),
        "the accepted form: {stderr}"
    );

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = askgate()
        .args([
            "serve",
            "--bind",
            &addr,
            "--data-dir",
            "none",
            "--insecure-no-auth",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&addr), "names {addr}: {stderr}");
    assert!(stderr.contains("--bind"), "says what to do: {stderr}");
}

#[test]
fn localhost_is_a_bind_address() {
    let server = ServerProcess::start(&["--bind", "localhost:0"]);
    assert!(server.addr.ip().is_loopback());
    assert_eq!(server.get("/healthz").text(), "ok");
}

#[test]
fn health_says_whether_a_server_answers() {
    let server = TestServer::start(&[]);
    let url = format!("http://{}", server.addr);
    let up = askgate()
        .args(["health", "--server", &url])
        .output()
        .unwrap();
    assert_eq!(up.status.code(), Some(0), "{up:?}");
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let down = askgate()
        .args(["health", "--server", &gone, "--retry-secs", "0"])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1), "{down:?}");
    assert!(String::from_utf8_lossy(&down.stderr).contains("askgate health"));
}

#[test]
fn the_page_is_served_without_its_comments_with_its_strings_whole_and_its_scripts_still_parse() {
    let server = TestServer::start(&[]);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www");
    let kept = [
        ("forms.js", "'Enter a full address (https://…).'"),
        (
            "notify.js",
            "`<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\">",
        ),
        (
            "rules.js",
            "`${scheme}://${host}${port && Number(port) !== Number(defaultPort) ? `:${Number(port)}` : ''}`",
        ),
        ("app.js", "$(`#${kind}-card`)),"),
    ];
    let checked = std::env::temp_dir().join(format!("askgate-page-{}", std::process::id()));
    std::fs::create_dir_all(&checked).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".js") || name.ends_with(".css"))
        .collect();
    files.sort();
    for name in &files {
        let source = std::fs::read_to_string(root.join(name)).unwrap();
        let served = server.get(&format!("/{name}")).text();
        assert!(
            served.len() < source.len(),
            "{name}: {} bytes served",
            served.len()
        );
        for line in served.lines() {
            let comment = line.starts_with("//") || line.starts_with("/*");
            assert!(
                !comment && !line.starts_with(' ') && !line.trim().is_empty(),
                "{name}: {line:?}"
            );
        }
        for (file, text) in kept.iter().filter(|(file, _)| file == name) {
            assert!(served.contains(text), "{file} lost {text:?}");
        }
        if name.ends_with(".js") {
            let module = checked.join(name.replace(".js", ".mjs"));
            std::fs::write(&module, &served).unwrap();
            check_module_parses(&module);
        }
    }
    assert!(files.len() >= 10 && kept.len() == 4);
    std::fs::remove_dir_all(&checked).unwrap();
}

/// `node --check` on a module: the page tests need Node, so CI has it;
/// elsewhere the check is skipped, and says so.
fn check_module_parses(module: &std::path::Path) {
    match Command::new("node").arg("--check").arg(module).output() {
        Ok(output) => assert!(
            output.status.success(),
            "{}: {}",
            module.display(),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(error) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: node --check {} ({error})", module.display());
        }
        Err(error) => panic!("CI needs node for this check: {error}"),
    }
}
