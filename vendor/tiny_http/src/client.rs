use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Read};

use std::net::SocketAddr;
use std::str::FromStr;

use crate::common::{HTTPVersion, Method};
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::{Refusal, Request, ServerOptions};

/// askgate patch: limits on one request's header lines.
const MAX_LINE_LEN: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;
/// askgate patch: and on all of them together, so a request kept while its
/// answer is awaited keeps little.
const MAX_HEAD_LEN: usize = 64 * 1024;

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // askgate patch: the connection's descriptor, for `Request::client_has_left`
    #[cfg(unix)]
    peer_fd: Option<std::os::unix::io::RawFd>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,
    // askgate patch: how long one request's head may take, from its first
    // byte; the socket's receive timeout alone restarts with every byte.
    time_limit: Option<std::time::Duration>,
    request_started: Option<std::time::Instant>,

    // askgate patch: what the server answers by itself
    options: ServerOptions,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    /// askgate patch: every refusal the server answers by itself, with the
    /// HTTP version of its response; the connection closes after it.
    Refused(Refusal, HTTPVersion),
    ReadIoError(IoError),
}

/// askgate patch: what can go wrong with one line of the request head.
#[derive(Debug)]
enum LineError {
    Io(IoError),
    /// the head did not arrive whole within the time limit
    TooSlow,
    TooLong,
    /// a bare CR or LF, or bytes that are not ASCII
    Malformed,
}

impl LineError {
    /// The error reading the request, `malformed` naming what the line was.
    fn refuse(self, malformed: Refusal, version: HTTPVersion) -> ReadError {
        match self {
            LineError::Io(e) => ReadError::ReadIoError(e),
            LineError::TooSlow => ReadError::Refused(Refusal::HeadTimeout, version),
            LineError::TooLong => ReadError::Refused(Refusal::HeaderTooLarge, version),
            LineError::Malformed => ReadError::Refused(malformed, version),
        }
    }
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        time_limit: Option<std::time::Duration>,
        options: ServerOptions,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();
        #[cfg(unix)]
        let peer_fd = write_socket.raw_fd();

