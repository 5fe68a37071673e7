//! Audit lines: one `key=value` line for each decision, made from the
//! change that records it and the state it is about to apply to: a prompt
//! asked, answered, answered by a rule, expired or cancelled; a rule
//! granted, revoked, or gone with its session (docs/PROTOCOL.md §8).
//!
//! Invariants: a line is exactly one line, whatever the agent sent. A value
//! that is not a plain word is quoted, and inside the quotes `\`, `"`,
//! control, bidi and other invisible characters are escaped (`\n`,
//! `\u202E`), so no text can forge a line or a field, or hide what it
//! says. Each event's keys come in a fixed order, `at` and `event` first.

use crate::core::change::Change;
use crate::core::kind::Kind;
use crate::core::prompt::{Answer, Outcome, Payload, Prompt};
use crate::core::receipt::Receipt;
use crate::core::rules::Rule;
use crate::core::state::State;
use std::fmt::Write;

/// The lines applying `change` to `state` makes; `by` names who asked for
/// it (the hook credentials fill in), `at` is when (Unix seconds).
pub fn lines(state: &State, change: &Change, by: &str, at: f64) -> Vec<String> {
    match change {
        Change::Submitted(prompt) => vec![asked(prompt, by, at)],
        Change::Resolved {
            session_id,
            kind,
            id,
            outcome,
            ..
        } => {
            let line = |event| prompt_line(event, at, *kind, id, session_id);
            let mut lines = vec![match outcome {
                Outcome::Answered(answer) => {
                    let line = line("answered").field("by", by);
                    answer_fields(line.field(kind.answer_field(), &answer.summary()), answer)
                }
                Outcome::Expired => line("expired"),
                Outcome::Cancelled => line("cancelled").field("by", by),
            }];
            if let Some(rule) = state.rule_granted_by(change) {
                let granted = rule_line("rule_granted", at, &rule).field("by", by);
                lines.push(granted.field("command", &rule.command));
            }
            lines.into_iter().map(Line::end).collect()
        }
        Change::AutoAnswered {
            session_id,
            kind,
            id,
            command,
            answer,
            rule_id,
            ..
        } => {
            let line = prompt_line("auto_approved", at, *kind, id, session_id);
            let line = match state.rule(rule_id) {
                Some(rule) => rule_fields(line, rule),
                None => line.field("rule", rule_id),
            };
            let line = line.field(kind.answer_field(), &answer.summary());
            vec![line.field("command", command).end()]
        }
        Change::RuleRevoked { rule_id, .. } => {
            let revoked = |rule| rule_line("rule_revoked", at, rule).field("by", by);
            let line = state.rule(rule_id).map(revoked);
            line.into_iter().map(Line::end).collect()
        }
        Change::SessionEvicted { session_id } => state
            .session_rules(session_id)
            .iter()
            .map(|rule| {
                let line = rule_line("rule_dropped", at, rule);
                line.field("reason", "session_evicted").end()
            })
            .collect(),
        Change::Paused { agent, paused, .. } => {
            let event = if *paused {
                "agent_paused"
            } else {
                "agent_resumed"
            };
            vec![
                Line::new(event, at)
                    .field("agent", agent)
                    .field("by", by)
                    .end(),
            ]
        }
        Change::Pruned { .. } | Change::Restarted { .. } | Change::Credential(_) => Vec::new(),
    }
}

/// A decision's line with its receipt: the payload and the signature
/// (docs/PROTOCOL.md §10), so the audit log can be checked like a wait.
pub fn with_receipt(line: String, receipt: &Receipt) -> String {
    let line = Line(line).field("receipt", &receipt.payload);
    line.field("signature", &receipt.signature).end()
}

fn asked(prompt: &Prompt, by: &str, at: f64) -> String {
    let line = prompt_line("asked", at, prompt.kind(), &prompt.id, &prompt.session_id);
    let line = line.field("by", by);
    match &prompt.payload {
        Payload::Clarify { question, .. } => line.field("question", question),
        Payload::Approval {
            command,
            action,
            context,
            ..
        } => {
            let mut line = match action.command() {
                Some(_) => line.field("command", command),
                None => {
                    let line = line.field("action", action.type_name());
                    let line = line.field("command", command);
                    line.field("action_json", &action.to_json().to_string())
                }
            };
            for (key, value) in [("agent", &context.agent), ("reason", &context.reason)] {
                if let Some(value) = value {
                    line = line.field(key, value);
                }
            }
            line
        }
    }
    .end()
}

/// A decision's reason, note and edited action, those there are: what was
/// approved beside what was asked.
fn answer_fields(mut line: Line, answer: &Answer) -> Line {
    let Some(decision) = answer.decision() else {
        return line;
    };
    if let Some(reason) = &decision.reason {
        line = line.field("reason", reason);
    }
    if let Some(edited) = &decision.edited {
        let edited = match edited.command() {
            Some(command) => command.to_string(),
            None => edited.to_json().to_string(),
        };
        line = line.field("edited", &edited);
    }
    if let Some(note) = &decision.note {
        line = line.field("note", note);
    }
    line
}

