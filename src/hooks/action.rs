//! A tool call as the action the human is asked about (docs/PROTOCOL.md
//! §5.2), and back: an agent's tool and its input become a `command`,
//! `edit`, `write`, `fetch` or `tool` action; a human's edited action
//! becomes the tool input the agent runs instead.
//!
//! Invariants: every field of the call the agent would act on is in the
//! action, so a tool the mapping does not know, or a known one missing a
//! field, is shown whole as a `tool` action; and the one-line `command`
//! today's server takes for a non-command action carries the whole action
//! on its following lines, so a rule granted on it covers exactly what the
//! human saw, never another edit of the same file.

use serde_json::{Map, Value, json};

/// What a tool does, as far as the human's card is concerned.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ToolKind {
    /// Runs a shell command (`command`, maybe `description`).
    Command,
    /// Replaces text in a file (one `old`/`new` pair, or a list of them).
    Edit,
    /// Writes a whole file.
    Write,
    /// Fetches a URL.
    Fetch,
    /// Anything else: shown as its name and whole input.
    Other,
}

/// The field names one agent's tool input uses for each kind.
#[derive(Clone, Copy, Debug)]
pub struct Fields {
    pub command: &'static str,
    pub path: &'static str,
    pub old: &'static str,
    pub new: &'static str,
    /// A list of `{old, new}` edits (Claude Code's MultiEdit), if any.
    pub edits: &'static str,
    pub content: &'static str,
    pub url: &'static str,
    /// The working directory a command names itself (Gemini's `dir_path`).
    pub dir: &'static str,
}

/// The action a tool call asks for, as issue 19's `action` field has it.
pub fn action(kind: ToolKind, fields: &Fields, name: &str, input: &Value, cwd: &str) -> Value {
    let text = |field: &str| input.get(field).and_then(Value::as_str);
    let mapped = match kind {
        ToolKind::Command => text(fields.command).map(|command| {
            let dir = text(fields.dir).unwrap_or(cwd);
            json!({"type": "command", "command": command, "cwd": dir})
        }),
        ToolKind::Edit => text(fields.path).and_then(|path| {
            let edits = edits(fields, input)?;
            Some(json!({"type": "edit", "path": path, "edits": edits}))
        }),
        ToolKind::Write => text(fields.path)
            .zip(text(fields.content))
            .map(|(path, content)| json!({"type": "write", "path": path, "content": content})),
        ToolKind::Fetch => text(fields.url).map(|url| json!({"type": "fetch", "url": url})),
        ToolKind::Other => None,
    };
    mapped.unwrap_or_else(|| json!({"type": "tool", "name": name, "input": input}))
}

/// Whether an edit replaces one occurrence, as an `edit` action shows it
/// (docs/PROTOCOL.md §5.2): Claude Code's `replace_all`, Gemini CLI's
/// `allow_multiple` (and its older `expected_replacements`) replace every
/// one, so such a call is shown whole, as a `tool` action, never as the
/// one replacement the human would read.
fn replaces_once(edit: &Value) -> bool {
    let set = |field: &str| edit.get(field).is_some_and(|v| v != &Value::Bool(false));
    let expected = edit.get("expected_replacements");
    !set("replace_all") && !set("allow_multiple") && expected.is_none_or(|n| n == &json!(1))
}

/// The `{old, new}` pairs of an edit: the list, or the one pair; `None`
/// unless each replaces one occurrence.
fn edits(fields: &Fields, input: &Value) -> Option<Vec<Value>> {
    replaces_once(input).then_some(())?;
    let pair = |edit: &Value| {
        replaces_once(edit).then_some(())?;
        let old = edit.get(fields.old)?.as_str()?;
        let new = edit.get(fields.new)?.as_str()?;
        Some(json!({"old": old, "new": new}))
    };
    match input.get(fields.edits) {
        Some(Value::Array(list)) if !list.is_empty() => list.iter().map(pair).collect(),
        _ => pair(input).map(|edit| vec![edit]),
    }
}

