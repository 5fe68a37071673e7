//! A snapshot: the whole state at one version, for a journal to compact its
//! history into, and back.
//!
//! A journal's snapshot is written as JSON lines, one entry a line (a rule,
//! a session, a prompt, an outcome, each in the durable record format of
//! `core/record.rs`) after a first line with the format and the versions,
//! from a `SnapshotView`: the state's entries shared (`Arc`), taken under
//! the hub lock in one pass of pointer copies and written with no lock
//! held, so compaction never builds the whole tree nor a whole-state
//! buffer. `SnapshotReader` reads it back a line at a time. The older
//! layout, the whole state as one JSON value (`to_snapshot`), is still
//! read, and is what Redis keeps. Sign-ins, spent capabilities and codes
//! are written as the changes that make them (`signed_in`, `spent`,
//! `code_spent`); a
//! snapshot written before them has none.
//!
//! What can be derived (each queue's head JSON, the set of pending ids,
//! where each rule lives, what entries cost) is not written; it is rebuilt
//! on reading, so a snapshot read back is equal to the state it was made
//! from. A rule read back whose scope may not be granted on its command
//! (docs/PROTOCOL.md §3.2: forged, or granted before a check that now
//! refuses it) is dropped, with an error in the log: it never answers.

use crate::core::action::Action;
use crate::core::credentials::CredentialChange;
use crate::core::kind::{Kind, KindMap};
use crate::core::prompt::{LEGACY_AGENT, Outcome, Payload, Prompt};
use crate::core::queue::Queue;
use crate::core::receipt;
use crate::core::record;
use crate::core::record_v1;
use crate::core::rules::Rule;
use crate::core::state::{Record, Session, State};
use serde_json::{Value, json};
use std::io::{self, Write};
use std::sync::Arc;

/// Whether a snapshot's first bytes begin lines: `{"format":` (format 2
/// on) or `{"layout":2,` (format 1). The older one-value layout, one JSON
/// object of sorted keys, begins `{"always":`.
pub fn in_lines(first: &[u8]) -> bool {
    first.starts_with(b"{\"format\":") || first.starts_with(b"{\"layout\":2,")
}

/// The state at one version, its entries shared with the state: what a
/// compaction writes while the state moves on.
pub struct SnapshotView {
    version: u64,
    pruned_version: u64,
    skipped: Vec<(u64, u64)>,
    paused: Vec<String>,
    always: Vec<Rule>,
    sessions: Vec<SessionView>,
    outcomes: Vec<(Arc<str>, Arc<Record>)>,
    /// Copied: they are few (`core/credentials.rs`).
    credentials: Vec<CredentialChange>,
}

struct SessionView {
    session_id: String,
    changed_at: f64,
    owner: String,
    versions: KindMap<u64>,
    prompts: Vec<Arc<Prompt>>,
    rules: Vec<Rule>,
}

impl State {
    /// The view a compaction writes: pointers to the entries, and the few
    /// rules copied (they are bounded by count and by their share).
    pub fn snapshot_view(&self) -> SnapshotView {
        let sessions = self.sessions.iter().map(|(session_id, session)| {
            let mut versions = KindMap::default();
            for (kind, queue) in session.queues.iter() {
                versions[kind] = queue.version();
            }
            SessionView {
                session_id: session_id.clone(),
                changed_at: session.changed_at,
                owner: session.owner.clone(),
                versions,
                prompts: session
                    .queues
                    .values()
                    .flat_map(Queue::iter)
                    .cloned()
                    .collect(),
                rules: session.rules.clone(),
            }
        });
        let outcomes = self.outcome_order.iter().filter_map(|id| {
            let record = self.outcomes.get(id)?;
            Some((id.clone(), record.clone()))
        });
        SnapshotView {
            version: self.version,
            pruned_version: self.pruned_version,
            skipped: self.skipped.clone(),
            paused: self.paused.iter().cloned().collect(),
            always: self.always.clone(),
            sessions: sessions.collect(),
            outcomes: outcomes.collect(),
            credentials: self.credentials.entries(),
        }
    }

