//! askgate patch: settings of what the server does by itself, before a
//! request reaches the application. The defaults are tiny_http 0.12.0's own
//! behaviour.

use std::fmt;
use std::sync::Arc;

use crate::{Request, Response, ResponseBox, StatusCode};

/// A request the server refused by itself, before the application saw it.
/// The connection closes after the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The request line is not `METHOD target HTTP/x.y` ended by CRLF (400).
    MalformedRequestLine,
    /// A header line is malformed, or the framing headers contradict each
    /// other (400).
    MalformedHeaders,
    /// A header line starts with a space or a tab: obsolete line folding (400).
    ObsoleteLineFolding,
    /// The request head did not arrive in time (408).
    HeadTimeout,
    /// The `Expect` header holds something other than `100-continue` (417).
    UnsupportedExpect,
    /// A header line, or the number of header lines, is over the limit (431).
    HeaderTooLarge,
    /// The HTTP version is neither 1.0 nor 1.1 (505).
    UnsupportedVersion,
    /// As many connections as `ServerOptions::with_max_connections` allows
    /// are being read; this one is answered at once and closed (503).
    TooManyConnections,
}

impl Refusal {
    /// The status code of the response.
    pub fn status_code(&self) -> StatusCode {
        StatusCode(match self {
            Refusal::MalformedRequestLine
            | Refusal::MalformedHeaders
            | Refusal::ObsoleteLineFolding => 400,
            Refusal::HeadTimeout => 408,
            Refusal::UnsupportedExpect => 417,
            Refusal::HeaderTooLarge => 431,
            Refusal::UnsupportedVersion => 505,
            Refusal::TooManyConnections => 503,
        })
    }

    /// What went wrong, in a few lowercase words.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::MalformedRequestLine => "malformed request line",
            Refusal::MalformedHeaders => "malformed request headers",
            Refusal::ObsoleteLineFolding => "obsolete line folding is not accepted",
            Refusal::HeadTimeout => "request head not received in time",
            Refusal::UnsupportedExpect => "unsupported Expect header",
            Refusal::HeaderTooLarge => "request header too large",
            Refusal::UnsupportedVersion => "only HTTP/1.0 and HTTP/1.1 are supported",
            Refusal::TooManyConnections => "too many open connections, try again later",
        }
    }

    /// tiny_http's own response: empty, but for a line of text on a 505.
    fn plain_response(self) -> ResponseBox {
        match self {
            Refusal::UnsupportedVersion => {
                Response::from_string("This server only supports HTTP versions 1.0 and 1.1").boxed()
            }
            _ => Response::new_empty(self.status_code()).boxed(),
        }
    }
}

type RefusalResponder = dyn Fn(Refusal) -> ResponseBox + Send + Sync;

/// What serves each request on its connection's thread
/// (`ServerOptions::with_handler`).
pub type Handler = dyn Fn(Request) + Send + Sync;

/// What the server does by itself. `ServerOptions::default()` is tiny_http's
/// usual behaviour.
#[derive(Clone, Default)]
pub struct ServerOptions {
    refusal_response: Option<Arc<RefusalResponder>>,
    one_request_at_a_time: bool,
    max_connections: Option<usize>,
    idle_threads: Option<usize>,
    handler: Option<Arc<Handler>>,
}

impl ServerOptions {
    /// The default options.
    pub fn new() -> ServerOptions {
        ServerOptions::default()
    }

    /// Builds the responses the server sends by itself when it refuses a
    /// request (for example a JSON body for an API). The status code is
    /// always the refusal's own.
    pub fn with_refusal_response<F>(mut self, build: F) -> ServerOptions
    where
        F: Fn(Refusal) -> ResponseBox + Send + Sync + 'static,
    {
        self.refusal_response = Some(Arc::new(build));
        self
    }

    /// Reads one request at a time on each connection: the next request is
    /// read only once the previous one is answered, so a client pipelining
    /// without reading its responses cannot queue requests without bound.
    /// A response still unfinished after the socket's read timeout (if it
    /// has one) ends the reading of that connection, so that a long-lived
    /// response does not hold a thread waiting for a next request. HTTPS
    /// connections are always read one request at a time.
    pub fn with_one_request_at_a_time(mut self, one_at_a_time: bool) -> ServerOptions {
        self.one_request_at_a_time = one_at_a_time;
        self
    }

    /// At most this many connections are read at once (each holds a
    /// thread and two descriptors); one more is answered a 503 at once,
    /// without a thread, and closed. Unlimited by default, as upstream.
    pub fn with_max_connections(mut self, max: Option<usize>) -> ServerOptions {
        self.max_connections = max;
        self
    }

    /// Connection threads kept waiting while no connection needs them (4
    /// by default, as upstream); more start as connections come, and end
    /// after a few idle seconds. Zero starts each connection's thread
    /// with it, unless one that ended a connection lately is still waiting.
    pub fn with_idle_threads(mut self, threads: usize) -> ServerOptions {
        self.idle_threads = Some(threads);
        self
    }

    /// Serves each request on the thread that read it, by calling
    /// `handler` instead of queueing the request for `Server::recv` (which
    /// then never returns one): a thread per connection, with no hand-off
    /// between threads. The connection's next request is read once the
    /// handler has returned; with `with_one_request_at_a_time` (and for
    /// HTTPS), once the request is answered too, so a handler may still
    /// hand a request to another thread and answer it there. A handler
    /// that panics ends its connection. Off by default, as upstream.
    pub fn with_handler(mut self, handler: Arc<Handler>) -> ServerOptions {
        self.handler = Some(handler);
        self
    }

    pub(crate) fn handler(&self) -> Option<Arc<Handler>> {
        self.handler.clone()
    }

    pub(crate) fn idle_threads(&self) -> usize {
        self.idle_threads.unwrap_or(crate::util::MIN_THREADS)
    }

    pub(crate) fn max_connections(&self) -> Option<usize> {
        self.max_connections
    }

    pub(crate) fn one_request_at_a_time(&self) -> bool {
        self.one_request_at_a_time
    }

    /// The response to a refusal, with the refusal's status code.
    pub(crate) fn refusal_response(&self, refusal: Refusal) -> ResponseBox {
        let response = match &self.refusal_response {
            Some(build) => build(refusal),
            None => refusal.plain_response(),
        };
        response.with_status_code(refusal.status_code())
    }
}

impl fmt::Debug for ServerOptions {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ServerOptions")
            .field("refusal_response", &self.refusal_response.is_some())
            .field("one_request_at_a_time", &self.one_request_at_a_time)
            .field("max_connections", &self.max_connections)
            .field("idle_threads", &self.idle_threads)
            .field("handler", &self.handler.is_some())
            .finish()
    }
}
