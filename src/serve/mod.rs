//! Serving: the transport. Binds the socket, turns HTTP into `Request`
//! values, routes them, and writes `Reply` values back, including the SSE
//! streams and parked long-polls and waits.
//!
//! Layers point one way: `http` holds plain values and knows nothing else;
//! `origin` decides whose requests the API takes (Host, Origin, https);
//! `routes` turns requests into replies through the hub; only `server`,
//! `stream` and `early` touch sockets.

pub mod act;
pub mod admission;
pub mod auth;
pub mod credentials;
pub mod early;
pub mod hook_route;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod origin;
pub mod routes;
pub mod server;
pub mod signals;
pub mod signin;
pub mod sse;
pub mod static_files;
pub mod stream;
pub mod triage;
