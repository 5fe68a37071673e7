//! The durable record format: how a journal record (one operation's
//! changes) and a snapshot's entries are written down, apart from the JSON
//! browsers and webhooks see, so a change of the page's JSON never changes
//! what is on disk, nor what an older data directory means.
//!
//! Format 2 (`FORMAT`, written): JSON with field names of its own, every
//! `Change` variant and every snapshot entry encoded and decoded here, one
//! `match` per variant. A record is `{"format":2,"changes":[...]}`; a
//! snapshot's first line carries `"format":2`. Format 1 (read only) is what
//! askgate wrote before issue 21: a record is a JSON array of changes in
//! the browser's JSON of that time, a snapshot's lines begin
//! `{"layout":2,`; `core/record_v1.rs` reads it, a frozen copy. A record
//! says its own format, so the records of format 1 a journal is copied with
//! into format 2 read as before, and so does a Redis log that holds both; a
//! newer format is refused, never guessed at. tests/fixtures holds a
//! directory of every earlier format, and every one keeps replaying
//! (tests/fixtures/README.md).

use crate::core::action::{Action, Edit};
use crate::core::change::Change;
use crate::core::credentials::CredentialChange;
use crate::core::kind::Kind;
use crate::core::prompt::{Answer, Choice, Context, Decision, Outcome, Payload, Prompt};
use crate::core::record_v1;
use crate::core::rules::{Lifetime, Rule, Scope};
use crate::core::state::Record;
use serde_json::{Value, json};

/// The format written; every format from 1 up to it is read.
pub const FORMAT: u64 = 2;

/// One operation's changes as one record's bytes.
pub fn encode(changes: &[Change]) -> Vec<u8> {
    let changes: Vec<Value> = changes.iter().map(change).collect();
    let record = json!({"format": FORMAT, "changes": changes});
    serde_json::to_vec(&record).expect("JSON values always serialize")
}

/// A record's changes, of whichever format it says it is.
pub fn decode(bytes: &[u8]) -> Result<Vec<Change>, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let not_changes = |format: u64| format!("not a list of changes of format {format}");
    match &value {
        Value::Array(changes) => changes
            .iter()
            .map(record_v1::change_from)
            .collect::<Option<_>>()
            .ok_or_else(|| not_changes(1)),
        Value::Object(record) => {
            let format = record.get("format").and_then(Value::as_u64);
            let format = format.ok_or("a record without a format")?;
            newer(format)?;
            let changes = record.get("changes").and_then(Value::as_array);
            let changes = changes.ok_or_else(|| not_changes(format))?.iter();
            changes
                .map(change_from)
                .collect::<Option<_>>()
                .ok_or_else(|| not_changes(format))
        }
        _ => Err(not_changes(FORMAT)),
    }
}

/// Err when `format` is newer than this askgate reads.
pub fn newer(format: u64) -> Result<(), String> {
    match format <= FORMAT {
        true => Ok(()),
        false => Err(format!(
            "format {format} is newer than this askgate (reads up to {FORMAT}); upgrade askgate"
        )),
    }
}

fn change(change: &Change) -> Value {
    match change {
        Change::Submitted(asked) => json!({"submitted": prompt(asked)}),
        Change::Resolved {
            session_id,
            kind,
            id,
            outcome: resolved,
            at,
            grant,
            by,
        } => {
            let mut body = json!({
                "session": session_id, "kind": kind_name(*kind), "id": id,
                "outcome": outcome(resolved), "at": at,
            });
            if let Some(grant) = grant {
                body["grant"] = scope(grant);
            }
            if let Some(by) = by {
                body["by"] = json!(by);
            }
            json!({ "resolved": body })
        }
        Change::AutoAnswered {
            session_id,
            kind,
            id,
            command,
            action: asked,
            answer: answered,
            rule_id,
            at,
            agent,
        } => json!({"auto_answered": {
            "session": session_id, "kind": kind_name(*kind), "id": id,
            "command": command, "action": action(asked), "answer": answer(answered),
            "rule": rule_id, "at": at, "credential": agent,
        }}),
        Change::RuleRevoked { rule_id, at } => json!({"rule_revoked": {"rule": rule_id, "at": at}}),
        Change::SessionEvicted { session_id } => {
            json!({"session_evicted": {"session": session_id}})
        }
        Change::Pruned { outcomes, sessions } => {
            json!({"pruned": {"outcomes": outcomes, "sessions": sessions}})
        }
        Change::Restarted { skip } => json!({"restarted": {"skip": skip}}),
        Change::Paused { agent, paused, at } => {
            json!({"paused": {"credential": agent, "paused": paused, "at": at}})
        }
        Change::Credential(change) => credential(change),
    }
}

