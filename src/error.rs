//! The one error type of the server, and its mapping to HTTP in one place.
//!
//! Messages are lowercase without a trailing period. Every error reaches the
//! client as JSON `{"error": ...}`; a stale respond also says `"stale": true`,
//! and a 403 says in `"hint"` what its operator could change.

use serde_json::{Value, json};
use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// 400: the request is malformed or a field is invalid.
    BadRequest(String),
    /// 401: no credential, or one that matches nothing.
    Unauthorized,
    /// 401 at sign-in: the token or code given is not right; which, and
    /// what to do.
    WrongCredential(String),
    /// 403: a foreign `Host` or `Origin`, or a credential of the wrong role;
    /// what it was and what would let it in.
    Forbidden(Refusal),
    /// 404: no such path, or no such prompt.
    NotFound(String),
    /// 405: the path exists but not with this method.
    MethodNotAllowed,
    /// 409: the prompt named is no longer pending (queue rule 8).
    Stale(String),
    /// 413: the body is over the limit.
    PayloadTooLarge,
    /// 415: a POST body that does not say it is JSON.
    UnsupportedMediaType,
    /// 429: a queue or the session table is full.
    TooMany(String),
    /// 500: a bug; the handler panicked.
    Internal,
    /// 503: every stream and long-poll place is taken; retry after this many seconds.
    Unavailable(u32),
    /// 507: the change could not be made durable (disk full or unwritable).
    InsufficientStorage(String),
    /// 503: the shared store (Redis) cannot be reached; nothing was changed.
    StoreUnavailable(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// What an error message may quote of a client's input: at most 64
/// characters, so a refusal never costs more than the request.
pub fn quoted(input: &str) -> String {
    const MAX_CHARS: usize = 64;
    match input.char_indices().nth(MAX_CHARS) {
        None => input.to_string(),
        Some((end, _)) => format!("{}…", &input[..end]),
    }
}

/// Why a request was refused with 403. `message` and `hint` go to the client;
/// `expected` only to the log, since it may name the configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// `origin not allowed: https://evil.example`.
    pub message: String,
    /// What the operator could change: a flag and its value.
    pub hint: String,
    /// What would have passed, for the log.
    pub expected: String,
}

impl Refusal {
    /// A refusal with its message and hint; nothing more for the log.
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Refusal {
        Refusal {
            message: message.into(),
            hint: hint.into(),
            expected: String::new(),
        }
    }
}

impl Error {
    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::BadRequest(message.into())
    }

    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::Unauthorized | Error::WrongCredential(_) => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::MethodNotAllowed => 405,
            Error::Stale(_) => 409,
            Error::PayloadTooLarge => 413,
            Error::UnsupportedMediaType => 415,
            Error::TooMany(_) => 429,
            Error::Internal => 500,
            Error::Unavailable(_) | Error::StoreUnavailable(_) => 503,
            Error::InsufficientStorage(_) => 507,
        }
    }

    pub fn body(&self) -> Value {
        match self {
            Error::Stale(_) => json!({"ok": false, "error": self.to_string(), "stale": true}),
            Error::Forbidden(refusal) => json!({"error": refusal.message, "hint": refusal.hint}),
            _ => json!({"error": self.to_string()}),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Forbidden(refusal) => f.write_str(&refusal.message),
            Error::BadRequest(message)
            | Error::NotFound(message)
            | Error::Stale(message)
            | Error::TooMany(message)
            | Error::WrongCredential(message)
            | Error::InsufficientStorage(message)
            | Error::StoreUnavailable(message) => f.write_str(message),
            Error::MethodNotAllowed => f.write_str("method not allowed"),
            Error::Unauthorized => f.write_str("authentication required"),
            Error::PayloadTooLarge => f.write_str("request body too large"),
            Error::UnsupportedMediaType => f.write_str("request body must be application/json"),
            Error::Internal => f.write_str("internal error"),
            Error::Unavailable(_) => f.write_str("too many open streams, try again later"),
        }
    }
}
