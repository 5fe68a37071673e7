//! The stream writer: one thread per open stream, and the frames of a
//! change written by the hub's fan-out thread when that cannot block.
//!
//! The fan-out thread (`Deliver`) writes each frame straight to the socket
//! without blocking when the stream's writer is free and nothing waits
//! before it; the stream's own thread is woken only for the slow case: the
//! socket is full (what did not fit is kept, and goes first), the writer is
//! busy, the stream must resync or end. Its thread also writes the prelude,
//! keepalives and resyncs. Both write under the stream's one writer lock
//! and take frames from the subscriber's channel only while holding it, so
//! frames leave in the order they were published, each once.
//!
//! Invariants: no lock but the stream's own writer lock is held while
//! writing, and the fan-out thread only `try_lock`s it; every frame is
//! flushed as it is written; a stream that ends, for whatever reason,
//! writes the last chunk and gives back its subscriber and its place. A
//! subscriber marked for resync is sent the current state of what it
//! watches once its channel has drained, so it always ends on the true
//! state (queue rule 7).

use crate::core::kind::Kind;
use crate::core::room::GiveBack;
use crate::core::view::Update;
use crate::hub::Subscription;
use crate::hub::subscriber::{Deliver, Feed, Next, Published};
use crate::serve::admission::PlaceGuard;
use crate::serve::limits;
use crate::serve::metrics::Metrics;
use crate::serve::sse;
use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// A write to a socket whose peer has closed succeeds once (the peer answers
/// with a reset); the next one fails. So a keepalive is followed shortly by
/// an empty comment, and a client that went away is noticed within a
/// keepalive interval and this.
const PROBE_AFTER: Duration = Duration::from_millis(250);

/// The two wire formats: a per-kind stream of one session (docs/PROTOCOL.md
/// §3.3), or the multiplexed stream (§4).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Format {
    PerKind(Kind),
    Multiplexed,
}

/// Everything a stream thread needs; built by the route, run by the server.
pub struct Stream {
    pub metrics: Arc<Metrics>,
    pub subscription: Subscription,
    pub format: Format,
    pub keepalive: Duration,
    /// When the server ends the stream by itself; `None` for never.
    pub lifetime: Option<Duration>,
    pub place: PlaceGuard,
    pub watch: Arc<Watch>,
    /// Whether its credential still lets it be read: asked about once a
    /// keepalive interval, and within a sweep of a revoke or a sign-out
    /// (`Watch::recheck`), out of every lock; the stream ends when not.
    pub still_allowed: Box<dyn Fn() -> bool + Send>,
}

/// The open streams' sockets, swept now and then (`sweep`, about every
/// second) for clients that left: a silent stream would otherwise notice
/// only at its next keepalive, holding its place up to `--keepalive-secs`.
/// A stream written to since the sweep before is not silent and is passed
/// over: a write to a client that left fails at the next one, and the
/// sweep after looks at it.
/// So too a revoked credential or a signed-out page (`recheck`), which
/// would otherwise read on until then.
#[derive(Default)]
pub struct Watch {
    streams: Mutex<HashMap<u64, Watched>>,
    /// Moves at each `recheck`: a stream that saw it move asks whether its
    /// credential still lets it read.
    revocations: AtomicU64,
}

struct Watched {
    fd: RawFd,
    presence: Arc<Presence>,
    reader: Thread,
}

/// What the fan-out thread and the sweep know of a stream's client: that
/// it left (the stream ends), and whether a frame went out since the last
/// sweep (one byte, so a stream costs no more than the flag it replaced).
#[derive(Default)]
struct Presence(AtomicU8);

impl Presence {
    const LEFT: u8 = 1;
    const WRITTEN: u8 = 2;

    fn has_left(&self) -> bool {
        self.0.load(Ordering::Acquire) & Self::LEFT != 0
    }

    fn mark_left(&self) {
        self.0.fetch_or(Self::LEFT, Ordering::AcqRel);
    }

    fn mark_written(&self) {
        if self.0.load(Ordering::Relaxed) & Self::WRITTEN == 0 {
            self.0.fetch_or(Self::WRITTEN, Ordering::AcqRel);
        }
    }

