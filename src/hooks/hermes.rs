//! hermes-agent's shell hooks (docs/agents.md): `pre_tool_call`, with the
//! tool's arguments as `tool_input`. It takes only a block
//! (`{"decision": "block", "reason": ...}` on stdout, whatever the exit
//! code); anything else lets the call go on to hermes-agent's own approval.
//! A hook that fails or times out lets the call through, and exit 2 is not
//! a block there: so every deny, even of an input that cannot be read, is
//! the JSON block, and the human's approval says nothing.

use super::action::{Fields, ToolKind};
use super::{HookOutput, Verdict};
use serde_json::json;

pub const EVENTS: &[&str] = &["pre_tool_call"];

pub const FIELDS: Fields = Fields {
    command: "command",
    path: "path",
    old: "old_string",
    new: "new_string",
    edits: "edits",
    content: "content",
    url: "url",
    dir: "workdir",
};

/// hermes-agent's tools that only read, search or keep its notes.
pub const READ_ONLY: &[&str] = &["read_file", "search_files", "todo", "clarify"];

pub fn tool_kind(tool_name: &str) -> ToolKind {
    match tool_name {
        "terminal" => ToolKind::Command,
        "patch" => ToolKind::Edit,
        "write_file" => ToolKind::Write,
        _ => ToolKind::Other,
    }
}

pub fn render(_event: &str, verdict: &Verdict) -> HookOutput {
    match verdict {
        Verdict::Pass | Verdict::Ask { .. } => HookOutput::silent(),
        Verdict::Allow {
            updated_input: Some(input),
            ..
        } => block(&format!(
            "the human approved only an edited version, which hermes-agent cannot run in its place: {input}"
        )),
        Verdict::Allow { .. } => HookOutput::silent(),
        Verdict::Deny { reason } => block(reason),
    }
}

pub fn block(reason: &str) -> HookOutput {
    HookOutput::json(json!({"decision": "block", "reason": reason}))
}
