//! Several instances sharing one state through Redis (`--store redis://`):
//! Debian's `redis-server` on a free loopback port with a temporary
//! directory (AOF on, `appendfsync always`), three askgate processes on
//! port 0, and nginx round-robin in front, as docs/deploy.md sets it up.
//! Each test says so and passes when `redis-server` (or nginx) is missing;
//! `.ci/run` installs both.

use crate::binary::{ServerProcess, askgate};
use crate::support::{Client, DEADLINE, Event, SseClient, TempDir, eventually};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(20);

fn installed(program: &str, candidates: &[&str]) -> Option<PathBuf> {
    let found = candidates.iter().map(PathBuf::from).find(|p| p.exists());
    found.or_else(|| {
        let ok = Command::new(program)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        ok.then(|| PathBuf::from(program))
    })
}

fn redis_server() -> Option<PathBuf> {
    let found = installed("redis-server", &["/usr/bin/redis-server"]);
    if found.is_none() {
        eprintln!("skipped: redis-server is not installed (apt-get install redis-server)");
    }
    found
}

fn nginx() -> Option<PathBuf> {
    let found = installed("nginx", &["/usr/sbin/nginx"]);
    if found.is_none() {
        eprintln!("skipped: nginx is not installed (apt-get install nginx-light)");
    }
    found
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A child process ended by its pid when dropped.
struct Process(Child);

impl Process {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `redis-server` on a loopback port with AOF on in a temporary directory.
struct Redis {
    program: PathBuf,
    port: u16,
    dir: TempDir,
    process: Option<Process>,
}

impl Redis {
    fn start(program: PathBuf) -> Redis {
        let mut redis = Redis {
            program,
            port: free_port(),
            dir: TempDir::new("redis"),
            process: None,
        };
        redis.run();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts it (again, on the same port and directory) and waits until
    /// it answers PING, its AOF loaded.
    fn run(&mut self) {
        let child = Command::new(&self.program)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir.path)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .args(["--daemonize", "no", "--logfile", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        self.process = Some(Process(child));
        let port = self.port;
        eventually("redis answers PING", LONG, &mut || ping(port));
    }

    /// kill -9.
    fn crash(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut socket) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut reply = [0; 7];
    socket.write_all(b"PING\r\n").is_ok()
        && socket.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

fn instance(redis: &Redis) -> ServerProcess {
    instance_with(redis, &[])
}

fn instance_with(redis: &Redis, flags: &[&str]) -> ServerProcess {
    let url = redis.url();
    let flags = [&["--store", url.as_str()], flags].concat();
    ServerProcess::start_with(askgate(), &flags)
}

/// nginx in front of the instances, round-robin, streaming (no buffering).
struct Nginx {
    addr: SocketAddr,
    _dir: TempDir,
    _process: Process,
}

impl Nginx {
    fn start(program: &Path, upstreams: &[SocketAddr]) -> Nginx {
        let dir = TempDir::new("nginx");
        let port = free_port();
        let servers: String = upstreams
            .iter()
            .map(|addr| format!("        server {addr} max_fails=1 fail_timeout=2s;\n"))
            .collect();
        let d = dir.path.display();
        let conf = format!(
            "worker_processes 1;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n\
             upstream askgate {{\n{servers}    }}\n\
             server {{\n        listen 127.0.0.1:{port};\n        location / {{\n\
             proxy_pass http://askgate;\n            proxy_http_version 1.1;\n\
             proxy_set_header Connection \"\";\n            proxy_set_header Host $http_host;\n\
             proxy_buffering off;\n            proxy_read_timeout 1h;\n\
             proxy_connect_timeout 2s;\n        }}\n    }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new(program)
            .arg("-p")
            .arg(&dir.path)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx runs");
        let process = Process(child);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        eventually("nginx listens", LONG, &mut || {
            TcpStream::connect(addr).is_ok()
        });
        Nginx {
            addr,
            _dir: dir,
            _process: process,
        }
    }

    fn client(&self) -> Client {
        Client { addr: self.addr }
    }
}

fn submit(client: &Client, session_id: &str, question: &str) -> String {
    let body = json!({"session_id": session_id, "question": question});
    let reply = client.post("/api/clarify/submit", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["clarify_id"].as_str().unwrap().to_string()
}

fn answer(client: &Client, session_id: &str, id: &str, response: &str) -> u16 {
    let body = json!({"session_id": session_id, "clarify_id": id, "response": response});
    client.post("/api/clarify/respond", &body).status
}

fn pending(client: &Client, session_id: &str) -> (u64, Option<String>) {
    let reply = client.get(&format!("/api/clarify/pending?session_id={session_id}"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let value = reply.json();
    let head = value["pending"]["clarify_id"].as_str().map(str::to_string);
    (value["pending_count"].as_u64().unwrap(), head)
}

/// (session, pending_count, head id) of a change frame.
fn frame(event: &Event) -> (String, u64, Option<String>) {
    let value = event.json();
    let session = value["session_id"].as_str().unwrap().to_string();
    let head = value["pending"]["clarify_id"].as_str().map(str::to_string);
    (session, event.count(), head)
}

#[test]
fn streams_on_one_instance_see_changes_made_through_the_others_in_order() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let [a, b, c] = [instance(&redis), instance(&redis), instance(&redis)];
    let mut stream = a.stream("/api/events?session_id=shared");
    stream.events_until("ready");

    let first = submit(&b, "shared", "first?");
    let second = submit(&b, "shared", "second?");
    assert_eq!(answer(&c, "shared", &first, "yes"), 200);
    submit(&c, "shared", "third?");
    let frames: Vec<_> = (0..4)
        .map(|_| frame(&stream.expect_event("a change")))
        .collect();
    let shared = |count, head: &String| ("shared".to_string(), count, Some(head.clone()));
    assert_eq!(
        frames,
        [
            shared(1, &first),
            shared(2, &first),
            shared(1, &second),
            shared(2, &second)
        ],
        "made through B and C, seen on A in order"
    );
    // Reads on an instance are as fresh as the records it has applied
    // (a publish away); answers and waits read the log first.
    for server in [&a, &b, &c] {
        eventually("every instance shows it", DEADLINE, &mut || {
            pending(server, "shared") == (2, Some(second.clone()))
        });
    }

    // An agent waiting on A learns the answer given on C.
    let waiting = {
        let (a, second) = (a.addr, second.clone());
        thread::spawn(move || {
            let client = Client { addr: a };
            let path =
                format!("/api/clarify/wait?session_id=shared&clarify_id={second}&timeout=30");
            let started = Instant::now();
            (client.get(&path), started.elapsed())
        })
    };
    eventually("the wait is parked on A", DEADLINE, &mut || {
        a.metric("askgate_longpolls_parked") == 1.0
    });
    assert_eq!(answer(&c, "shared", &second, "from C"), 200);
    let (reply, took) = waiting.join().unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["response"], "from C", "{}", reply.text());
    assert!(took < Duration::from_secs(5), "{took:?}");
    // A conflicting answer through another instance at the same moment is stale.
    assert_eq!(answer(&b, "shared", &second, "late"), 409);

    // Round-robin through nginx: every instance serves the same state.
    let Some(nginx) = nginx() else { return };
    let proxy = Nginx::start(&nginx, &[a.addr, b.addr, c.addr]);
    let client = proxy.client();
    let ids: Vec<String> = (0..6)
        .map(|n| submit(&client, "rr", &format!("q{n}")))
        .collect();
    for server in [&a, &b, &c] {
        eventually("every instance shows them", DEADLINE, &mut || {
            pending(server, "rr") == (6, Some(ids[0].clone()))
        });
    }
    // Waiting through nginx right after a submit through nginx (another
    // instance, round-robin) finds the prompt.
    for n in 0..6 {
        let id = submit(&client, "rw", &format!("w{n}"));
        let reply = client.get(&format!(
            "/api/clarify/wait?session_id=rw&clarify_id={id}&timeout=0"
        ));
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(answer(&client, "rw", &id, "at once"), 200);
    }
    assert!(proxy.client().get("/healthz").text().starts_with("ok"));
}

/// A browser's view, from frames: per session, the newest (version, count, head).
#[derive(Default)]
struct View {
    queues: BTreeMap<String, (u64, u64, Option<String>)>,
    last_id: Option<String>,
    streams: usize,
}

impl View {
    fn take(&mut self, event: &Event) {
        if let Some(id) = &event.id {
            self.last_id = Some(id.clone());
        }
        if event.event != "clarify" {
            return;
        }
        let (session, count, head) = frame(event);
        let version = event.json()["version"].as_u64().unwrap();
        let entry = self.queues.entry(session).or_insert((0, 0, None));
        if version >= entry.0 {
            *entry = (version, count, head);
        }
    }
}

/// Follows /api/events at `first`, and through `fallback` with its
/// Last-Event-ID whenever the stream ends, until `stop`.
fn follow(first: SocketAddr, fallback: SocketAddr, view: Arc<Mutex<View>>, stop: Arc<AtomicBool>) {
    let mut at = first;
    while !stop.load(Ordering::Acquire) {
        let last = view.lock().unwrap().last_id.clone();
        let headers: Vec<(&str, &str)> = last
            .iter()
            .map(|id| ("Last-Event-ID", id.as_str()))
            .collect();
        let Ok(mut stream) =
            std::panic::catch_unwind(|| SseClient::open(at, "/api/events", &headers))
        else {
            at = fallback;
            continue;
        };
        view.lock().unwrap().streams += 1;
        while !stop.load(Ordering::Acquire) {
            match stream.next_event(Duration::from_millis(200)) {
                Some(event) => view.lock().unwrap().take(&event),
                None if stream.ended => break,
                None => {
                    // A timeout, or the connection died under us: look.
                    let mut probe = [0u8; 1];
                    stream.socket().set_nonblocking(true).unwrap();
                    let gone = matches!(stream.socket().peek(&mut probe), Ok(0));
                    stream.socket().set_nonblocking(false).unwrap();
                    if gone || killed(at) {
                        break;
                    }
                }
            }
        }
        at = fallback;
    }
}

fn killed(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err()
}

#[test]
fn a_killed_instance_s_streams_resume_on_the_others_and_nothing_acknowledged_is_lost() {
    let Some(program) = redis_server() else {
        return;
    };
    let Some(nginx) = nginx() else { return };
    let redis = Redis::start(program);
    let [a, b, c] = [instance(&redis), instance(&redis), instance(&redis)];
    let proxy = Nginx::start(&nginx, &[a.addr, b.addr, c.addr]);
    let view = Arc::new(Mutex::new(View::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let (view, stop, a, proxy) = (view.clone(), stop.clone(), a.addr, proxy.addr);
        thread::spawn(move || follow(a, proxy, view, stop))
    };
    eventually("the stream on A is open", DEADLINE, &mut || {
        a.metric("askgate_subscribers") == 1.0
    });

    // Load through nginx: submits to eight sessions, every third answered.
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let load_stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(Mutex::new(HashSet::<String>::new()));
    let load = {
        let (acknowledged, load_stop, done, client) = (
            acknowledged.clone(),
            load_stop.clone(),
            done.clone(),
            proxy.client(),
        );
        let answers = answers.clone();
        thread::spawn(move || {
            let mut n = 0;
            while !load_stop.load(Ordering::Acquire) {
                n += 1;
                let session = format!("s{}", n % 8);
                let body = json!({"session_id": session, "question": format!("q{n}")});
                let Ok(reply) = client.try_post("/api/clarify/submit", &body) else {
                    continue;
                };
                if reply.status != 200 {
                    continue;
                }
                let id = reply.json()["clarify_id"].as_str().unwrap().to_string();
                acknowledged
                    .lock()
                    .unwrap()
                    .push((session.clone(), id.clone()));
                if n % 3 == 0 {
                    let body = json!({"session_id": session, "clarify_id": id, "response": "ok"});
                    let answered = client.try_post("/api/clarify/respond", &body);
                    if answered.is_ok_and(|reply| reply.status == 200) {
                        answers.lock().unwrap().insert(id);
                    }
                }
                done.fetch_add(1, Ordering::Release);
            }
        })
    };
    eventually("some load has gone through", LONG, &mut || {
        done.load(Ordering::Acquire) >= 60
    });
    let before = done.load(Ordering::Acquire);
    let pid = a.pid();
    drop(a); // kill -9 (ServerProcess ends its child with SIGKILL)
    assert!(killed_pid(pid));
    eventually("the load goes on through the others", LONG, &mut || {
        done.load(Ordering::Acquire) >= before + 60
    });
    load_stop.store(true, Ordering::Release);
    load.join().unwrap();

    // Every acknowledged submit is known to both survivors, and the
    // stream, resumed through nginx, shows exactly their state.
    let sessions: HashSet<String> = (0..8).map(|n| format!("s{n}")).collect();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 120, "{}", acknowledged.len());
    let answers = answers.lock().unwrap().clone();
    assert!(answers.len() >= 30, "{}", answers.len());
    for (session, id) in &acknowledged {
        for server in [&b, &c] {
            let reply = server.get(&format!(
                "/api/clarify/wait?session_id={session}&clarify_id={id}&timeout=0"
            ));
            assert_eq!(reply.status, 200, "{id} in {session}: {}", reply.text());
            if answers.contains(id) {
                assert_eq!(reply.json()["status"], "answered", "{}", reply.text());
            }
        }
    }
    let truth: BTreeMap<String, (u64, Option<String>)> = sessions
        .iter()
        .map(|s| (s.clone(), pending(&b, s)))
        .collect();
    eventually("both survivors hold one state", DEADLINE, &mut || {
        let on_c: BTreeMap<String, (u64, Option<String>)> = sessions
            .iter()
            .map(|s| (s.clone(), pending(&c, s)))
            .collect();
        on_c == truth
    });
    eventually("the resumed stream shows that state", LONG, &mut || {
        let view = view.lock().unwrap();
        truth.iter().all(|(session, (count, head))| {
            let seen = view.queues.get(session).map(|(_, n, h)| (*n, h.clone()));
            seen.unwrap_or((0, None)) == (*count, head.clone())
        })
    });
    let streams = view.lock().unwrap().streams;
    assert!(streams >= 2, "the stream was resumed");
    eprintln!(
        "redis kill -9: {} submits and {} answers acknowledged through nginx, the stream opened {streams} times",
        acknowledged.len(),
        answers.len()
    );
    stop.store(true, Ordering::Release);
    follower.join().unwrap();
}

fn killed_pid(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"))
}

#[test]
fn a_redis_restart_under_load_loses_nothing_acknowledged_and_changes_meanwhile_are_503() {
    let Some(program) = redis_server() else {
        return;
    };
    let mut redis = Redis::start(program);
    let servers = [instance(&redis), instance(&redis), instance(&redis)];
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let mut stream = servers[0].stream("/api/events?session_id=r0");
    stream.events_until("ready");

    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let statuses = Arc::new(Mutex::new(BTreeMap::<u16, usize>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let load = {
        let (acknowledged, statuses, stop, done) = (
            acknowledged.clone(),
            statuses.clone(),
            stop.clone(),
            done.clone(),
        );
        thread::spawn(move || {
            let mut n = 0usize;
            while !stop.load(Ordering::Acquire) {
                n += 1;
                let client = Client {
                    addr: addrs[n % addrs.len()],
                };
                let session = format!("r{}", n % 4);
                let body = json!({"session_id": session, "question": format!("q{n}")});
                let reply = client.post("/api/clarify/submit", &body);
                *statuses.lock().unwrap().entry(reply.status).or_default() += 1;
                if reply.status == 503 {
                    let error = reply.json()["error"].as_str().unwrap_or("").to_string();
                    assert!(error.contains("redis"), "{error}");
                    assert_eq!(reply.header("retry-after"), Some("1"));
                    continue;
                }
                assert_eq!(reply.status, 200, "{}", reply.text());
                let id = reply.json()["clarify_id"].as_str().unwrap().to_string();
                acknowledged.lock().unwrap().push((session, id));
                done.fetch_add(1, Ordering::Release);
            }
        })
    };
    let progress = |at_least: usize| done.load(Ordering::Acquire) >= at_least;
    eventually("some load has gone through", LONG, &mut || progress(50));
    redis.crash();
    eventually(
        "every instance refuses changes and says why",
        LONG,
        &mut || statuses.lock().unwrap().get(&503).copied().unwrap_or(0) >= 3,
    );
    for server in &servers {
        let health = server.get("/healthz");
        assert_eq!(health.status, 503, "{}", health.text());
        assert!(health.text().contains("unreachable"), "{}", health.text());
    }
    let during = done.load(Ordering::Acquire);
    redis.run();
    eventually("the load goes on once redis is back", LONG, &mut || {
        progress(during + 60)
    });
    stop.store(true, Ordering::Release);
    load.join().unwrap();

    // Nothing acknowledged is lost: a fresh instance reads all of it from
    // Redis, and every instance, without a restart, has caught up to it. (A
    // submit cut off by the crash may have landed too: its 503 said only
    // that it was not acknowledged.)
    let acknowledged = acknowledged.lock().unwrap().clone();
    let fresh = instance(&redis);
    let sessions = ["r0", "r1", "r2", "r3"];
    let state = |server: &Client| sessions.map(|session| pending(server, session));
    let truth = state(&fresh);
    for (session, id) in &acknowledged {
        let reply = fresh.get(&format!(
            "/api/clarify/wait?session_id={session}&clarify_id={id}&timeout=0"
        ));
        assert_eq!(reply.status, 200, "{id} of {session}: {}", reply.text());
    }
    assert!(truth.iter().map(|(n, _)| *n as usize).sum::<usize>() >= acknowledged.len());
    for server in &servers {
        assert_eq!(server.get("/healthz").status, 200);
        eventually("every instance has caught up", LONG, &mut || {
            state(server) == truth
        });
    }
    // The stream opened before the outage stayed open and shows the end.
    let mut last = None;
    while let Some(event) = stream.next_event(Duration::from_millis(500)) {
        if event.event == "clarify" {
            last = Some(event.count());
        }
    }
    assert_eq!(last, Some(truth[0].0), "the stream followed along");
    let statuses = statuses.lock().unwrap().clone();
    eprintln!("redis restart: submits answered {statuses:?}");
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        [200, 503],
        "{statuses:?}"
    );
}

/// One command to Redis, as the test sees it.
fn redis_call(redis: &Redis, args: &[&str]) -> askgate::store::resp::Reply {
    let target = askgate::store::resp::Target::parse(&redis.url()).unwrap();
    let mut conn = askgate::store::resp::Conn::connect(&target, DEADLINE).unwrap();
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    conn.call(&args).unwrap()
}

#[test]
fn expiry_is_decided_by_the_lease_holder_and_taken_over_when_it_dies() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let mut servers = vec![instance(&redis), instance(&redis)];
    let mut holder = None;
    eventually("one instance holds the lease", LONG, &mut || {
        let reply = redis_call(&redis, &["GET", "askgate:lease"]);
        holder = reply
            .as_bytes()
            .map(|b| String::from_utf8_lossy(b).to_string());
        holder.is_some()
    });
    let pid: u32 = holder.unwrap().split('-').next().unwrap().parse().unwrap();
    let at = servers
        .iter()
        .position(|s| s.pid() == pid)
        .expect("the holder is ours");
    drop(servers.remove(at)); // kill -9
    let survivor = &servers[0];
    let body = json!({"session_id": "x", "question": "soon?", "timeout_seconds": 1});
    let id = survivor.post("/api/clarify/submit", &body).json()["clarify_id"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    let mut status = Value::Null;
    eventually("the prompt expires", LONG, &mut || {
        let reply = survivor.get(&format!(
            "/api/clarify/wait?session_id=x&clarify_id={id}&timeout=2"
        ));
        status = reply.json()["status"].clone();
        status != "pending"
    });
    assert_eq!(status, "expired");
    // The dead holder's lease (5 s) runs out, then the survivor takes it.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let reply = redis_call(&redis, &["GET", "askgate:lease"]);
    let now_held = String::from_utf8_lossy(reply.as_bytes().unwrap()).to_string();
    assert!(
        now_held.starts_with(&format!("{}-", survivor.pid())),
        "{now_held}"
    );
}

#[test]
fn a_new_instance_starts_from_the_snapshot_and_the_log_is_trimmed() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let a = instance(&redis);
    let sessions: Vec<String> = (0..50).map(|n| format!("n{n}")).collect();
    for n in 0..2100 {
        let session = &sessions[n % sessions.len()];
        let id = submit(&a, session, &format!("q{n}"));
        if n % 2 == 0 {
            assert_eq!(answer(&a, session, &id, "ok"), 200);
        }
    }
    // 3,150 versions: snapshots at 1,000 or more and 2,000 or more, and the
    // log trimmed before the first.
    eventually("a second snapshot", LONG, &mut || {
        let reply = redis_call(&redis, &["HGET", "askgate:snapshot", "version"]);
        reply.as_u64().unwrap_or(0) >= 2000
    });
    let first = redis_call(&redis, &["XRANGE", "askgate:log", "-", "+", "COUNT", "1"]);
    let first = first.as_array().unwrap()[0].as_array().unwrap()[0].clone();
    let first: u64 = String::from_utf8_lossy(first.as_bytes().unwrap())
        .split('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(first >= 1000, "the log begins at {first}");
    let snapshot = redis_call(&redis, &["HGET", "askgate:snapshot", "version"]).as_u64();
    let size = redis_call(&redis, &["HSTRLEN", "askgate:snapshot", "state"]).as_u64();
    eprintln!("redis snapshot: version {snapshot:?}, {size:?} bytes; the log begins at {first}");
    let b = instance(&redis);
    for session in &sessions {
        assert_eq!(pending(&b, session), pending(&a, session), "{session}");
    }
    // And it goes on from there with the others.
    let id = submit(&b, "n0", "after");
    eventually("A sees it", DEADLINE, &mut || {
        pending(&a, "n0").0 == pending(&b, "n0").0
    });
    assert_eq!(answer(&a, "n0", &id, "fine"), 200);
}

#[test]
fn a_redis_that_lost_acknowledged_changes_is_read_again_and_versions_skip_ahead() {
    let Some(program) = redis_server() else {
        return;
    };
    let mut redis = Redis::start(program);
    let [a, b] = [instance(&redis), instance(&redis)];
    let mut stream = a.stream("/api/events");
    stream.events_until("ready");
    for n in 0..3 {
        submit(&a, "gone", &format!("q{n}"));
    }
    let seen: Vec<Event> = (0..3).map(|_| stream.expect_event("a change")).collect();
    let last = seen[2].id.clone().unwrap();
    assert_eq!(last, "3");
    // Redis comes back without its data, as after a crash with
    // `appendfsync everysec` (here: all of it).
    redis.crash();
    std::fs::remove_dir_all(&redis.dir.path).unwrap();
    std::fs::create_dir_all(&redis.dir.path).unwrap();
    redis.run();
    let skip = 1u64 << 20;
    for server in [&a, &b] {
        eventually(
            "the instance reads redis again, past a skip",
            LONG,
            &mut || server.metric("askgate_version") >= skip as f64,
        );
    }
    stream.expect_end(LONG);
    for server in [&a, &b] {
        assert_eq!(server.metric("askgate_store_reloads_total"), 1.0);
    }
    // Exactly one skip: the second instance finds the log already past it.
    assert_eq!(a.metric("askgate_version"), skip as f64);
    assert_eq!(b.metric("askgate_version"), skip as f64);
    // A browser resuming from a lost change gets the full state.
    let mut resumed = SseClient::open(a.addr, "/api/events", &[("Last-Event-ID", &last)]);
    let events = resumed.events_until("ready");
    assert_eq!(events.len(), 1, "nothing pending: {events:?}");
    assert_eq!(events[0].json()["full"], true);
    let id = submit(&b, "gone", "again");
    let event = resumed.expect_event("the new submit");
    assert_eq!(frame(&event), ("gone".into(), 1, Some(id)));
    assert!(event.id.unwrap().parse::<u64>().unwrap() > skip);
}

#[test]
fn each_instance_audits_the_decisions_made_through_it_in_its_own_data_dir() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let dir = TempDir::new("redis-audit");
    let (a_dir, b_dir) = (dir.join("a"), dir.join("b"));
    let flags = |d: &PathBuf| {
        vec![
            "--store".to_string(),
            redis.url(),
            "--data-dir".into(),
            d.display().to_string(),
        ]
    };
    let start = |d: &PathBuf| {
        let flags = flags(d);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        ServerProcess::start_with(askgate(), &flags)
    };
    let (a, b) = (start(&a_dir), start(&b_dir));
    let id = submit(&a, "audited", "who?");
    assert_eq!(answer(&b, "audited", &id, "me"), 200);
    let audit = |d: &PathBuf| std::fs::read_to_string(d.join("audit.log")).unwrap_or_default();
    eventually(
        "each decision in its instance's audit file",
        DEADLINE,
        &mut || audit(&a_dir).contains("event=asked") && audit(&b_dir).contains("event=answered"),
    );
    assert!(
        !audit(&a_dir).contains("event=answered"),
        "{}",
        audit(&a_dir)
    );
    assert!(!audit(&b_dir).contains("event=asked"), "{}", audit(&b_dir));
}

#[test]
fn concurrent_submits_through_three_instances_make_one_order_every_stream_sees() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    // Room for every submit in one queue, and for every frame in a stream
    // that is read only at the end.
    let flags = ["--max-pending", "1000", "--subscriber-buffer", "1000"];
    let servers = [1, 2, 3].map(|_| instance_with(&redis, &flags));
    let mut streams: Vec<SseClient> = servers
        .iter()
        .map(|server| {
            let mut stream = server.stream("/api/events?session_id=race");
            stream.events_until("ready");
            stream
        })
        .collect();
    const PER_THREAD: usize = 25;
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let client = Client {
                addr: addrs[t % addrs.len()],
            };
            thread::spawn(move || {
                let mut mine = Vec::new();
                for n in 0..PER_THREAD {
                    mine.push(submit(&client, "race", &format!("t{t}-{n}")));
                }
                mine
            })
        })
        .collect();
    let acknowledged: Vec<Vec<String>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let total = 6 * PER_THREAD;
    // Every stream saw the same frames, versions rising one by one.
    let seen: Vec<Vec<(String, u64)>> = streams
        .iter_mut()
        .map(|stream| {
            (0..total)
                .map(|_| {
                    let event = stream.expect_event("a submit");
                    (event.id.clone().unwrap(), event.count())
                })
                .collect()
        })
        .collect();
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
    let counts: Vec<u64> = seen[0].iter().map(|(_, count)| *count).collect();
    assert_eq!(counts, (1..=total as u64).collect::<Vec<_>>());
    // Answering the head through each instance in turn drains the queue in
    // one order, and each client's submits come out in the order it made them.
    let mut order = Vec::new();
    for n in 0..total {
        // Read where the last answer was given (reads elsewhere may be a
        // publish behind), answer through the next instance.
        let (_, head) = pending(&servers[(n + 2) % 3], "race");
        let server = &servers[n % 3];
        let head = head.expect("a head");
        assert_eq!(answer(server, "race", &head, "ok"), 200);
        order.push(head);
    }
    // Every record was appended by one instance and applied by the others.
    let metric = |server: &ServerProcess, name: &str| server.metric(name) as usize;
    let appended: usize = servers
        .iter()
        .map(|s| metric(s, "askgate_store_appends_total"))
        .sum();
    assert_eq!(appended, 2 * total);
    for server in &servers {
        eventually(
            "each instance has applied the others' records",
            DEADLINE,
            &mut || {
                metric(server, "askgate_store_appends_total")
                    + metric(server, "askgate_store_applied_total")
                    == 2 * total
            },
        );
        assert_eq!(metric(server, "askgate_store_up"), 1);
        assert_eq!(metric(server, "askgate_store_reloads_total"), 0);
    }
    let conflicts: usize = servers
        .iter()
        .map(|s| metric(s, "askgate_store_conflicts_total"))
        .sum();
    eprintln!("redis concurrent submits: {conflicts} appends lost a race and were decided again");
    for mine in &acknowledged {
        let positions: Vec<usize> = mine
            .iter()
            .map(|id| order.iter().position(|o| o == id).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }
}

#[test]
fn an_instance_on_redis_shuts_down_at_once_on_sigterm_even_with_redis_gone() {
    let Some(program) = redis_server() else {
        return;
    };
    let mut redis = Redis::start(program);
    let mut up = instance(&redis);
    let mut stream = up.stream("/api/events");
    stream.events_until("ready");
    let (status, took) = crate::lifecycle::signal_and_wait(&mut up, libc::SIGTERM);
    assert!(
        status.success() && took < Duration::from_secs(2),
        "{status} {took:?}"
    );
    let mut orphaned = instance(&redis);
    redis.crash();
    eventually("it notices", LONG, &mut || {
        orphaned.get("/healthz").status == 503
    });
    let (status, took) = crate::lifecycle::signal_and_wait(&mut orphaned, libc::SIGTERM);
    assert!(
        status.success() && took < Duration::from_secs(2),
        "{status} {took:?}"
    );
}

#[test]
fn a_stream_resumes_on_another_instance_from_what_it_saw_on_the_first() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let [a, b] = [instance(&redis), instance(&redis)];
    let mut on_a = a.stream("/api/events?session_id=hop");
    on_a.events_until("ready");
    for n in 0..20 {
        submit(&a, "hop", &format!("q{n}"));
        let seen = on_a.expect_event("the submit").id.unwrap();
        // At once on B, which may not have applied it yet: it reads the
        // log first, so the id resumes exactly (nothing changed since).
        let headers = [("Last-Event-ID", seen.as_str())];
        let mut on_b = SseClient::open(b.addr, "/api/events?session_id=hop", &headers);
        let events = on_b.events_until("ready");
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].json()["full"], false, "round {n}");
    }
}

#[test]
fn an_instance_refuses_to_start_without_its_redis_and_says_where() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let flags = ["--data-dir", "none", "--store", url.as_str()];
    let exited = ServerProcess::launch(askgate(), &flags)
        .err()
        .expect("it does not start");
    assert_ne!(exited.code, Some(0));
    assert!(
        exited
            .stderr
            .contains(&format!("cannot read the state from {url}")),
        "{}",
        exited.stderr
    );
    let bad = ServerProcess::launch(askgate(), &["--store", "redis://nowhere:port"]);
    let bad = bad.err().expect("a bad URL does not start");
    assert!(
        bad.stderr.contains("invalid value for --store"),
        "{}",
        bad.stderr
    );
}
