//! Prompts: the two kinds an agent can ask, and how each is shown on the wire.
//!
//! A `Prompt` is one entry of a queue. Everything kind-specific lives in its
//! `Payload`; queues, subscribers and streams treat both kinds alike. This
//! module knows JSON (the entry shapes of SPEC §1) but nothing of HTTP.

use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The two kinds of prompt. Each (session, kind) has its own queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Clarify,
    Approval,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Clarify, Kind::Approval];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Clarify => "clarify",
            Kind::Approval => "approval",
        }
    }

    /// 0 for clarify, 1 for approval: for per-kind arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The JSON field that names an entry's id: `clarify_id` or `approval_id`.
    pub fn id_field(self) -> &'static str {
        match self {
            Kind::Clarify => "clarify_id",
            Kind::Approval => "approval_id",
        }
    }

    /// How many lowercase hex characters an id of this kind has.
    pub fn id_len(self) -> usize {
        match self {
            Kind::Clarify => 12,
            Kind::Approval => 32,
        }
    }
}

/// What the agent asks, kind by kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    Clarify {
        question: String,
        choices: Vec<String>,
    },
    Approval {
        command: String,
        description: String,
        pattern_keys: Vec<String>,
    },
}

impl Payload {
    pub fn kind(&self) -> Kind {
        match self {
            Payload::Clarify { .. } => Kind::Clarify,
            Payload::Approval { .. } => Kind::Approval,
        }
    }

    /// The pattern keys an approval carries; none for a clarify.
    pub fn pattern_keys(&self) -> &[String] {
        match self {
            Payload::Approval { pattern_keys, .. } => pattern_keys,
            Payload::Clarify { .. } => &[],
        }
    }
}

/// One pending prompt: an entry of a (session, kind) queue.
#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    pub id: String,
    pub session_id: String,
    pub requested_at: f64,
    /// As submitted; `<= 0` means the prompt never expires.
    pub timeout_seconds: i64,
    /// Unix seconds; 0 when the prompt never expires. For display: expiry
    /// itself follows `deadline`, which a wall-clock step cannot move.
    pub expires_at: f64,
    pub deadline: Option<Instant>,
    pub payload: Payload,
}

impl Prompt {
    pub fn new(id: String, session_id: String, timeout_seconds: i64, payload: Payload) -> Prompt {
        let requested_at = unix_now();
        let expires_at = if timeout_seconds > 0 {
            requested_at + timeout_seconds as f64
        } else {
            0.0
        };
        let deadline = (timeout_seconds > 0)
            .then(|| Instant::now() + Duration::from_secs(timeout_seconds as u64));
        Prompt {
            id,
            session_id,
            requested_at,
            timeout_seconds,
            expires_at,
            deadline,
            payload,
        }
    }

    pub fn kind(&self) -> Kind {
        self.payload.kind()
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|deadline| deadline <= now)
    }

    /// The entry as browsers see it (SPEC §1).
    pub fn to_json(&self) -> Value {
        let mut entry = match &self.payload {
            Payload::Clarify { question, choices } => json!({
                "clarify_id": self.id,
                "session_id": self.session_id,
                "kind": "clarify",
                "question": question,
                "choices_offered": choices,
            }),
            Payload::Approval {
                command,
                description,
                pattern_keys,
            } => json!({
                "approval_id": self.id,
                "session_id": self.session_id,
                "kind": "approval",
                "command": command,
                "description": description,
                "pattern_key": pattern_keys.first().cloned().unwrap_or_default(),
                "pattern_keys": pattern_keys,
            }),
        };
        let fields = entry.as_object_mut().expect("entry is an object");
        fields.insert("requested_at".into(), json!(round_ms(self.requested_at)));
        fields.insert("timeout_seconds".into(), json!(self.timeout_seconds));
        fields.insert("expires_at".into(), json!(round_ms(self.expires_at)));
        entry
    }
}

/// What became of a prompt.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The clarify response or the approval choice.
    Answered(String),
    Expired,
    Cancelled,
}

impl Outcome {
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Answered(_) => "answered",
            Outcome::Expired => "expired",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// Wall-clock Unix seconds, the unit of `requested_at` and `expires_at`.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs_f64())
        .unwrap_or(0.0)
}

fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}
