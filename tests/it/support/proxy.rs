//! Test support: a reverse proxy on loopback port 0 that serves a test server
//! under `/askgate/` (as nginx's `location /askgate/ { proxy_pass ...; }`)
//! and sends every response body chunked, a few bytes per chunk.
//!
//! It also does what proxies do to a client: `/old/...` and `/away/...` are
//! `301` redirects to `/askgate/...` on the same host and on `localhost`; a
//! server that is down is a `502` HTML page, any other path a `404` one; and
//! while `busy_waits` lasts, a wait is a `503` with `Retry-After`. Every
//! request is recorded. One request per connection; every read has a deadline.
//!
//! `Proxy::start_tls` speaks https with `tests/it/tls/server.pem` (for
//! 127.0.0.1 and localhost), signed by the test CA `tests/it/tls/ca.pem`
//! whose key was thrown away: `openssl req -x509 -newkey ec -pkeyopt
//! ec_paramgen_curve:P-256 -days 36500` with `CA:TRUE`, then a server key
//! and `openssl x509 -req` with `subjectAltName=IP:127.0.0.1,DNS:localhost`.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Bytes per chunk of every body the proxy sends.
const CHUNK: usize = 7;
/// Longer than the longest wait the command asks the server for.
const UPSTREAM_DEADLINE: Duration = Duration::from_secs(40);

/// One request as the proxy received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub authorization: Option<String>,
    pub at: Instant,
}

pub struct Proxy {
    pub addr: SocketAddr,
    /// How many waits are still answered `503`.
    pub busy_waits: Arc<AtomicUsize>,
    /// The `Retry-After` of those answers, in seconds.
    pub retry_after: Arc<AtomicU64>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

/// What the proxy shares with its connection threads.
#[derive(Clone)]
struct Shared {
    addr: SocketAddr,
    upstream: SocketAddr,
    busy_waits: Arc<AtomicUsize>,
    retry_after: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    /// Starts the proxy in front of `upstream`, which may be down.
    pub fn start(upstream: SocketAddr) -> Proxy {
        Proxy::start_with(upstream, None)
    }

    /// The same proxy over https, with the test CA's server certificate.
    pub fn start_tls(upstream: SocketAddr) -> Proxy {
        Proxy::start_with(upstream, Some(Arc::new(tls_config())))
    }

    fn start_with(upstream: SocketAddr, tls: Option<Arc<ServerConfig>>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let shared = Shared {
            addr: listener.local_addr().unwrap(),
            upstream,
            busy_waits: Arc::default(),
            retry_after: Arc::new(AtomicU64::new(1)),
            seen: Arc::default(),
        };
        let proxy = Proxy {
            addr: shared.addr,
            busy_waits: shared.busy_waits.clone(),
            retry_after: shared.retry_after.clone(),
            seen: shared.seen.clone(),
        };
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                client.set_read_timeout(Some(super::DEADLINE)).unwrap();
                let shared = shared.clone();
                let Some(tls) = tls.clone() else {
                    thread::spawn(move || shared.serve(client));
                    continue;
                };
                let connection = ServerConnection::new(tls).unwrap();
                thread::spawn(move || shared.serve(StreamOwned::new(connection, client)));
            }
        });
        proxy
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn https_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A request head and body as read off the client.
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        let found = self
            .headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name));
        found.map(|(_, value)| value.as_str())
    }
}

impl Shared {
    fn serve(&self, mut client: impl Read + Write) {
        let Some(request) = read_request(&mut client) else {
            return;
        };
        self.seen.lock().unwrap().push(Seen {
            method: request.method.clone(),
            target: request.target.clone(),
            authorization: request.header("authorization").map(str::to_string),
            at: Instant::now(),
        });
        let (head, body) = self.answer(&request);
        let _ = send_chunked(&mut client, &head, &body);
    }

    /// The response head (status line and headers, no framing) and body.
    fn answer(&self, request: &Request) -> (String, Vec<u8>) {
        let target = &request.target;
        if let Some(rest) = target.strip_prefix("/old/") {
            return redirect(&format!("/askgate/{rest}"));
        }
        if let Some(rest) = target.strip_prefix("/away/") {
            let port = self.addr.port();
            return redirect(&format!("http://localhost:{port}/askgate/{rest}"));
        }
        let Some(path) = target.strip_prefix("/askgate") else {
            return page(404, "Not Found", "");
        };
        let busy = |left: usize| left.checked_sub(1);
        if path.contains("/wait?")
            && self
                .busy_waits
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, busy)
                .is_ok()
        {
            let retry_after = self.retry_after.load(Ordering::Acquire);
            return page(
                503,
                "Service Unavailable",
                &format!("Retry-After: {retry_after}\r\n"),
            );
        }
        forward(self.upstream, path, request).unwrap_or_else(|| page(502, "Bad Gateway", ""))
    }
}

fn read_request(client: &mut impl Read) -> Option<Request> {
    let mut reader = BufReader::new(client);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let (method, target) = (words.next()?.to_string(), words.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        match line.trim_end().split_once(':') {
            Some((name, value)) => headers.push((name.to_string(), value.trim().to_string())),
            None => break,
        }
    }
    let mut request = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    let length = request
        .header("content-length")
        .map_or(Some(0), |value| value.parse().ok())?;
    request.body = vec![0; length];
    reader.read_exact(&mut request.body).ok()?;
    Some(request)
}

/// Sends the request on to the server at `path` and reads its answer whole;
/// `None` when the server cannot be reached.
fn forward(upstream: SocketAddr, path: &str, request: &Request) -> Option<(String, Vec<u8>)> {
    let mut server = TcpStream::connect(upstream).ok()?;
    server.set_read_timeout(Some(UPSTREAM_DEADLINE)).unwrap();
    let mut head = format!("{} {path} HTTP/1.1\r\n", request.method);
    for (name, value) in &request.headers {
        if !name.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    server.write_all(head.as_bytes()).ok()?;
    server.write_all(&request.body).ok()?;
    let mut response = Vec::new();
    server.read_to_end(&mut response).ok()?;
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let kept: Vec<&str> = head
        .split("\r\n")
        .filter(|line| !is_framing(line))
        .collect();
    Some((kept.join("\r\n") + "\r\n", response[split + 4..].to_vec()))
}

/// Headers the proxy sets itself: how the body is framed, and the connection.
fn is_framing(line: &str) -> bool {
    let name = line
        .split(':')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ["content-length", "transfer-encoding", "connection"].contains(&name.as_str())
}

fn redirect(location: &str) -> (String, Vec<u8>) {
    page(
        301,
        "Moved Permanently",
        &format!("Location: {location}\r\n"),
    )
}

/// An HTML page as nginx sends for its own errors.
fn page(status: u16, reason: &str, headers: &str) -> (String, Vec<u8>) {
    let head = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: text/html\r\n{headers}");
    let body = format!(
        "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
    );
    (head, body.into_bytes())
}

/// Writes the head, then the body in chunks of `CHUNK` bytes, each flushed.
fn send_chunked(client: &mut impl Write, head: &str, body: &[u8]) -> std::io::Result<()> {
    client.write_all(head.as_bytes())?;
    client.write_all(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")?;
    for chunk in body.chunks(CHUNK) {
        client.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
        client.write_all(chunk)?;
        client.write_all(b"\r\n")?;
        client.flush()?;
    }
    client.write_all(b"0\r\n\r\n")
}

/// A server config with the test certificate for 127.0.0.1 and localhost.
fn tls_config() -> ServerConfig {
    let dir = tls_dir();
    let chain = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap()
}

/// Where the test CA and server certificate live.
pub fn tls_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/tls"))
}
