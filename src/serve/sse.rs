//! Server-Sent Events framing, as pure functions tested byte for byte.
//!
//! A frame is `id:`/`event:` lines, one `data:` line per line of data, and a
//! blank line. HTTP/1.1 bodies are chunked by hand: hex length, CRLF, bytes,
//! CRLF, and `0\r\n\r\n` at the end. No raw CR or LF ever reaches a field.

use crate::core::kind::Kind;
use crate::core::view::Update;
use std::fmt::Write as _;
use std::io::{self, Write};

/// The status line and headers of every stream (docs/PROTOCOL.md §3.3). Never
/// `Connection: close`.
pub fn head(chunked: bool) -> String {
    let (version, encoding) = match chunked {
        true => ("HTTP/1.1", "Transfer-Encoding: chunked\r\n"),
        false => ("HTTP/1.0", ""),
    };
    format!(
        "{version} 200 OK\r\n\
         Content-Type: text/event-stream; charset=utf-8\r\n\
         Cache-Control: no-cache\r\n\
         X-Accel-Buffering: no\r\n\
         {encoding}\r\n"
    )
}

/// One event frame. `data` may hold several lines; each gets its own `data:`.
pub fn frame(id: Option<u64>, event: &str, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 48);
    if let Some(id) = id {
        let _ = writeln!(out, "id: {id}");
    }
    let _ = writeln!(out, "event: {}", one_line(event));
    for line in data.replace("\r\n", "\n").split(['\r', '\n']) {
        let _ = writeln!(out, "data: {line}");
    }
    out.push('\n');
    out
}

/// A comment: invisible to the page, enough to keep proxies and sockets awake.
pub fn comment(text: &str) -> String {
    format!(": {}\n\n", one_line(text))
}

/// The reconnection delay, in milliseconds, a browser should use.
pub fn retry(millis: u64) -> String {
    format!("retry: {millis}\n\n")
}

/// Writes one HTTP/1.1 chunk holding `bytes`, without copying them.
pub fn write_chunk(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    write!(out, "{:x}\r\n", bytes.len())?;
    out.write_all(bytes)?;
    out.write_all(b"\r\n")
}

/// The chunk that ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The data of a per-kind stream frame: `{"pending": ..., "pending_count": N}`.
pub fn per_kind_data(update: &Update) -> String {
    format!(
        r#"{{"pending": {}, "pending_count": {}}}"#,
        update.pending_json(),
        update.pending_count
    )
}

/// The data of a multiplexed frame, which also names its session and version.
pub fn multiplexed_data(update: &Update) -> String {
    format!(
        r#"{{"session_id": {}, "pending": {}, "pending_count": {}, "version": {}}}"#,
        serde_json::Value::from(update.session_id.as_str()),
        update.pending_json(),
        update.pending_count,
        update.version
    )
}

/// The event name of a change frame.
pub fn event_name(kind: Kind) -> &'static str {
    kind.as_str()
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(pending: &str, count: usize) -> Update {
        Update {
            session_id: "s1".into(),
            kind: Kind::Clarify,
            pending: (pending != "null").then(|| pending.into()),
            pending_count: count,
            version: 7,
        }
    }

    #[test]
    fn frames_byte_for_byte() {
        let cases: [(String, &str); 6] = [
            (frame(None, "initial", "{}"), "event: initial\ndata: {}\n\n"),
            (
                frame(Some(7), "clarify", "{}"),
                "id: 7\nevent: clarify\ndata: {}\n\n",
            ),
            (
                frame(None, "x", "a\nb\r\nc\rd"),
                "event: x\ndata: a\ndata: b\ndata: c\ndata: d\n\n",
            ),
            (frame(None, "bad\nname", ""), "event: bad name\ndata: \n\n"),
            (comment("keepalive"), ": keepalive\n\n"),
            (retry(3000), "retry: 3000\n\n"),
        ];
        for (got, expected) in cases {
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn data_shapes() {
        assert_eq!(
            per_kind_data(&update("null", 0)),
            r#"{"pending": null, "pending_count": 0}"#
        );
        assert_eq!(
            multiplexed_data(&update(r#"{"a":1}"#, 2)),
            r#"{"session_id": "s1", "pending": {"a":1}, "pending_count": 2, "version": 7}"#
        );
    }

    #[test]
    fn chunks_byte_for_byte() {
        let chunk = |bytes: &[u8]| {
            let mut out = Vec::new();
            write_chunk(&mut out, bytes).unwrap();
            out
        };
        assert_eq!(chunk(b"hello"), b"5\r\nhello\r\n");
        assert_eq!(chunk(&[b'x'; 26])[..4], *b"1a\r\n");
        assert_eq!(
            head(true),
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\
             Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
    }
}
