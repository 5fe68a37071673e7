//! Input rules (docs/PROTOCOL.md §1, §5, §7): what a session id, a prompt and a timeout
//! may be. Each check returns a 400 with a message that names the field.

use crate::core::action::{self, Action};
use crate::core::form;
use crate::core::kind::Kind;
use crate::core::prompt::{Answer, Choice, Context, Decision, Payload};
use crate::error::{Error, Result};
use serde_json::{Map, Value};

pub const MAX_WATCHED_SESSIONS: usize = 64;
const MAX_QUESTION_BYTES: usize = 4 * 1024;
const MAX_COMMAND_BYTES: usize = 8 * 1024;
const MAX_DESCRIPTION_BYTES: usize = 4 * 1024;
const MAX_AGENT_BYTES: usize = 128;
const MAX_CWD_BYTES: usize = 4 * 1024;
/// The agent's justification for an action.
const MAX_REASON_BYTES: usize = 2 * 1024;
/// A human's note with an approval.
const MAX_NOTE_BYTES: usize = 2 * 1024;
const MAX_LIST_ITEMS: usize = 16;
const MAX_ITEM_CHARS: usize = 256;
/// The longest a prompt may wait for its answer: thirty days.
const MAX_TIMEOUT_SECONDS: i64 = 30 * 24 * 3600;
const MAX_WAIT_SECONDS: f64 = 60.0;

/// 1 to 128 characters from `A-Z a-z 0-9 . _ : -`.
pub fn session_id(session_id: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    if (1..=128).contains(&session_id.len()) && session_id.chars().all(allowed) {
        return Ok(());
    }
    Err(Error::bad_request(
        "invalid session_id: 1 to 128 characters from A-Z a-z 0-9 . _ : -",
    ))
}

/// An id of the given kind: its length of lowercase hex.
pub fn prompt_id(kind: Kind, id: &str) -> Result<()> {
    let hex = id
        .chars()
        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if id.len() == kind.id_len() && hex {
        return Ok(());
    }
    let field = kind.id_field();
    Err(Error::bad_request(format!(
        "invalid {field}: {} lowercase hex characters",
        kind.id_len()
    )))
}

/// A long-poll or wait duration: 0 to 60 seconds.
pub fn wait_seconds(name: &str, seconds: f64) -> Result<()> {
    if (0.0..=MAX_WAIT_SECONDS).contains(&seconds) {
        return Ok(());
    }
    Err(Error::bad_request(format!(
        "{name} must be between 0 and 60 seconds"
    )))
}

/// What the agent asks, read from a submit body and checked.
pub fn payload(kind: Kind, body: &Map<String, Value>) -> Result<Payload> {
    match kind {
        Kind::Clarify => clarify_payload(body),
        Kind::Approval => approval_payload(body),
    }
}

fn clarify_payload(body: &Map<String, Value>) -> Result<Payload> {
    let question = required_text(body, "question", MAX_QUESTION_BYTES)?;
    let choices = text_list(body, "choices")?;
    let multiple = match body.get("multiple") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(multiple)) => *multiple,
        Some(_) => return Err(Error::bad_request("multiple must be true or false")),
    };
    if multiple && choices.len() < 2 {
        return Err(Error::bad_request(
            "multiple needs at least two choices to pick from",
        ));
    }
    let schema = match body.get("schema") {
        None | Some(Value::Null) => None,
        Some(schema) => {
            form::check_schema(schema)?;
            Some(schema.clone())
        }
    };
    if schema.is_some() && (multiple || !choices.is_empty()) {
        return Err(Error::bad_request(
            "schema cannot go with choices or multiple: a form has its own fields",
        ));
    }
    Ok(Payload::Clarify {
        question,
        choices,
        multiple,
        schema,
    })
}

