//! The Redis store's group commit, as bookkeeping kept under the hub lock:
//! this instance's records that Redis has not taken yet (queued, or being
//! sent by the leader), the state ahead of the shown one that the next
//! operations decide on, and the outcome each waiting operation is owed.
//! `replica.rs` does the sending; this file only keeps the books.
//!
//! Invariants:
//! - `ahead`, while there is one, is the shown state with every record of
//!   `sending`, then of `queued`, applied in that order; nothing reads it
//!   but an operation deciding. It is made (a clone of the shown state,
//!   which shares the prompts) when an operation decides while records are
//!   in flight and there is none, then kept in step: each record decided is
//!   applied to it at once, and another instance's records, applied while
//!   none of this one's are in flight, to it as to the shown state. So an
//!   instance that commits one operation at a time never makes it, and a
//!   busy one makes it once, not once a batch. It is dropped when stale,
//!   and made again after every conflict, so a clone shares the outcomes
//!   and pending ids until it writes (`core/shared.rs`).
//! - Each record's base is the version the one before it reaches; the
//!   first one sent follows the shown state, or the batch is stale.
//! - When the shown state moves by anything but this instance's records
//!   (a conflict, another instance's records, a reload), every record in
//!   flight is stale: `reset` owes each of them `Again`, and `ahead` goes.
//! - `returning` counts the operations owed `Again` that have not decided
//!   again yet; the next leader waits for them (a little while at most),
//!   so that a batch that lost the race goes again whole, in the turn its
//!   loss gave this instance, rather than its first record alone.

use super::Committed;
use crate::core::change::Change;
use crate::core::state::State;
use crate::error::Error;
use crate::store::redis::Record;
use std::collections::{HashMap, VecDeque};

/// Records sent in one script call at most.
const MAX_RECORDS: usize = 256;
/// Their bytes at most (a record larger than this goes alone).
const MAX_BYTES: usize = 1 << 20;

/// An operation's record: decided, not yet taken by Redis.
pub(super) struct Pending {
    pub ticket: u64,
    pub base: u64,
    pub version: u64,
    /// Its bytes, moved out to the leader when sent.
    pub bytes: Vec<u8>,
    pub changes: Vec<Change>,
    /// Who asked and when (`Op`), owned.
    pub by: String,
    pub now: f64,
}

/// What an operation whose record was in flight is owed.
pub(super) enum Settled {
    /// Redis took it and it applied; what it did, to finish with no lock.
    Done(Committed),
    /// Stale, or lost the race: decide again.
    Again,
    /// Not made, or not known to be.
    Failed(Error),
}

#[derive(Default)]
pub(super) struct Batch {
    ahead: Option<State>,
    queued: VecDeque<Pending>,
    sending: Vec<Pending>,
    /// A leader holds (or is about to take) the link to send a batch.
    pub leading: bool,
    next_ticket: u64,
    settled: HashMap<u64, Settled>,
    /// Operations owed `Again` that have not decided again yet.
    returning: usize,
    /// Times the ahead state was made (a clone of the shown one), for
    /// `/metrics`: its cost grows with the state (BENCHMARKS.md).
    pub made: u64,
}

impl Batch {
    /// Whether records are in flight.
    pub fn busy(&self) -> bool {
        !self.queued.is_empty() || !self.sending.is_empty()
    }

    /// The state the next operation decides on: the ahead one, made from
    /// `shown` when records are in flight and there is none yet; `None`
    /// when there is none and none are (it decides on the shown state).
    /// Given back with `keep_ahead`.
    pub fn take_ahead(&mut self, shown: &State) -> Option<State> {
        if !self.busy() && self.ahead.is_none() {
            return None;
        }
        if self.ahead.is_none() {
            self.made += 1;
        }
        let made = || {
            let mut ahead = shown.clone();
            let in_flight = self.sending.iter().chain(&self.queued);
            for change in in_flight.flat_map(|pending| &pending.changes) {
                ahead.apply(change);
            }
            ahead
        };
        Some(self.ahead.take().unwrap_or_else(made))
    }

    pub fn keep_ahead(&mut self, ahead: State) {
        self.ahead = Some(ahead);
    }

    /// Queues a record (its ticket and `Settled` are filled in here);
    /// returns its ticket.
    pub fn queue(&mut self, mut pending: Pending) -> u64 {
        self.next_ticket += 1;
        pending.ticket = self.next_ticket;
        self.queued.push_back(pending);
        self.next_ticket
    }

