//! When the phone rings, as a value: whether the human is at the desk (a
//! page is visible, or was hidden only a grace ago), quiet hours, and
//! escalation (docs/PROTOCOL.md §8). Pure: the caller gives the time, the
//! local time of day, and hands what is due to the sinks.
//!
//! Invariants: a prompt is sent at most once before it escalates and once
//! when it does; a prompt not sent because the human was at the desk is
//! sent once nobody is (a page hidden for its grace, or silent past its
//! lease), if still pending; quiet hours hold pushes and never deny
//! anything, and their end sends one summary of what they held. Pages are
//! few: past `PAGES` the oldest is forgotten.

use super::quiet::Quiet;
use crate::core::kind::Kind;
use crate::core::prompt::Prompt;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A visible page counts as present this long after it last said so
/// (the page says so every `PRESENCE_EVERY`, docs/PROTOCOL.md §8).
pub const LEASE: Duration = Duration::from_secs(75);
/// Pages remembered at most.
const PAGES: usize = 64;

/// When to notify, from the `--notify-*` and `--quiet-hours*` flags.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// Notify even while a page is visible (`--notify-when always`).
    pub always: bool,
    /// A page hidden this long ago still counts as present.
    pub grace: Duration,
    /// Notify again, louder, a prompt unanswered this long.
    pub escalate_after: Option<Duration>,
    pub quiet: Option<Quiet>,
    /// An approval the agent marks urgent is sent in quiet hours.
    pub allow_urgent: bool,
}

/// What the sinks are to send.
#[derive(Debug, PartialEq)]
pub enum Send {
    Prompt {
        prompt: Arc<Prompt>,
        escalated: bool,
    },
    /// Quiet hours ended: this many prompts were held and are pending.
    Held { approvals: usize, questions: usize },
}

/// What became of a new prompt.
#[derive(Debug, PartialEq)]
pub enum Decision {
    Notify,
    /// A page is visible (or just hidden): sent later if still pending
    /// once nobody is present.
    Present,
    /// Quiet hours: held for their summary.
    Held,
}

#[derive(Debug)]
struct Page {
    visible: bool,
    at: Instant,
}

#[derive(Debug)]
struct Tracked {
    prompt: Arc<Prompt>,
    state: Tracking,
}

#[derive(Debug, PartialEq)]
enum Tracking {
    /// Not sent while someone was present.
    Unsent,
    Held,
    Sent,
    Escalated,
}

#[derive(Debug)]
pub struct Desk {
    timing: Timing,
    pages: HashMap<String, Page>,
    pending: HashMap<String, Tracked>,
    escalations: BTreeSet<(Instant, String)>,
    /// When each prompt in `escalations` escalates, to take it out once
    /// resolved.
    escalate_at: HashMap<String, Instant>,
    quiet_end: Option<Instant>,
}

impl Desk {
    pub fn new(timing: Timing) -> Desk {
        Desk {
            timing,
            pages: HashMap::new(),
            pending: HashMap::new(),
            escalations: BTreeSet::new(),
            escalate_at: HashMap::new(),
            quiet_end: None,
        }
    }

    /// A new prompt, at `now`, `time_of_day` seconds into the local day.
    pub fn submitted(&mut self, prompt: Arc<Prompt>, now: Instant, time_of_day: u32) -> Decision {
        let id = prompt.id.clone();
        let urgent = prompt.urgent && prompt.kind() == Kind::Approval;
        let (state, decision) = if !self.timing.always && self.present(now) {
            (Tracking::Unsent, Decision::Present)
        } else if self.quiet(time_of_day, now) && !(urgent && self.timing.allow_urgent) {
            (Tracking::Held, Decision::Held)
        } else {
            self.sent(&id, now);
            (Tracking::Sent, Decision::Notify)
        };
        self.pending.insert(id, Tracked { prompt, state });
        decision
    }

    /// A prompt left its queue: nothing more is sent for it.
    pub fn resolved(&mut self, id: &str) {
        self.pending.remove(id);
        if let Some(at) = self.escalate_at.remove(id) {
            self.escalations.remove(&(at, id.to_string()));
        }
    }

