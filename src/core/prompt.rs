//! Prompts: what an agent asks, what a human answers, and what became of it.
//!
//! A `Prompt` is one entry of a queue; everything kind-specific lives in its
//! `Payload` and its `Answer`. This module knows JSON (the entry shapes of
//! docs/PROTOCOL.md §1) but nothing of HTTP, locks or clocks: times are
//! Unix seconds handed in by the caller.

use crate::core::action::Action;
use crate::core::kind::Kind;
use serde_json::{Map, Value, json};

/// What the agent asks, kind by kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    Clarify {
        question: String,
        choices: Vec<String>,
        /// The human may pick several of the choices.
        multiple: bool,
        /// A form (docs/PROTOCOL.md §5.1), checked by `core/form.rs`.
        schema: Option<Value>,
    },
    Approval {
        /// The command, or the one-line summary of any other action: what
        /// clients that know only commands show.
        command: String,
        description: String,
        /// The agent's own labels for the command: shown as hints, never
        /// used to decide what a rule matches.
        pattern_keys: Vec<String>,
        /// What will run (docs/PROTOCOL.md §5.2).
        action: Action,
        /// Who asks (`claude-code`), where, and why: shown apart from the
        /// action, never mistakable for it.
        context: Context,
    },
}

/// What an agent says beside its action: its name, its working
/// directory and its justification.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Context {
    pub agent: Option<String>,
    pub cwd: Option<String>,
    pub reason: Option<String>,
}

impl Context {
    fn text_bytes(&self) -> usize {
        let len = |text: &Option<String>| text.as_ref().map_or(0, String::len);
        len(&self.agent) + len(&self.cwd) + len(&self.reason)
    }

    fn json_bytes(&self) -> usize {
        let len = |text: &Option<String>| text.as_ref().map_or(0, |text| json_len(text));
        len(&self.agent) + len(&self.cwd) + len(&self.reason)
    }

    fn insert_into(&self, fields: &mut Map<String, Value>) {
        for (name, value) in [
            ("agent", &self.agent),
            ("cwd", &self.cwd),
            ("reason", &self.reason),
        ] {
            if let Some(value) = value {
                fields.insert(name.into(), json!(value));
            }
        }
    }

    fn from_fields(entry: &Value) -> Context {
        let text = |field: &str| entry[field].as_str().map(str::to_string);
        Context {
            agent: text("agent"),
            cwd: text("cwd"),
            reason: text("reason"),
        }
    }
}

impl Payload {
    /// An approval of `action`; its `command` is the action's summary.
    pub fn approval(
        action: Action,
        description: String,
        pattern_keys: Vec<String>,
        context: Context,
    ) -> Payload {
        Payload::Approval {
            command: action.summary(),
            description,
            pattern_keys,
            action,
            context,
        }
    }

    /// A clarify with free text or one of its choices for an answer.
    pub fn question(question: String, choices: Vec<String>) -> Payload {
        Payload::Clarify {
            question,
            choices,
            multiple: false,
            schema: None,
        }
    }

    /// The action an approval asks for; none for a clarify.
    pub fn action(&self) -> Option<&Action> {
        match self {
            Payload::Approval { action, .. } => Some(action),
            Payload::Clarify { .. } => None,
        }
    }

