//! `Change`: one mutation of the state, as a value that can be written down
//! and replayed.
//!
//! Every way the state moves is one of these: a submit, an answer, a
//! cancel or an expiry (all `Resolved`), an answer by a rule, a rule
//! revoked, a session evicted to make room, outcomes and idle sessions
//! forgotten after their retention, a sign-in or a spent capability
//! (`Credential`). A change carries every time and id it needs, so applying the
//! same changes in the same order always gives the same state.

use crate::core::action::Action;
use crate::core::credentials::CredentialChange;
use crate::core::kind::Kind;
use crate::core::prompt::{Answer, LEGACY_AGENT, Outcome, Prompt};
use crate::core::record;
use crate::core::rules::Scope;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// Shared: the ahead state (`hub/batch.rs`) and the shown one, the
    /// record and the queue hold one copy of the payload.
    Submitted(Arc<Prompt>),
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
        /// Who answered, by name (a human credential's), for the history
        /// and the receipt; `None` when no one did or the change predates
        /// names.
        by: Option<String>,
    },
    /// A prompt answered by a rule without ever being queued: the command
    /// it asked for (its one-line summary, for the audit log), its whole
    /// action (for the history and the receipt's digest) and the rule
    /// that covered it.
    AutoAnswered {
        session_id: String,
        kind: Kind,
        id: String,
        command: String,
        /// Boxed: a change is moved about whole.
        action: Box<Action>,
        answer: Answer,
        rule_id: String,
        at: f64,
        /// The credential that submitted it (`Prompt::agent`).
        agent: String,
    },
    /// The human took a rule back.
    RuleRevoked { rule_id: String, at: f64 },
    /// An idle session forgotten to make room for a new one.
    SessionEvicted { session_id: String },
    /// Outcomes past retention and idle sessions unchanged for as long.
    Pruned {
        outcomes: Vec<String>,
        sessions: Vec<String>,
    },
    /// The human paused an agent (its prompts wait unseen and
    /// unannounced) or let it go on.
    Paused {
        agent: String,
        paused: bool,
        at: f64,
    },
    /// The server started again after a stop: versions jump ahead by
    /// `skip`, past any that may have been shown but never made durable, so
    /// a watcher's id from before can never name a different change.
    Restarted { skip: u64 },
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
                by,
            } => {
                let mut body = json!({
                    "session_id": session_id, "kind": kind.as_str(), "id": id,
                    "outcome": outcome.to_json(), "at": at,
                    "grant": grant.as_ref().map(Scope::to_json),
                });
                if let Some(by) = by {
                    body["by"] = json!(by);
                }
                json!({ "resolved": body })
            }
            Change::AutoAnswered {
                session_id,
                kind,
                id,
                command,
                action,
                answer,
                rule_id,
                at,
                agent,
            } => {
                let mut body = json!({
                    "session_id": session_id, "kind": kind.as_str(), "id": id,
                    "command": command, "action": action.to_json(), "rule_id": rule_id, "at": at,
                    "agent_name": agent,
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
            Change::Paused { agent, paused, at } => {
                json!({"paused": {"agent": agent, "paused": paused, "at": at}})
            }
            Change::Restarted { skip } => json!({"restarted": {"skip": skip}}),
            Change::Credential(change) => record::credential(change),
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
            "submitted" => Change::Submitted(Arc::new(Prompt::from_json(body)?)),
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
                by: match &body["by"] {
                    Value::Null => None,
                    by => Some(by.as_str()?.to_string()),
                },
            },
            "auto_answered" => Change::AutoAnswered {
                session_id: text("session_id")?,
                kind: kind()?,
                id: text("id")?,
                command: text("command")?,
                // Older records kept only the command (or an action's summary).
                action: Box::new(match body.get("action") {
                    Some(action) => Action::from_json(action)?,
                    None => Action::Command {
                        command: text("command")?,
                        cwd: None,
                    },
                }),
                answer: Answer::read_back(kind()?, body, "answer")?,
                rule_id: text("rule_id")?,
                at: body["at"].as_f64()?,
                agent: text("agent_name").unwrap_or_else(|| LEGACY_AGENT.to_string()),
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
            "paused" => Change::Paused {
                agent: text("agent")?,
                paused: body["paused"].as_bool()?,
                at: body["at"].as_f64()?,
            },
            "restarted" => Change::Restarted {
                skip: body["skip"].as_u64()?,
            },
            tag => Change::Credential(record::credential_from(tag, body)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::prompt::Choice;
    use crate::core::rules::Scope;

    #[test]
    fn an_auto_answer_keeps_its_action_and_older_records_read_back() {
        let edit =
            json!({"type": "edit", "path": "/src/a.rs", "edits": [{"old": "1", "new": "2"}]});
        let auto = Change::AutoAnswered {
            session_id: "s".into(),
            kind: Kind::Approval,
            id: "a1".into(),
            command: "edit /src/a.rs (1 edit, +1 -1)".into(),
            action: Box::new(Action::from_json(&edit).unwrap()),
            answer: Answer::choice(Choice::Always),
            rule_id: "a0".into(),
            at: 1.0,
            agent: "build-bot".into(),
        };
        assert_eq!(auto.to_json()["auto_answered"]["action"], edit);
        assert_eq!(Change::from_json(&auto.to_json()).as_ref(), Some(&auto));
        let older = json!({"auto_answered": {"session_id": "s", "kind": "approval", "id": "a1",
            "command": "ls", "rule_id": "a0", "at": 1.0, "answer": "session"}});
        let Some(Change::AutoAnswered { action, .. }) = Change::from_json(&older) else {
            panic!("an older record reads back");
        };
        let command = Action::Command {
            command: "ls".into(),
            cwd: None,
        };
        assert_eq!(*action, command);
        let grant = Change::Resolved {
            session_id: "s".into(),
            kind: Kind::Approval,
            id: "a2".into(),
            outcome: Outcome::Answered(Answer::choice(Choice::Session)),
            at: 2.0,
            grant: Some(Scope::Directory {
                directory: "/src/".into(),
                action_type: "write",
            }),
            by: Some("anna".into()),
        };
        assert_eq!(Change::from_json(&grant.to_json()), Some(grant));
    }
}
