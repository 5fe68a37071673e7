//! The store against real files in temporary directories: round trips, group
//! commit, torn tails at every byte, damage, crashes mid-compaction, the lock,
//! and a full disk, simulated and (under `prlimit --fsize`) real.

use super::disk::{self, JOURNAL, JOURNAL_TMP, SNAPSHOT, SNAPSHOT_TMP};
use super::format::{self, HEADER_LEN};
use super::handoff::Fault;
use super::journal::{AppendError, Journal, OpenError, Options, Recovered, check};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use std::{env, fs, process, thread};

/// A directory under the system's temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = env::temp_dir().join(format!("askgate-store-{name}-{}-{unique}", process::id()));
        let _ = fs::remove_dir_all(&path);
        TempDir(path)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn payload(version: u64) -> Vec<u8> {
    format!("change {version}").into_bytes()
}

fn quick() -> Options {
    Options {
        retry_interval: Duration::from_millis(20),
        ..Options::default()
    }
}

fn open(dir: &TempDir) -> (Journal, Recovered) {
    Journal::open_with(&dir.0, quick()).unwrap()
}

/// Appends `versions` with their payloads and waits until they are durable.
fn append_all(journal: &Journal, versions: impl IntoIterator<Item = u64>) {
    let mut last = 0;
    for version in versions {
        journal.append(version, payload(version)).unwrap();
        last = version;
    }
    journal.wait_durable(last).unwrap();
}

/// The snapshot's version and payload, read whole.
fn snapshot_of(recovered: &Recovered) -> Option<(u64, Vec<u8>)> {
    let snapshot = recovered.snapshot.as_ref()?;
    Some((snapshot.version, snapshot.read_all().unwrap()))
}

fn expected(versions: impl IntoIterator<Item = u64>) -> Vec<(u64, Vec<u8>)> {
    versions
        .into_iter()
        .map(|version| (version, payload(version)))
        .collect()
}

/// Where the record of `version` starts in a journal of versions from 1.
fn record_start(version: u64) -> u64 {
    HEADER_LEN
        + (1..version)
            .map(|v| format::record_len(payload(v).len()))
            .sum::<u64>()
}

/// A journal of versions 1..=last, closed, in a new directory.
fn journal_of(name: &str, last: u64) -> TempDir {
    let dir = TempDir::new(name);
    append_all(&open(&dir).0, 1..=last);
    dir
}

#[test]
fn records_come_back_in_order_after_a_reopen() {
    let dir = TempDir::new("round-trip");
    let (journal, recovered) = open(&dir);
    assert_eq!(
        (
            snapshot_of(&recovered),
            recovered.records.read_all().len(),
            recovered.torn_tail
        ),
        (None, 0, None)
    );
    append_all(&journal, 1..=100);
    assert_eq!(journal.durable_version(), 100);
    drop(journal);
    let (journal, recovered) = open(&dir);
    assert_eq!(
        (recovered.records.read_all(), recovered.torn_tail),
        (expected(1..=100), None)
    );
    assert_eq!(journal.durable_version(), 100);
    assert_eq!(journal.sizes().0, record_start(101) - HEADER_LEN);
    for (name, mode) in [(".", 0o700), (JOURNAL, 0o600), (disk::LOCK, 0o600)] {
        let found = fs::metadata(dir.file(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(found, mode, "{name}: {found:o}");
    }
}

#[test]
fn the_journal_is_shared_across_threads_and_its_thread_is_named() {
    fn shared_across_threads<T: Send + Sync>() {}
    shared_across_threads::<Journal>();
    let dir = TempDir::new("thread-name");
    let (journal, _) = open(&dir);
    append_all(&journal, [1]); // the thread names itself once it runs
    let tasks = fs::read_dir("/proc/self/task").unwrap();
    let names = tasks.map(|task| fs::read_to_string(task.unwrap().path().join("comm")));
    let names: Vec<String> = names.flatten().collect();
    assert!(
        names.iter().any(|name| name == "askgate-journal\n"),
        "{names:?}"
    );
}

#[test]
fn concurrent_appenders_share_fsyncs() {
    let dir = TempDir::new("group-commit");
    let (journal, _) = open(&dir);
    let caller_lock = Mutex::new(0u64);
    let (threads, each) = (8, 250);
    thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                for _ in 0..each {
                    let mut last = caller_lock.lock().unwrap();
                    *last += 1;
                    let version = *last;
                    journal.append(version, payload(version)).unwrap();
                    drop(last);
                    journal.wait_durable(version).unwrap();
                }
            });
        }
    });
    let (records, stats) = (threads * each, journal.stats());
    assert_eq!(
        (journal.durable_version(), stats.records_written),
        (records, records)
    );
    assert!(
        stats.fsyncs * 2 < records,
        "{} fsyncs for {records} records",
        stats.fsyncs
    );
    drop(journal);
    assert_eq!(open(&dir).1.records.read_all(), expected(1..=records));
}

