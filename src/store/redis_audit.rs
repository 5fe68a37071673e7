//! The shared audit stream's writer (`askgate:audit` in Redis): a thread
//! of its own with its own connection, fed through a bounded queue, adding
//! whatever waits in one script call per batch. Knows nothing of prompts.
//!
//! Invariants: a caller never waits for Redis (it queues with `try_send`;
//! a full queue drops the lines, counted and logged, since every line is
//! in its instance's `audit.log` and process log as well); lines reach the
//! stream in the order they were queued; the connection is not the
//! instance's link, so no append waits behind an audit line.

use super::redis::{AUDIT_MAX_BYTES, RedisLog};
use super::resp::Target;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};

/// Batches of lines (one per decision) that may wait for the thread.
const QUEUE: usize = 4096;

enum Message {
    Lines(Vec<String>),
    /// Answered once everything queued before it is added (or given up).
    Flush(Sender<()>),
}

/// The queue and the thread; closing (or dropping) it adds what is queued
/// and joins the thread.
pub struct AuditStream {
    sender: Mutex<Option<Sender<Message>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    dropped: AtomicU64,
}

impl AuditStream {
    pub fn start(target: Target) -> std::io::Result<AuditStream> {
        let (sender, receiver) = crossbeam_channel::bounded(QUEUE);
        let log = RedisLog::new(target);
        let thread = thread::Builder::new()
            .name("askgate-redis-audit".into())
            .spawn(move || run(&log, &receiver))?;
        Ok(AuditStream {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues lines for the stream without waiting.
    pub fn write(&self, lines: Vec<String>) {
        if lines.is_empty() {
            return;
        }
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        let Some(sender) = sender.as_ref() else {
            return;
        };
        if let Err(TrySendError::Full(Message::Lines(lines))) =
            sender.try_send(Message::Lines(lines))
        {
            let total = self
                .dropped
                .fetch_add(lines.len() as u64, Ordering::Relaxed);
            log::warn!(
                "audit lines not added to redis (its queue is full; {} dropped in all): \
                 they are in this instance's audit log",
                total + lines.len() as u64
            );
        }
    }

    /// Waits until every line queued so far was added or given up.
    pub fn flush(&self) {
        let (done, added) = crossbeam_channel::bounded(1);
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if sender.is_some_and(|sender| sender.send(Message::Flush(done)).is_ok()) {
            let _ = added.recv();
        }
    }

    /// Adds what is queued and ends the thread.
    pub fn close(&self) {
        drop(self.sender.lock().unwrap_or_else(|p| p.into_inner()).take());
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

impl Drop for AuditStream {
    fn drop(&mut self) {
        self.close();
    }
}

/// The thread: takes everything queued at once and adds it, `AUDIT_BATCH`
/// lines a call; a failure is logged and the batch given up (the lines
/// are in the instance's own audit log).
fn run(log: &RedisLog, receiver: &Receiver<Message>) {
    while let Ok(first) = receiver.recv() {
        let mut lines = Vec::new();
        let mut flushed = Vec::new();
        for message in std::iter::once(first).chain(receiver.try_iter()) {
            match message {
                Message::Lines(more) => lines.extend(more),
                Message::Flush(done) => flushed.push(done),
            }
        }
        if !lines.is_empty()
            && let Err(error) = log.link().audit(&lines, AUDIT_MAX_BYTES)
        {
            log::warn!("{} audit lines not added to redis: {error}", lines.len());
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
}
