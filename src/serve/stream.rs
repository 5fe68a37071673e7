//! The stream writer: one thread per open stream, writing frames from its
//! subscriber's channel to the raw connection.
//!
//! Invariants: no lock is held while writing; every frame is flushed as it
//! is written; a stream that ends, for whatever reason, writes the last
//! chunk and gives back its subscriber and its place. A subscriber marked
//! for resync is sent the current state of what it watches once its channel
//! has drained, so it always ends on the true state (queue rule 7).

use crate::core::kind::Kind;
use crate::core::view::Update;
use crate::hub::Subscription;
use crate::hub::subscriber::{Next, Published};
use crate::serve::admission::PlaceGuard;
use crate::serve::metrics::Metrics;
use crate::serve::sse;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
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
}

/// Writes SSE text to the connection, chunked for HTTP/1.1, flushed every time.
struct Wire {
    inner: Box<dyn Write + Send>,
    chunked: bool,
}

impl Wire {
    /// Writes one piece of the body, without flushing.
    fn write(&mut self, text: &str) -> io::Result<()> {
        match self.chunked {
            true => sse::write_chunk(&mut self.inner, text.as_bytes()),
            false => self.inner.write_all(text.as_bytes()),
        }
    }

    /// Writes one piece and puts it on the wire at once.
    fn send(&mut self, text: &str) -> io::Result<()> {
        self.write(text)?;
        self.inner.flush()
    }

    fn end(&mut self) {
        if self.chunked {
            let _ = self.inner.write_all(sse::LAST_CHUNK);
        }
        let _ = self.inner.flush();
    }
}

impl Stream {
    /// Runs the stream until the client goes away, the server closes the
    /// subscription, or the lifetime passes.
    pub fn run(mut self, writer: Box<dyn Write + Send>, chunked: bool) {
        let id = self.subscription.inbox.id;
        let initial = std::mem::take(&mut self.subscription.initial);
        let mut wire = Wire {
            inner: writer,
            chunked,
        };
        let result = wire
            .inner
            .write_all(sse::head(chunked).as_bytes())
            .and_then(|()| self.write_prelude(&mut wire, initial))
            .and_then(|()| self.serve(&mut wire));
        match result {
            Ok(()) => wire.end(),
            Err(error) => log::debug!("stream {id} ended: {error}"),
        }
    }

    fn serve(&self, wire: &mut Wire) -> io::Result<()> {
        let inbox = &self.subscription.inbox;
        let mut last_version = self.subscription.version;
        let deadline = self.lifetime.map(|lifetime| Instant::now() + lifetime);
        let mut probe_due = false;
        loop {
            let now = Instant::now();
            if deadline.is_some_and(|deadline| now >= deadline) {
                return Ok(());
            }
            let interval = if probe_due {
                PROBE_AFTER
            } else {
                self.keepalive
            };
            let wake_at = deadline.map_or(now + interval, |d| d.min(now + interval));
            match inbox.next(wake_at) {
                Next::Update(published) if published.update.version > last_version => {
                    wire.send(self.shared_frame(&published))?;
                    last_version = published.update.version;
                    probe_due = false;
                }
                Next::Update(_) => {}
                Next::Timeout if deadline.is_some_and(|d| Instant::now() >= d) => {}
                Next::Timeout if probe_due => {
                    wire.send(&sse::comment(""))?;
                    probe_due = false;
                }
                Next::Timeout => {
                    wire.send(&self.keepalive_frame(last_version))?;
                    probe_due = true;
                }
                Next::Closed => return Ok(()),
            }
            if inbox.is_empty() && inbox.resync.load(Ordering::Acquire) {
                for update in self.subscription.resync() {
                    wire.send(&self.frame(&update))?;
                    last_version = last_version.max(update.version);
                }
            }
        }
    }

    /// The first bytes of the body: the initial state (and, multiplexed, the
    /// retry delay and `ready`), frame by frame, flushed once.
    fn write_prelude(&self, wire: &mut Wire, initial: Vec<Update>) -> io::Result<()> {
        let subscription = &self.subscription;
        match self.format {
            Format::PerKind(_) => {
                // A per-kind subscription names one queue, so it has one state.
                let data = initial.first().map(sse::per_kind_data);
                wire.write(&sse::frame(None, "initial", &data.unwrap_or_default()))?;
            }
            Format::Multiplexed => {
                wire.write(&sse::retry(3000))?;
                for update in &initial {
                    wire.write(&self.frame(update))?;
                }
                let ready = format!(
                    r#"{{"version": {}, "full": {}}}"#,
                    subscription.version, subscription.full
                );
                wire.write(&sse::frame(Some(subscription.version), "ready", &ready))?;
            }
        }
        wire.inner.flush()
    }

    /// The frame of a published update, made once for every stream of
    /// this format.
    fn shared_frame<'a>(&self, published: &'a Published) -> &'a str {
        let slot = match self.format {
            Format::PerKind(_) => 0,
            Format::Multiplexed => 1,
        };
        self.metrics.frames_sent.fetch_add(1, Ordering::Relaxed);
        published.rendered(slot, |update| self.render(update))
    }

    fn frame(&self, update: &Update) -> String {
        self.metrics.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.render(update)
    }

    fn render(&self, update: &Update) -> String {
        match self.format {
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

    fn keepalive_frame(&self, last_version: u64) -> String {
        match self.format {
            Format::PerKind(_) => sse::comment("keepalive"),
            Format::Multiplexed => sse::frame(Some(last_version), "ping", "{}"),
        }
    }
}