    /// Whether a frame went out since the last call.
    fn take_written(&self) -> bool {
        self.0.fetch_and(!Self::WRITTEN, Ordering::AcqRel) & Self::WRITTEN != 0
    }
}

impl Watch {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Watched>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks each stream whose client has left (its connection no longer
    /// established) and wakes its thread, which ends it. One `getsockopt`
    /// a stream that nothing was written to since the sweep before (at
    /// 5,000 streams, 8 ms of a core every second, where a fan-out bench
    /// now spends none: BENCHMARKS.md).
    pub fn sweep(&self) {
        for watched in self.lock().values() {
            let presence = &watched.presence;
            if presence.has_left() || presence.take_written() {
                continue;
            }
            if limits::client_has_left(watched.fd) {
                presence.mark_left();
                watched.reader.unpark();
            }
        }
    }

    /// How many times a credential may have been taken away (`recheck`):
    /// what a stream or a parked long-poll saw move asks again.
    pub fn revocations(&self) -> u64 {
        self.revocations.load(Ordering::Acquire)
    }

    /// A credential may have been revoked or a page signed out: every
    /// stream asks at once whether it may still read (one wake each).
    pub fn recheck(&self) {
        self.revocations.fetch_add(1, Ordering::AcqRel);
        for watched in self.lock().values() {
            watched.reader.unpark();
        }
    }
}

/// A stream's entry in the watch, taken out (before its socket closes)
/// when dropped.
struct Watching<'a> {
    watch: &'a Watch,
    id: u64,
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        let mut streams = self.watch.lock();
        streams.remove(&self.id);
        // After a burst of streams, the table's room goes with them.
        streams.give_back_room();
    }
}

/// Writes SSE text to the connection, chunked for HTTP/1.1.
struct Wire {
    inner: Box<dyn Write + Send>,
    chunked: bool,
    /// The socket under `inner`, which buffers nothing (tiny_http patch 27,
    /// or its buffer is empty whenever the wire is free).
    fd: Option<RawFd>,
}

impl Wire {
    /// Writes one piece of the body, without flushing.
    fn write(&mut self, text: &str) -> io::Result<()> {
        self.write_after("", text)
    }

    /// Writes `prefix` (a response's head), then one piece of the body,
    /// without flushing: on the socket, one write for all of it with the
    /// chunk's framing, as the fan-out thread's (small writes one after
    /// another would wait on each other: Nagle and a delayed ACK).
    fn write_after(&mut self, prefix: &str, text: &str) -> io::Result<()> {
        let Some(fd) = self.fd else {
            self.inner.write_all(prefix.as_bytes())?;
            return match self.chunked {
                true => sse::write_chunk(&mut self.inner, text.as_bytes()),
                false => self.inner.write_all(text.as_bytes()),
            };
        };
        let unsent = send_after(fd, prefix.as_bytes(), self.chunked, text.as_bytes())?;
        self.inner.write_all(&unsent)
    }

    fn end(&mut self) {
        if self.chunked {
            let _ = self.inner.write_all(sse::LAST_CHUNK);
        }
        let _ = self.inner.flush();
    }
}

/// The connection, as the stream's thread and the fan-out thread share it
/// (one at a time). Its buffer is empty whenever it is free.
struct Writer {
    /// `None` once the stream has ended: nothing more may be written, and
    /// the socket under it may be closed.
    wire: Option<Wire>,
    /// The version of the last change written.
    last_version: u64,
    /// What the fan-out thread could not write without blocking (the rest
    /// of a frame, chunk framing included): it goes before anything else.
    unsent: Vec<u8>,
    /// When bytes were last put on the wire: a keepalive follows
    /// `keepalive` of silence.
    written_at: Instant,
    /// Why a write by the fan-out thread failed (the client left): the
    /// stream ends.
    failed: Option<io::ErrorKind>,
}

impl Writer {
    fn wire(&mut self) -> io::Result<&mut Wire> {
        self.wire.as_mut().ok_or_else(ended)
    }

