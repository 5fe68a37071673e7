//! `askgate backup DEST`: a consistent copy of a running server's data
//! directory, made beside it without stopping it or taking its lock.
//!
//! The snapshot and the journal records after it are read a line and a
//! record at a time (`store::journal::read_unlocked`, as `open` and
//! `askgate journal check` read them) and replayed into a `State`
//! (`hub::durable::restore`); DEST is written as a fresh data directory: one
//! snapshot at that version (the journal thread's own snapshot writer) and an
//! empty journal after it, with copies of the tokens and keys a restore needs.
//!
//! Invariants: the server is never blocked (no lock of its own is taken,
//! nothing of its directory is written); a compaction racing the read (the
//! snapshot replaced, the journal renamed) shows as damage or a replay error
//! and the read starts again, and a torn record being written is just the
//! end; DEST appears whole or not at all (written as `.NAME.backup-PID`
//! beside it, read back and checked, synced, then renamed), and a DEST that
//! exists and is not empty is never written over.

use crate::core::state::State;
use crate::hub::durable;
use crate::notify::capability;
use crate::private_file;
use crate::receipt_key;
use crate::serve::{auth, credentials};
use crate::store::journal::{self, Journal, Options};
use std::fs::{self, DirBuilder, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The files beside the journal that a restore needs, copied as they are
/// (mode 0600). Not the audit log (a record, not state; copy it yourself if
/// you keep it), nor `lock`.
pub const KEPT_FILES: [&str; 4] = [
    auth::TOKENS_FILE,
    credentials::FILE,
    capability::KEY_FILE,
    receipt_key::KEY_FILE,
];

/// How often a read that met a change in flight is tried again, and the
/// pause between two tries.
const ATTEMPTS: u32 = 30;
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// The journal reserve of the copy: it holds no record, and the server
/// that starts on it preallocates its own.
const COPY_RESERVE_BYTES: u64 = 4096;

/// Test knob: the backup stops itself (SIGSTOP) at this stage, `start` or
/// `written` (the copy whole, not yet renamed), so a test can kill it or
/// the server there.
const STOP_VARIABLE: &str = "ASKGATE_TEST_BACKUP_STOP";

/// What a backup copied.
#[derive(Debug)]
pub struct Done {
    pub dest: PathBuf,
    pub version: u64,
    pub pending: usize,
    pub rules: usize,
    pub files: Vec<&'static str>,
    pub attempts: u32,
    pub elapsed: Duration,
}

impl std::fmt::Display for Done {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let files = match self.files.is_empty() {
            true => "no key or token file".to_string(),
            false => self.files.join(", "),
        };
        write!(
            f,
            "backup in {}: version {}, {} pending prompts, {} rules, and {files} ({} ms, {} read{})",
            self.dest.display(),
            self.version,
            self.pending,
            self.rules,
            self.elapsed.as_millis(),
            self.attempts,
            if self.attempts == 1 { "" } else { "s" }
        )
    }
}

/// Copies the data directory `dir` to `dest`; the error says what and why,
/// and leaves `dest` as it was.
pub fn backup(dir: &Path, dest: &Path) -> Result<Done, String> {
    let started = Instant::now();
    yield_to_the_server();
    check_dest(dest)?;
    let tmp = temporary_beside(dest)?;
    remove_stale(&tmp);
    stop_here("start");
    let (state, attempts) = read_state(dir)?;
    let summary = Summary::of(&state);
    let written = write_copy(&tmp, dir, state, &summary).and_then(|files| {
        stop_here("written");
        rename_into_place(&tmp, dest).map(|()| files)
    });
    let files = written.inspect_err(|_| {
        let _ = fs::remove_dir_all(&tmp);
    })?;
    Ok(Done {
        dest: dest.to_path_buf(),
        version: summary.version,
        pending: summary.pending,
        rules: summary.rules,
        files,
        attempts,
        elapsed: started.elapsed(),
    })
}

