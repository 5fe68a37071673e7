//! The hub's side of the Redis store: one state machine replicated by a
//! shared, totally ordered log (`store/redis.rs`).
//!
//! Every instance holds the whole `State` in memory and applies the same
//! records in the same order with the same `State::apply`, so the queue
//! rules and the order subscribers see hold across instances; nothing of
//! the queue rules lives in Redis.
//!
//! Invariants:
//! - An operation decides under the hub lock from the state at version V,
//!   then (without the hub lock, holding the instance's one Redis link)
//!   appends its changes as one record if the log is still at V. Only once
//!   Redis took it are the changes applied and published, and the request
//!   answered: nothing is shown or acknowledged that Redis does not hold.
//!   When the log has moved on, the instance reads what it missed, applies
//!   it, and decides again on the fresher state.
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
//! - Time-driven changes (expiry, retention) are decided by the holder of
//!   a lease; compare-and-append keeps them right even when two think they
//!   hold it. The holder also writes a snapshot every `SNAPSHOT_EVERY`
//!   versions, after which Redis trims the log before the previous one.

use super::{Hub, Inner, Op, SERVER, durable};
use crate::core::change::Change;
use crate::core::state::{Limits, State};
use crate::error::{Error, Result};
use crate::store::audit_log::AuditLog;
use crate::store::redis::{Appended, Link, Record, RedisLog};
use crate::store::resp::Target;
use serde_json::Value;
use std::io;
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a lease lasts unless renewed; its holder renews it at least
/// every second (the expiry thread's longest wait).
const LEASE_TTL: Duration = Duration::from_secs(5);
/// How often an instance without the lease checks whether it is free.
pub const LEASE_CHECK: Duration = Duration::from_secs(1);
/// Versions between snapshots.
const SNAPSHOT_EVERY: u64 = 1000;
/// Records read from the log at once.
const READ_BATCH: usize = 128;
/// Appends tried before a busy log refuses an operation.
const MAX_TRIES: usize = 64;

/// The Redis store's counters, for `/metrics`.
#[derive(Debug, Default, PartialEq)]
pub struct StoreStats {
    pub up: bool,
    pub appends: u64,
    pub conflicts: u64,
    pub applied: u64,
    pub reloads: u64,
}

pub struct Replica {
    log: RedisLog,
    appends: AtomicU64,
    conflicts: AtomicU64,
    applied: AtomicU64,
    reloads: AtomicU64,
    /// This instance, as the lease names it.
    holder: String,
    /// The newest snapshot this instance wrote or started from.
    snapshot_version: AtomicU64,
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
    /// `SNAPSHOT_EVERY` versions since the last; the JSON is made under the
    /// hub lock, which is released before the write.
    pub(super) fn snapshot_if_grown(&self, inner: MutexGuard<'_, Inner>) {
        let version = inner.state.version();
        if version < self.snapshot_version.load(Ordering::Acquire) + SNAPSHOT_EVERY {
            return;
        }
        let bytes = serde_json::to_vec(&inner.state.to_snapshot()).expect("JSON serializes");
        drop(inner);
        match self.log.link().put_snapshot(version, &bytes) {
            Ok(_) => self.snapshot_version.store(version, Ordering::Release),
            Err(error) => log::warn!("cannot write a snapshot to redis: {error}"),
        }
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
        let mut hub = Hub::with_state(limits, subscriber_buffer, State::default(), None, audit_log);
        hub.replica = Some(Replica {
            log: RedisLog::new(target.clone()),
            holder: format!("{}-{}", std::process::id(), super::ids::random_hex(16)),
            appends: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            snapshot_version: AtomicU64::new(0),
        });
        let replica = hub.replica.as_ref().expect("set above");
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
        let replica = self.replica.as_ref()?;
        Some((replica.target().to_string(), replica.status()))
    }

    /// The Redis store's counters; `None` with a journal (or in memory).
    pub fn store_stats(&self) -> Option<StoreStats> {
        let replica = self.replica.as_ref()?;
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Some(StoreStats {
            up: replica.status().is_ok(),
            appends: count(&replica.appends),
            conflicts: count(&replica.conflicts),
            applied: count(&replica.applied),
            reloads: count(&replica.reloads),
        })
    }

    pub fn is_replicated(&self) -> bool {
        self.replica.is_some()
    }

