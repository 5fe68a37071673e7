//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]

#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
use zeroize::Zeroizing;

use std::error::Error;
use std::io::Error as IoError;
use std::io::ErrorKind as IoErrorKind;
use std::io::Result as IoResult;
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use client::ClientConnection;
use connection::Connection;
use util::MessagesQueue;

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use options::{Handler, Refusal, ServerOptions};
pub use request::{ReadWrite, Request, ResponsePrinter};
pub use response::{Response, ResponseBox};
pub use test::TestRequest;

mod client;
mod common;
mod connection;
mod options;
mod request;
mod response;
mod ssl;
mod test;
mod util;

/// The main class of this library.
///
/// Destroying this object will immediately close the listening socket and the reading
///  part of all the client's connections. Requests that have already been returned by
///  the `recv()` function will not close and the responses will be transferred to the client.
pub struct Server {
    // should be false as long as the server exists
    // when set to true, all the subtasks will close within a few hundreds ms
    close: Arc<AtomicBool>,

    // queue for messages received by child threads
    messages: Arc<MessagesQueue<Message>>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,

    // askgate patch: connections accepted so far, refused ones included
    accepted: Arc<AtomicUsize>,

    // askgate patch: set to have the accept loop go on on a fresh thread
    renew_accept: Arc<AtomicBool>,
}

enum Message {
    Error(IoError),
    NewRequest(Request),
}

impl From<IoError> for Message {
    fn from(e: IoError) -> Message {
        Message::Error(e)
    }
}

impl From<Request> for Message {
    fn from(rq: Request) -> Message {
        Message::NewRequest(rq)
    }
}

// this trait is to make sure that Server implements Share and Send
#[doc(hidden)]
trait MustBeShareDummy: Sync + Send {}
#[doc(hidden)]
impl MustBeShareDummy for Server {}

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// If `Some`, then the server will use SSL to encode the communications.
    pub ssl: Option<SslConfig>,
}

/// Configuration of the server for SSL.
#[derive(Debug, Clone)]
pub struct SslConfig {
    /// Contains the public certificate to send to clients.
    pub certificate: Vec<u8>,
    /// Contains the ultra-secret private key used to decode communications.
    pub private_key: Vec<u8>,
}

