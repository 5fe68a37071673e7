//! The hub's side of the journal: a batch of changes as one record and
//! back, the state rebuilt from a snapshot and the records after it (each
//! read and applied in turn, never a whole file in memory), and when to
//! compact.
//!
//! Invariants: one operation's changes (an eviction and the submit it made
//! room for, a cancel of many) are one record, so they are durable or lost
//! together; a record is tagged with the version its last change reaches,
//! and replay refuses a record whose changes do not reach that version.
//! A record that carries a grant its prompt's command does not allow
//! (docs/PROTOCOL.md §3.2) is damage or forgery: `State::apply` answers the
//! prompt but grants no rule, and `say_if_refused` logs it as an error,
//! whichever back-end it came from, rather than refusing to start (the
//! gate stays up, and the rule never exists).

use crate::core::change::Change;
use crate::core::record;
use crate::core::snapshot::{self, SnapshotReader};
use crate::core::state::State;
use crate::store::journal::{Journal, Recovered, Snapshot};
use serde_json::Value;
use std::io::{BufRead, Read};

/// Versions skipped at each start: more than could ever have been shown
/// but not made durable before a crash.
pub const RESTART_SKIP: u64 = 1 << 20;

/// A journal compacts once its records outgrow this and twice the snapshot.
const COMPACT_AFTER_BYTES: u64 = 1 << 20;

/// The version `changes` bring `state` to once applied.
pub fn version_after(state: &State, changes: &[Change]) -> u64 {
    state.version() + changes.iter().map(Change::versions_used).sum::<u64>()
}

/// One operation's changes as one record, in the durable record format.
pub fn encode(changes: &[Change]) -> Vec<u8> {
    record::encode(changes)
}

/// The longest line a snapshot in lines may hold: far above the longest
/// entry a state holds (a prompt of a 64 KiB body, escaped), so a damaged
/// file is refused before it is allocated.
const MAX_SNAPSHOT_LINE: u64 = 16 << 20;

/// The state a data directory held: its snapshot, then every record after,
/// each read and applied one at a time.
pub fn restore(recovered: &Recovered) -> Result<State, String> {
    let mut state = match &recovered.snapshot {
        None => State::default(),
        Some(snapshot) => {
            let state = read_snapshot(snapshot)?;
            if state.version() != snapshot.version {
                return Err(format!(
                    "the snapshot says version {} inside and {} outside",
                    state.version(),
                    snapshot.version
                ));
            }
            state
        }
    };
    let records = recovered.records.iter();
    let records = records.map_err(|e| format!("cannot read the journal: {e}"))?;
    for record in records {
        let (version, bytes) = record.map_err(|e| format!("cannot read the journal: {e}"))?;
        let changes = record::decode(&bytes)
            .map_err(|e| format!("the record of version {version} is {e}"))?;
        if version_after(&state, &changes) != version {
            return Err(format!(
                "the record of version {version} does not follow version {}",
                state.version()
            ));
        }
        for change in &changes {
            say_if_refused(&state, change, version);
            state.apply(change);
        }
    }
    Ok(state)
}

/// Logs, as an error, a change about to be applied whose grant `apply` will
/// refuse: the record of `version` asks for a rule its prompt's command does
/// not allow.
pub fn say_if_refused(state: &State, change: &Change, version: u64) {
    if let Some(refusal) = state.refused_grant(change) {
        log::error!(
            "the record of version {version} grants a rule that may not be granted (damaged or forged data?); the prompt is answered, no rule is granted: {refusal}: {}",
            change.to_json()
        );
    }
}

/// A snapshot in lines, a line at a time; or one written before lines
/// (the whole state as one JSON value), read whole.
fn read_snapshot(snapshot: &Snapshot) -> Result<State, String> {
    let unreadable = |e: std::io::Error| format!("cannot read the snapshot: {e}");
    let mut reader = snapshot.reader().map_err(unreadable)?;
    let in_lines = snapshot::in_lines(reader.fill_buf().map_err(unreadable)?);
    if !in_lines {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).map_err(unreadable)?;
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("the snapshot is not JSON: {e}"))?;
        return State::from_snapshot(&value).ok_or("the snapshot does not describe a state".into());
    }
    let (mut line, mut number) = (Vec::new(), 1);
    let mut next_line = |line: &mut Vec<u8>| -> Result<Option<Value>, String> {
        line.clear();
        let mut limited = (&mut reader).take(MAX_SNAPSHOT_LINE + 1);
        limited.read_until(b'\n', line).map_err(unreadable)?;
        if line.is_empty() {
            return Ok(None);
        }
        if line.len() as u64 > MAX_SNAPSHOT_LINE {
            return Err(format!(
                "the snapshot's line {number} is over {MAX_SNAPSHOT_LINE} bytes"
            ));
        }
        let value = serde_json::from_slice(line)
            .map_err(|e| format!("the snapshot's line {number} is not JSON: {e}"))?;
        number += 1;
        Ok(Some(value))
    };
    let first = next_line(&mut line)?.ok_or("the snapshot is empty")?;
    let mut read = SnapshotReader::new(&first).map_err(|e| format!("the snapshot's {e}"))?;
    while let Some(value) = next_line(&mut line)? {
        read.line(&value)
            .ok_or_else(|| format!("a line of the snapshot is not an entry of a state: {value}"))?;
    }
    Ok(read.finish())
}

