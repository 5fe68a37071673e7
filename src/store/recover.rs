//! Reading a data directory back: the snapshot and the journal, checked
//! against each other without changing anything. `Journal::open` and
//! `askgate journal check` both read through here, so they say the same words
//! about the same bytes.
//!
//! Invariants: nothing here writes; every refusal names a file, a byte offset
//! and what the operator can do; a journal never follows a newer snapshot
//! than the one present; the records and the snapshot reach the journal's
//! high-water mark, and a snapshot never stands without its journal, or
//! acknowledged changes are missing, which is damage, not a torn tail; a
//! file of a newer format is refused having read 12 bytes of it.

use super::disk::{JOURNAL, JOURNAL_TMP, SNAPSHOT, SNAPSHOT_TMP};
use super::format::FileSource;
use super::format::{self, HEADER_LEN, Problem, Reading, Scan, Tail};
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A file that cannot be trusted: askgate refuses to start rather than drop
/// data silently.
#[derive(Clone, Debug, PartialEq)]
pub struct Damage {
    pub file: PathBuf,
    pub offset: u64,
    pub problem: String,
    /// What the operator can do, when it is not the usual for the file.
    advice: Option<String>,
}

const KEEP: &str = "keep a copy of the data directory, then";

impl Damage {
    fn new(file: PathBuf, found: Problem) -> Damage {
        let (offset, problem) = (found.offset, found.what);
        Damage {
            file,
            offset,
            problem,
            advice: None,
        }
    }

    fn advice(&self) -> String {
        if let Some(advice) = &self.advice {
            return advice.clone();
        }
        let truncatable = self.file.ends_with(JOURNAL) && self.offset >= HEADER_LEN;
        match truncatable {
            true => truncate_advice(&self.file, self.offset, true),
            false => format!("{KEEP} restore {} from a backup", self.file.display()),
        }
    }
}

/// Dropping a journal's records from `offset` on; and, when it has a
/// high-water mark (format 2 on), clearing it, for it names them.
fn truncate_advice(file: &Path, offset: u64, marked: bool) -> String {
    let truncate = format!(
        "{KEEP} restore it from a backup, or drop every change recorded from this byte on with \
         `truncate -s {offset} {}`",
        file.display()
    );
    match marked {
        true => format!("{truncate} and {}", clear_mark(file)),
        false => truncate,
    }
}

