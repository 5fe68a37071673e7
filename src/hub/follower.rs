//! The hub following the log in Redis: the follower thread, catching up
//! from a version, reading the state anew from the snapshot, and what to
//! do when the log went back. `replica.rs` writes to the log; this file
//! reads it.
//!
//! Invariants: records are applied in log order only (one applies when
//! its base is the state's version); every path here holds the instance's
//! Redis link while it reads and applies, and takes the hub lock only
//! after it, so no record slips between a writer's decision and its
//! append; audit lines of records read from the log were written by the
//! instance that made them.

use super::{Committed, Hub, Inner, Op, SERVER, durable};
use crate::core::change::Change;
use crate::core::state::State;
use crate::store::redis::{Appended, Link, Record};
use serde_json::Value;
use std::io;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Records read from the log at once.
const READ_BATCH: usize = 128;

impl Hub {
    /// Reads the state anew: the snapshot, then every record after it. The
    /// registry is emptied (streams end and reconnect, resuming or getting
    /// the full state) and waiting agents look again.
    pub(super) fn reload(&self, link: &mut Link<'_>) -> io::Result<()> {
        let mut tries = 0;
        let (state, read) = loop {
            tries += 1;
            match read_state(link)? {
                Some(read) => break read,
                // The log was trimmed past the snapshot just read: a newer
                // one has landed meanwhile.
                None if tries < 3 => continue,
                None => return Err(io::Error::other("the log does not follow its snapshot")),
            }
        };
        let replica = self.store.shared().expect("only with redis");
        replica
            .snapshot_version
            .store(read.snapshot_version, Ordering::Release);
        replica
            .snapshot_bytes
            .store(read.snapshot_bytes, Ordering::Release);
        replica.log_bytes.store(read.log_bytes, Ordering::Release);
        replica.reloads.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        inner.state = state;
        self.stale_batch(&mut inner);
        inner.registry.clear();
        for waiters in inner.waiting.values() {
            waiters.notify_all();
        }
        Ok(())
    }

    /// Applies every record the log has after this instance's version.
    pub(super) fn catch_up(&self, link: &mut Link<'_>) -> io::Result<()> {
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
        let record = Record {
            base,
            version,
            bytes: durable::encode(&restarted),
        };
        if link.append(&[record])? == Appended::Done {
            let op = Op {
                by: SERVER,
                now: self.clock.now(),
            };
            let mut inner = self.lock();
            let committed = inner.apply_all(restarted, &op, false);
            self.stale_batch(&mut inner);
            drop(inner);
            self.announce(committed);
        }
        Ok(())
    }

    /// Applies records in log order under the hub lock, skipping those it
    /// already has; stops at a gap. Audit lines were written by the
    /// instance that made each change.
    pub(super) fn apply_records(&self, records: &[Record]) -> io::Result<()> {
        let mut committed = Committed::default();
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
            inner.batch.follow(&changes);
            // The instance that took a submit notifies of it; the others do not.
            let applied = inner.apply_all(changes, &op, false);
            if let Some(replica) = self.store.shared() {
                replica.applied.fetch_add(1, Ordering::Relaxed);
                replica.grew(record.bytes.len());
            }
            committed.recorded.extend(applied.recorded);
            committed.resolved.extend(applied.resolved);
            if let Some(at) = applied.deadline {
                committed.deadline_at(at);
            }
            committed.deliveries.append(applied.deliveries);
        }
        drop(inner);
        if let Some(replica) = self.store.shared() {
            replica.settled.notify_all();
        }
        self.tell_observer(&mut committed);
        self.announce(committed);
        Ok(())
    }

    /// The shown state moved by other records than this instance's in
    /// flight: each of those is decided again (`batch.rs`).
    fn stale_batch(&self, inner: &mut Inner) {
        if let Some(replica) = self.store.shared() {
            inner.batch.reset();
            replica.settled.notify_all();
        }
    }

    /// A record published on the channel: applied when it follows this
    /// instance's version, else the log is read from there.
    fn receive(&self, link: &mut Link<'_>, record: Record) -> io::Result<()> {
        let (version, busy) = {
            let inner = self.lock();
            (inner.state.version(), inner.batch.busy())
        };
        // While this instance has records in flight, its leader's append
        // finds the log moved, brings this record back and applies it, and
        // the instance gets the next turn (store/redis.rs, APPEND); applied
        // here, it would make them stale without that turn, and a busy
        // instance could be starved by the others.
        if record.version <= version || busy {
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
        let Some(replica) = self.store.shared() else {
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
                    // This instance's own records come back too: skipped
                    // without waiting for the link its writers hold.
                    Ok(Some(record)) if record.version <= self.lock().state.version() => Ok(()),
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

/// What reading the state from Redis found besides the state.
struct Read {
    snapshot_version: u64,
    snapshot_bytes: u64,
    /// The bytes of the records after the snapshot.
    log_bytes: u64,
}

/// The state in Redis, from its snapshot and every record after it;
/// `None` when the log does not follow the snapshot (trimmed meanwhile).
fn read_state(link: &mut Link<'_>) -> io::Result<Option<(State, Read)>> {
    let mut read = Read {
        snapshot_version: 0,
        snapshot_bytes: 0,
        log_bytes: 0,
    };
    let mut state = match link.snapshot()? {
        None => State::default(),
        Some((version, bytes)) => {
            read.snapshot_bytes = bytes.len() as u64;
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
    read.snapshot_version = state.version();
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
                durable::say_if_refused(&state, change, record.version);
                state.apply(change);
            }
            read.log_bytes += record.bytes.len() as u64;
        }
        if tail.records.len() < READ_BATCH {
            if tail.version > state.version() {
                return Ok(None);
            }
            return Ok(Some((state, read)));
        }
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
