//! Admission: the places for open streams (`--max-streams`) and for parked
//! requests, long-polls and agents' waits (`--max-parked`), each with its
//! own cap, so neither can starve the other.
//!
//! A place is held by a guard and given back when the guard drops, however
//! its thread ends.
//!
//! Fairness: a client that can be told apart (its own address on the LAN,
//! or the one a trusted proxy forwards) holds at most half of either kind,
//! so one device cannot take every place. Loopback clients are the
//! operator's own (or a proxy that forwards no address) and share the caps.

use crate::serve::origin::Client;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Which kind of place a guard holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Place {
    Stream,
    Parked,
}

pub struct Admission {
    streams: AtomicUsize,
    parked: AtomicUsize,
    max_streams: usize,
    max_parked: usize,
    /// Places held by each client told apart; an entry leaves at zero.
    by_client: Mutex<HashMap<(Client, Place), usize>>,
}

/// Gives its place back when dropped.
pub struct PlaceGuard {
    admission: Arc<Admission>,
    place: Place,
    client: Option<Client>,
}

impl Admission {
    pub fn new(max_streams: usize, max_parked: usize) -> Admission {
        Admission {
            streams: AtomicUsize::new(0),
            parked: AtomicUsize::new(0),
            max_streams,
            max_parked,
            by_client: Mutex::default(),
        }
    }

    fn max(&self, place: Place) -> usize {
        match place {
            Place::Stream => self.max_streams,
            Place::Parked => self.max_parked,
        }
    }

    /// Places one client told apart may hold of this kind.
    pub fn client_share(&self, place: Place) -> usize {
        self.max(place).div_ceil(2)
    }

    fn clients(&self) -> std::sync::MutexGuard<'_, HashMap<(Client, Place), usize>> {
        self.by_client.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn counter(&self, place: Place) -> &AtomicUsize {
        match place {
            Place::Stream => &self.streams,
            Place::Parked => &self.parked,
        }
    }

    /// Takes a place for `client` (`None`: one not told apart), or `None`
    /// when places of its kind are at their cap, or the client at its share.
    pub fn take(self: &Arc<Self>, place: Place, client: Option<Client>) -> Option<PlaceGuard> {
        if let Some(named) = &client {
            let mut clients = self.clients();
            let held = clients.entry((named.clone(), place)).or_insert(0);
            if *held >= self.client_share(place) {
                return None;
            }
            *held += 1;
        }
        let counter = self.counter(place);
        if counter.fetch_add(1, Ordering::AcqRel) >= self.max(place) {
            counter.fetch_sub(1, Ordering::AcqRel);
            self.give_back(place, client.as_ref());
            return None;
        }
        Some(PlaceGuard {
            admission: self.clone(),
            place,
            client,
        })
    }

    /// A client's count, less the place it gave back.
    fn give_back(&self, place: Place, client: Option<&Client>) {
        let Some(named) = client else { return };
        let mut clients = self.clients();
        let key = (named.clone(), place);
        if let Some(held) = clients.get_mut(&key) {
            *held -= 1;
            if *held == 0 {
                clients.remove(&key);
            }
        }
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
        self.admission.give_back(self.place, self.client.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_and_parked_requests_have_caps_of_their_own_and_give_places_back() {
        let admission = Arc::new(Admission::new(1, 1));
        let stream = admission.take(Place::Stream, None).expect("a place");
        let parked = admission.take(Place::Parked, None).expect("a place");
        assert!(
            admission.take(Place::Stream, None).is_none(),
            "streams are at their cap"
        );
        assert!(
            admission.take(Place::Parked, None).is_none(),
            "so are parked requests"
        );
        drop(parked);
        assert!(
            admission.take(Place::Parked, None).is_some(),
            "a dropped guard gives its place back"
        );
        assert_eq!(
            (admission.held(Place::Stream), admission.held(Place::Parked)),
            (1, 0)
        );
        drop(stream);
    }

    #[test]
    fn a_client_told_apart_holds_at_most_half_and_gives_it_back() {
        let admission = Arc::new(Admission::new(4, 4));
        let a = Client::Address("192.0.2.1".parse().unwrap());
        let b = Client::Unparsed("unknown".into());
        let first: Vec<_> = (0..2)
            .map(|_| admission.take(Place::Parked, Some(a.clone())))
            .collect();
        assert!(first.iter().all(Option::is_some), "half is a's");
        assert!(
            admission.take(Place::Parked, Some(a.clone())).is_none(),
            "and no more"
        );
        assert!(
            admission.take(Place::Stream, Some(a.clone())).is_some(),
            "streams are counted apart"
        );
        let second: Vec<_> = (0..2)
            .map(|_| admission.take(Place::Parked, Some(b.clone())))
            .collect();
        assert!(second.iter().all(Option::is_some), "the other half is b's");
        assert!(
            admission.take(Place::Parked, None).is_none(),
            "the cap holds for everyone"
        );
        drop(first);
        assert!(
            admission.take(Place::Parked, Some(a.clone())).is_some(),
            "a's places came back"
        );
        drop(second);
        assert!(
            admission.clients().is_empty(),
            "no client is remembered at zero"
        );
    }
}
