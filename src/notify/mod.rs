//! Notifications: what askgate sends a human's phone about a new prompt,
//! and the capabilities its buttons answer with (docs/PROTOCOL.md §3.4).

pub mod capability;
