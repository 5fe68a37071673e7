//! `POST /api/hooks/claude-code` (docs/agents.md): Claude Code's
//! `"type": "http"` hook. The body is the hook's input; the request parks
//! (like a wait) until the human answers, and the reply is the hook's
//! answer, made by `hooks/` as `askgate hook claude-code` makes it.
//!
//! Invariants: every answer this route gives is a 200, since Claude Code
//! lets a call through on any other status: an input it cannot read or a
//! prompt the server refuses is a deny that says why. A client that leaves
//! (Claude Code's own hook timeout) cancels the prompt.

use crate::core::kind::Kind;
use crate::core::prompt::{Answer, Outcome};
use crate::core::state::Submitted;
use crate::core::validate;
use crate::error::{Error, Result};
use crate::hooks::{self, Agent, Plan, Settings, ToolCall, Verdict};
use crate::hub::{Asker, WaitResult};
use crate::serve::auth::Role;
use crate::serve::http::{LEFT_CHECK_EVERY, Parking, Reply, Request, Response};
use crate::serve::routes::{self, App, take_parked_place};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const AGENT: Agent = Agent::ClaudeCode;
/// Who submits and cancels, in the audit log.
const BY: &str = "agent (claude-code hook)";

pub fn claude_code(app: &App, request: &Request) -> Result<Reply> {
    let settings = settings(request)?;
    let body = request.body.as_ref().map_err(Clone::clone)?;
    let call = match hooks::read_call(AGENT, &String::from_utf8_lossy(body)) {
        Ok(call) => call,
        Err(why) => {
            return Ok(answer("PreToolUse", &hooks::malformed(&settings, AGENT, &why)).into());
        }
    };
    let (session_id, body) = match hooks::plan(AGENT, &settings, &call) {
        Plan::Pass => return Ok(answer(&call.event, &Verdict::Pass).into()),
        Plan::Ask { session_id, body } => (session_id, body),
    };
    let agent = routes::agent_name(app, request);
    let submitted = body
        .as_object()
        .ok_or_else(|| Error::bad_request("the hook's prompt is not an object"))
        .and_then(|fields| validate::payload(Kind::Approval, fields))
        .and_then(|payload| {
            let asker = Asker {
                agent: &agent,
                by: BY,
            };
            app.hub
                .submit(&session_id, settings.timeout_seconds, payload, asker)
        });
    let id = match submitted {
        Ok(Submitted::Queued { id, .. }) => id,
        Ok(Submitted::AutoAnswered { answer, .. }) => {
            let mut outcome = answered(&answer);
            outcome["auto"] = json!(true);
            return Ok(answer_outcome(&settings, &call, &outcome).into());
        }
        Err(error) => {
            let why = format!(
                "the server refused the prompt ({}): {error}",
                error.status()
            );
            return Ok(answer(&call.event, &hooks::failed(&settings, &why)).into());
        }
    };
    let place = take_parked_place(app, request)?;
    let hub = app.hub.clone();
    let still_agent = routes::still(app, request, Role::Agent);
    // A moment past the prompt's expiry, so the expiry is what ends the wait.
    let deadline = Instant::now() + Duration::from_secs(settings.timeout_seconds as u64 + 2);
    Ok(Reply::Park(Box::new(move |parking: &Parking| {
        let _place = place;
        loop {
            let slice = deadline.min(Instant::now() + LEFT_CHECK_EVERY);
            let result = hub.wait_outcome(&id, Kind::Approval, &session_id, &agent, slice);
            if result != WaitResult::Pending && !still_agent() {
                let why = "the agent credential was revoked while it waited";
                return answer(&call.event, &hooks::failed(&settings, why));
            }
            let outcome = match result {
                WaitResult::Done(Outcome::Answered(answer)) => answered(&answer),
                WaitResult::Done(outcome) => json!({"status": outcome.status()}),
                WaitResult::Unknown => json!({"status": "unknown"}),
                WaitResult::Pending
                    if parking.client_left() || hub.is_closing() || slice >= deadline =>
                {
                    let asker = Asker {
                        agent: &agent,
                        by: BY,
                    };
                    let _ = hub.cancel(&session_id, Kind::Approval, Some(&id), asker);
                    json!({"status": "cancelled"})
                }
                WaitResult::Pending => continue,
            };
            return answer_outcome(&settings, &call, &outcome);
        }
    })))
}

/// An answered outcome as `wait` says it (docs/PROTOCOL.md §5.2): the
/// choice, and a deny's reason, the edited action and a note.
fn answered(answer: &Answer) -> Value {
    let mut body = serde_json::Map::new();
    body.insert("status".into(), json!("answered"));
    answer.insert_into(&mut body, Kind::Approval.answer_field());
    Value::Object(body)
}

/// `?timeout=SECS` and `?on_timeout=deny|ask` take the place of the
/// command hook's flags.
fn settings(request: &Request) -> Result<Settings> {
    let mut settings = Settings::new();
    if let Some(text) = request.query("timeout") {
        settings.timeout_seconds = text
            .parse::<i64>()
            .ok()
            .filter(|seconds| (1..=86_400).contains(seconds))
            .ok_or_else(|| Error::bad_request("timeout must be 1 to 86400 seconds"))?;
    }
    if let Some(text) = request.query("on_timeout") {
        settings.on_timeout = hooks::Fallback::parse(text)
            .ok_or_else(|| Error::bad_request("on_timeout must be deny or ask"))?;
    }
    Ok(settings)
}

fn answer_outcome(settings: &Settings, call: &ToolCall, outcome: &Value) -> Response {
    answer(&call.event, &hooks::verdict(AGENT, settings, call, outcome))
}

/// The hook's answer as a 200: its JSON, or `{}` for no opinion.
fn answer(event: &str, verdict: &Verdict) -> Response {
    let output = AGENT.render(event, verdict);
    let body = match (output.stdout.is_empty(), output.exit) {
        (false, _) => output.stdout,
        (true, 2) => json!({"hookSpecificOutput": {"hookEventName": event,
            "permissionDecision": "deny", "permissionDecisionReason": output.stderr}})
        .to_string(),
        (true, _) => "{}".to_string(),
    };
    Response::text(200, "application/json", body)
}
