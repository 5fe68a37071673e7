//! The hub: the state machine and the subscriber registry behind one lock.
//!
//! Invariants:
//! - Every public method takes the lock once, asks `State` what to change,
//!   applies each `Change`, and publishes the new state of the queue it
//!   touched in the same critical section, so subscribers see changes in
//!   the order they happened (queue rule 1).
//! - No I/O under the lock; publishing is a non-blocking `try_send`.
//!   What a stream's deliverer does with it (writing to a socket without
//!   blocking) runs after the lock is released, on the fan-out thread
//!   (`Hub::fan_out`), in the order the changes were published.
//! - The hub owns the clock and the id generator; `State` gets the time and
//!   fresh ids as arguments.
//! - With a journal, an operation's changes are queued to it (in version
//!   order, without I/O) before they are applied, and the operation answers
//!   only once the journal has synced them: acknowledged means durable. A
//!   change the journal has no room for is refused before it is applied.
//!   Waiting agents learn an outcome only once it is durable.
//! - With Redis (`replica.rs`) the order is reversed: an operation's
//!   changes are appended to the shared log first (compare-and-append,
//!   without the lock, in a batch with the instance's other operations in
//!   flight, `batch.rs`) and applied and published only once Redis took
//!   them.
//! - Every decision gets its audit line (`core/audit.rs`), made under the
//!   lock from the change and the state it applies to, and logged (target
//!   `audit`) and queued to the audit file after the lock is released, once
//!   the change is durable.
//! - A new prompt, and a resolved one (answered here or by another
//!   instance, expired, cancelled), is handed to the observer (the
//!   notifier) once it is durable and the lock is released.

mod batch;
pub mod credentials;
pub mod durable;
mod follower;
pub mod ids;
pub mod replica;
mod store;
pub mod subscriber;

use crate::core::audit;
use crate::core::change::Change;
use crate::core::credentials::CredentialChange;
use crate::core::kind::{Kind, KindMap};
use crate::core::prompt::{Answer, Outcome, Payload, Prompt};
use crate::core::receipt::{Decision, Receipt, Signer};
use crate::core::rules::{Rule, Scope};
use crate::core::state::{
    self, AgentSummary, Limits, Lookup, Respond, SessionSummary, State, Submitted,
};
use crate::core::view::{Interest, Update, Watch};
use crate::error::Result;
use crate::store::audit_log::AuditLog;
use crate::store::journal::{Journal, Recovered};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use store::Store;
use subscriber::{Deliveries, Inbox, Registry};

/// What a respond did (docs/PROTOCOL.md §3.2).
#[derive(Debug, PartialEq)]
pub enum Responded {
    Answered,
    /// The id named is not pending (or nothing is); this many still are.
    Stale {
        still_pending: usize,
    },
}

/// What a waiting agent learns.
#[derive(Debug, PartialEq)]
pub enum WaitResult {
    Pending,
    Done(Outcome),
    Unknown,
}

/// A registered subscriber: its inbox, and the frames to send before
/// anything else. Dropping it takes the subscriber out of the registry, so
/// whatever ends a stream or a long-poll (or if its thread never starts),
/// nothing is left behind.
pub struct Subscription {
    hub: Arc<Hub>,
    pub inbox: Inbox,
    pub initial: Vec<Update>,
    /// The global version the initial frames bring the subscriber up to.
    pub version: u64,
    /// False when `initial` is only what changed since the asked version.
    pub full: bool,
}

impl Subscription {
    /// For a subscriber whose channel overflowed and has since drained:
    /// every watched queue that changed after the last update it got before
    /// it fell behind. `None` when that point can no longer be honoured
    /// (with Redis: another instance forgot a session since): the stream
    /// then ends, and its client's resume from its last id gets the full
    /// state (docs/PROTOCOL.md §6), which says what emptied.
    pub fn resync(&self) -> Option<Vec<Update>> {
        self.hub.resync(&self.inbox)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.lock().registry.remove(self.inbox.id);
    }
}

/// Plain numbers for `/metrics`.
#[derive(Debug, Default, PartialEq)]
pub struct Counts {
    pub subscribers: usize,
    pub sessions: usize,
    pub pending: KindMap<usize>,
    pub resyncs: u64,
    pub version: u64,
    pub wait_wakeups: u64,
}

/// Unix seconds that never step back while the process runs: the wall
/// clock read once at start, advanced by a monotonic one.
struct Clock {
    unix_at_start: f64,
    start: Instant,
}

/// A test knob, not a flag: the Unix seconds the clock reads at start, so
/// the upgrade tests read a data directory written long ago as if just
/// after it was written (tests/it/upgrade.rs).
const CLOCK_VARIABLE: &str = "ASKGATE_TEST_CLOCK";

impl Clock {
    fn new() -> Clock {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH);
        let given = std::env::var(CLOCK_VARIABLE).ok();
        let given = given.and_then(|seconds| seconds.parse::<f64>().ok());
        Clock {
            unix_at_start: given.unwrap_or(unix.map_or(0.0, |elapsed| elapsed.as_secs_f64())),
            start: Instant::now(),
        }
    }

    fn now(&self) -> f64 {
        self.unix_at_start + self.start.elapsed().as_secs_f64()
    }
}

