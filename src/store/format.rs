//! The bytes on disk: the journal header, its records, the snapshot file and
//! their CRC-32, all little-endian; reading them back is a function of the
//! bytes read through a `Source` (a file, a window or a record at a time,
//! never whole; or a slice), so every rule about damage is tested without
//! a file.
//!
//! Invariants: a record is valid only if it fits, its checksum matches and its
//! version is above the one before it; zeros after the last record are the
//! preallocated end, not damage; bytes that are neither, with no valid record
//! after them, are a torn tail; anything else is a `Problem` at a byte offset.
//! A journal's header (from format 2) holds a high-water mark, the last
//! version acknowledged, with a CRC of its own, rewritten in place; whether
//! the records reach it is `recover.rs`'s to judge.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;

pub const JOURNAL_MAGIC: &[u8; 8] = b"askgjrnl";
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"askgsnap";
/// The format of the files written: what their payloads hold is the
/// durable record format of this number (`core/record.rs`; 1 before issue
/// 21, when they held the browser's JSON). A file's header says the newest
/// format its content may hold; every format from 1 to this one is read,
/// a newer one refused before anything is touched.
pub const FORMAT: u32 = 2;
/// Magic, format, CRC of those and the base, base version; then (from
/// format 2) the high-water mark: the last version acknowledged, its own
/// CRC and 4 zero bytes. Format 1's header ends before the mark.
pub const HEADER_LEN: u64 = 40;
/// Where the high-water mark lies in a journal of format 2 or later.
pub const MARK_AT: u64 = 24;
/// Payload length, CRC of version and payload, version.
pub const RECORD_HEADER_LEN: u64 = 16;
/// Magic, format, CRC of the rest, version, payload length.
pub const SNAPSHOT_HEADER_LEN: u64 = 32;

static CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut index = 0;
    while index < 256 {
        let mut crc = index as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[index] = crc;
        index += 1;
    }
    table
}

/// CRC-32 (IEEE 802.3, as in zlib and PNG) over the parts, in order.
pub fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = Crc32::new();
    for part in parts {
        crc.update(part);
    }
    crc.finish()
}

/// CRC-32 over bytes that come a piece at a time.
pub struct Crc32(u32);

impl Crc32 {
    pub fn new() -> Crc32 {
        Crc32(!0)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = CRC_TABLE[((self.0 ^ u32::from(*byte)) & 0xff) as usize] ^ (self.0 >> 8);
        }
    }

    pub fn finish(&self) -> u32 {
        !self.0
    }
}

/// The most bytes one record's payload may say it holds when read back: far
/// above what `append` takes (a quarter of the reserve), so a damaged
/// length is never allocated.
pub const MAX_RECORD_BYTES: u64 = 16 << 20;

/// Bytes read at any offset: a file (read as needed, never whole) or, in
/// tests, a slice.
pub trait Source {
    fn size(&self) -> u64;
    /// Fills `buf` from `at`; the caller keeps within `size`.
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()>;
}

impl Source for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        let at = at as usize;
        buf.copy_from_slice(&self[at..at + buf.len()]);
        Ok(())
    }
}

/// A file and its length when it was opened.
pub struct FileSource {
    pub file: File,
    pub size: u64,
}

impl Source for FileSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, at)
    }
}

/// What is wrong in one file's bytes, and where.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub offset: u64,
    pub what: String,
}

