//! Notifications: on a new prompt, a message to ntfy or a webhook (or both)
//! for the phone in the human's pocket, with buttons that answer it
//! (docs/PROTOCOL.md §8).
//!
//! Invariants: the hub hands a new prompt over once it is durable and its
//! lock is released, with a `try_send` to each sink's bounded queue; a full
//! queue drops the notification and counts it, so a slow or dead sink
//! never slows a submit nor grows memory. Each sink has one named thread
//! that sends one notification at a time with a timeout, and retries only
//! when the sink certainly did not take it: a prompt makes at most one
//! notification per sink.

pub mod capability;
pub mod message;
pub mod sink;

use crate::core::prompt::Prompt;
use capability::Capabilities;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use message::Links;
use sink::{Delivery, Sink};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Notifications waiting for each sink at most; more are dropped and counted.
pub const QUEUE: usize = 64;

/// Where and when to notify, from the `--notify-*` flags.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub ntfy: Option<sink::Ntfy>,
    pub webhook: Option<sink::Webhook>,
    /// Also while a page watches the prompt's queue (`--notify-when always`).
    pub always: bool,
    /// Buttons that answer (`--notify-no-actions` turns them off).
    pub actions: bool,
    /// For each attempt to deliver one notification.
    pub timeout: Duration,
}

impl Settings {
    pub fn any(&self) -> bool {
        self.ntfy.is_some() || self.webhook.is_some()
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
/// prompts not notified because a page watched.
#[derive(Debug, Default, PartialEq)]
pub struct Counts {
    pub sinks: Vec<(&'static str, [u64; 3])>,
    pub watched: u64,
}

struct Queue {
    name: &'static str,
    sender: Sender<Arc<Prompt>>,
    counts: Arc<SinkCounts>,
}

pub struct Notifier {
    queues: Vec<Queue>,
    always: bool,
    watched: AtomicU64,
    /// Dropped to stop the sinks' threads, which select on it.
    stop: Mutex<Option<Sender<()>>>,
}

/// Starts a thread by name (the server counts and names its threads).
pub type Spawn<'a> = &'a dyn Fn(&str, Box<dyn FnOnce() + Send>) -> io::Result<()>;

impl Notifier {
    /// One thread per configured sink; buttons point at `links`.
    pub fn start(
        settings: &Settings,
        links: Links,
        capabilities: Arc<Capabilities>,
        spawn: Spawn<'_>,
    ) -> io::Result<Notifier> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let sinks = [
            settings.ntfy.clone().map(Sink::Ntfy),
            settings.webhook.clone().map(Sink::Webhook),
        ];
        let mut queues = Vec::new();
        for sink in sinks.into_iter().flatten() {
            let (sender, queue) = crossbeam_channel::bounded(QUEUE);
            let counts = Arc::new(SinkCounts::default());
            let name = sink.name();
            let delivery = Delivery::new(
                sink,
                links.clone(),
                settings.actions.then(|| capabilities.clone()),
                counts.clone(),
                settings.timeout,
            );
            let stopped = stopped.clone();
            spawn(
                &format!("askgate-notify-{name}"),
                Box::new(move || run(&delivery, &queue, &stopped)),
            )?;
            queues.push(Queue {
                name,
                sender,
                counts,
            });
        }
        Ok(Notifier {
            queues,
            always: settings.always,
            watched: AtomicU64::new(0),
            stop: Mutex::new(Some(stop)),
        })
    }

    /// A prompt was queued (and is durable); `watched` when a page was
    /// watching its queue at that moment. Never blocks.
    pub fn submitted(&self, prompt: &Prompt, watched: bool) {
        if watched && !self.always {
            self.watched.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let prompt = Arc::new(prompt.clone());
        for queue in &self.queues {
            match queue.sender.try_send(prompt.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    queue.counts.dropped.fetch_add(1, Ordering::Relaxed);
                    log::warn!(
                        "notification of {} dropped: {} is behind ({QUEUE} waiting)",
                        prompt.id,
                        queue.name
                    );
                }
            }
        }
    }

    /// Ends the sinks' threads: what waits is not sent, a retry is not made.
    pub fn stop(&self) {
        self.stop.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// The sinks, by name: `ntfy`, `webhook`.
    pub fn sink_names(&self) -> Vec<&'static str> {
        self.queues.iter().map(|queue| queue.name).collect()
    }

    pub fn counts(&self) -> Counts {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Counts {
            sinks: self
                .queues
                .iter()
                .map(|queue| {
                    let counts = &queue.counts;
                    let numbers = [&counts.sent, &counts.failed, &counts.dropped].map(load);
                    (queue.name, numbers)
                })
                .collect(),
            watched: load(&self.watched),
        }
    }
}

/// A sink's thread: one notification at a time until stopped.
fn run(delivery: &Delivery, queue: &Receiver<Arc<Prompt>>, stopped: &Receiver<()>) {
    loop {
        crossbeam_channel::select! {
            recv(queue) -> prompt => match prompt {
                Ok(prompt) => delivery.deliver(&prompt, stopped),
                Err(_) => return,
            },
            recv(stopped) -> _ => return,
        }
    }
}
