//! Approval rules: what a human's "session" or "always" answer lets through
//! later without asking.
//!
//! A rule is data the human created from a command they saw: by default
//! that exact command, or a prefix of it the human picked. Nothing the agent
//! sends (pattern keys, descriptions) decides what a rule matches, and a
//! prefix never covers a command that goes on with shell control characters
//! (`;`, `&`, `|`, `` ` ``, `$(`, redirections, newlines). Each rule is a
//! record (`Rule`) named by the id of the approval that granted it, so the
//! human can list it, see where it came from, and revoke it.

use crate::core::prompt::{Choice, json_len};
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
    pub fn as_str(self) -> &'static str {
        match self {
            Lifetime::Session => "session",
            Lifetime::Always => "always",
        }
    }

    pub fn parse(name: &str) -> Option<Lifetime> {
        match name {
            "session" => Some(Lifetime::Session),
            "always" => Some(Lifetime::Always),
            _ => None,
        }
    }

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

/// A rule the human granted: what it covers, for how long, and where it
/// came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// The id of the approval whose answer granted it; unique.
    pub rule_id: String,
    pub scope: Scope,
    pub lifetime: Lifetime,
    /// The session a `session` rule belongs to; `None` for `always`.
    pub session_id: Option<String>,
    /// Unix seconds of the answer that granted it.
    pub granted_at: f64,
    /// The command the human was shown when they granted it.
    pub command: String,
}

impl Rule {
    /// What keeping a rule counts against the memory budget: its id, scope
    /// and command as held and as JSON (escaping included: `GET /api/rules`
    /// shows them all at once), plus a fixed overhead, as a prompt's.
    pub fn cost(rule_id: &str, scope: &Scope, command: &str) -> usize {
        const OVERHEAD: usize = 256;
        let (Scope::Exact(text) | Scope::Prefix(text)) = scope;
        let held = rule_id.len() + text.len() + command.len();
        held + json_len(rule_id) + json_len(text) + json_len(command) + OVERHEAD
    }

    pub fn stored_bytes(&self) -> usize {
        Rule::cost(&self.rule_id, &self.scope, &self.command)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "rule_id": self.rule_id,
            "scope": self.scope.to_json(),
            "lifetime": self.lifetime.as_str(),
            "session_id": self.session_id,
            "granted_at": self.granted_at,
            "command": self.command,
        })
    }

    pub fn from_json(value: &Value) -> Option<Rule> {
        let lifetime = Lifetime::parse(value["lifetime"].as_str()?)?;
        let session_id = match (&value["session_id"], lifetime) {
            (Value::Null, Lifetime::Always) => None,
            (Value::String(session_id), Lifetime::Session) => Some(session_id.clone()),
            _ => return None,
        };
        Some(Rule {
            rule_id: value["rule_id"].as_str()?.to_string(),
            scope: Scope::from_json(&value["scope"])?,
            lifetime,
            session_id,
            granted_at: value["granted_at"].as_f64()?,
            command: value["command"].as_str()?.to_string(),
        })
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

    #[test]
    fn a_rule_reads_back_from_its_json() {
        let rules = [
            Rule {
                rule_id: "a".repeat(32),
                scope: Scope::Prefix("git push".into()),
                lifetime: Lifetime::Always,
                session_id: None,
                granted_at: 1_795_477_000.25,
                command: "git push origin main".into(),
            },
            Rule {
                rule_id: "b".repeat(32),
                scope: Scope::Exact("echo \"hi\"\n\u{202e}".into()),
                lifetime: Lifetime::Session,
                session_id: Some("s1".into()),
                granted_at: 1.0,
                command: "echo \"hi\"\n\u{202e}".into(),
            },
        ];
        for rule in rules {
            assert_eq!(Rule::from_json(&rule.to_json()), Some(rule));
        }
        let mismatched = json!({"rule_id": "c", "scope": {"exact": "ls"}, "lifetime": "always",
            "session_id": "s1", "granted_at": 1.0, "command": "ls"});
        assert_eq!(
            Rule::from_json(&mismatched),
            None,
            "an always rule has no session"
        );
    }
}
