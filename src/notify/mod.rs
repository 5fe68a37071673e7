//! Notifications: on a new prompt, a message to ntfy or a webhook (or both)
//! for the phone in the human's pocket, with buttons that answer it, and
//! the message cleared once the prompt is resolved (docs/PROTOCOL.md §8).
//!
//! Invariants: the hub hands over new and resolved prompts once durable
//! and its lock is released; `Desk` decides when the phone rings
//! (presence, quiet hours, escalation) and each sink's `Outbox` holds what
//! it has yet to send, per session and bounded in bytes, so a slow or dead
//! sink never slows a submit nor grows memory without bound, and a burst
//! from one agent is summarized rather than dropped. Each sink has one
//! named thread that sends one job at a time with a timeout, and retries
//! only when the sink certainly did not take it. One more thread
//! (`askgate-notify`) wakes for the desk's timers: a grace that ends,
//! an escalation, the end of quiet hours.

pub mod capability;
pub mod desk;
pub mod message;
pub mod outbox;
pub mod quiet;
pub mod sink;

use crate::core::kind::Kind;
use crate::core::prompt::Prompt;
use capability::Capabilities;
use crossbeam_channel::{Receiver, Sender};
use desk::{Decision, Desk, Timing};
use message::Links;
use outbox::{Job, Outbox, Pushed};
use sink::{Delivery, Sink};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Where and when to notify, from the `--notify-*` flags.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub ntfy: Option<sink::Ntfy>,
    pub webhook: Option<sink::Webhook>,
    /// A second ntfy topic that only escalations go to
    /// (`--notify-escalate-ntfy`).
    pub escalate_ntfy: Option<sink::Ntfy>,
    pub timing: Timing,
    /// Buttons that answer (`--notify-no-actions` turns them off).
    pub actions: bool,
    /// For each attempt to deliver one notification.
    pub timeout: Duration,
}

impl Settings {
    pub fn any(&self) -> bool {
        self.ntfy.is_some() || self.webhook.is_some()
    }

    /// The configured sinks, the escalation topic last.
    pub fn sinks(&self) -> Vec<Sink> {
        let sinks = [
            self.ntfy.clone().map(Sink::Ntfy),
            self.webhook.clone().map(Sink::Webhook),
            self.escalate_ntfy.clone().map(Sink::Escalation),
        ];
        sinks.into_iter().flatten().collect()
    }
}

/// Counters of one sink, for `/metrics`.
#[derive(Debug, Default)]
pub struct SinkCounts {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
}

/// Plain numbers for `/metrics`: per sink (sent, failed, dropped), and the
/// prompts not notified at once because a page was visible.
#[derive(Debug, Default, PartialEq)]
pub struct Counts {
    pub sinks: Vec<(&'static str, [u64; 3])>,
    pub watched: u64,
    /// Prompts held for quiet hours.
    pub held: u64,
}

struct Handle {
    name: &'static str,
    outbox: Arc<Outbox>,
    counts: Arc<SinkCounts>,
    /// Only escalations go to it.
    escalation_only: bool,
}

pub struct Notifier {
    sinks: Vec<Handle>,
    desk: Mutex<Desk>,
    /// Wakes the timer thread when the desk's next due time may be earlier.
    tick: Condvar,
    watched: AtomicU64,
    held: AtomicU64,
    /// Dropped to stop the sinks' retries, which wait on it.
    stop: Mutex<Option<Sender<()>>>,
    stopped: std::sync::atomic::AtomicBool,
}

/// Starts a thread by name (the server counts and names its threads).
pub type Spawn<'a> = &'a dyn Fn(&str, Box<dyn FnOnce() + Send>) -> io::Result<()>;

impl Notifier {
    /// One thread per configured sink and one for the timers; buttons
    /// point at `links`.
    pub fn start(
        settings: &Settings,
        links: Links,
        capabilities: Arc<Capabilities>,
        spawn: Spawn<'_>,
    ) -> io::Result<Arc<Notifier>> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let mut sinks = Vec::new();
        for sink in settings.sinks() {
            let outbox = Arc::new(Outbox::default());
            let counts = Arc::new(SinkCounts::default());
            let name = sink.name();
            let escalation_only = matches!(sink, Sink::Escalation(_));
            let delivery = Delivery::new(
                sink,
                links.clone(),
                settings.actions.then(|| capabilities.clone()),
                settings.timeout,
            );
            let (thread_outbox, thread_counts, stopped) =
                (outbox.clone(), counts.clone(), stopped.clone());
            spawn(
                &format!("askgate-notify-{name}"),
                Box::new(move || run(&delivery, &thread_outbox, &thread_counts, &stopped)),
            )?;
            sinks.push(Handle {
                name,
                outbox,
                counts,
                escalation_only,
            });
        }
        let notifier = Arc::new(Notifier {
            sinks,
            desk: Mutex::new(Desk::new(settings.timing.clone())),
            tick: Condvar::new(),
            watched: AtomicU64::new(0),
            held: AtomicU64::new(0),
            stop: Mutex::new(Some(stop)),
            stopped: Default::default(),
        });
        let timers = notifier.clone();
        spawn("askgate-notify", Box::new(move || timers.run_timers()))?;
        Ok(notifier)
    }