fn problem(offset: u64, what: impl Into<String>) -> Problem {
    Problem {
        offset,
        what: what.into(),
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// A journal header of this format, after a snapshot of `base`, with its
/// high-water mark at `mark`.
pub fn journal_header(base: u64, mark: u64) -> Vec<u8> {
    let base = base.to_le_bytes();
    let format = FORMAT.to_le_bytes();
    let crc = crc32(&[JOURNAL_MAGIC, &format, &base]).to_le_bytes();
    [&JOURNAL_MAGIC[..], &format, &crc, &base, &mark_bytes(mark)].concat()
}

/// Where a journal of this format's records begin.
pub fn header_len(format: u32) -> u64 {
    match format {
        1 => 24,
        _ => HEADER_LEN,
    }
}

/// The high-water mark's bytes: the version, its CRC, zeros. All zeros
/// is no mark (cleared by hand: nothing is checked against it).
pub fn mark_bytes(mark: u64) -> [u8; 16] {
    let version = mark.to_le_bytes();
    let crc = crc32(&[b"mark", &version]).to_le_bytes();
    let mut bytes = [0; 16];
    bytes[..8].copy_from_slice(&version);
    bytes[8..12].copy_from_slice(&crc);
    bytes
}

/// The mark in these 16 bytes: `Ok(None)` when cleared.
fn mark_of(bytes: &[u8]) -> Result<Option<u64>, Problem> {
    if bytes.iter().all(|byte| *byte == 0) {
        return Ok(None);
    }
    let mark = u64_at(bytes, 0);
    match mark_bytes(mark)[..] == *bytes {
        true => Ok(Some(mark)),
        false => Err(problem(MARK_AT, "the high-water mark is damaged")),
    }
}

/// The bytes a record of this payload length takes on disk.
pub fn record_len(payload_len: usize) -> u64 {
    RECORD_HEADER_LEN + payload_len as u64
}

pub fn encode_record(out: &mut Vec<u8>, version: u64, payload: &[u8]) {
    let version = version.to_le_bytes();
    let length = u32::try_from(payload.len()).expect("a record is under 4 GiB");
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&crc32(&[&version, payload]).to_le_bytes());
    out.extend_from_slice(&version);
    out.extend_from_slice(payload);
}

/// The header written before a snapshot's payload.
#[cfg(test)]
pub fn snapshot_header(version: u64, payload: &[u8]) -> Vec<u8> {
    let length = payload.len() as u64;
    let mut crc = Crc32::new();
    crc.update(&version.to_le_bytes());
    crc.update(&length.to_le_bytes());
    crc.update(payload);
    snapshot_header_of(version, length, crc.finish())
}

/// The header of a snapshot whose payload's checksum (after the version
/// and length, as `snapshot_header` takes it) is already known.
pub fn snapshot_header_of(version: u64, length: u64, crc: u32) -> Vec<u8> {
    let format = FORMAT.to_le_bytes();
    let (version, length) = (version.to_le_bytes(), length.to_le_bytes());
    [
        &SNAPSHOT_MAGIC[..],
        &format,
        &crc.to_le_bytes(),
        &version,
        &length,
    ]
    .concat()
}

fn check_magic(header: &[u8], size: u64, magic: &[u8; 8], header_len: u64) -> Result<(), Problem> {
    let shorter = || {
        let what = format!("shorter ({size} bytes) than its {header_len}-byte header");
        Err(problem(size, what))
    };
    if size < 12 {
        return shorter();
    }
    if &header[..8] != magic {
        return Err(problem(0, "not an askgate file (wrong magic)"));
    }
    match u32_at(header, 8) {
        1..=FORMAT if size < header_len => shorter(),
        1..=FORMAT => Ok(()),
        other => Err(problem(
            8,
            format!("format {other}, this askgate reads 1 to {FORMAT}"),
        )),
    }
}

/// The format a file's header says, if it begins with `magic` (the first
/// 12 bytes only: read before anything else, and before any checksum).
pub fn header_format(src: &(impl Source + ?Sized), magic: &[u8; 8]) -> io::Result<Option<u32>> {
    if src.size() < 12 {
        return Ok(None);
    }
    let mut header = [0; 12];
    src.read_exact_at(&mut header, 0)?;
    Ok((&header[..8] == magic).then(|| u32_at(&header, 8)))
}

/// The snapshot's version and payload length, its checksum verified a
/// window at a time.
pub fn check_snapshot(src: &(impl Source + ?Sized)) -> io::Result<Result<(u64, u64), Problem>> {
    let size = src.size();
    let mut header = vec![0; (SNAPSHOT_HEADER_LEN.min(size)) as usize];
    src.read_exact_at(&mut header, 0)?;
    if let Err(found) = check_magic(&header, size, SNAPSHOT_MAGIC, SNAPSHOT_HEADER_LEN) {
        return Ok(Err(found));
    }
    let length = u64_at(&header, 24);
    let held = size - SNAPSHOT_HEADER_LEN;
    if held != length {
        let what = format!("says {length} payload bytes, holds {held}");
        return Ok(Err(problem(24, what)));
    }
    let mut crc = Crc32::new();
    crc.update(&header[16..]);
    let mut window = vec![0; WINDOW.min(held) as usize];
    let mut at = SNAPSHOT_HEADER_LEN;
    while at < size {
        let len = (size - at).min(WINDOW) as usize;
        src.read_exact_at(&mut window[..len], at)?;
        crc.update(&window[..len]);
        at += len as u64;
    }
    if crc.finish() != u32_at(&header, 12) {
        return Ok(Err(problem(12, "checksum mismatch")));
    }
    Ok(Ok((u64_at(&header, 16), length)))
}

/// The snapshot's version and payload, from its bytes.
#[cfg(test)]
pub fn decode_snapshot(bytes: &[u8]) -> Result<(u64, &[u8]), Problem> {
    let (version, _) = check_snapshot(bytes).expect("a slice reads")?;
    Ok((version, &bytes[SNAPSHOT_HEADER_LEN as usize..]))
}

/// How much of a file is read at once when it is read through.
const WINDOW: u64 = 64 * 1024;

/// How a journal's bytes end after its last valid record.
#[derive(Clone, Debug, PartialEq)]
pub enum Tail {
    /// Only zeros (the preallocated space), this many, or nothing.
    Clean { zeros: u64 },
    /// Bytes that are not a valid record, with none after them: from
    /// `offset` to the last non-zero byte, `bytes` long.
    Torn { offset: u64, bytes: u64 },
}

/// A journal read back: its base version, how many valid records it holds
/// (each shown to the caller's visitor as it is read), the first and last
/// of their versions, where the valid records end, and how it ends.
#[derive(Debug)]
pub struct Scan {
    /// The format its header says, and where its records begin.
    pub format: u32,
    pub header_len: u64,
    /// The last version acknowledged, as the journal's header says: the
    /// records (or the snapshot) must reach it.
    pub mark: Option<u64>,
    pub base: u64,
    pub records: u64,
    pub first: Option<u64>,
    pub last: Option<u64>,
    pub end: u64,
    pub tail: Tail,
}

/// Whose journal is read: a stopped server's, where every rule about
/// damage holds, or a running one's (`askgate backup`), whose writer may be
/// midway through records past the mark: there, once every acknowledged
/// record is read, the first record that does not read is the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    Stopped,
    Live,
}

