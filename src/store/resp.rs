//! A minimal synchronous Redis client: RESP2 over one `TcpStream` (or TLS
//! over it, `rediss://`, in `tls.rs`), with connect, read and write
//! timeouts. Enough for the replicated log (`store/redis.rs`): commands as
//! arrays of bulk strings, the five reply types back, `AUTH` and `SELECT`
//! from a `redis://` URL (user and password percent-decoded). Works as
//! well with Valkey, which speaks the same protocol.
//!
//! Written here rather than taken from the `redis` crate: that crate, even
//! without its default features, brings `url` with `idna` and ICU (some 40
//! crates with proc-macros) for what is a few hundred lines of protocol.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// Where Redis is: `redis[s]://[[user]:password@]host[:port][/db]`, user
/// and password percent-decoded. Neither its `Display` nor its `Debug`
/// shows the password.
#[derive(Clone, PartialEq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub db: u32,
    pub user: Option<String>,
    pub password: Option<String>,
    /// `rediss://`: TLS, the certificate checked against `ca_file`'s CAs
    /// when set (`--store-ca-file`), else the system's.
    pub tls: bool,
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({self}")?;
        match (&self.user, &self.password) {
            (Some(user), _) => write!(f, ", user {user:?}, password ***)"),
            (None, Some(_)) => write!(f, ", password ***)"),
            (None, None) => write!(f, ")"),
        }
    }
}

/// A `redis://` URL as it may be shown in a message or a log: whatever
/// precedes its last `@` (after the scheme) is the credentials, shown as
/// `user:***` or `***`, even when the rest does not parse.
pub fn without_password(url: &str) -> String {
    let Some(at) = url.rfind('@') else {
        return url.to_string();
    };
    let (before, after) = url.split_at(at);
    let start = before.find("://").map_or(0, |scheme| scheme + 3);
    let (scheme, credentials) = before.split_at(start);
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}{user}:***{after}"),
        None => format!("{scheme}***{after}"),
    }
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        // A part of a URL with credentials is never quoted: with a `/` or
        // `@` in the password, a part may be a piece of it.
        let quoted = |part: &str| match url.contains('@') {
            true => "(not shown: the URL has credentials)".to_string(),
            false => format!("{part:?}"),
        };
        let (tls, rest) = match (url.strip_prefix("redis://"), url.strip_prefix("rediss://")) {
            (Some(rest), _) => (false, rest),
            (None, Some(rest)) => (true, rest),
            (None, None) => return Err("want redis://host:port/db or rediss://".into()),
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((credentials, host_port)) => (Some(credentials), host_port),
            None => (None, authority),
        };
        let (user, password) = match credentials.map(|c| c.split_once(':')) {
            None => (None, None),
            Some(None) => (None, credentials.map(percent_decoded).transpose()?),
            Some(Some((user, password))) => {
                let user = (!user.is_empty()).then(|| percent_decoded(user));
                (user.transpose()?, Some(percent_decoded(password)?))
            }
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => (
                host,
                port.parse::<u16>()
                    .map_err(|_| format!("not a port: {}", quoted(port)))?,
            ),
            _ => (host_port, 6379),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("no host".into());
        }
        let db = match path.trim_end_matches('/') {
            "" => 0,
            db => db
                .parse()
                .map_err(|_| format!("not a database number: {}", quoted(db)))?,
        };
        Ok(Target {
            host: host.to_string(),
            port,
            db,
            user,
            password,
            tls,
            ca_file: None,
        })
    }
}

/// A URL's user or password with its `%XX` escapes decoded; an error (that
/// never shows the text) when an escape is broken or the result is not
/// UTF-8.
fn percent_decoded(text: &str) -> Result<String, String> {
    let broken = || "a broken %-escape in the credentials".to_string();
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&first, after)) = rest.split_first() {
        rest = after;
        if first != b'%' {
            bytes.push(first);
            continue;
        }
        let hex = rest.get(..2).ok_or_else(broken)?;
        let hex = std::str::from_utf8(hex).map_err(|_| broken())?;
        bytes.push(u8::from_str_radix(hex, 16).map_err(|_| broken())?);
        rest = &rest[2..];
    }
    String::from_utf8(bytes).map_err(|_| "credentials that are not UTF-8 once decoded".into())
}

impl fmt::Display for Target {
    /// The URL without its password, for logs and `/healthz`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match self.host.contains(':') {
            true => format!("[{}]", self.host),
            false => self.host.clone(),
        };
        let scheme = match self.tls {
            true => "rediss",
            false => "redis",
        };
        write!(f, "{scheme}://{host}:{}/{}", self.port, self.db)
    }
}

