//! What callers and the journal thread share, behind one short mutex: the
//! queue of records and snapshots, the preallocated bytes callers may still
//! promise, and how far durability has come, or failed.
//!
//! Invariants: the mutex is held only to move values in or out, never across
//! I/O; versions enter the queue strictly increasing; a record enters only
//! with its bytes debited from `available`, and never while a failed write
//! waits for its retry; waiters are woken after every batch, success or
//! failure, and when the thread ends.

use super::journal::{AppendError, Failed, WriteSnapshot};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub enum Item {
    Record(u64, Vec<u8>),
    Snapshot(u64, WriteSnapshot),
}

struct Inner {
    queue: Vec<Item>,
    /// Preallocated bytes not yet promised to a queued record.
    available: u64,
    last_queued: u64,
    durable: u64,
    /// Versions up to this one failed their last write (unless durable since).
    failed_through: u64,
    last_error: String,
    closing: bool,
    stopped: bool,
}

/// Counted by the thread, read for `/metrics`.
#[derive(Default)]
pub struct Counters {
    pub journal_bytes: AtomicU64,
    pub snapshot_bytes: AtomicU64,
    pub records_written: AtomicU64,
    pub fsyncs: AtomicU64,
    pub fsync_nanos: AtomicU64,
    pub write_failures: AtomicU64,
    pub snapshots_written: AtomicU64,
}

/// Kinds of I/O a test can make fail as if the disk were full.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    TopUp,
    Write,
    Snapshot,
}

pub struct Shared {
    inner: Mutex<Inner>,
    /// The thread waits here for work.
    work: Condvar,
    /// Waiters wait here for durability or reserve.
    progress: Condvar,
    durable: AtomicU64,
    pub counters: Counters,
    #[cfg(test)]
    pub faults: [std::sync::atomic::AtomicBool; 3],
}

impl Shared {
    pub fn new(last_version: u64, available: u64) -> Shared {
        let inner = Inner {
            queue: Vec::new(),
            available,
            last_queued: last_version,
            durable: last_version,
            failed_through: 0,
            last_error: String::new(),
            closing: false,
            stopped: false,
        };
        Shared {
            inner: Mutex::new(inner),
            work: Condvar::new(),
            progress: Condvar::new(),
            durable: AtomicU64::new(last_version),
            counters: Counters::default(),
            #[cfg(test)]
            faults: Default::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a record that takes `needed` bytes on disk, or says why not.
    pub fn push_record(
        &self,
        version: u64,
        record: Vec<u8>,
        needed: u64,
    ) -> Result<(), AppendError> {
        let mut inner = self.lock();
        let (last, available) = (inner.last_queued, inner.available);
        if inner.closing || inner.stopped {
            return Err(AppendError::Closed);
        } else if version <= last {
            return Err(AppendError::NotIncreasing { version, last });
        } else if available < needed {
            return Err(AppendError::Full { needed, available });
        } else if inner.failed_through > inner.durable {
            let reason = inner.last_error.clone();
            return Err(AppendError::Unwritable { reason });
        }
        inner.available -= needed;
        self.push(inner, version, Item::Record(version, record));
        Ok(())
    }

    /// Queues a snapshot at `version`; Err(last queued version) if that is
    /// newer, or the journal is closing.
    pub fn push_snapshot(&self, version: u64, snapshot: WriteSnapshot) -> Result<(), u64> {
        let inner = self.lock();
        if inner.closing || version < inner.last_queued {
            return Err(inner.last_queued);
        }
        self.push(inner, version, Item::Snapshot(version, snapshot));
        Ok(())
    }

    fn push(&self, mut inner: MutexGuard<'_, Inner>, version: u64, item: Item) {
        let idle = inner.queue.is_empty();
        inner.last_queued = version;
        inner.queue.push(item);
        drop(inner);
        if idle {
            self.work.notify_one();
        }
    }

    pub fn wait_durable(&self, version: u64) -> Result<(), Failed> {
        let mut inner = self.lock();
        loop {
            if inner.durable >= version {
                return Ok(());
            }
            if let Some(reason) = failure(&inner, version) {
                return Err(Failed { version, reason });
            }
            inner = self
                .progress
                .wait(inner)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    pub fn durable_version(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    pub fn wait_durable_past(&self, seen: u64, timeout: Duration) -> u64 {
        let still = |inner: &mut Inner| inner.durable <= seen && !inner.stopped;
        let waited = self
            .progress
            .wait_timeout_while(self.lock(), timeout, still);
        waited.unwrap_or_else(PoisonError::into_inner).0.durable
    }

    /// Later appends are refused; the thread writes what is queued and ends.
    pub fn close(&self) {
        self.lock().closing = true;
        self.work.notify_all();
    }

    /// Everything queued, waiting up to `timeout` (forever if None) for some;
    /// and whether the journal is closing.
    pub fn next_batch(&self, timeout: Option<Duration>) -> (Vec<Item>, bool) {
        let idle = |inner: &mut Inner| inner.queue.is_empty() && !inner.closing;
        let mut inner = match timeout {
            None => self.work.wait_while(self.lock(), idle),
            Some(timeout) => {
                let waited = self.work.wait_timeout_while(self.lock(), timeout, idle);
                waited
                    .map(|(inner, _)| inner)
                    .map_err(|p| PoisonError::new(p.into_inner().0))
            }
        }
        .unwrap_or_else(PoisonError::into_inner);
        (std::mem::take(&mut inner.queue), inner.closing)
    }

    pub fn available(&self) -> u64 {
        self.lock().available
    }

    /// The thread preallocated `bytes` more.
    pub fn credit(&self, bytes: u64) {
        self.lock().available += bytes;
        self.progress.notify_all();
    }

    pub fn mark_durable(&self, version: u64) {
        self.lock().durable = version;
        self.durable.store(version, Ordering::Release);
        self.progress.notify_all();
    }

    pub fn mark_failed(&self, version: u64, error: &io::Error) {
        let mut inner = self.lock();
        inner.failed_through = version;
        inner.last_error = error.to_string();
        drop(inner);
        self.progress.notify_all();
    }

    pub fn mark_stopped(&self) {
        self.lock().stopped = true;
        self.progress.notify_all();
    }

    /// In test builds, fails as if the disk were full when the test says so.
    pub fn fault(&self, kind: Fault) -> io::Result<()> {
        #[cfg(test)]
        if self.faults[kind as usize].load(Ordering::Relaxed) {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let _ = kind;
        Ok(())
    }

    /// Waits until `available` reaches `bytes`; false after `timeout`.
    #[cfg(test)]
    pub fn wait_for_reserve(&self, bytes: u64, timeout: Duration) -> bool {
        let short = |inner: &mut Inner| inner.available < bytes;
        let waited = self
            .progress
            .wait_timeout_while(self.lock(), timeout, short);
        waited.unwrap_or_else(PoisonError::into_inner).0.available >= bytes
    }
}

/// Why `version` will not become durable now, if it will not.
fn failure(inner: &Inner, version: u64) -> Option<String> {
    if version > inner.last_queued {
        Some(format!("version {version} was never appended"))
    } else if inner.failed_through >= version {
        Some(inner.last_error.clone())
    } else if inner.stopped {
        Some("the journal is closed".to_string())
    } else {
        None
    }
}
