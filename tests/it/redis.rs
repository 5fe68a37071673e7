//! Several instances sharing one state through Redis (`--store redis://`):
//! Debian's `redis-server` on a free loopback port with a temporary
//! directory (AOF on, `appendfsync always`), askgate processes on port 0,
//! and nginx round-robin in front, as docs/deploy.md sets it up. Each test
//! says so and passes when `redis-server` (or nginx) is missing; `.ci/run`
//! installs both. This file has what the tests share: Redis, nginx, an
//! instance, and the few requests they make.
//!
//! - `across.rs`: order, waits, resumes and audit across instances.
//! - `failures.rs`: kill -9 of an instance, a Redis restart, shutdown,
//!   starting without Redis.
//! - `log.rs`: what lives in Redis: the expiry lease, snapshots and
//!   trimming, a log that went back.
//! - `access.rs`: Redis as people run it: a password, an ACL user,
//!   percent-encoded credentials, TLS with a private CA.
//! - `audit.rs`: the shared audit stream, off the path of frames.
//! - `batch.rs`: group commit: concurrent operations in batches, agreeing
//!   with the log; a batch that lost the race; Redis killed mid-batch.
//! - `valkey.rs`: a representative part of these tests again, against
//!   `valkey-server`.
//!
//! `ASKGATE_REDIS_SERVER` names the server every test starts (default
//! `redis-server`), so the whole file runs against Valkey with
//! `ASKGATE_REDIS_SERVER=valkey-server`.

mod access;
mod across;
mod audit;
mod batch;
mod failures;
mod log;
mod valkey;

use crate::binary::{ServerProcess, askgate};
use crate::support::{Client, DEADLINE, Event, TempDir, eventually};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const LONG: Duration = Duration::from_secs(20);

