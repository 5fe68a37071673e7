//! Actions: what an approval asks to do (docs/PROTOCOL.md §5.2): run a
//! command, edit or write a file, fetch a URL, or call some other tool.
//!
//! An action is read from untrusted JSON once, checked field by field
//! (`Action::read`, a 400 naming the field), and kept typed; its JSON
//! (`to_json`) is what browsers, the journal and rules see. Every action has
//! a one-line `summary`, the `command` that clients which know only
//! commands show. An edited action (a human's answer) may change only what
//! the human is allowed to edit: the command text, an edit's new strings, a
//! write's content, the URL, a tool's input (`check_edited`).

use crate::error::{Error, Result};
use serde_json::{Map, Value, json};

const MAX_COMMAND_BYTES: usize = 8 * 1024;
/// A command the human can read whole on one card.
const MAX_COMMAND_LINES: usize = 32;
const MAX_PATH_BYTES: usize = 4 * 1024;
const MAX_EDITS: usize = 64;
const MAX_EDIT_BYTES: usize = 32 * 1024;
const MAX_CONTENT_BYTES: usize = 60 * 1024;
const MAX_URL_BYTES: usize = 8 * 1024;
const MAX_METHOD_BYTES: usize = 16;
const MAX_NAME_BYTES: usize = 256;
const MAX_INPUT_BYTES: usize = 32 * 1024;

/// One replacement in an edited file: `old` becomes `new`.
#[derive(Clone, Debug, PartialEq)]
pub struct Edit {
    pub old: String,
    pub new: String,
}

/// What an approval asks to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Command {
        command: String,
        cwd: Option<String>,
    },
    Edit {
        path: String,
        edits: Vec<Edit>,
    },
    Write {
        path: String,
        content: String,
    },
    Fetch {
        url: String,
        method: Option<String>,
    },
    Tool {
        name: String,
        input: Map<String, Value>,
    },
}