/// A sign-in, a sign-out, a spent capability or code, or their expiry.
pub fn credential(change: &CredentialChange) -> Value {
    match change {
        CredentialChange::SignedIn {
            digest,
            expires,
            human,
        } => json!({"signed_in": {"digest": digest, "expires": expires, "human": human}}),
        CredentialChange::SignedOut { digest } => json!({"signed_out": {"digest": digest}}),
        CredentialChange::Spent { key, expires } => {
            json!({"spent": {"key": key, "expires": expires}})
        }
        CredentialChange::CodeSpent { nonce, expires } => {
            json!({"code_spent": {"nonce": nonce, "expires": expires}})
        }
        CredentialChange::Expired { at } => json!({"credentials_expired": {"at": at}}),
    }
}

pub fn credential_from(tag: &str, body: &Value) -> Option<CredentialChange> {
    let expires = || body["expires"].as_f64();
    Some(match tag {
        "signed_in" => CredentialChange::SignedIn {
            digest: text(body, "digest")?,
            expires: expires()?,
            human: text(body, "human")?,
        },
        "signed_out" => CredentialChange::SignedOut {
            digest: text(body, "digest")?,
        },
        "spent" => CredentialChange::Spent {
            key: text(body, "key")?,
            expires: expires()?,
        },
        "code_spent" => CredentialChange::CodeSpent {
            nonce: text(body, "nonce")?,
            expires: expires()?,
        },
        "credentials_expired" => CredentialChange::Expired {
            at: body["at"].as_f64()?,
        },
        _ => return None,
    })
}

fn change_from(value: &Value) -> Option<Change> {
    let (tag, body) = tagged(value)?;
    let kind = || kind_from(body["kind"].as_str()?);
    Some(match tag {
        "submitted" => Change::Submitted(prompt_from(body)?.into()),
        "resolved" => Change::Resolved {
            session_id: text(body, "session")?,
            kind: kind()?,
            id: text(body, "id")?,
            outcome: outcome_from(kind()?, &body["outcome"])?,
            at: body["at"].as_f64()?,
            grant: match body.get("grant") {
                None => None,
                Some(grant) => Some(scope_from(grant)?),
            },
            by: optional_text(body, "by")?,
        },
        "auto_answered" => Change::AutoAnswered {
            session_id: text(body, "session")?,
            kind: kind()?,
            id: text(body, "id")?,
            command: text(body, "command")?,
            action: Box::new(action_from(&body["action"])?),
            answer: answer_from(kind()?, &body["answer"])?,
            rule_id: text(body, "rule")?,
            at: body["at"].as_f64()?,
            agent: text(body, "credential")?,
        },
        "rule_revoked" => Change::RuleRevoked {
            rule_id: text(body, "rule")?,
            at: body["at"].as_f64()?,
        },
        "session_evicted" => Change::SessionEvicted {
            session_id: text(body, "session")?,
        },
        "pruned" => Change::Pruned {
            outcomes: texts(&body["outcomes"])?,
            sessions: texts(&body["sessions"])?,
        },
        "restarted" => Change::Restarted {
            skip: body["skip"].as_u64()?,
        },
        "paused" => Change::Paused {
            agent: text(body, "credential")?,
            paused: body["paused"].as_bool()?,
            at: body["at"].as_f64()?,
        },
        tag => Change::Credential(credential_from(tag, body)?),
    })
}

/// A pending prompt, as a record or a snapshot line holds it.
pub fn prompt(prompt: &Prompt) -> Value {
    let mut value = json!({
        "id": prompt.id,
        "session": prompt.session_id,
        "kind": kind_name(prompt.kind()),
        "requested_at": prompt.requested_at,
        "timeout": prompt.timeout_seconds,
        "expires_at": prompt.expires_at,
        "ask": payload(&prompt.payload),
        "credential": prompt.agent,
    });
    if prompt.urgent {
        value["urgent"] = json!(true);
    }
    value
}

