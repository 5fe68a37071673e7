//! The shared audit stream is written off the path that delivers frames:
//! a proxy in front of Redis holds every command that touches the audit
//! stream, and a change is still shown and answered while it is held.

use super::*;
use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

/// A TCP proxy to Redis that holds, while its gate is shut, every chunk a
/// client sends that names the audit stream's byte counter.
struct GatedProxy {
    port: u16,
    shared: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    opened: Condvar,
}

#[derive(Default)]
struct GateState {
    shut: bool,
    /// The client sockets of the chunks held so far.
    held: Vec<TcpStream>,
}

impl GatedProxy {
    fn start(upstream: u16) -> GatedProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Gate::default());
        let gate = shared.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                pump(
                    server.try_clone().unwrap(),
                    client.try_clone().unwrap(),
                    None,
                );
                pump(client, server, Some(gate.clone()));
            }
        });
        GatedProxy { port, shared }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn shut(&self) {
        self.shared.state.lock().unwrap().shut = true;
    }

    fn open(&self) {
        self.shared.state.lock().unwrap().shut = false;
        self.shared.opened.notify_all();
    }

    fn held(&self) -> usize {
        self.shared.state.lock().unwrap().held.len()
    }

    /// Whether a client whose command is held gave up on it (closed its
    /// connection: a command that timed out).
    fn a_held_client_left(&self) -> bool {
        let state = self.shared.state.lock().unwrap();
        state.held.iter().any(|socket| {
            socket.set_nonblocking(true).unwrap();
            let left = matches!(socket.peek(&mut [0; 1]), Ok(0));
            socket.set_nonblocking(false).unwrap();
            left
        })
    }
}

/// Copies `from` to `to` on a thread of its own; with a gate, a chunk that
/// names the audit stream waits while the gate is shut.
fn pump(mut from: TcpStream, mut to: TcpStream, gate: Option<Arc<Gate>>) {
    thread::spawn(move || {
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let names_audit = buf[..n].windows(19).any(|w| w == b"askgate:audit-bytes");
            if let Some(gate) = gate.as_ref().filter(|_| names_audit) {
                let mut state = gate.state.lock().unwrap();
                if state.shut {
                    state.held.push(from.try_clone().unwrap());
                    while state.shut {
                        state = gate.opened.wait(state).unwrap();
                    }
                }
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

#[test]
fn frames_and_answers_do_not_wait_for_the_audit_stream() {
    let Some(program) = redis_server() else {
        return;
    };
    let redis = Redis::start(program);
    let proxy = GatedProxy::start(redis.port);
    let server = ServerProcess::start_with(askgate(), &["--store", &proxy.url()]);
    let mut stream = server.stream("/api/events?session_id=audited");
    stream.events_until("ready");

    proxy.shut();
    let id = submit(&server, "audited", "shown before it is audited in redis?");
    let shown = frame(&stream.expect_event("the new prompt"));
    assert_eq!(shown, ("audited".to_string(), 1, Some(id.clone())));
    eventually("the audit line reaches the proxy", LONG, &mut || {
        proxy.held() >= 1
    });
    // Shown and answered while the audit line waits: had the frame waited
    // for it, its command would have timed out (its client gone) first.
    assert!(
        !proxy.a_held_client_left(),
        "the frame came only after the audit command gave up"
    );

    proxy.open();
    eventually("the audit line lands in redis", LONG, &mut || {
        let lines = redis_call(&redis, &["XRANGE", "askgate:audit", "-", "+"]);
        text(&lines).contains(&format!("id={id}"))
    });
}

/// Every bulk string of a reply, one a line.
fn text(reply: &askgate::store::resp::Reply) -> String {
    use askgate::store::resp::Reply;
    match reply {
        Reply::Array(items) => items.iter().map(text).collect(),
        other => format!(
            "{}\n",
            String::from_utf8_lossy(other.as_bytes().unwrap_or_default())
        ),
    }
}