/// The tool input to run instead when the human approved an edited action:
/// the original input with the edited fields replaced. `None` when the
/// edit is not of this tool's kind, or names another file: the human may
/// change what runs, not turn one tool into another.
pub fn edited_input(
    kind: ToolKind,
    fields: &Fields,
    name: &str,
    input: &Value,
    edited: &Value,
) -> Option<Value> {
    let mut updated: Map<String, Value> = input.as_object()?.clone();
    let text = |field: &str| edited.get(field).and_then(Value::as_str);
    let same_path = || text("path") == input.get(fields.path).and_then(Value::as_str);
    match (kind, text("type")?) {
        (ToolKind::Command, "command") => {
            updated.insert(fields.command.into(), text("command")?.into());
        }
        (ToolKind::Write, "write") if same_path() => {
            updated.insert(fields.content.into(), text("content")?.into());
        }
        (ToolKind::Edit, "edit") if same_path() => {
            let list = edited.get("edits")?.as_array()?;
            match (input.get(fields.edits), list.as_slice()) {
                (Some(Value::Array(_)), _) => {
                    let pairs = list.iter().map(|edit| {
                        json!({fields.old: edit.get("old")?.as_str()?, fields.new: edit.get("new")?.as_str()?})
                            .into()
                    });
                    updated.insert(
                        fields.edits.into(),
                        pairs.collect::<Option<Vec<Value>>>()?.into(),
                    );
                }
                (_, [edit]) => {
                    updated.insert(fields.old.into(), edit.get("old")?.as_str()?.into());
                    updated.insert(fields.new.into(), edit.get("new")?.as_str()?.into());
                }
                _ => return None,
            }
        }
        (ToolKind::Fetch, "fetch") => {
            updated.insert(fields.url.into(), text("url")?.into());
        }
        (ToolKind::Other, "tool") if text("name") == Some(name) => {
            return edited
                .get("input")
                .filter(|input| input.is_object())
                .cloned();
        }
        _ => return None,
    }
    Some(Value::Object(updated))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLAUDE: Fields = Fields {
        command: "command",
        path: "file_path",
        old: "old_string",
        new: "new_string",
        edits: "edits",
        content: "content",
        url: "url",
        dir: "",
    };

    #[test]
    fn each_kind_of_tool_call_becomes_its_action() {
        let cwd = "/home/u/repo";
        for (kind, name, input, expected) in [
            (
                ToolKind::Command,
                "Bash",
                json!({"command": "ls -la", "description": "List"}),
                json!({"type": "command", "command": "ls -la", "cwd": cwd}),
            ),
            (
                ToolKind::Edit,
                "Edit",
                json!({"file_path": "/r/a.toml", "old_string": "a = 1", "new_string": "a = 2"}),
                json!({"type": "edit", "path": "/r/a.toml", "edits": [{"old": "a = 1", "new": "a = 2"}]}),
            ),
            (
                ToolKind::Edit,
                "MultiEdit",
                json!({"file_path": "/r/b", "edits": [{"old_string": "x", "new_string": "y"}, {"old_string": "p", "new_string": "q"}]}),
                json!({"type": "edit", "path": "/r/b", "edits": [{"old": "x", "new": "y"}, {"old": "p", "new": "q"}]}),
            ),
            (
                ToolKind::Write,
                "Write",
                json!({"file_path": "/r/c", "content": "hello\n"}),
                json!({"type": "write", "path": "/r/c", "content": "hello\n"}),
            ),
            (
                ToolKind::Fetch,
                "WebFetch",
                json!({"url": "https://example.com", "prompt": "summarize"}),
                json!({"type": "fetch", "url": "https://example.com"}),
            ),
            (
                ToolKind::Other,
                "mcp__db__query",
                json!({"sql": "drop table x"}),
                json!({"type": "tool", "name": "mcp__db__query", "input": {"sql": "drop table x"}}),
            ),
            // A known tool missing what it needs is shown whole, as a tool.
            (
                ToolKind::Command,
                "Bash",
                json!({"cmd": "rm -rf /"}),
                json!({"type": "tool", "name": "Bash", "input": {"cmd": "rm -rf /"}}),
            ),
            (
                ToolKind::Edit,
                "Edit",
                json!({"file_path": "/r/a", "old_string": "a"}),
                json!({"type": "tool", "name": "Edit", "input": {"file_path": "/r/a", "old_string": "a"}}),
            ),
        ] {
            assert_eq!(action(kind, &CLAUDE, name, &input, cwd), expected, "{name}");
        }
    }

    #[test]
    fn an_edit_of_every_occurrence_is_shown_whole() {
        let edit = |extra: Value| {
            let mut input = json!({"file_path": "/r/a", "old_string": "1", "new_string": "2"});
            input
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let action = action(ToolKind::Edit, &CLAUDE, "replace", &input, "/r");
            action["type"].as_str().unwrap().to_string()
        };
        assert_eq!(edit(json!({"allow_multiple": true})), "tool");
        assert_eq!(edit(json!({"expected_replacements": 3})), "tool");
        assert_eq!(edit(json!({"replace_all": true})), "tool");
        assert_eq!(edit(json!({"allow_multiple": false})), "edit");
        assert_eq!(edit(json!({"expected_replacements": 1})), "edit");
    }

    #[test]
    fn a_command_names_its_own_directory() {
        let fields = Fields {
            dir: "dir_path",
            ..CLAUDE
        };
        let input = json!({"command": "make", "dir_path": "/r/sub"});
        let action = action(
            ToolKind::Command,
            &fields,
            "run_shell_command",
            &input,
            "/r",
        );
        assert_eq!(action["cwd"], "/r/sub");
    }

    #[test]
    fn an_edited_action_becomes_the_tool_input_that_runs() {
        let bash = json!({"command": "rm -rf build", "description": "clean", "timeout": 5});
        let edited = json!({"type": "command", "command": "rm -rf build/tmp"});
        assert_eq!(
            edited_input(ToolKind::Command, &CLAUDE, "Bash", &bash, &edited),
            Some(json!({"command": "rm -rf build/tmp", "description": "clean", "timeout": 5}))
        );
        let edit = json!({"file_path": "/r/a", "old_string": "1", "new_string": "2", "replace_all": false});
        let edited = json!({"type": "edit", "path": "/r/a", "edits": [{"old": "1", "new": "3"}]});
        assert_eq!(
            edited_input(ToolKind::Edit, &CLAUDE, "Edit", &edit, &edited),
            Some(
                json!({"file_path": "/r/a", "old_string": "1", "new_string": "3", "replace_all": false})
            )
        );
        let multi = json!({"file_path": "/r/a", "edits": [{"old_string": "1", "new_string": "2"}]});
        assert_eq!(
            edited_input(ToolKind::Edit, &CLAUDE, "MultiEdit", &multi, &edited),
            Some(json!({"file_path": "/r/a", "edits": [{"old_string": "1", "new_string": "3"}]}))
        );
        let write = json!({"file_path": "/r/w", "content": "a"});
        let edited = json!({"type": "write", "path": "/r/w", "content": "b"});
        assert_eq!(
            edited_input(ToolKind::Write, &CLAUDE, "Write", &write, &edited),
            Some(json!({"file_path": "/r/w", "content": "b"}))
        );
        let tool = json!({"sql": "drop table x"});
        let edited = json!({"type": "tool", "name": "mcp__db__q", "input": {"sql": "select 1"}});
        assert_eq!(
            edited_input(ToolKind::Other, &CLAUDE, "mcp__db__q", &tool, &edited),
            Some(json!({"sql": "select 1"}))
        );
    }

    #[test]
    fn an_edit_may_not_change_the_tool_or_the_file() {
        let write = json!({"file_path": "/r/w", "content": "a"});
        for edited in [
            json!({"type": "write", "path": "/etc/passwd", "content": "b"}),
            json!({"type": "command", "command": "true"}),
            json!({"type": "write", "path": "/r/w"}),
            json!("write"),
        ] {
            assert_eq!(
                edited_input(ToolKind::Write, &CLAUDE, "Write", &write, &edited),
                None,
                "{edited}"
            );
        }
        let edit = json!({"file_path": "/r/a", "old_string": "1", "new_string": "2"});
        let two = json!({"type": "edit", "path": "/r/a", "edits": [{"old": "1", "new": "2"}, {"old": "3", "new": "4"}]});
        assert_eq!(
            edited_input(ToolKind::Edit, &CLAUDE, "Edit", &edit, &two),
            None
        );
    }
}
