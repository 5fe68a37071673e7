//! The audit file: finished lines appended to `DIR/audit.log` (mode 0600)
//! by a thread of its own (started by the first line), and rotated to
//! `audit.log.1` before the file would pass its cap, so the two together
//! stay under twice the cap.
//!
//! It knows nothing of prompts: callers hand it lines. Invariants: a caller
//! never touches the disk (it queues lines to the thread, with no lock of
//! its own held); lines are written in the order they were queued, each
//! batch with one write and one fdatasync; a line is always one line (a
//! line break inside is written as `\n`); a failed write is logged, and the
//! lines it held are only in the process log.

use super::disk::{self, AUDIT_LOG, AUDIT_LOG_OLD};
use crossbeam_channel::{Receiver, Sender};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, JoinHandle};

/// Batches of lines that may wait for the thread before a caller waits.
/// The queue is made with the thread: crossbeam writes every slot of a
/// bounded channel when it is made (128 KiB here), which an idle server
/// would keep resident for nothing (BENCHMARKS.md, idle RSS).
const QUEUE: usize = 4096;

enum Message {
    Lines(Vec<String>),
    /// Answered once everything queued before it is written.
    Flush(Sender<()>),
    Close,
}

/// The open audit file and its writing thread, started by the first line
/// (an idle server has none); closing (or dropping) it writes what is
/// queued and joins the thread.
pub struct AuditLog {
    /// The queue to the thread, once it runs.
    sender: OnceLock<Sender<Message>>,
    thread: Mutex<Writer>,
}

/// Where the writing thread is.
enum Writer {
    /// No line yet: the file waits for the thread.
    Idle(Box<Appender>),
    Running(JoinHandle<()>),
    Closed,
}