impl Action {
    pub fn type_name(&self) -> &'static str {
        match self {
            Action::Command { .. } => "command",
            Action::Edit { .. } => "edit",
            Action::Write { .. } => "write",
            Action::Fetch { .. } => "fetch",
            Action::Tool { .. } => "tool",
        }
    }

    /// The command a command action runs; none for any other.
    pub fn command(&self) -> Option<&str> {
        match self {
            Action::Command { command, .. } => Some(command),
            Action::Edit { .. } | Action::Write { .. } | Action::Fetch { .. } => None,
            Action::Tool { .. } => None,
        }
    }

    /// What it is about, beside its type: the path, the URL, the tool's
    /// name or the command (for notifications).
    pub fn target(&self) -> &str {
        match self {
            Action::Command { command, .. } => command,
            Action::Edit { path, .. } | Action::Write { path, .. } => path,
            Action::Fetch { url, .. } => url,
            Action::Tool { name, .. } => name,
        }
    }

    /// The one-line `command` of a pending head: the command itself, or
    /// e.g. `edit config.toml (2 edits, +3 -1)`.
    pub fn summary(&self) -> String {
        match self {
            Action::Command { command, .. } => command.clone(),
            Action::Edit { path, edits } => {
                let added: usize = edits.iter().map(|e| line_count(&e.new)).sum();
                let removed: usize = edits.iter().map(|e| line_count(&e.old)).sum();
                let n = edits.len();
                let s = plural(n);
                format!("edit {path} ({n} edit{s}, +{added} -{removed})")
            }
            Action::Write { path, content } => {
                let (bytes, lines) = (content.len(), line_count(content));
                let (sb, sl) = (plural(bytes), plural(lines));
                format!("write {path} ({bytes} byte{sb}, {lines} line{sl})")
            }
            Action::Fetch { url, method } => {
                format!("fetch {} {url}", method.as_deref().unwrap_or("GET"))
            }
            Action::Tool { name, input } => {
                let n = input.len();
                format!("tool {name} ({n} input{})", plural(n))
            }
        }
    }

    /// Bytes of text it holds, for the memory budget.
    pub fn text_bytes(&self) -> usize {
        match self {
            Action::Command { command, cwd } => command.len() + cwd.as_ref().map_or(0, String::len),
            Action::Edit { path, edits } => {
                path.len()
                    + edits
                        .iter()
                        .map(|e| e.old.len() + e.new.len())
                        .sum::<usize>()
            }
            Action::Write { path, content } => path.len() + content.len(),
            Action::Fetch { url, method } => url.len() + method.as_ref().map_or(0, String::len),
            Action::Tool { name, input } => {
                name.len() + Value::Object(input.clone()).to_string().len()
            }
        }
    }

    /// A canonical text of the action (object keys sorted), what an
    /// exact-action rule compares.
    pub fn key(&self) -> String {
        self.to_json().to_string()
    }

    pub fn to_json(&self) -> Value {
        let mut value = match self {
            Action::Command { command, cwd } => json!({"command": command, "cwd": cwd}),
            Action::Edit { path, edits } => {
                let edits: Vec<Value> = edits
                    .iter()
                    .map(|e| json!({"old": e.old, "new": e.new}))
                    .collect();
                json!({"path": path, "edits": edits})
            }
            Action::Write { path, content } => json!({"path": path, "content": content}),
            Action::Fetch { url, method } => json!({"url": url, "method": method}),
            Action::Tool { name, input } => json!({"name": name, "input": input}),
        };
        let fields = value.as_object_mut().expect("an action is an object");
        fields.retain(|_, v| !v.is_null());
        fields.insert("type".into(), json!(self.type_name()));
        value
    }

    /// The inverse of `to_json`, for what the server wrote itself.
    pub fn from_json(value: &Value) -> Option<Action> {
        Action::read(value, "action").ok()
    }

    /// An action from untrusted JSON, every field checked; the 400 names
    /// the field as `{field}.path`, `{field}.edits[1].old` and so on.
    pub fn read(value: &Value, field: &str) -> Result<Action> {
        let Value::Object(body) = value else {
            return Err(bad(format!("{field} must be an object")));
        };
        let reader = Reader { body, field };
        let action = match body.get("type").and_then(Value::as_str) {
            Some("command") => Action::Command {
                command: reader.command()?,
                cwd: reader.optional_line("cwd", MAX_PATH_BYTES)?,
            },
            Some("edit") => Action::Edit {
                path: reader.line("path", MAX_PATH_BYTES)?,
                edits: reader.edits()?,
            },
            Some("write") => Action::Write {
                path: reader.line("path", MAX_PATH_BYTES)?,
                content: reader.text("content", MAX_CONTENT_BYTES)?,
            },
            Some("fetch") => Action::Fetch {
                url: reader.url()?,
                method: reader.method()?,
            },
            Some("tool") => Action::Tool {
                name: reader.line("name", MAX_NAME_BYTES)?,
                input: reader.input()?,
            },
            _ => {
                return Err(bad(format!(
                    "{field}.type must be one of command, edit, write, fetch, tool"
                )));
            }
        };
        reader.no_other_fields(&action)?;
        Ok(action)
    }

    /// Checks that `edited` (a human's edit of this action) changes only
    /// what may be edited; the 400 names the field of `edited`.
    pub fn check_edited(&self, edited: &Action) -> Result<()> {
        let same = |what: &str, equal: bool| match equal {
            true => Ok(()),
            false => Err(bad(format!("edited.{what} must be the one asked"))),
        };
        match (self, edited) {
            (Action::Command { cwd, .. }, Action::Command { cwd: edited, .. }) => {
                same("cwd", cwd == edited)
            }
            (Action::Edit { path, edits }, Action::Edit { path: p, edits: e }) => {
                same("path", path == p)?;
                same("edits", edits.len() == e.len())?;
                let olds = edits.iter().zip(e).all(|(a, b)| a.old == b.old);
                same("edits[].old", olds)
            }
            (Action::Write { path, .. }, Action::Write { path: p, .. }) => same("path", path == p),
            (Action::Fetch { method, .. }, Action::Fetch { method: m, .. }) => {
                same("method", method == m)
            }
            (Action::Tool { name, .. }, Action::Tool { name: n, .. }) => same("name", name == n),
            (asked, edited) => Err(bad(format!(
                "edited.type must be {} (the type asked), not {}",
                asked.type_name(),
                edited.type_name()
            ))),
        }
    }
}

/// Lines of a text: 0 when empty, a last line without its newline counted.
pub fn line_count(text: &str) -> usize {
    match text.is_empty() {
        true => 0,
        false => text.trim_end_matches('\n').split('\n').count(),
    }
}

