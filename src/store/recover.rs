//! Reading a data directory back: the snapshot and the journal, checked
//! against each other without changing anything. `Journal::open` and
//! `askgate journal check` both read through here, so they say the same words
//! about the same bytes.
//!
//! Invariants: nothing here writes; every refusal names a file, a byte offset
//! and what the operator can do; a journal never follows a newer snapshot
//! than the one present.

use super::disk::{self, JOURNAL, JOURNAL_TMP, SNAPSHOT, SNAPSHOT_TMP};
use super::format::{self, HEADER_LEN, Problem, Scan, Tail};
use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A file that cannot be trusted: askgate refuses to start rather than drop
/// data silently.
#[derive(Clone, Debug, PartialEq)]
pub struct Damage {
    pub file: PathBuf,
    pub offset: u64,
    pub problem: String,
}

impl Damage {
    fn new(file: PathBuf, found: Problem) -> Damage {
        let (offset, problem) = (found.offset, found.what);
        Damage {
            file,
            offset,
            problem,
        }
    }

    fn advice(&self) -> String {
        let file = self.file.display();
        let keep = "keep a copy of the data directory, then";
        let truncatable = self.file.ends_with(JOURNAL) && self.offset >= HEADER_LEN;
        match truncatable {
            true => format!(
                "{keep} restore it from a backup, or drop every change recorded from this \
                 byte on with `truncate -s {} {file}`",
                self.offset
            ),
            false => format!("{keep} restore {file} from a backup"),
        }
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let (file, offset, problem) = (self.file.display(), self.offset, &self.problem);
        write!(f, "{file} is damaged at byte {offset}: {problem}; ")?;
        write!(
            f,
            "askgate refuses to start rather than drop data silently; {}",
            self.advice()
        )
    }
}

impl std::error::Error for Damage {}

/// Why a data directory could not be opened or checked.
#[derive(Debug)]
pub enum OpenError {
    /// Another journal holds the directory's lock (`check` never says this).
    Locked {
        dir: PathBuf,
        pid: Option<u32>,
    },
    Damage(Damage),
    Io {
        path: PathBuf,
        error: io::Error,
    },
}

impl OpenError {
    pub(super) fn io(path: &Path) -> impl FnOnce(io::Error) -> OpenError {
        let path = path.to_path_buf();
        move |error| OpenError::Io { path, error }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            OpenError::Locked { dir, pid } => {
                let pid = pid.map_or("unknown".to_string(), |pid| pid.to_string());
                let dir = dir.display();
                write!(
                    f,
                    "data directory {dir} is in use by another askgate (pid {pid}); "
                )?;
                write!(f, "stop it, or give this one another --data-dir")
            }
            OpenError::Damage(damage) => damage.fmt(f),
            OpenError::Io { path, error } => write!(f, "{}: {error}", path.display()),
        }
    }
}

impl std::error::Error for OpenError {}

impl From<Damage> for OpenError {
    fn from(damage: Damage) -> OpenError {
        OpenError::Damage(damage)
    }
}

/// The journal file's bytes and what they hold.
pub struct JournalFile {
    pub bytes: Vec<u8>,
    pub scan: Scan,
}

/// What a data directory holds, read and checked, nothing changed.
pub struct Found {
    pub dir: PathBuf,
    pub snapshot: Option<(u64, Vec<u8>)>,
    pub journal: Option<JournalFile>,
    pub leftovers: Vec<&'static str>,
}

pub fn read(dir: &Path) -> Result<Found, OpenError> {
    let snapshot = read_snapshot(dir)?;
    let journal = read_journal(dir)?;
    let snapshot_version = snapshot.as_ref().map_or(0, |(version, _)| *version);
    if let Some(journal) = &journal {
        check_base(dir, journal.scan.base, snapshot_version)?;
    }
    let leftovers = [SNAPSHOT_TMP, JOURNAL_TMP];
    let leftovers = leftovers.into_iter().filter(|name| dir.join(name).exists());
    Ok(Found {
        dir: dir.to_path_buf(),
        snapshot,
        journal,
        leftovers: leftovers.collect(),
    })
}

fn read_snapshot(dir: &Path) -> Result<Option<(u64, Vec<u8>)>, OpenError> {
    let path = dir.join(SNAPSHOT);
    let Some(mut bytes) = disk::read_if_exists(&path).map_err(OpenError::io(&path))? else {
        return Ok(None);
    };
    let version = match format::decode_snapshot(&bytes) {
        Ok((version, _)) => version,
        Err(found) => return Err(Damage::new(path, found).into()),
    };
    let payload = bytes.split_off(format::SNAPSHOT_HEADER_LEN as usize);
    Ok(Some((version, payload)))
}

fn read_journal(dir: &Path) -> Result<Option<JournalFile>, OpenError> {
    let path = dir.join(JOURNAL);
    let Some(bytes) = disk::read_if_exists(&path).map_err(OpenError::io(&path))? else {
        return Ok(None);
    };
    match format::scan_journal(&bytes) {
        Ok(scan) => Ok(Some(JournalFile { bytes, scan })),
        Err(found) => Err(Damage::new(path, found).into()),
    }
}

