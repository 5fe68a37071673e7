//! Approval rules: what a human's "session" or "always" answer lets through
//! later without asking.
//!
//! A rule is data the human created from a command they saw: by default
//! that exact command, or a prefix of it the human picked (docs/PROTOCOL.md
//! §3.2). Nothing the agent sends (pattern keys, descriptions) decides what
//! a rule matches. A prefix is plain words (no shell control, quoting,
//! expansion or wildcard characters) that names the program it lets run:
//! never only a program that runs other programs or code (`RUNNERS`, the one
//! list, which the page reads through `GET /api/config`). It covers itself,
//! or itself followed by further plain words; a word starting with `-` (an
//! option) only when the human ticked "and any options". So a prefix never
//! covers a command that goes on with `;`, `&&`, `|`, `$(`, a redirection
//! or a newline, nor `git log --output=~/.bashrc` under `git log`. Each rule
//! is a record (`Rule`) named by the id of the approval that granted it, so
//! the human can list it, see where it came from, and revoke it; a rule
//! whose scope does not hold for its command is never granted, however it
//! arrives (`Scope::refusal`). An action that is not a command is covered
//! exactly, or by the wider scope the human picked on its confirmation
//! (its tool with any input, a URL prefix, a directory: `Scope::for_action`),
//! which must cover that very action, and is checked again whenever it is
//! applied (`Scope::refusal_for`).

use crate::core::action::Action;
use crate::core::action_scope::{directory, file_under, url_prefix, url_under};
use crate::core::prompt::{Choice, json_len};
use serde_json::{Value, json};

/// What a rule lets through.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Exactly this command.
    Exact(String),
    /// This command, or it followed by plain words: operands only, or any
    /// option too when `options` (the human ticked "and any options").
    Prefix { prefix: String, options: bool },
    /// Exactly this action that is not a command: its canonical JSON
    /// (`Action::key`). Never matches a command, whatever its text.
    Action(String),
    /// A `tool` action of this name, with any input.
    Tool(String),
    /// A `fetch` of this method whose URL is under this prefix
    /// (`core/action_scope.rs`: the same scheme, host and port, the path
    /// on segment boundaries).
    UrlPrefix { prefix: String, method: String },
    /// An `edit` or `write` (`action_type`) of a file whose clean path is
    /// under this directory (a path ending in `/`), by name.
    Directory {
        directory: String,
        action_type: &'static str,
    },
}

/// A program that runs other programs or code, named by its leading words
/// (a subcommand after the program, as `docker run`), and how many operands
/// it takes before the program or code it runs (`timeout 5 CMD`, `ssh HOST
/// CMD`). A prefix must name what such a program runs (docs/PROTOCOL.md
/// §3.2): `sudo` and `sudo -u root` are refused, `sudo apt-get` is not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runner {
    pub runs: &'static str,
    pub operands: usize,
}

const fn runner(runs: &'static str, operands: usize) -> Runner {
    Runner { runs, operands }
}

/// The operands of a program that runs others through its options, not an
/// operand (`find`'s `-exec`): however many a prefix holds, it never names
/// what runs, so no prefix of it is accepted.
pub const EVERY_OPERAND: usize = 1_000_000;

/// Every program a prefix may not end at (docs/PROTOCOL.md §3.2): ones that
/// run their operands as a program (privilege, environment, scheduling,
/// remote and container runners), shells and interpreters (their operand is
/// the script or code), and programs whose operand picks what code runs
/// (`make` targets, `git` subcommands and aliases, `npx` packages). `find`
/// runs programs through `-exec`: no prefix of it covers anything.
pub const RUNNERS: &[Runner] = &[
    // Run their operands as a program.
    runner("sudo", 0),
    runner("doas", 0),
    runner("su", 1),
    runner("run0", 0),
    runner("pkexec", 0),
    runner("runuser", 1),
    runner("env", 0),
    runner("xargs", 0),
    runner("nice", 0),
    runner("ionice", 0),
    runner("nohup", 0),
    runner("setsid", 0),
    runner("stdbuf", 0),
    runner("timeout", 1),
    runner("time", 0),
    runner("exec", 0),
    runner("eval", 0),
    runner("command", 0),
    runner("builtin", 0),
    runner("chroot", 1),
    runner("taskset", 1),
    runner("flock", 1),
    runner("watch", 0),
    runner("strace", 0),
    runner("ltrace", 0),
    runner("unshare", 0),
    runner("nsenter", 0),
    runner("firejail", 0),
    runner("systemd-run", 0),
    runner("script", 0),
    runner("busybox", 0),
    runner("ssh", 1),
    runner("docker run", 1),
    runner("docker exec", 1),
    runner("docker compose run", 1),
    runner("docker compose exec", 1),
    runner("podman run", 1),
    runner("podman exec", 1),
    runner("kubectl exec", 1),
    runner("kubectl run", 1),
    runner("find", EVERY_OPERAND),
    // Shells and interpreters: their operand is the script or code.
    runner("sh", 0),
    runner("bash", 0),
    runner("zsh", 0),
    runner("dash", 0),
    runner("ksh", 0),
    runner("csh", 0),
    runner("tcsh", 0),
    runner("fish", 0),
    runner("source", 0),
    runner(".", 0),
    runner("python", 0),
    runner("python2", 0),
    runner("python3", 0),
    runner("perl", 0),
    runner("ruby", 0),
    runner("node", 0),
    runner("nodejs", 0),
    runner("deno", 0),
    runner("bun", 0),
    runner("php", 0),
    runner("lua", 0),
    runner("tclsh", 0),
    runner("awk", 0),
    runner("gawk", 0),
    runner("mawk", 0),
    runner("nawk", 0),
    runner("sed", 0),
    // Their operand picks the code that runs.
    runner("make", 0),
    runner("git", 0),
    runner("npx", 0),
    runner("bunx", 0),
    runner("uvx", 0),
    runner("npm exec", 0),
    runner("pnpm dlx", 0),
    runner("pipx run", 0),
];

