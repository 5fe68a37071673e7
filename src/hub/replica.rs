//! The hub's side of the Redis store: one state machine replicated by a
//! shared, totally ordered log (`store/redis.rs`). This file opens it and
//! appends to it; `follower.rs` reads it.
//!
//! Every instance holds the whole `State` in memory and applies the same
//! records in the same order with the same `State::apply`, so the queue
//! rules and the order subscribers see hold across instances; nothing of
//! the queue rules lives in Redis.
//!
//! Invariants:
//! - An operation decides under the hub lock from the state at version V
//!   (the shown state, or while this instance has records in flight the
//!   state ahead of it, `batch.rs`), and queues its changes as one record.
//!   A leader (the first waiting operation to find none) takes the
//!   instance's one Redis link and every record queued, and (without the
//!   hub lock) appends them in one script call if the log is still at the
//!   first one's base. Only once Redis took them are the changes applied
//!   and published, in order, and each request answered by its own thread:
//!   nothing is shown or acknowledged that Redis does not hold. When the
//!   log has moved on, the instance reads what it missed, applies it, and
//!   every operation of the batch and behind it decides again; the next
//!   leader waits for all of them (`GATHER` at most), so the batch goes
//!   again whole in the turn its loss gave. A leader held back by another
//!   instance's turn waits for that append (`XREAD BLOCK`, no polling) and
//!   takes what it missed from it.
//! - Records reach the state only in log order: a record applies when its
//!   base is the state's version; one from further ahead makes the
//!   instance read the log from its own version first. The link's mutex is
//!   taken before the hub lock, never after, by writers and the follower
//!   alike, so no record can slip between a decision and its append.
//! - Redis unreachable: every change is refused with 503 before anything is
//!   applied; streams stay open on the state as it was, and the follower
//!   reconnects, reads what it missed and publishes it.
//! - A log that went back (Redis lost acknowledged records: `appendfsync
//!   everysec` and a crash) is read again from its snapshot and versions
//!   skip ahead (`Restarted`), so an id a watcher saw never names another
//!   change; streams end, and resume or get the full state.
//! - Audit lines go to the shared stream (`askgate:audit`) through a
//!   bounded queue and a thread with its own connection
//!   (`store/redis_audit.rs`): frames and answers never wait for them.
//! - Time-driven changes (expiry, retention) are decided by the holder of
//!   a lease; compare-and-append keeps them right even when two think they
//!   hold it. The holder also writes a snapshot once the log has grown by
//!   `SNAPSHOT_EVERY` versions and by as many bytes as the last snapshot,
//!   after which Redis trims the log before the previous one: Redis holds
//!   about three times the state at most.

use super::batch::{Pending, Settled};
use super::store::Store;
use super::{Committed, Hub, Inner, Op, durable};
use crate::core::change::Change;
use crate::core::state::{Limits, State};
use crate::error::{Error, Result};
use crate::store::audit_log::AuditLog;
use crate::store::redis::{AppendError, Appended, Link, Record, RedisLog};
use crate::store::redis_audit::AuditStream;
use crate::store::resp::Target;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a lease lasts unless renewed; its holder renews it at least
/// every second (the expiry thread's longest wait).
const LEASE_TTL: Duration = Duration::from_secs(5);
/// How often an instance without the lease checks whether it is free.
pub const LEASE_CHECK: Duration = Duration::from_secs(1);
/// Versions between snapshots.
const SNAPSHOT_EVERY: u64 = 1000;
/// Appends tried before a busy log refuses an operation.
const MAX_TRIES: usize = 64;
/// How long an operation waits, at most, through other instances' turns.
const TURNS_FOR: Duration = Duration::from_secs(2);
/// How long a leader waits, at most, for the operations of a batch that
/// lost the race to decide again (they are awake and need the hub lock
/// only: this bounds a stalled thread, not a normal wait).
const GATHER: Duration = Duration::from_millis(2);

/// The Redis store's counters, for `/metrics`.
#[derive(Debug, Default, PartialEq)]
pub struct StoreStats {
    pub up: bool,
    pub appends: u64,
    pub batches: u64,
    pub ahead_made: u64,
    pub conflicts: u64,
    pub applied: u64,
    pub reloads: u64,
}

