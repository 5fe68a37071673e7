//! Agents' permission hooks as values (docs/agents.md): an agent's hook
//! input in, the prompt to submit, and from its outcome the hook's answer
//! out. Pure: no I/O, no clock; `askgate hook AGENT` (cli/hook.rs) does the
//! asking over HTTP.
//!
//! Invariants: nothing but a human's approval (or a rule the human granted)
//! is ever an allow; a timeout is said to be one, never a denial; a failure
//! to ask (askgate down, a bad token, a malformed input) fails closed,
//! denying or handing back to the agent's own prompt, as configured. Each
//! agent's file says only how its hooks read and answer.

pub mod action;
pub mod claude_code;
pub mod codex;
pub mod gemini;
pub mod hermes;

use action::{Fields, ToolKind};
use serde_json::{Value, json};

/// The agents with a hook.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Agent {
    ClaudeCode,
    Codex,
    Gemini,
    Hermes,
}

impl Agent {
    pub const ALL: [Agent; 4] = [
        Agent::ClaudeCode,
        Agent::Codex,
        Agent::Gemini,
        Agent::Hermes,
    ];

    /// Its name on the command line: `askgate hook claude-code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Agent::ClaudeCode => "claude-code",
            Agent::Codex => "codex",
            Agent::Gemini => "gemini",
            Agent::Hermes => "hermes",
        }
    }

    pub fn parse(name: &str) -> Option<Agent> {
        Agent::ALL.into_iter().find(|agent| agent.as_str() == name)
    }

    /// The hook events it sends that askgate answers.
    fn events(self) -> &'static [&'static str] {
        match self {
            Agent::ClaudeCode => claude_code::EVENTS,
            Agent::Codex => codex::EVENTS,
            Agent::Gemini => gemini::EVENTS,
            Agent::Hermes => hermes::EVENTS,
        }
    }

    fn fields(self) -> &'static Fields {
        match self {
            Agent::ClaudeCode => &claude_code::FIELDS,
            Agent::Codex => &codex::FIELDS,
            Agent::Gemini => &gemini::FIELDS,
            Agent::Hermes => &hermes::FIELDS,
        }
    }

    pub fn tool_kind(self, tool_name: &str) -> ToolKind {
        match self {
            Agent::ClaudeCode => claude_code::tool_kind(tool_name),
            Agent::Codex => codex::tool_kind(tool_name),
            Agent::Gemini => gemini::tool_kind(tool_name),
            Agent::Hermes => hermes::tool_kind(tool_name),
        }
    }

    /// The tools that pass without asking unless `--allow-tools` says
    /// otherwise: those that only read the work directory or keep notes.
    pub fn default_allowed(self) -> &'static [&'static str] {
        match self {
            Agent::ClaudeCode => claude_code::READ_ONLY,
            Agent::Codex => codex::READ_ONLY,
            Agent::Gemini => gemini::READ_ONLY,
            Agent::Hermes => hermes::READ_ONLY,
        }
    }

    /// The hook's answer, for the event it was asked about.
    pub fn render(self, event: &str, verdict: &Verdict) -> HookOutput {
        match self {
            Agent::ClaudeCode => claude_code::render(event, verdict),
            Agent::Codex => codex::render(event, verdict),
            Agent::Gemini => gemini::render(event, verdict),
            Agent::Hermes => hermes::render(event, verdict),
        }
    }

    /// The answer when the input or the flags cannot be read, so the event
    /// is not known: exit 2 with the reason on stderr blocks the call in
    /// Claude Code, Codex and Gemini CLI; hermes-agent reads only its JSON
    /// block. To ask is to say nothing.
    pub fn render_unread(self, verdict: &Verdict) -> HookOutput {
        let reason = match verdict {
            Verdict::Deny { reason } => reason,
            Verdict::Pass | Verdict::Allow { .. } | Verdict::Ask { .. } => {
                return HookOutput::silent();
            }
        };
        match self {
            Agent::ClaudeCode | Agent::Codex | Agent::Gemini => HookOutput::block(reason),
            Agent::Hermes => hermes::block(reason),
        }
    }
}

