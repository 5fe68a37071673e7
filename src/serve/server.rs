//! The serving loop: binds the listener, starts the named threads, turns
//! tiny_http requests into `Request` values and `Reply` values back into
//! bytes on the wire. The only module besides `stream` that touches sockets.
//!
//! Threads: tiny_http's accept thread (`http-accept`) and one thread per
//! connection (`http-conn`, none kept idle), which reads each request and
//! serves it itself (tiny_http patch 22), so a request crosses no thread;
//! a stream's connection thread is freed as soon as the reply is known to
//! be a stream. One thread per open stream, parked request or refused body
//! being drained; one timer thread (`askgate-expiry`: expiry, sweeps,
//! trims; a fresh one after each trim); the hub's fan-out thread, while
//! changes come (it ends once idle for a trim's period); with Redis, its
//! follower; the notifier's threads when `--notify-*` names a sink.
//! `Server::shutdown` (or drop, or a signal in `Server::wait`) stops
//! accepting, wakes them all and waits for them and for the requests being
//! served, giving up after `SHUTDOWN_PATIENCE` on any blocked writing to a
//! client that stopped reading (or a notification in flight), so the
//! process still exits within 2 s; a request read after that is a 503
//! that closes.
//!
//! No thread waits for work that has not come: idle with a data directory,
//! four run (main, taking the signals; `http-accept`; `askgate-journal`;
//! `askgate-expiry`); the others start with their work. Those that free
//! what activity left end after it (the fan-out idle, the timer and the
//! accept thread after a trim, tiny_http patch 26), so
//! that glibc's caches of the threads (tcache, out of `malloc_trim`'s
//! reach) go back to the trims.
//! A handler's panic is a logged 500, and a panic anywhere in serving a
//! request is logged without ending its connection's thread.