    /// The working directory the agent said it asks from: what a relative
    /// path in its action is under (a directory rule, docs/PROTOCOL.md §3.2).
    pub fn cwd(&self) -> Option<&str> {
        match self {
            Payload::Approval { context, .. } => context.cwd.as_deref(),
            Payload::Clarify { .. } => None,
        }
    }
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
            Payload::Clarify {
                question,
                choices,
                schema,
                ..
            } => {
                question.len() + list(choices) + schema.as_ref().map_or(0, |s| s.to_string().len())
            }
            Payload::Approval {
                command,
                description,
                pattern_keys,
                action,
                context,
            } => {
                let action = match action {
                    Action::Command { .. } => 0,
                    other => other.text_bytes(),
                };
                command.len()
                    + description.len()
                    + list(pattern_keys)
                    + action
                    + context.text_bytes()
            }
        }
    }

    /// Bytes its text takes as JSON strings, escaping included.
    pub fn json_bytes(&self) -> usize {
        let list = |items: &[String]| items.iter().map(|item| json_len(item)).sum::<usize>();
        match self {
            Payload::Clarify {
                question,
                choices,
                schema,
                ..
            } => {
                let schema = schema.as_ref().map_or(0, |s| s.to_string().len());
                json_len(question) + list(choices) + schema
            }
            Payload::Approval {
                command,
                description,
                pattern_keys,
                action,
                context,
            } => {
                // `pattern_key` repeats the first of `pattern_keys`; the
                // action is written whole beside its one-line `command`.
                let first = pattern_keys.first().map_or(0, |key| json_len(key));
                let action = action.to_json().to_string().len();
                json_len(command)
                    + json_len(description)
                    + list(pattern_keys)
                    + first
                    + action
                    + context.json_bytes()
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
            Payload::Clarify {
                question,
                choices,
                multiple,
                schema,
            } => {
                let mut fields = json!({
                    "question": question,
                    "choices_offered": choices,
                });
                if *multiple {
                    fields["multiple"] = json!(true);
                }
                if let Some(schema) = schema {
                    fields["schema"] = schema.clone();
                }
                fields
            }
            Payload::Approval {
                command,
                description,
                pattern_keys,
                action,
                context,
            } => {
                let mut fields = json!({
                    "command": command,
                    "description": description,
                    "pattern_key": pattern_keys.first().cloned().unwrap_or_default(),
                    "pattern_keys": pattern_keys,
                    "action": action.to_json(),
                });
                context.insert_into(fields.as_object_mut().expect("fields are an object"));
                fields
            }
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
                multiple: entry["multiple"].as_bool().unwrap_or_default(),
                schema: entry.get("schema").filter(|s| s.is_object()).cloned(),
            },
            // Entries written before actions are command actions.
            Kind::Approval => Payload::Approval {
                command: text("command")?,
                description: text("description")?,
                pattern_keys: list("pattern_keys")?,
                action: match entry.get("action") {
                    Some(action) => Action::from_json(action)?,
                    None => Action::Command {
                        command: text("command")?,
                        cwd: None,
                    },
                },
                context: Context::from_fields(entry),
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
    /// The credential that submitted it (docs/PROTOCOL.md §7): only it may
    /// wait on or cancel it. A prompt journaled before credentials had
    /// names reads back as `"agent"`.
    pub agent: String,
}

/// The credential name of the legacy agent token, and of every prompt
/// journaled before credentials had names.
pub const LEGACY_AGENT: &str = "agent";
/// The human of the legacy human token and its page.
pub const LEGACY_HUMAN: &str = "human";

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
            agent: LEGACY_AGENT.to_string(),
        }
    }

    /// The same prompt, submitted by the credential `agent`.
    pub fn with_agent(self, agent: &str) -> Prompt {
        Prompt {
            agent: agent.to_string(),
            ..self
        }
    }

    /// The name of the credential that submitted it: the agent's name the
    /// page, the audit and receipts show (docs/PROTOCOL.md §7).
    pub fn agent_name(&self) -> &str {
        &self.agent
    }

    /// The same prompt, marked urgent or not.
    pub fn with_urgent(self, urgent: bool) -> Prompt {
        Prompt { urgent, ..self }
    }

    pub fn kind(&self) -> Kind {
        self.payload.kind()
    }

    /// What keeping it costs: its text as held, its text as JSON (the head
    /// JSON made from it, a journal record, a snapshot line), escaping
    /// included (a control byte is six), and a fixed overhead for the
    /// entry, its allocations, its id in the set of pending ids and the
    /// JSON's field names (docs/deploy.md, "Memory, worst case").
    pub fn stored_bytes(&self) -> usize {
        const OVERHEAD: usize = 512;
        let text = self.payload.text_bytes() + self.id.len() + self.session_id.len();
        let text = text + self.agent.len();
        let json = self.payload.json_bytes() + json_len(&self.id) + json_len(&self.session_id);
        let json = json + json_len(&self.agent);
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
        // A prompt that never expires has no `expires_at` (null): what
        // hermes-webui-style clients read as "no expiry" (docs/PROTOCOL.md §1).
        let expires_at = self.expires().then_some(self.expires_at);
        fields.insert("expires_at".into(), json!(expires_at));
        if self.urgent {
            fields.insert("urgency".into(), json!("high"));
        }
        fields.insert("agent_name".into(), json!(self.agent));
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
            expires_at: match &entry["expires_at"] {
                Value::Null => 0.0,
                expires_at => expires_at.as_f64()?,
            },
            payload: Payload::from_fields(kind, entry)?,
            urgent: entry["urgency"] == "high",
            agent: match &entry["agent_name"] {
                Value::Null => LEGACY_AGENT.to_string(),
                name => name.as_str()?.to_string(),
            },
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

/// An approval's answer: the choice, and what the human said with it
/// (docs/PROTOCOL.md §3.2): a deny's reason, an edited action approved
/// once instead of the one asked, a note to the agent with an approval.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub choice: Choice,
    pub reason: Option<String>,
    /// Boxed: most decisions have none.
    pub edited: Option<Box<Action>>,
    pub note: Option<String>,
}