impl Server {
    /// Shortcut for a simple server on a specific address.
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: None,
        })
    }

    /// Shortcut for an HTTPS server on a specific address.
    #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
    #[inline]
    pub fn https<A>(
        addr: A,
        config: SslConfig,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: Some(config),
        })
    }

    #[cfg(unix)]
    #[inline]
    /// Shortcut for a UNIX socket server at a specific path
    pub fn http_unix(
        path: &std::path::Path,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::unix_from_path(path),
            ssl: None,
        })
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener(listener, config.ssl)
    }

    /// Builds a new server using the specified TCP listener.
    ///
    /// This is useful if you've constructed TcpListener using some less usual method
    /// such as from systemd. For other cases, you probably want the `new()` function.
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::from_listener_with_options(listener, ssl_config, ServerOptions::default())
    }

    /// askgate patch: like `from_listener`, with options for what the server
    /// does by itself (see `ServerOptions`).
    pub fn from_listener_with_options<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
        options: ServerOptions,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = listener.into();
        // building the "close" variable
        let close_trigger = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let inside_accepted = accepted.clone();
        let renew_accept = Arc::new(AtomicBool::new(false));
        let inside_renew = renew_accept.clone();

        // building the TcpListener
        let (server, local_addr) = {
            let local_addr = listener.local_addr()?;
            log::debug!("Server listening on {}", local_addr);
            (listener, local_addr)
        };

        // building the SSL capabilities
        #[cfg(all(feature = "ssl-openssl", feature = "ssl-rustls"))]
        compile_error!(
            "Features 'ssl-openssl' and 'ssl-rustls' must not be enabled at the same time"
        );
        #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
        type SslContext = ();
        #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
        type SslContext = crate::ssl::SslContextImpl;
        let ssl: Option<SslContext> = {
            match ssl_config {
                #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
                Some(config) => Some(SslContext::from_pem(
                    config.certificate,
                    Zeroizing::new(config.private_key),
                )?),
                #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
                Some(_) => return Err(
                    "Building a server with SSL requires enabling the `ssl` feature in tiny-http"
                        .into(),
                ),
                None => None,
            }
        };

        // creating a task where server.accept() is continuously called
        // and ClientConnection objects are pushed in the messages queue
        let messages = MessagesQueue::with_capacity(8);

        let inside_close_trigger = close_trigger.clone();
        let inside_messages = messages.clone();
        // a tasks pool is used to dispatch the connections into threads
        let tasks_pool = util::TaskPool::new(options.idle_threads());
        // askgate patch: connections being read, against
        // `ServerOptions::with_max_connections`.
        let reading = Arc::new(AtomicUsize::new(0));
        // askgate patch: the accept loop returns `true` to go on on a fresh
        // thread (`accept_on_a_thread`).
        let accept_loop = Arc::new(move || {
            log::debug!("Running accept thread");
            let mut accepted_here = false;
            while !inside_close_trigger.load(Relaxed) {
                // askgate patch: asked to (`Server::renew_accept_thread`)
                // after accepting on this thread, it goes on on a fresh one.
                if inside_renew.swap(false, Relaxed) && accepted_here {
                    return true;
                }
                let accept = server.accept();
                if accept.is_ok() {
                    inside_accepted.fetch_add(1, Relaxed);
                    accepted_here = true;
                }
                let new_client = match accept {
                    Ok((sock, _)) if options.max_connections().is_some_and(|max| reading.load(Relaxed) >= max) => {
                        refuse_connection(sock, &options);
                        continue;
                    }
                    Ok((sock, _)) => {
                        use util::RefinedTcpStream;
                        let time_limit = sock.read_timeout();
                        let (read_closable, write_closable) = match ssl {
                            // askgate patch: out of file descriptors, drop this
                            // connection and pause instead of panicking.
                            None => match RefinedTcpStream::try_new(sock) {
                                Ok(halves) => halves,
                                Err(e) => {
                                    log::error!("Error accepting new client: {}", e);
                                    thread::sleep(std::time::Duration::from_millis(100));
                                    continue;
                                }
                            },
                            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
                            Some(ref ssl) => {
                                // trying to apply SSL over the connection
                                // if an error occurs, we just close the socket and resume listening
                                let sock = match ssl.accept(sock) {
                                    Ok(s) => s,
                                    Err(_) => continue,
                                };

                                RefinedTcpStream::new(sock)
                            }
                            #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
                            Some(ref _ssl) => unreachable!(),
                        };

                        let client = ClientConnection::new(
                            write_closable,
                            read_closable,
                            time_limit,
                            options.clone(),
                        );
                        Ok((client, time_limit))
                    }
                    Err(e) => Err(e),
                };

                match new_client {
                    Ok((client, time_limit)) => {
                        let messages = inside_messages.clone();
                        let mut client = Some(client);
                        // askgate patch: with `ServerOptions::with_one_request_at_a_time`,
                        // one request in flight per connection, as for HTTPS. A
                        // response still unfinished after the socket's read timeout
                        // (a stream, a long-poll) frees this thread: the connection
                        // reads no further requests.
                        let one_at_a_time = options.one_request_at_a_time();
                        let patience = time_limit.filter(|_| one_at_a_time);
                        reading.fetch_add(1, Relaxed);
                        let count = ReadingConnection(reading.clone());
                        // askgate patch: with `ServerOptions::with_handler`, each
                        // request is served on this thread instead of queued.
                        let handler = options.handler();
                        tasks_pool.spawn(Box::new(move || {
                            let _count = &count;
                            let deliver = |rq: Request| match &handler {
                                Some(handler) => handler(rq),
                                None => messages.push(rq.into()),
                            };
                            if let Some(client) = client.take() {
                                // Synchronization is needed for HTTPS requests to avoid a deadlock
                                if client.secure() || one_at_a_time {
                                    let (sender, receiver) = mpsc::channel();
                                    for rq in client {
                                        // askgate patch: a connection whose end is marked
                                        // (`Request::into_final_writer`) is read no further:
                                        // this thread is free as soon as it is answered.
                                        let end = rq.connection_end();
                                        deliver(rq.with_notify_sender(sender.clone()));
                                        let answered = match patience {
                                            Some(patience) => {
                                                receiver.recv_timeout(patience).is_ok()
                                            }
                                            None => receiver.recv().is_ok(),
                                        };
                                        if !answered || end.is_marked() {
                                            break;
                                        }
                                    }
                                } else {
                                    for rq in client {
                                        deliver(rq);
                                    }
                                }
                            }
                        }));
                    }

                    // askgate patch: a receive timeout set on the listener (so that
                    // accepted sockets inherit it) also applies to accept(); Linux
                    // reports it as WouldBlock. That, and a connection reset before
                    // accept, are not reasons to stop accepting for good.
                    Err(ref e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                                | std::io::ErrorKind::ConnectionAborted
                        ) =>
                    {
                        continue
                    }
                    // askgate patch: other accept errors (out of file descriptors,
                    // of memory, of buffers) pass when connections close; pause and
                    // keep accepting instead of ending the accept loop for good.
                    Err(e) => {
                        log::error!("Error accepting new client: {}", e);
                        thread::sleep(std::time::Duration::from_millis(100));
                    }
                }
            }
            log::debug!("Terminating accept thread");
            false
        });
        accept_on_a_thread(accept_loop)?;

        // result
        Ok(Server {
            messages,
            close: close_trigger,
            listening_addr: local_addr,
            accepted,
            renew_accept,
        })
    }

    /// askgate patch: the connections accepted so far, those refused at
    /// once included; shared, so that it can be read after the server is
    /// gone.
    pub fn connections_accepted(&self) -> Arc<AtomicUsize> {
        self.accepted.clone()
    }

    /// askgate patch: setting it asks the accept loop to go on on a fresh
    /// thread at its next turn (the next connection, or at most the
    /// listener's receive timeout later), if it accepted a connection on
    /// the thread it runs on; shared, as `connections_accepted`.
    pub fn renew_accept_thread(&self) -> Arc<AtomicBool> {
        self.renew_accept.clone()
    }

    /// Returns an iterator for all the incoming requests.
    ///
    /// The iterator will return `None` if the server socket is shutdown.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Returns the number of clients currently connected to the server.
    pub fn num_connections(&self) -> usize {
        unimplemented!()
        //self.requests_receiver.lock().len()
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    pub fn recv(&self) -> IoResult<Request> {
        match self.messages.pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(rq),
            None => Err(IoError::new(IoErrorKind::Other, "thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        match self.messages.pop_timeout(timeout) {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        match self.messages.try_pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Unblock thread stuck in recv() or incoming_requests().
    /// If there are several such threads, only one is unblocked.
    /// This method allows graceful shutdown of server.
    pub fn unblock(&self) {
        self.messages.unblock();
    }
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close.store(true, Relaxed);
        // Connect briefly to ourselves to unblock the accept thread
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(addr) => {
                // TODO: use connect_addr when its stabilized.
                let path = addr.as_pathname().unwrap();
                std::os::unix::net::UnixStream::connect(path).map(Connection::from)
            }
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }

        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = &self.listening_addr {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// askgate patch: counts a connection as read until its reading task ends.
struct ReadingConnection(Arc<AtomicUsize>);

impl Drop for ReadingConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// askgate patch: runs the accept loop on a thread named `http-accept`,
/// and on a fresh one each time the loop asks, after accepting: what
/// a thread freed stays in glibc's cache of that thread (tcache) until the
/// thread ends, out of `malloc_trim`'s reach. Stays on this one when no
/// thread can be started.
fn accept_on_a_thread(accept_loop: Arc<dyn Fn() -> bool + Send + Sync>) -> IoResult<()> {
    let looping = accept_loop.clone();
    let thread = thread::Builder::new().name("http-accept".into());
    thread
        .spawn(move || {
            while looping() {
                if accept_on_a_thread(looping.clone()).is_ok() {
                    return;
                }
            }
        })
        .map(drop)
}

/// askgate patch: a connection over `ServerOptions::with_max_connections`
/// gets its 503 at once, on the accept thread (a few hundred bytes into an
/// empty socket buffer never block), and is closed.
fn refuse_connection(mut sock: connection::Connection, options: &ServerOptions) {
    let response = options.refusal_response(Refusal::TooManyConnections);
    let _ = response.raw_print(&mut sock, HTTPVersion(1, 1), &[], false, None);
    let _ = sock.shutdown(Shutdown::Both);
}

/// askgate patch: `ServerOptions::with_handler`.
#[cfg(test)]
mod handler_tests {
    use super::{Request, Response, Server, ServerOptions};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    const PATIENCE: Duration = Duration::from_secs(30);

    fn server(options: ServerOptions) -> (Server, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Server::from_listener_with_options(listener, None, options).unwrap();
        let client = TcpStream::connect(addr).unwrap();
        client.set_read_timeout(Some(PATIENCE)).unwrap();
        (server, client)
    }

    /// One response's body, read off a keep-alive connection.
    fn body(reader: &mut BufReader<TcpStream>) -> String {
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        String::from_utf8(body).unwrap()
    }

    /// The thread serving, as its name and id.
    fn whoami(request: Request) {
        let me = thread::current();
        let body = format!(
            "{} {:?} {}",
            me.name().unwrap_or(""),
            me.id(),
            request.url()
        );
        request.respond(Response::from_string(body)).unwrap();
    }

    #[test]
    fn a_handler_serves_every_request_of_a_connection_on_its_thread() {
        for one_at_a_time in [false, true] {
            let options = ServerOptions::new()
                .with_one_request_at_a_time(one_at_a_time)
                .with_handler(Arc::new(whoami));
            let (server, mut client) = server(options);
            let mut reader = BufReader::new(client.try_clone().unwrap());
            let mut served = Vec::new();
            for path in ["/a", "/b", "/c"] {
                write!(client, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                served.push(body(&mut reader));
            }
            let thread = served[0].rsplit_once(' ').unwrap().0.to_string();
            assert!(thread.starts_with("http-conn "), "{:?}", served);
            let expected: Vec<String> = ["/a", "/b", "/c"]
                .iter()
                .map(|path| format!("{thread} {path}"))
                .collect();
            assert_eq!(served, expected);
            assert!(server.try_recv().unwrap().is_none(), "nothing is queued");
        }
    }

    /// askgate patch: `Request::into_final_writer`.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_final_writer_is_the_socket_itself_and_alone_ends_the_connection() {
        let (handed, taken) = mpsc::channel::<Request>();
        let handed = std::sync::Mutex::new(handed);
        let hand_over = move |request| handed.lock().unwrap().send(request).unwrap();
        let options = ServerOptions::new()
            .with_one_request_at_a_time(true)
            .with_handler(Arc::new(hand_over));
        let (_server, client) = server(options);
        (&client).write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let request = taken.recv_timeout(PATIENCE).unwrap();
        let socket_at = |fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
        let connection = request.connection_fd().unwrap();
        let socket = socket_at(connection).unwrap();
        let (mut writer, fd) = request.into_final_writer();
        assert_eq!(socket_at(fd.unwrap()), Some(socket.clone()), "its descriptor");
        let mut reader = BufReader::new(client);
        let mut line = String::new();
        // Unflushed, and on the wire: nothing buffers it.
        writer.write_all(b"hello\n").unwrap();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "hello\n");
        // The connection's thread lets go of its copy without shutting
        // the socket down.
        let deadline = std::time::Instant::now() + PATIENCE;
        while socket_at(connection).as_ref() == Some(&socket) {
            assert!(std::time::Instant::now() < deadline, "the connection lets go");
            thread::yield_now();
        }
        writer.write_all(b"world\n").unwrap();
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line, "world\n");
        drop(writer);
        line.clear();
        assert_eq!(reader.read_line(&mut line).unwrap(), 0, "closed with the writer");
    }

    #[test]
    fn a_request_handed_to_another_thread_is_answered_before_the_next_is_read() {
        let (handed, taken) = mpsc::channel::<Request>();
        let handed = std::sync::Mutex::new(handed);
        let hand_over = move |request| handed.lock().unwrap().send(request).unwrap();
        let options = ServerOptions::new()
            .with_one_request_at_a_time(true)
            .with_handler(Arc::new(hand_over));
        let (_server, mut client) = server(options);
        client
            .write_all(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let first = taken.recv_timeout(PATIENCE).unwrap();
        assert_eq!(first.url(), "/1");
        assert!(
            taken.recv_timeout(Duration::from_millis(300)).is_err(),
            "the pipelined request waits for the first's answer"
        );
        thread::spawn(move || first.respond(Response::from_string("one")).unwrap());
        let second = taken.recv_timeout(PATIENCE).unwrap();
        assert_eq!(second.url(), "/2");
        second.respond(Response::from_string("two")).unwrap();
        let mut reader = BufReader::new(client);
        assert_eq!(
            (body(&mut reader), body(&mut reader)),
            ("one".into(), "two".into())
        );
    }
}
