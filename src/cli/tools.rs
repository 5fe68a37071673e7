//! The two tools of `askgate mcp` as values (docs/PROTOCOL.md §5.3): their
//! definitions, a call's arguments made into a submit body, and an outcome
//! made into a tool result. Pure functions, no I/O; `cli/mcp.rs` does the
//! talking.
//!
//! A tool result says what the human decided in words a model reads, and
//! an approval also as structured content (`approved`, `choice`, `auto`) on
//! the revisions that have it (2025-06-18 on). An answer that never came
//! (expired, cancelled) or a call that failed is a result with `isError`,
//! never a JSON-RPC error, so the model can see it and go on.

use crate::core::kind::Kind;
use serde_json::{Map, Value, json};

pub const ASK_HUMAN: &str = "ask_human";
pub const REQUEST_APPROVAL: &str = "request_approval";

/// The MCP revisions spoken here, newest first.
pub const PROTOCOL_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The revision to speak: the client's when it is one of ours, else our
/// newest (the client then decides whether it can go on).
pub fn negotiate(requested: Option<&str>) -> &'static str {
    PROTOCOL_VERSIONS
        .into_iter()
        .find(|version| Some(*version) == requested)
        .unwrap_or(PROTOCOL_VERSIONS[0])
}

/// Whether a revision has tool titles, output schemas and structured
/// content: 2025-06-18 and later.
fn structured(version: &str) -> bool {
    let position = |wanted: &str| PROTOCOL_VERSIONS.iter().position(|v| *v == wanted);
    position(version) <= position("2025-06-18")
}

/// What `tools/list` answers.
pub fn list(version: &str) -> Value {
    let timeout = |default: i64| {
        json!({"type": "integer", "description": format!(
            "seconds to wait for the human before giving up (default {default}; 0 or less: no limit)")})
    };
    let mut ask_human = json!({
        "name": ASK_HUMAN,
        "title": "Ask the human",
        "description": "Ask the human a question and wait for the answer (they answer in the askgate page). \
            Use it when you need a decision or information only they have. Offer choices when the answer \
            is one of a few; they may still type another. Returns the answer text.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "question": {"type": "string", "description": "the question, as the human will read it"},
                "choices": {"type": "array", "items": {"type": "string"}, "maxItems": 16,
                            "description": "answers to offer as buttons"},
                "timeout_seconds": timeout(Kind::Clarify.default_timeout_seconds()),
            },
            "required": ["question"],
        },
    });
    let mut request_approval = json!({
        "name": REQUEST_APPROVAL,
        "title": "Ask the human to approve a command",
        "description": "Ask the human to approve a command before you run it, and wait for the decision. \
            Run the command only when the result says approved, exactly as sent. A rule the human granted \
            earlier may approve it at once.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "the exact command you want to run"},
                "description": {"type": "string", "description": "why, in a few words"},
                "timeout_seconds": timeout(Kind::Approval.default_timeout_seconds()),
            },
            "required": ["command"],
        },
        "outputSchema": {
            "type": "object",
            "properties": {
                "approved": {"type": "boolean"},
                "choice": {"type": "string", "enum": ["once", "session", "always", "deny"]},
                "auto": {"type": "boolean", "description": "approved by a rule the human granted earlier, without asking"},
            },
            "required": ["approved", "choice", "auto"],
        },
    });
    if !structured(version) {
        for tool in [&mut ask_human, &mut request_approval] {
            let tool = tool.as_object_mut().expect("a tool is an object");
            tool.remove("title");
            tool.remove("outputSchema");
        }
    }
    json!({"tools": [ask_human, request_approval]})
}

/// Why a call cannot be made.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// No such tool: a JSON-RPC error.
    UnknownTool(String),
    /// Arguments that do not fit: a tool result with `isError`, which the
    /// model can correct.
    Arguments(String),
}

/// The prompt a call submits: its kind and body.
#[derive(Debug, PartialEq)]
pub struct Submit {
    pub kind: Kind,
    pub body: Value,
}