        ClientConnection {
            #[cfg(unix)]
            peer_fd,
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            time_limit,
            request_started: None,
            options,
        }
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    fn read_next_line(&mut self) -> Result<AsciiString, LineError> {
        // askgate patch: room for a usual header line at once, instead of
        // growing from nothing a byte at a time (a tenth of a poll's
        // allocations).
        let mut buf = Vec::with_capacity(64);
        let mut prev_byte_was_cr = false;

        loop {
            // askgate patch: only a byte that had to come from the socket
            // can have waited, so only then is the clock read (once a byte,
            // it was a tenth of the time a poll took).
            let waited = self.next_header_source.buffered() == 0;
            let byte = self.next_header_source.by_ref().bytes().next();

            let byte = match byte {
                Some(b) => b.map_err(LineError::Io)?,
                None => {
                    let eof = IoError::new(ErrorKind::ConnectionAborted, "Unexpected EOF");
                    return Err(LineError::Io(eof));
                }
            };

            // askgate patch: the whole head must arrive within the time limit.
            let started = *self
                .request_started
                .get_or_insert_with(std::time::Instant::now);
            if waited
                && self
                    .time_limit
                    .is_some_and(|limit| started.elapsed() > limit)
            {
                return Err(LineError::TooSlow);
            }

            if byte == b'\n' && prev_byte_was_cr {
                buf.pop(); // removing the '\r'
                return AsciiString::from_ascii(buf).map_err(|_| LineError::Malformed);
            }

            // askgate patch: a bare LF or a bare CR is refused at once (RFC
            // 9112 section 2.2), instead of waiting for a CRLF that a client
            // ending its lines with LF alone never sends.
            if byte == b'\n' || prev_byte_was_cr {
                return Err(LineError::Malformed);
            }

            prev_byte_was_cr = byte == b'\r';

            // askgate patch: bound the memory one header line can take.
            if buf.len() >= MAX_LINE_LEN {
                return Err(LineError::TooLong);
            }
            buf.push(byte);
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        self.request_started = None;
        let (method, path, version, headers) = {
            // reading the request line
            let (method, path, version) = {
                let line = self
                    .read_next_line()
                    .map_err(|e| e.refuse(Refusal::MalformedRequestLine, HTTPVersion(1, 1)))?;

                parse_request_line(
                    line.as_str().trim(), // TODO: remove this conversion
                )?
            };

            // askgate patch: an unsupported version is refused at once, before
            // its headers are read and before the request takes this
            // connection's next writer (the refusal is written through it).
            // That includes `HTTP/0.9`, which upstream served and then held
            // the connection open for more requests.
            if version < HTTPVersion(1, 0) || version > HTTPVersion(1, 1) {
                return Err(ReadError::Refused(
                    Refusal::UnsupportedVersion,
                    HTTPVersion(1, 1),
                ));
            }

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                let mut head_len = 0;
                loop {
                    let line = self
                        .read_next_line()
                        .map_err(|e| e.refuse(Refusal::MalformedHeaders, version.clone()))?;

                    if line.is_empty() {
                        break;
                    };
                    // askgate patch: bound the number of header lines too,
                    // and their total size.
                    head_len += line.len();
                    if headers.len() >= MAX_HEADERS || head_len > MAX_HEAD_LEN {
                        return Err(ReadError::Refused(Refusal::HeaderTooLarge, version));
                    }
                    // askgate patch: a line starting with a space or a tab
                    // continues the previous one (obsolete line folding).
                    // Trimmed, it used to be read as a header of its own, so
                    // a folded `Content-Length` or `Transfer-Encoding` that
                    // another server would take as part of the previous
                    // header set this request's framing. Refused (RFC 9112
                    // section 5.2); the line is no longer trimmed either, so
                    // `Header::from_str` refuses whitespace before the colon.
                    if line.as_str().starts_with([' ', '\t']) {
                        return Err(ReadError::Refused(Refusal::ObsoleteLineFolding, version));
                    }
                    headers.push(match FromStr::from_str(line.as_str()) {
                        Ok(h) => h,
                        _ => return Err(ReadError::Refused(Refusal::MalformedHeaders, version)),
                    });
                }

                headers
            };

            (method, path, version, headers)
        };

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);
        let connection_end = data_source.connection_end();

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            *self.remote_addr.as_ref().unwrap(),
            data_source,
            writer,
            connection_end,
        )
        .map(|request| {
            #[cfg(unix)]
            let request = request.with_connection(self.peer_fd, self.sink.shared());
            request
        })
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::BadFraming => {
                    ReadError::Refused(Refusal::MalformedHeaders, version)
                }
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::Refused(Refusal::UnsupportedExpect, version)
                }
            }
        })?;

        // return the request
        Ok(request)
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        let rq = match self.read() {
            // askgate patch: every refusal is answered through this
            // connection's next writer, with the response the server's
            // options build; then the connection closes, since we don't
            // know where the next request would start.
            Err(ReadError::Refused(refusal, version)) => {
                let writer = self.sink.next().unwrap();
                self.options
                    .refusal_response(refusal)
                    .raw_print(writer, version, &[], false, None)
                    .ok();
                return None;
            }

            Err(ReadError::ReadIoError(_)) => return None,

            Ok(rq) => rq,
        };

        // updating the status of the connection
        let connection_header = rq
            .headers()
            .iter()
            .find(|h| h.field.equiv("Connection"))
            .map(|h| h.value.as_str());

        let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

        match lowercase {
            Some(ref val) if val.contains("close") => self.no_more_requests = true,
            Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
            Some(ref val)
                if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
            {
                self.no_more_requests = true
            }
            None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
            _ => (),
        };

        // returning the request
        Some(rq)
    }
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => return Err(malformed_request_line()),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or_else(malformed_request_line)
}

fn malformed_request_line() -> ReadError {
    ReadError::Refused(Refusal::MalformedRequestLine, HTTPVersion(1, 1))
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }
}