/// Reads a journal record by record, never more than one record (and a
/// window) at a time; `visit` sees each valid record's version and where
/// its payload lies.
pub fn scan_journal(
    src: &(impl Source + ?Sized),
    mut visit: impl FnMut(u64, Range<u64>),
    reading: Reading,
) -> io::Result<Result<Scan, Problem>> {
    let size = src.size();
    let format = header_format(src, JOURNAL_MAGIC)?.unwrap_or(FORMAT);
    let header_len = header_len(format);
    let mut header = vec![0; (header_len.min(size)) as usize];
    src.read_exact_at(&mut header, 0)?;
    if let Err(found) = check_magic(&header, size, JOURNAL_MAGIC, header_len) {
        return Ok(Err(found));
    }
    if crc32(&[&header[..12], &header[16..24]]) != u32_at(&header, 12) {
        return Ok(Err(problem(12, "header checksum mismatch")));
    }
    let mark = match header_len > MARK_AT {
        true => mark_of(&header[MARK_AT as usize..]),
        false => Ok(None),
    };
    let mark = match mark {
        Ok(mark) => mark,
        Err(found) => return Ok(Err(found)),
    };
    let base = u64_at(&header, 16);
    let (mut position, mut last, mut buf) = (header_len, base, Vec::new());
    let (mut records, mut first) = (0, None);
    while let Some((version, payload)) = record_at(src, position, &mut buf)? {
        if version <= last {
            let what = format!("record version {version} does not follow version {last}");
            return Ok(Err(problem(position, what)));
        }
        position = payload.end;
        last = version;
        records += 1;
        first = first.or(Some(version));
        visit(version, payload);
    }
    let tail = match tail_at(src, position, last)? {
        Ok(tail) => tail,
        // The mark was read before the records it covers: past it, bytes
        // being written are the end of what a running server wrote so far.
        Err(_) if reading == Reading::Live && last >= mark.unwrap_or(0) => Tail::Torn {
            offset: position,
            bytes: size - position,
        },
        Err(found) => return Ok(Err(found)),
    };
    let last = first.map(|_| last);
    Ok(Ok(Scan {
        format,
        header_len,
        mark,
        base,
        records,
        first,
        last,
        end: position,
        tail,
    }))
}

