//! The hooks as values: inputs read, calls planned, outcomes turned into
//! verdicts, and verdicts into each agent's answer, checked as tables.

use super::*;

fn call(tool_name: &str, tool_input: Value) -> ToolCall {
    ToolCall {
        event: "PreToolUse".into(),
        agent_session: "8d3f6a1e-0b7c".into(),
        cwd: "/home/u/my repo".into(),
        tool_name: tool_name.into(),
        tool_input,
    }
}

#[test]
fn inputs_are_read_or_refused_with_what_is_wrong() {
    let good = r#"{"session_id": "s", "cwd": "/r", "hook_event_name": "PreToolUse",
                   "tool_name": "Bash", "tool_input": {"command": "ls"}, "tool_use_id": "t"}"#;
    let read = read_call(Agent::ClaudeCode, good).unwrap();
    assert_eq!((read.tool_name.as_str(), read.cwd.as_str()), ("Bash", "/r"));
    for (agent, input, error) in [
        (Agent::ClaudeCode, "not json", "the input is not JSON"),
        (Agent::ClaudeCode, "{}", "the input has no hook_event_name"),
        (
            Agent::Gemini,
            good,
            "askgate answers BeforeTool only, not PreToolUse",
        ),
        (
            Agent::ClaudeCode,
            r#"{"hook_event_name": "PreToolUse", "tool_input": 3}"#,
            "the input has no tool_input object",
        ),
    ] {
        let got = read_call(agent, input).unwrap_err();
        assert!(got.contains(error), "{input}: {got}");
    }
}

#[test]
fn sessions_are_named_after_the_project_and_the_agent_session() {
    let name = session_name("/home/u/my repo", "8d3f6a1e-0b7c");
    assert!(
        name.starts_with("my-repo-") && name.len() == "my-repo-".len() + 6,
        "{name}"
    );
    assert_eq!(name, session_name("/home/u/my repo/", "8d3f6a1e-0b7c"));
    assert_ne!(name, session_name("/home/u/my repo", "another"));
    assert!(session_name("/", "x").starts_with("agent-"));
    crate::core::validate::session_id(&session_name(&"é/".repeat(200), "x")).unwrap();
}

#[test]
fn read_only_tools_pass_and_the_rest_are_asked() {
    let settings = Settings::new();
    let read = call("Read", json!({"file_path": "/etc/hosts"}));
    assert_eq!(plan(Agent::ClaudeCode, &settings, &read), Plan::Pass);
    let bash = call("Bash", json!({"command": "make", "description": "Build"}));
    let Plan::Ask { session_id, body } = plan(Agent::ClaudeCode, &settings, &bash) else {
        panic!("Bash is asked");
    };
    assert_eq!(session_id, session_name("/home/u/my repo", "8d3f6a1e-0b7c"));
    assert_eq!(
        body,
        json!({"session_id": session_id,
               "action": {"type": "command", "command": "make", "cwd": "/home/u/my repo"},
               "agent": "claude-code", "cwd": "/home/u/my repo", "reason": "Build",
               "timeout_seconds": 300})
    );
    let only_bash = Settings {
        allow_tools: Some(vec!["Bash".into()]),
        session: Some("mine".into()),
        ..Settings::new()
    };
    assert_eq!(plan(Agent::ClaudeCode, &only_bash, &bash), Plan::Pass);
    let Plan::Ask { session_id, .. } = plan(Agent::ClaudeCode, &only_bash, &read) else {
        panic!("Read is asked when the list does not name it");
    };
    assert_eq!(session_id, "mine");
}

