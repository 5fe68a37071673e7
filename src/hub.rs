//! The hub: every queue, outcome, approval rule and subscriber, behind one lock.
//!
//! Invariants:
//! - Every change is one `Change` value, stamped with the next global version
//!   and applied by `State::commit`, the only place state changes; the same
//!   value could be appended to a journal and replayed.
//! - A change and the notification of it happen in one critical section, so
//!   subscribers see changes in the order they happened (queue rule 1).
//! - Each public method takes the lock exactly once and never does I/O under
//!   it; publishing is a non-blocking `try_send`.

use crate::error::{Error, Result};
use crate::ids;
use crate::prompt::{Kind, Outcome, Payload, Prompt, unix_now};
use crate::queue::{Identified, Queue};
use crate::subscriber::{Inbox, Interest, Registry, Update, Watch};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

impl Identified for Prompt {
    fn id(&self) -> &str {
        &self.id
    }
}

/// At most this many outcomes are kept, however short their retention.
const MAX_OUTCOMES: usize = 100_000;

/// The limits the hub enforces (SPEC §7), and how long it keeps outcomes.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_pending: usize,
    /// Pending prompts across every session and kind.
    pub max_prompts: usize,
    pub max_sessions: usize,
    pub subscriber_buffer: usize,
    pub result_ttl: Duration,
}

/// One change to the state: what a journal would hold.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Submitted(Prompt),
    Resolved {
        session_id: String,
        kind: Kind,
        id: String,
        outcome: Outcome,
    },
    /// An approval answered by a rule without ever being queued.
    AutoAnswered {
        session_id: String,
        id: String,
        choice: String,
    },
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
        choice: String,
    },
}

/// What an approval respond did (SPEC §3.2).
#[derive(Debug, PartialEq)]
pub enum ApprovalResponse {
    Answered,
    /// The id was stale and nothing is pending: the page may clear its card.
    StaleCleared,
    /// The id was stale while another approval is pending: nothing resolved.
    StaleWhilePending,
}

/// What a waiting agent learns.
#[derive(Debug, PartialEq)]
pub enum WaitResult {
    Pending,
    Done(Outcome),
    Unknown,
}

/// A new subscription: the inbox, and the frames to send before anything else.
pub struct Subscription {
    pub inbox: Inbox,
    pub initial: Vec<Update>,
    /// The global version the initial frames bring the subscriber up to.
    pub version: u64,
    /// False when `initial` is only what changed since the asked version.
    pub full: bool,
}

/// Takes a subscriber out of the registry when dropped, so a parked request
/// whose thread never runs does not leave it behind.
pub struct Membership {
    pub hub: Arc<Hub>,
    pub id: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.id);
    }
}

#[derive(Debug, PartialEq)]
pub struct SessionSummary {
    pub session_id: String,
    pub clarify_count: usize,
    pub approval_count: usize,
    pub version: u64,
}

#[derive(Debug, Default, PartialEq)]
pub struct Counts {
    pub subscribers: usize,
    pub sessions: usize,
    pub pending_clarify: usize,
    pub pending_approval: usize,
    pub resyncs: u64,
    pub version: u64,
}

#[derive(Default)]
struct Session {
    clarify: Queue<Prompt>,
    approval: Queue<Prompt>,
    /// Pattern keys approved with `session` for the rest of this session.
    approved_keys: BTreeSet<String>,
    /// Unix seconds of the last change to either queue.
    changed_at: f64,
    /// Each queue's head as JSON, made once per change and shared by every
    /// frame, poll and snapshot that shows it.
    heads: [Option<Arc<str>>; 2],
}

impl Session {
    fn refresh_head(&mut self, kind: Kind) {
        let head = self
            .queue(kind)
            .head()
            .map(|prompt| Arc::from(prompt.to_json().to_string()));
        self.heads[kind.index()] = head;
    }

    fn queue(&self, kind: Kind) -> &Queue<Prompt> {
        match kind {
            Kind::Clarify => &self.clarify,
            Kind::Approval => &self.approval,
        }
    }

    fn queue_mut(&mut self, kind: Kind) -> &mut Queue<Prompt> {
        match kind {
            Kind::Clarify => &mut self.clarify,
            Kind::Approval => &mut self.approval,
        }
    }

    fn is_idle(&self) -> bool {
        self.clarify.is_empty() && self.approval.is_empty() && self.approved_keys.is_empty()
    }
}