#[test]
fn a_torn_last_record_is_dropped_at_every_byte() {
    // A crash while record 5 is written: it was never synced, so the
    // high-water mark still says 4, as it did before.
    let dir = journal_of("torn", 4);
    let mark = format::MARK_AT as usize..HEADER_LEN as usize;
    let marked_4 = fs::read(dir.file(JOURNAL)).unwrap()[mark.clone()].to_vec();
    append_all(&open(&dir).0, [5]);
    let mut original = fs::read(dir.file(JOURNAL)).unwrap();
    original[mark].copy_from_slice(&marked_4);
    let (start, end) = (record_start(5) as usize, record_start(6) as usize);
    for cut in start..end {
        let zeroed = [&original[..cut], &vec![0; end - cut][..], &original[end..]].concat();
        for (how, bytes) in [("truncated", &original[..cut]), ("zeroed", &zeroed[..])] {
            fs::write(dir.file(JOURNAL), bytes).unwrap();
            let (journal, recovered) = open(&dir);
            assert_eq!(
                recovered.records.read_all(),
                expected(1..=4),
                "{how} at {cut}"
            );
            let warned = recovered
                .torn_tail
                .is_some_and(|w| w.contains(&format!("at byte {start} ")));
            assert_eq!(
                warned,
                original[start..cut].iter().any(|b| *b != 0),
                "{how} at {cut}"
            );
            append_all(&journal, [5]);
            drop(journal);
            let (_, again) = open(&dir);
            assert_eq!(
                (again.records.read_all(), again.torn_tail),
                (expected(1..=5), None),
                "{how} at {cut}"
            );
        }
    }
}

#[test]
fn a_damaged_middle_record_refuses_to_open_and_check_names_it() {
    let dir = journal_of("damage", 10);
    let original = fs::read(dir.file(JOURNAL)).unwrap();
    let start = record_start(5);
    // The length, the checksum, the version and the payload.
    for byte in [0, 5, 9, 17] {
        let mut damaged = original.clone();
        damaged[start as usize + byte] ^= 0x10;
        fs::write(dir.file(JOURNAL), &damaged).unwrap();
        let Err(OpenError::Damage(refused)) = Journal::open_with(&dir.0, quick()) else {
            panic!("byte {byte} of a middle record: opened");
        };
        assert_eq!((&refused.file, refused.offset), (&dir.file(JOURNAL), start));
        let message = refused.to_string();
        assert!(message.contains(&format!("at byte {start}:")), "{message}");
        assert!(
            message.contains(&format!("truncate -s {start} ")),
            "{message}"
        );
        let Err(OpenError::Damage(checked)) = check(&dir.0) else {
            panic!("check passed byte {byte}")
        };
        assert_eq!(checked.to_string(), message);
        assert_eq!(
            fs::read(dir.file(JOURNAL)).unwrap(),
            damaged,
            "open changed nothing"
        );
    }
}

#[test]
fn a_damaged_snapshot_or_a_missing_one_refuses_to_open() {
    let dir = TempDir::new("snapshot-damage");
    let (journal, _) = open(&dir);
    append_all(&journal, 1..=3);
    journal.compact(3, b"state at 3".to_vec());
    append_all(&journal, [4]);
    drop(journal);
    let snapshot = fs::read(dir.file(SNAPSHOT)).unwrap();
    let mut flipped = snapshot.clone();
    *flipped.last_mut().unwrap() ^= 1;
    fs::write(dir.file(SNAPSHOT), &flipped).unwrap();
    let refused = Journal::open_with(&dir.0, quick())
        .err()
        .unwrap()
        .to_string();
    let file = dir.file(SNAPSHOT).display().to_string();
    assert!(
        refused.starts_with(&format!("{file} is damaged at byte 12: checksum")),
        "{refused}"
    );
    assert!(
        refused.ends_with(&format!("restore {file} from a backup")),
        "{refused}"
    );
    fs::remove_file(dir.file(SNAPSHOT)).unwrap();
    let Err(OpenError::Damage(refused)) = check(&dir.0) else {
        panic!("a journal after a missing snapshot passed")
    };
    assert_eq!((refused.file, refused.offset), (dir.file(JOURNAL), 16));
    assert!(
        refused
            .problem
            .contains("follows a snapshot of version 3, but there is no snapshot")
    );
}

