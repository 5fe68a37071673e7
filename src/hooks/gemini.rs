//! Gemini CLI's `BeforeTool` hook (docs/agents.md): `decision` allow or
//! deny with a `reason` the model receives, and `hookSpecificOutput.
//! tool_input` merged over the model's arguments (an edited approval). It
//! has no "ask": to hand back to Gemini CLI's own confirmation is to say
//! nothing.

use super::action::{Fields, ToolKind};
use super::{HookOutput, Verdict};
use serde_json::json;

pub const EVENTS: &[&str] = &["BeforeTool"];

pub const FIELDS: Fields = Fields {
    command: "command",
    path: "file_path",
    old: "old_string",
    new: "new_string",
    edits: "edits",
    content: "content",
    url: "url",
    dir: "dir_path",
};

/// Gemini CLI's tools that only read the work directory or keep notes.
pub const READ_ONLY: &[&str] = &[
    "read_file",
    "read_many_files",
    "list_directory",
    "glob",
    "search_file_content",
    "grep_search",
    "write_todos",
];

pub fn tool_kind(tool_name: &str) -> ToolKind {
    match tool_name {
        "run_shell_command" => ToolKind::Command,
        "replace" => ToolKind::Edit,
        "write_file" => ToolKind::Write,
        _ => ToolKind::Other,
    }
}

pub fn render(_event: &str, verdict: &Verdict) -> HookOutput {
    match verdict {
        Verdict::Pass | Verdict::Ask { .. } => HookOutput::silent(),
        Verdict::Allow {
            reason,
            updated_input,
            ..
        } => {
            let mut answer = json!({"decision": "allow", "reason": reason});
            if let Some(input) = updated_input {
                answer["hookSpecificOutput"] = json!({"tool_input": input});
            }
            HookOutput::json(answer)
        }
        Verdict::Deny { reason } => HookOutput::json(json!({"decision": "deny", "reason": reason})),
    }
}
