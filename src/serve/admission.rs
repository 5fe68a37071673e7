//! Admission: the places for open streams and parked requests (long-polls
//! and agents' waits), and the cap on them (`--max-streams`).
//!
//! A place is held by a guard and given back when the guard drops, however
//! its thread ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Which kind of place a guard holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Place {
    Stream,
    Parked,
}

pub struct Admission {
    streams: AtomicUsize,
    parked: AtomicUsize,
    /// Streams and parked requests together.
    max: usize,
}

/// Gives its place back when dropped.
pub struct PlaceGuard {
    admission: Arc<Admission>,
    place: Place,
}

impl Admission {
    pub fn new(max: usize) -> Admission {
        Admission {
            streams: AtomicUsize::new(0),
            parked: AtomicUsize::new(0),
            max,
        }
    }

    fn counter(&self, place: Place) -> &AtomicUsize {
        match place {
            Place::Stream => &self.streams,
            Place::Parked => &self.parked,
        }
    }

    /// Takes a place, or `None` when streams and parked requests together
    /// are at the cap.
    pub fn take(self: &Arc<Self>, place: Place) -> Option<PlaceGuard> {
        let counter = self.counter(place);
        counter.fetch_add(1, Ordering::AcqRel);
        let taken = self.streams.load(Ordering::Acquire) + self.parked.load(Ordering::Acquire);
        if taken > self.max {
            counter.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(PlaceGuard {
            admission: self.clone(),
            place,
        })
    }

    /// How many places of this kind are held.
    pub fn held(&self, place: Place) -> usize {
        self.counter(place).load(Ordering::Relaxed)
    }
}

impl Drop for PlaceGuard {
    fn drop(&mut self) {
        self.admission
            .counter(self.place)
            .fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_and_parked_requests_share_the_cap_and_give_places_back() {
        let admission = Arc::new(Admission::new(2));
        let stream = admission.take(Place::Stream).expect("a place");
        let parked = admission.take(Place::Parked).expect("a place");
        assert!(admission.take(Place::Stream).is_none(), "the cap is shared");
        drop(parked);
        assert!(
            admission.take(Place::Parked).is_some(),
            "a dropped guard gives its place back"
        );
        assert_eq!(
            (admission.held(Place::Stream), admission.held(Place::Parked)),
            (1, 0)
        );
        drop(stream);
    }
}