/// Opening and checking both refuse, naming the same damage; nothing
/// changes.
fn refused(dir: &TempDir) -> super::journal::Damage {
    let before = fs::read(dir.file(JOURNAL)).ok();
    let Err(OpenError::Damage(refused)) = Journal::open_with(&dir.0, quick()) else {
        panic!("opened")
    };
    let Err(OpenError::Damage(checked)) = check(&dir.0) else {
        panic!("check passed")
    };
    assert_eq!(checked, refused);
    assert_eq!(fs::read(dir.file(JOURNAL)).ok(), before, "nothing changed");
    refused
}

/// Clears a journal's high-water mark, as the refusal says to.
fn clear_mark(dir: &TempDir) {
    let mut bytes = fs::read(dir.file(JOURNAL)).unwrap();
    bytes[format::MARK_AT as usize..HEADER_LEN as usize].fill(0);
    fs::write(dir.file(JOURNAL), bytes).unwrap();
}

#[test]
fn acknowledged_records_cut_off_whole_are_missing_not_a_clean_end() {
    let dir = journal_of("cut-whole", 10);
    let original = fs::read(dir.file(JOURNAL)).unwrap();
    let (start, end) = (record_start(8) as usize, record_start(11) as usize);
    let zeroed = [
        &original[..start],
        &vec![0; end - start][..],
        &original[end..],
    ]
    .concat();
    for (how, bytes) in [("truncated", &original[..start]), ("zeroed", &zeroed[..])] {
        fs::write(dir.file(JOURNAL), bytes).unwrap();
        let damage = refused(&dir);
        assert_eq!(
            (&damage.file, damage.offset),
            (&dir.file(JOURNAL), start as u64)
        );
        let message = damage.to_string();
        let missing = "versions after 7 up to 10 were acknowledged";
        assert!(message.contains(missing), "{how}: {message}");
        assert!(message.contains("dd if=/dev/zero of="), "{how}: {message}");
    }
    // Accepting the loss: the mark cleared, what is left opens.
    clear_mark(&dir);
    let (journal, recovered) = open(&dir);
    assert_eq!(recovered.records.read_all(), expected(1..=7));
    append_all(&journal, [8]);
    drop(journal);
    assert_eq!(open(&dir).1.records.read_all(), expected(1..=8));
}

#[test]
fn a_bad_last_record_whose_length_is_intact_is_damage_not_a_torn_tail() {
    let dir = journal_of("bad-last", 10);
    let mut bytes = fs::read(dir.file(JOURNAL)).unwrap();
    let start = record_start(10);
    // Its checksum, its version and its payload; its length holds.
    for byte in [5, 9, 17] {
        let mut damaged = bytes.clone();
        damaged[start as usize + byte] ^= 0x10;
        fs::write(dir.file(JOURNAL), &damaged).unwrap();
        let damage = refused(&dir);
        assert_eq!(damage.offset, start, "byte {byte}");
        assert!(
            damage.problem.contains("up to 10 were acknowledged")
                && damage.problem.contains("damaged, not torn"),
            "byte {byte}: {}",
            damage.problem
        );
    }
    // The same bytes after a crash that cut the write of 10 short (the
    // mark still at 9): a torn tail, dropped.
    bytes[start as usize + 17] ^= 0x10;
    let mark = format::MARK_AT as usize..HEADER_LEN as usize;
    bytes[mark].copy_from_slice(&format::mark_bytes(9));
    fs::write(dir.file(JOURNAL), &bytes).unwrap();
    let (_, recovered) = open(&dir);
    assert_eq!(recovered.records.read_all(), expected(1..=9));
    assert!(recovered.torn_tail.is_some());
}

