//! The data directory's files and the system calls under them: the lock
//! file, preallocation, files made whole before they appear, and syncing the
//! directory after a rename.
//!
//! Invariants: a snapshot or journal appears under its final name only
//! complete and synced (written as `NAME.tmp`, synced, renamed, directory
//! synced); the lock is an flock, so it dies with the process that held it;
//! what askgate creates is its user's alone (files 0600, directories 0700),
//! for the journal holds every prompt and answer.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::Path;

pub const LOCK: &str = "lock";
pub const JOURNAL: &str = "journal";
pub const JOURNAL_TMP: &str = "journal.tmp";
pub const SNAPSHOT: &str = "snapshot";
pub const SNAPSHOT_TMP: &str = "snapshot.tmp";
pub const AUDIT_LOG: &str = "audit.log";
pub const AUDIT_LOG_OLD: &str = "audit.log.1";

/// Creates DIR and its missing parents, readable by this user only.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Takes the exclusive lock on `DIR/lock` and writes our pid in it; `None`
/// when another open file (this process or another) holds it.
pub fn lock(dir: &Path) -> io::Result<Option<File>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join(LOCK))?;
    // SAFETY: flock only reads the descriptor, which `file` keeps open.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let error = io::Error::last_os_error();
        return match error.kind() {
            io::ErrorKind::WouldBlock => Ok(None),
            _ => Err(error),
        };
    }
    file.set_len(0)?;
    file.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0)?;
    Ok(Some(file))
}

/// The pid the holder of the lock wrote, if it did.
pub fn lock_holder(dir: &Path) -> Option<u32> {
    fs::read_to_string(dir.join(LOCK)).ok()?.trim().parse().ok()
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

/// Writes `parts` to `DIR/tmp`, then `spare` preallocated bytes, and syncs
/// it; the caller renames it into place with `rename_synced`.
pub fn write_tmp(dir: &Path, tmp: &str, parts: &[&[u8]], spare: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dir.join(tmp))?;
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
    match fs::remove_file(dir.join(name)) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}