fn approval_payload(body: &Map<String, Value>) -> Result<Payload> {
    let action = match (body.get("command"), body.get("action")) {
        (Some(command), Some(action)) if !command.is_null() && !action.is_null() => {
            return Err(Error::bad_request(
                "give either command or action, not both",
            ));
        }
        (_, Some(action)) if !action.is_null() => Action::read(action, "action")?,
        _ => {
            let command = required_text(body, "command", MAX_COMMAND_BYTES)?;
            action::check_command(&command, "command")?;
            Action::Command { command, cwd: None }
        }
    };
    let description =
        optional_text(body, "description", MAX_DESCRIPTION_BYTES)?.unwrap_or_default();
    let pattern_keys = text_list(body, "pattern_keys")?;
    let context = Context {
        agent: optional_line(body, "agent", MAX_AGENT_BYTES)?,
        cwd: optional_line(body, "cwd", MAX_CWD_BYTES)?,
        reason: optional_text(body, "reason", MAX_REASON_BYTES)?,
    };
    Ok(Payload::approval(
        action,
        description,
        pattern_keys,
        context,
    ))
}

/// Checks an answer against the prompt it answers (docs/PROTOCOL.md §3.2):
/// a reason only with a deny, an edit only with `once` and of the type
/// asked, a note only with an approving choice; a clarify's picks among its
/// choices, its form against its schema. A 400 names the field.
pub fn answer(payload: &Payload, answer: &Answer) -> Result<()> {
    match (payload, answer) {
        (Payload::Approval { action, .. }, Answer::Decision(decision)) => {
            decision_fits(action, decision)
        }
        (
            Payload::Clarify {
                schema: Some(_), ..
            },
            Answer::Text(_) | Answer::Picks(_),
        ) => Err(Error::bad_request(
            "response must be an object of the form's fields",
        )),
        (
            Payload::Clarify {
                schema: Some(schema),
                ..
            },
            Answer::Form(form),
        ) => form::check_response(schema, &Value::Object(form.clone())),
        (Payload::Clarify { multiple: true, .. }, Answer::Text(_)) => Err(Error::bad_request(
            "response must be a list of the choices picked",
        )),
        (
            Payload::Clarify {
                multiple: true,
                choices,
                ..
            },
            Answer::Picks(picks),
        ) => form::check_picks(choices, picks),
        (Payload::Clarify { .. }, Answer::Text(_)) => Ok(()),
        (Payload::Clarify { .. }, Answer::Picks(_) | Answer::Form(_)) => Err(Error::bad_request(
            "response must be a string: this question takes no list and no form",
        )),
        (Payload::Approval { .. }, Answer::Text(_) | Answer::Picks(_) | Answer::Form(_))
        | (Payload::Clarify { .. }, Answer::Decision(_)) => Err(Error::bad_request(
            "the answer is of another kind than the prompt",
        )),
    }
}

fn decision_fits(action: &Action, decision: &Decision) -> Result<()> {
    let choice = decision.choice;
    if decision.reason.is_some() && choice.approves() {
        return Err(Error::bad_request("reason goes only with the deny choice"));
    }
    if decision.note.is_some() && !choice.approves() {
        return Err(Error::bad_request(
            "note goes only with an approving choice; a deny says why in reason",
        ));
    }
    match (&decision.edited, choice) {
        (None, _) => Ok(()),
        (Some(edited), Choice::Once) => action.check_edited(edited),
        (Some(_), Choice::Session | Choice::Always) => Err(Error::bad_request(
            "edited goes only with the once choice: an edited answer never grants a rule",
        )),
        (Some(_), Choice::Deny) => Err(Error::bad_request("edited goes only with the once choice")),
    }
}

/// A decision's `reason`, `edited` and `note` from a respond body; each
/// checked for size and shape here, and against the prompt by `answer`.
pub fn decision(choice: Choice, body: &Map<String, Value>) -> Result<Decision> {
    let edited = match body.get("edited") {
        None | Some(Value::Null) => None,
        Some(edited) => Some(Box::new(Action::read(edited, "edited")?)),
    };
    Ok(Decision {
        choice,
        reason: optional_text(body, "reason", MAX_REASON_BYTES)?,
        edited,
        note: optional_text(body, "note", MAX_NOTE_BYTES)?,
    })
}