impl Runner {
    pub fn to_json(self) -> Value {
        json!({"runs": self.runs, "operands": self.operands})
    }
}

/// Why a scope was refused, as the client hears it (a 400).
pub const NOT_A_PREFIX: &str = "scope must be a prefix of the command that ends at a word boundary";
pub const NOT_PLAIN: &str =
    "a prefix must be plain words: no shell control, quoting, expansion or wildcard characters";

impl Scope {
    /// The scope a human picked for a command: the exact command when
    /// `picked` is `None`, else the prefix picked (trailing blanks dropped),
    /// which must hold for the command (`Scope::refusal`).
    pub fn for_command(command: &str, picked: Option<Scope>) -> Result<Scope, String> {
        let scope = match picked {
            None => return Ok(Scope::Exact(command.to_string())),
            Some(Scope::Exact(exact)) => Scope::Exact(exact),
            Some(Scope::Prefix { prefix, options }) => Scope::Prefix {
                prefix: prefix.trim_end_matches([' ', '\t']).to_string(),
                options,
            },
            Some(
                Scope::Action(_)
                | Scope::Tool(_)
                | Scope::UrlPrefix { .. }
                | Scope::Directory { .. },
            ) => return Err(NOT_A_PREFIX.to_string()),
        };
        match scope.refusal(command) {
            Some(refusal) => Err(refusal),
            None => Ok(scope),
        }
    }

    /// Why this scope may not be a rule granted on `command`, or `None`
    /// when it may: an exact scope must be the command; a prefix must be
    /// plain words that name a program which is not only a runner, and must
    /// cover the command. Checked when a rule is asked for and again
    /// whenever one is applied (docs/PROTOCOL.md §3.2).
    pub fn refusal(&self, command: &str) -> Option<String> {
        match self {
            Scope::Action(_)
            | Scope::Tool(_)
            | Scope::UrlPrefix { .. }
            | Scope::Directory { .. } => Some(NOT_A_PREFIX.to_string()),
            Scope::Exact(exact) => (exact != command).then(|| NOT_A_PREFIX.to_string()),
            Scope::Prefix { prefix, .. } => {
                let words: Vec<&str> = prefix
                    .split([' ', '\t'])
                    .filter(|w| !w.is_empty())
                    .collect();
                if words.is_empty() || !is_plain(prefix) {
                    return Some(NOT_PLAIN.to_string());
                }
                if !prefix_covers(prefix, command, true) {
                    return Some(NOT_A_PREFIX.to_string());
                }
                let runner = unnamed_runner(&words)?;
                Some(format!(
                    "a prefix may not end at {runner}: it runs other programs or code, so the prefix must also name what it runs (docs/PROTOCOL.md §3.2); pick a longer prefix or the exact command"
                ))
            }
        }
    }

    /// The scope a human picked for an action: a command's
    /// (`for_command`); for any other action exactly that action, or the
    /// wider scope picked (its tool by name, a URL prefix, a directory),
    /// which must cover the action asked under the prompt's `cwd`. A
    /// picked URL prefix or directory is normalized; its method or type is
    /// the action's, whatever `picked` holds.
    pub fn for_action(
        action: &Action,
        cwd: Option<&str>,
        picked: Option<Scope>,
    ) -> Result<Scope, String> {
        let scope = match (action.command(), picked) {
            (
                Some(_),
                Some(
                    picked @ (Scope::Action(_)
                    | Scope::Tool(_)
                    | Scope::UrlPrefix { .. }
                    | Scope::Directory { .. }),
                ),
            ) => return Err(wrong_type(&picked, action)),
            (Some(command), picked) => return Scope::for_command(command, picked),
            (None, None) => return Ok(Scope::Action(action.key())),
            (None, Some(picked)) => picked.normalized_for(action)?,
        };
        match scope.refusal_for(action, cwd) {
            Some(refusal) => Err(refusal),
            None => Ok(scope),
        }
    }