    /// The whole state as one JSON value: what Redis keeps, and the layout
    /// of a journal's snapshot before lines.
    pub fn to_snapshot(&self) -> Value {
        let sessions: Vec<Value> = self
            .sessions
            .iter()
            .map(|(id, s)| session_json(id, s))
            .collect();
        let outcomes: Vec<Value> = self
            .outcome_order
            .iter()
            .filter_map(|id| Some(record_json(id, self.outcomes.get(id)?)))
            .collect();
        json!({
            "version": self.version,
            "pruned_version": self.pruned_version,
            "skipped": self.skipped,
            "paused": self.paused,
            "always": rules_json(&self.always),
            "sessions": sessions,
            "outcomes": outcomes,
            "credentials": credentials_json(&self.credentials.entries()),
        })
    }

    pub fn from_snapshot(value: &Value) -> Option<State> {
        let mut reader = SnapshotReader::new(value).ok()?;
        for rule in value["always"].as_array()? {
            reader.always(Rule::from_json(rule)?)?;
        }
        for entry in value["sessions"].as_array()? {
            let (session_id, session) = session_from(entry)?;
            reader.session(session_id, session)?;
        }
        for entry in value["outcomes"].as_array()? {
            reader.outcome(entry)?;
        }
        // Absent from a snapshot written before credentials were kept.
        for entry in value["credentials"].as_array().into_iter().flatten() {
            let (tag, body) = record::tagged(entry)?;
            reader.credential(record::credential_from(tag, body)?)?;
        }
        Some(reader.finish())
    }
}

#[cfg(test)]
impl State {
    /// A state from a snapshot in lines held whole.
    pub fn from_lines(bytes: &[u8]) -> Option<State> {
        let mut lines = bytes
            .split(|byte| *byte == b'\n')
            .filter(|line| !line.is_empty());
        let value = |line: &[u8]| serde_json::from_slice::<Value>(line).ok();
        let mut reader = SnapshotReader::new(&value(lines.next()?)?).ok()?;
        for line in lines {
            reader.line(&value(line)?)?;
        }
        Some(reader.finish())
    }
}

impl SnapshotView {
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Writes the snapshot as lines, one entry at a time, in the durable
    /// record format (`core/record.rs`).
    pub fn write_lines(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut line = |value: Value| -> io::Result<()> {
            serde_json::to_writer(&mut *out, &value)?;
            out.write_all(b"\n")
        };
        line(json!({
            "format": record::FORMAT,
            "version": self.version,
            "pruned_version": self.pruned_version,
            "skipped": self.skipped,
            "paused": self.paused,
        }))?;
        for rule in &self.always {
            line(json!({"always": record::rule(rule)}))?;
        }
        for session in &self.sessions {
            let mut versions = json!({});
            for (kind, version) in session.versions.iter() {
                versions[record::kind_name(kind)] = json!(version);
            }
            line(json!({"session": {
                "id": session.session_id,
                "changed_at": session.changed_at,
                "versions": versions,
                "owner": session.owner,
            }}))?;
            for prompt in &session.prompts {
                line(json!({"prompt": record::prompt(prompt)}))?;
            }
            for rule in &session.rules {
                line(json!({"rule": record::rule(rule)}))?;
            }
        }
        for (id, kept) in &self.outcomes {
            line(json!({"outcome": record::kept(id, kept)}))?;
        }
        for entry in &self.credentials {
            line(record::credential(entry))?;
        }
        Ok(())
    }

    /// The lines in one buffer (tests, and small states).
    pub fn to_lines(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_lines(&mut out).expect("a Vec takes every write");
        out
    }
}

/// A state read back an entry at a time: from the lines of a snapshot
/// (format 2, or format 1's `"layout": 2`), or from the parts of the
/// older one-value layout.
pub struct SnapshotReader {
    state: State,
    format: u64,
}

impl SnapshotReader {
    /// From the first line (or the one value): the format and the
    /// versions. Err names a format newer than this askgate reads.
    pub fn new(first: &Value) -> Result<SnapshotReader, String> {
        let format = first["format"].as_u64().unwrap_or(1);
        record::newer(format)?;
        let versions = || -> Option<State> {
            let mut state = State {
                version: first["version"].as_u64()?,
                pruned_version: first["pruned_version"].as_u64()?,
                ..State::default()
            };
            for range in first["skipped"].as_array()? {
                state.skipped.push((range[0].as_u64()?, range[1].as_u64()?));
            }
            Some(state)
        };
        let mut state = versions().ok_or("first line has no versions")?;
        // Absent before agents could be paused.
        for agent in first["paused"].as_array().into_iter().flatten() {
            let agent = agent.as_str().ok_or("a paused agent is not a string")?;
            state.paused.insert(agent.to_string());
        }
        Ok(SnapshotReader { state, format })
    }

