//! The subscriber registry: who watches which queues, and the bounded channel
//! each of them reads from.
//!
//! Publishing is a `try_send` to each interested subscriber, done by the hub
//! while it holds its lock, so it never blocks on a slow client. A full
//! channel marks its subscriber for resync and nothing more is sent to it
//! until its stream has drained and caught up (queue rule 7).
//!
//! The channel is only the buffer: its reader waits with `park_timeout`,
//! and the publisher unparks it after each `try_send` and when it leaves
//! the registry. crossbeam's own blocking `recv` spins and yields the CPU
//! several times before it parks, a context switch each with thousands of
//! stream threads on two cores (BENCHMARKS.md).
//!
//! A reader may also name a `Deliver`: then the publisher does not wake
//! it but queues its waker in `Deliveries`, which the hub's fan-out thread
//! runs after the lock is released (with a helper thread for that change
//! when there are many): the deliverer empties the channel
//! itself when it can do so without blocking (a stream writes the frames
//! to its socket), and only when it cannot is the reader woken. One
//! wake-up per change instead of one per subscriber.

use crate::core::kind::Kind;
use crate::core::room::GiveBack;
use crate::core::view::{Interest, Update, Watch};
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::{self, Thread};
use std::time::Instant;

struct Subscriber {
    interest: Interest,
    sender: Sender<Arc<Published>>,
    resync: Arc<AtomicBool>,
    waker: Arc<Waker>,
    /// While marked: the global version the subscriber is current up to,
    /// the one before the first update it missed.
    behind_since: u64,
}

impl Subscriber {
    /// Drops the sender, then wakes the reader, which finds the channel
    /// closed (woken before, it could park again and sleep on).
    fn close(self) -> Watch {
        let Subscriber {
            interest,
            sender,
            waker,
            ..
        } = self;
        drop(sender);
        waker.wake();
        interest.watch
    }
}

/// What empties an inbox on the publisher's side, without blocking and
/// without waking its reader.
pub trait Deliver: Send + Sync {
    /// Takes what the inbox holds and passes it on, never blocking; `false`
    /// when the reader must be woken to finish (or to do all of) it.
    fn deliver(&self) -> bool;
}

/// The thread that reads an inbox, once it has waited on it: the one
/// the publisher unparks; and what delivers for it, if anything.
#[derive(Default)]
struct Waker {
    reader: OnceLock<Thread>,
    deliverer: OnceLock<Arc<dyn Deliver>>,
}

impl Waker {
    fn wake(&self) {
        if let Some(reader) = self.reader.get() {
            reader.unpark();
        }
    }

    /// Delivers without the reader if its deliverer can; `false` when the
    /// reader must be woken.
    fn deliver(&self) -> bool {
        self.deliverer
            .get()
            .is_some_and(|deliverer| deliverer.deliver())
    }
}

/// The subscribers that were sent something and have a deliverer, in the
/// order they were sent it: run once the hub's lock is released.
#[derive(Default)]
pub struct Deliveries {
    wakers: Vec<Arc<Waker>>,
    /// Whether a subscriber may be named more than once (the list was
    /// added to after it had some).
    repeats: bool,
}

impl Deliveries {
    pub fn is_empty(&self) -> bool {
        self.wakers.is_empty()
    }

    pub fn len(&self) -> usize {
        self.wakers.len()
    }

    fn push(&mut self, waker: Arc<Waker>) {
        self.wakers.push(waker);
    }

    /// Each deliverer in turn, then each reader whose deliverer could not
    /// finish is woken: the woken threads do not take the CPU from the
    /// deliverers still to run (a long-poll's thread is always woken).
    /// Many deliveries on more than one core are shared between this
    /// thread and a helper that lives for this change only: each takes the
    /// next few subscribers not yet taken until none is left, so both end
    /// together however the cores are shared (with fixed halves, one
    /// often ended 5-40 ms after the other at 5,000 streams: BENCHMARKS.md,
    /// "fan-out at 1,000 and 5,000"). A subscriber named twice is named
    /// once first, so that no two threads deliver to it at once; both end
    /// before the next change starts, so a stream's frames stay in order.
    pub fn run(self) {
        if self.wakers.len() < SPLIT_AT || !several_cores() {
            return deliver_or_wake(&Shares::new(self.wakers));
        }
        let shares = Arc::new(Shares::new(self.once_each()));
        let theirs = shares.clone();
        let helper = thread::Builder::new()
            .name("askgate-fanout2".into())
            .spawn(move || deliver_or_wake(&theirs));
        deliver_or_wake(&shares);
        if let Ok(helper) = helper {
            drop(helper.join());
        }
    }

