//! A parked long-poll answered by the hub's fan-out thread, straight to
//! its socket, when the socket takes the response without blocking
//! (docs/PROTOCOL.md §3.1): one thread writes every woken poll's response
//! in turn, as it writes streams' frames, and each poll's connection
//! thread, woken after them all, only writes what did not fit and goes on
//! to the connection's next request (BENCHMARKS.md, the long-poll wake).
//!
//! Invariants: a request is answered once, by the first of the fan-out
//! thread (`Early::answer`) and its connection's thread (`Early::finish`)
//! under one lock, with the bytes its connection's thread would have
//! written (tiny_http's `ResponsePrinter`, patch 25); the fan-out thread
//! never blocks on the socket, holds no lock but the request's own while
//! it writes, and writes only before `finish`, while the connection's
//! thread holds the request unanswered, which keeps the descriptor open.
//! A poll whose caller's credential may have been taken away since it
//! parked (the streams' `Watch::revocations` moved) is left to its thread,
//! which asks again. Whatever the parked work does, a panic included, its
//! thread asks `finish` once before it answers (`finish_parked`).

use crate::error::Error;
use crate::hub::subscriber::{Deliver, Feed, Next, Published};
use crate::serve::http::{Parked, Parking, Response};
use crate::serve::stream::{Watch, send_now};
use std::os::fd::RawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard};

/// A request's response as the bytes its connection's thread would write.
pub type Print = Box<dyn Fn(Response) -> Vec<u8> + Send + Sync>;

/// A parked request's socket, for answering it from another thread.
pub struct Early {
    fd: RawFd,
    print: Print,
    state: Mutex<State>,
}

enum State {
    Waiting,
    Answered(Sent),
    /// The connection's thread answers (or has answered) itself.
    Finished,
}

/// A response written early: its status, and what the socket did not
/// take at once, for the connection's thread to write.
pub struct Sent {
    pub status: u16,
    pub rest: Vec<u8>,
}