    /// Reads the state anew: the snapshot, then every record after it. The
    /// registry is emptied (streams end and reconnect, resuming or getting
    /// the full state) and waiting agents look again.
    fn reload(&self, link: &mut Link<'_>) -> io::Result<()> {
        let mut tries = 0;
        let (state, snapshot) = loop {
            tries += 1;
            match read_state(link)? {
                Some(read) => break read,
                // The log was trimmed past the snapshot just read: a newer
                // one has landed meanwhile.
                None if tries < 3 => continue,
                None => return Err(io::Error::other("the log does not follow its snapshot")),
            }
        };
        let replica = self.replica.as_ref().expect("only with redis");
        replica.snapshot_version.store(snapshot, Ordering::Release);
        replica.reloads.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        inner.state = state;
        inner.registry.clear();
        for waiters in inner.waiting.values() {
            waiters.notify_all();
        }
        Ok(())
    }

    /// Applies every record the log has after this instance's version.
    fn catch_up(&self, link: &mut Link<'_>) -> io::Result<()> {
        loop {
            let from = self.lock().state.version();
            let tail = link.tail(from, READ_BATCH)?;
            if tail.version < from {
                return self.went_back(link, tail.version, from);
            }
            let follows = tail.records.first().is_none_or(|r| r.base == from);
            if !follows || (tail.records.is_empty() && tail.version > from) {
                log::info!("the log in redis no longer holds version {from}: reading its snapshot");
                return self.reload(link);
            }
            let full = tail.records.len() == READ_BATCH;
            self.apply_records(&tail.records)?;
            if !full {
                return Ok(());
            }
        }
    }

    /// Redis is at `theirs`, behind this instance's `ours`: it lost records
    /// it had acknowledged. Reads the state again and moves versions past
    /// any this instance may have shown.
    fn went_back(&self, link: &mut Link<'_>, theirs: u64, ours: u64) -> io::Result<()> {
        log::error!(
            "the log in redis is at version {theirs}, behind this instance's {ours}: redis lost \
             acknowledged changes (appendfsync everysec and a crash?); reading it again"
        );
        self.reload(link)?;
        let base = self.lock().state.version();
        if base > ours {
            // Another instance has moved the log past ours already.
            return Ok(());
        }
        let restarted = vec![Change::Restarted {
            skip: durable::RESTART_SKIP,
        }];
        let version = base + durable::RESTART_SKIP;
        if link.append(base, version, &durable::encode(&restarted))? == Appended::Done {
            let op = Op {
                by: SERVER,
                now: self.clock.now(),
            };
            let committed = self.lock().apply_all(restarted, &op);
            self.announce(committed);
        }
        Ok(())
    }