    /// A wider scope from a respond body, made ready to check against
    /// `action`: the URL prefix or directory normalized, the method or
    /// type taken from the action.
    fn normalized_for(self, action: &Action) -> Result<Scope, String> {
        let wrong = |scope: &Scope| wrong_type(scope, action);
        match (self, action) {
            (Scope::Tool(name), _) => Ok(Scope::Tool(name)),
            (Scope::UrlPrefix { prefix, .. }, Action::Fetch { method, .. }) => {
                Ok(Scope::UrlPrefix {
                    prefix: url_prefix(&prefix).ok_or(NOT_A_URL_PREFIX)?,
                    method: method.as_deref().unwrap_or("GET").to_string(),
                })
            }
            (
                Scope::Directory {
                    directory: picked, ..
                },
                Action::Edit { .. } | Action::Write { .. },
            ) => Ok(Scope::Directory {
                directory: directory(&picked).ok_or(NOT_A_DIRECTORY)?,
                action_type: action.type_name(),
            }),
            (scope, _) => Err(wrong(&scope)),
        }
    }

    /// Why this scope may not be a rule granted on `action` (asked in
    /// `cwd`), or `None`: a command's scope as `refusal` says; an action's
    /// only on exactly that action; a tool's on a tool of that name; a URL
    /// prefix or directory only when well formed and covering the action's
    /// URL (same method) or file (same type). Checked whenever a grant is
    /// applied.
    pub fn refusal_for(&self, action: &Action, cwd: Option<&str>) -> Option<String> {
        if let Some(malformed) = self.malformed() {
            return Some(malformed);
        }
        let wrong = || Some(wrong_type(self, action));
        match self {
            Scope::Exact(_) | Scope::Prefix { .. } => match action.command() {
                Some(command) => self.refusal(command),
                None => wrong(),
            },
            Scope::Action(key) => match action.command() {
                None => {
                    (*key != action.key()).then(|| "the rule's action is not the prompt's".into())
                }
                Some(_) => wrong(),
            },
            Scope::Tool(name) => {
                let Action::Tool { name: asked, .. } = action else {
                    return wrong();
                };
                (name != asked).then(|| NOT_THE_TOOL.into())
            }
            Scope::UrlPrefix { prefix, method } => {
                let Action::Fetch { url, method: asked } = action else {
                    return wrong();
                };
                if method != asked.as_deref().unwrap_or("GET") {
                    return Some(format!(
                        "the rule is for {method} requests, not the method asked"
                    ));
                }
                (!url_under(prefix, url)).then(|| URL_NOT_COVERED.into())
            }
            Scope::Directory {
                directory,
                action_type,
            } => {
                let (Action::Edit { path, .. } | Action::Write { path, .. }) = action else {
                    return wrong();
                };
                if *action_type != action.type_name() {
                    return wrong();
                }
                (!file_under(directory, path, cwd)).then(|| FILE_NOT_COVERED.into())
            }
        }
    }

    /// Why a scope, as stored, is not well formed: a tool without a name,
    /// a URL prefix or directory that is not normalized (`None` when it
    /// is, and for command and exact-action scopes, checked elsewhere).
    fn malformed(&self) -> Option<String> {
        match self {
            Scope::Exact(_) | Scope::Prefix { .. } | Scope::Action(_) => None,
            Scope::Tool(name) => name.is_empty().then(|| NOT_THE_TOOL.into()),
            Scope::UrlPrefix { prefix, method } => {
                let normal = url_prefix(prefix).as_deref() == Some(prefix.as_str());
                let method = !method.is_empty() && method.chars().all(|c| c.is_ascii_uppercase());
                (!normal || !method).then(|| NOT_A_URL_PREFIX.into())
            }
            Scope::Directory { directory: d, .. } => {
                directory(d).is_none().then(|| NOT_A_DIRECTORY.into())
            }
        }
    }

    /// Whether it covers this action (asked in `cwd`): a command scope only
    /// commands; any other scope what it may be granted on.
    pub fn covers(&self, action: &Action, cwd: Option<&str>) -> bool {
        match (self, action.command()) {
            (Scope::Exact(_) | Scope::Prefix { .. }, Some(command)) => self.matches(command),
            (Scope::Exact(_) | Scope::Prefix { .. }, None) => false,
            (
                Scope::Action(_)
                | Scope::Tool(_)
                | Scope::UrlPrefix { .. }
                | Scope::Directory { .. },
                _,
            ) => self.refusal_for(action, cwd).is_none(),
        }
    }

