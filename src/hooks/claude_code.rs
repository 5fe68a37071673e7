//! Claude Code's hooks (docs/agents.md): `PreToolUse` for every tool call
//! and `PermissionRequest` for those Claude Code would ask about, on stdin
//! (command hooks) or as the POST body (`"type": "http"` hooks); the answer
//! is `hookSpecificOutput` JSON on stdout or in the response body.
//!
//! `PreToolUse` takes allow (with `updatedInput`, and the human's note as
//! `additionalContext` for the model), deny (its reason goes to the model)
//! and ask (Claude Code's own prompt, showing the reason).
//! `PermissionRequest` takes allow (with `updatedInput`) or deny (with a
//! message); to ask is to say nothing, and the dialog shows. The
//! permission prompt tool of `askgate mcp` answers `behavior` JSON alike.

use super::action::{Fields, ToolKind};
use super::{HookOutput, Verdict};
use serde_json::{Value, json};

pub const EVENTS: &[&str] = &["PreToolUse", "PermissionRequest"];

pub const FIELDS: Fields = Fields {
    command: "command",
    path: "file_path",
    old: "old_string",
    new: "new_string",
    edits: "edits",
    content: "content",
    url: "url",
    dir: "",
};

/// Tools that only read the work directory, search it, or keep the
/// agent's own notes. `WebSearch` is not among them: its query leaves the
/// machine.
pub const READ_ONLY: &[&str] = &[
    "Read",
    "Glob",
    "Grep",
    "LS",
    "NotebookRead",
    "TodoRead",
    "TodoWrite",
    "ToolSearch",
    "ListAgents",
];

pub fn tool_kind(tool_name: &str) -> ToolKind {
    match tool_name {
        "Bash" => ToolKind::Command,
        "Edit" | "MultiEdit" => ToolKind::Edit,
        "Write" => ToolKind::Write,
        "WebFetch" => ToolKind::Fetch,
        _ => ToolKind::Other,
    }
}

pub fn render(event: &str, verdict: &Verdict) -> HookOutput {
    match event {
        "PermissionRequest" => permission_request(verdict),
        _ => pre_tool_use(verdict),
    }
}

fn pre_tool_use(verdict: &Verdict) -> HookOutput {
    let (decision, reason) = match verdict {
        Verdict::Pass => return HookOutput::silent(),
        Verdict::Allow { reason, .. } => ("allow", reason),
        Verdict::Deny { reason } => ("deny", reason),
        Verdict::Ask { reason } => ("ask", reason),
    };
    let mut specific = json!({
        "hookEventName": "PreToolUse",
        "permissionDecision": decision,
        "permissionDecisionReason": reason,
    });
    if let Verdict::Allow {
        updated_input,
        note,
        ..
    } = verdict
    {
        set(&mut specific, "updatedInput", updated_input.clone());
        set(
            &mut specific,
            "additionalContext",
            note.clone().map(note_text),
        );
    }
    HookOutput::json(json!({ "hookSpecificOutput": specific }))
}

fn permission_request(verdict: &Verdict) -> HookOutput {
    let decision = match verdict {
        Verdict::Pass | Verdict::Ask { .. } => return HookOutput::silent(),
        Verdict::Allow { updated_input, .. } => {
            let mut decision = json!({"behavior": "allow"});
            set(&mut decision, "updatedInput", updated_input.clone());
            decision
        }
        Verdict::Deny { reason } => json!({"behavior": "deny", "message": reason}),
    };
    HookOutput::json(json!({
        "hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": decision}
    }))
}

/// The answer of the permission prompt tool (`claude -p
/// --permission-prompt-tool mcp__askgate__permission_prompt`): allow with
/// the input to run (the tool's own, or as the human edited it), or deny
/// with the reason, which the model receives. It has nothing to hand back
/// to, so to ask is to deny, saying why; a note has no field here.
pub fn permission_prompt(verdict: &Verdict, input: &Value) -> Value {
    match verdict {
        Verdict::Pass => json!({"behavior": "allow", "updatedInput": input}),
        Verdict::Allow { updated_input, .. } => {
            json!({"behavior": "allow", "updatedInput": updated_input.as_ref().unwrap_or(input)})
        }
        Verdict::Deny { reason } | Verdict::Ask { reason } => {
            json!({"behavior": "deny", "message": reason})
        }
    }
}

fn note_text(note: String) -> Value {
    format!("note from the human who approved this: {note}").into()
}

fn set(object: &mut Value, field: &str, value: Option<impl Into<Value>>) {
    if let Some(value) = value {
        object[field] = value.into();
    }
}