/// `timeout_seconds`: a whole number of seconds, `<= 0` for no expiry.
pub fn timeout_seconds(body: &Map<String, Value>, default: i64) -> Result<i64> {
    let seconds = match body.get("timeout_seconds") {
        None | Some(Value::Null) => return Ok(default),
        Some(Value::Number(number)) => number.as_i64().or_else(|| whole(number.as_f64()?)),
        Some(_) => None,
    };
    match seconds {
        Some(seconds) if seconds <= MAX_TIMEOUT_SECONDS => Ok(seconds),
        _ => Err(Error::bad_request(format!(
            "timeout_seconds must be a whole number of seconds, at most {MAX_TIMEOUT_SECONDS}"
        ))),
    }
}

fn whole(number: f64) -> Option<i64> {
    (number.fract() == 0.0 && number.abs() < 1e15).then_some(number as i64)
}

fn required_text(body: &Map<String, Value>, field: &str, max_bytes: usize) -> Result<String> {
    match optional_text(body, field, max_bytes)? {
        Some(text) if !text.trim().is_empty() => Ok(text),
        _ => Err(Error::bad_request(format!("{field} is required"))),
    }
}

/// One line of text, without control characters, when given.
fn optional_line(
    body: &Map<String, Value>,
    field: &str,
    max_bytes: usize,
) -> Result<Option<String>> {
    match optional_text(body, field, max_bytes)? {
        Some(text) if text.trim().is_empty() || text.chars().any(char::is_control) => {
            Err(Error::bad_request(format!(
                "{field} must be one line of text, without control characters"
            )))
        }
        text => Ok(text),
    }
}

fn optional_text(
    body: &Map<String, Value>,
    field: &str,
    max_bytes: usize,
) -> Result<Option<String>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.len() <= max_bytes => Ok(Some(text.clone())),
        Some(Value::String(_)) => Err(Error::bad_request(format!(
            "{field} is longer than {max_bytes} bytes"
        ))),
        Some(_) => Err(Error::bad_request(format!("{field} must be a string"))),
    }
}

/// At most 16 non-empty strings of at most 256 characters each.
fn text_list(body: &Map<String, Value>, field: &str) -> Result<Vec<String>> {
    let invalid = || {
        Error::bad_request(format!(
            "{field} must be a list of at most {MAX_LIST_ITEMS} non-empty strings of at most {MAX_ITEM_CHARS} characters"
        ))
    };
    let items = match body.get(field) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= MAX_LIST_ITEMS => items,
        Some(_) => return Err(invalid()),
    };
    let valid = |item: &Value| match item {
        Value::String(text)
            if !text.trim().is_empty() && text.chars().count() <= MAX_ITEM_CHARS =>
        {
            Some(text.clone())
        }
        _ => None,
    };
    items
        .iter()
        .map(|item| valid(item).ok_or_else(invalid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn session_ids() {
        for good in ["s1", "a.b_c:d-e", &"x".repeat(128)] {
            assert_eq!(session_id(good), Ok(()), "{good}");
        }
        for bad in ["", "a b", "a/b", "é", &"x".repeat(129), "a\nb"] {
            assert!(session_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn timeouts() {
        let cases = [
            (json!({}), Ok(120)),
            (json!({"timeout_seconds": 5}), Ok(5)),
            (json!({"timeout_seconds": 5.0}), Ok(5)),
            (json!({"timeout_seconds": -1}), Ok(-1)),
            (json!({"timeout_seconds": 1.5}), Err(())),
            (json!({"timeout_seconds": "5"}), Err(())),
            (json!({"timeout_seconds": 1e300}), Err(())),
            (json!({"timeout_seconds": 99_999_999}), Err(())),
        ];
        for (body, expected) in cases {
            let got = timeout_seconds(body.as_object().unwrap(), 120).map_err(|_| ());
            assert_eq!(got, expected, "{body}");
        }
    }
}
