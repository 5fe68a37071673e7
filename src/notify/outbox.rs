//! One sink's outbox: the notifications it has yet to send, and what each
//! notification it sent still shows (docs/PROTOCOL.md §8).
//!
//! Invariants: waiting prompts are kept per session and sessions are taken
//! in turn, so a burst from one agent becomes one summary ("3 new
//! approvals in build-bot") and cannot push another session's prompt out;
//! nothing is dropped while the outbox stays under its byte budget, and
//! past it a prompt is kept by id only (it can still be counted in a
//! summary). A prompt resolved before it was sent is never sent; one
//! resolved after is cleared, first of anything else, and the notification
//! that showed it is cleared once every prompt it showed is resolved.

use crate::core::kind::Kind;
use crate::core::prompt::Prompt;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};

/// Bytes of prompts an outbox keeps in full at most; past it, by id only.
pub const BUDGET: usize = 1 << 20;
/// What a prompt kept by id only counts against the budget.
const BARE: usize = 128;
/// Prompts kept by id only at most (beyond the budget); more are dropped.
const BARE_MAX: usize = 4096;

/// What a sink's thread sends next.
#[derive(Clone, Debug, PartialEq)]
pub enum Job {
    /// One prompt, in full; `seq` names its notification (ntfy's sequence
    /// id), so a second send of it (an escalation) replaces the first.
    Prompt {
        prompt: Arc<Prompt>,
        escalated: bool,
    },
    /// Several new prompts of one session, told as one notification named
    /// by `seq`, without buttons; `escalated` when some are sent again.
    Summary {
        session_id: String,
        approvals: usize,
        questions: usize,
        seq: String,
        escalated: bool,
    },
    /// A prompt that was notified is resolved (`status`: answered, expired,
    /// cancelled); `clear` names its notification when nothing else it
    /// shows is still pending.
    Resolved {
        session_id: String,
        kind: Kind,
        id: String,
        status: &'static str,
        clear: Option<String>,
    },
    /// Quiet hours ended with prompts held: one notification for them all.
    Held { approvals: usize, questions: usize },
    /// `askgate notify test`.
    Test,
}

/// A prompt waiting to be sent.
#[derive(Debug)]
struct Entry {
    id: String,
    kind: Kind,
    /// `None` when kept by id only (the budget was spent).
    prompt: Option<Arc<Prompt>>,
    escalated: bool,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Waiting {
    /// Sessions with prompts waiting, in the order they first had one.
    order: VecDeque<String>,
    by_session: HashMap<String, Vec<Entry>>,
    /// Sent before any new prompt: clears, and the quiet hours' summary.
    urgent: VecDeque<Job>,
    /// Prompt id → the notification (`seq`) that shows it.
    shown: HashMap<String, String>,
    /// Notification → how many pending prompts it still shows.
    showing: HashMap<String, usize>,
    /// Session → its summary still showing, and the approvals and
    /// questions it has told of: the next summary replaces it.
    summaries: HashMap<String, (String, usize, usize)>,
    bytes: usize,
    bare: usize,
    stopped: bool,
}

/// A sink's outbox, shared by the notifier (which fills it without
/// blocking) and the sink's thread (which empties it).
#[derive(Debug, Default)]
pub struct Outbox {
    waiting: Mutex<Waiting>,
    ready: Condvar,
}

/// What pushing a prompt did.
#[derive(Debug, PartialEq)]
pub enum Pushed {
    Queued,
    /// Kept by id only: the budget was spent.
    Bare,
    /// Not kept at all: the outbox is full even by id.
    Dropped,
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a prompt to notify (again, when `escalated`). Never blocks
    /// for longer than the outbox's short lock.
    pub fn push(&self, prompt: &Arc<Prompt>, escalated: bool) -> Pushed {
        let mut waiting = self.lock();
        let session = waiting.by_session.get_mut(&prompt.session_id);
        if let Some(entry) = session.and_then(|e| e.iter_mut().find(|e| e.id == prompt.id)) {
            // Still waiting: sent once, escalated if either asked.
            entry.escalated |= escalated;
            return Pushed::Queued;
        }
        let full = size(prompt);
        let (kept, bytes, pushed) = if waiting.bytes + full <= BUDGET {
            (Some(prompt.clone()), full, Pushed::Queued)
        } else if waiting.bare < BARE_MAX {
            (None, BARE, Pushed::Bare)
        } else {
            return Pushed::Dropped;
        };
        waiting.bytes += bytes;
        waiting.bare += usize::from(kept.is_none());
        let entry = Entry {
            id: prompt.id.clone(),
            kind: prompt.kind(),
            prompt: kept,
            escalated,
            bytes,
        };
        let session_id = &prompt.session_id;
        match waiting.by_session.get_mut(session_id) {
            Some(entries) => entries.push(entry),
            None => {
                waiting.order.push_back(session_id.clone());
                waiting.by_session.insert(session_id.clone(), vec![entry]);
            }
        }
        drop(waiting);
        self.ready.notify_one();
        pushed
    }

