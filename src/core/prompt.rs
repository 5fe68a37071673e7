//! Prompts: what an agent asks, what a human answers, and what became of it.
//!
//! A `Prompt` is one entry of a queue; everything kind-specific lives in its
//! `Payload` and its `Answer`. This module knows JSON (the entry shapes of
//! docs/PROTOCOL.md §1) but nothing of HTTP, locks or clocks: times are
//! Unix seconds handed in by the caller.

use crate::core::kind::Kind;
use serde_json::{Value, json};

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
        /// The agent's own labels for the command: shown as hints, never
        /// used to decide what a rule matches.
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

    /// Bytes of text it holds, for the memory budget.
    pub fn text_bytes(&self) -> usize {
        let list = |items: &[String]| items.iter().map(String::len).sum::<usize>();
        match self {
            Payload::Clarify { question, choices } => question.len() + list(choices),
            Payload::Approval {
                command,
                description,
                pattern_keys,
            } => command.len() + description.len() + list(pattern_keys),
        }
    }

    /// What is asked: the clarify's question or the approval's command.
    pub fn asked(&self) -> &str {
        match self {
            Payload::Clarify { question, .. } => question,
            Payload::Approval { command, .. } => command,
        }
    }

    /// The command an approval asks to run; none for a clarify.
    pub fn command(&self) -> Option<&str> {
        match self {
            Payload::Approval { command, .. } => Some(command),
            Payload::Clarify { .. } => None,
        }
    }

    /// The kind-specific fields of the entry JSON.
    fn fields(&self) -> Value {
        match self {
            Payload::Clarify { question, choices } => json!({
                "question": question,
                "choices_offered": choices,
            }),
            Payload::Approval {
                command,
                description,
                pattern_keys,
            } => json!({
                "command": command,
                "description": description,
                "pattern_key": pattern_keys.first().cloned().unwrap_or_default(),
                "pattern_keys": pattern_keys,
            }),
        }
    }

    fn from_fields(kind: Kind, entry: &Value) -> Option<Payload> {
        let text = |field: &str| entry[field].as_str().map(str::to_string);
        let list = |field: &str| -> Option<Vec<String>> {
            let items = entry[field].as_array()?;
            items
                .iter()
                .map(|item| item.as_str().map(str::to_string))
                .collect()
        };
        Some(match kind {
            Kind::Clarify => Payload::Clarify {
                question: text("question")?,
                choices: list("choices_offered")?,
            },
            Kind::Approval => Payload::Approval {
                command: text("command")?,
                description: text("description")?,
                pattern_keys: list("pattern_keys")?,
            },
        })
    }
}

/// One pending prompt: an entry of a (session, kind) queue.
#[derive(Clone, Debug, PartialEq)]
pub struct Prompt {
    pub id: String,
    pub session_id: String,
    /// Unix seconds, to the millisecond.
    pub requested_at: f64,
    /// As submitted; `<= 0` means the prompt never expires.
    pub timeout_seconds: i64,
    /// Unix seconds; 0 when the prompt never expires.
    pub expires_at: f64,
    pub payload: Payload,
    /// The agent asked for it to reach the human even in quiet hours
    /// (`"urgency": "high"`, docs/PROTOCOL.md §5); the human's
    /// configuration decides whether it does.
    pub urgent: bool,
}

impl Prompt {
    pub fn new(
        id: String,
        session_id: String,
        now: f64,
        timeout_seconds: i64,
        payload: Payload,
    ) -> Prompt {
        let requested_at = round_ms(now);
        let expires_at = match timeout_seconds > 0 {
            true => round_ms(requested_at + timeout_seconds as f64),
            false => 0.0,
        };
        Prompt {
            id,
            session_id,
            requested_at,
            timeout_seconds,
            expires_at,
            payload,
            urgent: false,
        }
    }

    /// The same prompt, marked urgent or not.
    pub fn with_urgent(self, urgent: bool) -> Prompt {
        Prompt { urgent, ..self }
    }

    pub fn kind(&self) -> Kind {
        self.payload.kind()
    }

    /// What keeping it costs, roughly: its text (twice: the entry and the
    /// head JSON made from it) and a fixed overhead.
    pub fn stored_bytes(&self) -> usize {
        const OVERHEAD: usize = 256;
        2 * (self.payload.text_bytes() + self.id.len() + self.session_id.len()) + OVERHEAD
    }

    pub fn expires(&self) -> bool {
        self.expires_at > 0.0
    }

    pub fn is_expired(&self, now: f64) -> bool {
        self.expires() && self.expires_at <= now
    }