pub fn prompt_from(value: &Value) -> Option<Prompt> {
    let kind = kind_from(value["kind"].as_str()?)?;
    Some(Prompt {
        id: text(value, "id")?,
        session_id: text(value, "session")?,
        requested_at: value["requested_at"].as_f64()?,
        timeout_seconds: value["timeout"].as_i64()?,
        expires_at: value["expires_at"].as_f64()?,
        payload: payload_from(kind, &value["ask"])?,
        urgent: flag(value, "urgent")?,
        agent: text(value, "credential")?,
    })
}

fn payload(payload: &Payload) -> Value {
    match payload {
        Payload::Clarify {
            question,
            choices,
            multiple,
            schema,
        } => {
            let mut value = json!({"question": question, "choices": choices, "multiple": multiple});
            if let Some(schema) = schema {
                value["form"] = schema.clone();
            }
            value
        }
        Payload::Approval {
            command,
            description,
            pattern_keys,
            action: asked,
            context,
        } => {
            let mut value = json!({
                "summary": command, "description": description,
                "hints": pattern_keys, "action": action(asked),
            });
            let said = [
                ("agent", &context.agent),
                ("cwd", &context.cwd),
                ("reason", &context.reason),
            ];
            for (name, said) in said {
                if let Some(said) = said {
                    value[name] = json!(said);
                }
            }
            value
        }
    }
}

fn payload_from(kind: Kind, value: &Value) -> Option<Payload> {
    Some(match kind {
        Kind::Clarify => Payload::Clarify {
            question: text(value, "question")?,
            choices: texts(&value["choices"])?,
            multiple: flag(value, "multiple")?,
            schema: match value.get("form") {
                None => None,
                Some(form) => Some(form.as_object().map(|_| form.clone())?),
            },
        },
        Kind::Approval => Payload::Approval {
            command: text(value, "summary")?,
            description: text(value, "description")?,
            pattern_keys: texts(&value["hints"])?,
            action: action_from(&value["action"])?,
            context: Context {
                agent: optional_text(value, "agent")?,
                cwd: optional_text(value, "cwd")?,
                reason: optional_text(value, "reason")?,
            },
        },
    })
}

fn action(action: &Action) -> Value {
    match action {
        Action::Command { command, cwd } => {
            let mut body = json!({ "command": command });
            if let Some(cwd) = cwd {
                body["cwd"] = json!(cwd);
            }
            json!({ "command": body })
        }
        Action::Edit { path, edits } => {
            let edits: Vec<Value> = edits
                .iter()
                .map(|edit| json!({"old": edit.old, "new": edit.new}))
                .collect();
            json!({"edit": {"path": path, "edits": edits}})
        }
        Action::Write { path, content } => json!({"write": {"path": path, "content": content}}),
        Action::Fetch { url, method } => {
            let mut body = json!({ "url": url });
            if let Some(method) = method {
                body["method"] = json!(method);
            }
            json!({ "fetch": body })
        }
        Action::Tool { name, input } => json!({"tool": {"name": name, "input": input}}),
    }
}

fn action_from(value: &Value) -> Option<Action> {
    let (tag, body) = tagged(value)?;
    Some(match tag {
        "command" => Action::Command {
            command: text(body, "command")?,
            cwd: optional_text(body, "cwd")?,
        },
        "edit" => Action::Edit {
            path: text(body, "path")?,
            edits: body["edits"]
                .as_array()?
                .iter()
                .map(|edit| {
                    Some(Edit {
                        old: text(edit, "old")?,
                        new: text(edit, "new")?,
                    })
                })
                .collect::<Option<_>>()?,
        },
        "write" => Action::Write {
            path: text(body, "path")?,
            content: text(body, "content")?,
        },
        "fetch" => Action::Fetch {
            url: text(body, "url")?,
            method: optional_text(body, "method")?,
        },
        "tool" => Action::Tool {
            name: text(body, "name")?,
            input: body["input"].as_object()?.clone(),
        },
        _ => return None,
    })
}