/// One reply.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Nil,
    Int(i64),
    Bulk(Vec<u8>),
    Simple(String),
    /// An error reply (`-ERR ...`): the command failed, the connection is fine.
    Error(String),
    Array(Vec<Reply>),
}

impl Reply {
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(bytes) => Some(bytes),
            Reply::Simple(text) => Some(text.as_bytes()),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Reply::Int(n) => u64::try_from(*n).ok(),
            Reply::Nil => Some(0),
            other => std::str::from_utf8(other.as_bytes()?).ok()?.parse().ok(),
        }
    }

    pub fn as_array(&self) -> Option<&[Reply]> {
        match self {
            Reply::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// A reply nested deeper than this is refused (a server that misbehaves
/// cannot exhaust the stack).
const MAX_DEPTH: usize = 8;
/// A reply longer than this (its bulk strings' bytes and its elements, in
/// all) is refused, as is a bulk string or array that announces more: Redis's
/// own largest bulk string (`proto-max-bulk-len`). What a length announces is
/// never allocated up front: a bulk string's memory grows with the bytes that
/// actually arrive, an array's with its elements, so a reply that lies about
/// its length costs what it sent.
const MAX_REPLY: usize = 512 << 20;
/// What a bulk string's buffer starts at, whatever its length says.
const FIRST_CHUNK: usize = 64 << 10;

/// The bytes to and from Redis: plain TCP, or TLS over it.
enum Transport {
    Plain(TcpStream),
    Tls(Box<super::tls::TlsStream>),
}

impl Transport {
    fn socket(&self) -> &TcpStream {
        match self {
            Transport::Plain(socket) => socket,
            Transport::Tls(tls) => tls.get_ref(),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(socket) => socket.read(buf),
            Transport::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(socket) => socket.write(buf),
            Transport::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(socket) => socket.flush(),
            Transport::Tls(tls) => tls.flush(),
        }
    }
}

pub struct Conn {
    reader: BufReader<Transport>,
}

impl Conn {
    /// Connects, authenticates and selects the database, each step within
    /// `timeout`; reads and writes then time out after `timeout` too.
    pub fn connect(target: &Target, timeout: Duration) -> io::Result<Conn> {
        let addrs = (target.host.as_str(), target.port).to_socket_addrs()?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => return Conn::handshake(stream, target, timeout),
                Err(error) => last = error,
            }
        }
        Err(last)
    }

    fn handshake(stream: TcpStream, target: &Target, timeout: Duration) -> io::Result<Conn> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let transport = match target.tls {
            false => Transport::Plain(stream),
            true => Transport::Tls(Box::new(super::tls::wrap(
                stream,
                &target.host,
                target.ca_file.as_deref(),
            )?)),
        };
        let mut conn = Conn {
            reader: BufReader::with_capacity(64 * 1024, transport),
        };
        if let Some(password) = &target.password {
            let reply = match &target.user {
                Some(user) => conn.call(&[b"AUTH", user.as_bytes(), password.as_bytes()])?,
                None => conn.call(&[b"AUTH", password.as_bytes()])?,
            };
            if let Reply::Error(message) = reply {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("redis refused the credentials: {message}"),
                ));
            }
        }
        if target.db != 0 {
            ok(conn.call(&[b"SELECT", target.db.to_string().as_bytes()])?)?;
        }
        Ok(conn)
    }

    /// Sends one command and reads its reply. An error reply is `Ok`; only
    /// the connection failing (or a reply that is not RESP) is `Err`, after
    /// which the connection must be dropped.
    pub fn call(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        self.send(args)?;
        self.read()
    }

    pub fn send(&mut self, args: &[&[u8]]) -> io::Result<()> {
        let transport = self.reader.get_mut();
        transport.write_all(&encode(args))?;
        transport.flush()
    }

    /// Reads one reply, waiting at most the read timeout for its first
    /// byte: `Ok(None)` when none came. A timeout inside a reply is an error.
    pub fn poll(&mut self, timeout: Duration) -> io::Result<Option<Reply>> {
        if self.reader.buffer().is_empty() {
            self.reader
                .get_ref()
                .socket()
                .set_read_timeout(Some(timeout))?;
            let filled = self.reader.fill_buf().map(|buf| buf.len());
            match filled {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        self.read().map(Some)
    }

    pub fn read(&mut self) -> io::Result<Reply> {
        let mut budget = MAX_REPLY;
        read_reply(&mut self.reader, &mut budget, 0)
    }
}

/// An error reply as an error.
pub fn ok(reply: Reply) -> io::Result<Reply> {
    match reply {
        Reply::Error(message) => Err(io::Error::other(message)),
        reply => Ok(reply),
    }
}

pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("not RESP: {what}"))
}

fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    reader.take(64 * 1024).read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\r\n") {
        return Err(match line.is_empty() {
            true => io::ErrorKind::UnexpectedEof.into(),
            false => bad("a line without CRLF"),
        });
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| bad("a line that is not UTF-8"))
}

/// Reads one reply of at most `budget` bytes (its bulk strings' bytes, and
/// one for each element), which it debits.
pub fn read_reply(
    reader: &mut impl BufRead,
    budget: &mut usize,
    depth: usize,
) -> io::Result<Reply> {
    if depth > MAX_DEPTH {
        return Err(bad("nested too deep"));
    }
    *budget = budget
        .checked_sub(1)
        .ok_or_else(|| bad("a reply over the limit"))?;
    let line = read_line(reader)?;
    let (tag, rest) = line
        .split_at_checked(1)
        .ok_or_else(|| bad("an empty line"))?;
    // `None` for -1 (nil); a length over what is left of the budget is
    // refused before anything is read or allocated for it.
    let length = |budget: usize| -> io::Result<Option<usize>> {
        let n: i64 = rest.parse().map_err(|_| bad("a length"))?;
        match usize::try_from(n) {
            Err(_) if n == -1 => Ok(None),
            Err(_) => Err(bad("a negative length")),
            Ok(n) if n > budget => Err(bad("a length over the limit")),
            Ok(n) => Ok(Some(n)),
        }
    };
    Ok(match tag {
        "+" => Reply::Simple(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Int(rest.parse().map_err(|_| bad("an integer"))?),
        "$" => match length(*budget)? {
            None => Reply::Nil,
            Some(n) => {
                *budget -= n;
                Reply::Bulk(read_bulk(reader, n)?)
            }
        },
        "*" => match length(*budget)? {
            None => Reply::Nil,
            Some(n) => {
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(read_reply(reader, budget, depth + 1)?);
                }
                Reply::Array(items)
            }
        },
        _ => return Err(bad("an unknown type")),
    })
}