/// What a state holds, in numbers: the copy read back must say the same.
#[derive(Debug, PartialEq)]
struct Summary {
    version: u64,
    pending: usize,
    rules: usize,
    sessions: usize,
}

impl Summary {
    fn of(state: &State) -> Summary {
        let (pending, sessions) = state.totals();
        Summary {
            version: state.version(),
            pending: pending.values().sum(),
            rules: state.rule_count(),
            sessions,
        }
    }
}

/// DEST may be missing or an empty directory (which the rename replaces).
fn check_dest(dest: &Path) -> Result<(), String> {
    let shown = dest.display();
    let meta = match fs::symlink_metadata(dest) {
        Ok(meta) => meta,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(format!("{shown}: {error}")),
    };
    let empty = meta.is_dir()
        && fs::read_dir(dest)
            .map_err(|error| format!("{shown}: {error}"))?
            .next()
            .is_none();
    match empty {
        true => Ok(()),
        false => Err(format!(
            "{shown} exists and is not empty; askgate backup writes only a new (or empty) \
             directory: name another, or remove it first"
        )),
    }
}

/// `PARENT/.NAME.backup-PID`, PARENT made if missing.
fn temporary_beside(dest: &Path) -> Result<PathBuf, String> {
    let name = dest
        .file_name()
        .ok_or_else(|| format!("{} names no directory", dest.display()))?;
    let parent = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(parent)
        .map_err(|error| format!("{}: {error}", parent.display()))?;
    let name = format!(".{}.backup-{}", name.to_string_lossy(), std::process::id());
    Ok(parent.join(name))
}

