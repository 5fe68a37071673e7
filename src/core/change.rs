//! `Change`: one mutation of the state, as a value that can be written down
//! and replayed.
//!
//! Every way the state moves is one of these: a submit, an answer, a
//! cancel or an expiry (all `Resolved`), an answer by a rule, a rule
//! revoked, a session evicted to make room, outcomes and idle sessions
//! forgotten after their retention, a sign-in or a spent capability
//! (`Credential`). A change carries every time and id it needs, so applying the
//! same changes in the same order always gives the same state.

use crate::core::credentials::CredentialChange;
use crate::core::kind::Kind;
use crate::core::prompt::{Answer, Outcome, Prompt};
use crate::core::rules::Scope;
use serde_json::{Value, json};

#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Submitted(Prompt),
    /// A pending prompt left its queue: answered, expired or cancelled. An
    /// answer that grants a rule carries the scope the human chose; the rule
    /// is named by the prompt's id and takes its time, session and command
    /// from this change and the prompt (`State::rule_granted_by`).
    Resolved {
        session_id: String,
        kind: Kind,
        id: String,
        outcome: Outcome,
        at: f64,
        grant: Option<Scope>,
    },
    /// A prompt answered by a rule without ever being queued: the command
    /// it asked for (for the audit log) and the rule that covered it.
    AutoAnswered {
        session_id: String,
        kind: Kind,
        id: String,
        command: String,
        answer: Answer,
        rule_id: String,
        at: f64,
    },
    /// The human took a rule back.
    RuleRevoked {
        rule_id: String,
        at: f64,
    },
    /// An idle session forgotten to make room for a new one.
    SessionEvicted {
        session_id: String,
    },
    /// Outcomes past retention and idle sessions unchanged for as long.
    Pruned {
        outcomes: Vec<String>,
        sessions: Vec<String>,
    },
    /// The server started again after a stop: versions jump ahead by
    /// `skip`, past any that may have been shown but never made durable, so
    /// a watcher's id from before can never name a different change.
    Restarted {
        skip: u64,
    },
    /// A page signed in or out, a capability spent, or some of those
    /// expired (`core/credentials.rs`).
    Credential(CredentialChange),
}

impl Change {
    /// How far applying this change moves the global version.
    pub fn versions_used(&self) -> u64 {
        match self {
            Change::Restarted { skip } => (*skip).max(1),
            _ => 1,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Change::Submitted(prompt) => json!({"submitted": prompt.to_json()}),
            Change::Resolved {
                session_id,
                kind,
                id,
                outcome,
                at,
                grant,
            } => json!({"resolved": {
                "session_id": session_id, "kind": kind.as_str(), "id": id,
                "outcome": outcome.to_json(), "at": at,
                "grant": grant.as_ref().map(Scope::to_json),
            }}),
            Change::AutoAnswered {
                session_id,
                kind,
                id,
                command,
                answer,
                rule_id,
                at,
            } => {
                let mut body = json!({
                    "session_id": session_id, "kind": kind.as_str(), "id": id,
                    "command": command, "rule_id": rule_id, "at": at,
                });
                let fields = body.as_object_mut().expect("a change is an object");
                answer.insert_into(fields, "answer");
                json!({ "auto_answered": body })
            }
            Change::RuleRevoked { rule_id, at } => {
                json!({"rule_revoked": {"rule_id": rule_id, "at": at}})
            }
            Change::SessionEvicted { session_id } => {
                json!({"session_evicted": {"session_id": session_id}})
            }
            Change::Pruned { outcomes, sessions } => {
                json!({"pruned": {"outcomes": outcomes, "sessions": sessions}})
            }
            Change::Restarted { skip } => json!({"restarted": {"skip": skip}}),
            Change::Credential(change) => change.to_json(),
        }
    }

    pub fn from_json(value: &Value) -> Option<Change> {
        let (tag, body) = value.as_object()?.iter().next()?;
        let text = |field: &str| body[field].as_str().map(str::to_string);
        let kind = || Kind::parse(body["kind"].as_str()?);
        let list = |field: &str| -> Option<Vec<String>> {
            let items = body[field].as_array()?.iter();
            items
                .map(|item| item.as_str().map(str::to_string))
                .collect()
        };
        Some(match tag.as_str() {
            "submitted" => Change::Submitted(Prompt::from_json(body)?),
            "resolved" => Change::Resolved {
                session_id: text("session_id")?,
                kind: kind()?,
                id: text("id")?,
                outcome: Outcome::from_json(kind()?, &body["outcome"])?,
                at: body["at"].as_f64()?,
                grant: match &body["grant"] {
                    Value::Null => None,
                    grant => Some(Scope::from_json(grant)?),
                },
            },
            "auto_answered" => Change::AutoAnswered {
                session_id: text("session_id")?,
                kind: kind()?,
                id: text("id")?,
                command: text("command")?,
                answer: Answer::read_back(kind()?, body, "answer")?,
                rule_id: text("rule_id")?,
                at: body["at"].as_f64()?,
            },
            "rule_revoked" => Change::RuleRevoked {
                rule_id: text("rule_id")?,
                at: body["at"].as_f64()?,
            },
            "session_evicted" => Change::SessionEvicted {
                session_id: text("session_id")?,
            },
            "pruned" => Change::Pruned {
                outcomes: list("outcomes")?,
                sessions: list("sessions")?,
            },
            "restarted" => Change::Restarted {
                skip: body["skip"].as_u64()?,
            },
            tag => Change::Credential(CredentialChange::from_json(tag, body)?),
        })
    }
}
