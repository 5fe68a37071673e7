//! The hub's storage seam: where an operation's changes are kept, as one
//! value, `Store`, with the few things the hub asks of it (keeping an operation's changes, whether
//! a version is durable, catching up before a read, the periodic upkeep,
//! closing, counters). Every back-end is one variant and one file of its
//! own (`durable.rs` and `store/journal.rs`, `replica.rs` and
//! `store/redis.rs`); the hub branches on none of them, and each `match`
//! here names every variant, so a new back-end is a variant, its file and
//! its arms here.
//!
//! One pipeline for every store (`Hub::commit`, docs/PROTOCOL.md §6): an
//! operation decides, its changes are kept, applied and published
//! (`Store::keep`), and then, with no lock held and alike for every store,
//! its frames go to the fan-out thread, it waits until durable, its
//! receipts and audit lines are written, the observer is told and its
//! waiters are woken. Only the keeping step differs, in its order:
//! - `Memory` and `Journal`: decided, queued to the journal (without I/O,
//!   under the hub lock), applied and published; durable once synced
//!   (`Hub::keep_local`).
//! - `Shared`: decided (on the state ahead of the shown one while this
//!   instance has records in flight), queued to a batch that a leader
//!   appends to the shared log in one compare-and-append without the hub
//!   lock, and applied only once Redis took it; decided again when another
//!   instance came first (`replica::keep`, `batch.rs`).
//!
//! The two orders stay: a journal is this instance's alone, so a change is
//! applied (and shown) as it is queued and nothing can come between; a
//! shared log can refuse a batch, and the state has no undo, so nothing is
//! applied before Redis took it and a refusal means deciding again.

use super::replica::{self, Replica};
use super::{Committed, Hub, Inner, Op, durable};
use crate::core::change::Change;
use crate::error::{Error, Result};
use crate::store::journal::{self, Journal};
use std::sync::MutexGuard;
use std::time::Duration;

pub(super) enum Store {
    /// In memory only: nothing outlives the process.
    Memory,
    /// A journal in the data directory (`durable.rs`).
    Journal(Journal),
    /// One log shared by several instances in Redis (`replica.rs`).
    Shared(Box<Replica>),
}

impl Store {
    /// The store's step of `Hub::commit`: `decide` reads the state and says
    /// what to change; the changes are kept, applied and published in this
    /// store's order, and what they did is handed back for the rest of the
    /// pipeline.
    pub(super) fn keep<R>(
        &self,
        hub: &Hub,
        op: Op<'_>,
        decide: impl FnMut(&Inner) -> Result<(Vec<Change>, R)>,
    ) -> Result<(Committed, R)> {
        match self {
            Store::Memory | Store::Journal(_) => hub.keep_local(op, decide),
            Store::Shared(replica) => replica::keep(hub, replica, op, decide),
        }
    }

    /// Queues an operation's changes, reaching `version`, under the hub
    /// lock and before they apply; a refusal changes nothing.
    pub(super) fn append(&self, version: u64, changes: &[Change]) -> Result<()> {
        match self {
            Store::Journal(journal) if !changes.is_empty() => journal
                .append(version, durable::encode(changes))
                .map_err(refusal),
            // Redis took them before they apply (`replica::keep`).
            Store::Memory | Store::Journal(_) | Store::Shared(_) => Ok(()),
        }
    }

    /// Waits until the changes up to `version` are kept.
    pub(super) fn wait_durable(&self, version: u64) -> Result<()> {
        match self {
            Store::Journal(journal) => journal.wait_durable(version).map_err(|failed| {
                log::error!("a change could not be made durable: {}", failed.reason);
                Error::InsufficientStorage("the change could not be made durable".into())
            }),
            Store::Memory | Store::Shared(_) => Ok(()),
        }
    }

    /// A committed operation's audit lines, for a store that keeps them
    /// too: with Redis, queued to the shared audit stream's own thread and
    /// connection, off the path that delivers frames (every instance also
    /// writes them to its own audit file, whatever Redis says).
    pub(super) fn audit(&self, lines: &[String]) {
        match self {
            Store::Shared(replica) if !lines.is_empty() => replica.audit.write(lines.to_vec()),
            Store::Memory | Store::Journal(_) | Store::Shared(_) => {}
        }
    }

    /// Whether the change of `version` is kept (an outcome is told to a
    /// waiting agent only then).
    pub(super) fn is_durable(&self, version: u64) -> bool {
        match self {
            Store::Journal(journal) => journal.durable_version() >= version,
            Store::Memory | Store::Shared(_) => true,
        }
    }

    /// Before a read that must not miss what another instance did a moment
    /// ago (`stale` says whether this instance's state may have): with a
    /// shared log, whatever it holds beyond this instance's version is
    /// applied first.
    pub(super) fn catch_up_if(&self, hub: &Hub, stale: impl FnOnce(&Inner) -> bool) {
        match self {
            Store::Shared(replica) => {
                if stale(&hub.lock()) {
                    replica::sync(hub, replica);
                }
            }
            Store::Memory | Store::Journal(_) => {}
        }
    }

    /// Whether this instance decides the time-driven changes now; else how
    /// long until it asks again (with a shared log, only the lease's holder
    /// decides them).
    pub(super) fn decides_time(&self, max_wait: Duration) -> std::result::Result<(), Duration> {
        match self {
            Store::Shared(replica) if !replica.hold_lease() => {
                Err(max_wait.min(replica::LEASE_CHECK))
            }
            Store::Memory | Store::Journal(_) | Store::Shared(_) => Ok(()),
        }
    }

    /// The periodic upkeep after expiry, under the hub lock: a journal
    /// compacted, a snapshot written to Redis once the log has grown.
    pub(super) fn upkeep(&self, inner: MutexGuard<'_, Inner>) {
        match self {
            Store::Journal(journal) => durable::compact_if_grown(journal, &inner.state),
            Store::Shared(replica) => replica.snapshot_if_grown(inner),
            Store::Memory => {}
        }
    }

    /// Syncs and closes what the store holds open (at shutdown).
    pub(super) fn close(&self) {
        match self {
            Store::Journal(journal) => journal.close(),
            Store::Shared(replica) => replica.audit.close(),
            Store::Memory => {}
        }
    }

    /// The journal's counters, for `/metrics`.
    pub(super) fn journal_stats(&self) -> Option<journal::Stats> {
        match self {
            Store::Journal(journal) => Some(journal.stats()),
            Store::Memory | Store::Shared(_) => None,
        }
    }

    /// The shared log, for what only it does (following, the shared keys).
    pub(super) fn shared(&self) -> Option<&Replica> {
        match self {
            Store::Shared(replica) => Some(replica),
            Store::Memory | Store::Journal(_) => None,
        }
    }
}

fn refusal(error: journal::AppendError) -> Error {
    log::warn!("a change was refused by the journal: {error:?}");
    match error {
        journal::AppendError::Closed => Error::Unavailable(1),
        _ => Error::InsufficientStorage(
            "the change cannot be made durable (is the disk full or read-only?); nothing was changed".into(),
        ),
    }
}