pub struct Replica {
    pub(super) log: RedisLog,
    appends: AtomicU64,
    batches: AtomicU64,
    conflicts: AtomicU64,
    pub(super) applied: AtomicU64,
    pub(super) reloads: AtomicU64,
    /// This instance, as the lease names it.
    holder: String,
    /// The newest snapshot this instance wrote or started from.
    pub(super) snapshot_version: AtomicU64,
    /// Its size, and the bytes of the records after it.
    pub(super) snapshot_bytes: AtomicU64,
    pub(super) log_bytes: AtomicU64,
    /// The shared audit stream's writer, apart from the link.
    pub(super) audit: AuditStream,
    /// Signalled, with the hub lock, when records in flight are settled or
    /// the leader is done (`batch.rs`).
    pub(super) settled: Condvar,
    /// Signalled, with the hub lock, when the last operation owed `Again`
    /// has decided again (`batch.rs`).
    pub(super) gathered: Condvar,
}

impl Replica {
    /// Takes or renews the lease on time-driven changes.
    pub fn hold_lease(&self) -> bool {
        self.log
            .link()
            .hold_lease(&self.holder, LEASE_TTL)
            .unwrap_or(false)
    }

    /// Writes a snapshot to Redis once the log has grown by
    /// `SNAPSHOT_EVERY` versions and by the last snapshot's size since it;
    /// the JSON is made under the hub lock, which is released before the
    /// write.
    pub(super) fn snapshot_if_grown(&self, inner: MutexGuard<'_, Inner>) {
        let version = inner.state.version();
        let versions = version.saturating_sub(self.snapshot_version.load(Ordering::Acquire));
        let bytes = self.log_bytes.load(Ordering::Acquire);
        if versions < SNAPSHOT_EVERY || bytes < self.snapshot_bytes.load(Ordering::Acquire) {
            return;
        }
        let snapshot = serde_json::to_vec(&inner.state.to_snapshot()).expect("JSON serializes");
        drop(inner);
        match self.log.link().put_snapshot(version, &snapshot) {
            Ok(_) => {
                self.snapshot_version.store(version, Ordering::Release);
                self.snapshot_bytes
                    .store(snapshot.len() as u64, Ordering::Release);
                self.log_bytes.store(0, Ordering::Release);
            }
            Err(error) => log::warn!("cannot write a snapshot to redis: {error}"),
        }
    }

    /// Counts a record into the log's growth since the last snapshot.
    pub(super) fn grew(&self, record_bytes: usize) {
        self.log_bytes
            .fetch_add(record_bytes as u64, Ordering::Relaxed);
    }

    /// Whether Redis answered last time, and if not, why.
    pub fn status(&self) -> std::result::Result<(), String> {
        self.log.status()
    }

    pub fn target(&self) -> &Target {
        self.log.target()
    }
}

impl Hub {
    /// A hub on the log in Redis: the state read from its snapshot and the
    /// records after it. Fails when Redis cannot be reached.
    pub fn open_replicated(
        limits: Limits,
        subscriber_buffer: usize,
        target: Target,
        audit_log: Option<AuditLog>,
    ) -> std::result::Result<Hub, String> {
        let started = Instant::now();
        let replica = Replica {
            log: RedisLog::new(target.clone()),
            holder: format!("{}-{}", std::process::id(), super::ids::random_hex(16)),
            appends: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            snapshot_version: AtomicU64::new(0),
            snapshot_bytes: AtomicU64::new(0),
            log_bytes: AtomicU64::new(0),
            audit: AuditStream::start(target.clone())
                .map_err(|error| format!("cannot start the audit stream's thread: {error}"))?,
            settled: Condvar::new(),
            gathered: Condvar::new(),
        };
        let store = Store::Shared(Box::new(replica));
        let hub = Hub::with_state(
            limits,
            subscriber_buffer,
            State::default(),
            store,
            audit_log,
        );
        let replica = hub.store.shared().expect("set above");
        hub.reload(&mut replica.log.link())
            .map_err(|error| format!("cannot read the state from {target}: {error}"))?;
        replica.reloads.store(0, Ordering::Relaxed);
        let inner = hub.lock();
        log::info!(
            "state from {target}: version {}, {} pending prompts, {} rules, in {} ms",
            inner.state.version(),
            inner.state.totals().0.values().sum::<usize>(),
            inner.state.rule_count(),
            started.elapsed().as_millis()
        );
        drop(inner);
        Ok(hub)
    }