/// A bulk string of `n` bytes and its CRLF, in a buffer that grows with the
/// bytes that arrive rather than with what `n` says.
fn read_bulk(reader: &mut impl BufRead, n: usize) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity((n + 2).min(FIRST_CHUNK));
    reader.take(n as u64 + 2).read_to_end(&mut bytes)?;
    if bytes.len() < n + 2 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if !bytes.ends_with(b"\r\n") {
        return Err(bad("a bulk string without CRLF"));
    }
    bytes.truncate(n);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_from_urls() {
        let target = Target::parse("redis://127.0.0.1:6380/2").unwrap();
        assert_eq!(
            (target.host.as_str(), target.port, target.db),
            ("127.0.0.1", 6380, 2)
        );
        assert_eq!(target.password, None);
        let target = Target::parse("redis://:secret@cache").unwrap();
        assert_eq!((target.port, target.db), (6379, 0));
        assert_eq!(target.password.as_deref(), Some("secret"));
        let target = Target::parse("redis://me:secret@[::1]:7000/1").unwrap();
        assert_eq!((target.host.as_str(), target.port), ("::1", 7000));
        assert_eq!(target.user.as_deref(), Some("me"));
        assert_eq!(
            target.to_string(),
            "redis://[::1]:7000/1",
            "no password shown"
        );
        for bad in ["http://x", "redis://", "redis://h:port", "redis://h/db"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            format!("{target:?}"),
            "Target(redis://[::1]:7000/1, user \"me\", password ***)"
        );
    }

    #[test]
    fn credentials_are_percent_decoded_and_rediss_is_tls() {
        let target = Target::parse("rediss://b%40t:p%3As%2Fw%25rd%20@cache.lan:6380/3").unwrap();
        assert_eq!(target.user.as_deref(), Some("b@t"));
        assert_eq!(target.password.as_deref(), Some("p:s/w%rd "));
        assert!(target.tls);
        assert_eq!(target.to_string(), "rediss://cache.lan:6380/3");
        let target = Target::parse("redis://:%C3%A9t%C3%A9@h").unwrap();
        assert_eq!(
            (target.user, target.password.as_deref()),
            (None, Some("été"))
        );
        assert!(!target.tls);
        for bad in [
            "redis://:ab%2@h",
            "redis://:%zz@h",
            "redis://u%@h",
            "redis://:%ff@h",
        ] {
            let error = Target::parse(bad).unwrap_err();
            assert!(error.contains("credentials"), "{bad}: {error}");
            assert!(!error.contains("ab") && !error.contains("zz"), "{error}");
        }
    }

    #[test]
    fn a_password_is_never_shown_even_in_a_url_that_does_not_parse() {
        #[rustfmt::skip]
        let cases = [
            ("redis://user:secret@host", "redis://user:***@host"),
            ("redis://:secret@host:6379/0", "redis://:***@host:6379/0"),
            ("redis://secret@host", "redis://***@host"),
            ("redis://u:se/cr@et@host:x", "redis://u:***@host:x"),
            ("redis:/user:secret@host", "redis:***@host"),
            ("redis://host:6379/0", "redis://host:6379/0"),
        ];
        for (url, shown) in cases {
            assert_eq!(without_password(url), shown);
            let error = Target::parse(url).err().unwrap_or_default();
            assert!(!error.contains("se"), "{url}: {error}");
        }
    }

    #[test]
    fn commands_encode_and_replies_decode() {
        assert_eq!(encode(&[b"GET", b"k"]), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        let wire = b"*4\r\n$3\r\nabc\r\n:-5\r\n$-1\r\n*1\r\n-ERR no\r\n+OK\r\n";
        let mut reader = &wire[..];
        let reply = read_reply(&mut reader, &mut { MAX_REPLY }, 0).unwrap();
        assert_eq!(
            reply,
            Reply::Array(vec![
                Reply::Bulk(b"abc".to_vec()),
                Reply::Int(-5),
                Reply::Nil,
                Reply::Array(vec![Reply::Error("ERR no".into())]),
            ])
        );
        assert_eq!(
            read_reply(&mut reader, &mut { MAX_REPLY }, 0).unwrap(),
            Reply::Simple("OK".into())
        );
        for bad in [&b"?x\r\n"[..], b"$5\r\nab\r\n", b":1\n", b"*1\r\n"] {
            assert!(read_reply(&mut &bad[..], &mut { MAX_REPLY }, 0).is_err());
        }
        let deep = "*1\r\n".repeat(20);
        assert!(read_reply(&mut deep.as_bytes(), &mut { MAX_REPLY }, 0).is_err());
    }

    /// A stream that hands out its bytes and remembers the largest buffer
    /// it was asked to fill: what the reader allocated for one read.
    struct Fake {
        bytes: Vec<u8>,
        at: usize,
        largest: usize,
    }

    impl Read for Fake {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.largest = self.largest.max(buf.len());
            let n = buf.len().min(self.bytes.len() - self.at);
            buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn fake(bytes: &[u8]) -> BufReader<Fake> {
        let fake = Fake {
            bytes: bytes.to_vec(),
            at: 0,
            largest: 0,
        };
        BufReader::with_capacity(16, fake)
    }

    #[test]
    fn a_reply_that_announces_a_huge_length_is_refused_without_allocating_it() {
        for huge in [
            "$536870913\r\nabc\r\n",
            "*536870913\r\n$1\r\na\r\n",
            "$99999999999999999999\r\nabc\r\n",
            "$-2\r\nabc\r\n",
        ] {
            let mut reader = fake(huge.as_bytes());
            let error = read_reply(&mut reader, &mut { MAX_REPLY }, 0).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{huge:?}");
            assert!(
                reader.get_ref().largest <= 16,
                "{huge:?}: nothing read for it"
            );
        }
        // Under the limit but a lie: only what arrives is held.
        let mut reader = fake(b"$400000000\r\nabc");
        let error = read_reply(&mut reader, &mut { MAX_REPLY }, 0).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        let largest = reader.get_ref().largest;
        assert!(
            largest <= FIRST_CHUNK,
            "asked to fill {largest} bytes at once"
        );
        // A reply's parts count together: two bulk strings of 6 bytes do not
        // fit in 10.
        let two = b"*2\r\n$6\r\nabcdef\r\n$6\r\nabcdef\r\n";
        assert!(read_reply(&mut &two[..], &mut 10, 0).is_err());
        assert!(read_reply(&mut &two[..], &mut 15, 0).is_ok());
    }
}