    pub fn append(&mut self, other: Deliveries) {
        self.repeats |= other.repeats || !(self.is_empty() || other.is_empty());
        self.wakers.extend(other.wakers);
    }

    /// The wakers, each subscriber once, in the order first named.
    fn once_each(self) -> Vec<Arc<Waker>> {
        let mut wakers = self.wakers;
        if self.repeats {
            let mut seen = std::collections::HashSet::with_capacity(wakers.len());
            wakers.retain(|waker| seen.insert(Arc::as_ptr(waker)));
        }
        wakers
    }
}

/// From this many deliveries of one change, a second thread shares them
/// (BENCHMARKS.md, "fan-out at 5,000").
const SPLIT_AT: usize = 1_000;

/// How many subscribers a delivering thread takes at a time: few enough
/// that the two end close together, enough that they seldom meet on the
/// counter.
const SHARE: usize = 32;

/// Whether this thread may run on more than one core (`taskset`, a
/// container's cpuset): one system call.
fn several_cores() -> bool {
    // SAFETY: cpu_set_t is a bit array, for which zero is a value, and
    // sched_getaffinity writes at most the size it is given.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    let got = unsafe { libc::sched_getaffinity(0, size, &mut set) };
    got == 0 && unsafe { libc::CPU_COUNT(&set) } > 1
}

/// The wakers of one change, and how many the delivering threads have
/// taken so far.
struct Shares {
    wakers: Vec<Arc<Waker>>,
    taken: AtomicUsize,
}

impl Shares {
    fn new(wakers: Vec<Arc<Waker>>) -> Shares {
        Shares {
            wakers,
            taken: AtomicUsize::new(0),
        }
    }

    /// The next few wakers no thread has taken; empty when none is left.
    fn take(&self) -> &[Arc<Waker>] {
        let start = self.taken.fetch_add(SHARE, Ordering::Relaxed);
        let end = start.saturating_add(SHARE).min(self.wakers.len());
        self.wakers.get(start..end).unwrap_or_default()
    }
}

/// Runs the deliverers of the shares this thread takes, then wakes the
/// readers whose deliverer could not finish.
fn deliver_or_wake(shares: &Shares) {
    let mut undelivered = Vec::new();
    loop {
        let share = shares.take();
        if share.is_empty() {
            break;
        }
        undelivered.extend(share.iter().filter(|waker| !waker.deliver()));
    }
    for waker in undelivered {
        waker.wake();
    }
}

/// The receiving end a stream or long-poll holds; one thread reads it.
pub struct Inbox {
    pub id: u64,
    receiver: Receiver<Arc<Published>>,
    /// Set by the publisher when the channel overflowed.
    pub resync: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

/// How many renderings of one update the transports may keep with it:
/// a per-kind frame, a multiplexed frame, a long-poll's body.
pub const RENDERINGS: usize = 3;

/// An update as the registry hands it out: one allocation shared by every
/// subscriber, with room for what the transport makes of it (a frame per
/// wire format), made once by the first subscriber that needs it.
#[derive(Debug)]
pub struct Published {
    pub update: Update,
    renderings: [OnceLock<String>; RENDERINGS],
}

impl Published {
    pub fn new(update: Update) -> Published {
        Published {
            update,
            renderings: Default::default(),
        }
    }

    /// The rendering in `slot` (below `RENDERINGS`), made by `render` if
    /// no subscriber has made it yet.
    pub fn rendered(&self, slot: usize, render: impl FnOnce(&Update) -> String) -> &str {
        self.renderings[slot].get_or_init(|| render(&self.update))
    }
}

/// What waiting on an inbox gave.
#[derive(Debug)]
pub enum Next {
    Update(Arc<Published>),
    /// The deadline passed with nothing new.
    Timeout,
    /// The subscriber left the registry (the hub is closing) and every
    /// update sent before has been read.
    Closed,
}

impl Inbox {
    /// The next update, waiting until `deadline` parked, without spinning.
    /// The first thread to wait becomes the inbox's reader, the one the
    /// publisher wakes; a spurious wakeup just looks again.
    pub fn next(&self, deadline: Instant) -> Next {
        self.read_here();
        loop {
            if let Some(next) = self.try_next() {
                return next;
            }
            let now = Instant::now();
            if now >= deadline {
                return Next::Timeout;
            }
            thread::park_timeout(deadline - now);
        }
    }

