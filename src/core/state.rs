//! The state machine: every session, queue, outcome and rule, as pure data.
//!
//! Invariants:
//! - `State::apply` is the only place state changes, one `Change` at a time;
//!   each change gets the next global version. Applying the same changes in
//!   the same order from `State::default()` gives an equal state, which is
//!   what a journal replays.
//! - Deciding is apart from applying: `submit`, `respond`, `cancel`,
//!   `revoke`, `expire_due` and `prune` read the state and return the
//!   changes to apply (or a refusal), changing nothing.
//! - Rules live where their lifetime says: `always` ones in the state,
//!   `session` ones in their session, so they leave with it. A rule's id
//!   is the id of the approval that granted it, and no two rules share one.
//! - No lock, no thread, no clock, no randomness here: the time and every
//!   new id come in as arguments or inside the change.
//! - A prompt is its agent credential's (`Prompt::agent`, journaled with
//!   it): another credential's wait or cancel sees exactly an unknown id,
//!   deduplication compares the asker's own prompts only, and a session is
//!   its first agent credential's (`submit` refuses another, 403).

use crate::core::action::Action;
use crate::core::change::Change;
use crate::core::credentials::Credentials;
use crate::core::kind::{Kind, KindMap};
use crate::core::prompt::{Answer, Outcome, Payload, Prompt, json_len, round_ms};
use crate::core::queue::{Identified, Queue};
use crate::core::receipt::{self, Decision};
use crate::core::room::GiveBack;
use crate::core::rules::{Lifetime, Rule, Scope};
use crate::core::shared::{Chunks, Shards};
use crate::core::validate;
use crate::core::view::{Interest, Update, Watch};
use crate::error::{Error, Refusal, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// At most this many outcomes are kept, however short their retention.
const MAX_OUTCOMES: usize = 100_000;

/// At most this many prompts one expiry pass expires (and one pass of the
/// stop switch cancels), and outcomes and sessions one change forgets: an operation is one journal record, which
/// must stay under a quarter of the journal's reserve (256 KiB by default:
/// 200 expiries of long ids, 2,000 outcome ids and 400 session ids take
/// about 210 KiB). What is left goes in the next pass, at once.
pub const EXPIRE_BATCH: usize = 200;
pub const FORGET_BATCH: usize = 2_000;
pub const SESSIONS_BATCH: usize = 400;

/// At most this many idle sessions one submit forgets to make room.
const MAX_EVICTED: usize = 16;

/// Rules one session may hold, and rules overall (their bytes count against
/// their share of the budget too).
const MAX_RULES_PER_SESSION: usize = 64;
const MAX_RULES: usize = 1024;

/// What keeping one session costs besides its id (the table's node, the
/// session, its two queues and heads). Measured in a release build: 20,000
/// sessions of one short prompt took 1,133 bytes each, of which the prompt
/// counts 665; so a session counts about 470, and 512 with its id; plus
/// its owner's name (`NAME_COST`).
const SESSION_OVERHEAD: usize = 512 + NAME_COST;

/// What a credential's name costs where it is kept: its `String` and at
/// most 32 bytes, held and as JSON (docs/PROTOCOL.md §7).
const NAME_COST: usize = 24 + 32 + 34;

/// What keeping one outcome costs, besides its answer's text and what it
/// asked: its record, its id twice (the table and the retention order) and
/// the tables' room to grow. Measured in a release build: 330 to 390 bytes each for 10,000
/// to 30,000 outcomes of a 12-byte id and a 2-byte answer; plus, for its
/// receipt, the action's digest (64 bytes of hex and its `String`) and the
/// rule's id (an `Option<String>` and at most 32 bytes); and who asked
/// and who answered (`NAME_COST` each).
const OUTCOME_OVERHEAD: usize = 384 + 88 + 56 + 2 * NAME_COST;

impl Identified for Arc<Prompt> {
    fn id(&self) -> &str {
        &self.id
    }
}

/// The limits the state machine enforces (docs/PROTOCOL.md §7).
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_pending: usize,
    /// Pending prompts across every session and kind.
    pub max_prompts: usize,
    pub max_sessions: usize,
    /// Seconds an outcome (and an idle session) is kept.
    pub result_ttl: f64,
    /// Bytes pending prompts may hold in all; half as much again for kept
    /// outcomes, whose oldest make room for new ones, and an eighth for
    /// rules.
    pub max_state_bytes: usize,
}

impl Limits {
    /// The share of the budget one session's pending prompts may hold.
    pub fn max_session_bytes(&self) -> usize {
        self.max_state_bytes / 8
    }

    pub fn max_outcome_bytes(&self) -> usize {
        self.max_state_bytes / 2
    }

    /// The share of the budget rules may hold, `session` and `always` ones
    /// together; an answer that would grant one more is refused.
    pub fn max_rule_bytes(&self) -> usize {
        self.max_state_bytes / 8
    }
}

/// What a submit did.
#[derive(Debug, PartialEq)]
pub enum Submitted {
    Queued {
        id: String,
        pending_count: usize,
        deduped: bool,
    },
    AutoAnswered {
        id: String,
        answer: Answer,
    },
}

/// What a respond decided: the change to apply, or a stale id.
#[derive(Debug, PartialEq)]
pub enum Respond {
    /// Boxed: a change holds a whole prompt.
    Answer(Box<Change>),
    /// The id named is not pending (or nothing is); this many still are.
    Stale { still_pending: usize },
}

/// What a waiting agent learns of a prompt.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    Pending,
    /// The outcome, and the version of the change that recorded it.
    Done(Outcome, u64),
    Unknown,
}

/// What `apply` touched: the queue to publish, the prompt whose outcome
/// to announce.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    pub queue: Option<(String, Kind)>,
    pub outcome: Option<String>,
}

/// An agent with prompts waiting, or paused: what the page's triage list
/// shows (docs/PROTOCOL.md §3.6).
#[derive(Debug, PartialEq)]
pub struct AgentSummary {
    pub agent: String,
    pub paused: bool,
    pub counts: KindMap<usize>,
    /// The first `MAX_LISTED_SESSIONS` sessions (by id) it has prompts
    /// waiting in.
    pub sessions: Vec<String>,
    /// How many sessions it has prompts waiting in.
    pub session_count: usize,
}

