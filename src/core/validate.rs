//! Input rules (docs/PROTOCOL.md §1, §5, §7): what a session id, a prompt and a timeout
//! may be. Each check returns a 400 with a message that names the field.

use crate::core::kind::Kind;
use crate::core::prompt::Payload;
use crate::error::{Error, Result};
use serde_json::{Map, Value};

pub const MAX_WATCHED_SESSIONS: usize = 64;
const MAX_QUESTION_BYTES: usize = 4 * 1024;
const MAX_COMMAND_BYTES: usize = 8 * 1024;
/// A command the human can read whole on one card.
const MAX_COMMAND_LINES: usize = 32;
const MAX_DESCRIPTION_BYTES: usize = 4 * 1024;
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
    Ok(Payload::Clarify { question, choices })
}

fn approval_payload(body: &Map<String, Value>) -> Result<Payload> {
    let command = required_text(body, "command", MAX_COMMAND_BYTES)?;
    let lines = command.split(['\n', '\r']).count();
    if lines > MAX_COMMAND_LINES {
        return Err(Error::bad_request(format!(
            "command has {lines} lines; at most {MAX_COMMAND_LINES}, so the human sees all of it"
        )));
    }
    let description =
        optional_text(body, "description", MAX_DESCRIPTION_BYTES)?.unwrap_or_default();
    let pattern_keys = text_list(body, "pattern_keys")?;
    Ok(Payload::Approval {
        command,
        description,
        pattern_keys,
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