    fn desk(&self) -> std::sync::MutexGuard<'_, Desk> {
        self.desk.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A prompt was queued (and is durable). Never blocks for longer than
    /// the notifier's short locks.
    pub fn submitted(&self, prompt: &Prompt) {
        let prompt = Arc::new(prompt.clone());
        let decision =
            self.desk()
                .submitted(prompt.clone(), Instant::now(), quiet::local_time_of_day());
        match decision {
            Decision::Notify => self.send(&prompt, false),
            Decision::Present => {
                self.watched.fetch_add(1, Ordering::Relaxed);
            }
            Decision::Held => {
                self.held.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.tick.notify_all();
    }

    /// A prompt left its queue (answered anywhere, expired, cancelled):
    /// nothing more is sent for it, and what was sent is cleared.
    pub fn resolved(&self, session_id: &str, kind: Kind, id: &str, status: &'static str) {
        self.desk().resolved(id);
        for sink in &self.sinks {
            sink.outbox.resolve(session_id, kind, id, status);
        }
    }

    /// A page of the human says whether it is visible (`POST /api/presence`).
    pub fn presence(&self, page: &str, visible: bool) {
        self.desk().presence(page, visible, Instant::now());
        self.tick.notify_all();
    }

    fn send(&self, prompt: &Arc<Prompt>, escalated: bool) {
        for sink in &self.sinks {
            if sink.escalation_only && !escalated {
                continue;
            }
            match sink.outbox.push(prompt, escalated) {
                Pushed::Queued => {}
                Pushed::Bare => log::info!(
                    "{} is behind: the notification of {} will be a summary",
                    sink.name,
                    prompt.id
                ),
                Pushed::Dropped => {
                    sink.counts.dropped.fetch_add(1, Ordering::Relaxed);
                    log::warn!(
                        "notification of {} dropped: {} is far behind",
                        prompt.id,
                        sink.name
                    );
                }
            }
        }
    }

    /// The timer thread: sends what the desk says is due, then sleeps
    /// until its next due time or a change.
    fn run_timers(&self) {
        let mut desk = self.desk();
        loop {
            if self.stopped.load(Ordering::Relaxed) {
                return;
            }
            let now = Instant::now();
            let due = desk.due(now, quiet::local_time_of_day());
            drop(desk);
            for send in due {
                match send {
                    desk::Send::Prompt { prompt, escalated } => self.send(&prompt, escalated),
                    desk::Send::Held {
                        approvals,
                        questions,
                    } => {
                        for sink in self.sinks.iter().filter(|s| !s.escalation_only) {
                            sink.outbox.push_urgent(Job::Held {
                                approvals,
                                questions,
                            });
                        }
                    }
                }
            }
            desk = self.desk();
            let next = desk.next_due(Instant::now());
            let wait = next.map_or(Duration::from_secs(3600), |at| {
                at.saturating_duration_since(Instant::now())
            });
            desk = match self.tick.wait_timeout(desk, wait) {
                Ok((desk, _)) => desk,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Ends the threads: what waits is not sent, a retry is not made.
    pub fn stop(&self) {
        self.stop.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.stopped.store(true, Ordering::Relaxed);
        for sink in &self.sinks {
            sink.outbox.stop();
        }
        let _desk = self.desk();
        self.tick.notify_all();
    }

    /// The sinks, by name: `ntfy`, `webhook`, `ntfy-escalation`.
    pub fn sink_names(&self) -> Vec<&'static str> {
        self.sinks.iter().map(|sink| sink.name).collect()
    }

    pub fn counts(&self) -> Counts {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Counts {
            sinks: self
                .sinks
                .iter()
                .map(|sink| {
                    let counts = &sink.counts;
                    let numbers = [&counts.sent, &counts.failed, &counts.dropped].map(load);
                    (sink.name, numbers)
                })
                .collect(),
            watched: load(&self.watched),
            held: load(&self.held),
        }
    }
}

/// A sink's thread: one job at a time until stopped.
fn run(delivery: &Delivery, outbox: &Outbox, counts: &SinkCounts, stopped: &Receiver<()>) {
    while let Some(job) = outbox.take() {
        match delivery.deliver(&job, stopped) {
            Ok(sink::Delivered::Sent) => {
                counts.sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(sink::Delivered::Nothing) => {}
            Err(sink::Failure::Stopped) => return,
            Err(sink::Failure::Failed(why)) => {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                log::warn!("notifying {} failed: {why}", delivery.name());
            }
        }
    }
}

/// `askgate notify test`: one test notification to each configured sink,
/// now, and what each said (`Ok` when it took it).
pub fn send_test(settings: &Settings, links: &Links) -> Vec<(&'static str, Result<(), String>)> {
    let (_keep, never) = crossbeam_channel::bounded::<()>(0);
    settings
        .sinks()
        .into_iter()
        .map(|sink| {
            let delivery = Delivery::new(sink, links.clone(), None, settings.timeout);
            let result = match delivery.deliver(&Job::Test, &never) {
                Ok(_) => Ok(()),
                Err(sink::Failure::Failed(why)) => Err(why),
                Err(sink::Failure::Stopped) => Err("stopped".into()),
            };
            (delivery.name(), result)
        })
        .collect()
}
