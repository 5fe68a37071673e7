//! Where state is kept durably: a journal of opaque records, each tagged with
//! its version, and the snapshot it follows, in one data directory.
//!
//! The store knows nothing of prompts: the state machine above it turns its
//! changes into bytes and back, and hands the audit file finished lines.
//! Files in the directory: `lock`, `snapshot`, `journal` (its header holds
//! the format and the high-water mark), `*.tmp` while a compaction or an
//! upgrade is under way, `audit.log` and `audit.log.1`.
//!
//! Or, with `--store redis://...`, a log shared by several instances in
//! Redis (`redis.rs`, over the small client in `resp.rs`).

pub mod audit_log;
pub mod journal;
pub mod redis;
pub mod redis_audit;
pub mod resp;
mod tls;

mod disk;
mod format;
mod handoff;
mod recover;
#[cfg(test)]
mod tests;
mod writer;
