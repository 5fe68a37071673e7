//! The crash test's model: what the server acknowledged (prompts with their
//! payloads and outcomes, queue order, rules) and what is in doubt because
//! the server died before it replied. Only acknowledged facts are checked;
//! what is in doubt is settled after the restart, whole or not at all.

use super::id_field;
use super::load::Op;
use crate::support::Reply;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

/// A (session, kind) queue.
pub type Queue = (String, &'static str);

#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Pending,
    Answered(String),
    Cancelled,
}

impl Status {
    /// As `wait` says it.
    pub fn said(&self, kind: &str) -> Value {
        match self {
            Status::Pending => json!({"status": "pending"}),
            Status::Cancelled => json!({"status": "cancelled"}),
            Status::Answered(answer) => {
                json!({"status": "answered", answer_field(kind): answer})
            }
        }
    }
}

pub fn answer_field(kind: &str) -> &'static str {
    match kind {
        "clarify" => "response",
        _ => "choice",
    }
}

/// A prompt whose submit was acknowledged (or found whole after a restart).
#[derive(Clone, Debug)]
pub struct Prompt {
    pub queue: Queue,
    /// The submit's body as sent.
    pub body: Value,
    /// The wall clock before the submit was sent and after its reply came:
    /// `requested_at` lies between.
    pub sent: (f64, f64),
    /// The entry as the server first showed it; exactly that from then on.
    pub entry: Option<Value>,
    pub status: Status,
}

impl Prompt {
    /// What is wrong with `entry` as this prompt's queue entry, if anything.
    pub fn mismatch(&self, id: &str, entry: &Value) -> Option<String> {
        if let Some(seen) = &self.entry {
            return (seen != entry).then(|| format!("{id} was {seen}, is now {entry}"));
        }
        let (session_id, kind) = &self.queue;
        let mut expected = vec![
            (id_field(kind), json!(id)),
            ("session_id".into(), json!(session_id)),
            ("kind".into(), json!(kind)),
        ];
        expected.extend(payload_fields(kind, &self.body));
        let wrong: Vec<&String> = expected
            .iter()
            .filter(|(field, value)| entry[field] != *value)
            .map(|(field, _)| field)
            .collect();
        if !wrong.is_empty() {
            return Some(format!(
                "{id}: {wrong:?} differ: sent {}, shown {entry}",
                self.body
            ));
        }
        self.deadline_mismatch(id, entry)
    }

    pub fn deadline_mismatch(&self, id: &str, entry: &Value) -> Option<String> {
        let requested_at = entry["requested_at"].as_f64().unwrap_or(f64::NAN);
        let timeout = entry["timeout_seconds"].as_i64().unwrap_or(0);
        // A prompt that never expires shows no deadline (null).
        let expires_at = match timeout > 0 {
            true => requested_at + timeout as f64,
            false => f64::NAN,
        };
        let (sent, answered) = self.sent;
        let in_time = (sent - 0.01..=answered + 0.01).contains(&requested_at);
        let deadline = match entry["expires_at"].as_f64() {
            Some(shown) => (shown - expires_at).abs() <= 0.002,
            None => entry["expires_at"].is_null() && expires_at.is_nan(),
        };
        (!in_time || !deadline).then(|| {
            format!("{id}: requested between {sent} and {answered}, with timeout {timeout}, shown {entry}")
        })
    }
}

/// The fields of an entry that follow from its submit's body.
pub fn payload_fields(kind: &str, body: &Value) -> Vec<(String, Value)> {
    let or = |field: &str, default: Value| {
        let value = body.get(field).cloned().unwrap_or(default);
        (field.to_string(), value)
    };
    let mut fields = match kind {
        "clarify" => vec![
            or("question", json!(null)),
            (
                "choices_offered".into(),
                body.get("choices").cloned().unwrap_or(json!([])),
            ),
        ],
        _ => {
            let keys = body.get("pattern_keys").cloned().unwrap_or(json!([]));
            let first = keys.get(0).cloned().unwrap_or(json!(""));
            vec![
                or("command", json!(null)),
                or("description", json!("")),
                ("pattern_keys".into(), keys),
                ("pattern_key".into(), first),
            ]
        }
    };
    // The default for both kinds (docs/PROTOCOL.md §5).
    fields.push(or("timeout_seconds", json!(900)));
    fields
}

/// A rule a human granted: the exact command, in one session or everywhere.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub command: String,
    /// `None` for "always".
    pub session_id: Option<String>,
}

impl Rule {
    /// The rule an approval's answer grants: none for "once" or "deny".
    pub fn granted(choice: &str, submitted: &Value, session_id: &str) -> Option<Rule> {
        let command = submitted["command"].as_str()?.to_string();
        match choice {
            "session" => Some(Rule {
                command,
                session_id: Some(session_id.to_string()),
            }),
            "always" => Some(Rule {
                command,
                session_id: None,
            }),
            _ => None,
        }
    }

    pub fn choice(&self) -> &'static str {
        match self.session_id {
            Some(_) => "session",
            None => "always",
        }
    }
}

/// An operation whose reply never came: it may or may not have happened.
#[derive(Clone, Debug)]
pub enum InDoubt {
    Submit {
        queue: Queue,
        body: Value,
        sent: (f64, f64),
    },
    Resolve {
        id: String,
        status: Status,
        rule: Option<Rule>,
    },
}