/// One tool call as the hook receives it.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    pub event: String,
    /// The agent's own session id.
    pub agent_session: String,
    pub cwd: String,
    pub tool_name: String,
    pub tool_input: Value,
}

/// Reads a hook's input: the fields every agent's hook sends alike
/// (`hook_event_name`, `session_id`, `cwd`, `tool_name`, `tool_input`).
pub fn read_call(agent: Agent, input: &str) -> Result<ToolCall, String> {
    let value: Value =
        serde_json::from_str(input).map_err(|error| format!("the input is not JSON ({error})"))?;
    let text = |field: &str| match value.get(field) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
        _ => Err(format!("the input has no {field}")),
    };
    let event = text("hook_event_name")?;
    if !agent.events().contains(&event.as_str()) {
        return Err(format!(
            "askgate answers {} only, not {event}",
            agent.events().join(" and ")
        ));
    }
    let tool_input = match value.get("tool_input") {
        Some(input @ Value::Object(_)) => input.clone(),
        _ => return Err("the input has no tool_input object".into()),
    };
    Ok(ToolCall {
        event,
        // hermes-agent may have none yet; the session is then the project's.
        agent_session: text("session_id").unwrap_or_default(),
        cwd: text("cwd")?,
        tool_name: text("tool_name")?,
        tool_input,
    })
}

/// What the human is given to do without being asked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fallback {
    /// Hand back to the agent's own permission prompt.
    Ask,
    Deny,
}

impl Fallback {
    pub fn parse(name: &str) -> Option<Fallback> {
        match name {
            "ask" => Some(Fallback::Ask),
            "deny" => Some(Fallback::Deny),
            _ => None,
        }
    }
}

/// How a hook asks: from its flags and environment.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The askgate session, instead of one named after the agent's.
    pub session: Option<String>,
    /// Seconds the human has to answer.
    pub timeout_seconds: i64,
    pub on_timeout: Fallback,
    pub on_error: Fallback,
    /// Tools that pass without asking; `None` for the agent's read-only ones.
    pub allow_tools: Option<Vec<String>>,
    /// The hex key of `askgate receipts key`: an allow only on a receipt it
    /// verifies for the very call that runs (docs/PROTOCOL.md §10).
    pub verify_key: Option<String>,
}

impl Settings {
    pub const DEFAULT_TIMEOUT_SECONDS: i64 = 300;

    pub fn new() -> Settings {
        Settings {
            session: None,
            timeout_seconds: Settings::DEFAULT_TIMEOUT_SECONDS,
            on_timeout: Fallback::Deny,
            on_error: Fallback::Deny,
            allow_tools: None,
            verify_key: None,
        }
    }

    /// The flags and the variables that set them.
    pub const VARIABLES: [(&'static str, &'static str); 6] = [
        ("--timeout", "ASKGATE_HOOK_TIMEOUT"),
        ("--on-timeout", "ASKGATE_ON_TIMEOUT"),
        ("--on-error", "ASKGATE_ON_ERROR"),
        ("--allow-tools", "ASKGATE_ALLOW_TOOLS"),
        ("--session", "ASKGATE_SESSION"),
        ("--verify-key", "ASKGATE_VERIFY_KEY"),
    ];

    /// The defaults under the variables of `VARIABLES`.
    pub fn from_env(env: &impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let mut settings = Settings::new();
        for (flag, name) in Settings::VARIABLES {
            // An empty key is none, as `askgate approve` reads it.
            let empty_key = |value: &String| flag == "--verify-key" && value.is_empty();
            if let Some(value) = env(name).filter(|value| !empty_key(value)) {
                settings
                    .set(flag, value)
                    .map_err(|why| format!("{name}: {why}"))?;
            }
        }
        Ok(settings)
    }