/// How an operator accepts the loss of what a journal's high-water mark
/// says was acknowledged: by clearing it.
fn clear_mark(journal: &Path) -> String {
    format!(
        "clear its high-water mark with `dd if=/dev/zero of={} bs=1 seek={} count=16 \
         conv=notrunc`",
        journal.display(),
        format::MARK_AT
    )
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
    /// A file of a format newer than this askgate reads: nothing is
    /// touched, the operator upgrades askgate.
    Newer {
        file: PathBuf,
        format: u32,
    },
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
            OpenError::Newer { file, format } => write!(
                f,
                "data directory format {format} is newer than this askgate (reads up to {}); \
                 upgrade askgate ({} says so; nothing was changed)",
                format::FORMAT,
                file.display()
            ),
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

/// The journal file's length and what it holds (its bytes are read a
/// record at a time, never whole).
pub struct JournalFile {
    pub len: u64,
    pub scan: Scan,
    /// Valid records after the snapshot: what replay applies.
    pub replayed: u64,
}

/// What a data directory holds, read and checked, nothing changed.
pub struct Found {
    pub dir: PathBuf,
    /// The snapshot's version and payload length.
    pub snapshot: Option<(u64, u64)>,
    pub journal: Option<JournalFile>,
    pub leftovers: Vec<&'static str>,
}

pub fn read(dir: &Path) -> Result<Found, OpenError> {
    read_as(dir, Reading::Stopped)
}

/// A running server's directory read as `read` does, its journal's end
/// past the mark taken as what was written so far (`format::Reading`).
pub fn read_live(dir: &Path) -> Result<Found, OpenError> {
    read_as(dir, Reading::Live)
}

fn read_as(dir: &Path, reading: Reading) -> Result<Found, OpenError> {
    refuse_newer(dir)?;
    let snapshot = read_snapshot(dir)?;
    let snapshot_version = snapshot.as_ref().map_or(0, |(version, _)| *version);
    let journal = read_journal(dir, snapshot_version, reading)?;
    match &journal {
        Some(journal) => {
            check_base(dir, journal.scan.base, snapshot_version)?;
            check_mark(dir, &journal.scan, snapshot_version)?;
        }
        None => check_present(dir, snapshot_version)?,
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

/// Refuses a directory whose snapshot or journal is of a newer format than
/// this askgate reads, reading only their first bytes: called before the
/// directory is locked or anything in it is written.
pub fn refuse_newer(dir: &Path) -> Result<(), OpenError> {
    for (name, magic) in [
        (SNAPSHOT, format::SNAPSHOT_MAGIC),
        (JOURNAL, format::JOURNAL_MAGIC),
    ] {
        let path = dir.join(name);
        let Some(source) = open_source(&path)? else {
            continue;
        };
        let found = format::header_format(&source, magic).map_err(OpenError::io(&path))?;
        if let Some(format) = found.filter(|format| *format > format::FORMAT) {
            return Err(OpenError::Newer { file: path, format });
        }
    }
    Ok(())
}

/// Opens a file to read it a window at a time; `None` if it is not there.
pub fn open_source(path: &Path) -> Result<Option<FileSource>, OpenError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(OpenError::io(path)(error)),
    };
    let size = file.metadata().map_err(OpenError::io(path))?.len();
    Ok(Some(FileSource { file, size }))
}

fn read_snapshot(dir: &Path) -> Result<Option<(u64, u64)>, OpenError> {
    let path = dir.join(SNAPSHOT);
    let Some(source) = open_source(&path)? else {
        return Ok(None);
    };
    match format::check_snapshot(&source).map_err(OpenError::io(&path))? {
        Ok(found) => Ok(Some(found)),
        Err(found) => Err(Damage::new(path, found).into()),
    }
}

fn read_journal(
    dir: &Path,
    snapshot_version: u64,
    reading: Reading,
) -> Result<Option<JournalFile>, OpenError> {
    let path = dir.join(JOURNAL);
    // An empty file is no journal: how an operator says to start from the
    // snapshot alone (`check_present`).
    let Some(source) = open_source(&path)?.filter(|source| source.size > 0) else {
        return Ok(None);
    };
    let mut replayed = 0;
    let count = |version, _| replayed += u64::from(version > snapshot_version);
    match format::scan_journal(&source, count, reading).map_err(OpenError::io(&path))? {
        Ok(scan) => Ok(Some(JournalFile {
            len: source.size,
            scan,
            replayed,
        })),
        Err(found) => {
            let format = format::header_format(&source, format::JOURNAL_MAGIC);
            let format_1 = format.map_err(OpenError::io(&path))? == Some(1);
            let advice = match found.offset {
                format::MARK_AT if !format_1 => Some(format!(
                    "{KEEP} restore it from a backup, or {}: nothing is then checked against it \
                     until it is written again",
                    clear_mark(&path)
                )),
                offset if format_1 && offset >= format::header_len(1) => {
                    Some(truncate_advice(&path, offset, false))
                }
                _ => None,
            };
            Err(Damage {
                advice,
                ..Damage::new(path, found)
            }
            .into())
        }
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

/// The records (or the snapshot) must reach the version the journal's
/// high-water mark says was acknowledged: short of it, acknowledged
/// changes are missing (a truncated journal, a damaged last record), which
/// a torn tail (a write a crash cut short) never is, for the mark moves
/// only once a sync has covered the records it names.
fn check_mark(dir: &Path, scan: &Scan, snapshot_version: u64) -> Result<(), Damage> {
    let reached = scan.last.unwrap_or(0).max(snapshot_version);
    let Some(mark) = scan.mark.filter(|mark| *mark > reached) else {
        return Ok(());
    };
    let after = match scan.tail {
        Tail::Torn { offset, bytes } => format!(
            "; the {bytes} bytes from byte {offset} are not a valid record (damaged, not torn: \
             they were acknowledged)"
        ),
        Tail::Clean { .. } => String::new(),
    };
    let what = format!(
        "versions after {reached} up to {mark} were acknowledged (the high-water mark), but the \
         records end at version {reached}{after}: acknowledged changes are missing (a truncated \
         or damaged journal)"
    );
    let file = dir.join(JOURNAL);
    let advice = format!(
        "{KEEP} restore it from a backup, or start from what is left, losing them: {}",
        clear_mark(&file)
    );
    let problem = Problem {
        offset: scan.end,
        what,
    };
    Err(Damage {
        advice: Some(advice),
        ..Damage::new(file, problem)
    })
}

/// A snapshot never stands without its journal (askgate makes the journal
/// before the first snapshot, and a fresh one before it renames another):
/// one deleted beside it may have held acknowledged changes.
fn check_present(dir: &Path, snapshot_version: u64) -> Result<(), Damage> {
    if snapshot_version == 0 || dir.join(JOURNAL).exists() {
        return Ok(());
    }
    let file = dir.join(JOURNAL);
    let what = format!(
        "missing beside the snapshot of version {snapshot_version}: every change acknowledged \
         after that version is missing with it"
    );
    let advice = format!(
        "{KEEP} restore it from a backup, or start from the snapshot alone, losing them: \
         `touch {}` (an empty journal)",
        file.display()
    );
    let problem = Problem { offset: 0, what };
    Err(Damage {
        advice: Some(advice),
        ..Damage::new(file, problem)
    })
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
        let last_record = self.journal.as_ref().and_then(|journal| journal.scan.last);
        last_record.unwrap_or(0).max(self.snapshot_version())
    }

    pub fn torn_tail(&self) -> Option<String> {
        match self.journal.as_ref()?.scan.tail {
            Tail::Torn { offset, bytes } => {
                Some(torn_warning(&self.dir.join(JOURNAL), offset, bytes))
            }
            Tail::Clean { .. } => None,
        }
    }

    /// The journal's records after the snapshot, to be read in order.
    pub fn replay(&self) -> Records {
        let start = self
            .journal
            .as_ref()
            .map_or(HEADER_LEN, |j| j.scan.header_len);
        Records {
            path: self.dir.join(JOURNAL),
            start,
            end: self.journal.as_ref().map_or(HEADER_LEN, |j| j.scan.end),
            after: self.snapshot_version(),
            count: self.journal.as_ref().map_or(0, |j| j.replayed),
        }
    }

    /// The snapshot, to be read a line at a time.
    pub fn snapshot_file(&self) -> Option<Snapshot> {
        let (version, len) = self.snapshot?;
        let path = self.dir.join(SNAPSHOT);
        Some(Snapshot { version, len, path })
    }

    pub fn report(&self) -> Report {
        let scan = self.journal.as_ref().map(|journal| &journal.scan);
        let preallocated = match scan.map(|scan| &scan.tail) {
            Some(Tail::Clean { zeros }) => *zeros,
            _ => 0,
        };
        Report {
            dir: self.dir.clone(),
            snapshot: self.snapshot,
            journal_base: scan.map(|scan| scan.base),
            records: scan.map_or(0, |scan| scan.records),
            replayed: self.journal.as_ref().map_or(0, |j| j.replayed),
            versions: scan.and_then(|scan| scan.first.zip(scan.last)),
            journal_bytes: scan.map_or(0, |scan| scan.end - scan.header_len),
            mark: scan.and_then(|scan| scan.mark),
            preallocated_bytes: preallocated,
            torn_tail: self.torn_tail(),
            leftovers: self.leftovers.iter().map(|name| name.to_string()).collect(),
        }
    }
}

/// The snapshot a directory held: its version, and its payload to read as
/// a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub version: u64,
    /// Payload bytes.
    pub len: u64,
    path: PathBuf,
}

impl Snapshot {
    /// The payload, buffered a window at a time.
    pub fn reader(&self) -> io::Result<impl BufRead> {
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(format::SNAPSHOT_HEADER_LEN))?;
        Ok(BufReader::with_capacity(64 * 1024, file.take(self.len)))
    }

    /// The whole payload (tests, and the layout before lines).
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        let mut payload = Vec::new();
        self.reader()?.read_to_end(&mut payload)?;
        Ok(payload)
    }
}