    /// Reads one line after the first; `None` when it is not an entry of
    /// a snapshot, or names a session not declared before it.
    pub fn line(&mut self, line: &Value) -> Option<()> {
        let (tag, value) = record::tagged(line)?;
        match self.format {
            1 => self.line_of_format_1(tag, value),
            _ => self.entry(tag, value),
        }
    }

    fn entry(&mut self, tag: &str, value: &Value) -> Option<()> {
        match tag {
            "always" => self.always(record::rule_from(value)?),
            "session" => {
                let mut session = Session::default();
                session.changed_at = value["changed_at"].as_f64()?;
                session.owner = owner_from(value);
                for kind in Kind::ALL {
                    let version = value["versions"][record::kind_name(kind)].as_u64()?;
                    session.queues[kind] = Queue::restore(Vec::new(), version);
                }
                self.session(value["id"].as_str()?.to_string(), session)
            }
            "prompt" => self.prompt(record::prompt_from(value)?),
            "rule" => self.session_rule(record::rule_from(value)?),
            "outcome" => {
                let (id, kept) = record::kept_from(value)?;
                self.kept(id, kept)
            }
            tag => self.credential(record::credential_from(tag, value)?),
        }
    }

    /// A line as askgate wrote it before issue 21 (`core/record_v1.rs`).
    fn line_of_format_1(&mut self, tag: &str, value: &Value) -> Option<()> {
        match tag {
            "always" => self.always(record_v1::rule_from(value)?),
            "session" => {
                let mut session = Session::default();
                session.changed_at = value["changed_at"].as_f64()?;
                // Format 1 knew one agent credential.
                session.owner = LEGACY_AGENT.to_string();
                for kind in Kind::ALL {
                    let version = value["versions"][record_v1::kind_name(kind)].as_u64()?;
                    session.queues[kind] = Queue::restore(Vec::new(), version);
                }
                self.session(value["session_id"].as_str()?.to_string(), session)
            }
            "prompt" => self.prompt(record_v1::prompt_from(value)?),
            "rule" => self.session_rule(record_v1::rule_from(value)?),
            "outcome" => {
                let (id, kept) = record_v1::kept_from(value)?;
                self.kept(id, kept)
            }
            _ => None,
        }
    }

    /// A sign-in or a spent capability; no other change is an entry.
    fn credential(&mut self, entry: CredentialChange) -> Option<()> {
        match entry {
            CredentialChange::SignedIn { .. }
            | CredentialChange::Spent { .. }
            | CredentialChange::CodeSpent { .. } => {
                self.state.credentials.apply(&entry);
                Some(())
            }
            CredentialChange::SignedOut { .. } | CredentialChange::Expired { .. } => None,
        }
    }

    fn always(&mut self, rule: Rule) -> Option<()> {
        if !admitted(&rule) {
            return Some(());
        }
        let state = &mut self.state;
        state.rule_homes.insert(rule.rule_id.clone(), None);
        state.rule_bytes += rule.stored_bytes();
        state.always.push(rule);
        Some(())
    }

    /// A session with whatever it already holds (the one-value layout).
    fn session(&mut self, session_id: String, session: Session) -> Option<()> {
        let state = &mut self.state;
        for prompt in session.queues.values().flat_map(Queue::iter) {
            state.pending_ids.insert(Arc::from(prompt.id.as_str()), ());
            state.pending_bytes += prompt.stored_bytes();
        }
        for rule in &session.rules {
            let home = Some(session_id.clone());
            state.rule_homes.insert(rule.rule_id.clone(), home);
            state.rule_bytes += rule.stored_bytes();
        }
        state.session_bytes += Session::cost(&session_id);
        state.sessions.insert(session_id, Arc::new(session));
        Some(())
    }