    /// Writes one piece, after anything left unsent, and puts it on the
    /// wire at once.
    fn send(&mut self, text: &str) -> io::Result<()> {
        self.send_unsent()?;
        let wire = self.wire()?;
        wire.write(text)?;
        wire.inner.flush()?;
        self.written_at = Instant::now();
        Ok(())
    }

    /// Writes what the fan-out thread left, blocking as long as it takes.
    fn send_unsent(&mut self) -> io::Result<()> {
        if self.unsent.is_empty() {
            return Ok(());
        }
        let unsent = std::mem::take(&mut self.unsent);
        let wire = self.wire()?;
        wire.inner.write_all(&unsent)?;
        wire.inner.flush()?;
        self.written_at = Instant::now();
        Ok(())
    }
}

fn ended() -> io::Error {
    io::Error::other("the stream has ended")
}

/// What a stream's thread shares with the fan-out thread.
struct Shared {
    writer: Mutex<Writer>,
    /// The subscriber's channel: taken from only while holding `writer`.
    feed: Feed,
    format: Format,
    metrics: Arc<Metrics>,
    chunked: bool,
    /// The socket under the wire, open as long as the wire is.
    fd: Option<RawFd>,
    /// Set by the watch when the client has left (the stream ends), and by
    /// the fan-out thread when it wrote.
    presence: Arc<Presence>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The frame of a published update, made once for every stream of
    /// this format.
    fn shared_frame<'a>(&self, published: &'a Published) -> &'a str {
        let slot = match self.format {
            Format::PerKind(_) => 0,
            Format::Multiplexed => 1,
        };
        self.metrics.frames_sent.fetch_add(1, Ordering::Relaxed);
        published.rendered(slot, |update| render(self.format, update))
    }
}

/// On the fan-out thread: writes what waits in the channel, frame by
/// frame, without blocking; leaves the rest to the stream's thread.
impl Deliver for Shared {
    fn deliver(&self) -> bool {
        let Some(fd) = self.fd else {
            return false;
        };
        let mut writer = match self.writer.try_lock() {
            Ok(writer) => writer,
            // Its thread is writing: woken, it looks at the channel again.
            Err(TryLockError::WouldBlock | TryLockError::Poisoned(_)) => return false,
        };
        if writer.wire.is_none() {
            return true;
        }
        if writer.failed.is_some() || !writer.unsent.is_empty() {
            return false;
        }
        let mut wrote = false;
        let delivered = loop {
            let Some(next) = self.feed.try_next() else {
                break !self.feed.awaits_resync();
            };
            let Next::Update(published) = next else {
                break false; // closed: its thread ends the stream
            };
            if published.update.version <= writer.last_version {
                continue;
            }
            writer.last_version = published.update.version;
            let frame = self.shared_frame(&published).as_bytes();
            match send_now(fd, self.chunked, frame) {
                Ok(unsent) => {
                    wrote = true;
                    if !unsent.is_empty() {
                        writer.unsent = unsent;
                        break false;
                    }
                }
                Err(error) => {
                    writer.failed = Some(error.kind());
                    break false;
                }
            }
        };
        if wrote {
            writer.written_at = Instant::now();
            self.presence.mark_written();
        }
        delivered
    }
}

/// Sends one frame (as one chunk when `chunked`) on the socket without
/// blocking; returns what did not fit, to be written before anything else.
pub(super) fn send_now(fd: RawFd, chunked: bool, frame: &[u8]) -> io::Result<Vec<u8>> {
    send_after(fd, b"", chunked, frame)
}

