//! `askgate hook claude-code|codex|gemini` (docs/agents.md): an agent's
//! permission hook. Reads the hook's JSON on stdin, lets the policy's
//! read-only tools pass, asks the human about the rest through askgate,
//! and prints the agent's answer; what is asked and answered is
//! `hooks/`'s, pure.
//!
//! Invariants: it never allows without the human's approval, never exits
//! 1 (which the agents take for "go ahead") and never panics on what it
//! reads: every failure is a deny (or the agent's own prompt, by choice)
//! saying what to fix; a signal cancels the prompt before it exits.

use crate::cli::client::{COMMON_USAGE, Connection, visible};
use crate::cli::interrupt;
use crate::cli::receipt;
use crate::core::kind::Kind;
use crate::hooks::{self, Agent, HookOutput, Plan, Settings, Verdict};
use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::Arc;

pub const HOOK_USAGE: &str = "askgate hook claude-code|codex|gemini|hermes [--timeout SECS] [--on-timeout deny|ask] [--on-error deny|ask] [--allow-tools A,B,...] [--session S]\n    \
    reads the agent's hook JSON on stdin and prints its answer (docs/agents.md); --timeout (ASKGATE_HOOK_TIMEOUT, default 300) is how long the human has, \
    --on-timeout (ASKGATE_ON_TIMEOUT) and --on-error (ASKGATE_ON_ERROR, askgate unreachable, a bad token or input) deny by default or hand back to the agent's own prompt, \
    --allow-tools (ASKGATE_ALLOW_TOOLS) names the tools that pass without asking (default: the agent's read-only ones), \
    --session (ASKGATE_SESSION) replaces the session named after the project and the agent's session, \
    --verify-key (ASKGATE_VERIFY_KEY, from askgate receipts key) allows only on a signed receipt for the call that runs";

/// The most a hook input may weigh: a Write of a large file, with room.
const MAX_INPUT: u64 = 8 << 20;

#[derive(Debug, PartialEq)]
struct Hook {
    agent: Agent,
    settings: Settings,
    connection: Connection,
}

pub fn main(args: &[String]) -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let (agent, hook) = match args.first().map(|name| (Agent::parse(name), name)) {
        Some((Some(agent), _)) => (agent, parse(agent, &args[1..], env)),
        Some((None, name)) => return usage(None, &format!("no hook for {name}")),
        None => return usage(None, "which agent's hook?"),
    };
    let hook = match hook {
        Ok(hook) => hook,
        Err(message) => return usage(Some(agent), &message),
    };
    let mut input = String::new();
    let read = std::io::stdin().take(MAX_INPUT).read_to_string(&mut input);
    let output = match read.map_err(|error| format!("cannot read the hook's input: {error}")) {
        Ok(_) => answer(&hook, &input, env("ASKGATE_TOKEN")),
        Err(why) => agent.render_unread(&hooks::malformed(&hook.settings, agent, &why)),
    };
    emit(&output)
}

/// A usage error blocks the tool (as the agent reads a block, or exit 2
/// with why on stderr): a hook that cannot run must not let the call
/// through.
fn usage(agent: Option<Agent>, message: &str) -> ExitCode {
    let reason = format!("askgate hook: {message}\nusage: {HOOK_USAGE}\n{COMMON_USAGE}");
    let output = match agent {
        Some(agent) => agent.render_unread(&Verdict::Deny { reason }),
        None => HookOutput::block(&reason),
    };
    emit(&output)
}

fn emit(output: &HookOutput) -> ExitCode {
    if !output.stdout.is_empty() {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", output.stdout);
        let _ = stdout.flush();
    }
    if !output.stderr.is_empty() {
        eprintln!("{}", visible(&output.stderr));
    }
    ExitCode::from(output.exit)
}

