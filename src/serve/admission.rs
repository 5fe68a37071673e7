//! Admission: the places for open streams (`--max-streams`) and for parked
//! requests, long-polls and agents' waits (`--max-parked`), each with its
//! own cap, so neither can starve the other.
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
    max_streams: usize,
    max_parked: usize,
}

/// Gives its place back when dropped.
pub struct PlaceGuard {
    admission: Arc<Admission>,
    place: Place,
}

impl Admission {
    pub fn new(max_streams: usize, max_parked: usize) -> Admission {
        Admission {
            streams: AtomicUsize::new(0),
            parked: AtomicUsize::new(0),
            max_streams,
            max_parked,
        }
    }

    fn counter(&self, place: Place) -> &AtomicUsize {
        match place {
            Place::Stream => &self.streams,
            Place::Parked => &self.parked,
        }
    }

    /// Takes a place, or `None` when places of its kind are at their cap.
    pub fn take(self: &Arc<Self>, place: Place) -> Option<PlaceGuard> {
        let counter = self.counter(place);
        let max = match place {
            Place::Stream => self.max_streams,
            Place::Parked => self.max_parked,
        };
        if counter.fetch_add(1, Ordering::AcqRel) >= max {
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
    fn streams_and_parked_requests_have_caps_of_their_own_and_give_places_back() {
        let admission = Arc::new(Admission::new(1, 1));
        let stream = admission.take(Place::Stream).expect("a place");
        let parked = admission.take(Place::Parked).expect("a place");
        assert!(
            admission.take(Place::Stream).is_none(),
            "streams are at their cap"
        );
        assert!(
            admission.take(Place::Parked).is_none(),
            "so are parked requests"
        );
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
