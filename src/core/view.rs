//! Views of the state: what one (session, kind) queue looks like after a
//! change, and which queues a watcher asked to see.
//!
//! An `Update` is what every frame, poll and snapshot carries: the head (as
//! JSON text made once per change and shared), the count and the version.

use crate::core::kind::Kind;
use std::sync::Arc;

/// The state of one (session, kind) queue.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    pub session_id: String,
    pub kind: Kind,
    /// The head entry as JSON text; `None` for an empty queue.
    pub pending: Option<Arc<str>>,
    pub pending_count: usize,
    /// The queue's version: the global version of its last change.
    pub version: u64,
}

impl Update {
    /// An empty clarify queue of the session `s` at `version`, for tests.
    #[cfg(test)]
    pub fn empty_at(version: u64) -> Update {
        Update {
            session_id: "s".into(),
            kind: Kind::Clarify,
            pending: None,
            pending_count: 0,
            version,
        }
    }

    /// The head as it goes on the wire: its JSON, or `null`.
    pub fn pending_json(&self) -> &str {
        self.pending.as_deref().unwrap_or("null")
    }
}

/// Which sessions a watcher watches.
#[derive(Clone, Debug, PartialEq)]
pub enum Watch {
    All,
    Sessions(Vec<String>),
}

impl Watch {
    pub fn includes(&self, session_id: &str) -> bool {
        match self {
            Watch::All => true,
            Watch::Sessions(sessions) => sessions.iter().any(|s| s == session_id),
        }
    }
}

/// What a watcher asked to see: sessions, and one kind or all of them.
#[derive(Clone, Debug, PartialEq)]
pub struct Interest {
    pub watch: Watch,
    pub kind: Option<Kind>,
}

impl Interest {
    pub fn includes(&self, session_id: &str, kind: Kind) -> bool {
        self.kind.is_none_or(|k| k == kind) && self.watch.includes(session_id)
    }

    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        Kind::ALL
            .into_iter()
            .filter(|&kind| self.kind.is_none_or(|k| k == kind))
    }
}