struct Inner {
    state: State,
    registry: Registry,
    /// Agents waiting for an outcome, by prompt id: an outcome wakes only
    /// the waiters of its prompt.
    waiting: HashMap<String, Arc<Condvar>>,
    /// With Redis, the records in flight and the state ahead of `state`
    /// (`batch.rs`); empty otherwise.
    batch: batch::Batch,
    /// Page sign-ins that ended (signed out, expired) since start, here or
    /// on another instance: a stream of a signed-out page looks again.
    sign_ins_ended: u64,
}

/// What a commit did: the prompts that got an outcome, the earliest new
/// deadline, the version to wait for before answering, and the
/// audit lines to write once it is durable.
#[derive(Default)]
struct Committed {
    recorded: Vec<String>,
    deadline: Option<f64>,
    version: u64,
    audit: Vec<String>,
    /// The decisions made, each with the index of its line in `audit`,
    /// signed once the lock is released (`Hub::sign_audit`).
    decisions: Vec<(usize, Decision)>,
    /// New prompts for the observer (collected only when there is one).
    submitted: Vec<Prompt>,
    /// Prompts that left their queue, for the observer.
    resolved: Vec<Resolution>,
    /// The frames owed to streams, for the fan-out thread once the lock is
    /// released.
    deliveries: Deliveries,
}

impl Committed {
    fn deadline_at(&mut self, at: f64) {
        self.deadline = Some(self.deadline.map_or(at, |earliest| earliest.min(at)));
    }
}

/// A prompt that left its queue: answered, expired or cancelled.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolution {
    pub session_id: String,
    pub kind: Kind,
    pub id: String,
    /// `answered`, `expired` or `cancelled`.
    pub status: &'static str,
}

/// What the observer is told.
#[derive(Debug)]
pub enum Observed<'a> {
    /// A new prompt (not one a rule answered, nor a duplicate).
    Submitted(&'a Prompt),
    /// A pending prompt left its queue, on this instance or another.
    Resolved(&'a Resolution),
}

/// Told of every new and every resolved prompt.
pub type Observer = Box<dyn Fn(Observed<'_>) + Send + Sync>;

/// Who asked for an operation and when: the audit log's `by` and `at`.
struct Op<'a> {
    by: &'a str,
    now: f64,
}

/// The agent credential an agent's operation comes from: `agent`, its
/// name, owns what it submits (docs/PROTOCOL.md §7); `by` is what the
/// audit log calls it.
#[derive(Clone, Copy, Debug)]
pub struct Asker<'a> {
    pub agent: &'a str,
    pub by: &'a str,
}

/// Who the server itself is in the audit log (expiry, restart).
const SERVER: &str = "server";

/// The longest the expiry thread sleeps between looks (`expire_due` asks
/// for no more); only a deadline sooner than its next look wakes it.
pub const EXPIRY_CHECK: Duration = Duration::from_secs(1);

pub struct Hub {
    inner: Mutex<Inner>,
    /// Signalled when an earlier expiry appears, or at shutdown.
    expiry_changed: Condvar,
    /// Set at shutdown: waits return at once and nothing new subscribes.
    closing: AtomicBool,
    /// Times a parked wait was woken (not its slice ending), for
    /// `/metrics`: an outcome wakes only the waits of its prompt.
    wakeups: AtomicU64,
    limits: Limits,
    subscriber_buffer: usize,
    clock: Clock,
    /// Where changes are kept: memory, a journal or Redis (`store.rs`).
    store: Store,
    audit_log: Option<AuditLog>,
    observer: OnceLock<Observer>,
    /// Signs every decision's receipt, once set (`sign_receipts`).
    signer: OnceLock<Arc<Signer>>,
    fanout: Fanout,
}

/// Starts a fan-out thread that runs `Hub::fan_out` (the server names and
/// counts its threads); an error when none could be started.
pub type StartFanOut = Box<dyn Fn() -> std::io::Result<()> + Send + Sync>;

/// A first change after no fan-out thread ran with fewer deliveries than
/// this is written by the committing thread, before the thread starts: a
/// few hundred non-blocking writes (about 5 µs each) against a thread's
/// start; the agent's reply waits for them (BENCHMARKS.md, "fan-out at 100").
const RUN_HERE_BELOW: usize = 256;

/// The deliveries the fan-out thread has yet to run, oldest first.
#[derive(Default)]
struct Fanout {
    queue: Mutex<FanoutQueue>,
    ready: Condvar,
    /// Starts a fan-out thread with the first change after it ended
    /// (`Hub::fan_out_on`); without, deliveries run on the committing thread.
    start: OnceLock<StartFanOut>,
}

#[derive(Default)]
struct FanoutQueue {
    waiting: Vec<Deliveries>,
    /// A fan-out thread runs (else deliveries run on the committing thread).
    running: bool,
    /// It sleeps on `ready` and must be signalled.
    asleep: bool,
}

impl Hub {
    /// A hub that keeps its state in memory only.
    pub fn new(limits: Limits, subscriber_buffer: usize) -> Hub {
        Hub::with_state(
            limits,
            subscriber_buffer,
            State::default(),
            Store::Memory,
            None,
        )
    }

    fn with_state(
        limits: Limits,
        subscriber_buffer: usize,
        state: State,
        store: Store,
        audit_log: Option<AuditLog>,
    ) -> Hub {
        Hub {
            inner: Mutex::new(Inner {
                state,
                registry: Registry::default(),
                waiting: HashMap::new(),
                batch: batch::Batch::default(),
                sign_ins_ended: 0,
            }),
            expiry_changed: Condvar::new(),
            closing: AtomicBool::new(false),
            wakeups: AtomicU64::new(0),
            limits,
            subscriber_buffer,
            clock: Clock::new(),
            store,
            audit_log,
            observer: OnceLock::new(),
            signer: OnceLock::new(),
            fanout: Fanout::default(),
        }
    }