impl Decision {
    /// The choice alone, as a rule or a notification's button answers.
    pub fn plain(choice: Choice) -> Decision {
        Decision {
            choice,
            reason: None,
            edited: None,
            note: None,
        }
    }

    /// `reason`, `edited` and `note`, those there are.
    fn extras(&self) -> Map<String, Value> {
        let mut extras = Map::new();
        if let Some(reason) = &self.reason {
            extras.insert("reason".into(), json!(reason));
        }
        if let Some(edited) = &self.edited {
            extras.insert("edited".into(), edited.to_json());
        }
        if let Some(note) = &self.note {
            extras.insert("note".into(), json!(note));
        }
        extras
    }

    fn text_bytes(&self) -> usize {
        let len = |text: &Option<String>| text.as_ref().map_or(0, String::len);
        let edited = self.edited.as_ref().map_or(0, |edited| edited.text_bytes());
        self.choice.as_str().len() + len(&self.reason) + len(&self.note) + edited
    }
}

/// A human's answer: a clarify's text, its picks of several choices or its
/// form, or an approval's decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Text(String),
    /// Several of the choices offered (`"multiple": true`).
    Picks(Vec<String>),
    /// A form's fields (`schema`), checked against it.
    Form(Map<String, Value>),
    Decision(Decision),
}

impl Answer {
    /// The answer of a choice alone.
    pub fn choice(choice: Choice) -> Answer {
        Answer::Decision(Decision::plain(choice))
    }

    pub fn kind(&self) -> Kind {
        match self {
            Answer::Text(_) | Answer::Picks(_) | Answer::Form(_) => Kind::Clarify,
            Answer::Decision(_) => Kind::Approval,
        }
    }

    /// The approval's choice; none for a clarify.
    pub fn decision(&self) -> Option<&Decision> {
        match self {
            Answer::Decision(decision) => Some(decision),
            Answer::Text(_) | Answer::Picks(_) | Answer::Form(_) => None,
        }
    }

    /// The value of the answer's field (`response` or `choice`): a string,
    /// a list of picks or a form's object.
    pub fn value(&self) -> Value {
        match self {
            Answer::Text(text) => json!(text),
            Answer::Picks(picks) => json!(picks),
            Answer::Form(form) => Value::Object(form.clone()),
            Answer::Decision(decision) => json!(decision.choice.as_str()),
        }
    }

    /// The answer in one line of text: the text or choice, or the JSON of
    /// picks and forms (for the audit log and the history).
    pub fn summary(&self) -> String {
        match self {
            Answer::Text(text) => text.clone(),
            Answer::Decision(decision) => decision.choice.as_str().to_string(),
            Answer::Picks(_) | Answer::Form(_) => self.value().to_string(),
        }
    }

    /// Every field of the answer beside its value: a decision's `reason`,
    /// `edited` and `note`.
    pub fn extras(&self) -> Map<String, Value> {
        match self {
            Answer::Decision(decision) => decision.extras(),
            Answer::Text(_) | Answer::Picks(_) | Answer::Form(_) => Map::new(),
        }
    }

    /// The answer's value and extras as fields of `object`, its value under
    /// `field`.
    pub fn insert_into(&self, object: &mut Map<String, Value>, field: &str) {
        object.insert(field.into(), self.value());
        object.extend(self.extras());
    }

    /// Bytes of text it holds, for the memory budget.
    pub fn text_bytes(&self) -> usize {
        match self {
            Answer::Text(text) => text.len(),
            Answer::Decision(decision) => decision.text_bytes(),
            Answer::Picks(_) | Answer::Form(_) => self.value().to_string().len(),
        }
    }

