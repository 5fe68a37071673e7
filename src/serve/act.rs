//! `POST /api/act`: a notification's button answering its prompt
//! (docs/PROTOCOL.md §3.4).
//!
//! The request names the prompt and the choice in its body and carries the
//! capability made for exactly those in its `X-Askgate-Capability` header.
//! The capability is checked before the hub is asked, so bad input changes
//! nothing; the hub spends it in the operation that answers
//! (`Hub::respond_spending`), so a replay, here, after a restart or on
//! another instance, is refused; the answer is decided as the page's is,
//! audited as by a notification.

use crate::core::kind::Kind;
use crate::core::prompt::{Answer, Choice};
use crate::core::validate;
use crate::error::{Error, Refusal, Result};
use crate::hub::Responded;
use crate::hub::credentials::Spend;
use crate::notify::capability::{self, Claim, Refused};
use crate::serve::http::{Reply, Request, Response};
use crate::serve::routes::{App, required_session};
use serde_json::{Map, Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// Who answered, for the audit log's `by`.
pub const BY: &str = "notification";

pub fn act(app: &App, request: &Request) -> Result<Reply> {
    let capability = request
        .header(capability::HEADER)
        .ok_or(Error::Unauthorized)?;
    let body = request.json()?;
    let session_id = required_session(&body)?;
    let (kind, id) = prompt_named(&body)?;
    let choice = match body.get("choice") {
        Some(Value::String(choice)) if !choice.trim().is_empty() => choice.as_str(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(Error::bad_request("choice is required"));
        }
        Some(_) => return Err(Error::bad_request("choice must be a string")),
    };
    let claim = Claim {
        session_id,
        kind,
        id,
        choice,
    };
    let now = unix_now();
    let expires = app
        .capabilities
        .check(&claim, capability, now)
        .map_err(refusal)?;
    let answer = match kind {
        Kind::Approval => Answer::choice(
            Choice::parse(choice)
                .ok_or_else(|| Error::bad_request("a capability never grants a rule"))?,
        ),
        Kind::Clarify => Answer::Text(choice.trim().to_string()),
    };
    // Remembered until it expires; one without a deadline as long as an
    // outcome is kept (its prompt has been answered, so a replay is stale
    // even once it is forgotten).
    let spend = Spend {
        key: capability::spend_key(&claim),
        expires: match expires {
            0 => (now as f64) + app.config.result_ttl.as_secs_f64(),
            expires => expires as f64,
        },
    };
    let responded = app
        .hub
        .respond_spending(&spend, session_id, id, answer.clone(), BY)?;
    match responded {
        Some(Responded::Answered) => {
            let body = json!({"ok": true, kind.answer_field(): answer.value()});
            Ok(Response::json(200, &body).into())
        }
        Some(Responded::Stale { .. }) => Err(Error::Stale(format!(
            "{} is no longer pending",
            kind.as_str()
        ))),
        None => Err(refusal(Refused::Used)),
    }
}

/// The prompt a body names: exactly one of `clarify_id` and `approval_id`.
fn prompt_named(body: &Map<String, Value>) -> Result<(Kind, &str)> {
    let mut named = Kind::ALL
        .into_iter()
        .filter_map(|kind| body.get(kind.id_field()).map(|id| (kind, id)));
    let only = (named.next(), named.next());
    let (kind, id) = match only {
        (Some((kind, Value::String(id))), None) => (kind, id.as_str()),
        _ => {
            return Err(Error::bad_request(
                "name the prompt by one clarify_id or approval_id",
            ));
        }
    };
    validate::prompt_id(kind, id)?;
    Ok((kind, id))
}

/// A used capability is a stale answer (409); any other refusal is 403.
fn refusal(refused: Refused) -> Error {
    match refused {
        Refused::Used => Error::Stale(refused.message().into()),
        _ => Error::Forbidden(Refusal::new(
            refused.message(),
            "use the notification's button as it came; each answers its own prompt once",
        )),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