/// Sessions an agent's summary names: an agent picks every session id,
/// and the page reads the summaries again after every change.
pub const MAX_LISTED_SESSIONS: usize = 16;

/// At most this many agents paused at once, each name at most
/// `MAX_AGENT_NAME` bytes: the human's own input, bounded all the same.
pub const MAX_PAUSED: usize = 64;
pub const MAX_AGENT_NAME: usize = 128;

#[derive(Debug, PartialEq)]
pub struct SessionSummary {
    pub session_id: String,
    pub counts: KindMap<usize>,
    pub version: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Session {
    pub(super) queues: KindMap<Queue<Arc<Prompt>>>,
    /// Each queue's head as JSON, made once per change and shared by every
    /// frame, poll and snapshot that shows it.
    heads: KindMap<Option<Arc<str>>>,
    /// Rules granted with `session`, for the rest of this session, oldest
    /// first.
    pub(super) rules: Vec<Rule>,
    /// Unix seconds of the last change.
    pub(super) changed_at: f64,
    /// The agent credential that first submitted here: the only one that
    /// may submit here again (docs/PROTOCOL.md §7). Set by the first
    /// `Submitted`; a snapshot from before names read as `"agent"`.
    pub(super) owner: String,
}

impl Session {
    /// What keeping a session costs, apart from its prompts and rules: its
    /// entry in the table, its id, its queues and heads, and its line in a
    /// snapshot being written. Counted with the pending prompts.
    pub(super) fn cost(session_id: &str) -> usize {
        SESSION_OVERHEAD + session_id.len() + json_len(session_id)
    }

    fn has_pending(&self) -> bool {
        self.queues.values().any(|queue| !queue.is_empty())
    }

    fn is_idle(&self) -> bool {
        !self.has_pending() && self.rules.is_empty()
    }

    fn version(&self) -> u64 {
        self.queues.values().map(Queue::version).max().unwrap_or(0)
    }