pub fn installed(program: &str, candidates: &[&str]) -> Option<PathBuf> {
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

/// The server the tests start: `ASKGATE_REDIS_SERVER` (a program on the
/// `PATH` or a path), else redis-server; `None` (the test is skipped,
/// saying why) when it is missing, unless `ASKGATE_REQUIRE_REDIS` is set
/// (as `.ci/run` does after installing it).
pub fn redis_server() -> Option<PathBuf> {
    match std::env::var("ASKGATE_REDIS_SERVER") {
        Ok(program) if !program.is_empty() => required(
            installed(&program, &[]),
            &format!("ASKGATE_REDIS_SERVER={program} is not installed"),
        ),
        _ => required(
            installed("redis-server", &["/usr/bin/redis-server"]),
            "redis-server is not installed (apt-get install redis-server)",
        ),
    }
}

/// nginx, as `redis_server`.
pub fn nginx() -> Option<PathBuf> {
    required(
        installed("nginx", &["/usr/sbin/nginx"]),
        "nginx is not installed (apt-get install nginx-light)",
    )
}

fn required(found: Option<PathBuf>, why: &str) -> Option<PathBuf> {
    if found.is_none() {
        assert!(
            std::env::var_os("ASKGATE_REQUIRE_REDIS").is_none(),
            "ASKGATE_REQUIRE_REDIS is set, but {why}"
        );
        eprintln!("skipped: {why}");
    }
    found
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A loopback port that refuses connections for as long as it is held:
/// bound and never listening, so that no other process (a Redis of a
/// second test run) can take it, as one might a port `free_port` found.
pub struct RefusingPort {
    pub port: u16,
    _socket: std::os::fd::OwnedFd,
}

pub fn refusing_port() -> RefusingPort {
    use std::os::fd::FromRawFd;
    // SAFETY: the socket is owned as soon as it exists; bind and
    // getsockname are given a sockaddr_in and its size.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let socket = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut address: libc::sockaddr_in = std::mem::zeroed();
        address.sin_family = libc::AF_INET as libc::sa_family_t;
        address.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
        let address_of = &mut address as *mut libc::sockaddr_in as *mut libc::sockaddr;
        let mut size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let bound = libc::bind(fd, address_of, size);
        assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
        let named = libc::getsockname(fd, address_of, &mut size);
        assert_eq!(named, 0, "getsockname: {}", std::io::Error::last_os_error());
        RefusingPort {
            port: u16::from_be(address.sin_port),
            _socket: socket,
        }
    }
}

/// A child process ended by its pid when dropped.
pub struct Process(Child);

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
pub struct Redis {
    program: PathBuf,
    pub port: u16,
    /// The port it speaks TLS on too, when it does (`start_with_tls`).
    pub tls_port: Option<u16>,
    /// Further arguments to `redis-server` (TLS, `requirepass`).
    extra: Vec<String>,
    pub dir: TempDir,
    process: Option<Process>,
}

impl Redis {
    pub fn start(program: PathBuf) -> Redis {
        Redis::start_with(program, &[])
    }

    /// Started with further arguments to `redis-server`.
    pub fn start_with(program: PathBuf, extra: &[&str]) -> Redis {
        Redis::start_on(program, extra, false)
    }

    /// Started with further arguments, speaking TLS on a free port too
    /// (`tls_port`).
    pub fn start_with_tls(program: PathBuf, extra: &[&str]) -> Redis {
        Redis::start_on(program, extra, true)
    }

    fn start_on(program: PathBuf, extra: &[&str], tls: bool) -> Redis {
        let mut redis = Redis {
            program,
            port: free_port(),
            tls_port: tls.then(free_port),
            extra: extra.iter().map(|arg| arg.to_string()).collect(),
            dir: TempDir::new("redis"),
            process: None,
        };
        redis.run_on_a_free_port();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts it (again, on the same port and directory) and waits until
    /// it answers PING, its AOF loaded.
    pub fn run(&mut self) {
        let port = self.port;
        assert!(self.try_run(), "redis-server exited: port {port} taken?");
    }

    /// Starts it on the ports found free, or on others when it exits: with
    /// a second test run beside this one, another process may take a port
    /// between `free_port` and Redis's bind, and Redis exits.
    fn run_on_a_free_port(&mut self) {
        for _ in 0..5 {
            if self.try_run() {
                return;
            }
            self.port = free_port();
            self.tls_port = self.tls_port.map(|_| free_port());
        }
        panic!("redis-server exited on five free ports");
    }

    /// Starts it and waits until it answers PING (`true`) or exits.
    fn try_run(&mut self) -> bool {
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
            .args(
                self.tls_port
                    .map(|port| ["--tls-port".to_string(), port.to_string()])
                    .into_iter()
                    .flatten(),
            )
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        let mut process = Process(child);
        let port = self.port;
        let mut up = false;
        eventually("redis answers PING or exits", LONG, &mut || {
            up = ping(port);
            up || matches!(process.0.try_wait(), Ok(Some(_)))
        });
        if up {
            self.process = Some(process);
        }
        up
    }

    /// kill -9.
    pub fn crash(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }
}

pub fn ping(port: u16) -> bool {
    let Ok(mut socket) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    // With a password, Redis answers `-NOAUTH ...` instead: up all the same.
    let mut reply = [0; 7];
    socket.write_all(b"PING\r\n").is_ok()
        && socket.read_exact(&mut reply).is_ok()
        && (&reply == b"+PONG\r\n" || &reply == b"-NOAUTH")
}

pub fn instance(redis: &Redis) -> ServerProcess {
    instance_with(redis, &[])
}

pub fn instance_with(redis: &Redis, flags: &[&str]) -> ServerProcess {
    let url = redis.url();
    let flags = [&["--store", url.as_str()], flags].concat();
    ServerProcess::start_with(askgate(), &flags)
}

/// nginx in front of the instances, round-robin, streaming (no buffering).
/// One process (`master_process off`), so ending it by its pid leaves no
/// worker behind.
pub struct Nginx {
    pub addr: SocketAddr,
    _dir: TempDir,
    _process: Process,
}

impl Nginx {
    /// Started on a free port, or on another when the one found free was
    /// taken before nginx's bind (as `Redis::run_on_a_free_port`).
    pub fn start(program: &Path, upstreams: &[SocketAddr]) -> Nginx {
        for _ in 0..5 {
            if let Some(nginx) = Nginx::try_start(program, upstreams) {
                return nginx;
            }
        }
        panic!("nginx exited on five free ports");
    }

    /// nginx on a port found free; `None` when it exits instead. It is
    /// listening once it has written its pid file, which it does after
    /// its bind: a connection alone might reach whoever took the port.
    fn try_start(program: &Path, upstreams: &[SocketAddr]) -> Option<Nginx> {
        let dir = TempDir::new("nginx");
        let port = free_port();
        let servers: String = upstreams
            .iter()
            .map(|addr| format!("        server {addr} max_fails=1 fail_timeout=2s;\n"))
            .collect();
        let d = dir.path.display();
        let conf = format!(
            "master_process off;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\n\
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
        let mut process = Process(child);
        let pid_file = dir.join("nginx.pid");
        let ours = process.0.id().to_string();
        let mut bound = false;
        eventually("nginx binds or exits", LONG, &mut || {
            let written = std::fs::read_to_string(&pid_file).unwrap_or_default();
            bound = written.trim() == ours;
            bound || matches!(process.0.try_wait(), Ok(Some(_)))
        });
        if !bound {
            return None;
        }
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        eventually("nginx listens", LONG, &mut || {
            TcpStream::connect(addr).is_ok()
        });
        Some(Nginx {
            addr,
            _dir: dir,
            _process: process,
        })
    }

    pub fn client(&self) -> Client {
        Client { addr: self.addr }
    }
}

pub fn submit(client: &Client, session_id: &str, question: &str) -> String {
    let body = json!({"session_id": session_id, "question": question});
    let reply = client.post("/api/clarify/submit", &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["clarify_id"].as_str().unwrap().to_string()
}

pub fn answer(client: &Client, session_id: &str, id: &str, response: &str) -> u16 {
    let body = json!({"session_id": session_id, "clarify_id": id, "response": response});
    client.post("/api/clarify/respond", &body).status
}

pub fn pending(client: &Client, session_id: &str) -> (u64, Option<String>) {
    let reply = client.get(&format!("/api/clarify/pending?session_id={session_id}"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let value = reply.json();
    let head = value["pending"]["clarify_id"].as_str().map(str::to_string);
    (value["pending_count"].as_u64().unwrap(), head)
}

/// (session, pending_count, head id) of a change frame.
pub fn frame(event: &Event) -> (String, u64, Option<String>) {
    let value = event.json();
    let session = value["session_id"].as_str().unwrap().to_string();
    let head = value["pending"]["clarify_id"].as_str().map(str::to_string);
    (session, event.count(), head)
}

/// One command to Redis, as the test sees it.
pub fn redis_call(redis: &Redis, args: &[&str]) -> askgate::store::resp::Reply {
    let target = askgate::store::resp::Target::parse(&redis.url()).unwrap();
    let mut conn = askgate::store::resp::Conn::connect(&target, DEADLINE).unwrap();
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    conn.call(&args).unwrap()
}