    /// The leader takes the next batch: the oldest queued records up to
    /// the caps, as the records to send. `None` when the first does not
    /// follow the shown state's version (stale: `reset`).
    pub fn take_batch(&mut self, shown_version: u64) -> Option<Vec<Record>> {
        debug_assert!(self.sending.is_empty(), "one leader at a time");
        if let Some(first) = self.queued.front()
            && first.base != shown_version
        {
            return None;
        }
        let mut records = Vec::new();
        let mut bytes = 0;
        while let Some(next) = self.queued.front() {
            let full = records.len() == MAX_RECORDS || bytes + next.bytes.len() > MAX_BYTES;
            if full && !records.is_empty() {
                break;
            }
            let mut pending = self.queued.pop_front().expect("looked at above");
            bytes += pending.bytes.len();
            records.push(Record {
                base: pending.base,
                version: pending.version,
                bytes: std::mem::take(&mut pending.bytes),
            });
            self.sending.push(pending);
        }
        Some(records)
    }

    /// The batch Redis took, to apply to the shown state in order (the
    /// ahead state has it already).
    pub fn sent(&mut self) -> Vec<Pending> {
        std::mem::take(&mut self.sending)
    }

    /// Another instance's record, applied to the shown state: applied to
    /// the ahead state too while none of this instance's are in flight;
    /// else those are stale (`reset`).
    pub fn follow(&mut self, changes: &[Change]) {
        if self.busy() {
            return self.reset();
        }
        if let Some(ahead) = &mut self.ahead {
            for change in changes {
                ahead.apply(change);
            }
        }
    }

    /// Every record in flight is stale: each is owed `Again`.
    pub fn reset(&mut self) {
        self.ahead = None;
        let stale = self.sending.drain(..).chain(self.queued.drain(..));
        let owed: Vec<_> = stale
            .map(|pending| (pending.ticket, Settled::Again))
            .collect();
        self.returning += owed.len();
        self.settled.extend(owed);
    }

    /// An operation owed `Again` has decided again (queued its record, or
    /// not); true when it was the last one the leader waits for.
    pub fn came_back(&mut self) -> bool {
        self.returning = self.returning.saturating_sub(1);
        self.returning == 0
    }

    /// Whether operations owed `Again` have yet to decide again.
    pub fn returning(&self) -> bool {
        self.returning > 0
    }

    /// The batch being sent failed with `sent` (made or not, it is not
    /// acknowledged); the records queued behind it were not sent: `queued`.
    pub fn fail(&mut self, sent: &Error, queued: &Error) {
        self.ahead = None;
        for pending in self.sending.drain(..) {
            self.settled
                .insert(pending.ticket, Settled::Failed(sent.clone()));
        }
        for pending in self.queued.drain(..) {
            let owed = Settled::Failed(queued.clone());
            self.settled.insert(pending.ticket, owed);
        }
    }

    pub fn settle(&mut self, ticket: u64, settled: Settled) {
        self.settled.insert(ticket, settled);
    }