struct Record {
    kind: Kind,
    session_id: String,
    outcome: Outcome,
}

#[derive(Default)]
struct State {
    version: u64,
    sessions: BTreeMap<String, Session>,
    outcomes: HashMap<String, Record>,
    /// Every pending prompt's id, so new ids are unique across sessions.
    pending_ids: HashSet<String>,
    /// Outcome ids in the order they were recorded, for retention.
    outcome_order: VecDeque<(Instant, String)>,
    /// Pattern keys approved with `always`.
    allowlist: BTreeSet<String>,
    registry: Registry,
    /// The highest version of a session forgotten by pruning: resuming from
    /// an older version cannot be exact.
    pruned_version: u64,
}

pub struct Hub {
    state: Mutex<State>,
    /// Signalled whenever an outcome is recorded.
    outcome_recorded: Condvar,
    /// Signalled when an earlier expiry appears, or at shutdown.
    expiry_changed: Condvar,
    /// Set at shutdown: waits return at once and nothing new subscribes.
    closing: AtomicBool,
    limits: Limits,
}

impl Hub {
    pub fn new(limits: Limits) -> Hub {
        Hub {
            state: Mutex::new(State::default()),
            outcome_recorded: Condvar::new(),
            expiry_changed: Condvar::new(),
            closing: AtomicBool::new(false),
            limits,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere never leaves the state half-changed (commit cannot
        // panic midway), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn submit(
        &self,
        session_id: &str,
        timeout_seconds: i64,
        payload: Payload,
    ) -> Result<Submitted> {
        let kind = payload.kind();
        let mut state = self.lock();
        if let Some(queued) = state.duplicate_of_last(session_id, &payload) {
            return Ok(queued);
        }
        if let Some(choice) = state.approved_by_rule(session_id, payload.pattern_keys()) {
            let id = state.fresh_id(kind);
            let (session_id, id_out) = (session_id.to_string(), id.clone());
            state.commit(Change::AutoAnswered {
                session_id,
                id,
                choice: choice.clone(),
            });
            drop(state);
            self.outcome_recorded.notify_all();
            return Ok(Submitted::AutoAnswered { id: id_out, choice });
        }
        state.check_room(session_id, kind, &self.limits)?;
        let id = state.fresh_id(kind);
        let prompt = Prompt::new(id.clone(), session_id.to_string(), timeout_seconds, payload);
        let expires = prompt.expires_at > 0.0;
        state.commit(Change::Submitted(prompt));
        let pending_count = state.queue_len(session_id, kind);
        drop(state);
        if expires {
            self.expiry_changed.notify_all();
        }
        Ok(Submitted::Queued {
            id,
            pending_count,
            deduped: false,
        })
    }

    /// Answers the clarify with this id, or the head when no id is given.
    pub fn respond_clarify(
        &self,
        session_id: &str,
        id: Option<&str>,
        response: String,
    ) -> Result<()> {
        let mut state = self.lock();
        let Some(target) = state.target(session_id, Kind::Clarify, id) else {
            return Err(Error::Stale(match id {
                Some(_) => "clarify is no longer pending".into(),
                None => "no clarify is pending".into(),
            }));
        };
        state.resolve(
            session_id,
            Kind::Clarify,
            target,
            Outcome::Answered(response),
        );
        drop(state);
        self.outcome_recorded.notify_all();
        Ok(())
    }

    pub fn respond_approval(
        &self,
        session_id: &str,
        id: Option<&str>,
        choice: &str,
    ) -> ApprovalResponse {
        let mut state = self.lock();
        let Some(target) = state.target(session_id, Kind::Approval, id) else {
            return match state.queue_len(session_id, Kind::Approval) {
                0 => ApprovalResponse::StaleCleared,
                _ => ApprovalResponse::StaleWhilePending,
            };
        };
        state.resolve(
            session_id,
            Kind::Approval,
            target,
            Outcome::Answered(choice.to_string()),
        );
        drop(state);
        self.outcome_recorded.notify_all();
        ApprovalResponse::Answered
    }

    /// Cancels one pending prompt, or every pending prompt of the session's
    /// kind when no id is given. Returns the ids cancelled.
    pub fn cancel(&self, session_id: &str, kind: Kind, id: Option<&str>) -> Result<Vec<String>> {
        let mut state = self.lock();
        let ids: Vec<String> = match id {
            Some(id) => match state.target(session_id, kind, Some(id)) {
                Some(id) => vec![id],
                None => {
                    return Err(Error::Stale(format!(
                        "{} is no longer pending",
                        kind.as_str()
                    )));
                }
            },
            None => state.pending_ids(session_id, kind),
        };
        for id in &ids {
            state.resolve(session_id, kind, id.clone(), Outcome::Cancelled);
        }
        drop(state);
        self.outcome_recorded.notify_all();
        Ok(ids)
    }

    /// Expires every prompt whose time has come; returns how long until the
    /// next one is due (at most `max_wait`).
    pub fn expire_due(&self, max_wait: Duration) -> Duration {
        let now = Instant::now();
        let mut state = self.lock();
        let due = state.due_prompts(now);
        for (session_id, kind, id) in &due {
            state.resolve(session_id, *kind, id.clone(), Outcome::Expired);
        }
        state.prune(&self.limits);
        let next = state
            .next_expiry()
            .map(|at| at.saturating_duration_since(now));
        drop(state);
        if !due.is_empty() {
            self.outcome_recorded.notify_all();
        }
        next.map_or(max_wait, |next| next.min(max_wait))
    }

    /// Sleeps until the next expiry may be due, an earlier one appears, or
    /// the hub closes.
    pub fn wait_for_expiry(&self, timeout: Duration) {
        let state = self.lock();
        if !self.closing.load(Ordering::Acquire) {
            let _unused = self.expiry_changed.wait_timeout(state, timeout);
        }
    }

    /// The head and count of one queue, as polls and frames show it.
    pub fn pending(&self, session_id: &str, kind: Kind) -> Update {
        self.lock().update_of(session_id, kind)
    }

    /// Registers a subscriber and reads its initial frames in one critical
    /// section, so no change can fall between them (queue rule 5). With
    /// `since`, only the queues that changed after that version are sent,
    /// when the hub can honour it.
    pub fn subscribe(&self, interest: Interest, since: Option<u64>) -> Subscription {
        let mut state = self.lock();
        let since = since.filter(|&v| v <= state.version && v >= state.pruned_version);
        let initial = state.states(&interest, since);
        let inbox = self.register(&mut state, interest);
        Subscription {
            inbox,
            initial,
            version: state.version,
            full: since.is_none(),
        }
    }

    /// Like `subscribe`, but only when the queue has not moved from `since`:
    /// `Err` carries its current state when it has.
    pub fn subscribe_unless_changed(
        &self,
        session_id: &str,
        kind: Kind,
        since: u64,
    ) -> std::result::Result<Inbox, Update> {
        let mut state = self.lock();
        let update = state.update_of(session_id, kind);
        if update.version != since {
            return Err(update);
        }
        let interest = Interest {
            watch: Watch::Sessions(vec![session_id.to_string()]),
            kind: Some(kind),
        };
        Ok(self.register(&mut state, interest))
    }

    /// Adds a subscriber; once the hub is closing, its channel is closed at
    /// once, so a stream opened during shutdown ends instead of lingering.
    fn register(&self, state: &mut State, interest: Interest) -> Inbox {
        let inbox = state.registry.add(interest, self.limits.subscriber_buffer);
        if self.closing.load(Ordering::Acquire) {
            state.registry.remove(inbox.id);
        }
        inbox
    }

    pub fn unsubscribe(&self, id: u64) {
        self.lock().registry.remove(id);
    }

    /// For a subscriber whose channel overflowed and has since drained: clears
    /// its resync mark and returns every watched queue that changed after
    /// `since`, the last version it delivered.
    pub fn resync(&self, inbox: &Inbox, since: u64) -> Vec<Update> {
        let state = self.lock();
        inbox.resync.store(false, Ordering::Release);
        let Some(interest) = state.registry.interest(inbox.id).cloned() else {
            return Vec::new();
        };
        let since = Some(since).filter(|&v| v >= state.pruned_version);
        state.states(&interest, since)
    }

    /// Waits until the prompt has an outcome or the deadline passes.
    pub fn wait_outcome(
        &self,
        id: &str,
        kind: Kind,
        session_id: &str,
        deadline: Instant,
    ) -> WaitResult {
        let mut state = self.lock();
        loop {
            match state.lookup(id, kind, session_id) {
                WaitResult::Pending => {}
                done => return done,
            }
            let now = Instant::now();
            if now >= deadline || self.closing.load(Ordering::Acquire) {
                return WaitResult::Pending;
            }
            state = match self.outcome_recorded.wait_timeout(state, deadline - now) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Sessions with something pending or a change within the result TTL.
    pub fn sessions(&self) -> Vec<SessionSummary> {
        let state = self.lock();
        let recent = unix_now() - self.limits.result_ttl.as_secs_f64();
        state
            .sessions
            .iter()
            .filter(|(_, s)| {
                !s.clarify.is_empty() || !s.approval.is_empty() || s.changed_at >= recent
            })
            .map(|(session_id, s)| SessionSummary {
                session_id: session_id.clone(),
                clarify_count: s.clarify.len(),
                approval_count: s.approval.len(),
                version: s.clarify.version().max(s.approval.version()),
            })
            .collect()
    }

    pub fn counts(&self) -> Counts {
        let state = self.lock();
        let pending = |kind| state.sessions.values().map(|s| s.queue(kind).len()).sum();
        Counts {
            subscribers: state.registry.len(),
            sessions: state.sessions.len(),
            pending_clarify: pending(Kind::Clarify),
            pending_approval: pending(Kind::Approval),
            resyncs: state.registry.resyncs(),
            version: state.version,
        }
    }

    /// Shutdown: ends every subscription (each stream sees its channel close)
    /// and wakes every waiting agent and the expiry thread.
    pub fn close(&self) {
        let mut state = self.lock();
        self.closing.store(true, Ordering::Release);
        state.registry.clear();
        drop(state);
        self.outcome_recorded.notify_all();
        self.expiry_changed.notify_all();
    }
}

impl State {
    /// The one place state changes: stamps the change with the next version,
    /// applies it, and notifies subscribers of the queue it touched.
    fn commit(&mut self, change: Change) {
        self.version += 1;
        let version = self.version;
        if let Some((session_id, kind)) = self.apply(version, change) {
            let update = self.update_of(&session_id, kind);
            self.registry.publish(update);
        }
    }

    fn apply(&mut self, version: u64, change: Change) -> Option<(String, Kind)> {
        let now = unix_now();
        match change {
            Change::Submitted(prompt) => {
                let (session_id, kind) = (prompt.session_id.clone(), prompt.kind());
                log::info!(
                    "{} {} submitted in session {}",
                    kind.as_str(),
                    prompt.id,
                    session_id
                );
                let session = self.sessions.entry(session_id.clone()).or_default();
                session.changed_at = now;
                self.pending_ids.insert(prompt.id.clone());
                session.queue_mut(kind).push(prompt, version);
                session.refresh_head(kind);
                Some((session_id, kind))
            }
            Change::Resolved {
                session_id,
                kind,
                id,
                outcome,
            } => {
                let session = self.sessions.get_mut(&session_id)?;
                let prompt = session.queue_mut(kind).remove(&id, version)?;
                session.refresh_head(kind);
                session.changed_at = now;
                self.pending_ids.remove(&id);
                if let Outcome::Answered(choice) = &outcome {
                    let keys = prompt.payload.pattern_keys().iter().cloned();
                    match choice.as_str() {
                        "session" if kind == Kind::Approval => session.approved_keys.extend(keys),
                        "always" if kind == Kind::Approval => self.allowlist.extend(keys),
                        _ => {}
                    }
                }
                log::info!(
                    "{} {id} {} in session {session_id}",
                    kind.as_str(),
                    outcome.status()
                );
                self.record(id, kind, session_id.clone(), outcome);
                Some((session_id, kind))
            }
            Change::AutoAnswered {
                session_id,
                id,
                choice,
            } => {
                log::info!("approval {id} answered by the {choice} rule in session {session_id}");
                self.record(id, Kind::Approval, session_id, Outcome::Answered(choice));
                None
            }
        }
    }

    fn record(&mut self, id: String, kind: Kind, session_id: String, outcome: Outcome) {
        // The oldest outcomes go first when the table is full.
        while self.outcomes.len() >= MAX_OUTCOMES {
            let Some((_, oldest)) = self.outcome_order.pop_front() else {
                break;
            };
            self.outcomes.remove(&oldest);
        }
        self.outcome_order.push_back((Instant::now(), id.clone()));
        self.outcomes.insert(
            id,
            Record {
                kind,
                session_id,
                outcome,
            },
        );
    }

    fn resolve(&mut self, session_id: &str, kind: Kind, id: String, outcome: Outcome) {
        let session_id = session_id.to_string();
        self.commit(Change::Resolved {
            session_id,
            kind,
            id,
            outcome,
        });
    }

    fn queue(&self, session_id: &str, kind: Kind) -> Option<&Queue<Prompt>> {
        self.sessions
            .get(session_id)
            .map(|session| session.queue(kind))
    }

    fn queue_len(&self, session_id: &str, kind: Kind) -> usize {
        self.queue(session_id, kind).map_or(0, Queue::len)
    }

    fn pending_ids(&self, session_id: &str, kind: Kind) -> Vec<String> {
        let queue = self.queue(session_id, kind);
        queue
            .into_iter()
            .flat_map(|q| q.iter().map(|p| p.id.clone()))
            .collect()
    }

    /// The pending id a respond or cancel names: that id if it is pending, or
    /// the head when no id is given.
    fn target(&self, session_id: &str, kind: Kind, id: Option<&str>) -> Option<String> {
        let queue = self.queue(session_id, kind)?;
        let prompt = match id {
            Some(id) => queue.get(id),
            None => queue.head(),
        };
        prompt.map(|prompt| prompt.id.clone())
    }

    fn update_of(&self, session_id: &str, kind: Kind) -> Update {
        let session = self.sessions.get(session_id);
        let queue = session.map(|session| session.queue(kind));
        Update {
            session_id: session_id.to_string(),
            kind,
            pending: session.and_then(|session| session.heads[kind.index()].clone()),
            pending_count: queue.map_or(0, Queue::len),
            version: queue.map_or(0, Queue::version),
        }
    }

    /// The states a subscriber with this interest is sent: with `since`, the
    /// watched queues changed after it; without, every named queue (empty
    /// ones too) or, when watching all, every non-empty one.
    fn states(&self, interest: &Interest, since: Option<u64>) -> Vec<Update> {
        let kinds = Kind::ALL
            .into_iter()
            .filter(|&kind| interest.kind.is_none_or(|k| k == kind));
        let kinds: Vec<Kind> = kinds.collect();
        let sessions: Vec<&str> = match &interest.watch {
            Watch::All => self.sessions.keys().map(String::as_str).collect(),
            Watch::Sessions(names) => names.iter().map(String::as_str).collect(),
        };
        let mut updates = Vec::new();
        for session_id in sessions {
            for &kind in &kinds {
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

    /// Clarify de-duplication (queue rule 9): the same question and choices
    /// as the newest entry return that entry.
    fn duplicate_of_last(&self, session_id: &str, payload: &Payload) -> Option<Submitted> {
        let Payload::Clarify { .. } = payload else {
            return None;
        };
        let queue = self.queue(session_id, Kind::Clarify)?;
        let last = queue.last().filter(|last| &last.payload == payload)?;
        Some(Submitted::Queued {
            id: last.id.clone(),
            pending_count: queue.len(),
            deduped: true,
        })
    }

    /// `session` or `always` when every one of these (non-empty) pattern keys
    /// is approved for the session or on the allowlist.
    fn approved_by_rule(&self, session_id: &str, keys: &[String]) -> Option<String> {
        if keys.is_empty() {
            return None;
        }
        if keys.iter().all(|key| self.allowlist.contains(key)) {
            return Some("always".into());
        }
        let session_keys = &self.sessions.get(session_id)?.approved_keys;
        let approved = keys
            .iter()
            .all(|key| self.allowlist.contains(key) || session_keys.contains(key));
        approved.then(|| "session".into())
    }

    fn check_room(&mut self, session_id: &str, kind: Kind, limits: &Limits) -> Result<()> {
        if self.queue_len(session_id, kind) >= limits.max_pending {
            return Err(Error::TooMany(format!(
                "too many pending {} prompts in this session (limit {})",
                kind.as_str(),
                limits.max_pending
            )));
        }
        if self.pending_ids.len() >= limits.max_prompts {
            return Err(Error::TooMany(format!(
                "too many pending prompts (limit {})",
                limits.max_prompts
            )));
        }
        if !self.sessions.contains_key(session_id) && self.sessions.len() >= limits.max_sessions {
            self.evict_idle_session().ok_or_else(|| {
                Error::TooMany(format!("too many sessions (limit {})", limits.max_sessions))
            })?;
        }
        Ok(())
    }

    /// Makes room for a new session by forgetting the idle one (nothing
    /// pending, watched by no one by name) changed longest ago, with its
    /// session approvals. `None` when every session is busy.
    fn evict_idle_session(&mut self) -> Option<()> {
        let registry = &self.registry;
        let idle = self.sessions.iter().filter(|(session_id, session)| {
            session.clarify.is_empty()
                && session.approval.is_empty()
                && !registry.watches_by_name(session_id)
        });
        let oldest = idle
            .min_by(|a, b| a.1.changed_at.total_cmp(&b.1.changed_at))?
            .0
            .clone();
        let session = self.sessions.remove(&oldest)?;
        let version = session.clarify.version().max(session.approval.version());
        self.pruned_version = self.pruned_version.max(version);
        Some(())
    }

    fn fresh_id(&self, kind: Kind) -> String {
        loop {
            let id = ids::random_hex(kind.id_len());
            if !self.pending_ids.contains(&id) && !self.outcomes.contains_key(&id) {
                return id;
            }
        }
    }

    fn due_prompts(&self, now: Instant) -> Vec<(String, Kind, String)> {
        let mut due = Vec::new();
        for (session_id, session) in &self.sessions {
            for kind in Kind::ALL {
                let expired = session.queue(kind).iter().filter(|p| p.is_expired(now));
                due.extend(expired.map(|p| (session_id.clone(), kind, p.id.clone())));
            }
        }
        due
    }

    fn next_expiry(&self) -> Option<Instant> {
        let all = self
            .sessions
            .values()
            .flat_map(|s| s.clarify.iter().chain(s.approval.iter()));
        all.filter_map(|prompt| prompt.deadline).min()
    }

    fn lookup(&self, id: &str, kind: Kind, session_id: &str) -> WaitResult {
        if let Some(record) = self.outcomes.get(id) {
            if record.kind == kind && record.session_id == session_id {
                return WaitResult::Done(record.outcome.clone());
            }
            return WaitResult::Unknown;
        }
        match self.queue(session_id, kind).and_then(|q| q.get(id)) {
            Some(_) => WaitResult::Pending,
            None => WaitResult::Unknown,
        }
    }

    /// Forgets outcomes past retention, and idle sessions nobody watches by
    /// name whose last change is past retention.
    fn prune(&mut self, limits: &Limits) {
        while let Some((at, _)) = self.outcome_order.front() {
            if at.elapsed() < limits.result_ttl {
                break;
            }
            let (_, id) = self.outcome_order.pop_front().expect("front exists");
            self.outcomes.remove(&id);
        }
        // A subscriber awaiting resync is sent what changed after its last
        // version; a session forgotten meanwhile could not be reported.
        if self.registry.any_awaiting_resync() {
            return;
        }
        let stale_before = unix_now() - limits.result_ttl.as_secs_f64();
        let registry = &self.registry;
        let mut pruned_version = self.pruned_version;
        self.sessions.retain(|session_id, session| {
            let keep = !session.is_idle()
                || session.changed_at >= stale_before
                || registry.watches_by_name(session_id);
            if !keep {
                pruned_version =
                    pruned_version.max(session.clarify.version().max(session.approval.version()));
            }
            keep
        });
        self.pruned_version = pruned_version;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Hub {
        let result_ttl = Duration::from_secs(600);
        Hub::new(Limits {
            max_pending: 64,
            max_prompts: 100,
            max_sessions: 100,
            subscriber_buffer: 16,
            result_ttl,
        })
    }

    #[test]
    fn nothing_subscribes_once_the_hub_is_closing() {
        let hub = hub();
        let open = hub.subscribe(
            Interest {
                watch: Watch::All,
                kind: None,
            },
            None,
        );
        hub.close();
        assert!(
            open.inbox.receiver.recv().is_err(),
            "closing ends existing subscriptions"
        );
        let late = hub.subscribe(
            Interest {
                watch: Watch::All,
                kind: None,
            },
            None,
        );
        assert!(
            late.inbox.receiver.recv().is_err(),
            "and any that come after"
        );
        assert!(
            hub.subscribe_unless_changed("s", Kind::Clarify, 0)
                .unwrap()
                .receiver
                .recv()
                .is_err()
        );
        assert_eq!(hub.counts().subscribers, 0);
    }
}