    /// A page says whether it is visible; past `PAGES` pages, the one
    /// heard of least recently is forgotten.
    pub fn presence(&mut self, page: &str, visible: bool, now: Instant) {
        if !self.pages.contains_key(page) && self.pages.len() >= PAGES {
            let oldest = self.pages.iter().min_by_key(|(_, page)| page.at);
            if let Some(oldest) = oldest.map(|(id, _)| id.clone()) {
                self.pages.remove(&oldest);
            }
        }
        self.pages
            .insert(page.to_string(), Page { visible, at: now });
    }

    /// Whether a page is visible, or was hidden less than a grace ago.
    pub fn present(&self, now: Instant) -> bool {
        self.pages.values().any(|page| now < self.until(page))
    }

    fn until(&self, page: &Page) -> Instant {
        match page.visible {
            true => page.at + LEASE,
            false => page.at + self.timing.grace,
        }
    }

    fn quiet(&mut self, time_of_day: u32, now: Instant) -> bool {
        let Some(quiet) = &self.timing.quiet else {
            return false;
        };
        let Some(left) = quiet.left(time_of_day) else {
            return false;
        };
        if self.quiet_end.is_none() {
            self.quiet_end = Some(now + Duration::from_secs(left.into()));
        }
        true
    }

    fn sent(&mut self, id: &str, now: Instant) {
        if let Some(after) = self.timing.escalate_after {
            let at = now + after;
            if let Some(earlier) = self.escalate_at.insert(id.to_string(), at) {
                self.escalations.remove(&(earlier, id.to_string()));
            }
            self.escalations.insert((at, id.to_string()));
        }
    }