    /// What the operation with `ticket` is owed, once it is settled.
    pub fn take_settled(&mut self, ticket: u64) -> Option<Settled> {
        self.settled.remove(&ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::change::Change;

    fn pending(base: u64, bytes: usize) -> Pending {
        Pending {
            ticket: 0,
            base,
            version: base + 1,
            bytes: vec![b'x'; bytes],
            changes: vec![Change::Restarted { skip: 1 }],
            by: "test".into(),
            now: 1.0,
        }
    }

    fn is_again(settled: Option<Settled>) -> bool {
        matches!(settled, Some(Settled::Again))
    }

    /// A measurement, not a check (BENCHMARKS.md, "Redis throughput"):
    /// what making the ahead state, deciding one submit and its answer on
    /// it and dropping it cost with 10,000 prompts pending on 1,000
    /// sessions and 10,000 outcomes kept.
    /// `cargo test --release --lib hub::batch -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn making_the_ahead_state_of_ten_thousand_pending_prompts_and_outcomes() {
        use crate::core::prompt::{Answer, Outcome, Payload, Prompt};
        let prompt = |n: usize| {
            let payload = Payload::question(format!("a question of some length, {n}"), Vec::new());
            Prompt::new(
                format!("{n:032x}"),
                format!("session-{}", n % 1000),
                1.0,
                0,
                payload,
            )
        };
        let answered = |prompt: &Prompt| Change::Resolved {
            session_id: prompt.session_id.clone(),
            kind: prompt.kind(),
            id: prompt.id.clone(),
            outcome: Outcome::Answered(Answer::Text("yes".into())),
            at: 2.0,
            grant: None,
            by: None,
        };
        let mut shown = State::default();
        for n in 0..20_000 {
            let asked = prompt(n);
            shown.apply(&Change::Submitted(asked.clone().into()));
            if n % 2 == 1 {
                shown.apply(&answered(&asked));
            }
        }
        let mut batch = Batch::default();
        batch.queue(pending(shown.version(), 1));
        let runs = 50;
        let started = std::time::Instant::now();
        for run in 0..runs {
            let mut ahead = batch.take_ahead(&shown).unwrap();
            let asked = prompt(100_000 + run);
            ahead.apply(&Change::Submitted(asked.clone().into()));
            ahead.apply(&answered(&asked));
            drop(ahead);
        }
        let each = started.elapsed() / runs as u32;
        eprintln!("the ahead state of 10,000 pending prompts and 10,000 outcomes: {each:?}");
    }

    #[test]
    fn the_ahead_state_is_made_when_records_are_in_flight_and_kept_in_step() {
        let shown = State::default();
        let mut batch = Batch::default();
        assert!(batch.take_ahead(&shown).is_none(), "nothing in flight");
        batch.queue(pending(0, 1));
        let ahead = batch.take_ahead(&shown).expect("a record in flight");
        assert_eq!(ahead.version(), 1, "the shown state and the record queued");
        batch.keep_ahead(ahead);
        let records = batch.take_batch(0).unwrap();
        assert_eq!(records.len(), 1);
        let ahead = batch.take_ahead(&shown).unwrap();
        assert_eq!(ahead.version(), 1, "kept while the record is sent");
        batch.keep_ahead(ahead);
        assert_eq!(batch.sent().len(), 1);
        assert!(!batch.busy());
        let ahead = batch.take_ahead(&shown).expect("kept in step");
        assert_eq!(ahead.version(), 1);
        batch.keep_ahead(ahead);
        batch.follow(&[Change::Restarted { skip: 1 }]);
        assert_eq!(
            batch.ahead.as_ref().unwrap().version(),
            2,
            "another's record"
        );
        assert_eq!(batch.made, 1, "made once");
        batch.queue(pending(2, 1));
        batch.follow(&[Change::Restarted { skip: 1 }]);
        assert!(
            batch.ahead.is_none() && !batch.busy(),
            "stale while in flight"
        );
    }

    #[test]
    fn a_batch_takes_the_oldest_records_up_to_the_caps_and_a_stale_one_is_refused() {
        let mut batch = Batch::default();
        for base in 0..(MAX_RECORDS as u64 + 3) {
            batch.queue(pending(base, 1));
        }
        assert!(batch.take_batch(7).is_none(), "the first does not follow");
        let records = batch.take_batch(0).unwrap();
        assert_eq!(records.len(), MAX_RECORDS);
        assert!(records.windows(2).all(|w| w[1].base == w[0].version));
        assert_eq!(batch.sent().len(), MAX_RECORDS);
        assert_eq!(batch.take_batch(MAX_RECORDS as u64).unwrap().len(), 3);
        batch.sent();
        let (big, small) = (
            batch.queue(pending(9, MAX_BYTES)),
            batch.queue(pending(10, 1)),
        );
        assert_eq!(batch.take_batch(9).unwrap().len(), 1, "a full batch alone");
        batch.sent();
        assert_eq!(batch.take_batch(10).unwrap().len(), 1);
        assert!(big < small);
    }

    #[test]
    fn the_operations_of_a_reset_batch_are_waited_for_until_each_came_back() {
        let mut batch = Batch::default();
        assert!(!batch.returning(), "none owed");
        batch.queue(pending(0, 1));
        batch.take_batch(0).unwrap();
        batch.queue(pending(1, 1));
        batch.queue(pending(2, 1));
        batch.reset();
        assert!(batch.returning(), "three owed a new decision");
        assert!(!batch.came_back());
        assert!(!batch.came_back());
        assert!(batch.came_back(), "the last one back");
        assert!(!batch.returning());
        assert!(batch.came_back(), "never below none");
    }

    #[test]
    fn a_reset_owes_every_record_in_flight_a_new_decision_and_a_failure_its_error() {
        let mut batch = Batch::default();
        let first = batch.queue(pending(0, 1));
        batch.take_batch(0).unwrap();
        let second = batch.queue(pending(1, 1));
        let ahead = batch.take_ahead(&State::default()).unwrap();
        batch.keep_ahead(ahead);
        batch.reset();
        assert!(!batch.busy() && batch.ahead.is_none());
        assert!(is_again(batch.take_settled(first)));
        assert!(is_again(batch.take_settled(second)));
        assert!(batch.take_settled(first).is_none(), "taken once");
        let sent = batch.queue(pending(0, 1));
        batch.take_batch(0).unwrap();
        let behind = batch.queue(pending(1, 1));
        let (down, not_made) = (
            Error::StoreUnavailable("sent".into()),
            Error::StoreUnavailable("queued".into()),
        );
        batch.fail(&down, &not_made);
        assert!(matches!(batch.take_settled(sent), Some(Settled::Failed(e)) if e == down));
        assert!(matches!(batch.take_settled(behind), Some(Settled::Failed(e)) if e == not_made));
    }
}
