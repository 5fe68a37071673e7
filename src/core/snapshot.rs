//! A snapshot: the whole state as one JSON value, for a journal to compact
//! its history into, and back.
//!
//! What can be derived (each queue's head JSON, the set of pending ids,
//! where each rule lives) is not written; it is rebuilt on reading, so a
//! snapshot read back is equal to the state it was made from. Rules are
//! written whole (`Rule::to_json`, as `GET /api/rules` shows them), the
//! `always` ones at the top and each session's inside it.

use crate::core::kind::Kind;
use crate::core::prompt::{Outcome, Payload, Prompt};
use crate::core::queue::Queue;
use crate::core::receipt;
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
    value.as_array()?.iter().map(Rule::from_json).collect()
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
    json!({
        "id": id,
        "kind": record.kind.as_str(),
        "session_id": record.session_id,
        "asked": record.asked,
        "auto": record.auto,
        "outcome": record.outcome.to_json(),
        "at": record.at,
        "version": record.version,
        "action": record.action,
        "rule": record.rule,
    })
}

fn record_from(value: &Value) -> Option<(String, Record)> {
    let kind = Kind::parse(value["kind"].as_str()?)?;
    let asked = value["asked"].as_str().unwrap_or_default();
    // Snapshots written before receipts kept no digest: an approval's is
    // its command's; a clarify's choices are gone, so its question alone.
    let action = match kind {
        Kind::Approval => receipt::command_action(asked),
        Kind::Clarify => receipt::action_of(&Payload::Clarify {
            question: asked.to_string(),
            choices: Vec::new(),
        }),
    };
    let record = Record {
        kind,
        session_id: value["session_id"].as_str()?.to_string(),
        // Snapshots written before the history kept neither.
        asked: asked.to_string(),
        auto: value["auto"].as_bool().unwrap_or_default(),
        outcome: Outcome::from_json(kind, &value["outcome"])?,
        at: value["at"].as_f64()?,
        version: value["version"].as_u64()?,
        action: match value["action"].as_str() {
            Some(action) => action.to_string(),
            None => receipt::action_digest(&action),
        },
        rule: value["rule"].as_str().map(str::to_string),
    };
    Some((value["id"].as_str()?.to_string(), record))
}