    /// Sets the flag `flag` to `value`; a flag not of `VARIABLES` is an error.
    pub fn set(&mut self, flag: &str, value: String) -> Result<(), String> {
        let fallback = |name: String| {
            Fallback::parse(&name).ok_or(format!("{flag} takes deny or ask, not {name}"))
        };
        match flag {
            "--timeout" => {
                self.timeout_seconds = value
                    .parse::<i64>()
                    .ok()
                    .filter(|seconds| *seconds > 0)
                    .ok_or(format!("invalid timeout: {value}"))?
            }
            "--on-timeout" => self.on_timeout = fallback(value)?,
            "--on-error" => self.on_error = fallback(value)?,
            "--allow-tools" => {
                let tools = value.split(',').map(str::trim).filter(|t| !t.is_empty());
                self.allow_tools = Some(tools.map(String::from).collect())
            }
            "--session" => self.session = Some(value),
            "--verify-key" => self.verify_key = Some(value),
            _ => return Err(format!("unknown flag: {flag}")),
        }
        Ok(())
    }

    fn allows(&self, agent: Agent, tool_name: &str) -> bool {
        match &self.allow_tools {
            Some(tools) => tools.iter().any(|tool| tool == tool_name),
            None => agent.default_allowed().contains(&tool_name),
        }
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings::new()
    }
}

/// What the hook does with a call: let it pass, or ask the human.
#[derive(Debug, PartialEq)]
pub enum Plan {
    Pass,
    Ask { session_id: String, body: Value },
}

/// The askgate session of an agent's session: the project directory's
/// name and a short id from the agent's session id (`myrepo-1a2b3c`), so a
/// human tells them apart on a phone and "Allow session" lasts one agent
/// session.
pub fn session_name(cwd: &str, agent_session: &str) -> String {
    let dir = cwd.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let safe: String = dir
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() || "._-".contains(c) {
            true => c,
            false => '-',
        })
        .take(48)
        .collect();
    let digest = ring::digest::digest(&ring::digest::SHA256, agent_session.as_bytes());
    let short: String = digest.as_ref()[..3]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    match safe.trim_matches('-').is_empty() {
        true => format!("agent-{short}"),
        false => format!("{safe}-{short}"),
    }
}

/// The call's plan: a tool the policy lets through passes; any other is
/// an approval of its action (docs/PROTOCOL.md §5.2), with the agent, the
/// session's directory and what the agent said the call is for as its
/// `reason` (the agent's claim, shown apart from what runs).
pub fn plan(agent: Agent, settings: &Settings, call: &ToolCall) -> Plan {
    if settings.allows(agent, &call.tool_name) {
        return Plan::Pass;
    }
    let kind = agent.tool_kind(&call.tool_name);
    let fields = agent.fields();
    let action = action::action(kind, fields, &call.tool_name, &call.tool_input, &call.cwd);
    let session_id = settings
        .session
        .clone()
        .unwrap_or_else(|| session_name(&call.cwd, &call.agent_session));
    let mut body = json!({
        "session_id": session_id,
        "action": action,
        "agent": agent.as_str(),
        "cwd": call.cwd,
        "timeout_seconds": settings.timeout_seconds,
    });
    let said = call.tool_input.get("description").and_then(Value::as_str);
    if let Some(said) = said.map(str::trim).filter(|said| !said.is_empty()) {
        body["reason"] = said.into();
    }
    Plan::Ask { session_id, body }
}

/// The hook's decision.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// No opinion: the agent decides as it would without askgate.
    Pass,
    Allow {
        reason: String,
        /// The tool input to run instead (the human edited the action).
        updated_input: Option<Value>,
        /// The human's note, for the model.
        note: Option<String>,
    },
    Deny {
        reason: String,
    },
    /// Hand back to the agent's own prompt, saying why.
    Ask {
        reason: String,
    },
}