fn answer(answer: &Answer) -> Value {
    match answer {
        Answer::Text(text) => json!({ "text": text }),
        Answer::Picks(picks) => json!({ "picks": picks }),
        Answer::Form(form) => json!({ "form": form }),
        Answer::Decision(decision) => {
            let mut body = json!({"choice": choice_name(decision.choice)});
            if let Some(reason) = &decision.reason {
                body["reason"] = json!(reason);
            }
            if let Some(edited) = &decision.edited {
                body["edited"] = action(edited);
            }
            if let Some(note) = &decision.note {
                body["note"] = json!(note);
            }
            json!({ "decision": body })
        }
    }
}

fn answer_from(kind: Kind, value: &Value) -> Option<Answer> {
    let (tag, body) = tagged(value)?;
    let answer = match tag {
        "text" => Answer::Text(body.as_str()?.to_string()),
        "picks" => Answer::Picks(texts(body)?),
        "form" => Answer::Form(body.as_object()?.clone()),
        "decision" => Answer::Decision(Decision {
            choice: choice_from(body["choice"].as_str()?)?,
            reason: optional_text(body, "reason")?,
            edited: match body.get("edited") {
                None => None,
                Some(edited) => Some(Box::new(action_from(edited)?)),
            },
            note: optional_text(body, "note")?,
        }),
        _ => return None,
    };
    (answer.kind() == kind).then_some(answer)
}

fn outcome(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Answered(answered) => json!({ "answered": answer(answered) }),
        Outcome::Expired => json!({"expired": {}}),
        Outcome::Cancelled => json!({"cancelled": {}}),
    }
}

fn outcome_from(kind: Kind, value: &Value) -> Option<Outcome> {
    let (tag, body) = tagged(value)?;
    match tag {
        "answered" => Some(Outcome::Answered(answer_from(kind, body)?)),
        "expired" => Some(Outcome::Expired),
        "cancelled" => Some(Outcome::Cancelled),
        _ => None,
    }
}

fn scope(scope: &Scope) -> Value {
    match scope {
        Scope::Exact(command) => json!({ "exact": command }),
        Scope::Prefix { prefix, options } => json!({"prefix": prefix, "options": options}),
        // The key is this build's canonical JSON of the action, read back
        // by the same build; on disk the action is in this format's words.
        Scope::Action(key) => {
            let asked = serde_json::from_str(key).ok();
            let asked = asked.as_ref().and_then(Action::from_json);
            json!({ "action": asked.as_ref().map_or(Value::Null, action) })
        }
        Scope::Tool(name) => json!({ "tool": name }),
        Scope::UrlPrefix { prefix, method } => json!({"url_prefix": prefix, "method": method}),
        Scope::Directory {
            directory,
            action_type,
        } => json!({"directory": directory, "type": action_type}),
    }
}

fn scope_from(value: &Value) -> Option<Scope> {
    if let Some(command) = value.get("exact") {
        return Some(Scope::Exact(command.as_str()?.to_string()));
    }
    if let Some(asked) = value.get("action") {
        return Some(Scope::Action(action_from(asked)?.key()));
    }
    if let Some(name) = value.get("tool") {
        return Some(Scope::Tool(name.as_str()?.to_string()));
    }
    if let Some(prefix) = value.get("url_prefix") {
        return Some(Scope::UrlPrefix {
            prefix: prefix.as_str()?.to_string(),
            method: text(value, "method")?,
        });
    }
    if let Some(directory) = value.get("directory") {
        // The action types a directory rule may cover, as `&'static str`.
        let action_type = ["edit", "write"]
            .into_iter()
            .find(|known| value["type"] == *known)?;
        return Some(Scope::Directory {
            directory: directory.as_str()?.to_string(),
            action_type,
        });
    }
    Some(Scope::Prefix {
        prefix: text(value, "prefix")?,
        options: value["options"].as_bool()?,
    })
}

/// A rule, as a record or a snapshot line holds it.
pub fn rule(rule: &Rule) -> Value {
    let mut value = json!({
        "id": rule.rule_id,
        "scope": scope(&rule.scope),
        "lifetime": lifetime_name(rule.lifetime),
        "granted_at": rule.granted_at,
        "command": rule.command,
    });
    if let Some(session_id) = &rule.session_id {
        value["session"] = json!(session_id);
    }
    value
}

