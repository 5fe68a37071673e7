//! Requests and replies as plain values, so handlers never see a socket.
//!
//! `Request` is what a handler reads (method, path, decoded query, headers,
//! and the body or the reason it was refused); `Reply` is what it returns:
//! a finished `Response`, streaming work that writes the body itself, or
//! parked work that blocks on its own thread and then yields a `Response`
//! (or, a long-poll, has it answered on its socket by `Early`). Nothing
//! here knows of the hub or of streams.

use crate::error::{Error, Result};
use crate::serve::early::Early;
use serde_json::{Map, Value};
use std::io::Write;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Method {
    Get,
    Head,
    Post,
    Other,
}

impl Method {
    pub fn parse(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            _ => Method::Other,
        }
    }

    /// The method as written on the wire (`OTHER` for any other).
    pub fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Other => "OTHER",
        }
    }
}

#[derive(Debug)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header names are lowercase.
    pub headers: Vec<(String, String)>,
    /// The address the request came from (a proxy's, behind one).
    pub peer: Option<std::net::SocketAddr>,
    /// The body, or why it was refused (413, 415) before anything was read.
    pub body: Result<Vec<u8>>,
    /// How many times a credential may have been taken away (the streams'
    /// `Watch::revocations`) as the request was read, before its credential
    /// was checked: a parked long-poll compares against it, so a revoke
    /// swept between the check and its parking is not missed
    /// (docs/PROTOCOL.md §7).
    pub revocations: u64,
}

impl Request {
    /// A request built from parts, for handlers tested without a network.
    pub fn fake(method: Method, url: &str, body: &str) -> Request {
        let (path, query) = split_url(url).expect("a valid url");
        Request {
            method,
            path,
            query,
            headers: vec![("content-type".into(), "application/json".into())],
            peer: None,
            body: Ok(body.as_bytes().to_vec()),
            revocations: 0,
        }
    }

    /// The first value of a query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of a repeated query parameter.
    pub fn query_all(&self, name: &str) -> Vec<&str> {
        let matching = self.query.iter().filter(|(key, _)| key == name);
        matching.map(|(_, value)| value.as_str()).collect()
    }

    /// The value of every line of a header, in the order sent.
    /// Every value of the header `name` (in any case; names are kept in
    /// lower case), compared without making a lower-case copy: a copy a
    /// lookup was most of a poll's allocations.
    pub fn headers_named<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.headers
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers_named(name).next()
    }

    /// The body as a JSON object: 413/415 as refused, 400 when malformed.
    pub fn json(&self) -> Result<Map<String, Value>> {
        let body = self.body.as_ref().map_err(Clone::clone)?;
        match serde_json::from_slice(body) {
            Ok(Value::Object(fields)) => Ok(fields),
            Ok(_) => Err(Error::bad_request("request body must be a JSON object")),
            Err(error) => Err(Error::bad_request(format!("malformed JSON: {error}"))),
        }
    }
}

/// Splits `/path?a=1&b=2` into its decoded path and query pairs.
pub fn split_url(url: &str) -> Result<(String, Vec<(String, String)>)> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let invalid = || Error::bad_request("invalid percent-encoding in url");
    let path = percent_decode(path, false).ok_or_else(invalid)?;
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key, true).ok_or_else(invalid)?;
        let value = percent_decode(value, true).ok_or_else(invalid)?;
        pairs.push((key, value));
    }
    Ok((path, pairs))
}

/// `text` with its `%XX` escapes decoded and, in a query (`plus_is_space`),
/// each `+` as a space (an escaped `%2B` stays a `+`), in one pass.
fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if plus_is_space && bytes[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[derive(Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

pub const JSON: &str = "application/json";

impl Response {
    pub fn json(status: u16, body: &Value) -> Response {
        Response {
            status,
            content_type: JSON,
            headers: Vec::new(),
            body: body.to_string().into_bytes(),
        }
    }

    pub fn error(error: &Error) -> Response {
        let mut response = Response::json(error.status(), &error.body());
        if let Error::Unavailable(seconds) = error {
            response.headers.push(("Retry-After", seconds.to_string()));
        }
        if let Error::StoreUnavailable(_) = error {
            response.headers.push(("Retry-After", "1".into()));
        }
        if let Error::Unauthorized | Error::WrongCredential(_) = error {
            response.headers.push(("WWW-Authenticate", "Bearer".into()));
        }
        if let Error::MethodNotAllowed = error {
            response.headers.push(("Allow", "GET, POST".into()));
        }
        response
    }

    pub fn text(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }

    /// The body parsed back as JSON, for tests.
    pub fn json_body(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Work that blocks (a long-poll, an agent's wait) and then answers.
/// It is handed its `Parking`: a way to ask whether its client has left,
/// so that it can stop waiting and give its place back, and its socket's
/// `Early`, when it has one.
pub type Parked = Box<dyn FnOnce(&Parking) -> Response + Send>;

/// What parked work is handed by the server.
pub struct Parking<'a> {
    pub client_left: &'a dyn Fn() -> bool,
    /// To answer on the socket from the hub's fan-out thread; once it has
    /// answered, the response the work returns is not written.
    pub early: Option<Arc<Early>>,
}

impl Parking<'_> {
    pub fn client_left(&self) -> bool {
        (self.client_left)()
    }

    /// Whether the request was answered on its socket already.
    pub fn answered_early(&self) -> bool {
        self.early.as_ref().is_some_and(|early| early.answered())
    }
}

/// How often parked work asks whether its client has left.
pub const LEFT_CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Work that writes a whole response (status line, headers and body) to the
/// raw connection; `true` when the client speaks HTTP/1.1 (chunked); the
/// socket's descriptor under the writer when there is one (open as long
/// as the writer lives), for writes that must not block.
pub type Streaming =
    Box<dyn FnOnce(Box<dyn Write + Send>, bool, Option<std::os::fd::RawFd>) + Send>;

pub enum Reply {
    Done(Response),
    Stream(Streaming),
    Park(Parked),
}

impl From<Response> for Reply {
    fn from(response: Response) -> Reply {
        Reply::Done(response)
    }
}

impl From<Error> for Reply {
    fn from(error: Error) -> Reply {
        Reply::Done(Response::error(&error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_found_by_name_in_any_case() {
        let mut request = Request::fake(Method::Get, "/", "");
        request.headers = vec![
            ("x-forwarded-for".into(), "10.0.0.1".into()),
            ("cookie".into(), "a=1".into()),
            ("cookie".into(), "b=2".into()),
        ];
        assert_eq!(request.header("X-Forwarded-For"), Some("10.0.0.1"));
        assert_eq!(request.header("x-forwarded-for"), Some("10.0.0.1"));
        assert_eq!(request.header("X-Forwarded"), None);
        let cookies: Vec<&str> = request.headers_named("Cookie").collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
    }

    #[test]
    fn urls_decode() {
        let cases = [
            ("/a?x=1&y=%2Fz", Some(("/a", vec![("x", "1"), ("y", "/z")]))),
            (
                "/a?s=a+b&&flag",
                Some(("/a", vec![("s", "a b"), ("flag", "")])),
            ),
            // `+` is a space in the query only; an escaped one stays a `+`.
            ("/a+b?q=%2B+c", Some(("/a+b", vec![("q", "+ c")]))),
            ("/%61?x=%zz", None),
            ("/a?x=%ff", None),
        ];
        for (url, expected) in cases {
            let got = split_url(url).ok();
            let expected = expected.map(|(path, pairs)| {
                let pairs = pairs
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                (path.to_string(), pairs)
            });
            assert_eq!(got, expected, "{url}");
        }
    }
}