/// The verdict of a wait's final body (docs/PROTOCOL.md §5.2): the human's
/// answer, an expiry or a cancellation.
pub fn verdict(agent: Agent, settings: &Settings, call: &ToolCall, outcome: &Value) -> Verdict {
    let text = |field: &str| {
        outcome[field]
            .as_str()
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_string)
    };
    match (text("status").as_deref(), text("choice").as_deref()) {
        (Some("answered"), Some("deny")) => Verdict::Deny {
            reason: with_note(
                match text("reason") {
                    Some(reason) => format!("denied by the human through askgate: {reason}"),
                    None => "denied by the human through askgate".into(),
                },
                text("note"),
            ),
        },
        (Some("answered"), Some(choice @ ("once" | "session" | "always"))) => {
            allowed(agent, call, choice, outcome, text("note"))
        }
        (Some("expired"), _) => fallback(
            settings.on_timeout,
            format!(
                "no answer from the human within {} s through askgate",
                settings.timeout_seconds
            ),
        ),
        (Some("cancelled"), _) => Verdict::Deny {
            reason: "the askgate prompt was cancelled before the human answered".into(),
        },
        _ => fallback(
            settings.on_error,
            format!("askgate gave an outcome the hook does not know: {outcome}"),
        ),
    }
}

fn allowed(
    agent: Agent,
    call: &ToolCall,
    choice: &str,
    outcome: &Value,
    note: Option<String>,
) -> Verdict {
    let by = match outcome["auto"] == true {
        true => format!("by a rule the human granted through askgate ({choice})"),
        false => format!("approved by the human through askgate ({choice})"),
    };
    let Some(edited) = outcome.get("edited").filter(|edited| !edited.is_null()) else {
        return Verdict::Allow {
            reason: by,
            updated_input: None,
            note,
        };
    };
    let kind = agent.tool_kind(&call.tool_name);
    let fields = agent.fields();
    match action::edited_input(kind, fields, &call.tool_name, &call.tool_input, edited) {
        Some(input) => Verdict::Allow {
            reason: format!("{by}, as the human edited it"),
            updated_input: Some(input),
            note,
        },
        None => Verdict::Deny {
            reason: with_note(
                format!(
                    "the human approved an edited action that {} cannot run in place of this {} call: {edited}",
                    agent.as_str(),
                    call.tool_name
                ),
                note,
            ),
        },
    }
}

fn with_note(reason: String, note: Option<String>) -> String {
    match note {
        Some(note) => format!("{reason}\nnote from the human: {note}"),
        None => reason,
    }
}

fn fallback(fallback: Fallback, why: String) -> Verdict {
    match fallback {
        Fallback::Ask => Verdict::Ask { reason: why },
        Fallback::Deny => Verdict::Deny {
            reason: format!("{why}; not run"),
        },
    }
}

/// The verdict when askgate could not be asked: `why` says what failed,
/// and the reason what to fix.
pub fn failed(settings: &Settings, why: &str) -> Verdict {
    let fix = match why {
        why if why.contains("(401)") || why.contains("(403)") => {
            "set ASKGATE_TOKEN to askgate's agent token"
        }
        why if why.contains("cannot reach") || why.contains("has not answered") => {
            "start askgate, or set ASKGATE_URL to where it listens"
        }
        _ => "see askgate's log",
    };
    fallback(
        settings.on_error,
        format!("askgate could not ask the human ({why}); to fix: {fix}"),
    )
}

/// The verdict for an input the hook cannot read.
pub fn malformed(settings: &Settings, agent: Agent, why: &str) -> Verdict {
    fallback(
        settings.on_error,
        format!(
            "askgate hook {}: {why}; configure it as docs/agents.md says",
            agent.as_str()
        ),
    )
}

/// What the hook process says: its stdout, its stderr and its exit code.
/// Never exit 1, which the agents take for "go ahead".
#[derive(Clone, Debug, PartialEq)]
pub struct HookOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit: u8,
}

impl HookOutput {
    pub fn json(value: Value) -> HookOutput {
        HookOutput {
            stdout: value.to_string(),
            stderr: String::new(),
            exit: 0,
        }
    }

    pub fn silent() -> HookOutput {
        HookOutput {
            stdout: String::new(),
            stderr: String::new(),
            exit: 0,
        }
    }

    /// Blocks the tool by exit code 2, with the reason on stderr: the one
    /// answer every agent's hooks read alike.
    pub fn block(reason: &str) -> HookOutput {
        HookOutput {
            stdout: String::new(),
            stderr: reason.to_string(),
            exit: 2,
        }
    }
}

#[cfg(test)]
mod tests;
