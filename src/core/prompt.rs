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

    /// Bytes its text takes as JSON strings, escaping included.
    pub fn json_bytes(&self) -> usize {
        let list = |items: &[String]| items.iter().map(|item| json_len(item)).sum::<usize>();
        match self {
            Payload::Clarify { question, choices } => json_len(question) + list(choices),
            Payload::Approval {
                command,
                description,
                pattern_keys,
            } => {
                // `pattern_key` repeats the first of `pattern_keys`.
                let first = pattern_keys.first().map_or(0, |key| json_len(key));
                json_len(command) + json_len(description) + list(pattern_keys) + first
            }
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
        }
    }

    pub fn kind(&self) -> Kind {
        self.payload.kind()
    }

    /// What keeping it costs: its text as held, its text as JSON (the head
    /// JSON made from it, a journal record, a snapshot line), escaping
    /// included (a control byte is six), and a fixed overhead for the
    /// entry, its allocations, its id in the set of pending ids and the
    /// JSON's field names (ARCHITECTURE.md, "Memory, worst case").
    pub fn stored_bytes(&self) -> usize {
        const OVERHEAD: usize = 512;
        let text = self.payload.text_bytes() + self.id.len() + self.session_id.len();
        let json = self.payload.json_bytes() + json_len(&self.id) + json_len(&self.session_id);
        text + json + OVERHEAD
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
        })
    }
}

/// The bytes `text` takes as a JSON string, quotes and escapes included, as
/// serde_json writes it: `\"`, `\\` and `\n`-style escapes are two bytes,
/// other control bytes six (`\u0001`).
pub fn json_len(text: &str) -> usize {
    let escaped = |byte: &u8| match byte {
        b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
        0..=0x1f => 6,
        _ => 1,
    };
    2 + text.as_bytes().iter().map(escaped).sum::<usize>()
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

    #[test]
    fn json_len_is_what_serde_json_writes_and_a_control_byte_costs_six() {
        let texts = [
            "",
            "plain",
            "\u{1}\u{2}\u{1f}",
            "\"\\\n\r\t\u{8}\u{c}",
            "é ✓ \u{7f} \u{202e}",
        ];
        for text in texts {
            let written = serde_json::to_string(text).unwrap().len();
            assert_eq!(json_len(text), written, "{text:?}");
        }
        let control = "\u{1}".repeat(1000);
        let prompt = Prompt::new(
            "c".repeat(12),
            "s".into(),
            0.0,
            60,
            Payload::Clarify {
                question: control,
                choices: Vec::new(),
            },
        );
        let head = prompt.to_json().to_string().len();
        assert!(head > 6000, "the head JSON escapes each byte to six");
        assert!(
            prompt.stored_bytes() > 1000 + head,
            "a prompt counts its text held and as JSON, escapes included"
        );
    }
}
