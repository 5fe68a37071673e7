//! What every part of `make bench` shares: starting askgate and nginx,
//! plain HTTP/1.1 over a socket, reading a process's memory and threads
//! from `/proc`, and percentiles.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub const NCHAN_MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";

/// askgate's release binary (or `BENCH_ASKGATE`, to compare builds),
/// started as the bench starts it everywhere: in memory and open (no
/// tokens: the clients speak as agent and human), a 2 s receive
/// timeout, room for 20,000 streams. `wrapper` runs it through another
/// command (`sh -c '...; exec "$0" "$@"'`).
pub fn start_askgate(wrapper: &[&str]) -> (Child, SocketAddr) {
    let release = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/askgate");
    let binary = knob("BENCH_ASKGATE", release);
    let args = [
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--log-level",
        "warn",
        "--max-streams",
        "20000",
        "--max-pending",
        "1000",
        "--header-timeout-secs",
        "2",
        "--data-dir",
        "none",
        "--insecure-no-auth",
    ];
    let mut command = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut command = Command::new(program);
            command.args(rest).arg(&binary);
            command
        }
        None => Command::new(&binary),
    };
    command.args(args).stderr(Stdio::null());
    spawn_askgate(&mut command)
}

/// Starts `command` (askgate serving on port 0) and reads the address it
/// names on its first line of stdout.
pub fn spawn_askgate(command: &mut Command) -> (Child, SocketAddr) {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("target/release/askgate (make bench builds it)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit('/').next().unwrap().parse();
    (
        child,
        addr.unwrap_or_else(|_| panic!("askgate said {line:?}")),
    )
}

pub fn nginx_installed() -> bool {
    Command::new("nginx").arg("-v").output().is_ok()
}

/// nginx on a free port, one worker process, with `locations` in its
/// server block; `None` when it cannot start.
pub fn start_nginx(
    name: &str,
    load_module: Option<&str>,
    locations: &str,
) -> Option<(Child, SocketAddr, PathBuf)> {
    let port = free_port()?;
    let dir = std::env::temp_dir().join(format!("askgate-bench-{name}-{port}"));
    std::fs::create_dir_all(&dir).ok()?;
    let load = load_module.map_or(String::new(), |m| format!("load_module {m};\n"));
    let config = format!(
        "{load}worker_processes 1;\nworker_rlimit_nofile 30000;\npid {dir}/nginx.pid;\n\
         error_log {dir}/error.log warn;\ndaemon off;\nevents {{ worker_connections 20000; }}\n\
         http {{ access_log off; client_body_temp_path {dir}; server {{ listen 127.0.0.1:{port};\n\
         {locations} }} }}\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), config).ok()?;
    let (conf, prefix) = (dir.join("nginx.conf"), dir.display().to_string());
    let child = Command::new("nginx")
        .args(["-c", &conf.display().to_string(), "-p", &prefix])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
    Some((child, addr, dir))
}

fn free_port() -> Option<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
    Some(listener.local_addr().ok()?.port())
}

/// One request on a connection of its own; the whole response as text.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> String {
    let mut socket = TcpStream::connect(addr).expect("the server accepts");
    let body_headers = body.map_or(String::new(), |body| {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )
    });
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{body_headers}\r\n{}",
        body.unwrap_or("")
    );
    socket.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = socket.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// The body of a response, after its head.
pub fn body_of(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// The number after `"field": ` in a JSON text, if any. Allocates
/// nothing: the fan-out bench reads every askgate frame with it, on 5,000
/// client threads, where nchan's frames are read without allocating (a
/// `format!` here was a realloc a frame, each taking a glibc arena lock
/// shared by hundreds of client threads).
pub fn json_number(text: &str, field: &str) -> Option<u64> {
    let mut rest = text;
    let after = loop {
        let at = rest.find(field)?;
        let (before, after) = (&rest[..at], &rest[at + field.len()..]);
        match (before.ends_with('"'), after.strip_prefix("\": ")) {
            (true, Some(value)) => break value,
            _ => rest = after,
        }
    };
    let digits = after.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

/// A process and all its descendants.
fn family(pid: u32) -> Vec<u32> {
    let (mut todo, mut all) = (vec![pid], Vec::new());
    while let Some(pid) = todo.pop() {
        all.push(pid);
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        todo.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    all
}

/// A `/proc/PID/status` field (in kB for memory, a count for threads),
/// summed over the process and its descendants.
pub fn status_field(pid: u32, field: &str) -> u64 {
    let read = |pid: u32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let value = status.lines().find_map(|line| line.strip_prefix(field));
        value
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    family(pid).into_iter().map(read).sum()
}

/// CPU time the process and its descendants have used (user and system),
/// from `/proc/PID/stat`, in clock ticks of 10 ms.
pub fn cpu_ticks(pid: u32) -> u64 {
    let read = |pid: u32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The fields after the command's closing parenthesis: utime is the 12th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
        let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        field(11).unwrap_or(0) + field(12).unwrap_or(0)
    };
    family(pid).into_iter().map(read).sum()
}

pub fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
}

pub fn threads(pid: u32) -> u64 {
    status_field(pid, "Threads:")
}

pub fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

/// A bench knob from the environment, or its default.
pub fn knob(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

/// One keep-alive connection sending submits and reading their answers
/// (the durability and Redis benches; not the fan-out one).
#[allow(dead_code)]
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

#[allow(dead_code)]
impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        let socket = TcpStream::connect(addr).unwrap();
        socket.set_nodelay(true).unwrap();
        Client {
            reader: BufReader::new(socket.try_clone().unwrap()),
            writer: socket,
        }
    }

    pub fn submit(&mut self, session: &str, n: usize) {
        let body =
            format!(r#"{{"session_id": "{session}", "question": "q{n}", "timeout_seconds": 0}}"#);
        let request = format!(
            "POST /api/clarify/submit HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.writer.write_all(request.as_bytes()).unwrap();
        let mut length = 0;
        let mut status = String::new();
        self.reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "{status}");
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
    }
}

/// Submits one at a time, `count` in all, each through the next of
/// `addrs`: the median and p99 in milliseconds.
#[allow(dead_code)]
pub fn submit_latency(addrs: &[SocketAddr], count: usize) -> (f64, f64) {
    let mut clients: Vec<Client> = addrs.iter().map(|a| Client::new(*a)).collect();
    let servers = clients.len();
    let mut times: Vec<f64> = (0..count)
        .map(|n| {
            let began = Instant::now();
            clients[n % servers].submit(&format!("seq{}", n / 50), n);
            began.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

/// `threads` clients submitting `per_thread` each at once, client t
/// through `addrs[t % n]`: submits a second.
#[allow(dead_code)]
pub fn submit_rate(addrs: &[SocketAddr], threads: usize, per_thread: usize) -> f64 {
    let began = Instant::now();
    let running: Vec<_> = (0..threads)
        .map(|t| {
            let addr = addrs[t % addrs.len()];
            thread::spawn(move || {
                let mut client = Client::new(addr);
                for n in 0..per_thread {
                    client.submit(&format!("c{t}-{}", n / 50), n);
                }
            })
        })
        .collect();
    for thread in running {
        thread.join().unwrap();
    }
    (threads * per_thread) as f64 / began.elapsed().as_secs_f64()
}