pub fn rule_from(value: &Value) -> Option<Rule> {
    let lifetime = lifetime_from(value["lifetime"].as_str()?)?;
    let session_id = optional_text(value, "session")?;
    let fits = match lifetime {
        Lifetime::Session => session_id.is_some(),
        Lifetime::Always => session_id.is_none(),
    };
    fits.then_some(())?;
    Some(Rule {
        rule_id: text(value, "id")?,
        scope: scope_from(&value["scope"])?,
        lifetime,
        session_id,
        granted_at: value["granted_at"].as_f64()?,
        command: text(value, "command")?,
    })
}

/// A kept outcome and what its prompt asked, as a snapshot line holds it.
pub(super) fn kept(id: &str, record: &Record) -> Value {
    let mut value = json!({
        "id": id,
        "kind": kind_name(record.kind),
        "session": record.session_id,
        "asked": record.asked,
        "auto": record.auto,
        "outcome": outcome(&record.outcome),
        "at": record.at,
        "version": record.version,
        "digest": record.action_digest,
        "credential": record.agent,
    });
    if let Some(by) = &record.by {
        value["by"] = json!(by);
    }
    if let Some(asked) = &record.action {
        value["action"] = action(asked);
    }
    if let Some(rule) = &record.rule {
        value["rule"] = json!(rule);
    }
    value
}

pub(super) fn kept_from(value: &Value) -> Option<(String, Record)> {
    let kind = kind_from(value["kind"].as_str()?)?;
    let record = Record {
        kind,
        session_id: text(value, "session")?,
        asked: text(value, "asked")?,
        action: match value.get("action") {
            None => None,
            Some(asked) => Some(Box::new(action_from(asked)?)),
        },
        auto: value["auto"].as_bool()?,
        outcome: outcome_from(kind, &value["outcome"])?,
        at: value["at"].as_f64()?,
        version: value["version"].as_u64()?,
        action_digest: text(value, "digest")?,
        rule: optional_text(value, "rule")?,
        agent: text(value, "credential")?,
        by: optional_text(value, "by")?,
    };
    Some((text(value, "id")?, record))
}

// The words for each kind, choice and lifetime on disk: this format's own,
// whatever the browser's JSON calls them.

pub(super) fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Clarify => "clarify",
        Kind::Approval => "approval",
    }
}

fn kind_from(name: &str) -> Option<Kind> {
    Kind::ALL.into_iter().find(|kind| kind_name(*kind) == name)
}

fn choice_name(choice: Choice) -> &'static str {
    match choice {
        Choice::Once => "once",
        Choice::Session => "session",
        Choice::Always => "always",
        Choice::Deny => "deny",
    }
}

fn choice_from(name: &str) -> Option<Choice> {
    Choice::ALL
        .into_iter()
        .find(|choice| choice_name(*choice) == name)
}

fn lifetime_name(lifetime: Lifetime) -> &'static str {
    match lifetime {
        Lifetime::Session => "session",
        Lifetime::Always => "always",
    }
}

fn lifetime_from(name: &str) -> Option<Lifetime> {
    [Lifetime::Session, Lifetime::Always]
        .into_iter()
        .find(|lifetime| lifetime_name(*lifetime) == name)
}

/// The one field of an object, and its value: how a variant is tagged.
pub fn tagged(value: &Value) -> Option<(&str, &Value)> {
    let object = value.as_object().filter(|object| object.len() == 1)?;
    let (tag, body) = object.iter().next()?;
    Some((tag.as_str(), body))
}

fn text(value: &Value, field: &str) -> Option<String> {
    value[field].as_str().map(str::to_string)
}

/// `Some(None)` when absent, `None` when there and not a string.
fn optional_text(value: &Value, field: &str) -> Option<Option<String>> {
    match value.get(field) {
        None => Some(None),
        Some(text) => Some(Some(text.as_str()?.to_string())),
    }
}

/// False when absent.
fn flag(value: &Value, field: &str) -> Option<bool> {
    match value.get(field) {
        None => Some(false),
        Some(flag) => flag.as_bool(),
    }
}