    /// Sets the one observer of new and resolved prompts (the notifier);
    /// a second is ignored.
    pub fn observe(&self, observer: Observer) {
        let _ = self.observer.set(observer);
    }

    /// A hub on a journal: the state it recovered, versions moved past any
    /// that may have been shown but lost, and what expired while the server
    /// was down, expired now. Audit lines also go to `audit_log`.
    pub fn open(
        limits: Limits,
        subscriber_buffer: usize,
        journal: Journal,
        recovered: &Recovered,
        audit_log: Option<AuditLog>,
    ) -> std::result::Result<Hub, String> {
        let state = durable::restore(recovered)?;
        let (pending, _) = state.totals();
        let store = Store::Journal(journal);
        let hub = Hub::with_state(limits, subscriber_buffer, state, store, audit_log);
        let fresh = recovered.snapshot.is_none() && recovered.records.is_empty();
        if !fresh {
            let restarted = vec![Change::Restarted {
                skip: durable::RESTART_SKIP,
            }];
            hub.commit(hub.op(SERVER), |_| Ok((restarted.clone(), ())))
                .map_err(|e| format!("cannot write the journal: {e}"))?;
        }
        hub.expire_due(Duration::ZERO);
        log::info!(
            "restored {} pending prompts and {} rules in {} ms",
            pending.values().sum::<usize>(),
            hub.lock().state.rule_count(),
            recovered.elapsed.as_millis()
        );
        Ok(hub)
    }

    /// The journal's counters, for `/metrics`.
    pub fn journal_stats(&self) -> Option<crate::store::journal::Stats> {
        self.store.journal_stats()
    }

    /// Sets the key that signs receipts (a second is ignored); without one,
    /// decisions carry none.
    pub fn sign_receipts(&self, signer: Arc<Signer>) {
        let _ = self.signer.set(signer);
    }

    /// The public key that verifies receipts and its id, hex.
    pub fn receipts_public_key(&self) -> Option<(String, String)> {
        let signer = self.signer.get()?;
        Some((signer.public_key(), signer.key_id()))
    }

    /// The signed receipt of a kept outcome (docs/PROTOCOL.md §10): made
    /// from what the state keeps, signed with no lock held.
    pub fn receipt(&self, id: &str) -> Option<Receipt> {
        let signer = self.signer.get()?;
        let decision = self.lock().state.decision(id)?;
        Some(signer.sign(&decision))
    }

    /// Adds its receipt to each decision's audit line, with no lock held.
    fn sign_audit(&self, committed: &mut Committed) {
        let decisions = std::mem::take(&mut committed.decisions);
        let Some(signer) = self.signer.get() else {
            return;
        };
        for (index, decision) in decisions {
            if let Some(line) = committed.audit.get_mut(index) {
                let receipt = signer.sign(&decision);
                *line = audit::with_receipt(std::mem::take(line), &receipt);
            }
        }
    }

    /// Syncs and closes the store and the audit file (at shutdown).
    pub fn close_files(&self) {
        self.store.close();
        if let Some(audit_log) = &self.audit_log {
            audit_log.close();
        }
    }

