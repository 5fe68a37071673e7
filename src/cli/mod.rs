//! The command line besides `serve`: the agent-side commands that ask
//! through a running server and say the outcome by exit code.

pub mod api;
pub mod client;
pub mod mcp;
pub mod receipt;
pub mod tools;
pub mod wrap;
