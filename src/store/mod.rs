//! Where state is kept durably: a journal of opaque records, each tagged with
//! its version, and the snapshot it follows, in one data directory.
//!
//! The store knows nothing of prompts: the state machine above it turns its
//! changes into bytes and back. Files in the directory: `lock`, `snapshot`,
//! `journal`, and `*.tmp` while a compaction is under way.

pub mod journal;

mod disk;
mod format;
mod handoff;
mod recover;
#[cfg(test)]
mod tests;
mod writer;
