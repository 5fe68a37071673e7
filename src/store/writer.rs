//! The journal thread: takes everything queued at once and writes it with one
//! write and one fdatasync (group commit), keeps the preallocated reserve
//! topped up, and compacts: snapshot in place, then a fresh journal.
//!
//! Invariants: bytes are kept until a sync covers them, and a failed write is
//! retried whole from the same offset, so the file has no gap and records
//! stay in order; the reserve callers may debit, plus everything queued or
//! pending, never exceeds the preallocated bytes after the synced records.
//! The high-water mark is written in place after each batch's fdatasync and
//! before its waiters hear, with no sync of its own (the next batch's, or the
//! kernel's writeback, carries it), so on disk it never names a version a
//! sync has not covered.

use super::disk::{self, JOURNAL, JOURNAL_TMP, SNAPSHOT, SNAPSHOT_TMP};
use super::format::{self, HEADER_LEN, Tail};
use super::handoff::{Fault, Item, Shared};
use super::journal::{Options, WriteSnapshot};
use super::recover::{Found, JournalFile};
use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The journal file to append to: where its valid records end (a torn
/// tail cut off and synced) and where its preallocated space ends.
pub struct Appendable {
    file: File,
    end: u64,
    len: u64,
}

impl Appendable {
    /// Preallocated bytes after the records.
    pub fn spare(&self) -> u64 {
        self.len - self.end
    }
}

/// Opens the journal `found` read, or creates it after the snapshot; one
/// of format 1 is first copied into this format (`found` then says where
/// its records now lie). Its high-water mark is brought up to what the
/// directory holds, once that is synced.
pub fn open_file(found: &mut Found) -> io::Result<Appendable> {
    let dir = found.dir.clone();
    let last = found.last_version();
    let Some(journal) = &mut found.journal else {
        return create_file(found);
    };
    if journal.scan.format < format::FORMAT {
        return upgrade_file(&dir, journal, last);
    }
    let file = crate::private_file::no_follow()
        .read(true)
        .write(true)
        .open(dir.join(JOURNAL))?;
    let (end, mut len) = (journal.scan.end, journal.len);
    if let Tail::Torn { .. } = journal.scan.tail {
        file.set_len(end)?;
        len = end;
    }
    // What a process killed before its sync left may be in memory only.
    file.sync_all()?;
    file.write_all_at(&format::mark_bytes(last), format::MARK_AT)?;
    Ok(Appendable { file, end, len })
}

/// Copies a journal of an older format's valid records, byte for byte
/// (their framing has not changed; each record says its own format), after
/// a header of this format, keeping its preallocated space, and renames it
/// into place whole and synced: an older askgate then refuses the journal
/// rather than meet a record it cannot read.
fn upgrade_file(dir: &Path, journal: &mut JournalFile, last: u64) -> io::Result<Appendable> {
    let old = crate::private_file::no_follow()
        .read(true)
        .open(dir.join(JOURNAL))?;
    let scan = &mut journal.scan;
    let records = scan.end - scan.header_len;
    let spare = journal.len.saturating_sub(scan.end);
    let header = format::journal_header(scan.base, last);
    let file = disk::write_tmp(dir, JOURNAL_TMP, &[&header], 0)?;
    let (mut at, mut window) = (0, vec![0; 64 * 1024]);
    while at < records {
        let len = (records - at).min(window.len() as u64) as usize;
        old.read_exact_at(&mut window[..len], scan.header_len + at)?;
        file.write_all_at(&window[..len], HEADER_LEN + at)?;
        at += len as u64;
    }
    let end = HEADER_LEN + records;
    if spare > 0 {
        disk::preallocate(&file, end, spare)?;
    }
    file.sync_all()?;
    lock_new_journal(&file)?;
    disk::rename_synced(dir, JOURNAL_TMP, JOURNAL)?;
    log::info!(
        "journal: {} is now of format {} (it was of format {})",
        dir.join(JOURNAL).display(),
        format::FORMAT,
        scan.format
    );
    (scan.format, scan.header_len, scan.end) = (format::FORMAT, HEADER_LEN, end);
    journal.len = end + spare;
    Ok(Appendable {
        file,
        end,
        len: journal.len,
    })
}

fn create_file(found: &Found) -> io::Result<Appendable> {
    let (dir, base) = (&found.dir, found.snapshot_version());
    if base > 0 {
        let path = dir.join(JOURNAL);
        log::warn!(
            "journal: {} is missing; starting from the snapshot at version {base}",
            path.display()
        );
    }
    let header = format::journal_header(base, base);
    let file = disk::write_tmp(dir, JOURNAL_TMP, &[&header], 0)?;
    lock_new_journal(&file)?;
    disk::rename_synced(dir, JOURNAL_TMP, JOURNAL)?;
    let (end, len) = (HEADER_LEN, HEADER_LEN);
    Ok(Appendable { file, end, len })
}

/// Locks a new journal before it takes the name `journal`, so the file of
/// that name is always locked while this server runs (`disk::lock`).
fn lock_new_journal(file: &File) -> io::Result<()> {
    match disk::try_lock(file)? {
        true => Ok(()),
        false => Err(io::Error::other(
            "a new journal file is locked by another process",
        )),
    }
}

pub struct Writer {
    shared: Arc<Shared>,
    dir: PathBuf,
    options: Options,
    file: File,
    /// Where the synced records end.
    position: u64,
    /// Where the preallocated space ends.
    file_len: u64,
    /// Encoded records not yet synced, and the last version among them.
    pending: Vec<u8>,
    pending_last: u64,
    pending_records: u64,
    /// When a failed write, or a failed preallocation, is tried again.
    write_retry: Option<Instant>,
    top_up_retry: Option<Instant>,
    /// The high-water mark was written since the last sync; its last write
    /// failed (said once).
    mark_dirty: bool,
    mark_failed: bool,
}

/// Tells waiters the thread is gone, however it ends.
struct StopOnExit(Arc<Shared>);

impl Drop for StopOnExit {
    fn drop(&mut self) {
        self.0.mark_stopped();
    }
}

impl Writer {
    pub fn new(shared: Arc<Shared>, dir: &Path, options: Options, to: Appendable) -> Writer {
        let journal_bytes = to.end - HEADER_LEN;
        shared
            .counters
            .journal_bytes
            .store(journal_bytes, Ordering::Relaxed);
        Writer {
            shared,
            dir: dir.to_path_buf(),
            options,
            file: to.file,
            position: to.end,
            file_len: to.len,
            pending: Vec::new(),
            pending_last: 0,
            pending_records: 0,
            write_retry: None,
            top_up_retry: None,
            mark_dirty: false,
            mark_failed: false,
        }
    }

    pub fn run(mut self) {
        let _stop = StopOnExit(self.shared.clone());
        loop {
            let (items, closing) = self.shared.next_batch(self.next_retry());
            for item in items {
                self.take(item);
            }
            self.flush(closing);
            self.top_up();
            if closing {
                // The mark reaches the disk with the last sync.
                if self.mark_dirty {
                    let _ = self.file.sync_data();
                }
                return;
            }
        }
    }

    fn next_retry(&self) -> Option<Duration> {
        let soonest = [self.write_retry, self.top_up_retry]
            .into_iter()
            .flatten()
            .min()?;
        Some(soonest.saturating_duration_since(Instant::now()))
    }

    fn take(&mut self, item: Item) {
        match item {
            Item::Record(version, payload) => {
                format::encode_record(&mut self.pending, version, &payload);
                self.pending_last = version;
                self.pending_records += 1;
            }
            Item::Snapshot(version, snapshot) => self.compact(version, snapshot),
        }
    }

    /// Writes and syncs what is pending, unless a failed write is not yet due
    /// for a retry and `force` is false. True when nothing is left pending.
    fn flush(&mut self, force: bool) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        if !force && self.write_retry.is_some_and(|at| Instant::now() < at) {
            return false;
        }
        match self.write_pending() {
            Ok(()) => self.written(),
            Err(error) => self.write_failed(&error),
        }
        self.pending.is_empty()
    }

    fn write_pending(&self) -> io::Result<()> {
        self.shared.fault(Fault::Write)?;
        self.file.write_all_at(&self.pending, self.position)?;
        self.sync()
    }

    fn sync(&self) -> io::Result<()> {
        let started = Instant::now();
        let synced = self.file.sync_data();
        let counters = &self.shared.counters;
        counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        let nanos = started.elapsed().as_nanos() as u64;
        counters.fsync_nanos.fetch_add(nanos, Ordering::Relaxed);
        synced
    }

    fn written(&mut self) {
        self.position += self.pending.len() as u64;
        let counters = &self.shared.counters;
        counters
            .journal_bytes
            .store(self.position - HEADER_LEN, Ordering::Relaxed);
        counters
            .records_written
            .fetch_add(self.pending_records, Ordering::Relaxed);
        self.write_mark(self.pending_last);
        self.shared.mark_durable(self.pending_last);
        self.pending.clear();
        self.pending_records = 0;
        if self.write_retry.take().is_some() {
            log::info!(
                "journal: {} is written again",
                self.journal_path().display()
            );
        }
    }

    /// Moves the high-water mark to `version`, just synced, before anyone
    /// hears it is durable: one small write in place, no sync of its own
    /// (the next batch's sync, or the kernel's writeback, carries it; a
    /// mark that lags is only a weaker check, never a false one).
    fn write_mark(&mut self, version: u64) {
        let mark = format::mark_bytes(version);
        let written = self.file.write_all_at(&mark, format::MARK_AT);
        match (written, self.mark_failed) {
            (Ok(()), _) => self.mark_failed = false,
            (Err(error), false) => {
                self.mark_failed = true;
                log::warn!(
                    "journal: cannot move the high-water mark in {}: {error}",
                    self.journal_path().display()
                );
            }
            (Err(_), true) => {}
        }
        self.mark_dirty = true;
    }

    fn write_failed(&mut self, error: &io::Error) {
        self.shared
            .counters
            .write_failures
            .fetch_add(1, Ordering::Relaxed);
        let (path, last, every) = (
            self.journal_path(),
            self.pending_last,
            self.options.retry_interval,
        );
        let message = format!(
            "journal: cannot write {}: {error}; changes up to version {last} are not durable, retrying every {every:?}",
            path.display()
        );
        match self.write_retry {
            None => log::error!("{message}"),
            Some(_) => log::debug!("{message}"),
        }
        self.write_retry = Some(Instant::now() + every);
        self.shared.mark_failed(last, error);
    }

    /// Preallocates until callers may debit the whole reserve again, once
    /// less than three quarters are left; on failure, retries later.
    pub fn top_up(&mut self) {
        if self.top_up_retry.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let target = self.options.reserve_bytes;
        let mut wanted = target.saturating_sub(self.shared.available());
        if wanted <= target / 4 && self.top_up_retry.is_none() {
            return;
        }
        let chunk = (target / 4).max(4096);
        while wanted > 0 {
            let len = wanted.min(chunk);
            if let Err(error) = self.preallocate(len) {
                return self.top_up_failed(&error);
            }
            wanted -= len;
        }
        if self.top_up_retry.take().is_some() {
            log::info!(
                "journal: space for {} is preallocated again",
                self.journal_path().display()
            );
        }
    }

    fn preallocate(&mut self, len: u64) -> io::Result<()> {
        self.shared.fault(Fault::TopUp)?;
        disk::preallocate(&self.file, self.file_len, len)?;
        self.file_len += len;
        self.shared.credit(len);
        Ok(())
    }

    fn top_up_failed(&mut self, error: &io::Error) {
        if self.top_up_retry.is_none() {
            let (path, left) = (self.journal_path(), self.shared.available());
            let every = self.options.retry_interval;
            log::warn!(
                "journal: cannot preallocate space in {}: {error}; appends are refused once the {left} preallocated bytes left are used; retrying every {every:?}",
                path.display()
            );
        }
        self.top_up_retry = Some(Instant::now() + self.options.retry_interval);
    }

    /// Writes the snapshot and starts a fresh journal after it; on failure
    /// keeps the old files, which replay just as well.
    fn compact(&mut self, version: u64, snapshot: WriteSnapshot) {
        if !self.flush(true) {
            log::warn!(
                "journal: compaction at version {version} skipped: earlier records are not written yet"
            );
            return;
        }
        let spare = self.file_len - self.position;
        match self.switch_files(version, snapshot, spare) {
            Ok(file) => self.switched(file, spare),
            Err(error) => {
                log::warn!(
                    "journal: compaction at version {version} failed, keeping the old files: {error}"
                );
                let _ = disk::remove_if_exists(&self.dir, SNAPSHOT_TMP);
                let _ = disk::remove_if_exists(&self.dir, JOURNAL_TMP);
            }
        }
    }

    /// The order makes every crash recoverable: the new journal is whole
    /// before the snapshot moves, and the snapshot is in place before the
    /// journal that follows it; replay skips records the snapshot covers.
    fn switch_files(&self, version: u64, snapshot: WriteSnapshot, spare: u64) -> io::Result<File> {
        // Every version up to the snapshot's is in it, synced before this
        // journal takes the name.
        let header = format::journal_header(version, version);
        let journal = disk::write_tmp(&self.dir, JOURNAL_TMP, &[&header], spare)?;
        lock_new_journal(&journal)?;
        self.shared.fault(Fault::Snapshot)?;
        let length = write_snapshot(&self.dir, version, snapshot)?;
        disk::rename_synced(&self.dir, SNAPSHOT_TMP, SNAPSHOT)?;
        let counters = &self.shared.counters;
        counters.snapshot_bytes.store(length, Ordering::Relaxed);
        counters.snapshots_written.fetch_add(1, Ordering::Relaxed);
        disk::rename_synced(&self.dir, JOURNAL_TMP, JOURNAL)?;
        Ok(journal)
    }

    fn switched(&mut self, file: File, spare: u64) {
        self.file = file;
        self.position = HEADER_LEN;
        self.file_len = HEADER_LEN + spare;
        self.shared
            .counters
            .journal_bytes
            .store(0, Ordering::Relaxed);
    }

    fn journal_path(&self) -> PathBuf {
        self.dir.join(JOURNAL)
    }
}

