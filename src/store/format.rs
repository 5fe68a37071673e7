//! The bytes on disk: the journal header, its records, the snapshot file and
//! their CRC-32, all little-endian; reading them back is a pure function of
//! the bytes, so every rule about damage is tested without a file.
//!
//! Invariants: a record is valid only if it fits, its checksum matches and its
//! version is above the one before it; zeros after the last record are the
//! preallocated end, not damage; bytes that are neither, with no valid record
//! after them, are a torn tail; anything else is a `Problem` at a byte offset.

use std::ops::Range;

pub const JOURNAL_MAGIC: &[u8; 8] = b"askgjrnl";
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"askgsnap";
pub const FORMAT: u32 = 1;
/// Magic, format, CRC of the rest, base version.
pub const HEADER_LEN: u64 = 24;
/// Payload length, CRC of version and payload, version.
pub const RECORD_HEADER_LEN: u64 = 16;
/// Magic, format, CRC of the rest, version, payload length.
pub const SNAPSHOT_HEADER_LEN: u64 = 32;

const CRC_TABLE: [u32; 256] = crc_table();

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
    let mut crc = !0u32;
    for byte in parts.iter().flat_map(|part| part.iter()) {
        crc = CRC_TABLE[((crc ^ u32::from(*byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
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

pub fn journal_header(base: u64) -> Vec<u8> {
    let base = base.to_le_bytes();
    let format = FORMAT.to_le_bytes();
    let crc = crc32(&[JOURNAL_MAGIC, &format, &base]).to_le_bytes();
    [&JOURNAL_MAGIC[..], &format, &crc, &base].concat()
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
pub fn snapshot_header(version: u64, payload: &[u8]) -> Vec<u8> {
    let format = FORMAT.to_le_bytes();
    let version = version.to_le_bytes();
    let length = (payload.len() as u64).to_le_bytes();
    let crc = crc32(&[&version, &length, payload]).to_le_bytes();
    [&SNAPSHOT_MAGIC[..], &format, &crc, &version, &length].concat()
}

fn check_magic(bytes: &[u8], magic: &[u8; 8], header_len: u64) -> Result<(), Problem> {
    if (bytes.len() as u64) < header_len {
        let what = format!(
            "shorter ({} bytes) than its {header_len}-byte header",
            bytes.len()
        );
        return Err(problem(bytes.len() as u64, what));
    }
    if &bytes[..8] != magic {
        return Err(problem(0, "not an askgate file (wrong magic)"));
    }
    match u32_at(bytes, 8) {
        FORMAT => Ok(()),
        other => Err(problem(
            8,
            format!("format {other}, this askgate reads {FORMAT}"),
        )),
    }
}

/// The snapshot's version and payload.
pub fn decode_snapshot(bytes: &[u8]) -> Result<(u64, &[u8]), Problem> {
    check_magic(bytes, SNAPSHOT_MAGIC, SNAPSHOT_HEADER_LEN)?;
    let length = u64_at(bytes, 24);
    let payload = &bytes[SNAPSHOT_HEADER_LEN as usize..];
    if payload.len() as u64 != length {
        let what = format!("says {length} payload bytes, holds {}", payload.len());
        return Err(problem(24, what));
    }
    if crc32(&[&bytes[16..]]) != u32_at(bytes, 12) {
        return Err(problem(12, "checksum mismatch"));
    }
    Ok((u64_at(bytes, 16), payload))
}

/// How a journal's bytes end after its last valid record.
#[derive(Clone, Debug, PartialEq)]
pub enum Tail {
    /// Only zeros (the preallocated space), this many, or nothing.
    Clean { zeros: u64 },
    /// Bytes that are not a valid record, with none after them: from
    /// `offset` to the last non-zero byte, `bytes` long.
    Torn { offset: u64, bytes: u64 },
}

/// A journal read back: its base version, its records in order (version and
/// where the payload lies), where the valid records end, and how it ends.
#[derive(Debug)]
pub struct Scan {
    pub base: u64,
    pub records: Vec<(u64, Range<usize>)>,
    pub end: u64,
    pub tail: Tail,
}

pub fn scan_journal(bytes: &[u8]) -> Result<Scan, Problem> {
    check_magic(bytes, JOURNAL_MAGIC, HEADER_LEN)?;
    if crc32(&[&bytes[..12], &bytes[16..24]]) != u32_at(bytes, 12) {
        return Err(problem(12, "header checksum mismatch"));
    }
    let base = u64_at(bytes, 16);
    let (mut position, mut last, mut records) = (HEADER_LEN as usize, base, Vec::new());
    while let Some((version, payload)) = record_at(bytes, position) {
        if version <= last {
            let what = format!("record version {version} does not follow version {last}");
            return Err(problem(position as u64, what));
        }
        position = payload.end;
        last = version;
        records.push((version, payload));
    }
    let tail = tail_at(bytes, position, last)?;
    let end = position as u64;
    Ok(Scan {
        base,
        records,
        end,
        tail,
    })
}

/// The version and payload range of a structurally whole record with a
/// matching checksum at `at`; version 0 never appears in a record.
fn record_at(bytes: &[u8], at: usize) -> Option<(u64, Range<usize>)> {
    let start = at.checked_add(RECORD_HEADER_LEN as usize)?;
    let end = start.checked_add(u32_at(bytes.get(at..start)?, 0) as usize)?;
    let version = u64_at(bytes, at + 8);
    if end > bytes.len() || version == 0 {
        return None;
    }
    let matches = crc32(&[&bytes[at + 8..end]]) == u32_at(bytes, at + 4);
    matches.then_some((version, start..end))
}

fn tail_at(bytes: &[u8], at: usize, last: u64) -> Result<Tail, Problem> {
    let rest = &bytes[at..];
    let Some(last_nonzero) = rest.iter().rposition(|byte| *byte != 0) else {
        let zeros = rest.len() as u64;
        return Ok(Tail::Clean { zeros });
    };
    if let Some(next) = next_valid_record(bytes, at + 1, last) {
        let what = format!("not a valid record, yet a valid record follows at byte {next}");
        return Err(problem(at as u64, what));
    }
    let (offset, bytes) = (at as u64, last_nonzero as u64 + 1);
    Ok(Tail::Torn { offset, bytes })
}

fn next_valid_record(bytes: &[u8], from: usize, last: u64) -> Option<usize> {
    (from..bytes.len()).find(|at| {
        // Most offsets fail on the version or the length, before any checksum.
        bytes.len() - at >= RECORD_HEADER_LEN as usize
            && u64_at(bytes, at + 8) > last
            && record_at(bytes, *at).is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(base: u64, records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut bytes = journal_header(base);
        for (version, payload) in records {
            encode_record(&mut bytes, *version, payload);
        }
        bytes
    }

    fn versions(scan: &Scan) -> Vec<u64> {
        scan.records.iter().map(|(version, _)| *version).collect()
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
        let scan = scan_journal(&bytes).unwrap();
        assert_eq!((scan.base, versions(&scan)), (7, vec![8, 10, 11]));
        assert_eq!(&bytes[scan.records[2].1.clone()], b"eleven");
        assert_eq!(
            (scan.end, scan.tail),
            (bytes.len() as u64, Tail::Clean { zeros: 0 })
        );
    }

    #[test]
    fn zeros_after_the_last_record_are_a_clean_end() {
        let mut bytes = journal(0, &[(1, b"one")]);
        bytes.resize(bytes.len() + 4096, 0);
        let scan = scan_journal(&bytes).unwrap();
        assert_eq!(
            (versions(&scan), scan.tail),
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
        let scan = scan_journal(&bytes).unwrap();
        let torn = Tail::Torn {
            offset: start,
            bytes: cut as u64 - start,
        };
        assert_eq!(
            (versions(&scan), scan.end, scan.tail),
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
        let cases: [(Vec<u8>, u64); 4] = [
            (good[..10].to_vec(), 10),
            ([b"xxxxxxxx", &good[8..]].concat(), 0),
            ([&good[..8], &9u32.to_le_bytes(), &good[12..]].concat(), 8),
            ([&good[..16], &4u64.to_le_bytes()].concat(), 12),
        ];
        for (bytes, offset) in cases {
            assert_eq!(scan_journal(&bytes).unwrap_err().offset, offset);
        }
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