    /// A prompt is resolved: not sent if it still waits, cleared if it
    /// was sent.
    pub fn resolve(&self, session_id: &str, kind: Kind, id: &str, status: &'static str) {
        let mut waiting = self.lock();
        let waiting = &mut *waiting;
        if let Some(entries) = waiting.by_session.get_mut(session_id)
            && let Some(at) = entries.iter().position(|entry| entry.id == id)
        {
            let entry = entries.remove(at);
            waiting.bytes -= entry.bytes;
            waiting.bare -= usize::from(entry.prompt.is_none());
            if entries.is_empty() {
                waiting.by_session.remove(session_id);
                waiting.order.retain(|session| session != session_id);
            }
        }
        let Some(seq) = waiting.shown.remove(id) else {
            return;
        };
        let clear = unshow(&mut waiting.showing, &seq).then_some(seq);
        if clear.is_some() {
            waiting
                .summaries
                .retain(|_, (shown, ..)| Some(&*shown) != clear.as_ref());
        }
        waiting.urgent.push_back(Job::Resolved {
            session_id: session_id.to_string(),
            kind,
            id: id.to_string(),
            status,
            clear,
        });
        self.ready.notify_one();
    }

    /// Queues a job before any new prompt (the quiet hours' summary).
    pub fn push_urgent(&self, job: Job) {
        self.lock().urgent.push_back(job);
        self.ready.notify_one();
    }

