//! Reading the durable record format 1, frozen: what askgate wrote before
//! issue 21, a journal record as a JSON array of changes and a snapshot's
//! entries as lines, in the browser's JSON of that time. This copy never
//! follows the browser's JSON (nor its input checks) as they change, so a
//! directory of format 1 keeps meaning what it meant (tests/fixtures/format-1).
//!
//! Nothing here writes; every reader returns `None` for what format 1 could
//! not have written.

use crate::core::action::{Action, Edit};
use crate::core::change::Change;
use crate::core::kind::Kind;
use crate::core::prompt::{
    Answer, Choice, Context, Decision, LEGACY_AGENT, Outcome, Payload, Prompt,
};
use crate::core::receipt;
use crate::core::record::tagged;
use crate::core::rules::{Lifetime, Rule, Scope};
use crate::core::state::Record;
use serde_json::Value;

/// A change as format 1 wrote it.
pub fn change_from(value: &Value) -> Option<Change> {
    let (tag, body) = tagged(value)?;
    let kind = || kind_from(body["kind"].as_str()?);
    Some(match tag {
        "submitted" => Change::Submitted(prompt_from(body)?.into()),
        "resolved" => Change::Resolved {
            session_id: text(body, "session_id")?,
            kind: kind()?,
            id: text(body, "id")?,
            outcome: outcome_from(kind()?, &body["outcome"])?,
            at: body["at"].as_f64()?,
            grant: match &body["grant"] {
                Value::Null => None,
                grant => Some(scope_from(grant)?),
            },
            // Format 1 knew no names.
            by: None,
        },
        "auto_answered" => Change::AutoAnswered {
            session_id: text(body, "session_id")?,
            kind: kind()?,
            id: text(body, "id")?,
            command: text(body, "command")?,
            // Format 1 kept only the command (or a summary) a rule answered.
            action: Box::new(Action::Command {
                command: text(body, "command")?,
                cwd: None,
            }),
            answer: answer_from(kind()?, body, "answer")?,
            rule_id: text(body, "rule_id")?,
            at: body["at"].as_f64()?,
            agent: LEGACY_AGENT.to_string(),
        },
        "rule_revoked" => Change::RuleRevoked {
            rule_id: text(body, "rule_id")?,
            at: body["at"].as_f64()?,
        },
        "session_evicted" => Change::SessionEvicted {
            session_id: text(body, "session_id")?,
        },
        "pruned" => Change::Pruned {
            outcomes: texts(&body["outcomes"])?,
            sessions: texts(&body["sessions"])?,
        },
        "restarted" => Change::Restarted {
            skip: body["skip"].as_u64()?,
        },
        _ => return None,
    })
}

/// A pending prompt, as format 1's entry JSON held it.
pub fn prompt_from(entry: &Value) -> Option<Prompt> {
    let kind = kind_from(entry["kind"].as_str()?)?;
    let id_field = match kind {
        Kind::Clarify => "clarify_id",
        Kind::Approval => "approval_id",
    };
    Some(Prompt {
        id: text(entry, id_field)?,
        session_id: text(entry, "session_id")?,
        requested_at: entry["requested_at"].as_f64()?,
        timeout_seconds: entry["timeout_seconds"].as_i64()?,
        expires_at: match &entry["expires_at"] {
            Value::Null => 0.0,
            expires_at => expires_at.as_f64()?,
        },
        payload: payload_from(kind, entry)?,
        urgent: entry["urgency"] == "high",
        agent: LEGACY_AGENT.to_string(),
    })
}

fn payload_from(kind: Kind, entry: &Value) -> Option<Payload> {
    let said = |field: &str| entry[field].as_str().map(str::to_string);
    Some(match kind {
        Kind::Clarify => Payload::Clarify {
            question: text(entry, "question")?,
            choices: texts(&entry["choices_offered"])?,
            multiple: entry["multiple"].as_bool().unwrap_or_default(),
            schema: entry.get("schema").filter(|s| s.is_object()).cloned(),
        },
        // Entries written before actions are command actions.
        Kind::Approval => Payload::Approval {
            command: text(entry, "command")?,
            description: text(entry, "description")?,
            pattern_keys: texts(&entry["pattern_keys"])?,
            action: match entry.get("action") {
                Some(action) => action_from(action)?,
                None => Action::Command {
                    command: text(entry, "command")?,
                    cwd: None,
                },
            },
            context: Context {
                agent: said("agent"),
                cwd: said("cwd"),
                reason: said("reason"),
            },
        },
    })
}

fn action_from(value: &Value) -> Option<Action> {
    let optional = |field: &str| match value.get(field) {
        None | Some(Value::Null) => Some(None),
        Some(text) => Some(Some(text.as_str()?.to_string())),
    };
    Some(match value["type"].as_str()? {
        "command" => Action::Command {
            command: text(value, "command")?,
            cwd: optional("cwd")?,
        },
        "edit" => Action::Edit {
            path: text(value, "path")?,
            edits: value["edits"]
                .as_array()?
                .iter()
                .map(|edit| {
                    let (old, new) = (text(edit, "old")?, text(edit, "new")?);
                    Some(Edit { old, new })
                })
                .collect::<Option<_>>()?,
        },
        "write" => Action::Write {
            path: text(value, "path")?,
            content: text(value, "content")?,
        },
        "fetch" => Action::Fetch {
            url: text(value, "url")?,
            method: optional("method")?,
        },
        "tool" => Action::Tool {
            name: text(value, "name")?,
            input: match value.get("input") {
                None | Some(Value::Null) => serde_json::Map::new(),
                Some(input) => input.as_object()?.clone(),
            },
        },
        _ => return None,
    })
}