    /// Applies records in log order under the hub lock, skipping those it
    /// already has; stops at a gap. Audit lines were written by the
    /// instance that made each change.
    fn apply_records(&self, records: &[Record]) -> io::Result<()> {
        let mut committed = super::Committed::default();
        let op = Op {
            by: SERVER,
            now: self.clock.now(),
        };
        let mut inner = self.lock();
        for record in records {
            let version = inner.state.version();
            if record.version <= version {
                continue;
            }
            if record.base != version {
                break;
            }
            let changes = durable::decode(&record.bytes).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the record of version {} is not a list of changes",
                        record.version
                    ),
                )
            })?;
            if durable::version_after(&inner.state, &changes) != record.version {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the record of version {} does not reach it", record.version),
                ));
            }
            let applied = inner.apply_all(changes, &op);
            if let Some(replica) = &self.replica {
                replica.applied.fetch_add(1, Ordering::Relaxed);
            }
            committed.recorded.extend(applied.recorded);
            committed.deadline |= applied.deadline;
        }
        drop(inner);
        self.announce(committed);
        Ok(())
    }

    /// A record published on the channel: applied when it follows this
    /// instance's version, else the log is read from there.
    fn receive(&self, link: &mut Link<'_>, record: Record) -> io::Result<()> {
        let version = self.lock().state.version();
        if record.version <= version {
            return Ok(());
        }
        if record.base == version {
            return self.apply_records(&[record]);
        }
        self.catch_up(link)
    }

    /// The follower thread: subscribes to the log's channel, catches up,
    /// then applies every record published, until the hub closes. When
    /// Redis goes away it tries again, at most a second apart.
    pub fn follow(&self) {
        let Some(replica) = &self.replica else {
            return;
        };
        let mut backoff = Duration::from_millis(50);
        while !self.is_closing() {
            let followed = replica.log.follow().and_then(|follower| {
                self.catch_up(&mut replica.log.link())?;
                Ok(follower)
            });
            let mut follower = match followed {
                Ok(follower) => follower,
                Err(error) => {
                    replica.log.down(&error);
                    self.pause(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            backoff = Duration::from_millis(50);
            while !self.is_closing() {
                let received = follower.next(Duration::from_millis(250));
                let result = match received {
                    Ok(None) => Ok(()),
                    Ok(Some(record)) => self.receive(&mut replica.log.link(), record),
                    Err(error) => Err(error),
                };
                if let Err(error) = result {
                    replica.log.down(&error);
                    break;
                }
            }
        }
    }

    /// Waits `pause`, or less when the hub closes.
    fn pause(&self, pause: Duration) {
        let inner = self.lock();
        if !self.is_closing() {
            let _unused = self.expiry_changed.wait_timeout(inner, pause);
        }
    }
}

/// The state in Redis, from its snapshot and every record after it, and
/// the snapshot's version; `None` when the log does not follow the
/// snapshot (trimmed meanwhile).
fn read_state(link: &mut Link<'_>) -> io::Result<Option<(State, u64)>> {
    let mut state = match link.snapshot()? {
        None => State::default(),
        Some((version, bytes)) => {
            let value: Value = serde_json::from_slice(&bytes)
                .map_err(|e| invalid(format!("the snapshot in redis is not JSON: {e}")))?;
            let state = State::from_snapshot(&value)
                .ok_or_else(|| invalid("the snapshot in redis does not describe a state".into()))?;
            if state.version() != version {
                return Err(invalid(format!(
                    "the snapshot in redis says version {} inside and {version} outside",
                    state.version()
                )));
            }
            state
        }
    };
    let snapshot = state.version();
    loop {
        let tail = link.tail(state.version(), READ_BATCH)?;
        for record in &tail.records {
            if record.version <= state.version() {
                continue;
            }
            if record.base != state.version() {
                return Ok(None);
            }
            let changes = durable::decode(&record.bytes).ok_or_else(|| {
                invalid(format!(
                    "the record of version {} is not a list of changes",
                    record.version
                ))
            })?;
            for change in &changes {
                state.apply(change);
            }
        }
        if tail.records.len() < READ_BATCH {
            if tail.version > state.version() {
                return Ok(None);
            }
            return Ok(Some((state, snapshot)));
        }
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// One operation on the shared log: decide under the hub lock, append if
/// the log has not moved, then apply, publish and answer; when it has
/// moved, catch up and decide again.
pub(super) fn commit<R>(
    hub: &Hub,
    replica: &Replica,
    op: Op<'_>,
    mut decide: impl FnMut(&Inner) -> Result<(Vec<Change>, R)>,
) -> Result<R> {
    let mut link = replica.log.link();
    let mut caught_up = false;
    for _ in 0..MAX_TRIES {
        let inner = hub.lock();
        let decision = decide(&inner);
        // A refusal, or nothing to change (an answer to an id not pending),
        // may only mean that this instance has not yet applied what another
        // did a moment ago: read the log once and decide again.
        let negative = decision
            .as_ref()
            .map_or(true, |(changes, _)| changes.is_empty());
        if negative && !caught_up {
            caught_up = true;
            drop(inner);
            match hub.catch_up(&mut link) {
                Ok(()) => continue,
                Err(error) => replica.log.down(&error),
            }
            return decision.map(|(_, decided)| decided);
        }
        let (mut changes, decided) = decision?;
        if let Some(room) = inner.state.room_for_outcomes(&hub.limits, &changes) {
            changes.insert(0, room);
        }
        if changes.is_empty() {
            return Ok(decided);
        }
        let base = inner.state.version();
        let version = durable::version_after(&inner.state, &changes);
        drop(inner);
        let appended = link.append(base, version, &durable::encode(&changes));
        match appended.map_err(|error| unreachable(replica, &error))? {
            Appended::Done => {
                replica.appends.fetch_add(1, Ordering::Relaxed);
                let mut inner = hub.lock();
                debug_assert_eq!(
                    inner.state.version(),
                    base,
                    "the link holds off other appliers"
                );
                let mut committed = inner.apply_all(changes, &op);
                drop(inner);
                hub.audit(std::mem::take(&mut committed.audit));
                hub.announce(committed);
                return Ok(decided);
            }
            Appended::Behind(_) => {
                replica.conflicts.fetch_add(1, Ordering::Relaxed);
                caught_up = true;
                hub.catch_up(&mut link)
                    .map_err(|error| unreachable(replica, &error))?;
            }
        }
    }
    Err(Error::StoreUnavailable(
        "the shared log is too busy to take this change now; nothing was changed".into(),
    ))
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

fn unreachable(replica: &Replica, error: &io::Error) -> Error {
    log::warn!("a change was refused: redis {}: {error}", replica.target());
    Error::StoreUnavailable(format!(
        "the store (redis) cannot be reached ({error}); the change was not made"
    ))
}
