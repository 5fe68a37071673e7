//! Counters for `/metrics`, and the places for streams and parked long-polls.
//!
//! Streams and long-polls share one cap (`--max-streams`); a place is held by
//! a guard, so it is given back however its thread ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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