#[test]
fn a_damaged_mark_refuses_to_open_and_says_how_to_clear_it() {
    let dir = journal_of("bad-mark", 3);
    let mut bytes = fs::read(dir.file(JOURNAL)).unwrap();
    bytes[format::MARK_AT as usize + 2] ^= 1;
    fs::write(dir.file(JOURNAL), &bytes).unwrap();
    let damage = refused(&dir);
    assert_eq!(damage.offset, format::MARK_AT);
    assert!(damage.to_string().contains("seek=24 count=16"), "{damage}");
    clear_mark(&dir);
    assert_eq!(open(&dir).1.records.read_all(), expected(1..=3));
}

#[test]
fn a_journal_deleted_beside_its_snapshot_is_missing() {
    let dir = TempDir::new("deleted");
    let (journal, _) = open(&dir);
    append_all(&journal, 1..=3);
    journal.compact(3, b"state at 3".to_vec());
    append_all(&journal, [4]);
    drop(journal);
    fs::remove_file(dir.file(JOURNAL)).unwrap();
    let damage = refused(&dir);
    assert_eq!(damage.file, dir.file(JOURNAL));
    assert!(
        damage
            .problem
            .contains("missing beside the snapshot of version 3"),
        "{}",
        damage.problem
    );
    assert!(damage.to_string().contains("`touch "), "{damage}");
    // Accepting the loss: an empty journal, and the snapshot alone opens.
    fs::write(dir.file(JOURNAL), b"").unwrap();
    let (journal, recovered) = open(&dir);
    assert_eq!(snapshot_of(&recovered), Some((3, b"state at 3".to_vec())));
    assert!(recovered.records.is_empty());
    append_all(&journal, [5]);
    drop(journal);
    assert_eq!(open(&dir).1.records.read_all(), expected([5]));
}

#[test]
fn a_journal_of_format_1_is_copied_into_this_format_and_reads_the_same() {
    let dir = TempDir::new("format-1");
    fs::create_dir_all(&dir.0).unwrap();
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o700)).unwrap();
    let format_1 = [&b"askgjrnl"[..], &1u32.to_le_bytes()].concat();
    let crc = format::crc32(&[&format_1, &0u64.to_le_bytes()]).to_le_bytes();
    let mut bytes = [&format_1[..], &crc, &0u64.to_le_bytes()].concat();
    for version in 1..=3 {
        format::encode_record(&mut bytes, version, &payload(version));
    }
    bytes.extend_from_slice(&[0; 100]);
    fs::write(dir.file(JOURNAL), &bytes).unwrap();
    let (journal, recovered) = open(&dir);
    assert_eq!(recovered.records.read_all(), expected(1..=3));
    let upgraded = fs::read(dir.file(JOURNAL)).unwrap();
    assert_eq!(upgraded[8..12], format::FORMAT.to_le_bytes());
    append_all(&journal, [4]);
    drop(journal);
    let report = check(&dir.0).unwrap();
    assert_eq!((report.mark, report.versions), (Some(4), Some((1, 4))));
    assert_eq!(open(&dir).1.records.read_all(), expected(1..=4));
}

/// What the thread leaves when a crash stops it after renaming the snapshot
/// and before renaming the fresh journal over the old one.
fn crash_mid_compaction(dir: &TempDir, version: u64, snapshot_renamed: bool) {
    let state = format!("state at {version}").into_bytes();
    let header = format::journal_header(version, version);
    disk::write_tmp(&dir.0, JOURNAL_TMP, &[&header], 4096).unwrap();
    let snapshot_header = format::snapshot_header(version, &state);
    disk::write_tmp(&dir.0, SNAPSHOT_TMP, &[&snapshot_header, &state], 0).unwrap();
    if snapshot_renamed {
        disk::rename_synced(&dir.0, SNAPSHOT_TMP, SNAPSHOT).unwrap();
    }
}

#[test]
fn a_crash_between_snapshot_and_fresh_journal_recovers_without_duplicates() {
    let dir = journal_of("crash-after-rename", 10);
    crash_mid_compaction(&dir, 6, true);
    assert!(
        check(&dir.0)
            .unwrap()
            .to_string()
            .contains("leftover: journal.tmp")
    );
    let (journal, recovered) = open(&dir);
    assert_eq!(snapshot_of(&recovered), Some((6, b"state at 6".to_vec())));
    assert_eq!(
        (recovered.records.read_all(), recovered.torn_tail),
        (expected(7..=10), None)
    );
    assert!(!dir.file(JOURNAL_TMP).exists());
    append_all(&journal, [11]);
    drop(journal);
    assert_eq!(open(&dir).1.records.read_all(), expected(7..=11));
}