/// A call's arguments made into a submit body for `session_id`. Only the
/// fields' types are checked here; their limits are the server's (§5.1).
pub fn submit(
    name: &str,
    arguments: &Map<String, Value>,
    session_id: &str,
) -> Result<Submit, Refusal> {
    let (kind, text, optional) = match name {
        ASK_HUMAN => (Kind::Clarify, "question", "choices"),
        REQUEST_APPROVAL => (Kind::Approval, "command", "description"),
        other => return Err(Refusal::UnknownTool(other.to_string())),
    };
    let mut body = json!({"session_id": session_id});
    match arguments.get(text) {
        Some(Value::String(value)) => body[text] = value.clone().into(),
        _ => {
            return Err(Refusal::Arguments(format!(
                "{text} is required and must be a string"
            )));
        }
    }
    match (optional, arguments.get(optional)) {
        (_, None | Some(Value::Null)) => {}
        ("choices", Some(Value::Array(choices))) if choices.iter().all(Value::is_string) => {
            body["choices"] = Value::Array(choices.clone());
        }
        ("description", Some(Value::String(description))) => {
            body["description"] = description.clone().into()
        }
        ("choices", Some(_)) => {
            return Err(Refusal::Arguments(
                "choices must be a list of strings".into(),
            ));
        }
        (field, Some(_)) => return Err(Refusal::Arguments(format!("{field} must be a string"))),
    }
    match arguments.get("timeout_seconds") {
        None | Some(Value::Null) => {}
        Some(Value::Number(seconds)) => body["timeout_seconds"] = Value::Number(seconds.clone()),
        Some(_) => {
            return Err(Refusal::Arguments(
                "timeout_seconds must be a whole number of seconds".into(),
            ));
        }
    }
    Ok(Submit { kind, body })
}

/// The tool result of an outcome: the final body of a wait (or of a submit
/// a rule answered at once).
pub fn outcome(kind: Kind, outcome: &Value, version: &str) -> Value {
    let noun = match kind {
        Kind::Clarify => "the question",
        Kind::Approval => "the approval request; do not run the command",
    };
    match (kind, outcome["status"].as_str()) {
        (Kind::Clarify, Some("answered")) => {
            text_result(outcome["response"].as_str().unwrap_or_default(), false)
        }
        (Kind::Approval, Some("answered")) => approval(outcome, version),
        (_, Some("expired")) => text_result(
            &format!(
                "no answer: {noun} expired before the human answered; {}",
                super::client::RAISE_TIMEOUT
            ),
            true,
        ),
        (_, Some("cancelled")) => text_result(&format!("no answer: {noun} was cancelled"), true),
        (_, other) => text_result(
            &format!("no answer: {noun} ended as {}", other.unwrap_or("nothing")),
            true,
        ),
    }
}

fn approval(outcome: &Value, version: &str) -> Value {
    let choice = outcome["choice"].as_str().unwrap_or("deny");
    let auto = outcome["auto"] == true;
    let approved = choice != "deny";
    let text = match (approved, auto) {
        (true, true) => format!(
            "approved ({choice}) by a rule the human granted earlier: run the command exactly as sent"
        ),
        (true, false) => {
            format!("approved ({choice}) by the human: run the command exactly as sent")
        }
        (false, _) => "denied by the human: do not run the command".to_string(),
    };
    let structured_content = json!({"approved": approved, "choice": choice, "auto": auto});
    let mut result = text_result(&text, false);
    if structured(version) {
        // The serialized JSON too, as the revisions ask for older clients.
        result["content"]
            .as_array_mut()
            .expect("content is a list")
            .push(json!({"type": "text", "text": structured_content.to_string()}));
        result["structuredContent"] = structured_content;
    }
    result
}