    /// The next job, waiting for one; `None` once stopped.
    pub fn take(&self) -> Option<Job> {
        let mut waiting = self.lock();
        loop {
            if waiting.stopped {
                return None;
            }
            if let Some(job) = next(&mut waiting) {
                return Some(job);
            }
            waiting = self.ready.wait(waiting).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The next job if there is one, without waiting.
    pub fn try_take(&self) -> Option<Job> {
        next(&mut self.lock())
    }

    /// Wakes the sink's thread to end.
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.ready.notify_all();
    }

    /// Prompts waiting to be sent, and the bytes they hold.
    pub fn backlog(&self) -> (usize, usize) {
        let waiting = self.lock();
        let count = waiting.by_session.values().map(Vec::len).sum();
        (count, waiting.bytes)
    }
}

/// Takes one from `showing[seq]`; true when it showed nothing else.
fn unshow(showing: &mut HashMap<String, usize>, seq: &str) -> bool {
    match showing.get_mut(seq) {
        Some(count) if *count > 1 => {
            *count -= 1;
            false
        }
        Some(_) => {
            showing.remove(seq);
            true
        }
        None => false,
    }
}

/// Clears first; then the next session's waiting prompts: one in full,
/// or several as a summary.
fn next(waiting: &mut Waiting) -> Option<Job> {
    if let Some(job) = waiting.urgent.pop_front() {
        return Some(job);
    }
    let session_id = waiting.order.pop_front()?;
    let entries = waiting.by_session.remove(&session_id).unwrap_or_default();
    for entry in &entries {
        waiting.bytes -= entry.bytes;
        waiting.bare -= usize::from(entry.prompt.is_none());
    }
    let several = entries.len() > 1 || entries.first()?.prompt.is_none();
    let earlier = waiting
        .summaries
        .get(&session_id)
        .filter(|(seq, ..)| several && waiting.showing.contains_key(seq))
        .cloned();
    let seq = match &earlier {
        Some((seq, ..)) => seq.clone(),
        None => entries.first()?.id.clone(),
    };
    // The kinds of the prompts this notification shows anew.
    let mut added = Vec::new();
    for entry in &entries {
        match waiting.shown.insert(entry.id.clone(), seq.clone()) {
            Some(old) if old == seq => {}
            Some(old) => {
                unshow(&mut waiting.showing, &old);
                added.push(entry.kind);
            }
            None => added.push(entry.kind),
        }
    }
    *waiting.showing.entry(seq.clone()).or_default() += added.len();
    let escalated = entries.iter().any(|entry| entry.escalated);
    if let [entry] = entries.as_slice()
        && let Some(prompt) = &entry.prompt
    {
        return Some(Job::Prompt {
            prompt: prompt.clone(),
            escalated,
        });
    }
    let count = |kind: Kind| added.iter().filter(|k| **k == kind).count();
    let (_, told_approvals, told_questions) = earlier.unwrap_or_default();
    let approvals = told_approvals + count(Kind::Approval);
    let questions = told_questions + count(Kind::Clarify);
    waiting
        .summaries
        .insert(session_id.clone(), (seq.clone(), approvals, questions));
    Some(Job::Summary {
        session_id,
        approvals,
        questions,
        seq,
        escalated,
    })
}

/// About what a prompt holds in memory.
fn size(prompt: &Prompt) -> usize {
    BARE + prompt.id.len() + prompt.session_id.len() + prompt.payload.text_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::prompt::Payload;

    fn command(command: &str) -> Payload {
        let action = crate::core::action::Action::Command {
            command: command.into(),
            cwd: None,
        };
        Payload::approval(action, String::new(), vec![], Default::default())
    }

    fn approval(id: &str, session: &str) -> Arc<Prompt> {
        let payload = command("ls");
        Arc::new(Prompt::new(id.into(), session.into(), 1.0, 300, payload))
    }

    fn kinds(job: &Job) -> String {
        match job {
            Job::Prompt { prompt, .. } => format!("prompt {}", prompt.id),
            Job::Summary {
                session_id,
                approvals,
                seq,
                ..
            } => format!("summary {session_id} {approvals} {seq}"),
            Job::Resolved { id, clear, .. } => format!("resolved {id} {clear:?}"),
            Job::Held { approvals, .. } => format!("held {approvals}"),
            Job::Test => "test".into(),
        }
    }

    #[test]
    fn a_burst_from_one_session_is_one_summary_and_another_session_still_gets_its_own() {
        let outbox = Outbox::default();
        for n in 0..100 {
            outbox.push(&approval(&format!("b{n}"), "build-bot"), false);
        }
        outbox.push(&approval("other", "docs"), false);
        let first = outbox.try_take().unwrap();
        assert_eq!(kinds(&first), "summary build-bot 100 b0");
        assert_eq!(kinds(&outbox.try_take().unwrap()), "prompt other");
        assert_eq!(outbox.try_take(), None);
        for n in 0..99 {
            outbox.resolve("build-bot", Kind::Approval, &format!("b{n}"), "answered");
        }
        let cleared: Vec<_> = std::iter::from_fn(|| outbox.try_take()).collect();
        assert_eq!(cleared.len(), 99);
        assert!(
            cleared
                .iter()
                .all(|job| matches!(job, Job::Resolved { clear: None, .. }))
        );
        outbox.resolve("build-bot", Kind::Approval, "b99", "expired");
        assert_eq!(
            kinds(&outbox.try_take().unwrap()),
            "resolved b99 Some(\"b0\")"
        );
    }

    #[test]
    fn a_prompt_resolved_before_it_was_sent_is_never_sent_and_the_budget_holds() {
        let outbox = Outbox::default();
        outbox.push(&approval("a", "s"), false);
        outbox.resolve("s", Kind::Approval, "a", "answered");
        assert_eq!(outbox.try_take(), None);
        assert_eq!(outbox.backlog(), (0, 0));
        let big = command(&"x".repeat(BUDGET / 2));
        let pushed: Vec<_> = (0..4)
            .map(|n| {
                let prompt = Prompt::new(format!("p{n}"), "s".into(), 1.0, 300, big.clone());
                outbox.push(&Arc::new(prompt), false)
            })
            .collect();
        assert_eq!(pushed[0], Pushed::Queued);
        assert_eq!(pushed[3], Pushed::Bare);
        assert!(outbox.backlog().1 <= BUDGET + 3 * BARE);
    }

    #[test]
    fn an_escalated_summary_replaces_the_first_and_is_cleared_once() {
        let outbox = Outbox::default();
        let (a, b) = (approval("a", "s"), approval("b", "s"));
        outbox.push(&a, false);
        outbox.push(&b, false);
        assert_eq!(kinds(&outbox.try_take().unwrap()), "summary s 2 a");
        outbox.push(&a, true);
        outbox.push(&b, true);
        let again = outbox.try_take().unwrap();
        assert!(matches!(again, Job::Summary { escalated: true, ref seq, .. } if seq == "a"));
        outbox.resolve("s", Kind::Approval, "a", "answered");
        assert_eq!(kinds(&outbox.try_take().unwrap()), "resolved a None");
        outbox.resolve("s", Kind::Approval, "b", "answered");
        assert_eq!(kinds(&outbox.try_take().unwrap()), "resolved b Some(\"a\")");
        assert_eq!(outbox.try_take(), None);
    }

    #[test]
    fn a_second_burst_replaces_the_summary_still_showing_with_the_count_so_far() {
        let outbox = Outbox::default();
        for id in ["a", "b"] {
            outbox.push(&approval(id, "s"), false);
        }
        assert_eq!(kinds(&outbox.try_take().unwrap()), "summary s 2 a");
        for id in ["c", "d", "e"] {
            outbox.push(&approval(id, "s"), false);
        }
        assert_eq!(kinds(&outbox.try_take().unwrap()), "summary s 5 a");
        for id in ["a", "b", "c", "d", "e"] {
            outbox.resolve("s", Kind::Approval, id, "answered");
        }
        let clears: Vec<_> = std::iter::from_fn(|| outbox.try_take())
            .map(|j| kinds(&j))
            .collect();
        assert_eq!(clears.last().unwrap(), "resolved e Some(\"a\")");
        for id in ["f", "g"] {
            outbox.push(&approval(id, "s"), false);
        }
        assert_eq!(
            kinds(&outbox.try_take().unwrap()),
            "summary s 2 f",
            "a new one once cleared"
        );
    }
}