#[test]
fn a_crash_before_the_snapshot_is_renamed_keeps_the_old_files() {
    let dir = journal_of("crash-before-rename", 10);
    crash_mid_compaction(&dir, 6, false);
    let (_, recovered) = open(&dir);
    assert_eq!(
        (snapshot_of(&recovered), recovered.records.read_all()),
        (None, expected(1..=10))
    );
    assert!(!dir.file(SNAPSHOT_TMP).exists() && !dir.file(JOURNAL_TMP).exists());
}

#[test]
fn compaction_keeps_the_files_bounded() {
    let dir = TempDir::new("compaction");
    let (journal, _) = open(&dir);
    let big = |version: u64| [payload(version), vec![b'.'; 200]].concat();
    for version in 1..=10_000 {
        journal.append(version, big(version)).unwrap();
        if version % 100 == 0 {
            journal.wait_durable(version).unwrap();
        }
    }
    let (before, file_before) = (
        journal.sizes(),
        fs::metadata(dir.file(JOURNAL)).unwrap().len(),
    );
    let records: u64 = (1..=10_000).map(|v| format::record_len(big(v).len())).sum();
    assert_eq!(before, (records, 0));
    journal.compact(10_000, vec![b's'; 1000]);
    journal.append(10_001, payload(10_001)).unwrap();
    journal.wait_durable(10_001).unwrap();
    assert_eq!(
        journal.sizes(),
        (format::record_len(payload(10_001).len()), 1000)
    );
    let file_after = fs::metadata(dir.file(JOURNAL)).unwrap().len();
    assert!(
        file_after * 2 < file_before,
        "journal {file_before} bytes, then {file_after}"
    );
    assert_eq!(journal.stats().snapshots_written, 1);
    drop(journal);
    let (_, recovered) = open(&dir);
    assert_eq!(snapshot_of(&recovered), Some((10_000, vec![b's'; 1000])));
    assert_eq!(recovered.records.read_all(), expected([10_001]));
}

#[test]
fn a_snapshot_that_cannot_be_written_keeps_the_old_files() {
    let dir = TempDir::new("snapshot-fails");
    let (journal, _) = open(&dir);
    append_all(&journal, 1..=3);
    journal.shared().faults[Fault::Snapshot as usize].store(true, Ordering::Relaxed);
    journal.compact(3, b"s3".to_vec());
    append_all(&journal, [4]);
    assert_eq!(journal.sizes(), (record_start(5) - HEADER_LEN, 0));
    assert!(!dir.file(SNAPSHOT).exists() && !dir.file(SNAPSHOT_TMP).exists());
    journal.shared().faults[Fault::Snapshot as usize].store(false, Ordering::Relaxed);
    journal.compact(4, b"s4".to_vec());
    append_all(&journal, [5]);
    drop(journal);
    let (_, recovered) = open(&dir);
    assert_eq!(
        (snapshot_of(&recovered), recovered.records.read_all()),
        (Some((4, b"s4".to_vec())), expected([5]))
    );
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = TempDir::new("lock");
    let (first, _) = open(&dir);
    let Err(refused) = Journal::open_with(&dir.0, quick()) else {
        panic!("opened twice");
    };
    let message = refused.to_string();
    let names = [
        dir.0.display().to_string(),
        format!("pid {}", process::id()),
    ];
    assert!(names.iter().all(|name| message.contains(name)), "{message}");
    drop(first);
    open(&dir);
}

#[test]
fn deleting_the_lock_file_lets_no_second_open_in_even_after_compactions() {
    let dir = TempDir::new("lock-deleted");
    let (first, _) = open(&dir);
    append_all(&first, 1..=3);
    let refused = |why: &str| {
        fs::remove_file(dir.file(disk::LOCK)).unwrap();
        match Journal::open_with(&dir.0, quick()) {
            Err(OpenError::Locked { .. }) => {}
            Err(other) => panic!("{why}: {other}"),
            Ok(_) => panic!("{why}: opened twice"),
        }
    };
    refused("the journal it started with");
    for version in [3, 4] {
        first.compact(version, format!("state at {version}").into_bytes());
        append_all(&first, [version + 1]);
        refused("a journal made by compaction");
    }
    drop(first);
    let (_, recovered) = open(&dir);
    assert_eq!(recovered.records.read_all(), expected([5]));
}