impl AuditLog {
    /// Opens (or creates) `DIR/audit.log`, rotating before it would grow
    /// past `max_bytes`; its thread starts with the first line.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<AuditLog> {
        // With the journal the directory is already there; with Redis the
        // audit file may be all that lives in it.
        disk::create_dir(dir)?;
        let appender = Appender::open(dir, max_bytes)?;
        Ok(AuditLog {
            sender: OnceLock::new(),
            thread: Mutex::new(Writer::Idle(Box::new(appender))),
        })
    }

    /// Queues lines to be appended, in order.
    pub fn write(&self, lines: Vec<String>) {
        if !lines.is_empty() {
            self.start();
            self.send(Message::Lines(lines));
        }
    }

    /// Starts the thread unless it runs or has ended. One that cannot start
    /// leaves the lines in the process log only.
    fn start(&self) {
        let mut thread = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(*thread, Writer::Idle(..)) {
            return;
        }
        let Writer::Idle(appender) = std::mem::replace(&mut *thread, Writer::Closed) else {
            return;
        };
        let (sender, receiver) = crossbeam_channel::bounded(QUEUE);
        let spawned = thread::Builder::new()
            .name("askgate-audit".into())
            .spawn(move || run(*appender, receiver));
        match spawned {
            Ok(handle) => {
                let _ = self.sender.set(sender);
                *thread = Writer::Running(handle);
            }
            Err(error) => log::error!("cannot start the audit file's thread: {error}"),
        }
    }

    /// Waits until every line queued so far is written and synced.
    pub fn flush(&self) {
        if !matches!(
            *self.thread.lock().unwrap_or_else(|p| p.into_inner()),
            Writer::Running(_)
        ) {
            return;
        }
        let (done, written) = crossbeam_channel::bounded(1);
        if self.send(Message::Flush(done)) {
            let _ = written.recv();
        }
    }

    /// Queues a message to the thread, if it runs; whether it was queued.
    fn send(&self, message: Message) -> bool {
        self.sender
            .get()
            .is_some_and(|sender| sender.send(message).is_ok())
    }

    /// Writes what is queued and ends the thread; lines queued after are
    /// dropped.
    pub fn close(&self) {
        let mut thread = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        if let Writer::Running(handle) = std::mem::replace(&mut *thread, Writer::Closed) {
            self.send(Message::Close);
            let _ = handle.join();
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// The thread: takes everything queued at once, writes it, syncs, and
/// answers the flushes among it.
fn run(mut appender: Appender, receiver: Receiver<Message>) {
    while let Ok(first) = receiver.recv() {
        let mut flushed = Vec::new();
        let mut closing = false;
        for message in std::iter::once(first).chain(receiver.try_iter()) {
            match message {
                Message::Lines(lines) => lines.iter().for_each(|line| appender.push(line)),
                Message::Flush(done) => flushed.push(done),
                Message::Close => closing = true,
            }
        }
        appender.finish_batch();
        for done in flushed {
            let _ = done.send(());
        }
        if closing {
            break;
        }
    }
}

/// `audit.log` as the thread appends to it.
struct Appender {
    dir: PathBuf,
    file: File,
    /// Bytes in the file, and in `pending` after them.
    len: u64,
    pending: Vec<u8>,
    max_bytes: u64,
}

impl Appender {
    fn open(dir: &Path, max_bytes: u64) -> io::Result<Appender> {
        let file = open_file(dir)?;
        Ok(Appender {
            dir: dir.to_path_buf(),
            len: file.metadata()?.len(),
            file,
            pending: Vec::new(),
            max_bytes,
        })
    }

    fn push(&mut self, line: &str) {
        let line = line.replace('\n', "\\n");
        let bytes = line.len() as u64 + 1;
        if self.len > 0 && self.len + bytes > self.max_bytes {
            self.rotate();
        }
        self.pending.extend_from_slice(line.as_bytes());
        self.pending.push(b'\n');
        self.len += bytes;
    }

    /// What is pending into the full file, which then becomes
    /// `audit.log.1`, and a fresh `audit.log`.
    fn rotate(&mut self) {
        self.finish_batch();
        let rotated = disk::rename_synced(&self.dir, AUDIT_LOG, AUDIT_LOG_OLD)
            .and_then(|()| open_file(&self.dir));
        match rotated {
            Ok(file) => {
                self.file = file;
                self.len = 0;
            }
            Err(error) => log::warn!("cannot rotate {}: {error}", self.path().display()),
        }
    }

    fn finish_batch(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let written = self.file.write_all(&self.pending);
        if let Err(error) = written.and_then(|()| self.file.sync_data()) {
            let lines = self.pending.iter().filter(|&&b| b == b'\n').count();
            log::warn!(
                "cannot write {}: {error}; {lines} audit lines are only in the log",
                self.path().display()
            );
            self.len = self.file.metadata().map_or(self.len, |m| m.len());
        }
        self.pending.clear();
    }

    fn path(&self) -> PathBuf {
        self.dir.join(AUDIT_LOG)
    }
}

/// Never through a symlink planted in the directory.
fn open_file(dir: &Path) -> io::Result<File> {
    crate::private_file::no_follow()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(dir.join(AUDIT_LOG))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::{env, fs, process};

    fn temp_dir(name: &str) -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = env::temp_dir().join(format!("askgate-audit-{name}-{}-{unique}", process::id()));
        let _ = fs::remove_dir_all(&dir);
        disk::create_dir(&dir).unwrap();
        dir
    }

    fn read(dir: &Path, name: &str) -> String {
        fs::read_to_string(dir.join(name)).unwrap_or_default()
    }

    #[test]
    fn lines_are_appended_in_order_across_reopening_and_are_the_user_s_alone() {
        let dir = temp_dir("append");
        let log = AuditLog::open(&dir, 1 << 20).unwrap();
        log.write(vec!["one".into(), "two".into()]);
        log.write(vec!["three\nforged=line".into()]);
        log.flush();
        assert_eq!(read(&dir, AUDIT_LOG), "one\ntwo\nthree\\nforged=line\n");
        drop(log);
        let log = AuditLog::open(&dir, 1 << 20).unwrap();
        log.write(vec!["four".into()]);
        log.close();
        log.write(vec!["after close".into()]);
        let text = read(&dir, AUDIT_LOG);
        assert_eq!(text, "one\ntwo\nthree\\nforged=line\nfour\n");
        let mode = fs::metadata(dir.join(AUDIT_LOG))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_that_would_pass_its_cap_is_rotated_first() {
        let dir = temp_dir("rotate");
        let log = AuditLog::open(&dir, 10).unwrap();
        for line in ["aaaa", "bbbb", "cccc", "dddddddddddddd", "e"] {
            log.write(vec![line.into()]);
        }
        log.close();
        // Each file holds what fits under 10 bytes; an oversized line still
        // gets a file of its own; only the newest rotated file is kept.
        assert_eq!(read(&dir, AUDIT_LOG_OLD), "dddddddddddddd\n");
        assert_eq!(read(&dir, AUDIT_LOG), "e\n");
        let log = AuditLog::open(&dir, 10).unwrap();
        log.write(vec!["ffff".into(), "gggg".into()]);
        log.close();
        assert_eq!(read(&dir, AUDIT_LOG_OLD), "e\nffff\n");
        assert_eq!(read(&dir, AUDIT_LOG), "gggg\n");
        fs::remove_dir_all(dir).unwrap();
    }
}