/// The version and payload range of a structurally whole record with a
/// matching checksum at `at` (its payload left in `buf`); version 0 never
/// appears in a record.
pub fn record_at(
    src: &(impl Source + ?Sized),
    at: u64,
    buf: &mut Vec<u8>,
) -> io::Result<Option<(u64, Range<u64>)>> {
    let size = src.size();
    let Some(start) = at
        .checked_add(RECORD_HEADER_LEN)
        .filter(|start| *start <= size)
    else {
        return Ok(None);
    };
    let mut header = [0; RECORD_HEADER_LEN as usize];
    src.read_exact_at(&mut header, at)?;
    let length = u64::from(u32_at(&header, 0));
    let version = u64_at(&header, 8);
    let end = start + length;
    if length > MAX_RECORD_BYTES || end > size || version == 0 {
        return Ok(None);
    }
    buf.resize(length as usize, 0);
    src.read_exact_at(buf, start)?;
    let matches = crc32(&[&header[8..], buf]) == u32_at(&header, 4);
    Ok(matches.then_some((version, start..end)))
}

fn tail_at(src: &(impl Source + ?Sized), at: u64, last: u64) -> io::Result<Result<Tail, Problem>> {
    let Some(last_nonzero) = last_nonzero(src, at)? else {
        let zeros = src.size() - at;
        return Ok(Ok(Tail::Clean { zeros }));
    };
    if let Some(next) = next_valid_record(src, at + 1, last)? {
        let what = format!("not a valid record, yet a valid record follows at byte {next}");
        return Ok(Err(problem(at, what)));
    }
    let (offset, bytes) = (at, last_nonzero + 1 - at);
    Ok(Ok(Tail::Torn { offset, bytes }))
}

/// The offset of the last non-zero byte at or after `from`, read backwards
/// a window at a time (the end is most often the preallocated zeros).
fn last_nonzero(src: &(impl Source + ?Sized), from: u64) -> io::Result<Option<u64>> {
    let mut end = src.size();
    let mut window = vec![0; WINDOW as usize];
    while end > from {
        let start = end.saturating_sub(WINDOW).max(from);
        let bytes = &mut window[..(end - start) as usize];
        src.read_exact_at(bytes, start)?;
        if let Some(index) = bytes.iter().rposition(|byte| *byte != 0) {
            return Ok(Some(start + index as u64));
        }
        end = start;
    }
    Ok(None)
}