#[test]
fn outcomes_become_verdicts() {
    let settings = Settings::new();
    let ask_settings = Settings {
        on_timeout: Fallback::Ask,
        timeout_seconds: 30,
        ..Settings::new()
    };
    let bash = call("Bash", json!({"command": "rm -rf build"}));
    let allow = |reason: &str, updated_input: Option<Value>, note: Option<&str>| Verdict::Allow {
        reason: reason.into(),
        updated_input,
        note: note.map(str::to_string),
    };
    let deny = |reason: &str| Verdict::Deny {
        reason: reason.into(),
    };
    for (settings, outcome, expected) in [
        (
            &settings,
            json!({"status": "answered", "choice": "once"}),
            allow("approved by the human through askgate (once)", None, None),
        ),
        (
            &settings,
            json!({"status": "answered", "choice": "session", "auto": true}),
            allow(
                "by a rule the human granted through askgate (session)",
                None,
                None,
            ),
        ),
        (
            &settings,
            json!({"status": "answered", "choice": "once", "note": "careful"}),
            allow(
                "approved by the human through askgate (once)",
                None,
                Some("careful"),
            ),
        ),
        (
            &settings,
            json!({"status": "answered", "choice": "once", "edited": {"type": "command", "command": "rm -rf build/tmp"}}),
            allow(
                "approved by the human through askgate (once), as the human edited it",
                Some(json!({"command": "rm -rf build/tmp"})),
                None,
            ),
        ),
        (
            &settings,
            json!({"status": "answered", "choice": "once", "edited": {"type": "write", "path": "/x", "content": ""}}),
            deny(
                r#"the human approved an edited action that claude-code cannot run in place of this Bash call: {"content":"","path":"/x","type":"write"}"#,
            ),
        ),
        (
            &settings,
            json!({"status": "answered", "choice": "deny"}),
            deny("denied by the human through askgate"),
        ),
        (
            &settings,
            json!({"status": "answered", "choice": "deny", "reason": "use make clean", "note": "thanks"}),
            deny(
                "denied by the human through askgate: use make clean\nnote from the human: thanks",
            ),
        ),
        (
            &settings,
            json!({"status": "expired"}),
            deny("no answer from the human within 300 s through askgate; not run"),
        ),
        (
            &ask_settings,
            json!({"status": "expired"}),
            Verdict::Ask {
                reason: "no answer from the human within 30 s through askgate".into(),
            },
        ),
        (
            &settings,
            json!({"status": "cancelled"}),
            deny("the askgate prompt was cancelled before the human answered"),
        ),
        (
            &settings,
            json!({"status": "answered", "choice": "maybe"}),
            deny(
                r#"askgate gave an outcome the hook does not know: {"choice":"maybe","status":"answered"}; not run"#,
            ),
        ),
    ] {
        assert_eq!(
            verdict(Agent::ClaudeCode, settings, &bash, &outcome),
            expected,
            "{outcome}"
        );
    }
}

#[test]
fn failures_say_what_to_fix_and_never_allow() {
    let settings = Settings::new();
    for (why, fix) in [
        (
            "cannot reach the server at http://127.0.0.1:1: refused",
            "start askgate",
        ),
        (
            "the server refused the prompt (401): authentication required",
            "ASKGATE_TOKEN",
        ),
        (
            "the server refused the prompt (400): command too long",
            "askgate's log",
        ),
    ] {
        let Verdict::Deny { reason } = failed(&settings, why) else {
            panic!("{why} must deny");
        };
        assert!(reason.contains(why) && reason.contains(fix), "{reason}");
    }
    let ask = Settings {
        on_error: Fallback::Ask,
        ..Settings::new()
    };
    assert!(matches!(failed(&ask, "x"), Verdict::Ask { .. }));
    assert!(matches!(
        malformed(&settings, Agent::Codex, "x"),
        Verdict::Deny { .. }
    ));
}

fn out(value: Value) -> HookOutput {
    HookOutput::json(value)
}

