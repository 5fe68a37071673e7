//! askgate's integration tests, one binary: each module starts real servers
//! on port 0 and talks to them over loopback as a browser or agent would.

mod action_rules;
mod actions;
mod agent;
mod audit;
mod auth;
mod auth_default;
mod backup;
mod binary;
mod browser_api;
mod cgroup;
mod cli_http;
mod durability;
mod durable_auth;
mod events;
mod history;
mod hooks;
mod hostile;
mod input;
mod lifecycle;
mod mcp;
mod names;
mod notify;
mod queue_rules;
mod receipts;
mod redis;
mod revoked;
mod server;
mod streams;
mod support;
mod tidy;
mod triage;
mod upgrade;
mod wrapper;
