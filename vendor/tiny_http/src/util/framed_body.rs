//! askgate patch: a request body whose framing fails ends its connection.
//!
//! After a malformed chunk, a read error, or a chunked body dropped before
//! its last chunk, nobody knows where the next request starts: reading on
//! would take the rest of this body for a request (a smuggled one). So the
//! connection reads nothing more, and the response says `Connection: close`.

use std::io::{Error as IoError, ErrorKind, Read, Result as IoResult};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

/// Set once nothing more may be read from a request's connection after its
/// body: the request's reader then keeps the connection from the next
/// request, which is never read.
#[derive(Clone, Debug, Default)]
pub struct ConnectionEnd(Arc<AtomicBool>);

impl ConnectionEnd {
    pub fn mark(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_marked(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A request body that marks its connection's end when its framing fails.
pub struct FramedBody<R: Read> {
    inner: Option<R>,
    end: ConnectionEnd,
    failed: bool,
    read_to_end: bool,
    /// For a body of known length, whose reader drains the unread rest when
    /// dropped: the outcome of that drain.
    drained: Option<Receiver<IoResult<()>>>,
}

impl<R: Read> FramedBody<R> {
    /// A chunked body: unless it is read to its last chunk, the connection
    /// ends.
    pub fn chunked(inner: R, end: ConnectionEnd) -> FramedBody<R> {
        FramedBody {
            inner: Some(inner),
            end,
            failed: false,
            read_to_end: false,
            drained: None,
        }
    }

    /// A body of known length, whose reader drains what is left unread when
    /// dropped and reports how that went on `drained`.
    pub fn sized(inner: R, drained: Receiver<IoResult<()>>, end: ConnectionEnd) -> FramedBody<R> {
        let mut body = FramedBody::chunked(inner, end);
        body.drained = Some(drained);
        body
    }
}

impl<R: Read> Read for FramedBody<R> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let inner = match (&mut self.inner, self.failed) {
            (Some(inner), false) => inner,
            _ => return Err(IoError::new(ErrorKind::InvalidData, "Bad request body")),
        };
        match inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.read_to_end = true;
                Ok(0)
            }
            Ok(read) => Ok(read),
            Err(e) if e.kind() == ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.failed = true;
                self.end.mark();
                Err(e)
            }
        }
    }
}

impl<R: Read> Drop for FramedBody<R> {
    fn drop(&mut self) {
        // a body of known length drains its rest here
        drop(self.inner.take());
        let ends = match &self.drained {
            Some(drained) => !matches!(drained.try_recv(), Ok(Ok(())) | Err(_)),
            None => !self.read_to_end,
        };
        if ends {
            self.end.mark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ConnectionEnd, FramedBody};
    use crate::util::EqualReader;
    use std::io::{self, Read};

    #[test]
    fn a_chunked_body_read_to_its_end_keeps_the_connection() {
        let end = ConnectionEnd::default();
        let mut body = FramedBody::chunked(&b"hello"[..], end.clone());
        io::copy(&mut body, &mut io::sink()).unwrap();
        drop(body);
        assert!(!end.is_marked());
    }

    #[test]
    fn a_chunked_body_left_unread_ends_the_connection() {
        let end = ConnectionEnd::default();
        drop(FramedBody::chunked(&b"hello"[..], end.clone()));
        assert!(end.is_marked());
    }

    #[test]
    fn a_read_error_ends_the_connection_and_nothing_more_is_read() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::InvalidData, "bad chunk"))
            }
        }
        let end = ConnectionEnd::default();
        let mut body = FramedBody::chunked(Failing, end.clone());
        assert!(body.read(&mut [0; 8]).is_err());
        assert!(end.is_marked());
        assert!(body.read(&mut [0; 8]).is_err());
    }

    #[test]
    fn a_sized_body_drained_whole_keeps_the_connection() {
        let end = ConnectionEnd::default();
        let (reader, drained) = EqualReader::new(&b"hello world"[..], 5);
        drop(FramedBody::sized(reader, drained, end.clone()));
        assert!(!end.is_marked());
    }
}