    /// The entry as browsers see it (docs/PROTOCOL.md §1); also how a
    /// journal stores it, since it holds every field.
    pub fn to_json(&self) -> Value {
        let kind = self.kind();
        let mut entry = json!({
            kind.id_field(): self.id,
            "session_id": self.session_id,
            "kind": kind.as_str(),
        });
        let fields = entry.as_object_mut().expect("entry is an object");
        if let Value::Object(specific) = self.payload.fields() {
            fields.extend(specific);
        }
        fields.insert("requested_at".into(), json!(self.requested_at));
        fields.insert("timeout_seconds".into(), json!(self.timeout_seconds));
        fields.insert("expires_at".into(), json!(self.expires_at));
        if self.urgent {
            fields.insert("urgency".into(), json!("high"));
        }
        entry
    }

    /// The inverse of `to_json`.
    pub fn from_json(entry: &Value) -> Option<Prompt> {
        let kind = Kind::parse(entry["kind"].as_str()?)?;
        Some(Prompt {
            id: entry[kind.id_field()].as_str()?.to_string(),
            session_id: entry["session_id"].as_str()?.to_string(),
            requested_at: entry["requested_at"].as_f64()?,
            timeout_seconds: entry["timeout_seconds"].as_i64()?,
            expires_at: entry["expires_at"].as_f64()?,
            payload: Payload::from_fields(kind, entry)?,
            urgent: entry["urgency"] == "high",
        })
    }
}

/// An approval choice (docs/PROTOCOL.md §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Choice {
    Once,
    Session,
    Always,
    Deny,
}

impl Choice {
    pub const ALL: [Choice; 4] = [Choice::Once, Choice::Session, Choice::Always, Choice::Deny];

    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Once => "once",
            Choice::Session => "session",
            Choice::Always => "always",
            Choice::Deny => "deny",
        }
    }

    pub fn parse(name: &str) -> Option<Choice> {
        Choice::ALL
            .into_iter()
            .find(|choice| choice.as_str() == name)
    }

    pub fn approves(self) -> bool {
        match self {
            Choice::Once | Choice::Session | Choice::Always => true,
            Choice::Deny => false,
        }
    }

    /// Whether answering with this choice grants a rule for later submits.
    pub fn grants_rule(self) -> bool {
        match self {
            Choice::Session | Choice::Always => true,
            Choice::Once | Choice::Deny => false,
        }
    }
}

/// A human's answer: the clarify's text or the approval's choice.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Text(String),
    Choice(Choice),
}

impl Answer {
    pub fn kind(&self) -> Kind {
        match self {
            Answer::Text(_) => Kind::Clarify,
            Answer::Choice(_) => Kind::Approval,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Answer::Text(text) => text,
            Answer::Choice(choice) => choice.as_str(),
        }
    }

    /// Reads an answer of this kind back from its text.
    pub fn parse(kind: Kind, text: &str) -> Option<Answer> {
        match kind {
            Kind::Clarify => Some(Answer::Text(text.to_string())),
            Kind::Approval => Choice::parse(text).map(Answer::Choice),
        }
    }
}

/// What became of a prompt.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Answered(Answer),
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

    pub fn to_json(&self) -> Value {
        match self {
            Outcome::Answered(answer) => json!({"status": "answered", "answer": answer.as_str()}),
            other => json!({"status": other.status()}),
        }
    }

    pub fn from_json(kind: Kind, value: &Value) -> Option<Outcome> {
        match value["status"].as_str()? {
            "answered" => Answer::parse(kind, value["answer"].as_str()?).map(Outcome::Answered),
            "expired" => Some(Outcome::Expired),
            "cancelled" => Some(Outcome::Cancelled),
            _ => None,
        }
    }
}

pub fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_round_trip_through_their_json() {
        let clarify = Payload::Clarify {
            question: "Pick?".into(),
            choices: vec!["a".into()],
        };
        let approval = Payload::Approval {
            command: "rm -rf /tmp/a".into(),
            description: "delete".into(),
            pattern_keys: vec!["rm".into()],
        };
        for (payload, timeout) in [(clarify, 120), (approval, 0)] {
            let prompt = Prompt::new("0a".into(), "s".into(), 1795477118.6891, timeout, payload);
            assert_eq!(Prompt::from_json(&prompt.to_json()), Some(prompt));
        }
        for outcome in [
            Outcome::Answered(Answer::Choice(Choice::Always)),
            Outcome::Expired,
            Outcome::Cancelled,
        ] {
            assert_eq!(
                Outcome::from_json(Kind::Approval, &outcome.to_json()),
                Some(outcome)
            );
        }
    }
}