    /// The store's state for `/healthz`: `None` with a journal (or in
    /// memory), else where Redis is and whether it answered last time.
    pub fn store_status(&self) -> Option<(String, std::result::Result<(), String>)> {
        let replica = self.store.shared()?;
        Some((replica.target().to_string(), replica.status()))
    }

    /// The Redis store's counters; `None` with a journal (or in memory).
    pub fn store_stats(&self) -> Option<StoreStats> {
        let replica = self.store.shared()?;
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Some(StoreStats {
            up: replica.status().is_ok(),
            appends: count(&replica.appends),
            batches: count(&replica.batches),
            ahead_made: self.lock().batch.made,
            conflicts: count(&replica.conflicts),
            applied: count(&replica.applied),
            reloads: count(&replica.reloads),
        })
    }

    /// With Redis, the key named `name` that every instance shares
    /// (`server_key.rs`): `candidate` (hex) when none was kept yet, else
    /// the one kept; `None` without Redis.
    pub fn shared_key(&self, name: &str, candidate: &str) -> Option<io::Result<String>> {
        let replica = self.store.shared()?;
        let kept = replica.log.link().set_if_absent(name, candidate.as_bytes());
        Some(kept.and_then(|bytes| String::from_utf8(bytes).map_err(io::Error::other)))
    }

    pub fn is_replicated(&self) -> bool {
        self.store.shared().is_some()
    }
}

/// One operation on the shared log: decide under the hub lock (on the
/// state ahead of the shown one when this instance has records in flight),
/// queue its record, and wait until a leader's batch takes it (leading one
/// when none does); once Redis holds it, it is applied, and this thread
/// publishes and answers. When the log moved, catch up and decide again.
pub(super) fn keep<R>(
    hub: &Hub,
    replica: &Replica,
    op: Op<'_>,
    mut decide: impl FnMut(&Inner) -> Result<(Vec<Change>, R)>,
) -> Result<(Committed, R)> {
    let mut caught_up = false;
    // Owed `Again`: the leader waits for this operation to decide again.
    let mut returning = false;
    for _ in 0..MAX_TRIES {
        let mut inner = hub.lock();
        let decided = decide_ahead(hub, &mut inner, &mut decide);
        if std::mem::take(&mut returning) {
            came_back(replica, &mut inner);
        }
        // A refusal, or nothing to change (an answer to an id not pending),
        // may only mean that this instance has not yet applied what another
        // did a moment ago: read the log once and decide again.
        let negative = decided
            .as_ref()
            .map_or(true, |(pending, _)| pending.is_none());
        if negative && !caught_up {
            caught_up = true;
            drop(inner);
            match hub.catch_up(&mut replica.log.link()) {
                Ok(()) => continue,
                Err(error) => replica.log.down(&error),
            }
            return decided.map(|(_, decided)| (Committed::default(), decided));
        }
        let (pending, decided) = decided?;
        let Some(pending) = pending else {
            return Ok((Committed::default(), decided));
        };
        let ticket = inner.batch.queue(Pending {
            by: op.by.to_string(),
            now: op.now,
            ..pending
        });
        match settled(hub, replica, inner, ticket) {
            Settled::Done(committed) => return Ok((committed, decided)),
            Settled::Again => (caught_up, returning) = (true, true),
            Settled::Failed(error) => return Err(error),
        }
    }
    if returning {
        came_back(replica, &mut hub.lock());
    }
    Err(Error::StoreUnavailable(
        "the shared log is too busy to take this change now; nothing was changed".into(),
    ))
}