fn texts(value: &Value) -> Option<Vec<String>> {
    let items = value.as_array()?.iter();
    items
        .map(|item| item.as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::prompt::LEGACY_AGENT;

    fn approval() -> Prompt {
        let action = Action::Fetch {
            url: "https://example.com".into(),
            method: Some("POST".into()),
        };
        let context = Context {
            agent: Some("claude-code".into()),
            cwd: None,
            reason: Some("why".into()),
        };
        let payload = Payload::approval(action, "d".into(), vec!["k".into()], context);
        Prompt::new("a1".into(), "s".into(), 10.0, 60, payload).with_urgent(true)
    }

    fn changes() -> Vec<Change> {
        let decision = Decision {
            choice: Choice::Once,
            reason: None,
            edited: Some(Box::new(Action::Command {
                command: "ls".into(),
                cwd: Some("/".into()),
            })),
            note: Some("n".into()),
        };
        vec![
            Change::Submitted(approval().into()),
            Change::Resolved {
                session_id: "s".into(),
                kind: Kind::Approval,
                id: "a1".into(),
                outcome: Outcome::Answered(Answer::Decision(decision)),
                at: 11.5,
                grant: None,
                by: None,
            },
            Change::AutoAnswered {
                session_id: "s".into(),
                kind: Kind::Approval,
                id: "a2".into(),
                command: "git push".into(),
                action: Box::new(Action::Command {
                    command: "git push".into(),
                    cwd: None,
                }),
                answer: Answer::choice(Choice::Always),
                rule_id: "r".into(),
                at: 12.0,
                agent: LEGACY_AGENT.into(),
            },
            Change::RuleRevoked {
                rule_id: "r".into(),
                at: 13.0,
            },
            Change::SessionEvicted {
                session_id: "old".into(),
            },
            Change::Pruned {
                outcomes: vec!["a1".into()],
                sessions: vec!["old".into()],
            },
            Change::Restarted { skip: 1 << 20 },
        ]
    }

    /// The bytes on disk are this format's, whatever the browser's JSON
    /// becomes: a change here is a new format (tests/fixtures/README.md).
    #[test]
    fn format_2_is_these_bytes() {
        let expected = concat!(
            r#"{"changes":[{"submitted":{"ask":{"action":{"fetch":{"method":"POST","url":"https://example.com"}},"#,
            r#""agent":"claude-code","description":"d","hints":["k"],"reason":"why","summary":"fetch POST https://example.com"},"#,
            r#""credential":"agent","expires_at":70.0,"id":"a1","kind":"approval","requested_at":10.0,"session":"s","timeout":60,"urgent":true}},"#,
            r#"{"resolved":{"at":11.5,"id":"a1","kind":"approval","outcome":{"answered":{"decision":{"choice":"once","#,
            r#""edited":{"command":{"command":"ls","cwd":"/"}},"note":"n"}}},"session":"s"}},"#,
            r#"{"auto_answered":{"action":{"command":{"command":"git push"}},"answer":{"decision":{"choice":"always"}},"at":12.0,"#,
            r#""command":"git push","credential":"agent","id":"a2","kind":"approval","rule":"r","session":"s"}},"#,
            r#"{"rule_revoked":{"at":13.0,"rule":"r"}},{"session_evicted":{"session":"old"}},"#,
            r#"{"pruned":{"outcomes":["a1"],"sessions":["old"]}},{"restarted":{"skip":1048576}}],"format":2}"#,
        );
        let bytes = encode(&changes());
        assert_eq!(String::from_utf8_lossy(&bytes), expected);
        assert_eq!(decode(expected.as_bytes()), Ok(changes()));
    }

    #[test]
    fn rules_of_every_scope_read_back() {
        let action = Action::Tool {
            name: "t".into(),
            input: serde_json::from_str(r#"{"b":[1],"a":"x"}"#).unwrap(),
        };
        let scopes = [
            Scope::Exact("ls -l".into()),
            Scope::Prefix {
                prefix: "ls".into(),
                options: true,
            },
            Scope::Action(action.key()),
        ];
        for (n, scope) in scopes.into_iter().enumerate() {
            let lifetime = [Lifetime::Session, Lifetime::Always][n % 2];
            let session_id = (lifetime == Lifetime::Session).then(|| "s".to_string());
            let granted = Rule {
                rule_id: format!("r{n}"),
                scope,
                lifetime,
                session_id,
                granted_at: 1.25,
                command: "ls -l".into(),
            };
            assert_eq!(rule_from(&rule(&granted)), Some(granted));
        }
    }

    #[test]
    fn a_record_of_format_1_reads_as_it_did() {
        // As askgate wrote it before issue 21 (tests/fixtures/format-1).
        let format_1 = br#"[{"resolved":{"at":1796548107.1393895,"grant":{"prefix":"ls"},"id":"ece1d1237fc62dbe7b8521ba994e6286","kind":"approval","outcome":{"answer":"session","status":"answered"},"session_id":"rules-bot"}}]"#;
        let resolved = Change::Resolved {
            session_id: "rules-bot".into(),
            kind: Kind::Approval,
            id: "ece1d1237fc62dbe7b8521ba994e6286".into(),
            outcome: Outcome::Answered(Answer::choice(Choice::Session)),
            at: 1796548107.1393895,
            grant: Some(Scope::Prefix {
                prefix: "ls".into(),
                options: false,
            }),
            by: None,
        };
        assert_eq!(decode(format_1), Ok(vec![resolved]));
    }

    #[test]
    fn every_change_of_format_1_reads_as_it_did() {
        // Every variant as askgate wrote it before issue 21, frozen here: the
        // browser's JSON may change, this may not.
        let format_1 = concat!(
            r#"[{"submitted":{"action":{"method":"POST","type":"fetch","url":"https://example.com"},"#,
            r#""agent":"claude-code","approval_id":"a1","command":"fetch POST https://example.com","#,
            r#""description":"d","expires_at":70.0,"kind":"approval","pattern_key":"k","pattern_keys":["k"],"#,
            r#""reason":"why","requested_at":10.0,"session_id":"s","timeout_seconds":60,"urgency":"high"}},"#,
            r#"{"resolved":{"at":11.5,"grant":null,"id":"a1","kind":"approval","outcome":{"answer":"once","#,
            r#""edited":{"command":"ls","cwd":"/","type":"command"},"note":"n","status":"answered"},"session_id":"s"}},"#,
            r#"{"auto_answered":{"answer":"always","at":12.0,"command":"git push","id":"a2","kind":"approval","#,
            r#""rule_id":"r","session_id":"s"}},{"rule_revoked":{"at":13.0,"rule_id":"r"}},"#,
            r#"{"session_evicted":{"session_id":"old"}},{"pruned":{"outcomes":["a1"],"sessions":["old"]}},"#,
            r#"{"restarted":{"skip":1048576}}]"#,
        );
        assert_eq!(decode(format_1.as_bytes()), Ok(changes()));
    }

    /// What format 1 never held: names, pauses, sign-ins and spends, the
    /// wider scopes.
    #[test]
    fn what_came_after_format_1_reads_back() {
        let asked = approval().with_agent("build-bot");
        let changes = vec![
            Change::Submitted(asked.into()),
            Change::Resolved {
                session_id: "s".into(),
                kind: Kind::Approval,
                id: "a1".into(),
                outcome: Outcome::Answered(Answer::choice(Choice::Always)),
                at: 11.5,
                grant: Some(Scope::UrlPrefix {
                    prefix: "https://example.com/".into(),
                    method: "POST".into(),
                }),
                by: Some("anna".into()),
            },
            Change::Paused {
                agent: "build-bot".into(),
                paused: true,
                at: 12.0,
            },
            Change::Credential(CredentialChange::SignedIn {
                digest: "d".into(),
                expires: 13.0,
                human: "anna".into(),
            }),
            Change::Credential(CredentialChange::SignedOut { digest: "d".into() }),
            Change::Credential(CredentialChange::Spent {
                key: "approval:a1".into(),
                expires: 14.0,
            }),
            Change::Credential(CredentialChange::CodeSpent {
                nonce: "n".into(),
                expires: 15.0,
            }),
            Change::Credential(CredentialChange::Expired { at: 16.0 }),
        ];
        assert_eq!(decode(&encode(&changes)), Ok(changes));
        for scope in [
            Scope::Tool("mcp__db__query".into()),
            Scope::Directory {
                directory: "/src/".into(),
                action_type: "edit",
            },
        ] {
            assert_eq!(scope_from(&super::scope(&scope)), Some(scope));
        }
    }

    #[test]
    fn a_newer_record_is_refused_naming_both_formats() {
        let newer = br#"{"format":3,"changes":[]}"#;
        let refused = decode(newer).unwrap_err();
        assert!(refused.contains("format 3 is newer than this askgate (reads up to 2)"));
        assert!(decode(br#"{"format":2,"changes":[{"bogus":{}}]}"#).is_err());
        assert!(decode(br#"{"changes":[]}"#).is_err());
    }
}