    fn prompt(&mut self, prompt: Prompt) -> Option<()> {
        let state = &mut self.state;
        let session = Arc::make_mut(state.sessions.get_mut(&prompt.session_id)?);
        state.pending_ids.insert(Arc::from(prompt.id.as_str()), ());
        state.pending_bytes += prompt.stored_bytes();
        session.queues[prompt.kind()].push_restored(Arc::new(prompt));
        Some(())
    }

    fn session_rule(&mut self, rule: Rule) -> Option<()> {
        if !admitted(&rule) {
            return Some(());
        }
        let state = &mut self.state;
        let session_id = rule.session_id.clone()?;
        let session = Arc::make_mut(state.sessions.get_mut(&session_id)?);
        state
            .rule_homes
            .insert(rule.rule_id.clone(), Some(session_id));
        state.rule_bytes += rule.stored_bytes();
        session.rules.push(rule);
        Some(())
    }

    /// An outcome in format 1's JSON.
    fn outcome(&mut self, entry: &Value) -> Option<()> {
        let (id, record) = record_from(entry)?;
        self.kept(id, record)
    }

    fn kept(&mut self, id: String, record: Record) -> Option<()> {
        let state = &mut self.state;
        let id: Arc<str> = Arc::from(id);
        state.outcome_bytes += record.cost(&id);
        state.outcome_order.push_back(id.clone());
        state.outcomes.insert(id, Arc::new(record));
        Some(())
    }

    /// The state, with what is derived made again.
    pub fn finish(mut self) -> State {
        for session in self.state.sessions.values_mut() {
            let session = Arc::make_mut(session);
            for kind in Kind::ALL {
                session.refresh_head(kind);
            }
        }
        self.state
    }
}

fn credentials_json(entries: &[CredentialChange]) -> Vec<Value> {
    entries.iter().map(record::credential).collect()
}

fn rules_json(rules: &[Rule]) -> Vec<Value> {
    rules.iter().map(Rule::to_json).collect()
}

fn rules(value: &Value) -> Option<Vec<Rule>> {
    let rules: Vec<Rule> = value
        .as_array()?
        .iter()
        .map(Rule::from_json)
        .collect::<Option<_>>()?;
    Some(rules.into_iter().filter(admitted).collect())
}

/// Whether a rule read back may stand; one that may not is logged as an
/// error and dropped.
fn admitted(rule: &Rule) -> bool {
    let Some(refusal) = rule.refusal() else {
        return true;
    };
    log::error!(
        "a rule in the snapshot was dropped, it may not be granted (damaged or forged data?): rule={} scope={} command={:?}: {refusal}",
        rule.rule_id,
        rule.scope.to_json(),
        rule.command
    );
    false
}

fn session_json(session_id: &str, session: &Session) -> Value {
    let mut queues = json!({});
    for (kind, queue) in session.queues.iter() {
        let entries: Vec<Value> = queue.iter().map(|prompt| prompt.to_json()).collect();
        queues[kind.as_str()] = json!({"version": queue.version(), "entries": entries});
    }
    json!({
        "session_id": session_id,
        "changed_at": session.changed_at,
        "owner": session.owner,
        "rules": rules_json(&session.rules),
        "queues": queues,
    })
}

fn session_from(value: &Value) -> Option<(String, Session)> {
    let mut session = Session::default();
    session.changed_at = value["changed_at"].as_f64()?;
    session.owner = owner_from(value);
    session.rules = rules(&value["rules"])?;
    for kind in Kind::ALL {
        let queue = &value["queues"][kind.as_str()];
        let entries = queue["entries"].as_array()?.iter();
        let entries: Option<Vec<Arc<Prompt>>> = entries
            .map(|entry| Prompt::from_json(entry).map(Arc::new))
            .collect();
        session.queues[kind] = Queue::restore(entries?, queue["version"].as_u64()?);
    }
    Some((value["session_id"].as_str()?.to_string(), session))
}

/// The agent credential a session belongs to; a snapshot written before
/// credentials had names gives every session to the legacy `"agent"`.
fn owner_from(value: &Value) -> String {
    let owner = value["owner"].as_str().filter(|owner| !owner.is_empty());
    owner.unwrap_or(LEGACY_AGENT).to_string()
}

