//! In a memory cgroup: the default places for streams fit its cap, so a
//! client that opens streams without end is refused with 503s while the
//! server goes on serving; with the 1,024 places of an unlimited machine,
//! the OOM killer ended the server at about the 833rd stream in 32 MiB
//! (BENCHMARKS.md, "where a stream's bytes go").

use crate::binary::ServerProcess;
use crate::support::DEADLINE;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;

/// A memory cgroup of its own, v1 or v2, removed when dropped.
struct Cgroup {
    dir: PathBuf,
    v1: bool,
}

impl Cgroup {
    fn create(bytes: u64) -> Cgroup {
        let name = format!("askgate-it-{}", std::process::id());
        let v1 = PathBuf::from("/sys/fs/cgroup/memory");
        let (dir, limit_file) = match v1.is_dir() {
            true => (v1.join(&name), "memory.limit_in_bytes"),
            false => (PathBuf::from("/sys/fs/cgroup").join(&name), "memory.max"),
        };
        std::fs::create_dir(&dir).unwrap_or_else(|error| {
            panic!(
                "this test needs to make a memory cgroup ({}: {error}); run it as root on Linux",
                dir.display()
            )
        });
        let cgroup = Cgroup {
            dir,
            v1: limit_file == "memory.limit_in_bytes",
        };
        std::fs::write(cgroup.dir.join(limit_file), bytes.to_string()).unwrap();
        cgroup
    }

    /// The askgate binary, moved into this cgroup before it starts.
    fn command(&self) -> Command {
        let join = format!(
            "echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"",
            self.dir.display()
        );
        let mut command = Command::new("sh");
        command.args(["-c", &join, env!("CARGO_BIN_EXE_askgate")]);
        command
    }

    fn oom_kills(&self) -> u64 {
        let (file, field) = match self.v1 {
            true => ("memory.oom_control", "oom_kill "),
            false => ("memory.events", "oom_kill "),
        };
        let text = std::fs::read_to_string(self.dir.join(file)).unwrap_or_default();
        text.lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Opens `/api/events`; the socket when it is a 200, else the status line.
fn open_stream(addr: std::net::SocketAddr) -> Result<TcpStream, String> {
    let mut socket = TcpStream::connect(addr).map_err(|error| error.to_string())?;
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    let request =
        format!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n");
    socket
        .write_all(request.as_bytes())
        .map_err(|error| error.to_string())?;
    let mut status = String::new();
    BufReader::new(&socket)
        .read_line(&mut status)
        .map_err(|error| error.to_string())?;
    match status.contains(" 200 ") {
        true => Ok(socket),
        false => Err(status),
    }
}

#[test]
fn streams_past_what_a_32_mib_cgroup_holds_are_refused_and_the_server_lives() {
    let cgroup = Cgroup::create(32 << 20);
    let mut server = ServerProcess::start_with(cgroup.command(), &[]);
    let mut streams = Vec::new();
    let refusal = loop {
        assert!(
            streams.len() < 1024,
            "1,024 streams opened in 32 MiB: the places were not sized from the cgroup"
        );
        match open_stream(server.addr) {
            Ok(socket) => streams.push(socket),
            Err(status) => break status,
        }
    };
    assert!(refusal.contains(" 503 "), "{refusal}");
    assert!(server.is_running(), "the server lives: {}", server.stderr());
    assert_eq!(cgroup.oom_kills(), 0, "nothing was killed");
    // Everyone else is still served: a submit reaches the streams held.
    let id = server.submit_clarify("cgroup", "still there?");
    assert!(!id.is_empty());
    assert_eq!(server.get("/healthz").text(), "ok");
    let last = streams.last_mut().expect("some streams opened");
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("still there?") {
        let mut chunk = [0; 4096];
        let read = last.read(&mut chunk).expect("a frame within the deadline");
        assert!(read > 0, "the stream ended");
        seen.extend_from_slice(&chunk[..read]);
    }
    let count = streams.len();
    assert!(count >= 8, "a few places even so: {count}");
    drop(streams);
    server.kill();
}
