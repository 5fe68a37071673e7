//! Codex CLI's hooks (docs/agents.md): `PreToolUse` and
//! `PermissionRequest`, command hooks only, in Claude Code's shapes but
//! with fewer answers: its `PreToolUse` takes only deny (allow, ask and
//! `updatedInput` fail the hook), so an approval says nothing and the call
//! goes on; `PermissionRequest` takes allow and deny, without
//! `updatedInput`. An edited approval, which Codex cannot run in place of
//! the call, is a deny that says what the human approved instead.

use super::action::{Fields, ToolKind};
use super::{HookOutput, Verdict};
use serde_json::json;

pub const EVENTS: &[&str] = &["PreToolUse", "PermissionRequest"];

pub const FIELDS: Fields = Fields {
    command: "command",
    path: "file_path",
    old: "old_string",
    new: "new_string",
    edits: "edits",
    content: "content",
    url: "url",
    dir: "workdir",
};

/// Codex's tools that only read, or keep its plan.
pub const READ_ONLY: &[&str] = &["update_plan", "view_image", "read_file", "list_dir"];

pub fn tool_kind(tool_name: &str) -> ToolKind {
    match tool_name {
        "Bash" | "shell" | "exec_command" | "local_shell" => ToolKind::Command,
        _ => ToolKind::Other,
    }
}

pub fn render(event: &str, verdict: &Verdict) -> HookOutput {
    let verdict = match verdict {
        Verdict::Allow {
            updated_input: Some(input),
            ..
        } => &Verdict::Deny {
            reason: format!(
                "the human approved only an edited version, which Codex cannot run in its place: {input}"
            ),
        },
        verdict => verdict,
    };
    match (event, verdict) {
        (_, Verdict::Pass | Verdict::Ask { .. }) => HookOutput::silent(),
        ("PermissionRequest", Verdict::Allow { .. }) => {
            permission_request(json!({"behavior": "allow"}))
        }
        ("PermissionRequest", Verdict::Deny { reason }) => {
            permission_request(json!({"behavior": "deny", "message": reason}))
        }
        (_, Verdict::Allow { .. }) => HookOutput::silent(),
        (_, Verdict::Deny { reason }) => HookOutput::json(json!({
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": reason,
            }
        })),
    }
}

fn permission_request(decision: serde_json::Value) -> HookOutput {
    HookOutput::json(json!({
        "hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": decision}
    }))
}