#[test]
fn a_symlink_planted_in_the_directory_is_never_followed() {
    let dir = TempDir::new("symlink");
    let (journal, _) = open(&dir);
    append_all(&journal, 1..=2);
    let victim = dir.file("victim");
    fs::write(&victim, "keep me").unwrap();
    std::os::unix::fs::symlink(&victim, dir.file(JOURNAL_TMP)).unwrap();
    std::os::unix::fs::symlink(&victim, dir.file(SNAPSHOT_TMP)).unwrap();
    journal.compact(2, b"state at 2".to_vec());
    append_all(&journal, [3]);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
    drop(journal);
    fs::remove_file(dir.file(JOURNAL)).unwrap();
    std::os::unix::fs::symlink(&victim, dir.file(JOURNAL)).unwrap();
    assert!(
        Journal::open_with(&dir.0, quick()).is_err(),
        "not opened through it"
    );
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
}

#[test]
fn a_directory_others_may_write_to_is_refused() {
    let dir = TempDir::new("shared");
    fs::create_dir_all(&dir.0).unwrap();
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o777)).unwrap();
    let Err(refused) = Journal::open_with(&dir.0, quick()) else {
        panic!("opened a directory everyone may write to");
    };
    let message = refused.to_string();
    assert!(
        message.contains(&format!("chmod 700 {}", dir.0.display())),
        "{message}"
    );
    assert!(!dir.file(JOURNAL).exists(), "nothing made there");
}

#[test]
fn appends_that_break_the_rules_are_refused() {
    let dir = TempDir::new("refusals");
    let (journal, _) = open(&dir);
    append_all(&journal, [1, 2]);
    let (bytes, max) = (journal.max_record() + 1, journal.max_record());
    let refusals = [
        (
            2,
            vec![],
            AppendError::NotIncreasing {
                version: 2,
                last: 2,
            },
        ),
        (3, vec![0; bytes], AppendError::TooLarge { bytes, max }),
    ];
    for (version, record, refused) in refusals {
        assert_eq!(journal.append(version, record), Err(refused));
    }
    assert!(journal.wait_durable(3).is_err(), "never appended");
    journal.close();
    assert_eq!(journal.append(3, vec![]), Err(AppendError::Closed));
}

#[test]
fn an_exhausted_reserve_refuses_then_recovers_when_space_returns() {
    let dir = TempDir::new("reserve");
    let options = Options {
        reserve_bytes: 16 * 1024,
        ..quick()
    };
    let (journal, _) = Journal::open_with(&dir.0, options).unwrap();
    let fault = &journal.shared().faults[Fault::TopUp as usize];
    fault.store(true, Ordering::Relaxed);
    let record = |_| vec![b'x'; 1000];
    let needed = format::record_len(1000);
    let fits = 16 * 1024 / needed;
    for version in 1..=fits {
        journal.append(version, record(version)).unwrap();
        journal.wait_durable(version).unwrap();
    }
    let available = 16 * 1024 - fits * needed;
    let refused = journal.append(fits + 1, record(fits + 1));
    assert_eq!(refused, Err(AppendError::Full { needed, available }));
    fault.store(false, Ordering::Relaxed);
    assert!(
        journal
            .shared()
            .wait_for_reserve(needed, Duration::from_secs(10))
    );
    journal.append(fits + 1, record(fits + 1)).unwrap();
    journal.wait_durable(fits + 1).unwrap();
    drop(journal);
    assert_eq!(open(&dir).1.records.read_all().len() as u64, fits + 1);
}

