//! The subscriber registry: who watches which queues, and the bounded channel
//! each of them reads from.
//!
//! Publishing is a `try_send` to each interested subscriber, done by the hub
//! while it holds its lock, so it never blocks on a slow client. A full
//! channel marks its subscriber for resync and nothing more is sent to it
//! until its stream has drained and caught up (queue rule 7).

use crate::core::view::{Interest, Update, Watch};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

struct Subscriber {
    interest: Interest,
    sender: Sender<Arc<Update>>,
    resync: Arc<AtomicBool>,
    /// While marked: the global version the subscriber is current up to,
    /// the one before the first update it missed.
    behind_since: u64,
}

/// The receiving end a stream or long-poll holds.
pub struct Inbox {
    pub id: u64,
    pub receiver: Receiver<Arc<Update>>,
    /// Set by the publisher when the channel overflowed.
    pub resync: Arc<AtomicBool>,
}

#[derive(Default)]
pub struct Registry {
    next_id: u64,
    subscribers: HashMap<u64, Subscriber>,
    by_session: HashMap<String, Vec<u64>>,
    watching_all: Vec<u64>,
    resyncs: u64,
}

impl Registry {
    pub fn add(&mut self, interest: Interest, capacity: usize) -> Inbox {
        self.next_id += 1;
        let id = self.next_id;
        let (sender, receiver) = crossbeam_channel::bounded(capacity.max(1));
        let resync = Arc::new(AtomicBool::new(false));
        match &interest.watch {
            Watch::All => self.watching_all.push(id),
            Watch::Sessions(sessions) => {
                for session_id in sessions {
                    self.by_session
                        .entry(session_id.clone())
                        .or_default()
                        .push(id);
                }
            }
        }
        let subscriber = Subscriber {
            interest,
            sender,
            resync: resync.clone(),
            behind_since: 0,
        };
        self.subscribers.insert(id, subscriber);
        Inbox {
            id,
            receiver,
            resync,
        }
    }

    pub fn remove(&mut self, id: u64) {
        let Some(subscriber) = self.subscribers.remove(&id) else {
            return;
        };
        match subscriber.interest.watch {
            Watch::All => self.watching_all.retain(|&other| other != id),
            Watch::Sessions(sessions) => {
                for session_id in sessions {
                    if let Some(ids) = self.by_session.get_mut(&session_id) {
                        ids.retain(|&other| other != id);
                        if ids.is_empty() {
                            self.by_session.remove(&session_id);
                        }
                    }
                }
            }
        }
    }

    /// Drops every sender, so every stream sees its channel close and ends.
    pub fn clear(&mut self) {
        self.subscribers.clear();
        self.by_session.clear();
        self.watching_all.clear();
    }

    pub fn len(&self) -> usize {
        self.subscribers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
    }

    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Whether a subscriber fell behind and still waits for its resync.
    pub fn any_awaiting_resync(&self) -> bool {
        let marked = |subscriber: &Subscriber| subscriber.resync.load(Ordering::Acquire);
        self.subscribers.values().any(marked)
    }

    /// Whether anyone watches this session by name (such sessions are kept).
    pub fn watches_by_name(&self, session_id: &str) -> bool {
        self.by_session.contains_key(session_id)
    }

    /// Whether a session may not be forgotten now: someone watches it by
    /// name, or a subscriber that fell behind must still be told what
    /// changed, and a forgotten session could not be reported.
    pub fn needs(&self, session_id: &str) -> bool {
        self.watches_by_name(session_id) || self.any_awaiting_resync()
    }

    /// What a marked subscriber watches, and the version it is current up
    /// to: a resync sends the watched queues changed after it.
    pub fn resync_point(&self, id: u64) -> Option<(&Interest, u64)> {
        let subscriber = self.subscribers.get(&id)?;
        Some((&subscriber.interest, subscriber.behind_since))
    }

    /// Hands the update to every subscriber interested in it, never blocking.
    pub fn publish(&mut self, update: Update) {
        let update = Arc::new(update);
        let named = self
            .by_session
            .get(&update.session_id)
            .into_iter()
            .flatten();
        for id in named.chain(self.watching_all.iter()) {
            let Some(subscriber) = self.subscribers.get_mut(id) else {
                continue;
            };
            if subscriber
                .interest
                .kind
                .is_some_and(|kind| kind != update.kind)
                || subscriber.resync.load(Ordering::Acquire)
            {
                continue;
            }
            if let Err(TrySendError::Full(_)) = subscriber.sender.try_send(update.clone()) {
                subscriber.resync.store(true, Ordering::Release);
                subscriber.behind_since = update.version - 1;
                self.resyncs += 1;
            }
        }
    }
}