/// The records a directory's journal holds after its snapshot, read one at
/// a time (each checked again as it is read).
#[derive(Clone, Debug, PartialEq)]
pub struct Records {
    path: PathBuf,
    /// Where the records begin (after the header).
    start: u64,
    /// Where the valid records end.
    end: u64,
    after: u64,
    count: u64,
}

impl Records {
    /// How many there are.
    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Each record's version and payload, in order.
    pub fn iter(&self) -> io::Result<impl Iterator<Item = io::Result<(u64, Vec<u8>)>> + use<>> {
        let source = match self.count {
            0 => None,
            _ => Some(FileSource {
                size: self.end,
                file: File::open(&self.path)?,
            }),
        };
        let (mut at, after) = (self.start, self.after);
        let next = move || -> Option<io::Result<(u64, Vec<u8>)>> {
            let source = source.as_ref()?;
            loop {
                let mut payload = Vec::new();
                let read = format::record_at(source, at, &mut payload);
                let (version, range) = match read {
                    Ok(Some(found)) => found,
                    Ok(None) if at == source.size => return None,
                    Ok(None) => {
                        return Some(Err(io::Error::other("the journal changed under replay")));
                    }
                    Err(error) => return Some(Err(error)),
                };
                at = range.end;
                if version > after {
                    return Some(Ok((version, payload)));
                }
            }
        };
        Ok(std::iter::from_fn(next))
    }

    /// Every record in memory at once (tests).
    pub fn read_all(&self) -> Vec<(u64, Vec<u8>)> {
        let records = self.iter().expect("the journal opens");
        records
            .collect::<io::Result<_>>()
            .expect("the journal reads")
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
    /// The last version acknowledged, as the journal's header says.
    pub mark: Option<u64>,
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
        writeln!(f, "{} preallocated", self.preallocated_bytes)?;
        match self.mark {
            Some(mark) => writeln!(f, "high-water mark: version {mark}, reached"),
            None => writeln!(
                f,
                "high-water mark: none (format 1, or cleared): missing records cannot be told"
            ),
        }
    }
}

/// Reads DIR without taking its lock or changing anything.
pub fn check(dir: &Path) -> Result<Report, OpenError> {
    std::fs::metadata(dir).map_err(OpenError::io(dir))?;
    Ok(read(dir)?.report())
}