fn plural(n: usize) -> &'static str {
    match n {
        1 => "",
        _ => "s",
    }
}

fn bad(message: String) -> Error {
    Error::bad_request(message)
}

/// Reads the fields of one action object, naming each as `{field}.name`.
struct Reader<'a> {
    body: &'a Map<String, Value>,
    field: &'a str,
}

impl Reader<'_> {
    fn name(&self, name: &str) -> String {
        format!("{}.{name}", self.field)
    }

    fn optional_text(&self, name: &str, max: usize) -> Result<Option<String>> {
        match self.body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if text.len() <= max => Ok(Some(text.clone())),
            Some(Value::String(_)) => Err(bad(format!(
                "{} is longer than {max} bytes",
                self.name(name)
            ))),
            Some(_) => Err(bad(format!("{} must be a string", self.name(name)))),
        }
    }

    fn text(&self, name: &str, max: usize) -> Result<String> {
        self.optional_text(name, max)?
            .ok_or_else(|| bad(format!("{} is required", self.name(name))))
    }

    /// One line of text: not blank, no control characters.
    fn optional_line(&self, name: &str, max: usize) -> Result<Option<String>> {
        let Some(text) = self.optional_text(name, max)? else {
            return Ok(None);
        };
        if text.trim().is_empty() || text.chars().any(char::is_control) {
            return Err(bad(format!(
                "{} must be one line of text, without control characters",
                self.name(name)
            )));
        }
        Ok(Some(text))
    }

    fn line(&self, name: &str, max: usize) -> Result<String> {
        self.optional_line(name, max)?
            .ok_or_else(|| bad(format!("{} is required", self.name(name))))
    }

    fn command(&self) -> Result<String> {
        let command = self.text("command", MAX_COMMAND_BYTES)?;
        check_command(&command, &self.name("command"))?;
        Ok(command)
    }

    fn edits(&self) -> Result<Vec<Edit>> {
        let name = self.name("edits");
        let items = match self.body.get("edits") {
            Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_EDITS => items,
            _ => {
                return Err(bad(format!(
                    "{name} must be a list of 1 to {MAX_EDITS} edits"
                )));
            }
        };
        let edit = |(i, item): (usize, &Value)| {
            let Value::Object(body) = item else {
                return Err(bad(format!("{name}[{i}] must be an object")));
            };
            let field = format!("{name}[{i}]");
            let reader = Reader {
                body,
                field: &field,
            };
            if let Some(other) = body.keys().find(|k| !matches!(k.as_str(), "old" | "new")) {
                return Err(bad(format!("{field}.{other} is not a field of an edit")));
            }
            Ok(Edit {
                old: reader.text("old", MAX_EDIT_BYTES)?,
                new: reader.text("new", MAX_EDIT_BYTES)?,
            })
        };
        items.iter().enumerate().map(edit).collect()
    }

    fn url(&self) -> Result<String> {
        let url = self.line("url", MAX_URL_BYTES)?;
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        let valid = scheme.is_some_and(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        });
        match valid && !url.contains(char::is_whitespace) {
            true => Ok(url),
            false => Err(bad(format!(
                "{} must be an absolute URL (scheme://...) without spaces",
                self.name("url")
            ))),
        }
    }

    fn method(&self) -> Result<Option<String>> {
        let method = self.optional_text("method", MAX_METHOD_BYTES)?;
        match &method {
            Some(m) if m.is_empty() || !m.chars().all(|c| c.is_ascii_uppercase()) => Err(bad(
                format!("{} must be an HTTP method in capitals", self.name("method")),
            )),
            _ => Ok(method),
        }
    }

    fn input(&self) -> Result<Map<String, Value>> {
        let name = self.name("input");
        match self.body.get("input") {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(input))
                if Value::Object(input.clone()).to_string().len() <= MAX_INPUT_BYTES =>
            {
                Ok(input.clone())
            }
            Some(Value::Object(_)) => Err(bad(format!(
                "{name} is longer than {MAX_INPUT_BYTES} bytes"
            ))),
            Some(_) => Err(bad(format!("{name} must be an object"))),
        }
    }

    /// A field the type does not have is refused, so nothing the agent
    /// sends is silently left off the card.
    fn no_other_fields(&self, action: &Action) -> Result<()> {
        let known = action.to_json();
        let allowed = |key: &str| match action {
            Action::Command { .. } => matches!(key, "type" | "command" | "cwd"),
            Action::Edit { .. } => matches!(key, "type" | "path" | "edits"),
            Action::Write { .. } => matches!(key, "type" | "path" | "content"),
            Action::Fetch { .. } => matches!(key, "type" | "url" | "method"),
            Action::Tool { .. } => matches!(key, "type" | "name" | "input"),
        } || known.get(key).is_some();
        match self.body.keys().find(|key| !allowed(key)) {
            Some(key) => Err(bad(format!(
                "{}.{key} is not a field of a {} action",
                self.field,
                action.type_name()
            ))),
            None => Ok(()),
        }
    }
}