/// What the server acknowledged, and what is in doubt.
#[derive(Default)]
pub struct Model {
    pub prompts: HashMap<String, Prompt>,
    /// Pending ids, oldest first.
    pub queues: BTreeMap<Queue, Vec<String>>,
    pub rules: Vec<Rule>,
    pub in_doubt: Vec<InDoubt>,
    pub acknowledged: u64,
    /// Operations in doubt that turned out to have happened, and not.
    pub happened: (u64, u64),
    /// Requests that got no whole reply from a server that was not killed
    /// (a loaded machine): in doubt all the same.
    pub cut_off: u64,
    pub failures: Vec<String>,
}

impl Model {
    pub fn acknowledge(&mut self, op: Op, sent: (f64, f64), reply: Reply) {
        let body = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        let understood = match &op {
            Op::Look => reply.status == 200,
            Op::Submit { .. } => self.submitted(&op, sent, reply.status, &body),
            Op::Covered { .. } => self.covered(&op, sent, reply.status, &body),
            Op::Cancel { .. } => self.cancelled(&op, reply.status, &body),
            Op::Respond { .. } => self.responded(&op, reply.status, &body),
            Op::Wait { .. } => self.told(&op, reply.status, &body),
        };
        if !understood {
            let failure = format!("{op:?} was answered {} {body}", reply.status);
            self.failures.push(failure);
        }
        if !matches!(op, Op::Look | Op::Wait { .. }) {
            self.acknowledged += 1;
        }
    }

    pub fn submitted(&mut self, op: &Op, sent: (f64, f64), status: u16, reply: &Value) -> bool {
        let Op::Submit { queue, body } = op else {
            return false;
        };
        let id = reply[id_field(queue.1)].as_str();
        let queued = reply["deduped"] != true && reply["auto"].is_null();
        let (200, Some(id), true) = (status, id, queued) else {
            return false;
        };
        let prompt = Prompt {
            queue: queue.clone(),
            body: body.clone(),
            sent,
            entry: None,
            status: Status::Pending,
        };
        self.prompts.insert(id.to_string(), prompt);
        self.queues
            .entry(queue.clone())
            .or_default()
            .push(id.into());
        true
    }

    pub fn covered(&mut self, op: &Op, sent: (f64, f64), status: u16, reply: &Value) -> bool {
        let Op::Covered { rule, body } = op else {
            return false;
        };
        let auto = reply["auto"] == true && reply["choice"] == rule.choice();
        let (200, true, Some(id)) = (status, auto, reply["approval_id"].as_str()) else {
            return false;
        };
        let prompt = Prompt {
            queue: (body["session_id"].as_str().unwrap().into(), "approval"),
            body: body.clone(),
            sent,
            entry: None,
            status: Status::Answered(rule.choice().into()),
        };
        self.prompts.insert(id.to_string(), prompt);
        true
    }

    pub fn cancelled(&mut self, op: &Op, status: u16, reply: &Value) -> bool {
        let Op::Cancel { id, .. } = op else {
            return false;
        };
        match status {
            200 if *reply == json!({"ok": true, "cancelled": [id]}) => {
                self.resolve(id, Status::Cancelled, None);
                true
            }
            409 => reply["stale"] == true,
            _ => false,
        }
    }

    pub fn responded(&mut self, op: &Op, status: u16, reply: &Value) -> bool {
        let Op::Respond {
            queue,
            id,
            status: answered,
            rule,
            ..
        } = op
        else {
            return false;
        };
        let Status::Answered(answer) = answered else {
            return false;
        };
        let field = answer_field(queue.1);
        match status {
            200 if *reply == json!({"ok": true, field: answer}) => {
                self.resolve(id, answered.clone(), rule.clone());
                true
            }
            // Someone else got there first; a stale approval is a 200.
            200 => [
                json!({"ok": false, field: answer}),
                json!({"ok": true, field: answer, "stale_cleared": true}),
            ]
            .contains(reply),
            409 => queue.1 == "clarify" && reply["stale"] == true,
            _ => false,
        }
    }

    /// What an agent's wait was told is as good as acknowledged: waiting
    /// agents are told only outcomes that are durable.
    pub fn told(&mut self, op: &Op, status: u16, reply: &Value) -> bool {
        let Op::Wait { queue, id } = op else {
            return false;
        };
        let told = match reply["status"].as_str() {
            Some("pending") => return status == 200,
            Some("cancelled") => Status::Cancelled,
            Some("answered") => match reply[answer_field(queue.1)].as_str() {
                Some(answer) => Status::Answered(answer.into()),
                None => return false,
            },
            _ => return false,
        };
        let prompt = &self.prompts[id];
        if prompt.status != Status::Pending {
            return status == 200 && prompt.status == told;
        }
        let rule = match (&told, queue.1) {
            (Status::Answered(choice), "approval") => Rule::granted(choice, &prompt.body, &queue.0),
            _ => None,
        };
        self.resolve(id, told, rule);
        status == 200
    }

    pub fn resolve(&mut self, id: &str, status: Status, rule: Option<Rule>) {
        let prompt = self.prompts.get_mut(id).expect("a known prompt");
        prompt.status = status;
        if let Some(queue) = self.queues.get_mut(&prompt.queue) {
            queue.retain(|pending| pending != id);
        }
        if let Some(rule) = rule.filter(|rule| !self.rules.contains(rule)) {
            self.rules.push(rule);
        }
    }

    /// Every pending prompt, with its queue.
    pub fn pending(&self) -> Vec<(Queue, String)> {
        let each = |(queue, ids): (&Queue, &Vec<String>)| {
            ids.iter()
                .map(|id| (queue.clone(), id.clone()))
                .collect::<Vec<_>>()
        };
        self.queues.iter().flat_map(each).collect()
    }
}
