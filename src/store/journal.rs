//! The journal: opaque records, each tagged with its version, made durable
//! in order. `append` queues a record under the caller's lock without I/O;
//! one thread, "askgate-journal", writes everything queued with one write and
//! one fdatasync; `wait_durable` waits for that. `compact` swaps in a snapshot.
//!
//! Owns the data directory while open (an flock on `DIR/lock`). Invariants:
//! records reach the disk in call order with strictly increasing versions;
//! `append` succeeds only while preallocated space for the record is already
//! in the file and no failed write waits for its retry, so a full or
//! unwritable disk refuses a change before it is applied (only what was
//! queued when a write first fails learns of it after); the thread does I/O
//! holding no lock, and never takes one of the caller's; a version is durable
//! only after a sync that covers it.

pub use super::format::FORMAT;
use super::handoff::Shared;
use super::recover::{self, Found};
pub use super::recover::{Damage, OpenError, Records, Report, Snapshot, check};
use super::writer::{self, Writer};
use super::{disk, format};
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How much preallocated space `append` may use before the thread has
/// topped it up again; a record may take a quarter of it.
pub const DEFAULT_RESERVE_BYTES: u64 = 1 << 20;

#[derive(Clone, Debug)]
pub struct Options {
    pub reserve_bytes: u64,
    /// How soon a failed write or preallocation is tried again.
    pub retry_interval: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            reserve_bytes: DEFAULT_RESERVE_BYTES,
            retry_interval: Duration::from_secs(1),
        }
    }
}

/// What `open` read back: nothing held in memory but where to read it.
#[derive(Debug)]
pub struct Recovered {
    /// The snapshot: its version, and its payload to read as a stream.
    pub snapshot: Option<Snapshot>,
    /// The records after the snapshot, to read in order one at a time.
    pub records: Records,
    /// A warning to log: file, offset, bytes dropped.
    pub torn_tail: Option<String>,
    pub elapsed: Duration,
}

/// What a compaction writes: the snapshot's payload, streamed to `out` by
/// the journal thread with no lock of the caller's held.
pub type WriteSnapshot = Box<dyn FnOnce(&mut dyn io::Write) -> io::Result<()> + Send>;

/// Why `append` refused a record; the record is not queued.
#[derive(Clone, Debug, PartialEq)]
pub enum AppendError {
    /// Not enough preallocated space left (disk full, read-only, file-size
    /// limit): apply nothing and answer 507.
    Full {
        needed: u64,
        available: u64,
    },
    /// A write failed and is not yet retried with success (a read-only
    /// disk, an I/O error, a file-size limit): apply nothing and answer 507.
    Unwritable {
        reason: String,
    },
    TooLarge {
        bytes: usize,
        max: usize,
    },
    NotIncreasing {
        version: u64,
        last: u64,
    },
    Closed,
}

impl fmt::Display for AppendError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            AppendError::Full { needed, available } => write!(
                f,
                "the disk is full or unwritable: a change needs {needed} bytes of journal, \
                 {available} are left"
            ),
            AppendError::Unwritable { reason } => write!(
                f,
                "the journal cannot be written ({reason}); changes are refused until a write \
                 succeeds again"
            ),
            AppendError::TooLarge { bytes, max } => {
                write!(
                    f,
                    "a record of {bytes} bytes is over the journal's limit of {max}"
                )
            }
            AppendError::NotIncreasing { version, last } => {
                write!(f, "version {version} does not follow version {last}")
            }
            AppendError::Closed => write!(f, "the journal is closed"),
        }
    }
}

impl std::error::Error for AppendError {}

/// A version that could not be made durable (yet: a failed write is retried,
/// so it may become durable later, like a change whose reply was lost).
#[derive(Clone, Debug, PartialEq)]
pub struct Failed {
    pub version: u64,
    pub reason: String,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let (version, reason) = (self.version, &self.reason);
        write!(f, "version {version} could not be made durable: {reason}")
    }
}

impl std::error::Error for Failed {}

/// For `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Bytes of records in the journal since the last snapshot.
    pub journal_bytes: u64,
    pub snapshot_bytes: u64,
    /// Preallocated bytes `append` may still use.
    pub reserve_bytes: u64,
    pub records_written: u64,
    pub fsyncs: u64,
    pub fsync_seconds: f64,
    pub write_failures: u64,
    pub snapshots_written: u64,
}

/// Send + Sync; share it in an `Arc`. Dropping it closes it.
pub struct Journal {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    max_record: usize,
    _lock: disk::Lock,
}

impl Journal {
    /// Opens DIR (creating it), locks it, reads and verifies the snapshot and
    /// the journal, cuts off a torn last record, and starts the thread.
    pub fn open(dir: &Path) -> Result<(Journal, Recovered), OpenError> {
        Journal::open_with(dir, Options::default())
    }

    pub fn open_with(dir: &Path, options: Options) -> Result<(Journal, Recovered), OpenError> {
        let started = Instant::now();
        disk::create_dir(dir).map_err(OpenError::io(dir))?;
        recover::refuse_newer(dir)?;
        disk::ignore_file_size_signal();
        let lock = take_lock(dir)?;
        let mut found = recover::read(dir)?;
        remove_leftovers(&found)?;
        let journal = Journal::start(&mut found, options, lock)?;
        Ok((journal, recovered(found, started)))
    }