/// Removes what a backup to the same DEST left when it was killed: its
/// `.NAME.backup-PID`, when no process PID runs any more.
fn remove_stale(tmp: &Path) {
    let (Some(parent), Some(name)) = (tmp.parent(), tmp.file_name()) else {
        return;
    };
    let name = name.to_string_lossy();
    let Some((prefix, _)) = name.rsplit_once('-') else {
        return;
    };
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name().to_string_lossy().to_string();
        let pid = entry_name.strip_prefix(&format!("{prefix}-"));
        let pid = pid.and_then(|pid| pid.parse::<libc::pid_t>().ok());
        if pid.is_some_and(|pid| !running(pid)) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn running(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let found = unsafe { libc::kill(pid, 0) } == 0;
    found || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// The state `dir` holds, read again while the read meets a change in
/// flight: a compaction (the snapshot replaced, the journal renamed) or a
/// batch being written (a record half there while the look past it finds
/// whole ones). Either is gone at the next read; the same problem read
/// twice in a row is damage, and said at once.
fn read_state(dir: &Path) -> Result<(State, u32), String> {
    fs::metadata(dir).map_err(|error| format!("data directory {}: {error}", dir.display()))?;
    let (mut attempt, mut last) = (1, None);
    loop {
        let why = match read_once(dir) {
            Ok(state) => return Ok((state?, attempt)),
            Err(why) => why,
        };
        if attempt == ATTEMPTS || last.as_ref() == Some(&why) {
            let tries = format!("{attempt} tries");
            return Err(format!("cannot read {} ({tries}): {why}", dir.display()));
        }
        log::debug!("backup: read {attempt} met a change in flight, reading again: {why}");
        (attempt, last) = (attempt + 1, Some(why));
        std::thread::sleep(RETRY_PAUSE);
    }
}

/// One read: Err to try again, Ok(Err) to give up at once.
fn read_once(dir: &Path) -> Result<Result<State, String>, String> {
    let recovered = journal::read_unlocked(dir).map_err(|error| error.to_string())?;
    let Some(recovered) = recovered else {
        return Ok(Err(nothing_to_copy(dir)));
    };
    Ok(Ok(durable::restore(&recovered)?))
}

fn nothing_to_copy(dir: &Path) -> String {
    format!(
        "{} holds no journal and no snapshot: nothing to back up here. A server with \
         --store redis:// keeps its state in Redis: back up Redis itself (its RDB or AOF \
         files; docs/deploy.md); a server with --data-dir none keeps nothing",
        dir.display()
    )
}

/// Writes `tmp` whole: the snapshot and an empty journal, the kept files,
/// read back and compared, synced. Returns the files copied. The state is
/// dropped once written, so the copy read back is the only one held then.
fn write_copy(
    tmp: &Path,
    dir: &Path,
    state: State,
    summary: &Summary,
) -> Result<Vec<&'static str>, String> {
    let at = |error: io::Error| format!("{}: {error}", tmp.display());
    DirBuilder::new().mode(0o700).create(tmp).map_err(at)?;
    write_snapshot(tmp, &state)?;
    drop(state);
    let mut files = Vec::new();
    for name in KEPT_FILES {
        if copy_private(dir, tmp, name).map_err(at)? {
            files.push(name);
        }
    }
    check_copy(tmp, summary)?;
    File::open(tmp).and_then(|dir| dir.sync_all()).map_err(at)?;
    Ok(files)
}

/// One snapshot at the state's version through a journal of `tmp`'s own,
/// closed (written and synced) before it returns.
fn write_snapshot(tmp: &Path, state: &State) -> Result<(), String> {
    let options = Options {
        reserve_bytes: COPY_RESERVE_BYTES,
        ..Options::default()
    };
    let (copy, _) = Journal::open_with(tmp, options).map_err(|error| error.to_string())?;
    durable::compact(&copy, state);
    copy.close();
    Ok(())
}

/// The copy, read as a server would start on it, holds a state of the same
/// version, prompts, rules and sessions.
fn check_copy(tmp: &Path, summary: &Summary) -> Result<(), String> {
    let unreadable =
        |why: String| format!("the copy in {} does not read back: {why}", tmp.display());
    let recovered = journal::read_unlocked(tmp).map_err(|error| unreadable(error.to_string()))?;
    let recovered = recovered.ok_or_else(|| unreadable("no snapshot was written".into()))?;
    let copied = durable::restore(&recovered).map_err(unreadable)?;
    match (
        recovered.records.is_empty(),
        Summary::of(&copied) == *summary,
    ) {
        (true, true) => Ok(()),
        _ => Err(unreadable(
            "it does not hold what was read (the snapshot was not written?)".into(),
        )),
    }
}

/// Copies `from/name` to `to/name` (new, mode 0600, synced), never through
/// a symlink; false when there is none.
fn copy_private(from: &Path, to: &Path, name: &str) -> io::Result<bool> {
    let Some(text) = private_file::read(&from.join(name))? else {
        return Ok(false);
    };
    let mut file = private_file::create_new(&to.join(name))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(true)
}

/// `tmp` becomes `dest` (an empty `dest` replaced), and the rename is synced.
fn rename_into_place(tmp: &Path, dest: &Path) -> Result<(), String> {
    let at = |error: io::Error| format!("{}: {error}", dest.display());
    fs::rename(tmp, dest).map_err(at)?;
    let parent = tmp.parent().unwrap_or(Path::new("."));
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(at)
}

/// Lowers this process's CPU priority (nice 10), so a backup on a machine
/// with few cores takes its time rather than the server's.
fn yield_to_the_server() {
    // SAFETY: nice only changes this process's scheduling priority.
    unsafe {
        libc::nice(10);
    }
}

/// The test knob: stops the process here when `ASKGATE_TEST_BACKUP_STOP`
/// names this stage.
fn stop_here(stage: &str) {
    if std::env::var(STOP_VARIABLE).is_ok_and(|wanted| wanted == stage) {
        // SAFETY: raising a signal at ourselves has no memory effects.
        unsafe {
            libc::raise(libc::SIGSTOP);
        }
    }
}