    /// An operation asked for by `by`, now.
    fn op<'a>(&self, by: &'a str) -> Op<'a> {
        Op {
            by,
            now: self.clock.now(),
        }
    }

    /// One operation, the one pipeline every store goes through: `decide`
    /// reads the state and says what to change; the store keeps the changes
    /// and they are applied and published, in its order (`Store::keep`,
    /// `store.rs`). Then, with no lock held, the same for every store: the
    /// frames go to the fan-out thread, the changes are waited for until
    /// durable, their receipts and audit lines are written, the observer is
    /// told, and whoever waits for them is woken.
    fn commit<R>(
        &self,
        op: Op<'_>,
        decide: impl FnMut(&Inner) -> Result<(Vec<Change>, R)>,
    ) -> Result<R> {
        let (mut committed, decided) = self.store.keep(self, op, decide)?;
        self.hand_to_fanout(std::mem::take(&mut committed.deliveries));
        let durable = self.store.wait_durable(committed.version);
        // Applied either way: a change whose sync failed may still reach
        // the disk, like a reply lost on the way.
        self.sign_audit(&mut committed);
        self.store.audit(&committed.audit);
        self.audit(std::mem::take(&mut committed.audit));
        durable?;
        self.tell_observer(&mut committed);
        self.announce(committed);
        Ok(decided)
    }

    /// Keeps one operation in memory or on a journal: under the lock,
    /// `decide` reads the state and returns the changes to make; they are
    /// queued to the journal (no I/O), applied and published.
    fn keep_local<R>(
        &self,
        op: Op<'_>,
        mut decide: impl FnMut(&Inner) -> Result<(Vec<Change>, R)>,
    ) -> Result<(Committed, R)> {
        let mut inner = self.lock();
        let (mut changes, decided) = decide(&inner)?;
        if let Some(room) = inner.state.room_for_outcomes(&self.limits, &changes) {
            changes.insert(0, room);
        }
        let observing = self.observing();
        let committed = inner.commit_all(changes, &self.store, &op, observing)?;
        Ok((committed, decided))
    }

    /// Whether new prompts go to an observer (the notifier).
    fn observing(&self) -> bool {
        self.observer.get().is_some()
    }

    /// Hands the new and resolved prompts of a durable operation to the
    /// observer, with no lock held.
    fn tell_observer(&self, committed: &mut Committed) {
        let resolved = std::mem::take(&mut committed.resolved);
        if let Some(observer) = self.observer.get() {
            for prompt in std::mem::take(&mut committed.submitted) {
                observer(Observed::Submitted(&prompt));
            }
            for resolution in &resolved {
                observer(Observed::Resolved(resolution));
            }
        }
    }

    /// From now on, deliveries go to a fan-out thread that `start` starts
    /// with the first change after none runs (`Hub::fan_out`).
    pub fn fan_out_on(&self, start: StartFanOut) {
        let _ = self.fanout.start.set(start);
    }

    /// Queues deliveries for the fan-out thread (in publish order: the
    /// lock was just released, and each deliverer takes from its channel,
    /// which holds them in that order anyway), starting one if none runs;
    /// without one (none may be started, or starting failed), runs them
    /// here. The first change after none ran, when small, is written here
    /// before the thread starts: waiting for a thread to start made the
    /// first round after the streams opened the slowest (BENCHMARKS.md,
    /// "fan-out at 100").
    fn hand_to_fanout(&self, deliveries: Deliveries) {
        if deliveries.is_empty() {
            return;
        }
        let mut queue = self.fanout_queue();
        if queue.running {
            queue.waiting.push(deliveries);
            if std::mem::take(&mut queue.asleep) {
                self.fanout.ready.notify_one();
            }
            return;
        }
        let Some(start) = self.fanout.start.get() else {
            drop(queue);
            return deliveries.run();
        };
        // Counted as running from now: what is handed over while it starts
        // queues for it, in order.
        queue.running = true;
        if deliveries.len() < RUN_HERE_BELOW {
            drop(queue);
            deliveries.run();
        } else {
            queue.waiting.push(deliveries);
            drop(queue);
        }
        if start().is_err() {
            let mut queue = self.fanout_queue();
            queue.running = false;
            let waiting = std::mem::take(&mut queue.waiting);
            drop(queue);
            waiting.into_iter().for_each(Deliveries::run);
        }
    }

    fn fanout_queue(&self) -> MutexGuard<'_, FanoutQueue> {
        self.fanout.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fan-out thread: runs the deliveries of every change, one change
    /// after the other, until the hub closes or none came for `idle`. One
    /// thread woken once per change, where waking every stream's thread
    /// cost a context switch per stream (BENCHMARKS.md). Ending when idle
    /// hands what it freed, kept in glibc's cache of this thread (tcache,
    /// which `malloc_trim` cannot reach), back to the allocator, where the
    /// next trim reaches it; the next change starts a fresh one
    /// (`hand_to_fanout`), which deciding to end under the queue's lock
    /// keeps from racing.
    pub fn fan_out(&self, idle: Duration) {
        let mut queue = self.fanout_queue();
        queue.running = true;
        loop {
            if queue.waiting.is_empty() {
                if self.closing.load(Ordering::Acquire) {
                    break;
                }
                queue.asleep = true;
                let (woken, waited) = match self.fanout.ready.wait_timeout(queue, idle) {
                    Ok(woken) => woken,
                    Err(poisoned) => poisoned.into_inner(),
                };
                queue = woken;
                if waited.timed_out() && queue.waiting.is_empty() {
                    queue.asleep = false;
                    break;
                }
                continue;
            }
            let batches = std::mem::take(&mut queue.waiting);
            drop(queue);
            for deliveries in batches {
                deliveries.run();
            }
            queue = self.fanout_queue();
        }
        queue.running = false;
    }

    /// Writes audit lines to the log and queues them to the audit file,
    /// with no lock held.
    fn audit(&self, lines: Vec<String>) {
        for line in &lines {
            log::info!(target: "audit", "{line}");
        }
        if let Some(audit_log) = &self.audit_log {
            audit_log.write(lines);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // `apply` cannot panic midway, so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a prompt of the agent credential `asker`, or answers it at
    /// once by a rule; `asker.by` names the agent in the audit log.
    pub fn submit(
        &self,
        session_id: &str,
        timeout_seconds: i64,
        payload: Payload,
        asker: Asker<'_>,
    ) -> Result<Submitted> {
        self.submit_marked(session_id, timeout_seconds, payload, false, asker)
    }

    /// `submit`, with the agent's `"urgency": "high"` (docs/PROTOCOL.md §5).
    pub fn submit_marked(
        &self,
        session_id: &str,
        timeout_seconds: i64,
        payload: Payload,
        urgent: bool,
        asker: Asker<'_>,
    ) -> Result<Submitted> {
        let Asker { agent, by } = asker;
        let op = self.op(by);
        let now = op.now;
        self.commit(op, |inner| {
            let id = inner.state.fresh_id(payload.kind(), ids::random_hex);
            let payload = payload.clone();
            let prompt = Prompt::new(id, session_id.to_string(), now, timeout_seconds, payload)
                .with_urgent(urgent)
                .with_agent(agent);
            let needed = |s: &str| inner.registry.needs(s);
            inner.state.submit(&self.limits, prompt, needed)
        })
    }

    /// Answers the prompt with this id, or the head when no id is given;
    /// `by` names who answered in the audit log, `answerer` the human by
    /// name in the history and the receipt (when one is known).
    pub fn respond(
        &self,
        session_id: &str,
        id: Option<&str>,
        answer: Answer,
        picked: Option<Scope>,
        by: &str,
        answerer: Option<&str>,
    ) -> Result<Responded> {
        let op = self.op(by);
        let now = op.now;
        self.commit(op, |inner| {
            Ok(
                match inner.state.respond(
                    &self.limits,
                    session_id,
                    id,
                    answer.clone(),
                    picked.clone(),
                    now,
                )? {
                    Respond::Answer(mut change) => {
                        if let Change::Resolved { by, .. } = &mut *change {
                            *by = answerer.map(str::to_string);
                        }
                        (vec![*change], Responded::Answered)
                    }
                    Respond::Stale { still_pending } => {
                        (Vec::new(), Responded::Stale { still_pending })
                    }
                },
            )
        })
    }

    /// Cancels one pending prompt of the agent credential `asker`, or every
    /// one of its pending prompts of the session's kind when no id is
    /// given. Returns the ids cancelled.
    pub fn cancel(
        &self,
        session_id: &str,
        kind: Kind,
        id: Option<&str>,
        asker: Asker<'_>,
    ) -> Result<Vec<String>> {
        let op = self.op(asker.by);
        let now = op.now;
        self.commit(op, |inner| {
            let changes = inner.state.cancel(session_id, kind, id, asker.agent, now)?;
            let ids = changes.iter().filter_map(resolved_id).collect();
            Ok((changes, ids))
        })
    }

    /// Pauses an agent, or lets it go on (docs/PROTOCOL.md §3.6).
    pub fn pause_agent(&self, agent: &str, paused: bool, by: &str) -> Result<()> {
        let op = self.op(by);
        let now = op.now;
        self.commit(op, |inner| Ok((inner.state.pause(agent, paused, now)?, ())))
    }

    /// Cancels every pending prompt of one agent, or of all; returns the
    /// ids cancelled.
    pub fn stop_agents(&self, agent: Option<&str>, by: &str) -> Result<Vec<String>> {
        // One operation is one journal record: `EXPIRE_BATCH` cancels at a
        // time, as many times as it takes (every pending prompt at most).
        let mut cancelled = Vec::new();
        for _ in 0..=self.limits.max_prompts / state::EXPIRE_BATCH {
            let op = self.op(by);
            let now = op.now;
            let ids: Vec<String> = self.commit(op, |inner| {
                let mut changes = inner.state.stop(agent, now);
                changes.truncate(state::EXPIRE_BATCH);
                let ids = changes.iter().filter_map(resolved_id).collect();
                Ok((changes, ids))
            })?;
            let more = ids.len() == state::EXPIRE_BATCH;
            cancelled.extend(ids);
            if !more {
                break;
            }
        }
        Ok(cancelled)
    }

    /// The agents waiting or paused: the page's triage list.
    pub fn agents(&self) -> Vec<AgentSummary> {
        self.lock().state.agents()
    }

    /// Takes back the rule with this id (404 when there is none); `by`
    /// names who did in the audit log.
    pub fn revoke(&self, rule_id: &str, by: &str) -> Result<()> {
        let op = self.op(by);
        let now = op.now;
        self.commit(op, |inner| {
            Ok((vec![inner.state.revoke(rule_id, now)?], ()))
        })
    }

    /// The session's kept outcomes, newest first, at most `limit`.
    pub fn history(&self, session_id: &str, limit: usize) -> Vec<serde_json::Value> {
        self.lock().state.history(session_id, limit)
    }

    /// Every rule, oldest grant first.
    pub fn rules(&self) -> Vec<Rule> {
        let inner = self.lock();
        inner.state.rules().into_iter().cloned().collect()
    }

    /// Expires every prompt whose time has come, forgets what is past
    /// retention (and sign-ins and spent capabilities past theirs), and
    /// compacts the journal when it has grown; returns how
    /// long until the next expiry (at most `max_wait`).
    pub fn expire_due(&self, max_wait: Duration) -> Duration {
        let max_wait = max_wait.min(EXPIRY_CHECK);
        if let Err(wait) = self.store.decides_time(max_wait) {
            return wait;
        }
        let op = self.op(SERVER);
        let now = op.now;
        let committed = self.commit(op, |inner| {
            let mut changes = inner.state.expire_due(now);
            let mut more = changes.len() == state::EXPIRE_BATCH;
            let needed = |s: &str| inner.registry.needs(s);
            let pruned = inner.state.prune(now, &self.limits, needed);
            if let Some(Change::Pruned { outcomes, sessions }) = &pruned {
                more |= outcomes.len() == state::FORGET_BATCH;
                more |= sessions.len() == state::SESSIONS_BATCH;
            }
            changes.extend(pruned);
            changes.extend(inner.state.expire_credentials(now));
            Ok((changes, more))
        });
        // A full batch: the rest at once.
        let more = match committed {
            Ok(more) => more,
            Err(error) => {
                log::warn!("expiry is waiting for the store: {error}");
                false
            }
        };
        let inner = self.lock();
        let next = inner.state.next_expiry().map(|at| (at - now).max(0.0));
        self.store.upkeep(inner);
        if more {
            return Duration::ZERO;
        }
        next.map_or(max_wait, |next| Duration::from_secs_f64(next).min(max_wait))
    }

    /// Wakes waiters once a commit is durable: the agents waiting for the
    /// prompts that got an outcome (looked up now, so one that began waiting
    /// meanwhile is woken too), the expiry thread when a deadline appeared
    /// that comes before it would look again.
    fn announce(&self, committed: Committed) {
        self.hand_to_fanout(committed.deliveries);
        if !committed.recorded.is_empty() {
            let inner = self.lock();
            for id in &committed.recorded {
                if let Some(waiters) = inner.waiting.get(id) {
                    waiters.notify_all();
                }
            }
        }
        // The expiry thread looks again within `EXPIRY_CHECK` anyway: woken
        // for every submit (every instance's, with Redis), it scanned the
        // pending prompts hundreds of times a second under load.
        let check_by = self.clock.now() + EXPIRY_CHECK.as_secs_f64();
        if committed.deadline.is_some_and(|at| at < check_by) {
            self.expiry_changed.notify_all();
        }
    }

    /// Sleeps until the next expiry may be due, an earlier one appears, or
    /// the hub closes.
    pub fn wait_for_expiry(&self, timeout: Duration) {
        let inner = self.lock();
        if !self.closing.load(Ordering::Acquire) {
            let _unused = self.expiry_changed.wait_timeout(inner, timeout);
        }
    }

    /// The head and count of one queue, as polls and frames show it.
    pub fn pending(&self, session_id: &str, kind: Kind) -> Update {
        self.lock().state.update_of(session_id, kind)
    }

    /// Registers a subscriber and reads its initial frames in one critical
    /// section, so no change can fall between them (queue rule 5). With
    /// `since`, only the queues that changed after that version are sent,
    /// when the hub can honour it.
    pub fn subscribe(self: &Arc<Self>, interest: Interest, since: Option<u64>) -> Subscription {
        if let Some(since) = since {
            self.catch_up_to(since);
        }
        let mut inner = self.lock();
        let since = since.filter(|&v| inner.state.can_resume_from(v));
        let initial = inner.state.states(&interest, since);
        let version = inner.state.version();
        let inbox = self.register(&mut inner, interest);
        drop(inner);
        Subscription {
            hub: self.clone(),
            inbox,
            initial,
            version,
            full: since.is_none(),
        }
    }

    /// Like `subscribe` to one queue, but only when it has not moved from
    /// `since`: `Err` carries its current state when it has.
    pub fn subscribe_unless_changed(
        self: &Arc<Self>,
        session_id: &str,
        kind: Kind,
        since: u64,
    ) -> std::result::Result<Subscription, Update> {
        self.catch_up_to(since);
        let mut inner = self.lock();
        let update = inner.state.update_of(session_id, kind);
        if update.version != since {
            return Err(update);
        }
        let interest = Interest {
            watch: Watch::Sessions(vec![session_id.to_string()]),
            kind: Some(kind),
        };
        let inbox = self.register(&mut inner, interest);
        let version = inner.state.version();
        drop(inner);
        Ok(Subscription {
            hub: self.clone(),
            inbox,
            initial: Vec::new(),
            version,
            full: false,
        })
    }

    /// With Redis, a version a client saw on another instance that this
    /// one has not reached yet: read the log first, so that the client
    /// resumes from it rather than getting the full state (or an older one).
    fn catch_up_to(&self, version: u64) {
        self.store
            .catch_up_if(self, |inner| inner.state.version() < version);
    }

    /// Adds a subscriber; once the hub is closing, its channel is closed at
    /// once, so a stream opened during shutdown ends instead of lingering.
    fn register(&self, inner: &mut Inner, interest: Interest) -> Inbox {
        let inbox = inner.registry.add(interest, self.subscriber_buffer);
        if self.closing.load(Ordering::Acquire) {
            inner.registry.remove(inbox.id);
        }
        inbox
    }

    /// Clears the subscriber's resync mark and returns every watched queue
    /// that changed since it fell behind. Nothing is forgotten while a
    /// subscriber is marked, so that point can always be honoured.
    fn resync(&self, inbox: &Inbox) -> Option<Vec<Update>> {
        let inner = self.lock();
        inbox.resync.store(false, Ordering::Release);
        let Some((interest, since)) = inner.registry.resync_point(inbox.id) else {
            return Some(Vec::new());
        };
        // With Redis, another instance may have forgotten a session this
        // one's subscriber still needed, and a forgotten session sends no
        // frame: only the full state (on a new stream) says it emptied.
        if !inner.state.can_resume_from(since) {
            debug_assert!(self.store.shared().is_some());
            return None;
        }
        Some(inner.state.states(interest, Some(since)))
    }

    /// Waits until the prompt has an outcome or the deadline passes; a
    /// prompt another agent credential than `agent` submitted is unknown.
    pub fn wait_outcome(
        &self,
        id: &str,
        kind: Kind,
        session_id: &str,
        agent: &str,
        deadline: Instant,
    ) -> WaitResult {
        // With Redis, a prompt submitted through another instance a moment
        // ago may not have reached this one yet: read the log first.
        self.store.catch_up_if(self, |inner| {
            matches!(
                inner.state.lookup(id, kind, session_id, agent),
                Lookup::Unknown
            )
        });
        let mut inner = self.lock();
        let waiters = inner.waiting.entry(id.to_string()).or_default().clone();
        let result = loop {
            match inner.state.lookup(id, kind, session_id, agent) {
                Lookup::Pending => {}
                Lookup::Done(outcome, version) if self.is_durable(version) => {
                    break WaitResult::Done(outcome);
                }
                Lookup::Done(..) => {}
                Lookup::Unknown => break WaitResult::Unknown,
            }
            let now = Instant::now();
            if now >= deadline || self.closing.load(Ordering::Acquire) {
                break WaitResult::Pending;
            }
            // Counted when something woke it, not when its slice ended (a
            // wait wakes every `LEFT_CHECK_EVERY` to see whether its client
            // left, and how many slices end depends on the machine's load).
            inner = match waiters.wait_timeout(inner, deadline - now) {
                Ok((inner, slept)) => {
                    if !slept.timed_out() {
                        self.wakeups.fetch_add(1, Ordering::Relaxed);
                    }
                    inner
                }
                Err(poisoned) => poisoned.into_inner().0,
            };
        };
        // The last waiter of a prompt takes its entry away.
        if Arc::strong_count(&waiters) == 2 {
            inner.waiting.remove(id);
        }
        result
    }

    fn is_durable(&self, version: u64) -> bool {
        self.store.is_durable(version)
    }

    /// Sessions with something pending or a change within the result TTL.
    pub fn sessions(&self) -> Vec<SessionSummary> {
        let recent = self.clock.now() - self.limits.result_ttl;
        self.lock().state.sessions(recent)
    }

    pub fn counts(&self) -> Counts {
        let inner = self.lock();
        let (pending, sessions) = inner.state.totals();
        Counts {
            subscribers: inner.registry.len(),
            sessions,
            pending,
            resyncs: inner.registry.resyncs(),
            version: inner.state.version(),
            wait_wakeups: self.wakeups.load(Ordering::Relaxed),
        }
    }

    /// Whether the hub is shutting down (waits then return at once).
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Shutdown: ends every subscription (each stream sees its channel close)
    /// and wakes every waiting agent and the expiry thread.
    pub fn close(&self) {
        let mut inner = self.lock();
        self.closing.store(true, Ordering::Release);
        inner.registry.clear();
        for waiters in inner.waiting.values() {
            waiters.notify_all();
        }
        drop(inner);
        self.expiry_changed.notify_all();
        let mut queue = self.fanout_queue();
        queue.asleep = false;
        self.fanout.ready.notify_all();
    }
}

impl Inner {
    /// Queues the changes to the store as one record (refusing them all
    /// when it has no room), then applies each, logs it, and publishes the
    /// queue it touched. The audit lines of each change are made from the
    /// state just before it applies.
    fn commit_all(
        &mut self,
        changes: Vec<Change>,
        store: &Store,
        op: &Op<'_>,
        observing: bool,
    ) -> Result<Committed> {
        let version = durable::version_after(&self.state, &changes);
        store.append(version, &changes)?;
        Ok(self.apply_all(changes, op, observing))
    }

    /// Applies each change, logs it, and publishes the queue it touched;
    /// when `observing`, keeps each new prompt for the observer.
    fn apply_all(&mut self, changes: Vec<Change>, op: &Op<'_>, observing: bool) -> Committed {
        let version = durable::version_after(&self.state, &changes);
        let mut committed = Committed {
            version,
            ..Committed::default()
        };
        for change in changes {
            log_change(&change);
            durable::say_if_refused(&self.state, &change, version);
            let lines = audit::lines(&self.state, &change, op.by, op.now);
            let decision_line = match &change {
                Change::Resolved { .. } | Change::AutoAnswered { .. } => !lines.is_empty(),
                _ => false,
            };
            let line_index = committed.audit.len();
            committed.audit.extend(lines);
            if let Change::Submitted(prompt) = &change {
                if prompt.expires() {
                    committed.deadline_at(prompt.expires_at);
                }
                if observing && !self.state.is_paused(prompt.agent_name()) {
                    committed.submitted.push(Prompt::clone(prompt));
                }
            }
            if let (
                true,
                Change::Paused {
                    agent,
                    paused: false,
                    ..
                },
            ) = (observing, &change)
            {
                // Announced now, as if new: a paused agent's prompts rang
                // no phone (docs/PROTOCOL.md §3.6).
                let waiting = self.state.pending_prompts();
                let waiting = waiting.filter(|prompt| prompt.agent_name() == agent);
                committed.submitted.extend(waiting.cloned());
            }
            if let Change::Resolved {
                session_id,
                kind,
                id,
                outcome,
                ..
            } = &change
            {
                committed.resolved.push(Resolution {
                    session_id: session_id.clone(),
                    kind: *kind,
                    id: id.clone(),
                    status: outcome.status(),
                });
            }
            if let Change::Credential(
                CredentialChange::SignedOut { .. } | CredentialChange::Expired { .. },
            ) = &change
            {
                self.sign_ins_ended += 1;
            }
            let applied = self.state.apply(&change);
            if let (true, Some(id)) = (decision_line, &applied.outcome)
                && let Some(decision) = self.state.decision(id)
            {
                committed.decisions.push((line_index, decision));
            }
            if let Some((session_id, kind)) = applied.queue {
                self.registry
                    .publish(self.state.update_of(&session_id, kind));
            }
            committed.recorded.extend(applied.outcome);
        }
        committed.deliveries = self.registry.take_deliveries();
        committed
    }
}

/// Why the journal would not take a change, as the client hears it.
fn resolved_id(change: &Change) -> Option<String> {
    match change {
        Change::Resolved { id, .. } => Some(id.clone()),
        _ => None,
    }
}

/// A debug line for the changes that are housekeeping, not decisions
/// (decisions have their audit lines).
fn log_change(change: &Change) {
    match change {
        Change::Submitted(_)
        | Change::Resolved { .. }
        | Change::AutoAnswered { .. }
        | Change::RuleRevoked { .. }
        | Change::Paused { .. } => {}
        Change::SessionEvicted { session_id } => {
            log::debug!("session {session_id} evicted to make room")
        }
        Change::Pruned { outcomes, sessions } => log::debug!(
            "forgot {} outcomes and {} sessions past retention",
            outcomes.len(),
            sessions.len()
        ),
        Change::Restarted { skip } => log::debug!("versions skip {skip} at the restart"),
        Change::Credential(change) => {
            log::debug!("credentials: {}", crate::core::record::credential(change))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{Sender, unbounded};
    use std::thread::{self, ThreadId};
    use subscriber::{Deliver, Feed, Next};

    fn hub() -> Arc<Hub> {
        let limits = Limits {
            max_pending: 64,
            max_prompts: 100,
            max_state_bytes: 1 << 20,
            max_sessions: 100,
            result_ttl: 600.0,
        };
        Arc::new(Hub::new(limits, 16))
    }

    fn all() -> Interest {
        Interest {
            watch: Watch::All,
            kind: None,
        }
    }

    #[test]
    fn nothing_subscribes_once_the_hub_is_closing() {
        let hub = hub();
        let open = hub.subscribe(all(), None);
        hub.close();
        let soon = || Instant::now() + Duration::from_secs(5);
        let closed =
            |subscription: &Subscription| matches!(subscription.inbox.next(soon()), Next::Closed);
        assert!(closed(&open), "closing ends existing subscriptions");
        let late = hub.subscribe(all(), None);
        assert!(closed(&late), "and any that come after");
        let parked = hub.subscribe_unless_changed("s", Kind::Clarify, 0).unwrap();
        assert!(closed(&parked));
        drop((open, late, parked));
        assert_eq!(hub.counts().subscribers, 0);
    }

    /// Sends the thread that took each update from its feed.
    struct Taker {
        feed: Feed,
        by: Sender<ThreadId>,
    }

    impl Deliver for Taker {
        fn deliver(&self) -> bool {
            while let Some(Next::Update(_)) = self.feed.try_next() {
                self.by.send(thread::current().id()).unwrap();
            }
            true
        }
    }

    /// `count` subscribers to everything, each delivered to by a `Taker`.
    fn taken_by(hub: &Arc<Hub>, count: usize, by: &Sender<ThreadId>) -> Vec<Subscription> {
        let subscriptions: Vec<_> = (0..count).map(|_| hub.subscribe(all(), None)).collect();
        for subscription in &subscriptions {
            let feed = subscription.inbox.feed();
            let by = by.clone();
            subscription
                .inbox
                .deliver_with(Arc::new(Taker { feed, by }));
        }
        subscriptions
    }

    /// A hub whose deliveries go to a fan-out thread, as the server's.
    fn fanning_out() -> Arc<Hub> {
        let hub = hub();
        let weak = Arc::downgrade(&hub);
        hub.fan_out_on(Box::new(move || {
            let hub = weak.upgrade().ok_or(std::io::ErrorKind::NotFound)?;
            thread::Builder::new()
                .spawn(move || hub.fan_out(Duration::from_secs(30)))
                .map(drop)
        }));
        hub
    }

    fn submit(hub: &Hub, question: &str) {
        let payload = Payload::question(question.into(), Vec::new());
        let asker = Asker {
            agent: "agent",
            by: "agent",
        };
        hub.submit("s", 60, payload, asker).unwrap();
    }

    #[test]
    fn the_first_small_change_after_no_fan_out_thread_ran_is_written_before_it_starts() {
        let hub = fanning_out();
        let (by, took) = unbounded();
        let subscriptions = taken_by(&hub, 3, &by);
        let here = thread::current().id();
        submit(&hub, "first?");
        let first: Vec<_> = took.try_iter().collect();
        assert_eq!(first, [here; 3], "written by the committing thread");
        submit(&hub, "second?");
        let wait = Duration::from_secs(10);
        let second: Vec<_> = (0..3).map(|_| took.recv_timeout(wait).unwrap()).collect();
        assert!(
            second.iter().all(|&thread| thread != here),
            "by the fan-out thread"
        );
        hub.close();
        drop(subscriptions);
    }

    #[test]
    fn a_large_first_change_goes_to_the_fan_out_thread() {
        let hub = fanning_out();
        let (by, took) = unbounded();
        let subscriptions = taken_by(&hub, RUN_HERE_BELOW, &by);
        let here = thread::current().id();
        submit(&hub, "first?");
        let wait = Duration::from_secs(10);
        for _ in 0..RUN_HERE_BELOW {
            assert_ne!(took.recv_timeout(wait).unwrap(), here);
        }
        hub.close();
        drop(subscriptions);
    }

    #[test]
    fn a_dropped_subscription_leaves_the_registry() {
        let hub = hub();
        let subscription = hub.subscribe(all(), None);
        assert_eq!(hub.counts().subscribers, 1);
        drop(subscription);
        assert_eq!(hub.counts().subscribers, 0);
    }
}