    /// Opens the journal file for appending, preallocates the reserve and
    /// starts the thread.
    fn start(found: &mut Found, options: Options, lock: disk::Lock) -> Result<Journal, OpenError> {
        let journal_path = found.dir.join(disk::JOURNAL);
        let appendable = writer::open_file(found).map_err(OpenError::io(&journal_path))?;
        let shared = Arc::new(Shared::new(found.last_version(), appendable.spare()));
        let snapshot_bytes = found.snapshot.map_or(0, |(_, len)| len);
        let counters = &shared.counters;
        counters
            .snapshot_bytes
            .store(snapshot_bytes, Ordering::Relaxed);
        let max_record = (options.reserve_bytes / 4) as usize;
        let mut writer = Writer::new(shared.clone(), &found.dir, options, appendable);
        writer.top_up();
        let thread = thread::Builder::new().name("askgate-journal".into());
        let thread = thread.spawn(move || writer.run());
        Ok(Journal {
            shared,
            thread: Mutex::new(Some(thread.map_err(OpenError::io(&found.dir))?)),
            max_record,
            _lock: lock,
        })
    }

    /// Queues a record; call it under the caller's state lock, in version
    /// order. Never waits on I/O: it only debits the preallocated reserve.
    pub fn append(&self, version: u64, record: Vec<u8>) -> Result<(), AppendError> {
        if record.len() > self.max_record {
            let (bytes, max) = (record.len(), self.max_record);
            return Err(AppendError::TooLarge { bytes, max });
        }
        let needed = format::record_len(record.len());
        self.shared.push_record(version, record, needed)
    }

    /// Blocks until every record up to `version` is written and synced, or
    /// returns Err as soon as the write that covers it has failed.
    pub fn wait_durable(&self, version: u64) -> Result<(), Failed> {
        self.shared.wait_durable(version)
    }

    /// The highest version known durable.
    pub fn durable_version(&self) -> u64 {
        self.shared.durable_version()
    }

    /// Blocks until the durable version passes `seen`, the journal stops, or
    /// `timeout` passes; returns the durable version. A thread that wakes the
    /// caller's waiters after each sync loops on this.
    pub fn wait_durable_past(&self, seen: u64, timeout: Duration) -> u64 {
        self.shared.wait_durable_past(seen, timeout)
    }

    /// Queues a snapshot of the whole state at `version` (under the caller's
    /// lock, after the record of `version`). The thread writes it and starts a
    /// fresh journal; if it cannot, it keeps the old files and logs a warning,
    /// and `sizes` still says the journal is long, so the caller tries again.
    pub fn compact(&self, version: u64, snapshot: Vec<u8>) {
        self.compact_with(version, Box::new(move |out| out.write_all(&snapshot)));
    }

    /// As `compact`, with the payload written by `write` on the journal
    /// thread, a piece at a time.
    pub fn compact_with(&self, version: u64, write: WriteSnapshot) {
        if let Err(last) = self.shared.push_snapshot(version, write) {
            log::error!(
                "journal: compaction at version {version} refused: version {last} is \
                 already queued, or the journal is closed"
            );
        }
    }

    /// Bytes of records since the last snapshot, and the snapshot's size.
    pub fn sizes(&self) -> (u64, u64) {
        let counters = &self.shared.counters;
        let journal = counters.journal_bytes.load(Ordering::Relaxed);
        (journal, counters.snapshot_bytes.load(Ordering::Relaxed))
    }

    pub fn stats(&self) -> Stats {
        let counters = &self.shared.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            journal_bytes: load(&counters.journal_bytes),
            snapshot_bytes: load(&counters.snapshot_bytes),
            reserve_bytes: self.shared.available(),
            records_written: load(&counters.records_written),
            fsyncs: load(&counters.fsyncs),
            fsync_seconds: load(&counters.fsync_nanos) as f64 / 1e9,
            write_failures: load(&counters.write_failures),
            snapshots_written: load(&counters.snapshots_written),
        }
    }

    /// The largest record `append` takes: a quarter of the reserve.
    pub fn max_record(&self) -> usize {
        self.max_record
    }

    /// Writes and syncs what is queued, then stops the thread. Later appends
    /// are refused. Also done on drop.
    pub fn close(&self) {
        self.shared.close();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    #[cfg(test)]
    pub(super) fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

/// Reads DIR as `open` would, without taking its lock, removing leftovers
/// or cutting a torn tail: a running server's directory, for
/// `askgate backup`. A compaction that swaps the files between two reads
/// shows as damage or as a replay error, so the caller reads again. `None`
/// when DIR holds neither a snapshot nor a journal.
pub fn read_unlocked(dir: &Path) -> Result<Option<Recovered>, OpenError> {
    let started = Instant::now();
    std::fs::metadata(dir).map_err(OpenError::io(dir))?;
    let found = recover::read_live(dir)?;
    if found.snapshot.is_none() && found.journal.is_none() {
        return Ok(None);
    }
    Ok(Some(recovered(found, started)))
}

fn take_lock(dir: &Path) -> Result<disk::Lock, OpenError> {
    let locked = disk::lock(dir).map_err(OpenError::io(&dir.join(disk::LOCK)))?;
    locked.ok_or_else(|| OpenError::Locked {
        dir: dir.to_path_buf(),
        pid: disk::lock_holder(dir),
    })
}

fn remove_leftovers(found: &Found) -> Result<(), OpenError> {
    for name in &found.leftovers {
        let path = found.dir.join(name);
        disk::remove_if_exists(&found.dir, name).map_err(OpenError::io(&path))?;
        log::info!(
            "journal: removed {} (an unfinished compaction)",
            path.display()
        );
    }
    Ok(())
}

fn recovered(found: Found, started: Instant) -> Recovered {
    let records = found.replay();
    let torn_tail = found.torn_tail();
    Recovered {
        snapshot: found.snapshot_file(),
        records,
        torn_tail,
        elapsed: started.elapsed(),
    }
}