    /// When `due` has something to do next, if ever.
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        let escalation = self.escalations.first().map(|(at, _)| *at);
        let unsent = self.pending.values().any(|t| t.state == Tracking::Unsent);
        let away = self
            .pages
            .values()
            .map(|page| self.until(page))
            .filter(|at| *at > now)
            .max()
            .filter(|_| unsent);
        [escalation, away, self.quiet_end]
            .into_iter()
            .flatten()
            .min()
    }

    /// What is due at `now`: escalations, the prompts held back while a
    /// page was present once none is, the quiet hours' summary.
    pub fn due(&mut self, now: Instant, time_of_day: u32) -> Vec<Send> {
        let mut sends = Vec::new();
        self.pages.retain(|_, page| {
            let until = match page.visible {
                true => page.at + LEASE,
                false => page.at + self.timing.grace,
            };
            now < until
        });
        if self.quiet_end.is_some_and(|end| end <= now) {
            self.quiet_end = None;
            if self
                .timing
                .quiet
                .as_ref()
                .and_then(|q| q.left(time_of_day))
                .is_none()
            {
                let held = self.release(Tracking::Held, now);
                let count = |kind: Kind| held.iter().filter(|p| p.kind() == kind).count();
                if !held.is_empty() {
                    sends.push(Send::Held {
                        approvals: count(Kind::Approval),
                        questions: count(Kind::Clarify),
                    });
                }
            } else {
                // The clock moved: still quiet; look again.
                self.quiet(time_of_day, now);
            }
        }
        if !self.present(now) || self.timing.always {
            let quiet = self.quiet(time_of_day, now);
            let unsent = match quiet {
                true => {
                    self.pending
                        .values_mut()
                        .filter(|t| t.state == Tracking::Unsent)
                        .for_each(|t| t.state = Tracking::Held);
                    Vec::new()
                }
                false => self.release(Tracking::Unsent, now),
            };
            sends.extend(unsent.into_iter().map(|prompt| Send::Prompt {
                prompt,
                escalated: false,
            }));
        }
        while let Some((at, id)) = self.escalations.first().cloned() {
            if at > now {
                break;
            }
            self.escalations.pop_first();
            self.escalate_at.remove(&id);
            if let Some(tracked) = self.pending.get_mut(&id)
                && tracked.state == Tracking::Sent
            {
                tracked.state = Tracking::Escalated;
                sends.push(Send::Prompt {
                    prompt: tracked.prompt.clone(),
                    escalated: true,
                });
            }
        }
        sends
    }

    /// Marks every prompt in `from` sent, oldest first, and returns them.
    fn release(&mut self, from: Tracking, now: Instant) -> Vec<Arc<Prompt>> {
        let mut released: Vec<Arc<Prompt>> = self
            .pending
            .values_mut()
            .filter(|t| t.state == from)
            .map(|t| {
                t.state = Tracking::Sent;
                t.prompt.clone()
            })
            .collect();
        released.sort_by(|a, b| a.requested_at.total_cmp(&b.requested_at));
        for prompt in &released {
            self.sent(&prompt.id, now);
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::prompt::Payload;

    fn timing() -> Timing {
        Timing {
            always: false,
            grace: Duration::from_secs(20),
            escalate_after: Some(Duration::from_secs(60)),
            quiet: None,
            allow_urgent: false,
        }
    }

    fn prompt(id: &str) -> Arc<Prompt> {
        let payload = Payload::question("?".into(), vec![]);
        Arc::new(Prompt::new(id.into(), "s".into(), 1.0, 0, payload))
    }

    fn ids(sends: &[Send]) -> Vec<String> {
        sends
            .iter()
            .map(|send| match send {
                Send::Prompt { prompt, escalated } => {
                    format!("{}{}", prompt.id, ["", "!"][usize::from(*escalated)])
                }
                Send::Held { questions, .. } => format!("held {questions}"),
            })
            .collect()
    }

    #[test]
    fn a_visible_page_holds_the_push_and_a_hidden_one_after_its_grace_releases_it() {
        let start = Instant::now();
        let mut desk = Desk::new(timing());
        desk.presence("tab", true, start);
        assert_eq!(desk.submitted(prompt("a"), start, 0), Decision::Present);
        let hidden = start + Duration::from_secs(5);
        desk.presence("tab", false, hidden);
        assert!(ids(&desk.due(hidden, 0)).is_empty(), "in its grace");
        assert_eq!(
            desk.next_due(hidden),
            Some(hidden + Duration::from_secs(20))
        );
        let later = hidden + Duration::from_secs(20);
        assert_eq!(ids(&desk.due(later, 0)), ["a"]);
        assert_eq!(ids(&desk.due(later + Duration::from_secs(60), 0)), ["a!"]);
        assert!(desk.due(later + Duration::from_secs(600), 0).is_empty());
    }

    #[test]
    fn a_resolved_prompt_leaves_no_timer_behind() {
        let start = Instant::now();
        let mut desk = Desk::new(timing());
        assert_eq!(desk.submitted(prompt("a"), start, 0), Decision::Notify);
        assert_eq!(desk.next_due(start), Some(start + Duration::from_secs(60)));
        desk.resolved("a");
        assert_eq!(desk.next_due(start), None);
    }

    #[test]
    fn a_page_that_stops_saying_it_is_visible_is_away_after_its_lease() {
        let start = Instant::now();
        let mut desk = Desk::new(timing());
        desk.presence("tab", true, start);
        desk.submitted(prompt("a"), start, 0);
        desk.submitted(prompt("b"), start, 0);
        desk.resolved("b");
        assert_eq!(desk.next_due(start), Some(start + LEASE));
        assert_eq!(ids(&desk.due(start + LEASE, 0)), ["a"]);
    }

    #[test]
    fn quiet_hours_hold_every_push_and_end_with_one_summary() {
        let start = Instant::now();
        let quiet = Quiet::parse("22:00-07:00").unwrap();
        let mut desk = Desk::new(Timing {
            quiet: Some(quiet),
            ..timing()
        });
        let night = 23 * 3600;
        assert_eq!(desk.submitted(prompt("a"), start, night), Decision::Held);
        assert_eq!(desk.submitted(prompt("b"), start, night), Decision::Held);
        desk.resolved("b");
        assert_eq!(
            desk.next_due(start),
            Some(start + Duration::from_secs(8 * 3600))
        );
        let morning = start + Duration::from_secs(8 * 3600);
        assert_eq!(ids(&desk.due(morning, 7 * 3600)), ["held 1"]);
        assert_eq!(
            desk.submitted(prompt("c"), morning, 7 * 3600),
            Decision::Notify
        );
    }
}
