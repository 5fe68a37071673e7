//! The human's triage of many agents at once (docs/PROTOCOL.md §3.6): the
//! agents waiting, pausing one (its prompts wait unseen and ring no phone)
//! and the stop switch, which cancels every pending prompt of one agent or
//! of all. Each is a journaled change with an audit line.

use crate::core::state::AgentSummary;
use crate::error::{Error, Result};
use crate::serve::http::{Reply, Request, Response};
use crate::serve::routes::{App, HUMAN, actor, optional_text};
use serde_json::{Value, json};

/// `GET /api/agents`.
pub fn agents(app: &App, _request: &Request) -> Result<Reply> {
    let agents: Vec<Value> = app.hub.agents().iter().map(summary_json).collect();
    Ok(Response::json(200, &json!({ "agents": agents })).into())
}

fn summary_json(summary: &AgentSummary) -> Value {
    let mut pending = json!({});
    for (kind, count) in summary.counts.iter() {
        pending[kind.as_str()] = json!(count);
    }
    json!({
        "agent": summary.agent,
        "paused": summary.paused,
        "pending": pending,
        "sessions": summary.sessions,
        "session_count": summary.session_count,
    })
}

/// `POST /api/agents/pause`: `{"agent": NAME, "paused": true|false}`.
pub fn pause(app: &App, request: &Request) -> Result<Reply> {
    let body = request.json()?;
    let agent =
        optional_text(&body, "agent")?.ok_or_else(|| Error::bad_request("agent is required"))?;
    let Some(Value::Bool(paused)) = body.get("paused") else {
        return Err(Error::bad_request("paused is required: true or false"));
    };
    app.hub
        .pause_agent(agent, *paused, &actor(app, request, HUMAN))?;
    Ok(Response::json(200, &json!({"agent": agent, "paused": paused})).into())
}

/// `POST /api/agents/stop`: `{"agent": NAME}` or `{"all": true}`.
pub fn stop(app: &App, request: &Request) -> Result<Reply> {
    let body = request.json()?;
    let agent = optional_text(&body, "agent")?;
    let all = match body.get("all") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Bool(true)) => true,
        Some(_) => return Err(Error::bad_request("all must be true or false")),
    };
    if all == agent.is_some() {
        return Err(Error::bad_request(
            "name one agent (\"agent\") or every agent (\"all\": true)",
        ));
    }
    let cancelled = app.hub.stop_agents(agent, &actor(app, request, HUMAN))?;
    Ok(Response::json(200, &json!({ "cancelled": cancelled })).into())
}
