//! Approval rules: what a human's "session" or "always" answer lets through
//! later without asking.
//!
//! A rule is data the human created from a command they saw: by default
//! that exact command, or a prefix of it the human picked. Nothing the agent
//! sends (pattern keys, descriptions) decides what a rule matches, and a
//! prefix never covers a command that goes on with shell control characters
//! (`;`, `&`, `|`, `` ` ``, `$(`, redirections, newlines).

use crate::core::prompt::Choice;
use serde_json::{Value, json};

/// What a rule lets through.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Exactly this command.
    Exact(String),
    /// This command, or it followed by a space and plain arguments.
    Prefix(String),
}

impl Scope {
    /// The scope a human picked for a command: the exact command, or a
    /// prefix of it that ends at a word boundary. `None` when `prefix` is not
    /// such a prefix.
    pub fn for_command(command: &str, prefix: Option<&str>) -> Option<Scope> {
        let Some(prefix) = prefix else {
            return Some(Scope::Exact(command.to_string()));
        };
        let prefix = prefix.trim_end();
        let scope = Scope::Prefix(prefix.to_string());
        (!prefix.trim().is_empty() && scope.matches(command)).then_some(scope)
    }

    pub fn matches(&self, command: &str) -> bool {
        match self {
            Scope::Exact(exact) => command == exact,
            Scope::Prefix(prefix) => match command.strip_prefix(prefix.as_str()) {
                Some("") => true,
                Some(rest) => rest.starts_with(' ') && !has_shell_control(rest),
                None => false,
            },
        }
    }

    /// What keeping this rule counts against the memory budget: its text
    /// plus a fixed overhead, as a prompt's.
    pub fn stored_bytes(&self) -> usize {
        const OVERHEAD: usize = 256;
        let (Scope::Exact(text) | Scope::Prefix(text)) = self;
        text.len() + OVERHEAD
    }

    pub fn to_json(&self) -> Value {
        match self {
            Scope::Exact(command) => json!({"exact": command}),
            Scope::Prefix(prefix) => json!({"prefix": prefix}),
        }
    }

    pub fn from_json(value: &Value) -> Option<Scope> {
        if let Some(command) = value["exact"].as_str() {
            return Some(Scope::Exact(command.to_string()));
        }
        value["prefix"]
            .as_str()
            .map(|p| Scope::Prefix(p.to_string()))
    }
}

fn has_shell_control(text: &str) -> bool {
    text.contains([
        '\n', '\r', ';', '&', '|', '`', '<', '>', '(', ')', '$', '\\', '\'', '"',
    ])
}

/// How long a rule lasts: the rest of its session, or for good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    Session,
    Always,
}

impl Lifetime {
    pub fn of(choice: Choice) -> Option<Lifetime> {
        match choice {
            Choice::Session => Some(Lifetime::Session),
            Choice::Always => Some(Lifetime::Always),
            Choice::Once | Choice::Deny => None,
        }
    }

    pub fn choice(self) -> Choice {
        match self {
            Lifetime::Session => Choice::Session,
            Lifetime::Always => Choice::Always,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_never_covers_more_than_the_human_chose() {
        let exact = Scope::for_command("reboot", None).unwrap();
        let prefix = Scope::for_command("git push origin main", Some("git push")).unwrap();
        let cases = [
            (&exact, "reboot", true),
            (&exact, "reboot now", false),
            (&exact, "rm -rf / --no-preserve-root", false),
            (&prefix, "git push", true),
            (&prefix, "git push origin", true),
            (&prefix, "git pushx", false),
            (&prefix, "git push; rm -rf /", false),
            (&prefix, "git push && rm -rf /", false),
            (&prefix, "git push $(rm -rf /)", false),
            (&prefix, "git push\nrm -rf /", false),
            (&prefix, "git push > /etc/passwd", false),
        ];
        for (scope, command, expected) in cases {
            assert_eq!(scope.matches(command), expected, "{scope:?} on {command:?}");
        }
        assert_eq!(Scope::for_command("git push", Some("rm")), None);
        assert_eq!(Scope::for_command("git push", Some("git pu")), None);
        assert_eq!(Scope::for_command("git push", Some(" ")), None);
    }
}