fn prompt_line(event: &str, at: f64, kind: Kind, id: &str, session_id: &str) -> Line {
    let line = Line::new(event, at).field("kind", kind.as_str());
    line.field("id", id).field("session", session_id)
}

fn rule_line(event: &str, at: f64, rule: &Rule) -> Line {
    rule_fields(Line::new(event, at), rule)
}

fn rule_fields(line: Line, rule: &Rule) -> Line {
    let mut line = line.field("rule", &rule.rule_id);
    line = line.field("lifetime", rule.lifetime.as_str());
    if let Some(session_id) = &rule.session_id {
        line = line.field("session", session_id);
    }
    line.field("match", rule.scope.match_name())
        .field("scope", rule.scope.text())
}

/// A line being written, field by field.
struct Line(String);

impl Line {
    fn new(event: &str, at: f64) -> Line {
        Line(format!("at={at:.3} event={event}"))
    }

    fn field(mut self, key: &str, value: &str) -> Line {
        let _ = write!(self.0, " {key}=");
        push_value(&mut self.0, value);
        self
    }

    fn end(self) -> String {
        self.0
    }
}

/// A plain word as it is; anything else quoted, escaped.
fn push_value(out: &mut String, value: &str) {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._:/@+-".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_hidden(c) && u32::from(c) <= 0xFFFF => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c if is_hidden(c) => {
                let _ = write!(out, "\\u{{{:X}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Characters that do not show as themselves: controls, line and
/// paragraph separators, bidi controls, zero-width and other invisible
/// format characters, variation selectors and tags.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(u32::from(c),
            0xAD | 0x34F | 0x61C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
            | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0x3164
            | 0xFE00..=0xFE0F | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFFB | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::prompt::{Answer, Choice};
    use crate::core::rules::Scope;
    use crate::core::state::Limits;

    const AT: f64 = 1_795_477_000.5;

    fn limits() -> Limits {
        Limits {
            max_pending: 8,
            max_prompts: 8,
            max_sessions: 2,
            result_ttl: 60.0,
            max_state_bytes: 1 << 20,
        }
    }

    fn approval(id: &str, session_id: &str, command: &str) -> Prompt {
        let action = crate::core::action::Action::Command {
            command: command.into(),
            cwd: None,
        };
        let context = crate::core::prompt::Context::default();
        let payload = Payload::approval(action, "the agent's claim".into(), vec![], context);
        Prompt::new(id.into(), session_id.into(), AT, 0, payload)
    }

    /// Applies `change` to `state` and returns the lines it made.
    fn apply(state: &mut State, change: Change, by: &str) -> Vec<String> {
        let lines = lines(state, &change, by, AT);
        state.apply(&change);
        lines
    }

    fn check(state: &mut State, change: Change, by: &str, expected: &[&str]) {
        let what = format!("{change:?}");
        let got = apply(state, change, by);
        assert_eq!(got, expected, "{what}");
    }

    #[test]
    fn an_action_and_a_decision_are_audited_escaped_on_one_line() {
        let mut state = State::default();
        let at = "at=1795477000.500";
        let write = crate::core::action::Action::Write {
            path: "a\u{202E}.sh".into(),
            content: "echo hi\n".into(),
        };
        let context = crate::core::prompt::Context {
            agent: Some("claude-code".into()),
            cwd: None,
            reason: Some("to \"fix\"\nit".into()),
        };
        let payload = Payload::approval(write, String::new(), vec![], context);
        let prompt = Prompt::new("w1".into(), "s1".into(), AT, 0, payload);
        #[rustfmt::skip]
        check(&mut state, Change::Submitted(prompt.into()), "agent", &[&format!(
            "{at} event=asked kind=approval id=w1 session=s1 by=agent action=write \
             command=\"write a\\u202E.sh (8 bytes, 1 line)\" \
             action_json=\"{{\\\"content\\\":\\\"echo hi\\\\n\\\",\\\"path\\\":\\\"a\\u202E.sh\\\",\\\"type\\\":\\\"write\\\"}}\" \
             agent=claude-code reason=\"to \\\"fix\\\"\\nit\""
        )]);
        let decision = crate::core::prompt::Decision {
            reason: Some("not\u{202E} now".into()),
            ..crate::core::prompt::Decision::plain(Choice::Deny)
        };
        let decided = state.respond(&limits(), "s1", None, Answer::Decision(decision), None, AT);
        let Ok(crate::core::state::Respond::Answer(change)) = decided else {
            panic!("{decided:?}")
        };
        #[rustfmt::skip]
        check(&mut state, *change, "human", &[&format!(
            "{at} event=answered kind=approval id=w1 session=s1 by=human choice=deny reason=\"not\\u202E now\""
        )]);
    }

    #[test]
    fn every_decision_has_its_line() {
        let mut state = State::default();
        let at = "at=1795477000.500";
        let ask = approval("a1", "s1", "git push origin main");
        check(
            &mut state,
            Change::Submitted(ask.into()),
            "agent",
            &[&format!(
                "{at} event=asked kind=approval id=a1 session=s1 by=agent command=\"git push origin main\""
            )],
        );
        let respond = |choice, prefix| {
            let answer = Answer::choice(choice);
            let decided = state.respond(&limits(), "s1", Some("a1"), answer, prefix, AT);
            match decided.unwrap() {
                crate::core::state::Respond::Answer(change) => *change,
                stale => panic!("{stale:?}"),
            }
        };
        let git_push = Scope::Prefix {
            prefix: "git push".into(),
            options: false,
        };
        let change = respond(Choice::Always, Some(git_push));
        #[rustfmt::skip]
        check(&mut state, change, "human", &[
            &format!("{at} event=answered kind=approval id=a1 session=s1 by=human choice=always"),
            &format!("{at} event=rule_granted rule=a1 lifetime=always match=prefix scope=\"git push\" by=human command=\"git push origin main\""),
        ]);
        let covered = approval("a2", "s2", "git push origin dev");
        let (changes, _) = state.submit(&limits(), covered, |_| false).unwrap();
        #[rustfmt::skip]
        check(&mut state, changes[0].clone(), "agent", &[
            &format!("{at} event=auto_approved kind=approval id=a2 session=s2 rule=a1 lifetime=always match=prefix scope=\"git push\" choice=always command=\"git push origin dev\""),
        ]);
        let revoke = state.revoke("a1", AT).unwrap();
        #[rustfmt::skip]
        check(&mut state, revoke, "human", &[
            &format!("{at} event=rule_revoked rule=a1 lifetime=always match=prefix scope=\"git push\" by=human"),
        ]);

        apply(
            &mut state,
            Change::Submitted(approval("a3", "s3", "ls").into()),
            "agent",
        );
        let change = state.respond(
            &limits(),
            "s3",
            None,
            Answer::choice(Choice::Session),
            None,
            AT,
        );
        let Ok(crate::core::state::Respond::Answer(change)) = change else {
            panic!("{change:?}")
        };
        apply(&mut state, *change, "human");
        let evict = Change::SessionEvicted {
            session_id: "s3".into(),
        };
        #[rustfmt::skip]
        check(&mut state, evict, "agent", &[
            &format!("{at} event=rule_dropped rule=a3 lifetime=session session=s3 match=exact scope=ls reason=session_evicted"),
        ]);

        apply(
            &mut state,
            Change::Submitted(approval("a4", "s4", "true").into()),
            "agent",
        );
        let cancel = state
            .cancel("s4", Kind::Approval, None, "agent", AT)
            .unwrap();
        #[rustfmt::skip]
        check(&mut state, cancel[0].clone(), "agent", &[
            &format!("{at} event=cancelled kind=approval id=a4 session=s4 by=agent"),
        ]);
        let question = Payload::question("Which db?".into(), vec![]);
        let prompt = Prompt::new("c1".into(), "s4".into(), AT - 10.0, 5, question);
        #[rustfmt::skip]
        check(&mut state, Change::Submitted(prompt.into()), "agent", &[
            &format!("{at} event=asked kind=clarify id=c1 session=s4 by=agent question=\"Which db?\""),
        ]);
        let expired = state.expire_due(AT);
        #[rustfmt::skip]
        check(&mut state, expired[0].clone(), "server", &[
            &format!("{at} event=expired kind=clarify id=c1 session=s4"),
        ]);
        let restarted = Change::Restarted { skip: 10 };
        check(&mut state, restarted, "server", &[]);
    }

    #[test]
    fn what_an_agent_sends_cannot_forge_a_line_or_hide_text() {
        let mut state = State::default();
        let command =
            "echo ok\nat=1 event=answered by=human\r\t\"\\\u{202e}txt.exe\u{200b}\u{e0041}é";
        let lines = apply(
            &mut state,
            Change::Submitted(approval("a1", "s1", command).into()),
            "a \"name\"",
        );
        assert_eq!(
            lines,
            [
                "at=1795477000.500 event=asked kind=approval id=a1 session=s1 by=\"a \\\"name\\\"\" \
                 command=\"echo ok\\nat=1 event=answered by=human\\r\\t\\\"\\\\\\u202Etxt.exe\\u200B\\u{E0041}é\""
            ]
        );
        for c in [
            '\u{0}', '\u{7f}', '\u{85}', '\u{2028}', '\u{2066}', '\u{feff}',
        ] {
            assert!(is_hidden(c), "{c:?}");
        }
        for c in ['a', ' ', 'é', '中', '\u{1f600}'] {
            assert!(!is_hidden(c), "{c:?}");
        }
    }
}