/// A record's changes, whichever format it is in (`core/record.rs`).
pub fn decode(bytes: &[u8]) -> Option<Vec<Change>> {
    record::decode(bytes).ok()
}

/// Hands the journal a snapshot of `state` when its records have grown
/// past what the snapshot would take. Called under the hub lock, so the
/// snapshot takes its place in the journal's order; what is taken under it
/// is a view of pointers, written by the journal thread with no lock held.
pub fn compact_if_grown(journal: &Journal, state: &State) {
    let (records, snapshot) = journal.sizes();
    if records <= COMPACT_AFTER_BYTES.max(2 * snapshot) {
        return;
    }
    compact(journal, state);
}

/// Hands the journal a snapshot of `state` at its version, written by the
/// journal thread (a fresh journal follows it).
pub fn compact(journal: &Journal, state: &State) {
    let view = state.snapshot_view();
    journal.compact_with(view.version(), Box::new(move |out| view.write_lines(out)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::change::Change;
    use crate::core::kind::Kind;
    use crate::core::prompt::Choice;
    use crate::core::prompt::{Answer, Outcome, Payload, Prompt};
    use crate::core::rules::Scope;
    use std::path::PathBuf;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let path =
                std::env::temp_dir().join(format!("askgate-durable-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A state with pending prompts (control bytes in their text), kept
    /// outcomes and rules, each change appended to `journal`.
    fn a_state(journal: &Journal) -> State {
        let mut state = State::default();
        let write = |state: &mut State, changes: Vec<Change>| {
            let version = version_after(state, &changes);
            journal.append(version, encode(&changes)).unwrap();
            for change in &changes {
                state.apply(change);
            }
            journal.wait_durable(version).unwrap();
        };
        for n in 0..300 {
            let payload = match n % 2 {
                0 => Payload::question(
                    format!("{n} \u{1}\u{2}\n\"quoted\""),
                    vec!["yes".into(), "no".into()],
                ),
                _ => Payload::approval(
                    crate::core::action::Action::Command {
                        command: format!("ls {n}"),
                        cwd: None,
                    },
                    "list".into(),
                    vec!["ls".into()],
                    Default::default(),
                ),
            };
            let session = format!("s{}", n % 7);
            let prompt = Prompt::new(format!("{n:012x}"), session, 1000.0 + n as f64, 60, payload);
            write(&mut state, vec![Change::Submitted(prompt.into())]);
        }
        for n in (0..300).step_by(3) {
            let kind = [Kind::Clarify, Kind::Approval][n % 2];
            let (outcome, grant) = match kind {
                Kind::Clarify => (Outcome::Answered(Answer::Text("yes".into())), None),
                Kind::Approval => (
                    Outcome::Answered(Answer::choice(Choice::Session)),
                    Some(Scope::Exact(format!("ls {n}"))),
                ),
            };
            let resolved = Change::Resolved {
                session_id: format!("s{}", n % 7),
                kind,
                id: format!("{n:012x}"),
                outcome,
                at: 2000.0,
                grant,
                by: None,
            };
            write(&mut state, vec![resolved]);
        }
        state
    }

    fn reopen(dir: &TempDir) -> State {
        let (journal, recovered) = Journal::open(&dir.0).unwrap();
        let state = restore(&recovered).unwrap();
        drop(journal);
        state
    }

    #[test]
    fn a_snapshot_in_lines_and_the_records_after_it_read_back_equal() {
        let dir = TempDir::new("lines");
        let (journal, _) = Journal::open(&dir.0).unwrap();
        let state = a_state(&journal);
        let view = state.snapshot_view();
        journal.compact_with(view.version(), Box::new(move |out| view.write_lines(out)));
        drop(journal);
        assert!(state.rule_count() > 0 && state.bytes().1 > 0);
        assert_eq!(reopen(&dir), state);
    }

    #[test]
    fn a_snapshot_written_as_one_value_before_lines_still_reads_back() {
        let dir = TempDir::new("one-value");
        let (journal, _) = Journal::open(&dir.0).unwrap();
        let state = a_state(&journal);
        // What a journal's compaction wrote before snapshots were lines.
        let old = serde_json::to_vec(&state.to_snapshot()).unwrap();
        assert!(old.starts_with(b"{\"always\":"), "the older layout");
        journal.compact(state.version(), old);
        drop(journal);
        assert_eq!(reopen(&dir), state);
    }
}
