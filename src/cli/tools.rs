//! The two tools of `askgate mcp` for a model, `ask_human` and
//! `request_approval`, as values (docs/PROTOCOL.md §5.3): their
//! definitions (`tools.json`, with `cli/permission.rs`'s tool), a call's
//! arguments made into a submit body, and an outcome made into a tool
//! result. Pure functions, no I/O; `cli/mcp.rs` does the talking.
//!
//! A tool result says what the human decided in words a model reads, and
//! an approval also as structured content (`approved`, `choice`, `auto`,
//! and a deny's `reason`, an `edited` action, a `note` when the human gave
//! them) on the revisions that have it (2025-06-18 on). An answer that never came
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

/// What `tools/list` answers: the definitions (`tools.json`, kept as text,
/// which costs the binary a fraction of the code that would build it),
/// with each kind's default timeout, and without the parts an older
/// revision lacks.
pub fn list(version: &str) -> Value {
    let mut list: Value =
        serde_json::from_str(include_str!("tools.json")).expect("tools.json is JSON");
    let tools = list["tools"]
        .as_array_mut()
        .expect("tools.json lists tools");
    for (tool, kind) in tools.iter_mut().zip([Kind::Clarify, Kind::Approval]) {
        tool["inputSchema"]["properties"]["timeout_seconds"] = json!({
            "type": "integer",
            "description": format!(
                "seconds to wait for the human before giving up (default {}; 0 or less: no limit)",
                kind.default_timeout_seconds()
            ),
        });
    }
    if !structured(version) {
        for tool in tools {
            let tool = tool.as_object_mut().expect("a tool is an object");
            tool.remove("title");
            tool.remove("outputSchema");
        }
    }
    list
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
/// fields' types are checked here; their limits and shapes are the
/// server's (§5.1, §5.2).
pub fn submit(
    name: &str,
    arguments: &Map<String, Value>,
    session_id: &str,
) -> Result<Submit, Refusal> {
    let (kind, fields): (Kind, &[(&str, Type)]) = match name {
        ASK_HUMAN => (
            Kind::Clarify,
            &[
                ("question", Type::Text),
                ("choices", Type::Texts),
                ("multiple", Type::Bool),
                ("schema", Type::Object),
            ],
        ),
        REQUEST_APPROVAL => (
            Kind::Approval,
            &[
                ("command", Type::Text),
                ("action", Type::Object),
                ("description", Type::Text),
                ("reason", Type::Text),
            ],
        ),
        other => return Err(Refusal::UnknownTool(other.to_string())),
    };
    let mut body = json!({"session_id": session_id});
    for &(field, kind) in fields {
        match arguments.get(field) {
            None | Some(Value::Null) => {}
            Some(value) if kind.fits(value) => body[field] = value.clone(),
            Some(_) => {
                return Err(Refusal::Arguments(format!(
                    "{field} must be {}",
                    kind.noun()
                )));
            }
        }
    }
    let required = match kind {
        Kind::Clarify => body.get("question").is_some(),
        Kind::Approval => body.get("command").is_some() || body.get("action").is_some(),
    };
    if !required {
        return Err(Refusal::Arguments(match kind {
            Kind::Clarify => "question is required and must be a string".into(),
            Kind::Approval => "command (a string) or action (an object) is required".into(),
        }));
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

/// The JSON type a tool argument must have.
#[derive(Clone, Copy)]
enum Type {
    Text,
    Texts,
    Bool,
    Object,
}

impl Type {
    fn fits(self, value: &Value) -> bool {
        match self {
            Type::Text => value.is_string(),
            Type::Texts => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
            Type::Bool => value.is_boolean(),
            Type::Object => value.is_object(),
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Type::Text => "a string",
            Type::Texts => "a list of strings",
            Type::Bool => "true or false",
            Type::Object => "an object",
        }
    }
}

/// The tool result of an outcome: the final body of a wait (or of a submit
/// a rule answered at once).
pub fn outcome(kind: Kind, outcome: &Value, version: &str) -> Value {
    let noun = match kind {
        Kind::Clarify => "the question",
        Kind::Approval => "the approval request; do not run the command",
    };
    match (kind, outcome["status"].as_str()) {
        (Kind::Clarify, Some("answered")) => match &outcome["response"] {
            Value::String(text) => text_result(text, false),
            // A list of picks or a form's object, as JSON.
            other => text_result(&other.to_string(), false),
        },
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
    let edited = outcome.get("edited").filter(|edited| edited.is_object());
    let mut text = match (approved, auto, edited) {
        (true, true, _) => format!(
            "approved ({choice}) by a rule the human granted earlier: run the command exactly as sent"
        ),
        (true, false, Some(edited)) => format!(
            "approved ({choice}) by the human with an edit: do not take the action you sent; take this one \
             exactly, instead: {edited}"
        ),
        (true, false, None) => {
            format!("approved ({choice}) by the human: run the command exactly as sent")
        }
        (false, _, _) => "denied by the human: do not run the command".to_string(),
    };
    let mut structured_content = json!({"approved": approved, "choice": choice, "auto": auto});
    for (field, said) in [("reason", "Their reason"), ("note", "Their note")] {
        if let Some(words) = outcome[field].as_str() {
            text.push_str(&format!(". {said}: {words}"));
            structured_content[field] = json!(words);
        }
    }
    if let Some(edited) = edited {
        structured_content["edited"] = edited.clone();
    }
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
        assert_eq!(names, [ASK_HUMAN, REQUEST_APPROVAL, "permission_prompt"]);
        assert_eq!(
            new["tools"][1]["outputSchema"]["required"],
            json!(["approved", "choice", "auto"])
        );
        let old = list("2025-03-26");
        assert!(
            old["tools"][1].get("outputSchema").is_none() && old["tools"][0].get("title").is_none()
        );
        assert!(old["tools"][2].get("title").is_none());
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
            (
                ASK_HUMAN,
                json!({"question": 5}),
                "question must be a string",
            ),
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
        let action = json!({"type": "fetch", "url": "https://example.org"});
        let asked = submit(
            REQUEST_APPROVAL,
            &arguments(json!({"action": action, "reason": "docs"})),
            "s",
        );
        let body = json!({"session_id": "s", "action": action, "reason": "docs"});
        assert_eq!(
            asked,
            Ok(Submit {
                kind: Kind::Approval,
                body
            })
        );
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let asked = submit(
            ASK_HUMAN,
            &arguments(json!({"question": "q", "schema": schema})),
            "s",
        );
        assert_eq!(asked.unwrap().body["schema"], schema);
        for (name, bad, message) in [
            (
                REQUEST_APPROVAL,
                json!({}),
                "command (a string) or action (an object) is required",
            ),
            (
                REQUEST_APPROVAL,
                json!({"action": "ls"}),
                "action must be an object",
            ),
            (
                ASK_HUMAN,
                json!({"question": "q", "schema": []}),
                "schema must be an object",
            ),
            (
                ASK_HUMAN,
                json!({"question": "q", "multiple": "yes"}),
                "multiple must be true or false",
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
        let edited = json!({"type": "command", "command": "make deploy --dry-run"});
        let answer = json!({"status": "answered", "choice": "once", "edited": edited, "note": "dry run first"});
        let result = outcome(Kind::Approval, &answer, v);
        assert_eq!(
            result["structuredContent"],
            json!({"approved": true, "choice": "once", "auto": false, "edited": edited, "note": "dry run first"})
        );
        let words = result["content"][0]["text"].as_str().unwrap();
        assert!(
            words.contains("instead")
                && words.contains("make deploy --dry-run")
                && words.contains("dry run first"),
            "{words}"
        );
        let answer =
            json!({"status": "answered", "choice": "deny", "reason": "use the make target"});
        let result = outcome(Kind::Approval, &answer, v);
        assert_eq!(result["structuredContent"]["reason"], "use the make target");
        assert!(
            result["content"][0]["text"]
                .as_str()
                .unwrap()
                .ends_with("Their reason: use the make target")
        );
        let form = outcome(
            Kind::Clarify,
            &json!({"status": "answered", "response": {"n": 2}}),
            v,
        );
        assert_eq!(form, text_result(r#"{"n":2}"#, false));
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
