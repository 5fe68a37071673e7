//! The history of one session: its kept outcomes, newest first, as the
//! page shows them under the cards (docs/PROTOCOL.md §3.5): each names the
//! agent credential that asked and, when a human answered, who did.
//!
//! It reads what `State` keeps for waiting agents (each outcome with what
//! was asked, until retention or the outcome budget forgets it); it keeps
//! nothing of its own. A history is bounded by `MAX_HISTORY` entries.

use crate::core::prompt::Outcome;
use crate::core::state::{Record, State};
use serde_json::{Value, json};

/// The most entries one history request returns.
pub const MAX_HISTORY: usize = 50;

impl State {
    /// The session's kept outcomes, newest first, at most `limit` (and
    /// never more than `MAX_HISTORY`).
    pub fn history(&self, session_id: &str, limit: usize) -> Vec<Value> {
        let newest_first = self.outcome_order.iter().rev();
        let records = newest_first.filter_map(|id| Some((id, self.outcomes.get(id)?)));
        records
            .filter(|(_, record)| record.session_id == session_id)
            .take(limit.min(MAX_HISTORY))
            .map(|(id, record)| entry_json(id, record))
            .collect()
    }
}

/// One entry: the prompt's id, what it asked, what became of it and when.
fn entry_json(id: &str, record: &Record) -> Value {
    let kind = record.kind;
    let mut entry = json!({
        "kind": kind.as_str(),
        kind.id_field(): id,
        "session_id": record.session_id,
        kind.asked_field(): record.asked,
        "status": record.outcome.status(),
        "auto": record.auto,
        "at": record.at,
    });
    if let Some(action) = &record.action {
        entry["action"] = action.to_json();
    }
    if let Outcome::Answered(answer) = &record.outcome {
        let fields = entry.as_object_mut().expect("an entry is an object");
        answer.insert_into(fields, kind.answer_field());
    }
    entry["agent_name"] = json!(record.agent);
    if let Some(by) = &record.by {
        entry["by"] = json!(by);
    }
    entry
}

#[cfg(test)]
mod tests {
    use crate::core::change::Change;
    use crate::core::kind::Kind;
    use crate::core::prompt::{Answer, Choice, Outcome, Payload, Prompt};
    use crate::core::state::State;
    use serde_json::json;

    fn ask(state: &mut State, id: &str, session_id: &str, payload: Payload) {
        let prompt = Prompt::new(id.into(), session_id.into(), 100.0, 60, payload);
        state.apply(&Change::Submitted(prompt.into()));
    }

    fn resolve(state: &mut State, id: &str, kind: Kind, outcome: Outcome, at: f64) {
        state.apply(&Change::Resolved {
            session_id: "s".into(),
            kind,
            id: id.into(),
            outcome,
            at,
            grant: None,
            by: None,
        });
    }

    #[test]
    fn a_history_is_the_sessions_outcomes_newest_first_with_what_was_asked() {
        let mut state = State::default();
        let question = Payload::question("Pick?".into(), vec![]);
        let action = crate::core::action::Action::Command {
            command: "rm -rf /tmp/a".into(),
            cwd: None,
        };
        let context = crate::core::prompt::Context::default();
        let command = Payload::approval(action, "delete".into(), vec![], context);
        ask(&mut state, "c1", "s", question.clone());
        ask(&mut state, "a1", "s", command);
        ask(&mut state, "c2", "s", question.clone());
        ask(&mut state, "o1", "other", question);
        resolve(
            &mut state,
            "c1",
            Kind::Clarify,
            Outcome::Answered(Answer::Text("yes".into())),
            101.0,
        );
        resolve(
            &mut state,
            "a1",
            Kind::Approval,
            Outcome::Answered(Answer::choice(Choice::Deny)),
            102.0,
        );
        resolve(&mut state, "c2", Kind::Clarify, Outcome::Expired, 103.0);
        state.apply(&Change::Resolved {
            session_id: "other".into(),
            kind: Kind::Clarify,
            id: "o1".into(),
            outcome: Outcome::Cancelled,
            at: 104.0,
            grant: None,
            by: None,
        });
        state.apply(&Change::AutoAnswered {
            session_id: "s".into(),
            kind: Kind::Approval,
            id: "a2".into(),
            command: "ls".into(),
            action: Box::new(crate::core::action::Action::Command {
                command: "ls".into(),
                cwd: None,
            }),
            answer: Answer::choice(Choice::Session),
            rule_id: "a0".into(),
            at: 105.0,
            agent: "agent".into(),
        });
        assert_eq!(
            state.history("s", 10),
            [
                json!({"kind": "approval", "approval_id": "a2", "session_id": "s", "command": "ls",
                       "status": "answered", "choice": "session", "auto": true, "at": 105.0, "agent_name": "agent"}),
                json!({"kind": "clarify", "clarify_id": "c2", "session_id": "s", "question": "Pick?",
                       "status": "expired", "auto": false, "at": 103.0, "agent_name": "agent"}),
                json!({"kind": "approval", "approval_id": "a1", "session_id": "s", "command": "rm -rf /tmp/a",
                       "status": "answered", "choice": "deny", "auto": false, "at": 102.0, "agent_name": "agent"}),
                json!({"kind": "clarify", "clarify_id": "c1", "session_id": "s", "question": "Pick?",
                       "status": "answered", "response": "yes", "auto": false, "at": 101.0, "agent_name": "agent"}),
            ]
        );
        assert_eq!(state.history("s", 2).len(), 2);
        assert_eq!(state.history("s", 1000).len(), 4);
        assert!(state.history("nobody", 10).is_empty());
        let restored = State::from_snapshot(&state.to_snapshot()).unwrap();
        assert_eq!(restored.history("s", 10), state.history("s", 10));
    }
}