    /// What it covers in plain words, beside its `text` (the command,
    /// prefix, tool, URL prefix or directory): `GET /api/rules` shows it.
    pub fn plain_words(&self) -> String {
        match self {
            Scope::Exact(_) => "exactly this command".into(),
            Scope::Prefix { options: false, .. } => {
                "commands starting with this prefix, then only plain words that are not options"
                    .into()
            }
            Scope::Prefix { options: true, .. } => {
                "commands starting with this prefix, then any plain words, options included".into()
            }
            Scope::Action(_) => "exactly this action".into(),
            Scope::Tool(_) => "this tool, with any input".into(),
            Scope::UrlPrefix { method, .. } => format!(
                "{method} requests to any URL under this prefix: the same scheme, host and port, the path at or under it, any query"
            ),
            Scope::Directory { action_type, .. } => format!(
                "{action_type}s of any file under this directory, by name (named absolutely or under the agent's cwd; symlinks are not followed)"
            ),
        }
    }

    /// How the audit log names the match (docs/PROTOCOL.md §8).
    pub fn match_name(&self) -> &'static str {
        match self {
            Scope::Exact(_) => "exact",
            Scope::Prefix { options: false, .. } => "prefix",
            Scope::Prefix { options: true, .. } => "prefix_any_options",
            Scope::Action(_) => "action",
            Scope::Tool(_) => "tool",
            Scope::UrlPrefix { .. } => "url_prefix",
            Scope::Directory { .. } => "directory",
        }
    }

    pub fn matches(&self, command: &str) -> bool {
        match self {
            Scope::Action(_)
            | Scope::Tool(_)
            | Scope::UrlPrefix { .. }
            | Scope::Directory { .. } => false,
            Scope::Exact(exact) => command == exact,
            Scope::Prefix { prefix, options } => prefix_covers(prefix, command, *options),
        }
    }

    /// The text the scope holds: the command, the prefix, the action's
    /// JSON, the tool's name, the URL prefix or the directory.
    pub fn text(&self) -> &str {
        match self {
            Scope::Exact(text)
            | Scope::Prefix { prefix: text, .. }
            | Scope::Action(text)
            | Scope::Tool(text)
            | Scope::UrlPrefix { prefix: text, .. }
            | Scope::Directory {
                directory: text, ..
            } => text,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Scope::Exact(command) => json!({"exact": command}),
            Scope::Prefix {
                prefix,
                options: false,
            } => json!({"prefix": prefix}),
            Scope::Prefix {
                prefix,
                options: true,
            } => json!({"prefix": prefix, "options": true}),
            Scope::Action(key) => {
                let action: Value = serde_json::from_str(key).unwrap_or(Value::Null);
                json!({ "action": action })
            }
            Scope::Tool(name) => json!({ "tool": name }),
            Scope::UrlPrefix { prefix, method } => json!({"url_prefix": prefix, "method": method}),
            Scope::Directory {
                directory,
                action_type,
            } => json!({"directory": directory, "type": action_type}),
        }
    }

    pub fn from_json(value: &Value) -> Option<Scope> {
        if let Some(command) = value["exact"].as_str() {
            return Some(Scope::Exact(command.to_string()));
        }
        if let Some(action) = value.get("action").and_then(Action::from_json) {
            return Some(Scope::Action(action.key()));
        }
        if let Some(name) = value["tool"].as_str() {
            return Some(Scope::Tool(name.to_string()));
        }
        if let Some(prefix) = value["url_prefix"].as_str() {
            let method = value["method"].as_str()?.to_string();
            let prefix = prefix.to_string();
            return Some(Scope::UrlPrefix { prefix, method });
        }
        if let Some(directory) = value["directory"].as_str() {
            let action_type = match value["type"].as_str()? {
                "edit" => "edit",
                "write" => "write",
                _ => return None,
            };
            let directory = directory.to_string();
            return Some(Scope::Directory {
                directory,
                action_type,
            });
        }
        let options = match &value["options"] {
            Value::Null => false,
            options => options.as_bool()?,
        };
        value["prefix"].as_str().map(|p| Scope::Prefix {
            prefix: p.to_string(),
            options,
        })
    }
}

/// Why a wider scope was refused, as the client hears it (a 400).
pub const NOT_THE_TOOL: &str = "scope.tool must be the name of the tool asked";
pub const NOT_A_URL_PREFIX: &str = "scope.url_prefix must be an http or https URL of a scheme, host and path: no user, query or fragment, no `.` or `..` segment, `//`, `\\` or encoded `/`, `\\` or dots";
pub const URL_NOT_COVERED: &str = "scope.url_prefix must cover the URL asked: the same scheme, host and port, and a path that is the URL's or leads to it at a `/`";
pub const NOT_A_DIRECTORY: &str =
    "scope.directory must be an absolute path ending in `/`, without `.` or `..` segments or `//`";