#[test]
fn a_failed_write_fails_its_waiters_and_is_retried_in_order() {
    let dir = TempDir::new("write-fails");
    let (journal, _) = open(&dir);
    append_all(&journal, [1]);
    let fault = &journal.shared().faults[Fault::Write as usize];
    fault.store(true, Ordering::Relaxed);
    journal.append(2, payload(2)).unwrap();
    let failed = journal.wait_durable(2).unwrap_err();
    assert_eq!(failed.version, 2);
    assert!(failed.to_string().contains("No space left"), "{failed}");
    assert_eq!(
        (
            journal.durable_version(),
            journal.stats().write_failures > 0
        ),
        (1, true)
    );
    let refused = journal.append(3, payload(3));
    assert!(
        matches!(&refused, Err(AppendError::Unwritable { reason }) if reason.contains("No space left")),
        "nothing more is taken while the write fails: {refused:?}"
    );
    fault.store(false, Ordering::Relaxed);
    assert_eq!(journal.wait_durable_past(1, Duration::from_secs(10)), 2);
    append_all(&journal, [3]);
    drop(journal);
    assert_eq!(open(&dir).1.records.read_all(), expected(1..=3));
}

#[test]
fn check_reports_what_the_directory_holds() {
    let dir = TempDir::new("check");
    let (journal, _) = open(&dir);
    append_all(&journal, 1..=5);
    journal.compact(5, b"five".to_vec());
    append_all(&journal, 6..=8);
    drop(journal);
    let report = check(&dir.0).unwrap();
    assert_eq!(
        (report.snapshot, report.journal_base),
        (Some((5, 4)), Some(5))
    );
    assert_eq!(
        (report.records, report.replayed, report.versions),
        (3, 3, Some((6, 8)))
    );
    assert_eq!(report.journal_bytes, record_start(9) - record_start(6));
    assert!(report.preallocated_bytes > 0 && report.torn_tail.is_none());
    let text = report.to_string();
    assert!(text.contains("snapshot: version 5, 4 bytes"), "{text}");
    assert!(
        text.contains("journal: follows version 5; 3 records, versions 6 to 8"),
        "{text}"
    );
}

const CHILD_DIR: &str = "ASKGATE_STORE_TEST_CHILD_DIR";
const FILE_SIZE_LIMIT: u64 = 256 * 1024;

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// Said on stderr directly, so `cargo test` shows it even when it captures.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[test]
fn a_real_file_size_limit_refuses_appends_until_it_is_lifted() {
    let Some(prlimit) = find_in_path("prlimit") else {
        say(
            "SKIPPED a_real_file_size_limit_refuses_appends_until_it_is_lifted: no prlimit on PATH",
        );
        return;
    };
    let dir = TempDir::new("fsize");
    fs::create_dir_all(&dir.0).unwrap();
    let output = process::Command::new(prlimit)
        .arg(format!("--fsize={FILE_SIZE_LIMIT}:unlimited"))
        .arg(env::current_exe().unwrap())
        .args([
            "store::tests::child_under_a_file_size_limit",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD_DIR, &dir.0)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "child failed\n{stdout}\n{stderr}");
    let acknowledged = child_said(&stdout, "acknowledged ");
    assert!(
        child_said(&stdout, "refused after ") < acknowledged,
        "{stdout}"
    );
    assert_eq!(open(&dir).1.records.read_all().len() as u64, acknowledged);
}

fn child_said(stdout: &str, prefix: &str) -> u64 {
    let line = stdout.lines().find_map(|line| line.strip_prefix(prefix));
    line.and_then(|line| line.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix:?} in {stdout}"))
}

/// Runs only as the child of the test above, under `prlimit --fsize`.
#[test]
fn child_under_a_file_size_limit() {
    let Some(dir) = env::var_os(CHILD_DIR) else {
        return;
    };
    let options = Options {
        reserve_bytes: 64 * 1024,
        ..quick()
    };
    let (journal, _) = Journal::open_with(Path::new(&dir), options).unwrap();
    let record = vec![b'x'; 1000];
    let mut version = 0;
    while journal.append(version + 1, record.clone()).is_ok() {
        version += 1;
        journal.wait_durable(version).unwrap();
        assert!(
            version * 1000 < 2 * FILE_SIZE_LIMIT,
            "the limit never refused an append"
        );
    }
    println!("refused after {version} records");
    lift_file_size_limit();
    let needed = format::record_len(record.len());
    assert!(
        journal
            .shared()
            .wait_for_reserve(needed, Duration::from_secs(10))
    );
    for _ in 0..10 {
        version += 1;
        journal.append(version, record.clone()).unwrap();
        journal.wait_durable(version).unwrap();
    }
    println!("acknowledged {version} records");
}

fn lift_file_size_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct, which lives across the call.
    assert_eq!(
        unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &unlimited) },
        0
    );
}