/// An operation owed `Again` has decided again; the leader waiting for
/// the last of them is woken.
fn came_back(replica: &Replica, inner: &mut Inner) {
    if inner.batch.came_back() {
        replica.gathered.notify_all();
    }
}

/// Decides on the state the next record follows (the ahead one while
/// records are in flight, swapped in for the decision), and when there is
/// something to change, its record, applied to the ahead state.
fn decide_ahead<R>(
    hub: &Hub,
    inner: &mut Inner,
    decide: &mut impl FnMut(&Inner) -> Result<(Vec<Change>, R)>,
) -> Result<(Option<Pending>, R)> {
    let ahead = inner.batch.take_ahead(&inner.state);
    let on_ahead = ahead.is_some();
    let swapped = Swapped::new(inner, ahead);
    let inner = &mut *swapped.inner;
    let (mut changes, decided) = decide(inner)?;
    if let Some(room) = inner.state.room_for_outcomes(&hub.limits, &changes) {
        changes.insert(0, room);
    }
    if changes.is_empty() {
        return Ok((None, decided));
    }
    let base = inner.state.version();
    let version = durable::version_after(&inner.state, &changes);
    if on_ahead {
        for change in &changes {
            inner.state.apply(change);
        }
    }
    let pending = Pending {
        ticket: 0,
        base,
        version,
        bytes: durable::encode(&changes),
        changes,
        by: String::new(),
        now: 0.0,
    };
    Ok((Some(pending), decided))
}

/// The ahead state swapped into `Inner.state` for a decision, and back
/// (even if the decision panics: the lock is used poisoned).
struct Swapped<'a> {
    inner: &'a mut Inner,
    shown: Option<State>,
}

impl<'a> Swapped<'a> {
    fn new(inner: &'a mut Inner, ahead: Option<State>) -> Swapped<'a> {
        let shown = ahead.map(|ahead| std::mem::replace(&mut inner.state, ahead));
        Swapped { inner, shown }
    }
}

impl Drop for Swapped<'_> {
    fn drop(&mut self) {
        if let Some(shown) = self.shown.take() {
            let ahead = std::mem::replace(&mut self.inner.state, shown);
            self.inner.batch.keep_ahead(ahead);
        }
    }
}