/// Writes `SNAPSHOT_TMP`: a header to fill in, the payload streamed through
/// a small buffer, then (read back a window at a time, for the checksum
/// covers the length, known only at the end) the header; synced. Returns
/// the payload's length.
fn write_snapshot(dir: &Path, version: u64, snapshot: WriteSnapshot) -> io::Result<u64> {
    let header_len = format::SNAPSHOT_HEADER_LEN;
    let file = disk::write_tmp(dir, SNAPSHOT_TMP, &[&vec![0; header_len as usize]], 0)?;
    let mut out = BufWriter::with_capacity(64 * 1024, &file);
    out.seek(SeekFrom::Start(header_len))?;
    snapshot(&mut out)?;
    out.flush()?;
    drop(out);
    let size = file.metadata()?.len();
    let length = size - header_len;
    let mut crc = format::Crc32::new();
    crc.update(&version.to_le_bytes());
    crc.update(&length.to_le_bytes());
    let (mut at, mut window) = (header_len, vec![0; 64 * 1024]);
    while at < size {
        let len = (size - at).min(window.len() as u64) as usize;
        file.read_exact_at(&mut window[..len], at)?;
        crc.update(&window[..len]);
        at += len as u64;
    }
    file.write_all_at(
        &format::snapshot_header_of(version, length, crc.finish()),
        0,
    )?;
    file.sync_all()?;
    Ok(length)
}
