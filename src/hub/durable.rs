//! The hub's side of the journal: a batch of changes as one record and
//! back, the state rebuilt from a snapshot and the records after it, and
//! when to compact.
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
use crate::core::state::State;
use crate::store::journal::{Journal, Recovered};
use serde_json::Value;

/// Versions skipped at each start: more than could ever have been shown
/// but not made durable before a crash.
pub const RESTART_SKIP: u64 = 1 << 20;

/// A journal compacts once its records outgrow this and twice the snapshot.
const COMPACT_AFTER_BYTES: u64 = 1 << 20;

/// The version `changes` bring `state` to once applied.
pub fn version_after(state: &State, changes: &[Change]) -> u64 {
    state.version() + changes.iter().map(Change::versions_used).sum::<u64>()
}

pub fn encode(changes: &[Change]) -> Vec<u8> {
    let values: Vec<Value> = changes.iter().map(Change::to_json).collect();
    serde_json::to_vec(&values).expect("JSON values always serialize")
}

/// The state a data directory held: its snapshot, then every record after.
pub fn restore(recovered: &Recovered) -> Result<State, String> {
    let mut state = match &recovered.snapshot {
        None => State::default(),
        Some((version, bytes)) => {
            let value: Value = serde_json::from_slice(bytes)
                .map_err(|e| format!("the snapshot is not JSON: {e}"))?;
            let state =
                State::from_snapshot(&value).ok_or("the snapshot does not describe a state")?;
            if state.version() != *version {
                return Err(format!(
                    "the snapshot says version {} inside and {version} outside",
                    state.version()
                ));
            }
            state
        }
    };
    for (version, bytes) in &recovered.records {
        let changes = decode(bytes)
            .ok_or_else(|| format!("the record of version {version} is not a list of changes"))?;
        if version_after(&state, &changes) != *version {
            return Err(format!(
                "the record of version {version} does not follow version {}",
                state.version()
            ));
        }
        for change in &changes {
            say_if_refused(&state, change, *version);
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

pub fn decode(bytes: &[u8]) -> Option<Vec<Change>> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    value.as_array()?.iter().map(Change::from_json).collect()
}

/// Hands the journal a snapshot of `state` when its records have grown
/// past what the snapshot would take. Called under the hub lock, so the
/// snapshot takes its place in the journal's order.
pub fn compact_if_grown(journal: &Journal, state: &State) {
    let (records, snapshot) = journal.sizes();
    if records <= COMPACT_AFTER_BYTES.max(2 * snapshot) {
        return;
    }
    let bytes = serde_json::to_vec(&state.to_snapshot()).expect("JSON values always serialize");
    journal.compact(state.version(), bytes);
}