/// An answer of `kind`: its value under `field`, a decision's reason,
/// edited action and note beside it.
fn answer_from(kind: Kind, object: &Value, field: &str) -> Option<Answer> {
    let said = |name: &str| object[name].as_str().map(str::to_string);
    match (kind, &object[field]) {
        (Kind::Clarify, Value::String(text)) => Some(Answer::Text(text.clone())),
        (Kind::Clarify, Value::Array(_)) => Some(Answer::Picks(texts(&object[field])?)),
        (Kind::Clarify, Value::Object(form)) => Some(Answer::Form(form.clone())),
        (Kind::Approval, Value::String(choice)) => Some(Answer::Decision(Decision {
            choice: choice_from(choice)?,
            reason: said("reason"),
            edited: match object.get("edited") {
                None | Some(Value::Null) => None,
                Some(edited) => Some(Box::new(action_from(edited)?)),
            },
            note: said("note"),
        })),
        _ => None,
    }
}

fn outcome_from(kind: Kind, value: &Value) -> Option<Outcome> {
    match value["status"].as_str()? {
        "answered" => answer_from(kind, value, "answer").map(Outcome::Answered),
        "expired" => Some(Outcome::Expired),
        "cancelled" => Some(Outcome::Cancelled),
        _ => None,
    }
}

fn scope_from(value: &Value) -> Option<Scope> {
    if let Some(command) = value["exact"].as_str() {
        return Some(Scope::Exact(command.to_string()));
    }
    if let Some(action) = value.get("action").and_then(action_from) {
        return Some(Scope::Action(action.key()));
    }
    let options = match &value["options"] {
        Value::Null => false,
        options => options.as_bool()?,
    };
    let prefix = text(value, "prefix")?;
    Some(Scope::Prefix { prefix, options })
}

pub fn rule_from(value: &Value) -> Option<Rule> {
    let lifetime = match value["lifetime"].as_str()? {
        "session" => Lifetime::Session,
        "always" => Lifetime::Always,
        _ => return None,
    };
    let session_id = match (&value["session_id"], lifetime) {
        (Value::Null, Lifetime::Always) => None,
        (Value::String(session_id), Lifetime::Session) => Some(session_id.clone()),
        _ => return None,
    };
    Some(Rule {
        rule_id: text(value, "rule_id")?,
        scope: scope_from(&value["scope"])?,
        lifetime,
        session_id,
        granted_at: value["granted_at"].as_f64()?,
        command: text(value, "command")?,
    })
}

/// A kept outcome of a snapshot's line; fields a snapshot from before
/// the history or receipts lacks are made as they were then.
pub(super) fn kept_from(value: &Value) -> Option<(String, Record)> {
    let kind = kind_from(value["kind"].as_str()?)?;
    let asked = value["asked"].as_str().unwrap_or_default();
    let action = match value.get("action") {
        None => None,
        Some(action) => Some(Box::new(action_from(action)?)),
    };
    // Snapshots written before receipts kept no digest: an approval's is
    // its action's (its command's); a clarify's choices are gone, so its
    // question alone.
    let canonical = match (kind, &action) {
        (Kind::Approval, Some(action)) => action.key(),
        (Kind::Approval, None) => receipt::command_action(asked),
        (Kind::Clarify, _) => receipt::action_of(&Payload::question(asked.to_string(), Vec::new())),
    };
    let record = Record {
        kind,
        session_id: text(value, "session_id")?,
        asked: asked.to_string(),
        action,
        auto: value["auto"].as_bool().unwrap_or_default(),
        outcome: outcome_from(kind, &value["outcome"])?,
        at: value["at"].as_f64()?,
        version: value["version"].as_u64()?,
        action_digest: match value["action_digest"].as_str() {
            Some(digest) => digest.to_string(),
            None => receipt::action_digest(&canonical),
        },
        rule: value["rule"].as_str().map(str::to_string),
        agent: LEGACY_AGENT.to_string(),
        by: None,
    };
    Some((text(value, "id")?, record))
}

pub(super) fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Clarify => "clarify",
        Kind::Approval => "approval",
    }
}

fn kind_from(name: &str) -> Option<Kind> {
    Kind::ALL.into_iter().find(|kind| kind_name(*kind) == name)
}

fn choice_from(name: &str) -> Option<Choice> {
    Some(match name {
        "once" => Choice::Once,
        "session" => Choice::Session,
        "always" => Choice::Always,
        "deny" => Choice::Deny,
        _ => return None,
    })
}

fn text(value: &Value, field: &str) -> Option<String> {
    value[field].as_str().map(str::to_string)
}

fn texts(value: &Value) -> Option<Vec<String>> {
    let items = value.as_array()?.iter();
    items
        .map(|item| item.as_str().map(str::to_string))
        .collect()
}