/// `send_now`, with `prefix` (a response's head) before the frame, in the
/// same write.
#[inline(never)]
fn send_after(fd: RawFd, prefix: &[u8], chunked: bool, frame: &[u8]) -> io::Result<Vec<u8>> {
    let mut head = [0u8; 20];
    let head_len = match chunked {
        true => {
            let mut cursor = io::Cursor::new(&mut head[..]);
            write!(cursor, "{:x}\r\n", frame.len())?;
            cursor.position() as usize
        }
        false => 0,
    };
    let tail: &[u8] = if chunked { b"\r\n" } else { b"" };
    let parts: [&[u8]; 4] = [prefix, &head[..head_len], frame, tail];
    let iov = parts.map(|part| libc::iovec {
        iov_base: part.as_ptr() as *mut libc::c_void,
        iov_len: part.len(),
    });
    // SAFETY: msghdr is integers and pointers, for which zero is a value.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = iov.as_ptr() as *mut libc::iovec;
    message.msg_iovlen = iov.len() as _;
    let sent = loop {
        // SAFETY: the message points at `iov`, which points at `parts`, all
        // alive and unmoved during the call, and sendmsg only reads them;
        // the caller holds the wire, which keeps the descriptor open.
        let sent = unsafe { libc::sendmsg(fd, &message, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        if sent >= 0 {
            break sent as usize;
        }
        let error = io::Error::last_os_error();
        match error.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => break 0,
            _ => return Err(error),
        }
    };
    let mut skip = sent;
    let mut unsent = Vec::new();
    for part in parts {
        let taken = skip.min(part.len());
        skip -= taken;
        unsent.extend_from_slice(&part[taken..]);
    }
    Ok(unsent)
}

/// What the stream's thread does after a look.
enum Then {
    WaitUntil(Instant),
    End,
}

impl Stream {
    /// Runs the stream until the client goes away, the server closes the
    /// subscription, or the lifetime passes. With `fd`, the socket under
    /// `writer`, the fan-out thread writes frames itself when it can.
    pub fn run(mut self, writer: Box<dyn Write + Send>, chunked: bool, fd: Option<RawFd>) {
        let id = self.subscription.inbox.id;
        let initial = std::mem::take(&mut self.subscription.initial);
        let mut wire = Wire {
            inner: writer,
            chunked,
            fd,
        };
        let head = sse::head(chunked);
        let prelude = wire
            .write_after(&head, &self.prelude(initial))
            .and_then(|()| wire.inner.flush());
        if let Err(error) = prelude {
            log::debug!("stream {id} ended: {error}");
            return;
        }
        let shared = Arc::new(Shared {
            writer: Mutex::new(Writer {
                wire: Some(wire),
                last_version: self.subscription.version,
                unsent: Vec::new(),
                written_at: Instant::now(),
                failed: None,
            }),
            feed: self.subscription.inbox.feed(),
            format: self.format,
            metrics: self.metrics.clone(),
            chunked,
            fd,
            presence: Arc::default(),
        });
        if fd.is_some() {
            self.subscription.inbox.deliver_with(shared.clone());
        }
        let watching = fd.map(|fd| {
            let watched = Watched {
                fd,
                presence: shared.presence.clone(),
                reader: thread::current(),
            };
            self.watch.lock().insert(id, watched);
            Watching {
                watch: &self.watch,
                id,
            }
        });
        // Once `serve` returns, nothing more is written by anyone but the
        // last chunk; the socket closes as the wire drops, after the watch
        // has let go of it.
        let served = self.serve(&shared);
        drop(watching);
        match served {
            Ok(mut wire) => wire.end(),
            Err(error) => log::debug!("stream {id} ended: {error}"),
        }
    }

    /// Serves the stream until it ends; then takes the wire from the
    /// fan-out thread, in the same hold of the writer as the last look,
    /// so that no frame (nor part of one) can slip in before the end.
    fn serve(&self, shared: &Shared) -> io::Result<Wire> {
        let deadline = self.lifetime.map(|lifetime| Instant::now() + lifetime);
        // When the last keepalive went out, while nothing followed it.
        let mut keepalive_at = None;
        // The first look is at once (and makes this thread the reader).
        let mut wake_at = Instant::now();
        // The first look asks too: a revoke swept between the check at
        // opening and now moved the revocations before this thread read them.
        let mut checked = None;
        loop {
            self.subscription.inbox.wait(wake_at);
            let allowed = self.still_allowed(&mut checked);
            let mut writer = shared.lock();
            if !allowed {
                return writer.wire.take().ok_or_else(ended);
            }
            match self.look(shared, &mut writer, deadline, &mut keepalive_at) {
                Ok(Then::WaitUntil(at)) => wake_at = at,
                Ok(Then::End) => return writer.wire.take().ok_or_else(ended),
                Err(error) => {
                    // Whatever its buffer still holds, nothing may follow.
                    drop(writer.wire.take());
                    return Err(error);
                }
            }
        }
    }

    /// Whether the credential still lets the stream be read, asked at the
    /// first look and when a keepalive interval has passed since `checked`
    /// (the thread wakes at least that often) or the watch's revocations
    /// moved; `true` in between.
    fn still_allowed(&self, checked: &mut Option<(Instant, u64)>) -> bool {
        let revocations = self.watch.revocations();
        let fresh =
            |(at, seen): (Instant, u64)| at.elapsed() < self.keepalive && seen == revocations;
        if checked.is_some_and(fresh) {
            return true;
        }
        *checked = Some((Instant::now(), revocations));
        (self.still_allowed)()
    }

    /// One look, holding the writer: what the fan-out thread left, what
    /// waits in the channel, a resync, a keepalive or a probe when due.
    fn look(
        &self,
        shared: &Shared,
        writer: &mut Writer,
        deadline: Option<Instant>,
        keepalive_at: &mut Option<Instant>,
    ) -> io::Result<Then> {
        let inbox = &self.subscription.inbox;
        if let Some(kind) = writer.failed {
            return Err(kind.into());
        }
        if shared.presence.has_left() {
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        writer.send_unsent()?;
        while let Some(next) = inbox.try_next() {
            match next {
                Next::Update(published) if published.update.version > writer.last_version => {
                    writer.send(shared.shared_frame(&published))?;
                    writer.last_version = published.update.version;
                }
                Next::Update(_) | Next::Timeout => {}
                Next::Closed => return Ok(Then::End),
            }
        }
        if inbox.is_empty() && inbox.resync.load(Ordering::Acquire) {
            // A point that cannot be honoured: the client resumes from its
            // last id and gets the full state.
            let Some(updates) = self.subscription.resync() else {
                return Ok(Then::End);
            };
            for update in updates {
                writer.send(&self.frame(&update))?;
                writer.last_version = writer.last_version.max(update.version);
            }
        }
        let now = Instant::now();
        if deadline.is_some_and(|deadline| now >= deadline) {
            return Ok(Then::End);
        }
        // A probe follows a keepalive only if nothing else went out since.
        if keepalive_at.is_some_and(|at| at != writer.written_at) {
            *keepalive_at = None;
        }
        if keepalive_at.is_some_and(|at| now >= at + PROBE_AFTER) {
            writer.send(&sse::comment(""))?;
            *keepalive_at = None;
        }
        if now >= writer.written_at + self.keepalive {
            writer.send(&self.keepalive_frame(writer.last_version))?;
            *keepalive_at = Some(writer.written_at);
        }
        let next_keepalive = writer.written_at + self.keepalive;
        let wake_at =
            keepalive_at.map_or(next_keepalive, |at| next_keepalive.min(at + PROBE_AFTER));
        Ok(Then::WaitUntil(
            deadline.map_or(wake_at, |d| d.min(wake_at)),
        ))
    }

    /// The first bytes of the body, as one piece: the initial state (and,
    /// multiplexed, the retry delay and `ready`), frame by frame.
    fn prelude(&self, initial: Vec<Update>) -> String {
        let subscription = &self.subscription;
        match self.format {
            Format::PerKind(_) => {
                // A per-kind subscription names one queue, so it has one state.
                let data = initial.first().map(sse::per_kind_data);
                sse::frame(None, "initial", &data.unwrap_or_default())
            }
            Format::Multiplexed => {
                let mut prelude = sse::retry(3000);
                for update in &initial {
                    prelude.push_str(&self.frame(update));
                }
                let ready = format!(
                    r#"{{"version": {}, "full": {}}}"#,
                    subscription.version, subscription.full
                );
                prelude.push_str(&sse::frame(Some(subscription.version), "ready", &ready));
                prelude
            }
        }
    }

    fn frame(&self, update: &Update) -> String {
        self.metrics.frames_sent.fetch_add(1, Ordering::Relaxed);
        render(self.format, update)
    }

    fn keepalive_frame(&self, last_version: u64) -> String {
        match self.format {
            Format::PerKind(_) => sse::comment("keepalive"),
            Format::Multiplexed => sse::frame(Some(last_version), "ping", "{}"),
        }
    }
}

/// The frame of an update in a wire format.
fn render(format: Format, update: &Update) -> String {
    match format {
        Format::PerKind(_) => sse::frame(
            None,
            sse::event_name(update.kind),
            &sse::per_kind_data(update),
        ),
        Format::Multiplexed => sse::frame(
            Some(update.version),
            sse::event_name(update.kind),
            &sse::multiplexed_data(update),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn chunk(frame: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        sse::write_chunk(&mut out, frame).unwrap();
        out
    }

    #[test]
    fn a_frame_sent_now_is_one_chunk_or_the_bare_frame() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let frame = b"event: clarify\ndata: {}\n\n";
        assert!(send_now(ours.as_raw_fd(), true, frame).unwrap().is_empty());
        assert!(send_now(ours.as_raw_fd(), false, frame).unwrap().is_empty());
        drop(ours);
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).unwrap();
        assert_eq!(got, [chunk(frame), frame.to_vec()].concat());
    }

    #[test]
    fn what_does_not_fit_is_returned_and_completes_the_chunk() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let frame = vec![b'x'; 8 << 20];
        let unsent = send_now(ours.as_raw_fd(), true, &frame).unwrap();
        assert!(!unsent.is_empty(), "8 MiB does not fit a socket buffer");
        // A full socket takes nothing more, without blocking.
        let nothing = send_now(ours.as_raw_fd(), true, b"y").unwrap();
        assert_eq!(nothing, chunk(b"y"));
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            (&theirs).read_to_end(&mut got).unwrap();
            got
        });
        (&ours).write_all(&unsent).unwrap();
        drop(ours);
        assert_eq!(reader.join().unwrap(), chunk(&frame));
    }

    #[test]
    fn a_peer_that_left_fails_the_send() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs);
        let error = send_now(ours.as_raw_fd(), true, b"x").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }

    /// Two loopback TCP connections whose clients have closed, watched as
    /// streams 1 and 2 (their server sides returned to keep them open).
    fn two_streams_whose_clients_left(watch: &Watch) -> [(TcpStream, Arc<Presence>); 2] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        [1, 2].map(|id| {
            let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server, _) = listener.accept().unwrap();
            drop(client);
            // Its FIN has arrived once a read sees the end.
            assert_eq!((&server).read(&mut [0; 1]).unwrap(), 0);
            let presence = Arc::new(Presence::default());
            let watched = Watched {
                fd: server.as_raw_fd(),
                presence: presence.clone(),
                reader: thread::current(),
            };
            watch.lock().insert(id, watched);
            (server, presence)
        })
    }

    #[test]
    fn a_sweep_passes_over_a_stream_written_to_since_the_last_and_finds_it_at_the_next() {
        let watch = Watch::default();
        let [(_silent, silent), (_written, written)] = two_streams_whose_clients_left(&watch);
        written.mark_written();
        watch.sweep();
        assert!(
            silent.has_left(),
            "a silent stream whose client left is found"
        );
        assert!(
            !written.has_left(),
            "a stream just written to is passed over"
        );
        watch.sweep();
        assert!(written.has_left(), "and found by the sweep after");
    }

    #[test]
    fn the_watch_gives_back_the_room_of_a_burst_of_streams_that_ended() {
        let watch = Watch::default();
        for id in 0..5_000 {
            let watched = Watched {
                fd: -1,
                presence: Arc::default(),
                reader: thread::current(),
            };
            watch.lock().insert(id, watched);
        }
        let grown = watch.lock().capacity();
        for id in 0..5_000 {
            drop(Watching { watch: &watch, id });
        }
        let kept = watch.lock().capacity();
        assert!(kept <= 512, "{grown} -> {kept}");
    }
}