/// Waits (on the replica's condvar, no sleep) until the record of `ticket`
/// is settled, leading a batch whenever no one does.
fn settled<'h>(
    hub: &'h Hub,
    replica: &Replica,
    mut inner: MutexGuard<'h, Inner>,
    ticket: u64,
) -> Settled {
    loop {
        if let Some(settled) = inner.batch.take_settled(ticket) {
            return settled;
        }
        if !inner.batch.leading {
            inner.batch.leading = true;
            drop(inner);
            lead(hub, replica);
            inner = hub.lock();
            continue;
        }
        inner = replica
            .settled
            .wait(inner)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// The leader: takes the link, then every record queued (up to the caps),
/// sends them in one script call, and applies them to the shown state in
/// order once Redis took them, holding the link until they are applied
/// (the follower takes it before the hub lock, so nothing slips in). Every
/// waiting operation is woken to take what it is owed.
fn lead(hub: &Hub, replica: &Replica) {
    let mut link = replica.log.link();
    let mut inner = gathered(replica, hub.lock());
    let shown = inner.state.version();
    let Some(records) = inner.batch.take_batch(shown) else {
        inner.batch.reset();
        return release(replica, inner);
    };
    drop(inner);
    if records.is_empty() {
        return release(replica, hub.lock());
    }
    let appended = send(&mut link, &records);
    match appended {
        Ok(Appended::Done) => {
            let appended = records.len() as u64;
            replica.appends.fetch_add(appended, Ordering::Relaxed);
            replica.batches.fetch_add(1, Ordering::Relaxed);
            let mut inner = hub.lock();
            let observing = hub.observing();
            for (pending, record) in inner.batch.sent().into_iter().zip(&records) {
                replica.grew(record.bytes.len());
                debug_assert_eq!(inner.state.version(), pending.base);
                let op = Op {
                    by: &pending.by,
                    now: pending.now,
                };
                let committed = inner.apply_all(pending.changes, &op, observing);
                inner.batch.settle(pending.ticket, Settled::Done(committed));
            }
            release(replica, inner);
        }
        Ok(Appended::Behind { missed, .. }) => {
            replica.conflicts.fetch_add(1, Ordering::Relaxed);
            // What the script brought back, when it follows; else (or when
            // there is more) the next try or a catch-up reads it.
            let base = records[0].base;
            let follows = missed.first().is_some_and(|record| record.base == base);
            let caught = match follows {
                true => hub.apply_records(&missed),
                false => hub.catch_up(&mut link),
            };
            let mut inner = hub.lock();
            match caught {
                Ok(()) => inner.batch.reset(),
                Err(error) => {
                    let error = unreachable(replica, &error);
                    inner.batch.fail(&error, &error);
                }
            }
            release(replica, inner);
        }
        Err(error) => {
            let not_made = match &error {
                AppendError::NotMade(error) | AppendError::Unknown(error) => {
                    unreachable(replica, error)
                }
            };
            let sent = refused(replica, error);
            let mut inner = hub.lock();
            inner.batch.fail(&sent, &not_made);
            release(replica, inner);
        }
    }
}

/// Waits (on the replica's condvar, `GATHER` at most) until every
/// operation of a batch that lost the race has decided again, so that it
/// goes again whole (`batch.rs`).
fn gathered<'h>(replica: &Replica, mut inner: MutexGuard<'h, Inner>) -> MutexGuard<'h, Inner> {
    let until = Instant::now() + GATHER;
    while inner.batch.returning() {
        let Some(left) = until.checked_duration_since(Instant::now()) else {
            break;
        };
        inner = replica
            .gathered
            .wait_timeout(inner, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    inner
}

/// Appends a batch, waiting through another instance's turn (the log has
/// not moved: store/redis.rs, APPEND) for `TURNS_FOR` at most: until that
/// instance appends (the batch lost, and what it missed came with the
/// wait: no second round trip to learn it) or its turn ends (ask again).
fn send(link: &mut Link<'_>, records: &[Record]) -> std::result::Result<Appended, AppendError> {
    let waiting_until = Instant::now() + TURNS_FOR;
    let base = records.first().map_or(0, |record| record.base);
    loop {
        match link.append(records)? {
            Appended::Behind { version, .. }
                if version == base && Instant::now() < waiting_until =>
            {
                let missed = link.wait_past(base).map_err(AppendError::NotMade)?;
                if let Some(last) = missed.last() {
                    let version = last.version;
                    return Ok(Appended::Behind { version, missed });
                }
            }
            appended => return Ok(appended),
        }
    }
}

/// The leader is done: another may lead, and every waiting operation looks
/// at what it is owed.
fn release(replica: &Replica, mut inner: MutexGuard<'_, Inner>) {
    inner.batch.leading = false;
    drop(inner);
    replica.settled.notify_all();
}

/// Applies whatever the log holds beyond this instance's version (for a
/// read that must not miss what another instance just did); when Redis
/// cannot be reached, the state stays as it is.
pub(super) fn sync(hub: &Hub, replica: &Replica) {
    let mut link = replica.log.link();
    if let Err(error) = hub.catch_up(&mut link) {
        replica.log.down(&error);
    }
}

/// A failed append as the client hears it: made or not, it is not
/// acknowledged.
fn refused(replica: &Replica, error: AppendError) -> Error {
    match error {
        AppendError::NotMade(error) => unreachable(replica, &error),
        AppendError::Unknown(error) => {
            log::warn!(
                "a change may or may not have reached redis {}: {error}",
                replica.target()
            );
            Error::StoreUnavailable(format!(
                "the store (redis) went away during the change ({error}); it was not acknowledged, \
                 and is made only if redis took it before"
            ))
        }
    }
}

fn unreachable(replica: &Replica, error: &io::Error) -> Error {
    log::warn!("a change was refused: redis {}: {error}", replica.target());
    Error::StoreUnavailable(format!(
        "the store (redis) cannot be reached ({error}); the change was not made"
    ))
}