#[test]
fn each_agent_says_each_verdict_its_own_way() {
    let allow = Verdict::Allow {
        reason: "ok".into(),
        updated_input: None,
        note: Some("n".into()),
    };
    let edited = Verdict::Allow {
        reason: "ok".into(),
        updated_input: Some(json!({"command": "ls"})),
        note: None,
    };
    let deny = Verdict::Deny {
        reason: "no".into(),
    };
    let ask = Verdict::Ask {
        reason: "late".into(),
    };
    let pre = |decision: &str, reason: &str| {
        json!({"hookSpecificOutput": {"hookEventName": "PreToolUse",
               "permissionDecision": decision, "permissionDecisionReason": reason}})
    };
    let request = |decision: Value| {
        out(
            json!({"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": decision}}),
        )
    };
    let mut allowed = pre("allow", "ok");
    allowed["hookSpecificOutput"]["additionalContext"] =
        "note from the human who approved this: n".into();
    let mut allowed_edited = pre("allow", "ok");
    allowed_edited["hookSpecificOutput"]["updatedInput"] = json!({"command": "ls"});
    let codex_edit = r#"the human approved only an edited version, which Codex cannot run in its place: {"command":"ls"}"#;
    for (agent, event, verdict, expected) in [
        (
            Agent::ClaudeCode,
            "PreToolUse",
            &Verdict::Pass,
            HookOutput::silent(),
        ),
        (Agent::ClaudeCode, "PreToolUse", &allow, out(allowed)),
        (
            Agent::ClaudeCode,
            "PreToolUse",
            &edited,
            out(allowed_edited),
        ),
        (
            Agent::ClaudeCode,
            "PreToolUse",
            &deny,
            out(pre("deny", "no")),
        ),
        (
            Agent::ClaudeCode,
            "PreToolUse",
            &ask,
            out(pre("ask", "late")),
        ),
        (
            Agent::ClaudeCode,
            "PermissionRequest",
            &allow,
            request(json!({"behavior": "allow"})),
        ),
        (
            Agent::ClaudeCode,
            "PermissionRequest",
            &edited,
            request(json!({"behavior": "allow", "updatedInput": {"command": "ls"}})),
        ),
        (
            Agent::ClaudeCode,
            "PermissionRequest",
            &deny,
            request(json!({"behavior": "deny", "message": "no"})),
        ),
        (
            Agent::ClaudeCode,
            "PermissionRequest",
            &ask,
            HookOutput::silent(),
        ),
        (Agent::Codex, "PreToolUse", &allow, HookOutput::silent()),
        (Agent::Codex, "PreToolUse", &deny, out(pre("deny", "no"))),
        (Agent::Codex, "PreToolUse", &ask, HookOutput::silent()),
        (
            Agent::Codex,
            "PreToolUse",
            &edited,
            out(pre("deny", codex_edit)),
        ),
        (
            Agent::Codex,
            "PermissionRequest",
            &allow,
            request(json!({"behavior": "allow"})),
        ),
        (
            Agent::Codex,
            "PermissionRequest",
            &deny,
            request(json!({"behavior": "deny", "message": "no"})),
        ),
        (
            Agent::Gemini,
            "BeforeTool",
            &allow,
            out(json!({"decision": "allow", "reason": "ok"})),
        ),
        (
            Agent::Gemini,
            "BeforeTool",
            &edited,
            out(
                json!({"decision": "allow", "reason": "ok", "hookSpecificOutput": {"tool_input": {"command": "ls"}}}),
            ),
        ),
        (
            Agent::Gemini,
            "BeforeTool",
            &deny,
            out(json!({"decision": "deny", "reason": "no"})),
        ),
        (Agent::Gemini, "BeforeTool", &ask, HookOutput::silent()),
        (Agent::Hermes, "pre_tool_call", &allow, HookOutput::silent()),
        (Agent::Hermes, "pre_tool_call", &ask, HookOutput::silent()),
        (
            Agent::Hermes,
            "pre_tool_call",
            &deny,
            out(json!({"decision": "block", "reason": "no"})),
        ),
        (
            Agent::Hermes,
            "pre_tool_call",
            &edited,
            out(
                json!({"decision": "block", "reason": r#"the human approved only an edited version, which hermes-agent cannot run in its place: {"command":"ls"}"#}),
            ),
        ),
    ] {
        assert_eq!(
            agent.render(event, verdict),
            expected,
            "{agent:?} {event} {verdict:?}"
        );
    }
}

#[test]
fn each_agents_tools_map_to_their_kinds() {
    for (agent, tool, kind) in [
        (Agent::ClaudeCode, "Bash", ToolKind::Command),
        (Agent::ClaudeCode, "MultiEdit", ToolKind::Edit),
        (Agent::ClaudeCode, "Write", ToolKind::Write),
        (Agent::ClaudeCode, "WebFetch", ToolKind::Fetch),
        (Agent::ClaudeCode, "NotebookEdit", ToolKind::Other),
        (Agent::ClaudeCode, "mcp__db__query", ToolKind::Other),
        (Agent::Codex, "Bash", ToolKind::Command),
        (Agent::Gemini, "run_shell_command", ToolKind::Command),
        (Agent::Gemini, "replace", ToolKind::Edit),
        (Agent::Gemini, "write_file", ToolKind::Write),
        (Agent::Hermes, "terminal", ToolKind::Command),
        (Agent::Hermes, "patch", ToolKind::Edit),
        (Agent::Hermes, "write_file", ToolKind::Write),
    ] {
        assert_eq!(agent.tool_kind(tool), kind, "{agent:?} {tool}");
    }
}

#[test]
fn what_cannot_be_read_is_blocked_as_each_agent_reads_a_block() {
    let deny = Verdict::Deny {
        reason: "bad".into(),
    };
    for agent in [Agent::ClaudeCode, Agent::Codex, Agent::Gemini] {
        assert_eq!(
            agent.render_unread(&deny),
            HookOutput::block("bad"),
            "{agent:?}"
        );
    }
    // hermes-agent takes no exit code for a block, only its JSON.
    assert_eq!(
        Agent::Hermes.render_unread(&deny),
        out(json!({"decision": "block", "reason": "bad"}))
    );
    let ask = Verdict::Ask { reason: "x".into() };
    assert_eq!(Agent::Hermes.render_unread(&ask), HookOutput::silent());
}
