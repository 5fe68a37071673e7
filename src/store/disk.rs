//! The data directory's files and the system calls under them: the lock
//! file, preallocation, files made whole before they appear, and syncing the
//! directory after a rename.
//!
//! Invariants: a snapshot or journal appears under its final name only
//! complete and synced (written as `NAME.tmp`, synced, renamed, directory
//! synced); the lock is an flock, so it dies with the process that held it,
//! taken on `lock` and on the journal file itself (each new journal is
//! locked before it takes the name), so deleting `lock` lets no second
//! server in; what askgate creates is its user's alone (files 0600,
//! directories 0700, refused when others may write to the directory), for
//! the journal holds every prompt and answer, and no file is opened through
//! a symlink (`crate::private_file`).

use crate::private_file::{self, no_follow};
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

pub const LOCK: &str = "lock";
pub const JOURNAL: &str = "journal";
pub const JOURNAL_TMP: &str = "journal.tmp";
pub const SNAPSHOT: &str = "snapshot";
pub const SNAPSHOT_TMP: &str = "snapshot.tmp";
pub const AUDIT_LOG: &str = "audit.log";
pub const AUDIT_LOG_OLD: &str = "audit.log.1";

/// Creates DIR and its missing parents, readable by this user only, and
/// refuses one that others may write to.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    private_file::private_dir(dir)
}

/// The directory's locks, held while this value lives: `DIR/lock` (with
/// our pid in it) and the journal file there was when it was taken.
pub struct Lock {
    _lock_file: File,
    _journal: Option<File>,
}

/// Takes the exclusive locks on `DIR/lock` and on `DIR/journal` (when there
/// is one) and writes our pid in `lock`; `None` when another open file
/// (this process or another) holds either.
pub fn lock(dir: &Path) -> io::Result<Option<Lock>> {
    let file = private_file::lock_file(&dir.join(LOCK))?;
    if !try_lock(&file)? {
        return Ok(None);
    }
    let Some(journal) = lock_journal(dir)? else {
        return Ok(None);
    };
    file.set_len(0)?;
    file.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0)?;
    Ok(Some(Lock {
        _lock_file: file,
        _journal: journal,
    }))
}

/// The lock on the journal file: `Some(None)` when there is none yet,
/// `None` when another holds it. A journal renamed over between opening
/// and locking is opened again, so the lock is on the file named `journal`.
fn lock_journal(dir: &Path) -> io::Result<Option<Option<File>>> {
    let path = dir.join(JOURNAL);
    loop {
        let file = match no_follow().read(true).open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Some(None)),
            Err(error) => return Err(error),
        };
        if !try_lock(&file)? {
            return Ok(None);
        }
        let named = fs::symlink_metadata(&path)?;
        let held = file.metadata()?;
        if (named.dev(), named.ino()) == (held.dev(), held.ino()) {
            return Ok(Some(Some(file)));
        }
    }
}

/// An exclusive flock without waiting: false when another open file holds it.
pub fn try_lock(file: &File) -> io::Result<bool> {
    // SAFETY: flock only reads the descriptor, which `file` keeps open.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    match error.kind() {
        io::ErrorKind::WouldBlock => Ok(false),
        _ => Err(error),
    }
}

/// The pid the holder of the lock wrote, if it did.
pub fn lock_holder(dir: &Path) -> Option<u32> {
    private_file::read(&dir.join(LOCK))
        .ok()??
        .trim()
        .parse()
        .ok()
}

/// A file-size limit (`ulimit -f`, `prlimit --fsize`) then fails a write
/// with EFBIG instead of killing the process with SIGXFSZ.
pub fn ignore_file_size_signal() {
    // SAFETY: SIG_IGN is a valid disposition; no handler code runs.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Makes `len` bytes at `offset` (the file's end) part of the file as zeros
/// with their blocks allocated, so writing there later needs no new space.
pub fn preallocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    match fallocate(file, offset, len) {
        Err(error) if unsupported(&error) => write_zeros(file, offset, len),
        other => other,
    }
}

#[cfg(target_os = "linux")]
fn fallocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let too_big = |_| io::Error::from_raw_os_error(libc::EFBIG);
    let offset = i64::try_from(offset).map_err(too_big)?;
    let len = i64::try_from(len).map_err(too_big)?;
    loop {
        // SAFETY: fallocate only reads the descriptor, which `file` keeps open.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) } == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn fallocate(_: &File, _: u64, _: u64) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

fn unsupported(error: &io::Error) -> bool {
    let codes = [libc::EOPNOTSUPP, libc::ENOSYS];
    error.kind() == io::ErrorKind::Unsupported
        || error
            .raw_os_error()
            .is_some_and(|code| codes.contains(&code))
}

fn write_zeros(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; 64 * 1024];
    let mut written = 0;
    while written < len {
        let chunk = (len - written).min(zeros.len() as u64);
        file.write_all_at(&zeros[..chunk as usize], offset + written)?;
        written += chunk;
    }
    file.sync_data()
}

/// Writes `parts` to a new `DIR/tmp` (whatever was there removed first),
/// then `spare` preallocated bytes, and syncs it; the caller renames it
/// into place with `rename_synced`.
pub fn write_tmp(dir: &Path, tmp: &str, parts: &[&[u8]], spare: u64) -> io::Result<File> {
    remove_if_exists(dir, tmp)?;
    let file = private_file::create_new(&dir.join(tmp))?;
    let mut offset = 0;
    for part in parts {
        file.write_all_at(part, offset)?;
        offset += part.len() as u64;
    }
    if spare > 0 {
        preallocate(&file, offset, spare)?;
    }
    file.sync_all()?;
    Ok(file)
}

pub fn rename_synced(dir: &Path, from: &str, to: &str) -> io::Result<()> {
    fs::rename(dir.join(from), dir.join(to))?;
    sync_dir(dir)
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes `DIR/name`; Ok(true) if it was there.
pub fn remove_if_exists(dir: &Path, name: &str) -> io::Result<bool> {
    private_file::remove_if_exists(&dir.join(name))
}
