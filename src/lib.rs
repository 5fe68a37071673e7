//! askgate: a small synchronous server through which agents ask a human to
//! clarify or approve, and the human answers from a browser in real time.
//!
//! The binary is a thin wrapper; everything lives here so that tests can
//! start a real server on port 0. The folders are the layers, and they
//! point one way: `core` (pure state) ← `hub` (the lock around it) ←
//! `serve` (HTTP and streams); `cli` talks to a server over HTTP only. See
//! ARCHITECTURE.md for the codemap.

pub mod backup;
pub mod cgroup;
pub mod cli;
pub mod config;
pub mod core;
pub mod error;
pub mod hooks;
pub mod hub;
pub mod logger;
pub mod notify;
pub mod private_file;
pub mod public_url;
pub mod receipt_key;
pub mod serve;
pub mod server_key;
pub mod store;
pub mod system_ca;

pub use config::Config;
pub use serve::server::Server;
