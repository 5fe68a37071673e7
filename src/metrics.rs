//! Counters for `/metrics` and their Prometheus text, and the places for
//! streams and parked long-polls.
//!
//! Streams and long-polls share one cap (`--max-streams`); a place is held by
//! a guard, so it is given back however its thread ends.

use crate::hub::Counts;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// One metric: name, type, help, and its samples as (labels, value).
type Series<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, u64)]);

#[derive(Default)]
pub struct Metrics {
    pub streams_open: AtomicUsize,
    pub longpolls_parked: AtomicUsize,
    pub frames_sent: AtomicU64,
    /// Responses by status class: index 1 is 1xx ... index 5 is 5xx.
    pub responses: [AtomicU64; 6],
    pub max_streams: usize,
}

/// Which kind of place a guard holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Place {
    Stream,
    LongPoll,
}

/// Gives its place back when dropped.
pub struct PlaceGuard {
    metrics: Arc<Metrics>,
    place: Place,
}

impl Metrics {
    pub fn new(max_streams: usize) -> Metrics {
        Metrics {
            max_streams,
            ..Metrics::default()
        }
    }

    fn counter(&self, place: Place) -> &AtomicUsize {
        match place {
            Place::Stream => &self.streams_open,
            Place::LongPoll => &self.longpolls_parked,
        }
    }

    /// Takes a place, or `None` when streams and long-polls together are at
    /// the cap.
    pub fn take_place(self: &Arc<Self>, place: Place) -> Option<PlaceGuard> {
        let counter = self.counter(place);
        counter.fetch_add(1, Ordering::AcqRel);
        let taken = self.streams_open.load(Ordering::Acquire)
            + self.longpolls_parked.load(Ordering::Acquire);
        if taken > self.max_streams {
            counter.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(PlaceGuard {
            metrics: self.clone(),
            place,
        })
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self, counts: &Counts) -> String {
        let load = |counter: &AtomicUsize| counter.load(Ordering::Relaxed) as u64;
        #[rustfmt::skip]
        let series: [Series; 9] = [
            ("askgate_streams_open", "gauge", "Open event streams.", &[("", load(&self.streams_open))]),
            ("askgate_longpolls_parked", "gauge", "Parked long-polls and waits.", &[("", load(&self.longpolls_parked))]),
            ("askgate_subscribers", "gauge", "Registered subscribers.", &[("", counts.subscribers as u64)]),
            ("askgate_sessions", "gauge", "Sessions known.", &[("", counts.sessions as u64)]),
            ("askgate_pending_prompts", "gauge", "Pending prompts.", &[
                ("{kind=\"clarify\"}", counts.pending_clarify as u64),
                ("{kind=\"approval\"}", counts.pending_approval as u64),
            ]),
            ("askgate_frames_sent_total", "counter", "Stream frames written.", &[("", self.frames_sent.load(Ordering::Relaxed))]),
            ("askgate_resyncs_total", "counter", "Subscribers resynced after falling behind.", &[("", counts.resyncs)]),
            ("askgate_version", "counter", "The global change version.", &[("", counts.version)]),
            ("askgate_responses_total", "counter", "Responses by status class.", &[
                ("{class=\"1xx\"}", self.responses[1].load(Ordering::Relaxed)),
                ("{class=\"2xx\"}", self.responses[2].load(Ordering::Relaxed)),
                ("{class=\"3xx\"}", self.responses[3].load(Ordering::Relaxed)),
                ("{class=\"4xx\"}", self.responses[4].load(Ordering::Relaxed)),
                ("{class=\"5xx\"}", self.responses[5].load(Ordering::Relaxed)),
            ]),
        ];
        let mut text = String::new();
        for (name, kind, help, samples) in series {
            let _ = write!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
            for (labels, value) in samples {
                let _ = writeln!(text, "{name}{labels} {value}");
            }
        }
        text
    }

    pub fn count_response(&self, status: u16) {
        let class = usize::from(status / 100).min(5);
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for PlaceGuard {
    fn drop(&mut self) {
        self.metrics
            .counter(self.place)
            .fetch_sub(1, Ordering::AcqRel);
    }
}