    /// The calling thread becomes the inbox's reader, the one the
    /// publisher wakes (unless it has one already); before it first looks,
    /// so that no wake-up meant for it is lost.
    pub fn read_here(&self) {
        self.waker.reader.get_or_init(thread::current);
    }

    /// Whether every update sent so far has been read.
    pub fn is_empty(&self) -> bool {
        self.receiver.is_empty()
    }

    /// The next update if one waits, without waiting: `None` when there
    /// is none.
    pub fn try_next(&self) -> Option<Next> {
        match self.receiver.try_recv() {
            Ok(update) => Some(Next::Update(update)),
            Err(TryRecvError::Disconnected) => Some(Next::Closed),
            Err(TryRecvError::Empty) => None,
        }
    }

    /// Parks the calling thread, which becomes the inbox's reader, until
    /// the publisher wakes it or `deadline` passes; it may also return
    /// early (a spurious wakeup). Reads nothing: the caller looks.
    pub fn wait(&self, deadline: Instant) {
        self.read_here();
        let now = Instant::now();
        if now < deadline {
            thread::park_timeout(deadline - now);
        }
    }

    /// From now on the publisher hands this inbox's updates to `deliverer`
    /// (on the hub's fan-out thread) instead of waking the reader; the
    /// reader is woken only when `deliver` says so. Once per inbox.
    pub fn deliver_with(&self, deliverer: Arc<dyn Deliver>) {
        let _ = self.waker.deliverer.set(deliverer);
    }

    /// Another handle on the same channel, for a deliverer: what it takes,
    /// the reader does not get. Both must take only under one lock of
    /// theirs, so that what they pass on stays in order.
    pub fn feed(&self) -> Feed {
        Feed {
            receiver: self.receiver.clone(),
            resync: self.resync.clone(),
        }
    }
}

/// A deliverer's handle on an inbox (`Inbox::feed`).
pub struct Feed {
    receiver: Receiver<Arc<Published>>,
    resync: Arc<AtomicBool>,
}

impl Feed {
    /// Like `Inbox::try_next`.
    pub fn try_next(&self) -> Option<Next> {
        match self.receiver.try_recv() {
            Ok(update) => Some(Next::Update(update)),
            Err(TryRecvError::Disconnected) => Some(Next::Closed),
            Err(TryRecvError::Empty) => None,
        }
    }

    /// Whether the subscriber fell behind and waits for its resync.
    pub fn awaits_resync(&self) -> bool {
        self.resync.load(Ordering::Acquire)
    }
}

#[derive(Default)]
pub struct Registry {
    next_id: u64,
    subscribers: HashMap<u64, Subscriber>,
    by_session: HashMap<String, Vec<u64>>,
    watching_all: Vec<u64>,
    resyncs: u64,
    /// Sent something since `take_deliveries`, with a deliverer.
    deliveries: Deliveries,
}

impl Registry {
    pub fn add(&mut self, interest: Interest, capacity: usize) -> Inbox {
        self.next_id += 1;
        let id = self.next_id;
        let (sender, receiver) = crossbeam_channel::bounded(capacity.max(1));
        let resync = Arc::new(AtomicBool::new(false));
        let waker = Arc::new(Waker::default());
        match &interest.watch {
            Watch::All => self.watching_all.push(id),
            Watch::Sessions(sessions) => {
                for session_id in sessions {
                    self.by_session
                        .entry(session_id.clone())
                        .or_default()
                        .push(id);
                }
            }
        }
        let subscriber = Subscriber {
            interest,
            sender,
            resync: resync.clone(),
            waker: waker.clone(),
            behind_since: 0,
        };
        self.subscribers.insert(id, subscriber);
        Inbox {
            id,
            receiver,
            resync,
            waker,
        }
    }

    /// Whether any subscriber watches this (session, kind) queue.
    pub fn watches(&self, session_id: &str, kind: Kind) -> bool {
        let named = self.by_session.get(session_id).into_iter().flatten();
        let ids = self.watching_all.iter().chain(named);
        ids.filter_map(|id| self.subscribers.get(id))
            .any(|subscriber| subscriber.interest.includes(session_id, kind))
    }