    /// Reads an answer of this kind back from an object holding its value
    /// under `field` and its extras (what `insert_into` wrote).
    pub fn read_back(kind: Kind, object: &Value, field: &str) -> Option<Answer> {
        let text = |name: &str| object[name].as_str().map(str::to_string);
        match (kind, &object[field]) {
            (Kind::Clarify, Value::String(text)) => Some(Answer::Text(text.clone())),
            (Kind::Clarify, Value::Array(picks)) => {
                let picks = picks.iter().map(|p| p.as_str().map(str::to_string));
                Some(Answer::Picks(picks.collect::<Option<Vec<String>>>()?))
            }
            (Kind::Clarify, Value::Object(form)) => Some(Answer::Form(form.clone())),
            (Kind::Approval, Value::String(choice)) => Some(Answer::Decision(Decision {
                choice: Choice::parse(choice)?,
                reason: text("reason"),
                edited: match object.get("edited") {
                    None | Some(Value::Null) => None,
                    Some(edited) => Some(Box::new(Action::from_json(edited)?)),
                },
                note: text("note"),
            })),
            _ => None,
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
        let mut value = json!({"status": self.status()});
        if let Outcome::Answered(answer) = self {
            let object = value.as_object_mut().expect("an outcome is an object");
            answer.insert_into(object, "answer");
        }
        value
    }

    pub fn from_json(kind: Kind, value: &Value) -> Option<Outcome> {
        match value["status"].as_str()? {
            "answered" => Answer::read_back(kind, value, "answer").map(Outcome::Answered),
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
        let clarify = Payload::question("Pick?".into(), vec!["a".into()]);
        let form = Payload::Clarify {
            question: "Who?".into(),
            choices: vec![],
            multiple: true,
            schema: Some(json!({"type": "object", "properties": {"a": {"type": "string"}}})),
        };
        let command = Action::Command {
            command: "rm -rf /tmp/a".into(),
            cwd: None,
        };
        let approval = Payload::approval(
            command,
            "delete".into(),
            vec!["rm".into()],
            Context::default(),
        );
        let edit = Action::Edit {
            path: "a.txt".into(),
            edits: vec![crate::core::action::Edit {
                old: "1".into(),
                new: "2".into(),
            }],
        };
        let context = Context {
            agent: Some("claude-code".into()),
            cwd: Some("/src".into()),
            reason: Some("fix".into()),
        };
        let edit_approval = Payload::approval(edit.clone(), String::new(), vec![], context);
        let cases = [(clarify, 120), (form, 5), (approval, 0), (edit_approval, 0)];
        for (payload, timeout) in cases {
            let prompt = Prompt::new("0a".into(), "s".into(), 1795477118.6891, timeout, payload);
            assert_eq!(Prompt::from_json(&prompt.to_json()), Some(prompt));
        }
        let decision = Decision {
            choice: Choice::Once,
            reason: None,
            edited: Some(Box::new(edit)),
            note: Some("careful".into()),
        };
        let denied = Decision {
            reason: Some("not now".into()),
            ..Decision::plain(Choice::Deny)
        };
        for outcome in [
            Outcome::Answered(Answer::choice(Choice::Always)),
            Outcome::Answered(Answer::Decision(decision)),
            Outcome::Answered(Answer::Decision(denied)),
            Outcome::Expired,
            Outcome::Cancelled,
        ] {
            assert_eq!(
                Outcome::from_json(Kind::Approval, &outcome.to_json()),
                Some(outcome)
            );
        }
        let form = json!({"a": "x", "n": 2});
        for answer in [
            Answer::Text("yes".into()),
            Answer::Picks(vec!["a".into(), "b".into()]),
            Answer::Form(form.as_object().unwrap().clone()),
        ] {
            let outcome = Outcome::Answered(answer);
            assert_eq!(
                Outcome::from_json(Kind::Clarify, &outcome.to_json()),
                Some(outcome)
            );
        }
        // An entry journaled before actions and null deadlines.
        let old_entry = json!({"approval_id": "a1", "session_id": "s", "kind": "approval",
            "command": "ls", "description": "", "pattern_key": "", "pattern_keys": [],
            "requested_at": 1.0, "timeout_seconds": 0, "expires_at": 0.0});
        let old_prompt = Prompt::from_json(&old_entry).expect("an old entry reads back");
        assert_eq!(
            old_prompt.payload.action(),
            Some(&Action::Command {
                command: "ls".into(),
                cwd: None
            })
        );
        assert!(!old_prompt.expires());
        assert_eq!(old_prompt.to_json()["expires_at"], Value::Null);
        let old = json!({"status": "answered", "answer": "deny"});
        assert_eq!(
            Outcome::from_json(Kind::Approval, &old),
            Some(Outcome::Answered(Answer::choice(Choice::Deny))),
            "an outcome journaled before decisions reads back"
        );
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
            Payload::question(control, Vec::new()),
        );
        let head = prompt.to_json().to_string().len();
        assert!(head > 6000, "the head JSON escapes each byte to six");
        assert!(
            prompt.stored_bytes() > 1000 + head,
            "a prompt counts its text held and as JSON, escapes included"
        );
    }
}