fn next_valid_record(
    src: &(impl Source + ?Sized),
    from: u64,
    last: u64,
) -> io::Result<Option<u64>> {
    let size = src.size();
    let (mut window, mut buf) = (Vec::new(), Vec::new());
    let mut start = from;
    while start + RECORD_HEADER_LEN <= size {
        // Each window holds every header that starts in its first WINDOW bytes.
        let len = (size - start).min(WINDOW + RECORD_HEADER_LEN - 1);
        window.resize(len as usize, 0);
        src.read_exact_at(&mut window, start)?;
        let headers = len + 1 - RECORD_HEADER_LEN;
        for index in 0..headers.min(WINDOW) as usize {
            // Most offsets fail on the version or the length, before any checksum.
            let at = start + index as u64;
            let length = u64::from(u32_at(&window, index));
            let fits = at + RECORD_HEADER_LEN + length <= size;
            if fits && u64_at(&window, index + 8) > last && record_at(src, at, &mut buf)?.is_some()
            {
                return Ok(Some(at));
            }
        }
        start += WINDOW;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(base: u64, records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut bytes = journal_header(base, 0);
        for (version, payload) in records {
            encode_record(&mut bytes, *version, payload);
        }
        bytes
    }

    /// The scan, and each record's version and payload range.
    type Records = Vec<(u64, Range<usize>)>;

    fn scan_journal(bytes: &[u8]) -> Result<(Scan, Records), Problem> {
        let mut records = Vec::new();
        let visit =
            |version, at: Range<u64>| records.push((version, at.start as usize..at.end as usize));
        let scan = super::scan_journal(bytes, visit, Reading::Stopped).unwrap()?;
        Ok((scan, records))
    }

    fn versions(records: &[(u64, Range<usize>)]) -> Vec<u64> {
        records.iter().map(|(version, _)| *version).collect()
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[b"1234", b"56789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[]), 0);
    }

    #[test]
    fn records_read_back_with_their_payloads() {
        let bytes = journal(7, &[(8, b"eight"), (10, b""), (11, b"eleven")]);
        let (scan, records) = scan_journal(&bytes).unwrap();
        assert_eq!((scan.base, versions(&records)), (7, vec![8, 10, 11]));
        assert_eq!(
            (scan.records, scan.first, scan.last),
            (3, Some(8), Some(11))
        );
        assert_eq!(&bytes[records[2].1.clone()], b"eleven");
        assert_eq!(
            (scan.end, scan.tail),
            (bytes.len() as u64, Tail::Clean { zeros: 0 })
        );
    }

    #[test]
    fn zeros_after_the_last_record_are_a_clean_end() {
        let mut bytes = journal(0, &[(1, b"one")]);
        bytes.resize(bytes.len() + 4096, 0);
        let (scan, records) = scan_journal(&bytes).unwrap();
        assert_eq!(
            (versions(&records), scan.tail),
            (vec![1], Tail::Clean { zeros: 4096 })
        );
    }

    #[test]
    fn a_record_cut_short_in_the_preallocated_space_is_a_torn_tail() {
        let whole = journal(0, &[(1, b"one"), (2, b"two, cut short")]);
        let mut bytes = whole.clone();
        bytes.resize(bytes.len() + 100, 0);
        let cut = whole.len() - 5;
        bytes[cut..whole.len()].fill(0);
        let start = journal(0, &[(1, b"one")]).len() as u64;
        let (scan, records) = scan_journal(&bytes).unwrap();
        let torn = Tail::Torn {
            offset: start,
            bytes: cut as u64 - start,
        };
        assert_eq!(
            (versions(&records), scan.end, scan.tail),
            (vec![1], start, torn)
        );
    }

    #[test]
    fn a_bad_record_before_a_valid_one_is_a_problem_at_its_offset() {
        let mut bytes = journal(0, &[(1, b"one"), (2, b"two"), (3, b"three")]);
        let second = journal(0, &[(1, b"one")]).len();
        for byte in [0, 5, 9, 17] {
            let mut damaged = bytes.clone();
            damaged[second + byte] ^= 0x40;
            let found = scan_journal(&damaged).unwrap_err();
            assert_eq!(found.offset, second as u64, "byte {byte} of the record");
        }
        bytes[second + 17] ^= 0x40;
        let what = scan_journal(&bytes).unwrap_err().what;
        assert!(what.contains("valid record follows"), "{what}");
    }

    /// A running server's journal, read while its writer is midway through
    /// a batch: a record past the mark that does not read yet, with whole
    /// ones after it, is the end of what was written so far; before the
    /// mark it is damage still, and a stopped server's is damage either way.
    #[test]
    fn a_live_journal_ends_at_a_record_being_written_past_its_mark() {
        let with_mark = |mark: u64| {
            let mut bytes = journal(0, &[(1, b"one"), (2, b"two"), (3, b"three")]);
            bytes[MARK_AT as usize..MARK_AT as usize + 16].copy_from_slice(&mark_bytes(mark));
            bytes
        };
        let second = journal(0, &[(1, b"one")]).len();
        for mark in [1, 2] {
            let mut midway = with_mark(mark);
            midway[second + 17] ^= 0x40;
            let live = super::scan_journal(&midway[..], |_, _| {}, Reading::Live).unwrap();
            let stopped = super::scan_journal(&midway[..], |_, _| {}, Reading::Stopped).unwrap();
            assert!(stopped.is_err(), "a stopped server's is damage");
            match mark {
                1 => {
                    let scan = live.expect("past the mark, the end so far");
                    assert_eq!((scan.last, scan.end), (Some(1), second as u64));
                }
                _ => assert!(live.is_err(), "an acknowledged record that does not read"),
            }
        }
    }

    #[test]
    fn versions_must_increase() {
        let bytes = journal(5, &[(6, b"a"), (6, b"b")]);
        let found = scan_journal(&bytes).unwrap_err();
        assert_eq!(found.offset, journal(5, &[(6, b"a")]).len() as u64);
        let at_base = journal(5, &[(5, b"a")]);
        assert_eq!(scan_journal(&at_base).unwrap_err().offset, HEADER_LEN);
    }

    #[test]
    fn headers_are_checked() {
        let good = journal(3, &[]);
        let cases: [(Vec<u8>, u64); 6] = [
            (good[..10].to_vec(), 10),
            ([b"xxxxxxxx", &good[8..]].concat(), 0),
            ([&good[..8], &9u32.to_le_bytes(), &good[12..]].concat(), 8),
            ([&good[..8], &0u32.to_le_bytes(), &good[12..]].concat(), 8),
            ([&good[..16], &4u64.to_le_bytes(), &good[24..]].concat(), 12),
            ([&good[..30], &[1], &good[31..]].concat(), MARK_AT),
        ];
        for (bytes, offset) in cases {
            assert_eq!(scan_journal(&bytes).unwrap_err().offset, offset);
        }
    }

    #[test]
    fn a_journal_of_format_1_has_no_mark_and_its_records_follow_24_bytes() {
        let mut bytes = journal(3, &[(4, b"four")]);
        let (scan, _) = scan_journal(&bytes).unwrap();
        assert_eq!(
            (scan.format, scan.mark, scan.header_len),
            (FORMAT, Some(0), HEADER_LEN)
        );
        bytes[MARK_AT as usize..HEADER_LEN as usize].fill(0);
        assert_eq!(scan_journal(&bytes).unwrap().0.mark, None, "a cleared mark");
        let format_1 = [&JOURNAL_MAGIC[..], &1u32.to_le_bytes()].concat();
        let crc = crc32(&[&format_1, &3u64.to_le_bytes()]).to_le_bytes();
        let mut old = [&format_1[..], &crc, &3u64.to_le_bytes()].concat();
        encode_record(&mut old, 4, b"four");
        let (scan, records) = scan_journal(&old).unwrap();
        assert_eq!((scan.format, scan.mark, scan.header_len), (1, None, 24));
        assert_eq!(versions(&records), vec![4]);
        assert_eq!(&old[records[0].1.clone()], b"four");
    }

    #[test]
    fn snapshots_round_trip_and_refuse_damage() {
        let payload = b"the whole state";
        let bytes = [snapshot_header(42, payload), payload.to_vec()].concat();
        assert_eq!(decode_snapshot(&bytes).unwrap(), (42, &payload[..]));
        let short = &bytes[..bytes.len() - 1];
        assert_eq!(decode_snapshot(short).unwrap_err().offset, 24);
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        assert_eq!(decode_snapshot(&flipped).unwrap_err().offset, 12);
    }
}