/// A result of one text block.
pub fn text_result(text: &str, is_error: bool) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": is_error})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arguments(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn versions_are_the_client_s_when_known_else_the_newest() {
        for (requested, spoken) in [
            (Some("2025-06-18"), "2025-06-18"),
            (Some("2024-11-05"), "2024-11-05"),
            (Some("2099-01-01"), "2025-11-25"),
            (None, "2025-11-25"),
        ] {
            assert_eq!(negotiate(requested), spoken, "{requested:?}");
        }
        assert!(structured("2025-11-25") && structured("2025-06-18"));
        assert!(!structured("2025-03-26") && !structured("2024-11-05"));
    }

    #[test]
    fn the_list_has_structured_parts_only_where_the_revision_does() {
        let new = list("2025-06-18");
        let names: Vec<&str> = new["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [ASK_HUMAN, REQUEST_APPROVAL]);
        assert_eq!(
            new["tools"][1]["outputSchema"]["required"],
            json!(["approved", "choice", "auto"])
        );
        let old = list("2025-03-26");
        assert!(
            old["tools"][1].get("outputSchema").is_none() && old["tools"][0].get("title").is_none()
        );
        assert_eq!(
            old["tools"][0]["inputSchema"]["required"],
            json!(["question"])
        );
    }

    #[test]
    fn arguments_become_submit_bodies() {
        let asked = submit(
            ASK_HUMAN,
            &arguments(
                json!({"question": "Which?", "choices": ["a", "b"], "timeout_seconds": 30, "extra": 1}),
            ),
            "s",
        );
        let body = json!({"session_id": "s", "question": "Which?", "choices": ["a", "b"], "timeout_seconds": 30});
        assert_eq!(
            asked,
            Ok(Submit {
                kind: Kind::Clarify,
                body
            })
        );
        let approval = submit(
            REQUEST_APPROVAL,
            &arguments(json!({"command": "ls", "description": null})),
            "s",
        );
        let body = json!({"session_id": "s", "command": "ls"});
        assert_eq!(
            approval,
            Ok(Submit {
                kind: Kind::Approval,
                body
            })
        );
        for (name, bad, message) in [
            (
                ASK_HUMAN,
                json!({}),
                "question is required and must be a string",
            ),
            (ASK_HUMAN, json!({"question": 5}), "question is required"),
            (
                ASK_HUMAN,
                json!({"question": "q", "choices": "a"}),
                "choices must be a list of strings",
            ),
            (
                ASK_HUMAN,
                json!({"question": "q", "choices": [1]}),
                "choices must be a list of strings",
            ),
            (
                REQUEST_APPROVAL,
                json!({"command": "x", "description": 3}),
                "description must be a string",
            ),
            (
                REQUEST_APPROVAL,
                json!({"command": "x", "timeout_seconds": "5"}),
                "timeout_seconds must be",
            ),
        ] {
            match submit(name, &arguments(bad.clone()), "s") {
                Err(Refusal::Arguments(got)) => assert!(got.contains(message), "{bad}: {got}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert_eq!(
            submit("rm", &Map::new(), "s"),
            Err(Refusal::UnknownTool("rm".into()))
        );
    }

    #[test]
    fn outcomes_become_results() {
        let v = "2025-11-25";
        let answered = outcome(
            Kind::Clarify,
            &json!({"status": "answered", "response": "sqlite"}),
            v,
        );
        assert_eq!(answered, text_result("sqlite", false));
        let expired = outcome(Kind::Clarify, &json!({"status": "expired"}), v);
        assert_eq!(
            expired,
            text_result(
                &format!(
                    "no answer: the question expired before the human answered; {}",
                    crate::cli::client::RAISE_TIMEOUT
                ),
                true
            )
        );
        let cancelled = outcome(Kind::Approval, &json!({"status": "cancelled"}), v);
        assert_eq!(cancelled["isError"], true);
        assert!(
            cancelled["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("do not run the command")
        );

        let auto =
            json!({"status": "answered", "choice": "session", "auto": true, "approval_id": "x"});
        let approved = outcome(Kind::Approval, &auto, v);
        assert_eq!(
            approved["structuredContent"],
            json!({"approved": true, "choice": "session", "auto": true})
        );
        assert_eq!(approved["isError"], false);
        assert!(
            approved["content"][0]["text"]
                .as_str()
                .unwrap()
                .contains("by a rule the human granted")
        );
        let denied = outcome(
            Kind::Approval,
            &json!({"status": "answered", "choice": "deny"}),
            v,
        );
        assert_eq!(denied["structuredContent"]["approved"], false);
        assert_eq!(
            denied["content"][1]["text"],
            r#"{"approved":false,"auto":false,"choice":"deny"}"#
        );
        let old = outcome(
            Kind::Approval,
            &json!({"status": "answered", "choice": "once"}),
            "2025-03-26",
        );
        assert_eq!(
            old,
            text_result(
                "approved (once) by the human: run the command exactly as sent",
                false
            )
        );
    }
}
