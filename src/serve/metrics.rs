//! Counters for `/metrics` and their Prometheus text.
//!
//! The serving layer counts responses and frames here; everything else
//! comes in as plain numbers when the text is rendered.

use crate::core::kind::Kind;
use crate::hub::Counts;
use crate::store::journal::Stats;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// One metric: name, type, help, and its samples as (labels, value).
type Series<'a> = (&'a str, &'a str, &'a str, Vec<(String, u64)>);

#[derive(Default)]
pub struct Metrics {
    pub frames_sent: AtomicU64,
    /// Long-polls answered on their socket by the fan-out thread.
    pub answered_early: AtomicU64,
    /// Responses by status class: index 1 is 1xx ... index 5 is 5xx.
    responses: [AtomicU64; 6],
}

/// Open streams and parked requests, as admission counts them.
pub struct Places {
    pub streams: usize,
    pub parked: usize,
}

fn one(value: u64) -> Vec<(String, u64)> {
    vec![(String::new(), value)]
}

impl Metrics {
    /// The Prometheus text exposition of every counter.
    pub fn render(&self, counts: &Counts, places: &Places) -> String {
        let pending = counts.pending.iter();
        let pending =
            pending.map(|(kind, n)| (format!("{{kind=\"{}\"}}", Kind::as_str(kind)), *n as u64));
        let classes = (1..=5).map(|class| {
            let value = self.responses[class].load(Ordering::Relaxed);
            (format!("{{class=\"{class}xx\"}}"), value)
        });
        #[rustfmt::skip]
        let series: [Series; 11] = [
            ("askgate_streams_open", "gauge", "Open event streams.", one(places.streams as u64)),
            ("askgate_longpolls_parked", "gauge", "Parked long-polls and waits.", one(places.parked as u64)),
            ("askgate_subscribers", "gauge", "Registered subscribers.", one(counts.subscribers as u64)),
            ("askgate_sessions", "gauge", "Sessions known.", one(counts.sessions as u64)),
            ("askgate_pending_prompts", "gauge", "Pending prompts.", pending.collect()),
            ("askgate_frames_sent_total", "counter", "Stream frames written.", one(self.frames_sent.load(Ordering::Relaxed))),
            ("askgate_longpolls_answered_early_total", "counter", "Long-polls answered on their socket by the fan-out thread.", one(self.answered_early.load(Ordering::Relaxed))),
            ("askgate_resyncs_total", "counter", "Subscribers resynced after falling behind.", one(counts.resyncs)),
            ("askgate_version", "counter", "The global change version.", one(counts.version)),
            ("askgate_wait_wakeups_total", "counter", "Times a parked wait was woken (its slice ending is not counted).", one(counts.wait_wakeups)),
            ("askgate_responses_total", "counter", "Responses by status class.", classes.collect()),
        ];
        let mut text = String::new();
        for (name, kind, help, samples) in series {
            let _ = write!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
            for (labels, value) in samples {
                let _ = writeln!(text, "{name}{labels} {value}");
            }
        }
        text
    }

    pub fn count_response(&self, status: u16) {
        let class = usize::from(status / 100).min(5);
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }
}

/// The notifications' counters in the same text format.
pub fn render_notify(counts: &crate::notify::Counts) -> String {
    let mut text = String::from(
        "# HELP askgate_notifications_total Notifications by sink and outcome: sent (a notification, a summary, a clear), failed (after its retries), dropped (its outbox was full even by id).\n\
         # TYPE askgate_notifications_total counter\n",
    );
    for (sink, numbers) in &counts.sinks {
        for (outcome, value) in ["sent", "failed", "dropped"].iter().zip(numbers) {
            let _ = writeln!(
                text,
                "askgate_notifications_total{{sink=\"{sink}\",outcome=\"{outcome}\"}} {value}"
            );
        }
    }
    let _ = write!(
        text,
        "# HELP askgate_notifications_watched_total New prompts not notified at once because a page was visible (or hidden less than the grace ago).\n\
         # TYPE askgate_notifications_watched_total counter\naskgate_notifications_watched_total {}\n\
         # HELP askgate_notifications_held_total New prompts held for quiet hours.\n\
         # TYPE askgate_notifications_held_total counter\naskgate_notifications_held_total {}\n",
        counts.watched, counts.held
    );
    text
}

/// The Redis store's series (`--store redis://`).
pub fn render_store(stats: &crate::hub::replica::StoreStats) -> String {
    #[rustfmt::skip]
    let series = [
        ("askgate_store_up", "gauge", "1 when Redis answered last time, else 0.", u64::from(stats.up) as f64),
        ("askgate_store_appends_total", "counter", "Records this instance appended to the log in Redis.", stats.appends as f64),
        ("askgate_store_batches_total", "counter", "Script calls that appended them: a batch of records is one call and one fsync.", stats.batches as f64),
        ("askgate_store_ahead_made_total", "counter", "Times the state ahead of the shown one was made (a copy of the state) for a decision while records were in flight.", stats.ahead_made as f64),
        ("askgate_store_conflicts_total", "counter", "Appends refused because another instance appended first (then decided again).", stats.conflicts as f64),
        ("askgate_store_applied_total", "counter", "Records of other instances applied from the log.", stats.applied as f64),
        ("askgate_store_reloads_total", "counter", "Times the state was read again from the snapshot in Redis.", stats.reloads as f64),
    ];
    render_series(&series)
}

/// The journal's counters in the same text format.
pub fn render_journal(stats: &Stats) -> String {
    #[rustfmt::skip]
    let series = [
        ("askgate_journal_bytes", "gauge", "Bytes of journal records since the last snapshot.", stats.journal_bytes as f64),
        ("askgate_journal_snapshot_bytes", "gauge", "Bytes of the last snapshot.", stats.snapshot_bytes as f64),
        ("askgate_journal_records_total", "counter", "Records written to the journal.", stats.records_written as f64),
        ("askgate_journal_fsyncs_total", "counter", "Journal syncs to disk.", stats.fsyncs as f64),
        ("askgate_journal_fsync_seconds_total", "counter", "Time spent syncing the journal.", stats.fsync_seconds),
        ("askgate_journal_write_failures_total", "counter", "Journal writes or syncs that failed.", stats.write_failures as f64),
        ("askgate_journal_snapshots_total", "counter", "Snapshots written.", stats.snapshots_written as f64),
    ];
    render_series(&series)
}

/// Series of one unlabelled value each: (name, type, help, value).
fn render_series(series: &[(&str, &str, &str, f64)]) -> String {
    let mut text = String::new();
    for (name, kind, help, value) in series {
        let _ = write!(
            text,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    }
    text
}