    pub fn remove(&mut self, id: u64) {
        let Some(subscriber) = self.subscribers.remove(&id) else {
            return;
        };
        let watch = subscriber.close();
        match watch {
            Watch::All => self.watching_all.retain(|&other| other != id),
            Watch::Sessions(sessions) => {
                for session_id in sessions {
                    if let Some(ids) = self.by_session.get_mut(&session_id) {
                        ids.retain(|&other| other != id);
                        ids.give_back_room();
                        if ids.is_empty() {
                            self.by_session.remove(&session_id);
                        }
                    }
                }
            }
        }
        // After a burst of streams, the tables' room goes with them.
        self.subscribers.give_back_room();
        self.by_session.give_back_room();
        self.watching_all.give_back_room();
    }

    /// Drops every sender, so every stream sees its channel close and ends.
    pub fn clear(&mut self) {
        for (_, subscriber) in self.subscribers.drain() {
            subscriber.close();
        }
        self.by_session.clear();
        self.watching_all.clear();
    }

    pub fn len(&self) -> usize {
        self.subscribers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
    }

    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Whether a subscriber fell behind and still waits for its resync.
    pub fn any_awaiting_resync(&self) -> bool {
        let marked = |subscriber: &Subscriber| subscriber.resync.load(Ordering::Acquire);
        self.subscribers.values().any(marked)
    }

    /// Whether anyone watches this session by name (such sessions are kept).
    pub fn watches_by_name(&self, session_id: &str) -> bool {
        self.by_session.contains_key(session_id)
    }

    /// Whether a session may not be forgotten now: someone watches it by
    /// name, or a subscriber that fell behind must still be told what
    /// changed, and a forgotten session could not be reported.
    pub fn needs(&self, session_id: &str) -> bool {
        self.watches_by_name(session_id) || self.any_awaiting_resync()
    }

    /// What a marked subscriber watches, and the version it is current up
    /// to: a resync sends the watched queues changed after it.
    pub fn resync_point(&self, id: u64) -> Option<(&Interest, u64)> {
        let subscriber = self.subscribers.get(&id)?;
        Some((&subscriber.interest, subscriber.behind_since))
    }

    /// Hands the update to every subscriber interested in it, never blocking.
    pub fn publish(&mut self, update: Update) {
        self.deliveries.repeats |= !self.deliveries.is_empty();
        let published = Arc::new(Published::new(update));
        let update = &published.update;
        let named = self
            .by_session
            .get(&update.session_id)
            .into_iter()
            .flatten();
        for id in named.chain(self.watching_all.iter()) {
            let Some(subscriber) = self.subscribers.get_mut(id) else {
                continue;
            };
            if subscriber
                .interest
                .kind
                .is_some_and(|kind| kind != update.kind)
                || subscriber.resync.load(Ordering::Acquire)
            {
                continue;
            }
            if let Err(TrySendError::Full(_)) = subscriber.sender.try_send(published.clone()) {
                subscriber.resync.store(true, Ordering::Release);
                subscriber.behind_since = update.version - 1;
                self.resyncs += 1;
            }
            match subscriber.waker.deliverer.get() {
                Some(_) => self.deliveries.push(subscriber.waker.clone()),
                None => subscriber.waker.wake(),
            }
        }
    }

