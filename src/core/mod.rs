//! The pure core: prompts and their kinds, queues, rules, and the state
//! machine that every change goes through.
//!
//! Nothing here locks, spawns, reads a clock, draws a random number or
//! touches a socket or a file; the hub wraps it in a lock, the journal
//! writes its changes down. Nothing here imports from outside `core` but
//! the error type.

pub mod action;
pub mod action_scope;
pub mod audit;
pub mod change;
pub mod credentials;
pub mod form;
pub mod history;
pub mod kind;
pub mod prompt;
pub mod queue;
pub mod receipt;
pub mod record;
pub mod record_v1;
pub mod room;
pub mod rules;
pub mod shared;
pub mod snapshot;
pub mod state;
pub mod validate;
pub mod view;

#[cfg(test)]
mod model_tests;