/// A command the human can read whole: not blank, at most 32 lines.
pub fn check_command(command: &str, field: &str) -> Result<()> {
    if command.trim().is_empty() {
        return Err(bad(format!("{field} is required")));
    }
    let lines = command.split(['\n', '\r']).count();
    if lines > MAX_COMMAND_LINES {
        return Err(bad(format!(
            "{field} has {lines} lines; at most {MAX_COMMAND_LINES}, so the human sees all of it"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_back_from_their_json_and_summarise_in_one_line() {
        let cases = [
            (
                json!({"type": "command", "command": "ls -l", "cwd": "/tmp"}),
                "ls -l",
            ),
            (
                json!({"type": "edit", "path": "config.toml", "edits": [
                    {"old": "a = 1", "new": "a = 2\nb = 3\n"}, {"old": "", "new": "c"}]}),
                "edit config.toml (2 edits, +3 -1)",
            ),
            (
                json!({"type": "write", "path": "a.txt", "content": "x\ny"}),
                "write a.txt (3 bytes, 2 lines)",
            ),
            (
                json!({"type": "fetch", "url": "https://e.org/a"}),
                "fetch GET https://e.org/a",
            ),
            (
                json!({"type": "tool", "name": "mcp__db__query", "input": {"sql": "select 1"}}),
                "tool mcp__db__query (1 input)",
            ),
        ];
        for (value, summary) in cases {
            let action = Action::read(&value, "action").unwrap();
            assert_eq!(action.to_json(), value);
            assert_eq!(action.summary(), summary);
        }
    }

    #[test]
    fn a_bad_shape_names_its_field() {
        let cases = [
            (json!("ls"), "action must be an object"),
            (json!({"type": "rm"}), "action.type must be one of"),
            (
                json!({"type": "edit", "path": "a", "edits": []}),
                "action.edits must be a list",
            ),
            (
                json!({"type": "edit", "path": "a", "edits": [{"old": "x"}]}),
                "action.edits[0].new is required",
            ),
            (
                json!({"type": "write", "path": "a\nb", "content": ""}),
                "action.path must be one line",
            ),
            (
                json!({"type": "fetch", "url": "example.org"}),
                "action.url must be an absolute URL",
            ),
            (
                json!({"type": "fetch", "url": "http://a", "method": "get"}),
                "action.method",
            ),
            (
                json!({"type": "tool", "name": "t", "input": [1]}),
                "action.input must be an object",
            ),
            (
                json!({"type": "command", "command": "ls", "sudo": true}),
                "action.sudo is not a field",
            ),
        ];
        for (value, message) in cases {
            let error = Action::read(&value, "action").unwrap_err().to_string();
            assert!(error.contains(message), "{value}: {error}");
        }
    }

    #[test]
    fn an_edit_changes_only_what_may_be_edited() {
        let read = |v: Value| Action::read(&v, "x").unwrap();
        let edit = read(json!({"type": "edit", "path": "a", "edits": [{"old": "1", "new": "2"}]}));
        let ok = read(json!({"type": "edit", "path": "a", "edits": [{"old": "1", "new": "3"}]}));
        let moved = read(json!({"type": "edit", "path": "b", "edits": [{"old": "1", "new": "3"}]}));
        let other = read(json!({"type": "write", "path": "a", "content": ""}));
        assert_eq!(edit.check_edited(&ok), Ok(()));
        assert!(edit.check_edited(&moved).is_err());
        assert!(edit.check_edited(&other).is_err());
    }
}
