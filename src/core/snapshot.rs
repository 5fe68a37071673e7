//! A snapshot: the whole state as one JSON value, for a journal to compact
//! its history into, and back.
//!
//! What can be derived (each queue's head JSON, the set of pending ids,
//! where each rule lives) is not written; it is rebuilt on reading, so a
//! snapshot read back is equal to the state it was made from. Rules are
//! written whole (`Rule::to_json`, as `GET /api/rules` shows them), the
//! `always` ones at the top and each session's inside it. A rule read
//! back whose scope may not be granted on its command (docs/PROTOCOL.md
//! §3.2: forged, or granted before a check that now refuses it) is
//! dropped, with an error in the log: it never answers.

use crate::core::action::Action;
use crate::core::kind::Kind;
use crate::core::prompt::{Outcome, Prompt};
use crate::core::queue::Queue;
use crate::core::rules::Rule;
use crate::core::state::{Record, Session, State};
use serde_json::{Value, json};

impl State {
    pub fn to_snapshot(&self) -> Value {
        let sessions: Vec<Value> = self
            .sessions
            .iter()
            .map(|(id, s)| session_json(id, s))
            .collect();
        let outcomes: Vec<Value> = self
            .outcome_order
            .iter()
            .filter_map(|id| Some(record_json(id, self.outcomes.get(id)?)))
            .collect();
        json!({
            "version": self.version,
            "pruned_version": self.pruned_version,
            "skipped": self.skipped,
            "always": rules_json(&self.always),
            "sessions": sessions,
            "outcomes": outcomes,
        })
    }

    pub fn from_snapshot(value: &Value) -> Option<State> {
        let mut state = State {
            version: value["version"].as_u64()?,
            pruned_version: value["pruned_version"].as_u64()?,
            always: rules(&value["always"])?,
            ..State::default()
        };
        for rule in &state.always {
            state.rule_homes.insert(rule.rule_id.clone(), None);
            state.rule_bytes += rule.stored_bytes();
        }
        for range in value["skipped"].as_array()? {
            state.skipped.push((range[0].as_u64()?, range[1].as_u64()?));
        }
        for entry in value["sessions"].as_array()? {
            let (session_id, session) = session_from(entry)?;
            for prompt in session.queues.values().flat_map(Queue::iter) {
                state.pending_ids.insert(prompt.id.clone());
                state.pending_bytes += prompt.stored_bytes();
            }
            for rule in &session.rules {
                let home = Some(session_id.clone());
                state.rule_homes.insert(rule.rule_id.clone(), home);
                state.rule_bytes += rule.stored_bytes();
            }
            state.sessions.insert(session_id, session);
        }
        for entry in value["outcomes"].as_array()? {
            let (id, record) = record_from(entry)?;
            state.outcome_bytes += record.cost(&id);
            state.outcome_order.push_back(id.clone());
            state.outcomes.insert(id, record);
        }
        Some(state)
    }
}

fn rules_json(rules: &[Rule]) -> Vec<Value> {
    rules.iter().map(Rule::to_json).collect()
}

fn rules(value: &Value) -> Option<Vec<Rule>> {
    let rules: Vec<Rule> = value
        .as_array()?
        .iter()
        .map(Rule::from_json)
        .collect::<Option<_>>()?;
    let kept = rules.into_iter().filter(|rule| {
        let Some(refusal) = rule.refusal() else {
            return true;
        };
        log::error!(
            "a rule in the snapshot was dropped, it may not be granted (damaged or forged data?): rule={} scope={} command={:?}: {refusal}",
            rule.rule_id,
            rule.scope.to_json(),
            rule.command
        );
        false
    });
    Some(kept.collect())
}

fn session_json(session_id: &str, session: &Session) -> Value {
    let mut queues = json!({});
    for (kind, queue) in session.queues.iter() {
        let entries: Vec<Value> = queue.iter().map(Prompt::to_json).collect();
        queues[kind.as_str()] = json!({"version": queue.version(), "entries": entries});
    }
    json!({
        "session_id": session_id,
        "changed_at": session.changed_at,
        "rules": rules_json(&session.rules),
        "queues": queues,
    })
}

fn session_from(value: &Value) -> Option<(String, Session)> {
    let mut session = Session::default();
    session.changed_at = value["changed_at"].as_f64()?;
    session.rules = rules(&value["rules"])?;
    for kind in Kind::ALL {
        let queue = &value["queues"][kind.as_str()];
        let entries = queue["entries"].as_array()?.iter().map(Prompt::from_json);
        let entries: Option<Vec<Prompt>> = entries.collect();
        session.queues[kind] = Queue::restore(entries?, queue["version"].as_u64()?);
        session.refresh_head(kind);
    }
    Some((value["session_id"].as_str()?.to_string(), session))
}

fn record_json(id: &str, record: &Record) -> Value {
    let mut value = json!({
        "id": id,
        "kind": record.kind.as_str(),
        "session_id": record.session_id,
        "asked": record.asked,
        "auto": record.auto,
        "outcome": record.outcome.to_json(),
        "at": record.at,
        "version": record.version,
    });
    if let Some(action) = &record.action {
        value["action"] = action.to_json();
    }
    value
}

fn record_from(value: &Value) -> Option<(String, Record)> {
    let kind = Kind::parse(value["kind"].as_str()?)?;
    let record = Record {
        kind,
        session_id: value["session_id"].as_str()?.to_string(),
        // Snapshots written before the history kept neither.
        asked: value["asked"].as_str().unwrap_or_default().to_string(),
        action: match value.get("action") {
            None => None,
            Some(action) => Some(Box::new(Action::from_json(action)?)),
        },
        auto: value["auto"].as_bool().unwrap_or_default(),
        outcome: Outcome::from_json(kind, &value["outcome"])?,
        at: value["at"].as_f64()?,
        version: value["version"].as_u64()?,
    };
    Some((value["id"].as_str()?.to_string(), record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::change::Change;
    use crate::core::prompt::{Answer, Choice, Payload};
    use crate::core::rules::Scope;

    #[test]
    fn a_rule_in_a_snapshot_that_may_not_be_granted_is_dropped() {
        let mut state = State::default();
        let command = crate::core::action::Action::Command {
            command: "git push origin".into(),
            cwd: None,
        };
        let payload = Payload::approval(command, String::new(), Vec::new(), Default::default());
        let asked = Prompt::new("a".repeat(32), "s1".into(), 1.0, 600, payload);
        state.apply(&Change::Submitted(asked));
        state.apply(&Change::Resolved {
            session_id: "s1".into(),
            kind: Kind::Approval,
            id: "a".repeat(32),
            outcome: Outcome::Answered(Answer::choice(Choice::Always)),
            at: 2.0,
            grant: Some(Scope::Prefix {
                prefix: "git push".into(),
                options: false,
            }),
        });
        let mut snapshot = state.to_snapshot();
        assert_eq!(State::from_snapshot(&snapshot), Some(state.clone()));
        let forged = [
            json!({"rule_id": "f1", "scope": {"prefix": "sudo", "options": true},
                "lifetime": "always", "session_id": null, "granted_at": 3.0, "command": "sudo reboot"}),
            json!({"rule_id": "f2", "scope": {"exact": "rm -rf ~"},
                "lifetime": "always", "session_id": null, "granted_at": 3.0, "command": "ls"}),
        ];
        snapshot["always"].as_array_mut().unwrap().extend(forged);
        let read = State::from_snapshot(&snapshot).expect("a state");
        assert_eq!(read, state, "only the rule that holds");
        assert_eq!(read.rule("f1"), None);
    }
}