impl Early {
    pub fn new(fd: RawFd, print: Print) -> Early {
        Early {
            fd,
            print,
            state: Mutex::new(State::Waiting),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers with `response` unless the request is answered or its
    /// thread has finished waiting: writes as much as the socket takes now.
    /// A socket that fails keeps the whole response, for the connection's
    /// thread to fail on as it would have.
    pub fn answer(&self, response: impl FnOnce() -> Response) {
        let mut state = self.lock();
        if !matches!(*state, State::Waiting) {
            return;
        }
        let response = response();
        let status = response.status;
        let bytes = (self.print)(response);
        let rest = match send_now(self.fd, false, &bytes) {
            Ok(rest) => rest,
            Err(_) => bytes,
        };
        *state = State::Answered(Sent { status, rest });
    }

    pub fn answered(&self) -> bool {
        matches!(*self.lock(), State::Answered(_))
    }

    /// For the connection's thread, before it answers: no early answer
    /// from now on; the one sent already, if any.
    pub fn finish(&self) -> Option<Sent> {
        match std::mem::replace(&mut *self.lock(), State::Finished) {
            State::Answered(sent) => Some(sent),
            State::Waiting | State::Finished => None,
        }
    }
}

/// How a parked request ends (`finish_parked`).
pub enum Finished {
    /// Answered early: what its socket did not take, for its thread.
    Early(Sent),
    /// The work's response, a 500 if it panicked, to be written whole.
    Work(Response),
}

/// Runs a parked request's work on its connection's thread, then settles
/// in one place (`Early::finish`) who answers: a request answered early is
/// not answered again, not even by the 500 of a work that panicked after,
/// and no early answer follows, so none reaches a descriptor closed since.
pub fn finish_parked(work: Parked, parking: &Parking) -> Finished {
    let response = catch_unwind(AssertUnwindSafe(|| work(parking))).unwrap_or_else(|_| {
        log::error!("parked work panicked");
        Response::error(&Error::Internal)
    });
    match parking.early.as_ref().and_then(|early| early.finish()) {
        Some(sent) => Finished::Early(sent),
        None => Finished::Work(response),
    }
}

/// On the fan-out thread: a long-poll's inbox, answered from the newest
/// update in it by `respond`, unless the poll fell behind (its thread reads
/// the state), the hub closes, or the revocations moved past `seen` (its
/// thread asks whether its caller may still read). Its thread is always
/// woken, to finish.
pub struct EarlyPoll {
    pub early: Arc<Early>,
    pub feed: Feed,
    pub respond: fn(&Published) -> Response,
    pub watch: Arc<Watch>,
    pub seen: u64,
}

impl Deliver for EarlyPoll {
    fn deliver(&self) -> bool {
        if self.watch.revocations() != self.seen {
            return false;
        }
        let mut newest = None;
        loop {
            match self.feed.try_next() {
                Some(Next::Update(published)) => newest = Some(published),
                Some(Next::Closed | Next::Timeout) => return false,
                None => break,
            }
        }
        if let Some(published) = newest.filter(|_| !self.feed.awaits_resync()) {
            self.early.answer(|| (self.respond)(&published));
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::kind::Kind;
    use crate::core::view::{Interest, Update, Watch};
    use crate::hub::subscriber::{Inbox, Registry};
    use std::io::{ErrorKind, Read};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn update(version: u64) -> Update {
        Update::empty_at(version)
    }

    /// A response whose body names the version it answers.
    fn respond(published: &Published) -> Response {
        let body = format!("version {}", published.update.version);
        Response::text(200, "text/plain", body)
    }

    /// A long-poll's inbox answered early on a socket; its peer (which
    /// reads without blocking) and the inbox, to keep, are returned.
    fn parked(registry: &mut Registry) -> (Arc<Early>, UnixStream, Inbox) {
        let (socket, peer) = UnixStream::pair().expect("a socket pair");
        peer.set_nonblocking(true).expect("non-blocking");
        let interest = Interest {
            watch: Watch::Sessions(vec!["s".into()]),
            kind: Some(Kind::Clarify),
        };
        let inbox = registry.add(interest, 4);
        let fd = socket.as_raw_fd();
        // The socket lives as long as the printer, which the early holds.
        let early = Arc::new(Early::new(
            fd,
            Box::new(move |response: Response| {
                let _open = &socket;
                response.body
            }),
        ));
        inbox.deliver_with(Arc::new(EarlyPoll {
            early: early.clone(),
            feed: inbox.feed(),
            respond,
            watch: Arc::default(),
            seen: 0,
        }));
        (early, peer, inbox)
    }

    fn read_all(peer: &mut UnixStream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            match peer.read(&mut buffer) {
                Ok(0) => return got,
                Ok(n) => got.extend_from_slice(&buffer[..n]),
                Err(error) if error.kind() == ErrorKind::WouldBlock => return got,
                Err(error) => panic!("{error}"),
            }
        }
    }

    #[test]
    fn the_newest_update_is_answered_once_on_the_socket() {
        let mut registry = Registry::default();
        let (early, mut peer, _inbox) = parked(&mut registry);
        registry.publish(update(1));
        registry.publish(update(2));
        registry.take_deliveries().run();
        assert_eq!(read_all(&mut peer), b"version 2", "the newer of the two");
        assert!(early.answered());
        registry.publish(update(3));
        registry.take_deliveries().run();
        assert_eq!(read_all(&mut peer), b"", "answered once");
        let sent = early.finish().expect("answered early");
        assert_eq!((sent.status, sent.rest), (200, Vec::new()));
    }

    #[test]
    fn a_request_whose_thread_finished_is_not_answered_early() {
        let mut registry = Registry::default();
        let (early, mut peer, _inbox) = parked(&mut registry);
        assert!(early.finish().is_none(), "nothing was sent");
        registry.publish(update(1));
        registry.take_deliveries().run();
        assert_eq!(read_all(&mut peer), b"");
        assert!(!early.answered());
    }

    /// Parked work that panics: once answered early, its thread writes
    /// only the rest of that answer, never a 500 after it; unanswered, the
    /// 500 is the answer and no early one follows.
    #[test]
    fn parked_work_that_panics_is_answered_once() {
        let panics: fn() -> Parked = || Box::new(|_: &Parking| panic!("a bug in parked work"));
        let mut registry = Registry::default();
        let (early, mut peer, _inbox) = parked(&mut registry);
        let parking = Parking {
            client_left: &|| false,
            early: Some(early),
        };
        registry.publish(update(1));
        registry.take_deliveries().run();
        let Finished::Early(sent) = finish_parked(panics(), &parking) else {
            panic!("answered early, so not by the work");
        };
        assert_eq!((sent.status, sent.rest), (200, Vec::new()));
        assert_eq!(read_all(&mut peer), b"version 1", "the early answer alone");

        let (early, mut peer, _inbox) = parked(&mut registry);
        let parking = Parking {
            client_left: &|| false,
            early: Some(early),
        };
        let Finished::Work(response) = finish_parked(panics(), &parking) else {
            panic!("nothing was answered early");
        };
        assert_eq!(response.status, 500);
        registry.publish(update(2));
        registry.take_deliveries().run();
        assert_eq!(read_all(&mut peer), b"", "no early answer after");
    }

    #[test]
    fn what_the_socket_does_not_take_is_kept_for_the_connection_thread() {
        let mut registry = Registry::default();
        let (early, mut peer, _inbox) = parked(&mut registry);
        // Fill the socket, as a client that does not read would.
        let mut written = 0;
        let chunk = [b'x'; 4096];
        loop {
            let rest = send_now(early.fd, false, &chunk).expect("a socket");
            written += chunk.len() - rest.len();
            if !rest.is_empty() {
                break;
            }
        }
        registry.publish(update(7));
        registry.take_deliveries().run();
        let sent = early.finish().expect("answered early");
        assert_eq!(sent.rest, b"version 7", "the socket took none of it");
        assert_eq!(read_all(&mut peer).len(), written, "only the filler came");
    }
}