/// The answer to one hook input, asking the human when the policy says.
fn answer(hook: &Hook, input: &str, token: Option<String>) -> HookOutput {
    let agent = hook.agent;
    let call = match hooks::read_call(agent, input) {
        Ok(call) => call,
        Err(why) => return agent.render_unread(&hooks::malformed(&hook.settings, agent, &why)),
    };
    let (session_id, body) = match hooks::plan(agent, &hook.settings, &call) {
        Plan::Pass => return agent.render(&call.event, &Verdict::Pass),
        Plan::Ask { session_id, body } => (session_id, body),
    };
    let client = match hook.connection.client(token) {
        Ok(client) => Arc::new(client),
        Err(why) => return agent.render(&call.event, &hooks::failed(&hook.settings, &why)),
    };
    let event = call.event.clone();
    let last_word: interrupt::LastWord = Box::new(move |signal| {
        let why = format!(
            "the askgate hook was stopped (signal {signal}) before the human answered; its prompt was cancelled; not run"
        );
        let output = agent.render(&event, &Verdict::Deny { reason: why });
        let _ = emit(&output);
        output.exit
    });
    let retry = hook.connection.retry;
    let verdict = match interrupt::ask(client, Kind::Approval, &session_id, &body, retry, last_word)
    {
        Ok((outcome, id)) => {
            let verdict = hooks::verdict(agent, &hook.settings, &call, &outcome);
            let key = hook.settings.verify_key.as_deref();
            receipt::gate(verdict, key, &body, &outcome, &id, receipt::now())
        }
        Err(why) => hooks::failed(&hook.settings, &why),
    };
    agent.render(&call.event, &verdict)
}

fn parse(
    agent: Agent,
    args: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Hook, String> {
    let mut connection = Connection::from_env(&env);
    let mut settings = Settings::from_env(&env)?;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_string())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or(format!("{flag} needs a value"))
        };
        if !connection.take(flag, &mut value)? {
            settings.set(flag, value()?)?;
        }
    }
    Ok(Hook {
        agent,
        settings,
        connection,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::Fallback;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn flags_over_the_environment() {
        let env = |name: &str| match name {
            "ASKGATE_HOOK_TIMEOUT" => Some("60".to_string()),
            "ASKGATE_ALLOW_TOOLS" => Some("Read, Bash".to_string()),
            "ASKGATE_URL" => Some("http://h:1".to_string()),
            _ => None,
        };
        let hook = parse(Agent::ClaudeCode, &[], env).unwrap();
        assert_eq!(hook.settings.timeout_seconds, 60);
        assert_eq!(
            hook.settings.allow_tools,
            Some(vec!["Read".into(), "Bash".into()])
        );
        assert_eq!(hook.connection.server, "http://h:1");
        let flags = args(&[
            "--timeout=90",
            "--on-timeout",
            "ask",
            "--on-error=ask",
            "--allow-tools",
            "",
            "--server",
            "http://x",
        ]);
        let hook = parse(Agent::ClaudeCode, &flags, env).unwrap();
        assert_eq!(
            (
                hook.settings.timeout_seconds,
                hook.settings.on_timeout,
                hook.settings.on_error
            ),
            (90, Fallback::Ask, Fallback::Ask)
        );
        assert_eq!(hook.settings.allow_tools, Some(vec![]));
        assert_eq!(hook.connection.server, "http://x");
        for bad in [
            &["--timeout", "0"][..],
            &["--on-timeout", "allow"],
            &["--bogus", "1"],
            &["--timeout"],
        ] {
            assert!(
                parse(Agent::Codex, &args(bad), |_| None).is_err(),
                "{bad:?}"
            );
        }
        let bad_env = |name: &str| (name == "ASKGATE_ON_ERROR").then(|| "allow".to_string());
        let error = parse(Agent::Gemini, &[], bad_env).unwrap_err();
        assert!(error.contains("ASKGATE_ON_ERROR"), "{error}");
    }

    #[test]
    fn what_cannot_be_read_is_blocked_or_handed_back_never_allowed() {
        let hook = parse(Agent::ClaudeCode, &[], |_| None).unwrap();
        let output = answer(&hook, "{not json", None);
        assert_eq!(output.exit, 2);
        assert!(output.stderr.contains("not JSON"), "{}", output.stderr);
        let ask = parse(Agent::ClaudeCode, &args(&["--on-error", "ask"]), |_| None).unwrap();
        assert_eq!(answer(&ask, "{not json", None), HookOutput::silent());
    }
}
