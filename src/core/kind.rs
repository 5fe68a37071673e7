//! The kinds of prompt, and what differs between them.
//!
//! Everything kind-specific is answered here, by a `match` with one arm per
//! kind and no wildcard, so adding a kind makes the compiler name every
//! place it touches. Per-kind data elsewhere lives in a `KindMap`, never in
//! named fields.
//!
//! Adding a kind: a variant here and in `Kind::ALL` and `Kind::BY_URGENCY`,
//! a row in `www/kinds.js`, then follow the compiler (a tidy test forbids
//! wildcard arms on `Kind`): its id length and field, default timeout,
//! answer field, de-duplication, its `Payload` and `Answer`, how a submit
//! reads it (`core/validate.rs`) and how it is answered (`serve/routes.rs`).
//! Queues, subscribers, streams and the page's transport need nothing.

use std::ops::{Index, IndexMut};

/// The kinds of prompt. Each (session, kind) has its own queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Clarify,
    Approval,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Clarify, Kind::Approval];
    /// Most urgent first: what a session list says needs the human.
    pub const BY_URGENCY: [Kind; 2] = [Kind::Approval, Kind::Clarify];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Clarify => "clarify",
            Kind::Approval => "approval",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    fn index(self) -> usize {
        match self {
            Kind::Clarify => 0,
            Kind::Approval => 1,
        }
    }

    /// The JSON field that names an entry's id: `clarify_id` or `approval_id`.
    pub fn id_field(self) -> &'static str {
        match self {
            Kind::Clarify => "clarify_id",
            Kind::Approval => "approval_id",
        }
    }

    /// How many lowercase hex characters an id of this kind has.
    pub fn id_len(self) -> usize {
        match self {
            Kind::Clarify => 12,
            Kind::Approval => 32,
        }
    }

    /// Seconds a prompt waits for its answer when the agent does not say:
    /// long enough for a human to notice a phone, unlock it and read (the
    /// agent blocks meanwhile, and gets an expiry that says how to wait
    /// longer).
    pub fn default_timeout_seconds(self) -> i64 {
        match self {
            Kind::Clarify => 900,
            Kind::Approval => 900,
        }
    }

    /// The JSON field an answer travels in: the clarify's text or the
    /// approval's choice.
    pub fn answer_field(self) -> &'static str {
        match self {
            Kind::Clarify => "response",
            Kind::Approval => "choice",
        }
    }

    /// The JSON field of what was asked, in the history: the clarify's
    /// question or the approval's command.
    pub fn asked_field(self) -> &'static str {
        match self {
            Kind::Clarify => "question",
            Kind::Approval => "command",
        }
    }

    /// Whether a submit equal to the newest entry returns that entry
    /// instead of queueing a second one (queue rule 9).
    pub fn deduplicates(self) -> bool {
        match self {
            Kind::Clarify => true,
            Kind::Approval => false,
        }
    }
}

/// One value per kind, indexed by `Kind`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KindMap<T>([T; 2]);

impl<T> KindMap<T> {
    pub fn iter(&self) -> impl Iterator<Item = (Kind, &T)> {
        Kind::ALL.into_iter().map(move |kind| (kind, &self[kind]))
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.0.iter()
    }
}

impl<T> Index<Kind> for KindMap<T> {
    type Output = T;

    fn index(&self, kind: Kind) -> &T {
        &self.0[kind.index()]
    }
}

impl<T> IndexMut<Kind> for KindMap<T> {
    fn index_mut(&mut self, kind: Kind) -> &mut T {
        &mut self.0[kind.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_slot_and_name() {
        let mut map: KindMap<u8> = KindMap::default();
        map[Kind::Approval] = 2;
        assert_eq!(
            map.iter().collect::<Vec<_>>(),
            [(Kind::Clarify, &0), (Kind::Approval, &2)]
        );
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(Kind::parse("other"), None);
        let mut by_urgency = Kind::BY_URGENCY;
        by_urgency.sort();
        assert_eq!(by_urgency, Kind::ALL, "every kind has an urgency");
    }
}