pub const FILE_NOT_COVERED: &str = "scope.directory must contain the file asked: its path, absolute or under the prompt's cwd, read as written (no `.` or `..` segment, `//` or `~`)";

/// The 400 for a scope picked on an action it cannot apply to.
fn wrong_type(scope: &Scope, action: &Action) -> String {
    let applies_to = match scope {
        Scope::Exact(_) | Scope::Prefix { .. } => "command",
        Scope::Action(_) => "non-command",
        Scope::Tool(_) => "tool",
        Scope::UrlPrefix { .. } => "fetch",
        Scope::Directory { action_type, .. } => action_type,
    };
    format!(
        "a {} scope applies only to {applies_to} actions, not to this {} action",
        scope.match_name(),
        action.type_name()
    )
}

/// Whether `command` is `prefix`, or `prefix` followed by a blank and plain
/// words, none an option unless `options`.
fn prefix_covers(prefix: &str, command: &str, options: bool) -> bool {
    let Some(rest) = command.strip_prefix(prefix) else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let mut words = rest.split([' ', '\t']);
    let starts_blank = words.next() == Some("");
    starts_blank && is_plain(rest) && (options || !words.any(|word| word.starts_with('-')))
}

/// Text that the shell reads as plain words: no control, quoting,
/// expansion, redirection, wildcard or comment character, so every word is
/// passed to the program as it is written.
fn is_plain(text: &str) -> bool {
    const SHELL: &[char] = &[
        ';', '&', '|', '`', '<', '>', '(', ')', '$', '\\', '\'', '"', '*', '?', '[', ']', '{', '}',
        '#', '!', '^',
    ];
    !text
        .chars()
        .any(|c| (c.is_control() && c != '\t') || SHELL.contains(&c))
}