use crate::config::Config;
use crate::error::Error;
use crate::hub::Hub;
use crate::hub::Observed;
use crate::notify::Notifier;
use crate::notify::capability::{self, Capabilities};
use crate::notify::message::Links;
use crate::receipt_key;
use crate::serve::admission::Place;
use crate::serve::auth::{self, Auth, Tokens};
use crate::serve::early::{self, Early, Finished, Print};
use crate::serve::http::{self, Method, Parking, Reply, Request, Response};
use crate::serve::limits;
use crate::serve::metrics::Metrics;
use crate::serve::routes::{self, App};
use crate::serve::signals::ShutdownSignals;
use crate::serve::signin;
use crate::server_key;
use crate::store::audit_log::AuditLog;
use crate::store::journal::Journal;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The stack of a stream thread. It touches about 8 KiB of it (one page
/// for the thread's own data, one of stack); the whole suite passed with
/// 32 KiB, and a panic printing a full backtrace needs under 32 KiB. What
/// runs there must stay shallow. The default 2 MiB would reserve 2 GiB of
/// address space per 1,000 streams, more than a 32-bit device has. (A
/// parked request runs on its connection's thread, tiny_http's, with the
/// default stack: it read and served the request before parking.)
const SMALL_STACK: usize = 64 * 1024;

/// How often the open streams are swept for clients that left.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often freed memory is handed back to the system; the fan-out
/// thread ends once idle this long.
const TRIM_EVERY: Duration = Duration::from_secs(10);
/// A test knob, not a flag: milliseconds between trims (and the fan-out
/// thread's idle time) instead of `TRIM_EVERY`, so that the hostile-client
/// tests see memory come back within seconds of an attack.
const TRIM_EVERY_VARIABLE: &str = "ASKGATE_TEST_TRIM_MS";
/// How long shutdown waits for threads to end before it gives up on them:
/// within the 2 s of docs/PROTOCOL.md §8, with room for the journal's last sync and the exit.
/// Only a thread blocked writing to a client that stopped reading (until
/// `--write-timeout-secs`) should still be running by then.
const SHUTDOWN_PATIENCE: Duration = Duration::from_millis(1500);

/// Where the notifications' key is kept: with Redis, one for every
/// instance, so a button minted by one is taken by the others.
const NOTIFY_KEY: server_key::Kept = server_key::Kept {
    file: capability::KEY_FILE,
    shared_as: "notify_key",
    what: "notification key",
    make: capability::new_key_hex,
    valid: capability::is_key,
};

/// A running server. Dropping it shuts it down.
pub struct Server {
    addr: SocketAddr,
    /// `None` once shutdown has begun: dropping it stops tiny_http's
    /// accept loop and closes the listener.
    http: Option<tiny_http::Server>,
    /// The only strong handle that requests do not hold: connection
    /// threads serve through a `Weak`, so a keep-alive connection left
    /// open keeps nothing (the journal's lock included) after shutdown.
    app: Arc<App>,
    stopping: Arc<AtomicBool>,
    /// The follower (with Redis).
    threads: Vec<JoinHandle<()>>,
    /// Every thread of the server, the ones above included, and every
    /// request being served, counted.
    running: Arc<ThreadGroup>,
}

impl Server {
    /// Binds the address and starts serving; returns once the port is bound,
    /// with the real address (useful when binding port 0).
    pub fn start(config: Config) -> io::Result<Server> {
        let addr = config.bind_addr().map_err(io::Error::other)?;
        limits::bound_allocator();
        let open_files = match limits::raise_open_files() {
            Ok((soft, hard)) => {
                log::info!("open files: {soft} (hard limit {hard})");
                soft
            }
            Err(error) => {
                log::warn!("cannot read the open-file limit: {error}");
                1024
            }
        };
        let max_connections = config
            .max_connections
            .unwrap_or_else(|| limits::connections_for(open_files));
        if let Some(limit) = crate::cgroup::memory_limit() {
            log::info!(
                "memory cgroup limit {} MiB: {} places for streams, {} for parked requests",
                limit >> 20,
                config.max_streams,
                config.max_parked
            );
        }
        let listener = TcpListener::bind(addr).map_err(|error| cannot_listen(addr, error))?;
        let listener = with_socket_timeouts(listener, config.header_timeout, config.write_timeout)?;
        let addr = listener.local_addr()?;
        let hub = open_hub(&config)?;
        let signer = receipt_key::open(&hub, config.data_dir.as_deref())?;
        log::info!("receipts signed with key {}", signer.key_id());
        hub.sign_receipts(Arc::new(signer));
        let tokens = credentials(&config, addr)?;
        let mut auth =
            Auth::new(tokens.clone()).with_local_agents(local_agents(&config, addr, &tokens));
        if let (Some(dir), Some(_)) = (&config.data_dir, &tokens) {
            auth = auth.with_named(dir);
        }
        let running = Arc::new(ThreadGroup::default());
        let mut app = App::with_hub(config, addr.ip().is_loopback(), hub, auth);
        let key = server_key::open(&app.hub, app.config.data_dir.as_deref(), &NOTIFY_KEY)?;
        app.capabilities = Arc::new(Capabilities::from_hex(&key)?);
        app.notifier = start_notifier(&app, addr, &running)?;
        let app = Arc::new(app);
        let stopping = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let serving = Serving {
            app: Arc::downgrade(&app),
            stopping: stopping.clone(),
            group: running.clone(),
        };
        let options = tiny_http::ServerOptions::new()
            .with_one_request_at_a_time(true)
            .with_max_connections(Some(max_connections))
            // No connection thread waits at idle: each starts with its
            // connection (or is one that ended another lately).
            .with_idle_threads(0)
            .with_refusal_response(refusal_response)
            // Each request is served on its connection's thread.
            .with_handler(Arc::new(move |raw| serving.serve(raw)));
        let http = tiny_http::Server::from_listener_with_options(listener, None, options)
            .map_err(io::Error::other)?;
        let (hub, streams, flag) = (app.hub.clone(), app.streams.clone(), stopping.clone());
        let auth = app.auth.clone();
        // What may have taken a stream's credential away, when last looked
        // at (`Auth::revocations`): first before any request is served.
        let mut revocations = auth.revocations(&hub);
        let trim_every = std::env::var(TRIM_EVERY_VARIABLE)
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(TRIM_EVERY, Duration::from_millis);
        let (accepted, renew_accept) = (http.connections_accepted(), http.renew_accept_thread());
        let lingers = app.config.header_timeout + CONNECTION_THREAD_LINGERS;
        // Expiry, and now and then the open streams swept for clients that
        // left, and the allocator trimmed after activity (limits::TrimPolicy):
        // an idle server does no work. Each trim hands the timer over to a
        // fresh thread (`relay`), and the accept loop too if it accepted
        // (tiny_http patch 26), so that what they freed reaches the next
        // trim. Not sooner: a thread's end runs glibc's code for it (64-192
        // KiB of libc's pages mapped for that alone), which a trim's ends
        // map anyway (BENCHMARKS.md, memory per stream at 100). The trims of
        // quiet periods also give back the code pages the activity read in
        // (`limits::release_code_pages`).
        let (mut trimmed, mut swept) = (Instant::now(), Instant::now());
        let mut trims = limits::TrimPolicy::new([0, 0], trim_every, lingers);
        let tick = move || {
            if flag.load(Ordering::Acquire) {
                return Tick::Stop;
            }
            let wait = hub.expire_due(crate::hub::EXPIRY_CHECK);
            let sweep_in = SWEEP_EVERY.saturating_sub(swept.elapsed());
            hub.wait_for_expiry(wait.min(sweep_in).max(Duration::from_millis(5)));
            if swept.elapsed() >= SWEEP_EVERY {
                streams.sweep();
                // Looked at even with no stream open (one `lstat`), so
                // a revoke just after a stream's check is not missed.
                let now = auth.revocations(&hub);
                if std::mem::replace(&mut revocations, now) != now {
                    streams.recheck();
                }
                swept = Instant::now();
            }
            if trimmed.elapsed() < trim_every {
                return Tick::Again;
            }
            trimmed = Instant::now();
            let activity = [
                accepted.load(Ordering::Relaxed) as u64,
                hub.counts().version,
            ];
            let trim = trims.due(activity);
            if trim == limits::Trim::Nothing {
                return Tick::Again;
            }
            limits::trim_allocator();
            renew_accept.store(true, Ordering::Relaxed);
            if trim == limits::Trim::HeapAndCode {
                limits::release_code_pages();
            }
            Tick::Renew
        };
        relay(&running, "askgate-expiry", Arc::new(Mutex::new(tick)))?;
        if app.hub.is_replicated() {
            let hub = app.hub.clone();
            threads.push(running.spawn("askgate-redis", move || hub.follow())?);
        }
        // The fan-out thread starts with the first change's deliveries and
        // ends once idle for a trim's period (`Hub::fan_out`).
        let (hub, group) = (Arc::downgrade(&app.hub), running.clone());
        app.hub.fan_out_on(Box::new(move || {
            let hub = hub.upgrade().ok_or(io::ErrorKind::NotFound)?;
            // Boxed, as the notifier's: one instantiation of the spawn.
            let work: Box<dyn FnOnce() + Send> = Box::new(move || hub.fan_out(trim_every));
            group.spawn_detached("askgate-fanout", work)
        }));
        log::info!("askgate listening on http://{addr}");
        if let Some(url) = &app.config.public_url {
            log::info!(
                "askgate public url {url} (base path {})",
                app.config.base_path()
            );
        }
        Ok(Server {
            addr,
            http: Some(http),
            app,
            stopping,
            threads,
            running,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until SIGTERM or SIGINT arrives, then shuts down (a second
    /// signal meanwhile ends the process at once). The signals must have
    /// been blocked before `start`, so that no other thread takes them.
    pub fn wait(self, signals: ShutdownSignals) {
        let signal = signals.wait();
        signals.release();
        log::info!("{signal} received: shutting down");
        self.shutdown();
    }

    /// Stops accepting, ends every stream (with its last chunk, so clients
    /// reconnect) and answers every parked request at once, joins the
    /// threads, and syncs and closes the journal.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        let started = Instant::now();
        let admission = &self.app.admission;
        let (streams, parked) = (admission.held(Place::Stream), admission.held(Place::Parked));
        // Stops accepting; a request read from now on is a 503 (`Serving`).
        drop(self.http.take());
        // Every stream's channel closes and it writes its last chunk; waits
        // answer `pending` and long-polls the current state, at once.
        self.app.hub.close();
        if let Some(notifier) = &self.app.notifier {
            notifier.stop();
        }
        let all_ended = self.running.wait_empty(started + SHUTDOWN_PATIENCE);
        for handle in self.threads.drain(..) {
            if all_ended || handle.is_finished() {
                let _ = handle.join();
            }
        }
        self.app.hub.close_files();
        let elapsed = started.elapsed().as_millis();
        match self.running.count() {
            0 => log::info!(
                "shut down in {elapsed} ms: ended {streams} streams and {parked} parked requests"
            ),
            left => log::warn!(
                "shut down in {elapsed} ms: ended {streams} streams and {parked} parked requests; \
                 not waiting for {left} threads still running (blocked writing to clients that \
                 stopped reading, or sending a notification?)"
            ),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The notifier, when `--notify-*` names a sink: one thread per sink, and
/// the hub tells it of each new prompt. Its links point at `--public-url`,
/// else at the address bound.
fn start_notifier(
    app: &App,
    addr: SocketAddr,
    running: &Arc<ThreadGroup>,
) -> io::Result<Option<Arc<Notifier>>> {
    let settings = &app.config.notify;
    if !settings.any() {
        return Ok(None);
    }
    let base = match &app.config.public_url {
        Some(url) => url.to_string(),
        None => {
            log::warn!(
                "NO --public-url: notifications link to http://{addr}, and their buttons post there; \
                 a phone that is not on this machine can open neither. Give --public-url with the \
                 address a phone reaches askgate at (docs/PROTOCOL.md §8)"
            );
            format!("http://{addr}")
        }
    };
    let spawn = |name: &str, work: Box<dyn FnOnce() + Send>| running.spawn_detached(name, work);
    let notifier = Notifier::start(settings, Links { base }, app.capabilities.clone(), &spawn)?;
    let observer = notifier.clone();
    app.hub.observe(Box::new(move |observed| match observed {
        Observed::Submitted(prompt) => observer.submitted(prompt),
        Observed::Resolved(resolution) => observer.resolved(
            &resolution.session_id,
            resolution.kind,
            &resolution.id,
            resolution.status,
        ),
    }));
    let when = match settings.timing.always {
        true => "always".to_string(),
        false => format!(
            "when no page is visible (a hidden one holds them for {}s)",
            settings.timing.grace.as_secs()
        ),
    };
    log::info!(
        "notifying {} of new prompts, {when}",
        notifier.sink_names().join(" and ")
    );
    Ok(Some(notifier))
}

/// The audit file rotates to `audit.log.1` before it would pass this.
const AUDIT_LOG_MAX_BYTES: u64 = 8 << 20;

/// The hub: in memory, or on the journal in `--data-dir`, whose state is
/// replayed first, with the audit file beside it. A directory another
/// server holds, or damage, refuses.
fn open_hub(config: &Config) -> io::Result<Hub> {
    let limits = App::limits(config);
    if let Some(target) = &config.redis {
        let audit_log = match &config.data_dir {
            Some(dir) => Some(AuditLog::open(dir, AUDIT_LOG_MAX_BYTES).map_err(|error| {
                io::Error::other(format!(
                    "cannot open the audit log in {}: {error}",
                    dir.display()
                ))
            })?),
            None => None,
        };
        log::info!("state in {target}, shared with every instance that names it");
        return Hub::open_replicated(limits, config.subscriber_buffer, target.clone(), audit_log)
            .map_err(io::Error::other);
    }
    let Some(dir) = &config.data_dir else {
        log::info!("keeping state in memory only (--data-dir none)");
        return Ok(Hub::new(limits, config.subscriber_buffer));
    };
    let (journal, recovered) =
        Journal::open(dir).map_err(|error| io::Error::other(error.to_string()))?;
    if let Some(warning) = &recovered.torn_tail {
        log::warn!("{warning}");
    }
    log::info!("journal in {}", dir.display());
    let audit_log = AuditLog::open(dir, AUDIT_LOG_MAX_BYTES).map_err(|error| {
        io::Error::other(format!(
            "cannot open the audit log in {}: {error}",
            dir.display()
        ))
    })?;
    let audit_log = Some(audit_log);
    Hub::open(
        limits,
        config.subscriber_buffer,
        journal,
        &recovered,
        audit_log,
    )
    .map_err(|error| {
        io::Error::other(format!(
            "cannot replay the journal in {}: {error}",
            dir.display()
        ))
    })
}

/// The tokens to check (docs/PROTOCOL.md §7): given by flag, environment
/// or file; else none with `--insecure-no-auth`; else those in the data
/// directory; else made now, in the data directory (kept) or, on
/// loopback without one, in memory for this run, with a sign-in link
/// printed once. Equal tokens are refused wherever they come from.
fn credentials(config: &Config, addr: SocketAddr) -> io::Result<Option<Tokens>> {
    match &config.tokens {
        (Some(agent), Some(human)) => {
            let tokens = Tokens {
                agent: agent.clone(),
                human: human.clone(),
            };
            return tokens.distinct("--agent-token and --human-token").map(Some);
        }
        (None, None) => {}
        _ => {
            return Err(io::Error::other(
                "give both --agent-token and --human-token (or their -file forms)",
            ));
        }
    }
    if config.insecure_no_auth {
        // Whatever the log level: this undoes what askgate is for.
        eprintln!(
            "askgate: WARNING: NO AUTHENTICATION (--insecure-no-auth): anyone who can reach {addr}, \
             any local process and the agents you gate included, can answer every prompt and grant rules"
        );
        return Ok(None);
    }
    if let Some(dir) = &config.data_dir
        && let Some(tokens) = auth::read_tokens(dir)?
    {
        let file = dir.join(auth::TOKENS_FILE);
        let tokens = tokens.distinct(&file.display().to_string())?;
        log::info!(
            "tokens from {}; `askgate signin-link --data-dir {}` prints a link that signs the page in",
            file.display(),
            dir.display()
        );
        return Ok(Some(tokens));
    }
    // Behind a proxy (a public URL) a loopback bind is reached from the
    // network all the same.
    let local_only = addr.ip().is_loopback() && config.public_url.is_none();
    let page = page_url(config, addr);
    let Some(dir) = &config.data_dir else {
        if !local_only {
            return Err(io::Error::other(format!(
                "refusing to serve {addr} (or --public-url) without credentials: give --agent-token and \
                 --human-token, or a --data-dir to make them in, or --insecure-no-auth to let anyone answer"
            )));
        }
        let tokens = auth::new_tokens()?;
        let code = signin::mint(&signin::key(&tokens.human))?;
        eprintln!(
            "askgate made tokens for this run only (--data-dir none); the page needs the human's.\n\
             \x20 sign in within {} minutes, once, with: {}\n\
             \x20 (`askgate signin-link` needs a data directory, so it cannot make another link for this run)\n\
             \x20 agents on this machine need no token",
            signin::LIFETIME_SECS / 60,
            signin::link(&page, &code)
        );
        return Ok(Some(tokens));
    };
    // Usually made already by the journal; the user's alone either way.
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(dir)?;
    let tokens = auth::write_new_tokens(dir, None)?;
    let code = signin::mint(&signin::key(&tokens.human))?;
    let agents = match local_only {
        true => "no token needed on this machine; elsewhere ".to_string(),
        false => String::new(),
    };
    eprintln!(
        "askgate made its tokens in {} (readable by you only; `askgate tokens rotate` makes new ones)\n\
         \x20 the page: sign in within {} minutes, once, with: {}\n\
         \x20 a new link any time: askgate signin-link --data-dir {}\n\
         \x20 agents: {agents}ASKGATE_TOKEN={} askgate approve --session S --command ...",
        dir.join(auth::TOKENS_FILE).display(),
        signin::LIFETIME_SECS / 60,
        signin::link(&page, &code),
        dir.display(),
        tokens.agent,
    );
    Ok(Some(tokens))
}

/// Whether a caller with no credential is an agent: only on a server
/// bound to loopback with tokens, and not behind a proxy (`--public-url`
/// or `--trusted-proxy`), where every client would look local.
fn local_agents(config: &Config, addr: SocketAddr, tokens: &Option<Tokens>) -> bool {
    tokens.is_some()
        && addr.ip().is_loopback()
        && config.public_url.is_none()
        && config.trusted_proxies.is_empty()
}

/// The page's address for a sign-in link: `--public-url`, else the bound
/// address (loopback for an unspecified one).
fn page_url(config: &Config, addr: SocketAddr) -> String {
    if let Some(url) = &config.public_url {
        return format!("{url}/");
    }
    let mut shown = addr;
    if addr.ip().is_unspecified() {
        shown.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{shown}/")
}

/// What tiny_http answers by itself (a malformed head, a head too slow or
/// too large) is a JSON error like every other.
fn refusal_response(refusal: tiny_http::Refusal) -> tiny_http::ResponseBox {
    let body = serde_json::json!({"error": refusal.reason()}).to_string();
    let mut response = tiny_http::Response::from_data(body);
    let retry = match refusal {
        tiny_http::Refusal::TooManyConnections => "1",
        _ => "",
    };
    let headers = [
        ("Content-Type", http::JSON),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("Retry-After", retry),
    ];
    for (name, value) in headers.into_iter().filter(|(_, value)| !value.is_empty()) {
        if let Ok(header) = tiny_http::Header::from_bytes(name, value) {
            response.add_header(header);
        }
    }
    response.boxed()
}

/// A bind error that names the address, and what to do when it is taken.
fn cannot_listen(addr: SocketAddr, error: io::Error) -> io::Error {
    let hint = match error.kind() {
        io::ErrorKind::AddrInUse => {
            " (another process, perhaps another askgate, listens there: stop it, or pick another port with --bind)"
        }
        io::ErrorKind::PermissionDenied => {
            " (ports below 1024 need privileges: pick another with --bind)"
        }
        _ => "",
    };
    io::Error::new(
        error.kind(),
        format!("cannot listen on {addr}: {error}{hint}"),
    )
}

/// Sets the receive and send timeouts on the listening socket; Linux copies
/// them to every accepted socket. (The patched tiny_http keeps accepting
/// when the receive timeout fires on `accept` itself.)
fn with_socket_timeouts(
    listener: TcpListener,
    receive: Duration,
    send: Duration,
) -> io::Result<TcpListener> {
    let socket = TcpStream::from(OwnedFd::from(listener));
    socket.set_read_timeout(Some(receive))?;
    socket.set_write_timeout(Some(send).filter(|send| !send.is_zero()))?;
    Ok(TcpListener::from(OwnedFd::from(socket)))
}

/// How long tiny_http keeps a connection thread that ended its
/// connection, for the next one (its `TaskPool`).
const CONNECTION_THREAD_LINGERS: Duration = Duration::from_secs(5);

/// What serves each request, on the thread of the connection that read it
/// (tiny_http patch 22): no hand-off to another thread, which cost two
/// context switches a request (BENCHMARKS.md, issue 23).
struct Serving {
    app: Weak<App>,
    stopping: Arc<AtomicBool>,
    /// Counts the request while it is served, so that shutdown waits for it.
    group: Arc<ThreadGroup>,
}

impl Serving {
    fn serve(&self, raw: tiny_http::Request) {
        let _serving = self.group.enter();
        // Sequentially consistent with `Server::stop`: a request either is
        // counted before shutdown waits, or sees the server stopping.
        let app = self.app.upgrade();
        match app.filter(|_| !self.stopping.load(Ordering::SeqCst)) {
            Some(app) => serve_guarded(&app, &self.group, raw),
            None => write(raw, shutting_down()),
        }
    }
}

/// The answer to a request read once shutdown has begun: a 503 that
/// closes its connection, since nothing more will be served on it.
fn shutting_down() -> Response {
    let body = serde_json::json!({"error": "the server is shutting down"});
    Response::json(503, &body).with_header("Connection", "close".into())
}

/// `serve`, with a panic anywhere in it (tiny_http's writing included)
/// logged instead of ending the thread.
fn serve_guarded(app: &App, detached: &Arc<ThreadGroup>, raw: tiny_http::Request) {
    if catch_unwind(AssertUnwindSafe(|| serve(app, detached, raw))).is_err() {
        log::error!("serving a request panicked");
    }
}

fn serve(app: &App, detached: &Arc<ThreadGroup>, mut raw: tiny_http::Request) {
    // Read before the request's credential is checked (docs/PROTOCOL.md §7).
    let revocations = app.streams.revocations();
    let (request, unread_body) = read_request(&mut raw, app.config.max_body, revocations);
    let reply = match request {
        Ok(request) => catch_unwind(AssertUnwindSafe(|| routes::handle(app, &request)))
            .unwrap_or_else(|_| {
                log::error!("handler panicked on {} {}", raw.method(), request.path);
                Error::Internal.into()
            }),
        Err(error) => error.into(),
    };
    let metrics = app.metrics.clone();
    let outcome = match reply {
        Reply::Done(response) if unread_body => {
            detached.spawn_detached("askgate-drain", move || {
                let _ = io::copy(raw.as_reader(), &mut io::sink());
                respond(&metrics, raw, response);
            })
        }
        Reply::Done(response) => {
            respond(&metrics, raw, response);
            Ok(())
        }
        Reply::Stream(stream) => {
            metrics.count_response(200);
            let chunked = raw.http_version() >= &tiny_http::HTTPVersion(1, 1);
            // The connection reads nothing more: its reading thread is free
            // now. The writer is its socket, unbuffered (tiny_http patch
            // 27), and `fd` the descriptor under it, open as long as it lives.
            let (writer, fd) = raw.into_final_writer();
            let stream = move || stream(writer, chunked, fd);
            detached.spawn_sized("askgate-stream", Some(SMALL_STACK), stream)
        }
        // Parked on the connection's own thread, which reads the next
        // request once this one is answered: a change that wakes 1,000
        // parked polls wakes 1,000 threads, not a parked thread and then
        // its connection's for each (BENCHMARKS.md, issue 23).
        // A long-poll may be answered on its socket by the fan-out thread
        // meanwhile (serve/early.rs): then only what did not fit is written.
        Reply::Park(work) => {
            let fd = raw.connection_fd();
            let parking = Parking {
                client_left: &|| fd.is_some_and(limits::client_has_left),
                early: fd.map(|fd| Arc::new(Early::new(fd, printer(&raw)))),
            };
            match early::finish_parked(work, &parking) {
                Finished::Early(sent) => {
                    metrics.count_response(sent.status);
                    metrics.answered_early.fetch_add(1, Ordering::Relaxed);
                    if let Err(error) = raw.respond_rest(&sent.rest) {
                        log::debug!("writing a response failed: {error}");
                    }
                }
                Finished::Work(response) => respond(&metrics, raw, response),
            }
            Ok(())
        }
    };
    if let Err(error) = outcome {
        log::error!("could not start a thread: {error}");
    }
}

/// The request as a value (or a 400 for a malformed url). The body is read
/// only when it is acceptable; `true` means a body was left unread and must
/// be drained before replying.
fn read_request(
    raw: &mut tiny_http::Request,
    max_body: usize,
    revocations: u64,
) -> (Result<Request, Error>, bool) {
    let method = Method::parse(raw.method().as_str());
    let headers: Vec<(String, String)> = raw
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    let has_body = raw.body_length().is_some_and(|n| n > 0)
        || headers.iter().any(|(name, _)| name == "transfer-encoding");
    let (path, query) = match http::split_url(raw.url()) {
        Ok(parts) => parts,
        Err(error) => return (Err(error), has_body),
    };
    let content_type = headers
        .iter()
        .find(|(name, _)| name == "content-type")
        .map(|(_, v)| v.as_str());
    let body = if method == Method::Post && !is_json(content_type) {
        Err(Error::UnsupportedMediaType)
    } else if !has_body {
        Ok(Vec::new())
    } else if raw.body_length().is_some_and(|n| n > max_body) {
        Err(Error::PayloadTooLarge)
    } else {
        read_body(raw.as_reader(), max_body)
    };
    let unread = has_body && body.is_err();
    (
        Ok(Request {
            method,
            path,
            query,
            headers,
            peer: raw.remote_addr().copied(),
            body,
            revocations,
        }),
        unread,
    )
}

fn read_body(reader: &mut dyn Read, max_body: usize) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    match reader.take(max_body as u64 + 1).read_to_end(&mut body) {
        Ok(_) if body.len() > max_body => Err(Error::PayloadTooLarge),
        Ok(_) => Ok(body),
        Err(_) => Err(Error::bad_request("could not read the request body")),
    }
}

fn is_json(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

fn respond(metrics: &Metrics, raw: tiny_http::Request, response: Response) {
    metrics.count_response(response.status);
    write(raw, response);
}

/// Writes the response as tiny_http's, with the headers every response has.
fn write(raw: tiny_http::Request, response: Response) {
    if let Err(error) = raw.respond(to_tiny_http(response)) {
        log::debug!("writing a response failed: {error}");
    }
}

/// The bytes `write` would write for a response to `raw`, from any thread.
fn printer(raw: &tiny_http::Request) -> Print {
    let printer = raw.printer();
    Box::new(move |response| printer.print(to_tiny_http(response)).unwrap_or_default())
}

/// The response as tiny_http's, with the headers every response has.
fn to_tiny_http(response: Response) -> tiny_http::Response<io::Cursor<Vec<u8>>> {
    let mut out = tiny_http::Response::from_data(response.body).with_status_code(response.status);
    let cache_control = match response.content_type == http::JSON {
        true => Some("no-store"),
        false => None,
    };
    let headers = [
        ("Content-Type", response.content_type),
        ("X-Content-Type-Options", "nosniff"),
    ]
    .into_iter()
    .chain(cache_control.map(|value| ("Cache-Control", value)))
    .chain(
        response
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str())),
    );
    for (name, value) in headers {
        if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            out.add_header(header);
        }
    }
    out
}

/// What the timer does after a tick.
enum Tick {
    Again,
    /// Go on on a fresh thread: a thread's end hands what it freed, kept
    /// in glibc's cache of that thread (tcache, up to 7 chunks of each
    /// size up to 1 KiB, which `malloc_trim` cannot reach), back to the
    /// arena, where the next trim reaches it (BENCHMARKS.md, "the
    /// long-lived threads give their caches back").
    Renew,
    Stop,
}

/// Runs `tick` on a thread named `name`, counted in `group`, until it says
/// stop; on a fresh one each time it says renew (on this one still, when
/// no thread can be started).
fn relay<F: FnMut() -> Tick + Send + 'static>(
    group: &Arc<ThreadGroup>,
    name: &'static str,
    tick: Arc<Mutex<F>>,
) -> io::Result<()> {
    let next = group.clone();
    let work: Box<dyn FnOnce() + Send> = Box::new(move || {
        loop {
            let step = (tick.lock().unwrap_or_else(|p| p.into_inner()))();
            match step {
                Tick::Again => {}
                Tick::Renew if relay(&next, name, tick.clone()).is_ok() => return,
                Tick::Renew => {}
                Tick::Stop => return,
            }
        }
    });
    group.spawn_detached(name, work)
}

/// The server's threads and the requests being served, counted so that
/// shutdown can wait for all of them with a deadline: streams and parked
/// requests are not joined one by one. Counting is one atomic operation
/// each way: every request on every connection's thread counts, and a
/// lock taken for each was a point they all met at; the lock is taken
/// only when the count falls to zero, to wake `wait_empty`.
#[derive(Default)]
struct ThreadGroup {
    running: AtomicUsize,
    lock: Mutex<()>,
    ended: Condvar,
}

struct Member(Arc<ThreadGroup>);

impl Drop for Member {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            // Under the lock, so that `wait_empty` cannot miss it between
            // reading the count and waiting.
            let _lock = self.0.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.0.ended.notify_all();
        }
    }
}

impl ThreadGroup {
    /// Counts the calling thread until the value returned is dropped.
    fn enter(self: &Arc<Self>) -> Member {
        self.running.fetch_add(1, Ordering::SeqCst);
        Member(self.clone())
    }

    /// Starts a named thread, counted while it runs.
    fn spawn(
        self: &Arc<Self>,
        name: &str,
        work: impl FnOnce() + Send + 'static,
    ) -> io::Result<JoinHandle<()>> {
        self.spawn_with_stack(name, None, work)
    }

    /// Starts a named thread with a stack of this size (else the default),
    /// counted while it runs.
    fn spawn_with_stack(
        self: &Arc<Self>,
        name: &str,
        stack: Option<usize>,
        work: impl FnOnce() + Send + 'static,
    ) -> io::Result<JoinHandle<()>> {
        let member = self.enter();
        let builder = thread::Builder::new().name(name.into());
        let builder = match stack {
            Some(size) => builder.stack_size(size),
            None => builder,
        };
        builder.spawn(move || {
            let _member = member;
            work();
        })
    }

    /// Starts a named thread that is counted but not joined.
    fn spawn_detached(
        self: &Arc<Self>,
        name: &str,
        work: impl FnOnce() + Send + 'static,
    ) -> io::Result<()> {
        self.spawn(name, work).map(drop)
    }

    /// Like `spawn_detached`, with a stack of this size.
    fn spawn_sized(
        self: &Arc<Self>,
        name: &str,
        stack: Option<usize>,
        work: impl FnOnce() + Send + 'static,
    ) -> io::Result<()> {
        self.spawn_with_stack(name, stack, work).map(drop)
    }

    fn count(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Waits until no thread runs, or the deadline; `true` for the former.
    fn wait_empty(&self, deadline: Instant) -> bool {
        let mut lock = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        while self.count() > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            lock = match self.ended.wait_timeout(lock, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }
}