    pub(super) fn refresh_head(&mut self, kind: Kind) {
        let head = self.queues[kind].head();
        self.heads[kind] = head.map(|prompt| Arc::from(prompt.to_json().to_string()));
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Record {
    pub(super) kind: Kind,
    pub(super) session_id: String,
    /// What was asked: the question or the command, for the history.
    pub(super) asked: String,
    /// The action an approval asked for, when it is not a command (`asked`
    /// holds its summary), so the history shows all of what was asked.
    pub(super) action: Option<Box<Action>>,
    /// Answered at once by a rule, never shown to the human.
    pub(super) auto: bool,
    pub(super) outcome: Outcome,
    pub(super) at: f64,
    pub(super) version: u64,
    /// The digest of the canonical action asked, for its receipt
    /// (`core/receipt.rs`).
    pub(super) action_digest: String,
    /// The rule that answered, when one did.
    pub(super) rule: Option<String>,
    /// The credential that submitted the prompt: the only one that may
    /// wait on it.
    pub(super) agent: String,
    /// Who answered, by name, when a human did (`Change::Resolved::by`).
    pub(super) by: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct State {
    pub(super) version: u64,
    /// Each `Arc`, so a clone (the Redis store's ahead state) copies a
    /// session only once it changes there.
    pub(super) sessions: BTreeMap<String, Arc<Session>>,
    /// Kept outcomes, shared (`Arc`) with a snapshot being written, so
    /// compaction copies pointers, not records; these tables, their order
    /// and the pending ids are shared with the state's clones until written
    /// (`shared`).
    pub(super) outcomes: Shards<Arc<Record>>,
    /// Outcome ids in the order they were recorded, for retention.
    pub(super) outcome_order: Chunks<Arc<str>>,
    /// Every pending prompt's id, so new ids are unique across sessions.
    pub(super) pending_ids: Shards<()>,
    /// Rules granted with `always`, oldest first.
    pub(super) always: Vec<Rule>,
    /// Where each rule lives, by id: its session, or `None` for `always`.
    /// Derived from the rules, so ids stay unique and a revoke finds its
    /// rule without a search.
    pub(super) rule_homes: HashMap<String, Option<String>>,
    /// The highest version of a session forgotten: resuming from an older
    /// version cannot be exact.
    pub(super) pruned_version: u64,
    /// Version ranges (after, up to) skipped at a restart: a watcher that
    /// saw a version inside one saw a change that was never made durable.
    pub(super) skipped: Vec<(u64, u64)>,
    /// Agents the human paused: their prompts wait unseen and unannounced
    /// (docs/PROTOCOL.md §3.6).
    pub(super) paused: BTreeSet<String>,
    /// What the pending prompts and the kept outcomes cost, kept up to date
    /// by `apply` (derived, so a snapshot does not store them).
    pub(super) pending_bytes: usize,
    pub(super) outcome_bytes: usize,
    /// What the rules cost, `always` ones and every session's.
    pub(super) rule_bytes: usize,
    /// What the sessions themselves cost (`Session::cost`), counted with
    /// the pending prompts.
    pub(super) session_bytes: usize,
    /// The page's sign-ins and the spent capabilities.
    pub(super) credentials: Credentials,
}

impl State {
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The one place state changes: stamps the change with the next version
    /// and applies it.
    pub fn apply(&mut self, change: &Change) -> Applied {
        self.version += 1;
        let version = self.version;
        match change {
            Change::Submitted(prompt) => self.apply_submitted(prompt, version),
            Change::Resolved {
                session_id,
                kind,
                id,
                outcome,
                at,
                by,
                ..
            } => {
                let rule = self.rule_granted_by(change);
                let Some(session) = self.sessions.get_mut(session_id).map(Arc::make_mut) else {
                    return Applied::default();
                };
                let Some(prompt) = session.queues[*kind].remove(id, version) else {
                    return Applied::default();
                };
                self.pending_bytes -= prompt.stored_bytes();
                session.refresh_head(*kind);
                session.changed_at = *at;
                self.pending_ids.remove(id.as_str());
                if let Some(rule) = rule {
                    self.grant(rule);
                }
                let record = Record {
                    kind: *kind,
                    session_id: session_id.clone(),
                    asked: prompt.payload.asked().to_string(),
                    action: prompt.payload.action().and_then(kept_action),
                    auto: false,
                    outcome: outcome.clone(),
                    at: *at,
                    version,
                    action_digest: receipt::action_digest(&receipt::action_of(&prompt.payload)),
                    rule: None,
                    agent: prompt.agent.clone(),
                    by: by.clone(),
                };
                self.record(id, record);
                Applied {
                    queue: Some((session_id.clone(), *kind)),
                    outcome: Some(id.clone()),
                }
            }
            Change::AutoAnswered {
                session_id,
                kind,
                id,
                command,
                action,
                answer,
                rule_id,
                at,
                agent,
            } => {
                let record = Record {
                    kind: *kind,
                    session_id: session_id.clone(),
                    asked: command.clone(),
                    action: kept_action(action),
                    auto: true,
                    outcome: Outcome::Answered(answer.clone()),
                    at: *at,
                    version,
                    action_digest: receipt::action_digest(&action.key()),
                    rule: Some(rule_id.clone()),
                    agent: agent.clone(),
                    by: None,
                };
                self.record(id, record);
                Applied {
                    queue: None,
                    outcome: Some(id.clone()),
                }
            }
            Change::RuleRevoked { rule_id, .. } => {
                let rules = match self.rule_homes.remove(rule_id) {
                    Some(Some(session_id)) => self
                        .sessions
                        .get_mut(&session_id)
                        .map(|s| &mut Arc::make_mut(s).rules),
                    Some(None) => Some(&mut self.always),
                    None => None,
                };
                if let Some(rules) = rules {
                    let freed: usize = rules
                        .iter()
                        .filter(|rule| rule.rule_id == *rule_id)
                        .map(Rule::stored_bytes)
                        .sum();
                    rules.retain(|rule| rule.rule_id != *rule_id);
                    self.rule_bytes -= freed;
                }
                Applied::default()
            }
            Change::SessionEvicted { session_id } => {
                self.forget_session(session_id);
                Applied::default()
            }
            Change::Pruned { outcomes, sessions } => {
                let forgotten: HashSet<&str> = outcomes.iter().map(String::as_str).collect();
                self.outcome_order.retain(|id| !forgotten.contains(&**id));
                for id in outcomes {
                    self.forget_outcome(id);
                }
                for session_id in sessions {
                    self.forget_session(session_id);
                }
                self.shrink_tables();
                Applied::default()
            }
            Change::Paused { agent, paused, .. } => {
                if *paused {
                    self.paused.insert(agent.clone());
                } else {
                    self.paused.remove(agent);
                }
                Applied::default()
            }
            Change::Restarted { .. } => {
                let before = version - 1;
                self.version = before + change.versions_used();
                self.skipped.push((before, self.version));
                Applied::default()
            }
            Change::Credential(change) => {
                self.credentials.apply(change);
                Applied::default()
            }
        }
    }

    fn apply_submitted(&mut self, prompt: &Arc<Prompt>, version: u64) -> Applied {
        let kind = prompt.kind();
        if !self.sessions.contains_key(&prompt.session_id) {
            self.session_bytes += Session::cost(&prompt.session_id);
        }
        let session = Arc::make_mut(self.sessions.entry(prompt.session_id.clone()).or_default());
        if session.owner.is_empty() {
            session.owner = prompt.agent.clone();
        }
        session.changed_at = prompt.requested_at;
        session.queues[kind].push(Arc::clone(prompt), version);
        session.refresh_head(kind);
        self.pending_ids.insert(Arc::from(prompt.id.as_str()), ());
        self.pending_bytes += prompt.stored_bytes();
        Applied {
            queue: Some((prompt.session_id.clone(), kind)),
            outcome: None,
        }
    }

    fn grant(&mut self, rule: Rule) {
        let rules = match &rule.session_id {
            Some(session_id) => match self.sessions.get_mut(session_id).map(Arc::make_mut) {
                Some(session) => &mut session.rules,
                None => return,
            },
            None => &mut self.always,
        };
        let home = rule.session_id.clone();
        self.rule_homes.insert(rule.rule_id.clone(), home);
        self.rule_bytes += rule.stored_bytes();
        rules.push(rule);
    }

    /// The rule applying this change adds: for an answer that grants one,
    /// named by the prompt's id, with the change's time (to the
    /// millisecond) and the prompt's command. `None` for any other change,
    /// when a rule of the same lifetime (and session) already has that
    /// scope, or when the scope may not be granted on the prompt's command
    /// (`State::refused_grant`): what a record asks is checked when it is
    /// applied, from a journal or from Redis, not only when it was decided.
    pub fn rule_granted_by(&self, change: &Change) -> Option<Rule> {
        let Change::Resolved {
            session_id,
            kind,
            id,
            outcome: Outcome::Answered(Answer::Decision(decision)),
            at,
            grant: Some(scope),
            ..
        } = change
        else {
            return None;
        };
        let lifetime = Lifetime::of(decision.choice)?;
        let session = self.sessions.get(session_id)?;
        let payload = &session.queues[*kind].get(id)?.payload;
        let (command, action) = (payload.command()?, payload.action()?);
        let (rules, session_id) = match lifetime {
            Lifetime::Session => (&session.rules, Some(session_id.clone())),
            Lifetime::Always => (&self.always, None),
        };
        let refused = scope.refusal_for(action, payload.cwd()).is_some();
        if rules.iter().any(|rule| rule.scope == *scope) || refused {
            return None;
        }
        Some(Rule {
            rule_id: id.clone(),
            scope: scope.clone(),
            lifetime,
            session_id,
            granted_at: round_ms(*at),
            command: command.to_string(),
        })
    }

    /// Why applying this change will not grant the rule it carries: its
    /// scope may not be granted on the command of the prompt it answers
    /// (docs/PROTOCOL.md §3.2), or that prompt is not a pending approval.
    /// `None` for a change that carries no grant or one that holds. A
    /// decision made here never carries such a grant; a record that does
    /// was damaged or forged, and its replay says so.
    pub fn refused_grant(&self, change: &Change) -> Option<String> {
        let Change::Resolved {
            session_id,
            kind,
            id,
            grant: Some(scope),
            ..
        } = change
        else {
            return None;
        };
        let prompt = self.sessions.get(session_id)?.queues[*kind].get(id)?;
        let Some(action) = prompt.payload.action() else {
            return Some("it answers a prompt that has no action".into());
        };
        scope.refusal_for(action, prompt.payload.cwd())
    }

    fn record(&mut self, id: &str, record: Record) {
        // The oldest outcomes go first when the table is full.
        while self.outcomes.len() >= MAX_OUTCOMES {
            let Some(oldest) = self.outcome_order.pop_front() else {
                break;
            };
            self.forget_outcome(&oldest);
        }
        self.outcome_bytes += record.cost(id);
        let id: Arc<str> = Arc::from(id);
        self.outcome_order.push_back(id.clone());
        self.outcomes.insert(id, Arc::new(record));
    }

    /// Tables keep the room they grew to: after a burst, give most of it
    /// back once they hold a quarter of it or less, so memory returns with
    /// the outcomes (docs/deploy.md, "Memory, worst case").
    fn shrink_tables(&mut self) {
        self.outcomes.give_back_room();
        self.outcome_order.give_back_room();
        self.pending_ids.give_back_room();
    }

    fn forget_outcome(&mut self, id: &str) {
        if let Some(record) = self.outcomes.remove(id) {
            self.outcome_bytes -= record.cost(id);
        }
    }

    fn forget_session(&mut self, session_id: &str) {
        if let Some(session) = self.sessions.remove(session_id) {
            self.session_bytes -= Session::cost(session_id);
            self.pruned_version = self.pruned_version.max(session.version());
            for rule in &session.rules {
                self.rule_homes.remove(&rule.rule_id);
                self.rule_bytes -= rule.stored_bytes();
            }
            for queue in session.queues.values() {
                for prompt in queue.iter() {
                    self.pending_ids.remove(prompt.id.as_str());
                    self.pending_bytes -= prompt.stored_bytes();
                }
            }
        }
    }

    /// The oldest outcomes to forget so that `changes` (which may record
    /// outcomes) keep the outcomes within their share of the budget; `None`
    /// when they fit. The hub applies it before them, so the journal holds
    /// the forgetting as a change like any other.
    pub fn room_for_outcomes(&self, limits: &Limits, changes: &[Change]) -> Option<Change> {
        let incoming: usize = changes.iter().filter_map(|c| self.recorded_cost(c)).sum();
        let mut excess = (self.outcome_bytes + incoming)
            .checked_sub(limits.max_outcome_bytes())
            .filter(|&excess| excess > 0)?;
        let mut outcomes = Vec::new();
        for id in self.outcome_order.iter() {
            if excess == 0 || outcomes.len() == FORGET_BATCH {
                break;
            }
            let Some(record) = self.outcomes.get(id) else {
                continue;
            };
            excess = excess.saturating_sub(record.cost(id));
            outcomes.push(id.to_string());
        }
        Some(Change::Pruned {
            outcomes,
            sessions: Vec::new(),
        })
    }

    /// What a change adds to the kept outcomes: a resolved prompt keeps
    /// what it asked, an auto-answer its command.
    fn recorded_cost(&self, change: &Change) -> Option<usize> {
        match change {
            Change::Resolved {
                session_id,
                kind,
                id,
                outcome,
                ..
            } => {
                let prompt = self.queue(session_id, *kind).and_then(|q| q.get(id));
                let asked = prompt.map_or("", |prompt| prompt.payload.asked());
                let action = prompt.and_then(|prompt| prompt.payload.action());
                let kept = action.and_then(kept_action);
                Some(outcome_cost(id, outcome, asked) + kept_action_cost(kept.as_deref()))
            }
            Change::AutoAnswered {
                id,
                command,
                action,
                answer,
                ..
            } => {
                let answered = Outcome::Answered(answer.clone());
                let kept = kept_action(action);
                Some(outcome_cost(id, &answered, command) + kept_action_cost(kept.as_deref()))
            }
            _ => None,
        }
    }

    // ---- deciding: what a request would change ----

    /// A fresh id of this kind, drawn with `draw` until it is unused.
    pub fn fresh_id(&self, kind: Kind, mut draw: impl FnMut(usize) -> String) -> String {
        loop {
            let id = draw(kind.id_len());
            let used = self.pending_ids.contains_key(id.as_str())
                || self.outcomes.contains_key(id.as_str());
            if !used && !self.rule_homes.contains_key(&id) {
                return id;
            }
        }
    }

    /// The changes a submit makes, and what to tell the agent. The prompt
    /// has a fresh id; `needed` says whether a watcher still needs a session
    /// (such sessions are never evicted).
    pub fn submit(
        &self,
        limits: &Limits,
        prompt: Prompt,
        watched: impl Fn(&str) -> bool,
    ) -> Result<(Vec<Change>, Submitted)> {
        let (session_id, kind) = (prompt.session_id.as_str(), prompt.kind());
        self.check_session_owner(session_id, &prompt.agent)?;
        if let Some(queued) = self.duplicate_of_last(&prompt) {
            return Ok((Vec::new(), queued));
        }
        if let Some((rule, command, answer)) = self.rule_for(session_id, &prompt.payload) {
            let action = prompt.payload.action().expect("a rule answers approvals");
            let change = Change::AutoAnswered {
                session_id: session_id.to_string(),
                kind,
                id: prompt.id.clone(),
                command: command.to_string(),
                action: Box::new(action.clone()),
                answer: answer.clone(),
                rule_id: rule.rule_id.clone(),
                at: prompt.requested_at,
                agent: prompt.agent.clone(),
            };
            return Ok((
                vec![change],
                Submitted::AutoAnswered {
                    id: prompt.id,
                    answer,
                },
            ));
        }
        let mut changes = self.make_room(limits, &prompt, watched)?;
        let submitted = Submitted::Queued {
            id: prompt.id.clone(),
            pending_count: self.queue_len(session_id, kind) + 1,
            deduped: false,
        };
        changes.push(Change::Submitted(prompt.into()));
        Ok((changes, submitted))
    }

    /// A session belongs to the agent credential that first submitted
    /// there: another is refused (403) rather than inheriting its rules and
    /// answers (docs/PROTOCOL.md §7).
    fn check_session_owner(&self, session_id: &str, agent: &str) -> Result<()> {
        match self.sessions.get(session_id) {
            Some(session) if !session.owner.is_empty() && session.owner != agent => {
                Err(Error::Forbidden(Refusal {
                    message: format!(
                        "session \"{}\" belongs to another agent credential",
                        crate::error::quoted(session_id)
                    ),
                    hint:
                        "use a session id of your own; each agent credential has its own sessions"
                            .into(),
                    // The log may name the owner; the other agent may not learn it.
                    expected: format!("the session's own credential, {}", session.owner),
                }))
            }
            _ => Ok(()),
        }
    }

    /// Queue rule 9: the same payload as the newest entry, from the same
    /// credential, returns that entry; never another credential's.
    fn duplicate_of_last(&self, prompt: &Prompt) -> Option<Submitted> {
        let kind = prompt.kind();
        if !kind.deduplicates() {
            return None;
        }
        let queue = self.queue(&prompt.session_id, kind)?;
        let same =
            |last: &&Arc<Prompt>| last.payload == prompt.payload && last.agent == prompt.agent;
        let last = queue.last().filter(same)?;
        Some(Submitted::Queued {
            id: last.id.clone(),
            pending_count: queue.len(),
            deduped: true,
        })
    }

    /// The rule that covers this payload's command, if any, the command,
    /// and the answer the rule gives: `always` rules first, then the
    /// session's.
    fn rule_for<'a>(
        &'a self,
        session_id: &str,
        payload: &'a Payload,
    ) -> Option<(&'a Rule, &'a str, Answer)> {
        let (command, action) = (payload.command()?, payload.action()?);
        let rules = self.always.iter().chain(self.session_rules(session_id));
        let cwd = payload.cwd();
        let rule = rules
            .into_iter()
            .find(|rule| rule.scope.covers(action, cwd))?;
        Some((rule, command, Answer::choice(rule.lifetime.choice())))
    }

    fn make_room(
        &self,
        limits: &Limits,
        prompt: &Prompt,
        watched: impl Fn(&str) -> bool,
    ) -> Result<Vec<Change>> {
        let (session_id, kind) = (prompt.session_id.as_str(), prompt.kind());
        if self.queue_len(session_id, kind) >= limits.max_pending {
            return Err(Error::TooMany(format!(
                "too many pending {} prompts in this session (limit {})",
                kind.as_str(),
                limits.max_pending
            )));
        }
        let bytes = prompt.stored_bytes();
        if self.pending_bytes + bytes > limits.max_state_bytes {
            return Err(Error::InsufficientStorage(format!(
                "the memory budget for pending prompts is full ({} MiB, --max-state-bytes); answer or cancel some",
                limits.max_state_bytes >> 20
            )));
        }
        if self.session_prompt_bytes(session_id) + bytes > limits.max_session_bytes() {
            return Err(Error::TooMany(format!(
                "this session's pending prompts hold their share of the memory budget ({} KiB)",
                limits.max_session_bytes() >> 10
            )));
        }
        if self.pending_ids.len() >= limits.max_prompts {
            return Err(Error::TooMany(format!(
                "too many pending prompts (limit {})",
                limits.max_prompts
            )));
        }
        let new_session = !self.sessions.contains_key(session_id);
        let cost = bytes
            + if new_session {
                Session::cost(session_id)
            } else {
                0
            };
        let held = self.pending_bytes + self.session_bytes + cost;
        let mut over = held.saturating_sub(limits.max_state_bytes);
        let mut count = usize::from(new_session && self.sessions.len() >= limits.max_sessions);
        if over == 0 && count == 0 {
            return Ok(Vec::new());
        }
        let mut evicted = Vec::new();
        for idle in self.idle_sessions_changed_longest_ago(session_id, watched) {
            if (over == 0 && count == 0) || evicted.len() == MAX_EVICTED {
                break;
            }
            over = over.saturating_sub(Session::cost(idle));
            count = count.saturating_sub(1);
            evicted.push(Change::SessionEvicted {
                session_id: idle.to_string(),
            });
        }
        if over > 0 {
            return Err(Error::InsufficientStorage(format!(
                "the memory budget for pending prompts and sessions is full ({} MiB, --max-state-bytes); answer or cancel some",
                limits.max_state_bytes >> 20
            )));
        }
        if count > 0 {
            let limit = limits.max_sessions;
            return Err(Error::TooMany(format!("too many sessions (limit {limit})")));
        }
        Ok(evicted)
    }

    /// The sessions to forget for a new one, or to make room in the budget:
    /// nothing pending, not `keep`, watched by no one by name, changed
    /// longest ago first.
    fn idle_sessions_changed_longest_ago(
        &self,
        keep: &str,
        watched: impl Fn(&str) -> bool,
    ) -> Vec<&str> {
        let idle = self.sessions.iter().filter(|(session_id, session)| {
            !session.has_pending() && *session_id != keep && !watched(session_id)
        });
        let mut idle: Vec<(&str, f64)> = idle.map(|(id, s)| (id.as_str(), s.changed_at)).collect();
        idle.sort_by(|a, b| a.1.total_cmp(&b.1));
        idle.into_iter().map(|(session_id, _)| session_id).collect()
    }

    /// Answers the pending prompt with this id, or the head when no id is
    /// given. `picked` is the wider scope the human picked for a rule (a
    /// prefix); a scope that may not be granted is refused (400), a new
    /// rule beyond the rules' share of the budget too (507).
    pub fn respond(
        &self,
        limits: &Limits,
        session_id: &str,
        id: Option<&str>,
        answer: Answer,
        picked: Option<Scope>,
        now: f64,
    ) -> Result<Respond> {
        let kind = answer.kind();
        let Some(prompt) = self.target(session_id, kind, id) else {
            let still_pending = self.queue_len(session_id, kind);
            return Ok(Respond::Stale { still_pending });
        };
        validate::answer(&prompt.payload, &answer)?;
        let grant = self.grant_for(limits, prompt, &answer, picked)?;
        Ok(Respond::Answer(Box::new(Change::Resolved {
            session_id: session_id.to_string(),
            kind,
            id: prompt.id.clone(),
            outcome: Outcome::Answered(answer),
            at: now,
            grant,
            by: None,
        })))
    }

    /// The scope of the rule an answer grants: the exact command the human
    /// saw, or the prefix of it they picked. A new rule must have room.
    fn grant_for(
        &self,
        limits: &Limits,
        prompt: &Prompt,
        answer: &Answer,
        picked: Option<Scope>,
    ) -> Result<Option<Scope>> {
        let lifetime = answer.decision().and_then(|d| Lifetime::of(d.choice));
        let (Some(lifetime), Some(command), Some(action)) =
            (lifetime, prompt.payload.command(), prompt.payload.action())
        else {
            return Ok(None);
        };
        let cwd = prompt.payload.cwd();
        let scope = Scope::for_action(action, cwd, picked).map_err(Error::bad_request)?;
        let session = self.sessions.get(&prompt.session_id);
        let held = match lifetime {
            Lifetime::Session => session.map_or(&[][..], |s| s.rules.as_slice()),
            Lifetime::Always => self.always.as_slice(),
        };
        if !held.iter().any(|rule| rule.scope == scope) {
            let cost = Rule::cost(&prompt.id, &scope, command);
            self.room_for_rule(limits, session.map_or(0, |s| s.rules.len()), cost)?;
        }
        Ok(Some(scope))
    }

    /// Rules are bounded: in number per session and overall (429, so the
    /// human can revoke some first), and in bytes by their share of the
    /// budget (507; the human can still answer once or deny).
    fn room_for_rule(&self, limits: &Limits, in_session: usize, cost: usize) -> Result<()> {
        if in_session >= MAX_RULES_PER_SESSION {
            return Err(Error::TooMany(format!(
                "this session has {MAX_RULES_PER_SESSION} rules already; revoke some first"
            )));
        }
        if self.rule_count() >= MAX_RULES {
            return Err(Error::TooMany(format!(
                "there are {MAX_RULES} rules already; revoke some first"
            )));
        }
        if self.rule_bytes + cost > limits.max_rule_bytes() {
            return Err(Error::InsufficientStorage(format!(
                "the memory budget for rules is full ({} KiB, an eighth of --max-state-bytes); answer once instead",
                limits.max_rule_bytes() >> 10
            )));
        }
        Ok(())
    }

    /// Cancels one pending prompt of `agent`'s, or every pending prompt of
    /// its in the session's kind when no id is given; another credential's
    /// prompt is as unknown as one that never was (docs/PROTOCOL.md §7).
    pub fn cancel(
        &self,
        session_id: &str,
        kind: Kind,
        id: Option<&str>,
        agent: &str,
        now: f64,
    ) -> Result<Vec<Change>> {
        let target = |id| {
            self.target(session_id, kind, Some(id))
                .filter(|p| p.agent == agent)
        };
        let prompts: Vec<&Prompt> = match id {
            Some(id) => match target(id) {
                Some(prompt) => vec![prompt],
                None => {
                    return Err(Error::Stale(format!(
                        "{} is no longer pending",
                        kind.as_str()
                    )));
                }
            },
            None => self
                .queue(session_id, kind)
                .into_iter()
                .flat_map(Queue::iter)
                .map(|prompt| &**prompt)
                .filter(|prompt| prompt.agent == agent)
                .collect(),
        };
        let resolve = |prompt: &Prompt| resolved(prompt, Outcome::Cancelled, now);
        Ok(prompts.into_iter().map(resolve).collect())
    }

    /// Pauses an agent or lets it go on; nothing when it already is so.
    pub fn pause(&self, agent: &str, paused: bool, now: f64) -> Result<Vec<Change>> {
        if agent.is_empty() || agent.len() > MAX_AGENT_NAME {
            return Err(Error::BadRequest(format!(
                "agent must be 1 to {MAX_AGENT_NAME} bytes"
            )));
        }
        if self.paused.contains(agent) == paused {
            return Ok(Vec::new());
        }
        if paused && self.paused.len() >= MAX_PAUSED {
            return Err(Error::TooMany(format!(
                "{MAX_PAUSED} agents are paused already; resume one first"
            )));
        }
        let agent = agent.to_string();
        Ok(vec![Change::Paused {
            agent,
            paused,
            at: now,
        }])
    }

    pub fn is_paused(&self, agent: &str) -> bool {
        self.paused.contains(agent)
    }

    /// Cancels every pending prompt of one agent, or of every agent: the
    /// human's stop switch (docs/PROTOCOL.md §3.6).
    pub fn stop(&self, agent: Option<&str>, now: f64) -> Vec<Change> {
        self.pending_prompts()
            .filter(|prompt| agent.is_none_or(|agent| prompt.agent_name() == agent))
            .map(|prompt| resolved(prompt, Outcome::Cancelled, now))
            .collect()
    }

    /// Every pending prompt, session by session, oldest first in each queue.
    pub fn pending_prompts(&self) -> impl Iterator<Item = &Prompt> {
        let queues = self.sessions.values().flat_map(|s| s.queues.values());
        queues.flat_map(Queue::iter).map(|prompt| &**prompt)
    }

    /// The agents with prompts waiting, and the paused ones, by name.
    pub fn agents(&self) -> Vec<AgentSummary> {
        let mut agents: BTreeMap<String, AgentSummary> = BTreeMap::new();
        let names = self.paused.iter().map(String::as_str);
        for agent in names.chain(self.pending_prompts().map(Prompt::agent_name)) {
            agents
                .entry(agent.to_string())
                .or_insert_with(|| AgentSummary {
                    agent: agent.to_string(),
                    paused: self.paused.contains(agent),
                    counts: KindMap::default(),
                    sessions: Vec::new(),
                    session_count: 0,
                });
        }
        // Prompts come session by session, so an agent's next session is
        // one other than the last it was seen in.
        let mut last_session: HashMap<&str, &str> = HashMap::new();
        for prompt in self.pending_prompts() {
            let Some(summary) = agents.get_mut(prompt.agent_name()) else {
                continue;
            };
            summary.counts[prompt.kind()] += 1;
            let session_id = prompt.session_id.as_str();
            if last_session.insert(prompt.agent_name(), session_id) != Some(session_id) {
                summary.session_count += 1;
                if summary.sessions.len() < MAX_LISTED_SESSIONS {
                    summary.sessions.push(session_id.to_string());
                }
            }
        }
        agents.into_values().collect()
    }

    /// Takes a rule back; an id that names no rule is a 404.
    pub fn revoke(&self, rule_id: &str, now: f64) -> Result<Change> {
        match self.rule(rule_id) {
            Some(rule) => Ok(Change::RuleRevoked {
                rule_id: rule.rule_id.clone(),
                at: now,
            }),
            None => Err(Error::NotFound("no such rule".into())),
        }
    }

    /// Every pending prompt whose time has come, expired.
    pub fn expire_due(&self, now: f64) -> Vec<Change> {
        let pending = self
            .sessions
            .values()
            .flat_map(|s| s.queues.values())
            .flat_map(Queue::iter);
        let due = pending.filter(|prompt| prompt.is_expired(now));
        due.take(EXPIRE_BATCH)
            .map(|prompt| resolved(prompt, Outcome::Expired, now))
            .collect()
    }

    /// Sign-ins and spent capabilities expired at `now`, forgotten; `None`
    /// when none has.
    pub fn expire_credentials(&self, now: f64) -> Option<Change> {
        self.credentials.expiry(now).map(Change::Credential)
    }

    /// The credentials the state keeps: sign-ins, spent capabilities and
    /// codes.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The earliest `expires_at` of any pending prompt.
    pub fn next_expiry(&self) -> Option<f64> {
        let pending = self
            .sessions
            .values()
            .flat_map(|s| s.queues.values())
            .flat_map(Queue::iter);
        let deadlines = pending
            .filter(|prompt| prompt.expires())
            .map(|p| p.expires_at);
        deadlines.min_by(f64::total_cmp)
    }

    /// Outcomes past retention, or beyond their share of the budget (a
    /// state read back under a smaller one), oldest first; and idle
    /// sessions whose last change is past retention and that no watcher
    /// `needs`; `None` when there are none. A batch at a time.
    pub fn prune(
        &self,
        now: f64,
        limits: &Limits,
        needed: impl Fn(&str) -> bool,
    ) -> Option<Change> {
        let stale_before = now - limits.result_ttl;
        let mut excess = self
            .outcome_bytes
            .saturating_sub(limits.max_outcome_bytes());
        let outcomes: Vec<String> = self
            .outcome_order
            .iter()
            .take_while(|id| {
                let Some(record) = self.outcomes.get(id) else {
                    return false;
                };
                let forget = record.at <= stale_before || excess > 0;
                excess = excess.saturating_sub(record.cost(id));
                forget
            })
            .take(FORGET_BATCH)
            .map(|id| id.to_string())
            .collect();
        let sessions = self.sessions.iter();
        let stale =
            sessions.filter(|(id, s)| s.is_idle() && s.changed_at < stale_before && !needed(id));
        let sessions: Vec<String> = stale
            .take(SESSIONS_BATCH)
            .map(|(id, _)| id.clone())
            .collect();
        (!outcomes.is_empty() || !sessions.is_empty())
            .then_some(Change::Pruned { outcomes, sessions })
    }

    // ---- reading ----

    fn queue(&self, session_id: &str, kind: Kind) -> Option<&Queue<Arc<Prompt>>> {
        self.sessions
            .get(session_id)
            .map(|session| &session.queues[kind])
    }

    fn session_prompt_bytes(&self, session_id: &str) -> usize {
        let session = self.sessions.get(session_id);
        let prompts = session
            .into_iter()
            .flat_map(|s| s.queues.values())
            .flat_map(Queue::iter);
        prompts.map(|prompt| prompt.stored_bytes()).sum()
    }

    /// Bytes held by pending prompts and sessions, by kept outcomes and by
    /// rules.
    pub fn bytes(&self) -> (usize, usize, usize) {
        let pending = self.pending_bytes + self.session_bytes;
        (pending, self.outcome_bytes, self.rule_bytes)
    }

    pub fn queue_len(&self, session_id: &str, kind: Kind) -> usize {
        self.queue(session_id, kind).map_or(0, Queue::len)
    }

    /// The pending prompt a respond or cancel names: that id if it is
    /// pending, or the head when no id is given.
    fn target(&self, session_id: &str, kind: Kind, id: Option<&str>) -> Option<&Prompt> {
        let queue = self.queue(session_id, kind)?;
        let prompt = match id {
            Some(id) => queue.get(id),
            None => queue.head(),
        };
        prompt.map(|prompt| &**prompt)
    }

    pub fn update_of(&self, session_id: &str, kind: Kind) -> Update {
        let session = self.sessions.get(session_id);
        let queue = session.map(|session| &session.queues[kind]);
        Update {
            session_id: session_id.to_string(),
            kind,
            pending: session.and_then(|session| session.heads[kind].clone()),
            pending_count: queue.map_or(0, Queue::len),
            version: queue.map_or(0, Queue::version),
        }
    }

    /// Whether a watcher that saw everything up to `since` can be brought
    /// up to date exactly by the queues changed after it.
    pub fn can_resume_from(&self, since: u64) -> bool {
        let skipped = self
            .skipped
            .iter()
            .any(|&(after, upto)| after < since && since < upto);
        since <= self.version && since >= self.pruned_version && !skipped
    }

    /// The states a watcher with this interest is sent: with `since`, the
    /// watched queues changed after it; without, every named queue (empty
    /// ones too) or, when watching all, every non-empty one. Oldest first.
    pub fn states(&self, interest: &Interest, since: Option<u64>) -> Vec<Update> {
        let sessions: Vec<&str> = match &interest.watch {
            Watch::All => self.sessions.keys().map(String::as_str).collect(),
            Watch::Sessions(names) => names.iter().map(String::as_str).collect(),
        };
        let mut updates = Vec::new();
        for session_id in sessions {
            for kind in interest.kinds() {
                let queue = self.queue(session_id, kind);
                let (version, len) = queue.map_or((0, 0), |q| (q.version(), q.len()));
                let wanted = match (since, &interest.watch) {
                    (Some(since), _) => version > since,
                    (None, Watch::All) => len > 0,
                    (None, Watch::Sessions(_)) => true,
                };
                if wanted {
                    updates.push(self.update_of(session_id, kind));
                }
            }
        }
        updates.sort_by_key(|update| update.version);
        updates
    }

    /// What the agent credential `agent` waiting on this prompt learns
    /// now: another credential's prompt is `Unknown`, as one that never was
    /// (docs/PROTOCOL.md §7).
    pub fn lookup(&self, id: &str, kind: Kind, session_id: &str, agent: &str) -> Lookup {
        if let Some(record) = self.outcomes.get(id) {
            if record.kind == kind && record.session_id == session_id && record.agent == agent {
                return Lookup::Done(record.outcome.clone(), record.version);
            }
            return Lookup::Unknown;
        }
        match self.queue(session_id, kind).and_then(|q| q.get(id)) {
            Some(prompt) if prompt.agent == agent => Lookup::Pending,
            _ => Lookup::Unknown,
        }
    }

    /// The decision a kept outcome records, for its receipt.
    pub fn decision(&self, id: &str) -> Option<Decision> {
        let record = self.outcomes.get(id)?;
        let decision = Decision::of(
            id,
            &record.session_id,
            record.kind,
            &record.action_digest,
            &record.outcome,
        );
        let mut decision = match &record.rule {
            Some(rule) => decision.by_rule(rule),
            None => decision,
        };
        decision.agent = record.agent.clone();
        if let Some(by) = &record.by {
            decision.by = by.clone();
        }
        Some(decision.at(record.at))
    }

    /// Sessions with something pending or a change since `recent`.
    pub fn sessions(&self, recent: f64) -> Vec<SessionSummary> {
        let listed = self.sessions.iter();
        let listed = listed.filter(|(_, s)| s.has_pending() || s.changed_at >= recent);
        listed
            .map(|(session_id, session)| SessionSummary {
                session_id: session_id.clone(),
                counts: counts_of(session),
                version: session.version(),
            })
            .collect()
    }

    /// Rules granted: `always` ones and every session's.
    pub fn rule_count(&self) -> usize {
        self.always.len() + self.sessions.values().map(|s| s.rules.len()).sum::<usize>()
    }

    /// Every rule, oldest grant first; rules granted in the same
    /// millisecond in a fixed order (`always` ones first, then by session).
    pub fn rules(&self) -> Vec<&Rule> {
        let sessions = self.sessions.values().flat_map(|s| s.rules.iter());
        let mut rules: Vec<&Rule> = self.always.iter().chain(sessions).collect();
        rules.sort_by(|a, b| a.granted_at.total_cmp(&b.granted_at));
        rules
    }

    /// The rule with this id.
    pub fn rule(&self, rule_id: &str) -> Option<&Rule> {
        let rules = match self.rule_homes.get(rule_id)? {
            Some(session_id) => self.session_rules(session_id),
            None => &self.always,
        };
        rules.iter().find(|rule| rule.rule_id == rule_id)
    }

    /// The `session` rules of one session.
    pub fn session_rules(&self, session_id: &str) -> &[Rule] {
        self.sessions
            .get(session_id)
            .map_or(&[], |session| session.rules.as_slice())
    }

    /// Pending prompts per kind, and how many sessions there are.
    pub fn totals(&self) -> (KindMap<usize>, usize) {
        let mut pending = KindMap::default();
        for session in self.sessions.values() {
            for (kind, queue) in session.queues.iter() {
                pending[kind] += queue.len();
            }
        }
        (pending, self.sessions.len())
    }
}

impl Record {
    /// What keeping it costs: its id, its answer, what was asked, and a
    /// fixed overhead.
    pub(super) fn cost(&self, id: &str) -> usize {
        outcome_cost(id, &self.outcome, &self.asked) + kept_action_cost(self.action.as_deref())
    }
}

/// The action a kept outcome keeps: an approval's, when it is not a
/// command (a command's is its `asked` text).
fn kept_action(action: &Action) -> Option<Box<Action>> {
    let action = Some(action).filter(|action| action.command().is_none())?;
    Some(Box::new(action.clone()))
}

/// What a kept non-command action costs: held, and written whole as JSON.
fn kept_action_cost(action: Option<&Action>) -> usize {
    action.map_or(0, |action| {
        action.text_bytes() + action.to_json().to_string().len()
    })
}

fn outcome_cost(id: &str, outcome: &Outcome, asked: &str) -> usize {
    let answer = match outcome {
        Outcome::Answered(answer) => answer.text_bytes(),
        Outcome::Expired | Outcome::Cancelled => 0,
    };
    id.len() + answer + asked.len() + json_len(asked) + OUTCOME_OVERHEAD
}

fn counts_of(session: &Session) -> KindMap<usize> {
    let mut counts = KindMap::default();
    for (kind, queue) in session.queues.iter() {
        counts[kind] = queue.len();
    }
    counts
}

fn resolved(prompt: &Prompt, outcome: Outcome, at: f64) -> Change {
    Change::Resolved {
        session_id: prompt.session_id.clone(),
        kind: prompt.kind(),
        id: prompt.id.clone(),
        outcome,
        at,
        grant: None,
        by: None,
    }
}