/// `NAME=value`: an assignment to the environment, not a program.
fn is_assignment(word: &str) -> bool {
    let Some((name, _)) = word.split_once('=') else {
        return false;
    };
    let mut chars = name.chars();
    let first = chars.next();
    first.is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The positions of the words after a program that are its operands: not
/// options, not a word right after an option without `=` (it may be that
/// option's argument, as `root` in `sudo -u root`), not assignments; every
/// word after `--`.
fn operand_positions(words: &[&str]) -> Vec<usize> {
    let mut positions = Vec::new();
    let mut after_option = false;
    let mut ended = false;
    for (at, word) in words.iter().enumerate() {
        if ended {
            positions.push(at);
        } else if *word == "--" {
            ended = true;
        } else if word.starts_with('-') {
            after_option = !word.contains('=');
            continue;
        } else if !after_option && !is_assignment(word) {
            positions.push(at);
        }
        after_option = false;
    }
    positions
}

/// The runner a prefix of these words ends at without naming what it runs
/// (`sudo`, `sudo -u root`, `env A=1`, `timeout 5`, `docker run img`), or
/// `None` when the prefix names a program that is not a runner, through any
/// runners before it (`sudo apt-get`, `timeout 5 make test`).
fn unnamed_runner(words: &[&str]) -> Option<String> {
    let mut at = words.iter().take_while(|w| is_assignment(w)).count();
    loop {
        let Some(word) = words.get(at) else {
            return Some("an environment assignment".to_string());
        };
        let program = word.rsplit('/').next().unwrap_or(word);
        let after = &words[at + 1..];
        let operands = operand_positions(after);
        let runner = RUNNERS
            .iter()
            .filter(|runner| {
                // A subcommand the prefix does not reach yet may be this one.
                let mut names = runner.runs.split(' ');
                names.next() == Some(program)
                    && names
                        .enumerate()
                        .all(|(i, name)| operands.get(i).is_none_or(|&p| after[p] == name))
            })
            .max_by_key(|runner| runner.runs.len())?;
        let skipped = (runner.runs.split(' ').count() - 1).saturating_add(runner.operands);
        match operands.get(skipped) {
            Some(&program_at) => at += 1 + program_at,
            None => return Some(format!("`{}`", runner.runs)),
        }
    }
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
        let text = scope.text();
        let held = rule_id.len() + text.len() + command.len();
        held + json_len(rule_id) + json_len(text) + json_len(command) + OVERHEAD
    }

    pub fn stored_bytes(&self) -> usize {
        Rule::cost(&self.rule_id, &self.scope, &self.command)
    }

    /// Why this rule, read back from stored data, may not stand: a command's
    /// scope must hold for the command it was granted on; an action's
    /// scope is that action itself (its JSON read back whole).
    pub fn refusal(&self) -> Option<String> {
        match &self.scope {
            Scope::Action(_)
            | Scope::Tool(_)
            | Scope::UrlPrefix { .. }
            | Scope::Directory { .. } => self.scope.malformed(),
            scope @ (Scope::Exact(_) | Scope::Prefix { .. }) => scope.refusal(&self.command),
        }
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

    fn prefix(prefix: &str, options: bool) -> Scope {
        Scope::Prefix {
            prefix: prefix.into(),
            options,
        }
    }

    #[test]
    fn a_rule_never_covers_more_than_the_human_chose() {
        let exact = Scope::for_command("reboot", None).unwrap();
        let cases = [
            (&exact, "reboot", true),
            (&exact, "reboot now", false),
            (&exact, "rm -rf / --no-preserve-root", false),
        ];
        for (scope, command, expected) in cases {
            assert_eq!(scope.matches(command), expected, "{scope:?} on {command:?}");
        }
        // (prefix, "and any options", command, covered)
        let table = [
            ("git push", false, "git push", true),
            ("git push", false, "git push origin", true),
            ("git push", false, "git push origin main", true),
            ("git push", false, "git pushx", false),
            ("git push", false, "git push; rm -rf /", false),
            ("git push", false, "git push && rm -rf /", false),
            ("git push", false, "git push || rm -rf /", false),
            ("git push", false, "git push | sh", false),
            ("git push", false, "git push & rm -rf /", false),
            ("git push", false, "git push $(rm -rf /)", false),
            ("git push", false, "git push `rm -rf /`", false),
            ("git push", false, "git push\nrm -rf /", false),
            ("git push", false, "git push\rrm -rf /", false),
            ("git push", false, "git push > /etc/passwd", false),
            ("git push", false, "git push >> ~/.bashrc", false),
            ("git push", false, "git push < /etc/shadow", false),
            ("git push", false, "git push origin 'a b'", false),
            ("git push", false, "git push origin \"$HOME\"", false),
            ("git push", false, "git push origin \\-f", false),
            ("git push", false, "git push origin *", false),
            ("git push", false, "git push origin {--force,x}", false),
            ("git push", false, "git push origin ?", false),
            ("git push", false, "git push origin [a]", false),
            ("git push", false, "git push # comment", false),
            ("git push", false, "git push origin\u{0}x", false),
            ("git push", false, "git push --force", false),
            ("git push", false, "git push origin -f", false),
            ("git push", false, "git push\t-f", false),
            ("git push", false, "git push origin\t--force", false),
            ("git push", true, "git push --force", true),
            ("git push", true, "git push origin\t-f main", true),
            ("git push", true, "git push --force; rm -rf /", false),
            ("git push", true, "git push --force > x", false),
            (
                "git log",
                false,
                "git log -1 --format=x --output=~/.bashrc",
                false,
            ),
            ("git log", false, "git log -- path", false),
            ("git log", false, "git log main ~/notes", true),
            (
                "git log",
                true,
                "git log -1 --format=x --output=~/.bashrc",
                true,
            ),
            ("git log -1", false, "git log -1", true),
            ("git log -1", false, "git log -1 main", true),
            ("git log -1", false, "git log -1 -p", false),
            ("sudo apt-get update", false, "sudo apt-get update", true),
            ("sudo apt-get", false, "sudo apt-get install -y x", false),
        ];
        for (text, options, command, expected) in table {
            let scope = prefix(text, options);
            assert_eq!(scope.matches(command), expected, "{scope:?} on {command:?}");
        }
    }

    #[test]
    fn a_prefix_is_plain_words_of_the_command() {
        let picked =
            |text: &str| Scope::for_command("git push origin main", Some(prefix(text, false)));
        assert_eq!(picked("git push"), Ok(prefix("git push", false)));
        assert_eq!(picked("git push  "), Ok(prefix("git push", false)));
        assert_eq!(picked("rm").unwrap_err(), NOT_A_PREFIX);
        assert_eq!(picked("git pu").unwrap_err(), NOT_A_PREFIX);
        assert_eq!(picked(" ").unwrap_err(), NOT_PLAIN);
        assert_eq!(picked("").unwrap_err(), NOT_PLAIN);
        let quoted = Scope::for_command("echo 'a b' c", Some(prefix("echo 'a b'", false)));
        assert_eq!(quoted.unwrap_err(), NOT_PLAIN);
        let chained = Scope::for_command("cd /x && rm y", Some(prefix("cd /x && rm", false)));
        assert_eq!(chained.unwrap_err(), NOT_PLAIN);
        let exact = Scope::for_command("sudo reboot", Some(Scope::Exact("sudo reboot".into())));
        assert_eq!(exact, Ok(Scope::Exact("sudo reboot".into())));
        let forged = Scope::Exact("ls".into()).refusal("rm -rf /");
        assert!(forged.is_some(), "an exact scope is its command");
    }

    #[test]
    fn a_prefix_never_ends_at_a_program_that_runs_others() {
        // (command, prefix, refused)
        let table = [
            ("sudo rm -rf /", "sudo", true),
            ("sudo -u root rm -rf /", "sudo -u root", true),
            ("sudo -u root rm -rf /", "sudo -u", true),
            ("sudo -- rm -rf /", "sudo --", true),
            ("sudo -- rm x", "sudo -- rm", false),
            ("sudo apt-get update", "sudo apt-get", false),
            ("/usr/bin/sudo reboot", "/usr/bin/sudo", true),
            ("doas reboot", "doas", true),
            ("su root x", "su root", true),
            ("bash x.sh", "bash", true),
            ("bash -c reboot", "bash -c", true),
            ("bash -c reboot", "bash -c reboot", true),
            ("bash x.sh a", "bash x.sh", false),
            ("sh -c x", "sh", true),
            ("zsh x", "zsh", true),
            ("env A=1 reboot", "env", true),
            ("env A=1 reboot", "env A=1", true),
            ("env -i A=1 ls x", "env -i A=1 ls", false),
            ("A=1 B=2 reboot", "A=1 B=2", true),
            ("A=1 ls x", "A=1 ls", false),
            ("xargs rm", "xargs", true),
            ("nice -n 5 reboot", "nice -n 5", true),
            ("nohup reboot", "nohup", true),
            ("timeout 5 reboot", "timeout 5", true),
            ("timeout 5 make test", "timeout 5 make", true),
            ("timeout 5 make test x", "timeout 5 make test", false),
            ("time reboot", "time", true),
            ("exec reboot", "exec", true),
            ("eval reboot", "eval", true),
            ("command reboot", "command", true),
            ("busybox rm x", "busybox", true),
            ("python x.py", "python", true),
            ("python3 -c x", "python3 -c", true),
            ("python3 -m pytest", "python3 -m", true),
            ("python3 tool.py --flag", "python3 tool.py", false),
            ("perl x", "perl", true),
            ("ruby x", "ruby", true),
            ("node x", "node", true),
            ("deno run x", "deno", true),
            ("bun x", "bun", true),
            ("php x", "php", true),
            ("lua x", "lua", true),
            ("awk x", "awk", true),
            ("find . x", "find", true),
            ("find . x", "find .", true),
            ("find . x y", "find . x", true),
            ("find . -name x -print", "find . -name x", true),
            ("ssh host reboot", "ssh", true),
            ("ssh host reboot", "ssh host", true),
            ("ssh -p 22 host uptime", "ssh -p 22 host uptime", false),
            ("docker run img sh", "docker", true),
            ("docker run img sh", "docker run", true),
            ("docker run img sh", "docker run img", true),
            ("docker run img sh x", "docker run img sh", true),
            ("docker run img ls x", "docker run img ls", false),
            ("docker exec c sh", "docker exec c", true),
            ("docker ps -a", "docker ps", false),
            ("docker compose run svc sh", "docker compose", true),
            ("podman exec c sh", "podman exec c", true),
            ("kubectl exec pod x", "kubectl exec pod", true),
            ("kubectl get pods", "kubectl get", false),
            ("make test", "make", true),
            ("make test x", "make test", false),
            ("npx pkg", "npx", true),
            ("git log", "git", true),
            ("git -c core.pager=x log", "git -c core.pager=x", true),
            (
                "git -c core.pager=x log a",
                "git -c core.pager=x log",
                false,
            ),
            ("git log -1", "git log", false),
        ];
        for (command, text, refused) in table {
            let scope = prefix(text, false);
            let refusal = scope.refusal(command);
            assert_eq!(
                refusal.is_some(),
                refused,
                "{text:?} on {command:?}: {refusal:?}"
            );
            let ticked = prefix(text, true).refusal(command);
            assert_eq!(
                ticked.is_some(),
                refused,
                "{text:?} with options on {command:?}"
            );
        }
    }

    fn action(value: Value) -> Action {
        Action::read(&value, "action").unwrap()
    }

    #[test]
    fn a_wider_action_scope_covers_what_the_human_saw_in_plain_words() {
        let tool = action(json!({"type": "tool", "name": "mcp__db__query", "input": {"q": 1}}));
        let fetch = action(json!({"type": "fetch", "url": "https://Example.org/docs/a?x=1"}));
        let edit = action(
            json!({"type": "edit", "path": "src/a.rs", "edits": [{"old": "1", "new": "2"}]}),
        );
        let write = action(json!({"type": "write", "path": "/src/b.rs", "content": "x"}));
        let cwd = Some("/src");
        let url = |prefix: &str| Scope::UrlPrefix {
            prefix: prefix.into(),
            method: String::new(),
        };
        let dir = |directory: &str| Scope::Directory {
            directory: directory.into(),
            action_type: "",
        };
        // (action, picked, the scope granted or the 400's start)
        let table: [(&Action, Scope, Result<Scope, &str>); 11] = [
            (
                &tool,
                Scope::Tool("mcp__db__query".into()),
                Ok(Scope::Tool("mcp__db__query".into())),
            ),
            (
                &tool,
                Scope::Tool("mcp__db__drop".into()),
                Err(NOT_THE_TOOL),
            ),
            (
                &fetch,
                url("HTTPS://example.org:443/docs"),
                Ok(Scope::UrlPrefix {
                    prefix: "https://example.org/docs".into(),
                    method: "GET".into(),
                }),
            ),
            (&fetch, url("https://example.org/doc"), Err(URL_NOT_COVERED)),
            (
                &fetch,
                url("https://example.org/docs?x=1"),
                Err(NOT_A_URL_PREFIX),
            ),
            (&fetch, url("https://u@example.org/"), Err(NOT_A_URL_PREFIX)),
            (
                &edit,
                dir("/src/"),
                Ok(Scope::Directory {
                    directory: "/src/".into(),
                    action_type: "edit",
                }),
            ),
            (&edit, dir("/src/a/"), Err(FILE_NOT_COVERED)),
            (&write, dir("/src"), Err(NOT_A_DIRECTORY)),
            (
                &write,
                Scope::Tool("x".into()),
                Err("a tool scope applies only to tool actions"),
            ),
            (
                &tool,
                dir("/src/"),
                Err("a directory scope applies only to"),
            ),
        ];
        for (asked, picked, expected) in table {
            let got = Scope::for_action(asked, cwd, Some(picked.clone()));
            match (&got, expected) {
                (Ok(scope), Ok(expected)) => {
                    assert_eq!(*scope, expected, "{picked:?}");
                    assert!(
                        scope.covers(asked, cwd),
                        "{scope:?} covers what it was granted on"
                    );
                    assert_eq!(Scope::from_json(&scope.to_json()).as_ref(), Some(scope));
                    assert!(!scope.plain_words().is_empty());
                }
                (Err(error), Err(start)) => {
                    assert!(error.starts_with(start), "{picked:?}: {error}")
                }
                (got, expected) => panic!("{picked:?}: got {got:?}, expected {expected:?}"),
            }
        }
        // What a granted scope covers later, and what it never does.
        let tool_rule = Scope::Tool("mcp__db__query".into());
        let url_rule = Scope::UrlPrefix {
            prefix: "https://example.org/docs".into(),
            method: "GET".into(),
        };
        let dir_rule = Scope::Directory {
            directory: "/src/".into(),
            action_type: "edit",
        };
        let edit_of = |path: &str| {
            action(json!({"type": "edit", "path": path, "edits": [{"old": "a", "new": "b"}]}))
        };
        let fetch_of = |url: &str, method: &str| {
            action(json!({"type": "fetch", "url": url, "method": method}))
        };
        let cases = [
            (
                &tool_rule,
                action(json!({"type": "tool", "name": "mcp__db__query", "input": {"q": "drop"}})),
                true,
            ),
            (
                &tool_rule,
                action(json!({"type": "tool", "name": "mcp__db__query2"})),
                false,
            ),
            (
                &tool_rule,
                action(json!({"type": "command", "command": "mcp__db__query"})),
                false,
            ),
            (
                &url_rule,
                fetch_of("https://example.org/docs/x", "GET"),
                true,
            ),
            (
                &url_rule,
                fetch_of("https://example.org/docs/x", "POST"),
                false,
            ),
            (
                &url_rule,
                fetch_of("https://example.org.evil/docs/x", "GET"),
                false,
            ),
            (
                &url_rule,
                fetch_of("https://example.org/docs/../x", "GET"),
                false,
            ),
            (
                &url_rule,
                fetch_of("https://example.org/docs2", "GET"),
                false,
            ),
            (&dir_rule, edit_of("/src/lib/x.rs"), true),
            (&dir_rule, edit_of("lib/x.rs"), true),
            (&dir_rule, edit_of("/src/../etc/passwd"), false),
            (&dir_rule, edit_of("../etc/passwd"), false),
            (&dir_rule, edit_of("/src2/x"), false),
            (
                &dir_rule,
                action(json!({"type": "write", "path": "/src/x", "content": ""})),
                false,
            ),
        ];
        for (scope, asked, covered) in cases {
            assert_eq!(scope.covers(&asked, cwd), covered, "{scope:?} on {asked:?}");
            assert!(
                !scope.matches(asked.command().unwrap_or("")),
                "never a command"
            );
        }
        let forged = Scope::UrlPrefix {
            prefix: "https://EXAMPLE.org/docs".into(),
            method: "GET".into(),
        };
        assert!(
            forged.refusal_for(&fetch, cwd).is_some(),
            "a stored prefix is normalized"
        );
    }

    #[test]
    fn a_rule_reads_back_from_its_json() {
        let rules = [
            Rule {
                rule_id: "a".repeat(32),
                scope: prefix("git push", true),
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