fn record_json(id: &str, record: &Record) -> Value {
    let mut value = json!({
        "id": id,
        "kind": record.kind.as_str(),
        "session_id": record.session_id,
        "asked": record.asked,
        "auto": record.auto,
        "outcome": record.outcome.to_json(),
        "at": record.at,
        "version": record.version,
        "action_digest": record.action_digest,
        "rule": record.rule,
        "agent_name": record.agent,
    });
    if let Some(by) = &record.by {
        value["by"] = json!(by);
    }
    if let Some(action) = &record.action {
        value["action"] = action.to_json();
    }
    value
}

fn record_from(value: &Value) -> Option<(String, Record)> {
    let kind = Kind::parse(value["kind"].as_str()?)?;
    let asked = value["asked"].as_str().unwrap_or_default();
    let action = match value.get("action") {
        None => None,
        Some(action) => Some(Box::new(Action::from_json(action)?)),
    };
    // Snapshots written before receipts kept no digest: an approval's is
    // its action's (its command's); a clarify's choices are gone, so its
    // question alone.
    let canonical = match (kind, &action) {
        (Kind::Approval, Some(action)) => action.key(),
        (Kind::Approval, None) => receipt::command_action(asked),
        (Kind::Clarify, _) => receipt::action_of(&Payload::question(asked.to_string(), Vec::new())),
    };
    let record = Record {
        kind,
        session_id: value["session_id"].as_str()?.to_string(),
        // Snapshots written before the history kept neither.
        asked: asked.to_string(),
        action,
        auto: value["auto"].as_bool().unwrap_or_default(),
        outcome: Outcome::from_json(kind, &value["outcome"])?,
        at: value["at"].as_f64()?,
        version: value["version"].as_u64()?,
        action_digest: match value["action_digest"].as_str() {
            Some(digest) => digest.to_string(),
            None => receipt::action_digest(&canonical),
        },
        rule: value["rule"].as_str().map(str::to_string),
        // Snapshots written before credentials had names.
        agent: value["agent_name"]
            .as_str()
            .unwrap_or(LEGACY_AGENT)
            .to_string(),
        by: value["by"].as_str().map(str::to_string),
    };
    Some((value["id"].as_str()?.to_string(), record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::change::Change;
    use crate::core::prompt::{Answer, Choice, Payload};
    use crate::core::rules::Scope;

    #[test]
    fn a_rule_in_a_snapshot_that_may_not_be_granted_is_dropped() {
        let mut state = State::default();
        let command = crate::core::action::Action::Command {
            command: "git push origin".into(),
            cwd: None,
        };
        let payload = Payload::approval(command, String::new(), Vec::new(), Default::default());
        let asked = Prompt::new("a".repeat(32), "s1".into(), 1.0, 600, payload);
        state.apply(&Change::Submitted(asked.into()));
        state.apply(&Change::Resolved {
            session_id: "s1".into(),
            kind: Kind::Approval,
            id: "a".repeat(32),
            outcome: Outcome::Answered(Answer::choice(Choice::Always)),
            at: 2.0,
            grant: Some(Scope::Prefix {
                prefix: "git push".into(),
                options: false,
            }),
            by: None,
        });
        let mut snapshot = state.to_snapshot();
        assert_eq!(State::from_snapshot(&snapshot), Some(state.clone()));
        let forged = [
            json!({"rule_id": "f1", "scope": {"prefix": "sudo", "options": true},
                "lifetime": "always", "session_id": null, "granted_at": 3.0, "command": "sudo reboot"}),
            json!({"rule_id": "f2", "scope": {"exact": "rm -rf ~"},
                "lifetime": "always", "session_id": null, "granted_at": 3.0, "command": "ls"}),
        ];
        snapshot["always"].as_array_mut().unwrap().extend(forged);
        let read = State::from_snapshot(&snapshot).expect("a state");
        assert_eq!(read, state, "only the rule that holds");
        assert_eq!(read.rule("f1"), None);
    }

    #[test]
    fn who_asked_and_who_answered_survive_a_snapshot_and_old_ones_read_as_agent() {
        let mut state = State::default();
        for (id, session_id) in [("c".repeat(12), "s1"), ("d".repeat(12), "s2")] {
            let payload = Payload::question("Which?".into(), Vec::new());
            let prompt = Prompt::new(id, session_id.into(), 1.0, 600, payload);
            state.apply(&Change::Submitted(prompt.with_agent("build-bot").into()));
        }
        state.apply(&Change::Resolved {
            session_id: "s1".into(),
            kind: Kind::Clarify,
            id: "c".repeat(12),
            outcome: Outcome::Answered(Answer::Text("pg".into())),
            at: 2.0,
            grant: None,
            by: Some("anna".into()),
        });
        let lines = state.snapshot_view().to_lines();
        for read in [
            State::from_snapshot(&state.to_snapshot()).expect("a state"),
            State::from_lines(&lines).expect("a state"),
        ] {
            assert_eq!(read, state);
            let decision = read.decision(&"c".repeat(12)).unwrap();
            assert_eq!(
                (decision.agent.as_str(), decision.by.as_str()),
                ("build-bot", "anna")
            );
            assert_eq!(read.sessions["s1"].owner, "build-bot");
        }
        // Written before names (format 1): owner, agent and answerer read
        // as the legacy credentials.
        let old = concat!(
            r#"{"layout":2,"pruned_version":0,"skipped":[],"version":3}"#,
            "\n",
            r#"{"session":{"changed_at":2.0,"session_id":"s1","versions":{"approval":0,"clarify":3}}}"#,
            "\n",
            r#"{"outcome":{"asked":"Which?","at":2.0,"auto":false,"id":"cccccccccccc","kind":"clarify","#,
            r#""outcome":{"answer":"pg","status":"answered"},"rule":null,"session_id":"s1","version":3}}"#,
            "\n",
        );
        let read = State::from_lines(old.as_bytes()).expect("an old snapshot");
        assert_eq!(read.sessions["s1"].owner, "agent");
        let decision = read.decision(&"c".repeat(12)).unwrap();
        assert_eq!(
            (decision.agent.as_str(), decision.by.as_str()),
            ("agent", "human")
        );
    }

    #[test]
    fn a_wider_grant_is_checked_when_applied_and_read_back() {
        let mut state = State::default();
        let fetch = crate::core::action::Action::Fetch {
            url: "https://e.org/a/b".into(),
            method: None,
        };
        let payload = Payload::approval(fetch, String::new(), Vec::new(), Default::default());
        let url = |prefix: &str, method: &str| Scope::UrlPrefix {
            prefix: prefix.into(),
            method: method.into(),
        };
        // (the grant a record carries, whether applying it grants a rule)
        let grants = [
            (url("https://e.org/c", "GET"), false),
            (url("https://E.org/a", "GET"), false),
            (url("https://e.org/a", "POST"), false),
            (Scope::Tool("x".into()), false),
            (url("https://e.org/a", "GET"), true),
        ];
        for (n, (grant, granted)) in grants.into_iter().enumerate() {
            let id = format!("{n:032x}");
            let asked = Prompt::new(id.clone(), "s1".into(), 1.0, 600, payload.clone());
            state.apply(&Change::Submitted(asked.into()));
            let answered = Change::Resolved {
                session_id: "s1".into(),
                kind: Kind::Approval,
                id: id.clone(),
                outcome: Outcome::Answered(Answer::choice(Choice::Always)),
                at: 2.0,
                grant: Some(grant.clone()),
                by: None,
            };
            assert_eq!(
                state.refused_grant(&answered).is_none(),
                granted,
                "{grant:?}"
            );
            state.apply(&answered);
            assert_eq!(state.rule(&id).is_some(), granted, "{grant:?}");
        }
        let mut snapshot = state.to_snapshot();
        assert_eq!(State::from_snapshot(&snapshot), Some(state.clone()));
        let forged = [
            json!({"rule_id": "f1", "scope": {"url_prefix": "https://e.org/a/../", "method": "GET"},
                "lifetime": "always", "session_id": null, "granted_at": 3.0, "command": "fetch"}),
            json!({"rule_id": "f2", "scope": {"directory": "/src/../", "type": "edit"},
                "lifetime": "always", "session_id": null, "granted_at": 3.0, "command": "edit"}),
            json!({"rule_id": "f3", "scope": {"tool": ""},
                "lifetime": "always", "session_id": null, "granted_at": 3.0, "command": "tool"}),
        ];
        snapshot["always"].as_array_mut().unwrap().extend(forged);
        let read = State::from_snapshot(&snapshot).expect("a state");
        assert_eq!(read, state, "only the rule that holds");
    }
}
