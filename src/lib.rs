//! askgate: a small synchronous server through which agents ask a human to
//! clarify or approve, and the human answers from a browser in real time.
//!
//! The binary is a thin wrapper; everything lives here so that tests can
//! start a real server on port 0. See ARCHITECTURE.md for the codemap.

pub mod client;
pub mod config;
pub mod error;
pub mod http;
pub mod hub;
pub mod ids;
pub mod metrics;
pub mod prompt;
pub mod queue;
pub mod routes;
pub mod server;
pub mod sse;
pub mod static_files;
pub mod store;
pub mod stream;
pub mod subscriber;
pub mod validate;

pub use config::Config;
pub use server::Server;
