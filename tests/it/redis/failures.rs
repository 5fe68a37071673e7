//! Failures: kill -9 of an instance under load, Redis restarted under
//! load, SIGTERM with Redis there or gone, starting without Redis.

use super::*;
use crate::support::SseClient;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

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
fn an_instance_refuses_to_start_without_its_redis_and_says_where() {
    let refusing = refusing_port();
    let url = format!("redis://127.0.0.1:{}/0", refusing.port);
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