/// A journal starts after the snapshot it follows; that snapshot, or a newer
/// one, must be present.
fn check_base(dir: &Path, base: u64, snapshot_version: u64) -> Result<(), Damage> {
    if base <= snapshot_version {
        return Ok(());
    }
    let have = match snapshot_version {
        0 => "there is no snapshot".to_string(),
        version => format!("the snapshot covers only version {version}"),
    };
    let what = format!("the journal follows a snapshot of version {base}, but {have}");
    Err(Damage::new(dir.join(JOURNAL), Problem { offset: 16, what }))
}

/// The warning for a torn last record, the same in `open` and `check`.
fn torn_warning(file: &Path, offset: u64, bytes: u64) -> String {
    let file = file.display();
    format!(
        "{file}: a torn last record at byte {offset} ({bytes} bytes), most likely a write \
         cut short by a crash; it is dropped on open"
    )
}

impl Found {
    pub fn snapshot_version(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |(version, _)| *version)
    }

    /// The highest version the directory holds (a journal's base is never
    /// above the snapshot's version).
    pub fn last_version(&self) -> u64 {
        let records = self.journal.as_ref().map(|journal| &journal.scan.records);
        let last_record = records.and_then(|records| records.last());
        last_record
            .map_or(0, |(version, _)| *version)
            .max(self.snapshot_version())
    }

    pub fn torn_tail(&self) -> Option<String> {
        match self.journal.as_ref()?.scan.tail {
            Tail::Torn { offset, bytes } => {
                Some(torn_warning(&self.dir.join(JOURNAL), offset, bytes))
            }
            Tail::Clean { .. } => None,
        }
    }

    /// The journal's records after the snapshot, in order: what replay applies.
    pub fn replay(&self) -> Vec<(u64, Vec<u8>)> {
        let Some(journal) = &self.journal else {
            return Vec::new();
        };
        let after = self.snapshot_version();
        let records = journal
            .scan
            .records
            .iter()
            .filter(|(version, _)| *version > after);
        let copy = |(version, payload): &(u64, Range<usize>)| {
            (*version, journal.bytes[payload.clone()].to_vec())
        };
        records.map(copy).collect()
    }

    pub fn report(&self) -> Report {
        let scan = self.journal.as_ref().map(|journal| &journal.scan);
        let records = scan.map_or(&[][..], |scan| &scan.records[..]);
        let after = self.snapshot_version();
        let first_and_last = records.first().zip(records.last());
        let preallocated = match scan.map(|scan| &scan.tail) {
            Some(Tail::Clean { zeros }) => *zeros,
            _ => 0,
        };
        Report {
            dir: self.dir.clone(),
            snapshot: self
                .snapshot
                .as_ref()
                .map(|(v, payload)| (*v, payload.len() as u64)),
            journal_base: scan.map(|scan| scan.base),
            records: records.len() as u64,
            replayed: records
                .iter()
                .filter(|(version, _)| *version > after)
                .count() as u64,
            versions: first_and_last.map(|((first, _), (last, _))| (*first, *last)),
            journal_bytes: scan.map_or(0, |scan| scan.end - HEADER_LEN),
            preallocated_bytes: preallocated,
            torn_tail: self.torn_tail(),
            leftovers: self.leftovers.iter().map(|name| name.to_string()).collect(),
        }
    }
}

/// What `askgate journal check DIR` prints.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub dir: PathBuf,
    /// The snapshot's version and payload bytes.
    pub snapshot: Option<(u64, u64)>,
    /// The snapshot version the journal follows, if there is a journal.
    pub journal_base: Option<u64>,
    /// Valid records in the journal, and how many of them are after the
    /// snapshot (replayed on open).
    pub records: u64,
    pub replayed: u64,
    /// The first and last record versions.
    pub versions: Option<(u64, u64)>,
    /// Bytes of valid records, and of preallocated zeros after them.
    pub journal_bytes: u64,
    pub preallocated_bytes: u64,
    pub torn_tail: Option<String>,
    /// `snapshot.tmp` or `journal.tmp`: an unfinished compaction.
    pub leftovers: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(f, "data directory: {}", self.dir.display())?;
        match self.snapshot {
            Some((version, bytes)) => writeln!(f, "snapshot: version {version}, {bytes} bytes")?,
            None => writeln!(f, "snapshot: none")?,
        }
        self.fmt_journal(f)?;
        if let Some(torn) = &self.torn_tail {
            writeln!(f, "torn tail: {torn}")?;
        }
        for name in &self.leftovers {
            writeln!(
                f,
                "leftover: {name} (an unfinished compaction; removed on open)"
            )?;
        }
        Ok(())
    }
}

impl Report {
    fn fmt_journal(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let Some(base) = self.journal_base else {
            return writeln!(f, "journal: none");
        };
        let versions = match self.versions {
            Some((first, last)) => format!(", versions {first} to {last}"),
            None => String::new(),
        };
        let (records, replayed) = (self.records, self.replayed);
        write!(
            f,
            "journal: follows version {base}; {records} records{versions}, "
        )?;
        write!(
            f,
            "{replayed} to replay; {} bytes of records, ",
            self.journal_bytes
        )?;
        writeln!(f, "{} preallocated", self.preallocated_bytes)
    }
}

/// Reads DIR without taking its lock or changing anything.
pub fn check(dir: &Path) -> Result<Report, OpenError> {
    std::fs::metadata(dir).map_err(OpenError::io(dir))?;
    Ok(read(dir)?.report())
}