    /// The deliveries owed for what was published since the last call;
    /// to `run` once the hub's lock is released.
    pub fn take_deliveries(&mut self) -> Deliveries {
        std::mem::take(&mut self.deliveries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn update(version: u64) -> Update {
        Update::empty_at(version)
    }

    fn version_of(next: Next) -> Option<u64> {
        match next {
            Next::Update(published) => Some(published.update.version),
            _ => None,
        }
    }

    fn all() -> Interest {
        Interest {
            watch: Watch::All,
            kind: None,
        }
    }

    /// Runs `next` on a thread of its own once it has waited; what it got
    /// and how long it took.
    fn reader(inbox: Inbox, wait: Duration) -> thread::JoinHandle<(Next, Duration)> {
        thread::spawn(move || {
            let started = Instant::now();
            let next = inbox.next(started + wait);
            (next, started.elapsed())
        })
    }

    /// Until the reader has made itself the one to wake (it then parks at
    /// once, or finds the unpark token and looks again).
    fn wait_until_waiting(registry: &Registry, id: u64) {
        while registry.subscribers[&id].waker.reader.get().is_none() {
            thread::yield_now();
        }
    }

    #[test]
    fn a_parked_reader_is_woken_by_a_publish_and_by_leaving() {
        let mut registry = Registry::default();
        let inbox = registry.add(all(), 4);
        let id = inbox.id;
        let handle = reader(inbox, Duration::from_secs(10));
        wait_until_waiting(&registry, id);
        registry.publish(update(1));
        let (next, took) = handle.join().unwrap();
        assert_eq!(version_of(next), Some(1));
        assert!(
            took < Duration::from_secs(5),
            "woken, not timed out: {took:?}"
        );

        let inbox = registry.add(all(), 4);
        let handle = reader(inbox, Duration::from_secs(10));
        wait_until_waiting(&registry, id + 1);
        registry.remove(id + 1);
        let (next, took) = handle.join().unwrap();
        assert!(matches!(next, Next::Closed) && took < Duration::from_secs(5));
    }

    #[test]
    fn spurious_wakeups_wait_on_until_the_deadline() {
        let mut registry = Registry::default();
        let inbox = registry.add(all(), 4);
        let id = inbox.id;
        let handle = reader(inbox, Duration::from_millis(300));
        wait_until_waiting(&registry, id);
        while !handle.is_finished() {
            handle.thread().unpark();
            thread::yield_now();
        }
        let (next, took) = handle.join().unwrap();
        assert!(matches!(next, Next::Timeout), "{next:?}");
        assert!(took >= Duration::from_millis(300), "{took:?}");
        drop(registry);
    }

    #[test]
    fn updates_sent_before_the_close_are_read_first_and_in_order() {
        let mut registry = Registry::default();
        let inbox = registry.add(all(), 4);
        for version in 1..=3 {
            registry.publish(update(version));
        }
        registry.clear();
        let soon = || Instant::now() + Duration::from_secs(1);
        let got: Vec<Option<u64>> = (0..4).map(|_| version_of(inbox.next(soon()))).collect();
        assert_eq!(got, [Some(1), Some(2), Some(3), None]);
        assert!(matches!(inbox.next(soon()), Next::Closed));
    }

    /// Takes everything from its feed, in order; says it finished when `finish`.
    struct Taker {
        feed: Feed,
        taken: std::sync::Mutex<Vec<u64>>,
        finish: bool,
    }

    impl Deliver for Taker {
        fn deliver(&self) -> bool {
            while let Some(Next::Update(published)) = self.feed.try_next() {
                self.taken.lock().unwrap().push(published.update.version);
            }
            self.finish
        }
    }

    #[test]
    fn a_deliverer_takes_updates_in_order_after_the_publish_and_wakes_no_one() {
        let mut registry = Registry::default();
        let inbox = registry.add(all(), 8);
        let taker = Arc::new(Taker {
            feed: inbox.feed(),
            taken: Default::default(),
            finish: true,
        });
        inbox.deliver_with(taker.clone());
        for version in 1..=3 {
            registry.publish(update(version));
        }
        assert!(
            inbox.receiver.len() == 3,
            "nothing is delivered under the lock"
        );
        let deliveries = registry.take_deliveries();
        assert!(registry.take_deliveries().is_empty());
        deliveries.run();
        assert_eq!(*taker.taken.lock().unwrap(), [1, 2, 3]);
        assert!(inbox.is_empty());
    }

    /// Records what it takes and the thread that took it, and whether two
    /// threads ever ran it at once; counts in `done` the deliveries that
    /// took something. A recorder that `holds` keeps its thread until
    /// `done` reaches that many (or 10 s passed, then says so in
    /// `held_out`).
    #[derive(Default)]
    struct Recorder {
        feed: OnceLock<Feed>,
        taken: std::sync::Mutex<Vec<(u64, thread::ThreadId)>>,
        running: AtomicBool,
        overlapped: AtomicBool,
        done: Arc<(std::sync::Mutex<usize>, std::sync::Condvar)>,
        holds: Option<usize>,
        held_out: AtomicBool,
        calls: AtomicUsize,
    }

    impl Deliver for Recorder {
        fn deliver(&self) -> bool {
            if self.running.swap(true, Ordering::AcqRel) {
                self.overlapped.store(true, Ordering::Release);
            }
            self.calls.fetch_add(1, Ordering::AcqRel);
            let mut took = false;
            while let Some(Next::Update(published)) = self.feed.get().unwrap().try_next() {
                let by = thread::current().id();
                self.taken
                    .lock()
                    .unwrap()
                    .push((published.update.version, by));
                took = true;
            }
            let (done, changed) = &*self.done;
            let mut count = done.lock().unwrap();
            if let Some(until) = self.holds {
                let wait = Duration::from_secs(10);
                let waited = changed.wait_timeout_while(count, wait, |n| *n < until);
                let (held, timeout) = waited.unwrap();
                self.held_out
                    .fetch_or(timeout.timed_out(), Ordering::AcqRel);
                count = held;
            }
            *count += usize::from(took);
            changed.notify_all();
            drop(count);
            self.running.store(false, Ordering::Release);
            true
        }
    }

    #[test]
    fn many_deliveries_are_shared_by_two_threads_each_subscriber_on_one_in_order() {
        let mut registry = Registry::default();
        let count = SPLIT_AT + 100;
        let done: Arc<(std::sync::Mutex<usize>, std::sync::Condvar)> = Default::default();
        let subscribers: Vec<(Inbox, Arc<Recorder>)> = (0..count)
            .map(|n| {
                let inbox = registry.add(all(), 8);
                // With two cores, the first subscriber's deliverer keeps its
                // thread until the other thread has delivered to all but
                // that thread's first share: the other takes the rest.
                let holds = (n == 0 && several_cores()).then_some(count - SHARE);
                let recorder = Arc::new(Recorder {
                    done: done.clone(),
                    holds,
                    ..Recorder::default()
                });
                let _ = recorder.feed.set(inbox.feed());
                inbox.deliver_with(recorder.clone());
                (inbox, recorder)
            })
            .collect();
        // Three updates in one change: each subscriber is named three times.
        for version in 1..=3 {
            registry.publish(update(version));
        }
        registry.take_deliveries().run();
        let mut threads = std::collections::HashMap::new();
        for (_, recorder) in &subscribers {
            let taken = recorder.taken.lock().unwrap();
            let versions: Vec<u64> = taken.iter().map(|(version, _)| *version).collect();
            assert_eq!(versions, [1, 2, 3]);
            assert!(!recorder.overlapped.load(Ordering::Acquire));
            assert!(!recorder.held_out.load(Ordering::Acquire), "not taken over");
            assert_eq!(recorder.calls.load(Ordering::Acquire), 1, "named once");
            let by: std::collections::HashSet<_> = taken.iter().map(|(_, by)| *by).collect();
            assert_eq!(by.len(), 1, "one thread delivers to a subscriber");
            *threads.entry(taken[0].1).or_insert(0) += 1;
        }
        assert_eq!(*done.0.lock().unwrap(), count);
        if several_cores() {
            assert_eq!(threads.len(), 2, "{threads:?}");
        }
    }

    #[test]
    fn a_deliverer_that_cannot_finish_wakes_the_reader() {
        let mut registry = Registry::default();
        let inbox = registry.add(all(), 8);
        let id = inbox.id;
        inbox.deliver_with(Arc::new(Taker {
            feed: inbox.feed(),
            taken: Default::default(),
            finish: false,
        }));
        let handle = thread::spawn(move || {
            let started = Instant::now();
            inbox.wait(started + Duration::from_secs(10));
            started.elapsed()
        });
        wait_until_waiting(&registry, id);
        registry.publish(update(1));
        registry.take_deliveries().run();
        let took = handle.join().unwrap();
        assert!(
            took < Duration::from_secs(5),
            "woken, not timed out: {took:?}"
        );
    }

    #[test]
    fn the_registry_gives_back_the_room_of_a_burst_of_subscribers_that_left() {
        let mut registry = Registry::default();
        let one_session = Interest {
            watch: Watch::Sessions(vec!["s".into()]),
            kind: None,
        };
        let burst: Vec<Inbox> = (0..5_000)
            .map(|n| match n % 2 {
                0 => registry.add(one_session.clone(), 1),
                _ => registry.add(all(), 1),
            })
            .collect();
        let grown = registry.subscribers.capacity();
        for inbox in &burst {
            registry.remove(inbox.id);
        }
        let kept = [
            registry.subscribers.capacity(),
            registry.by_session.capacity(),
            registry.watching_all.capacity(),
        ];
        assert!(kept.iter().all(|&room| room <= 512), "{grown} -> {kept:?}");
        let stays = registry.add(one_session, 1);
        registry.publish(update(1));
        assert_eq!(version_of(stays.try_next().unwrap()), Some(1));
    }
}
