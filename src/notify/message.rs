//! What a notification says, as pure functions: its text, its action
//! buttons, and the JSON each sink takes (ntfy's publish JSON, askgate's
//! webhook JSON; docs/PROTOCOL.md §8).
//!
//! Invariants: prompt text is shown with control, bidi, other invisible and
//! blank-rendering characters as escapes, and a line break as `\n`, so what
//! the notification shows is what the agent sent and padding cannot push a
//! command's tail out of sight; an approval shows its command first and the
//! agent's description after it, as the agent's claim; an approval whose
//! command does not fit is cut with a note and gets no "Allow once" button,
//! so nothing is approved unseen; no button ever grants a rule.

use crate::core::action::Action as ActionKind;
use crate::core::audit::is_hidden;
use crate::core::kind::Kind;
use crate::core::prompt::{Payload, Prompt};
use crate::notify::capability::{self, Capabilities, Claim};
use serde_json::{Value, json};
use std::fmt::Write;

/// Bytes of prompt text a message carries at most (ntfy takes 4,096).
const MESSAGE_BYTES: usize = 3000;
/// Clarify choices offered as buttons (ntfy shows at most three actions).
const CHOICE_BUTTONS: usize = 3;
/// A choice longer than this, once escaped, gets no button: its label
/// would be cut and could be mistaken for another.
const LABEL_BYTES: usize = 64;

/// Where a notification points: the page on the prompt's session, and the
/// route its buttons post to.
#[derive(Clone, Debug, PartialEq)]
pub struct Links {
    /// askgate's address as a phone reaches it: `https://home.example/askgate`.
    pub base: String,
}

impl Links {
    pub fn click(&self, session_id: &str) -> String {
        format!("{}/#s={session_id}", self.base)
    }

    /// The page itself.
    pub fn home(&self) -> String {
        format!("{}/", self.base)
    }

    pub fn act(&self) -> String {
        format!("{}/api/act", self.base)
    }
}

/// The words of a notification.
#[derive(Debug, PartialEq)]
pub struct Text {
    pub title: String,
    pub message: String,
    /// ntfy's and Gotify's scale: 3 is the default, 4 high.
    pub priority: u8,
    pub tags: &'static [&'static str],
    /// False when the prompt's text was cut to fit.
    pub whole: bool,
}

/// One button: its label, the choice it answers with, and the request
/// that answers (a JSON body and the capability header).
#[derive(Debug, PartialEq)]
pub struct Action {
    pub label: String,
    pub body: String,
    pub capability: String,
}

pub fn text(prompt: &Prompt) -> Text {
    let session = &prompt.session_id;
    match &prompt.payload {
        Payload::Approval {
            command,
            description,
            action,
            ..
        } => {
            let mut message = match action.command() {
                Some(_) => format!("$ {}", shown(command)),
                None => format!(
                    "{}: {}\n{}",
                    action.type_name(),
                    shown(action.target()),
                    shown(command)
                ),
            };
            if !description.is_empty() {
                let _ = write!(message, "\n\nThe agent says: {}", shown(description));
            }
            // Only a command or a URL is shown whole; an edit, a write or a
            // tool's input is seen on the page before it is allowed.
            let shows_all = matches!(
                action,
                ActionKind::Command { .. } | ActionKind::Fetch { .. }
            );
            let whole = message.len() <= MESSAGE_BYTES && shows_all;
            Text {
                title: format!("Approve {}? ({session})", what(action)),
                message: cut(message),
                priority: 4,
                tags: &["lock"],
                whole,
            }
        }
        Payload::Clarify {
            question, choices, ..
        } => {
            let mut message = shown(question);
            for (number, choice) in choices.iter().enumerate() {
                let _ = write!(message, "\n{}. {}", number + 1, shown(choice));
            }
            let whole = message.len() <= MESSAGE_BYTES;
            Text {
                title: format!("A question ({session})"),
                message: cut(message),
                priority: 3,
                tags: &["question"],
                whole,
            }
        }
    }
}

/// The buttons of a prompt: "Allow once" (only when the whole command is
/// shown) and "Deny" for an approval; the first three short choices of a
/// clarify.
pub fn actions(prompt: &Prompt, text: &Text, capabilities: &Capabilities) -> Vec<Action> {
    let choices: Vec<(String, &str)> = match &prompt.payload {
        Payload::Approval { .. } => {
            let allow = ("Allow once".to_string(), "once");
            let deny = ("Deny".to_string(), "deny");
            match text.whole {
                true => vec![allow, deny],
                false => vec![deny],
            }
        }
        Payload::Clarify { multiple: true, .. } => Vec::new(),
        Payload::Clarify { choices, .. } => choices
            .iter()
            .filter(|choice| shown(choice) == **choice && choice.len() <= LABEL_BYTES)
            .take(CHOICE_BUTTONS)
            .map(|choice| (choice.clone(), choice.as_str()))
            .collect(),
    };
    let expires = prompt.expires_at.ceil() as u64;
    let kind = prompt.kind();
    choices
        .into_iter()
        .filter_map(|(label, choice)| {
            let claim = Claim {
                session_id: &prompt.session_id,
                kind,
                id: &prompt.id,
                choice,
            };
            let capability = capabilities.mint(&claim, expires)?;
            let body = json!({
                "session_id": prompt.session_id,
                kind.id_field(): prompt.id,
                "choice": choice,
            });
            Some(Action {
                label,
                body: body.to_string(),
                capability,
            })
        })
        .collect()
}

/// The headers an action's request carries.
fn headers(action: &Action) -> Value {
    json!({
        "Content-Type": "application/json",
        capability::HEADER: action.capability,
    })
}

/// ntfy's publish JSON (POSTed to the ntfy server's root).
pub fn ntfy(prompt: &Prompt, topic: &str, links: &Links, actions: &[Action]) -> Value {
    let text = text(prompt);
    let actions: Vec<Value> = actions
        .iter()
        .map(|action| {
            json!({
                "action": "http",
                "label": action.label,
                "url": links.act(),
                "method": "POST",
                "headers": headers(action),
                "body": action.body,
                "clear": true,
            })
        })
        .collect();
    json!({
        "topic": topic,
        "title": text.title,
        "message": text.message,
        "priority": text.priority,
        "tags": text.tags,
        "click": links.click(&prompt.session_id),
        "actions": actions,
    })
}

/// askgate's webhook JSON: the prompt, the words, the link, and each button
/// as the request to make; Gotify reads `title`, `message`, `priority` and
/// `extras` as they are.
pub fn webhook(prompt: &Prompt, links: &Links, actions: &[Action]) -> Value {
    let text = text(prompt);
    let kind = prompt.kind();
    let click = links.click(&prompt.session_id);
    let actions: Vec<Value> = actions
        .iter()
        .map(|action| {
            json!({
                "label": action.label,
                "method": "POST",
                "url": links.act(),
                "headers": headers(action),
                "body": action.body,
            })
        })
        .collect();
    json!({
        "event": "prompt",
        "kind": kind.as_str(),
        "session_id": prompt.session_id,
        "id": prompt.id,
        kind.id_field(): prompt.id,
        "title": text.title,
        "message": text.message,
        "priority": text.priority,
        "click": click,
        "prompt": prompt.to_json(),
        "action": prompt.payload.action().map(ActionKind::to_json),
        "actions": actions,
        "extras": {"client::notification": {"click": {"url": click}}},
    })
}

/// A priority of ntfy's scale (1-5, 0 for none) on Gotify's (0-10).
pub fn gotify_priority(ntfy: u8) -> u8 {
    match ntfy {
        0 => 0,
        1 => 1,
        2 => 3,
        3 => 5,
        4 => 8,
        _ => 10,
    }
}

/// "2 approvals and 1 question", "1 question".
fn counted(approvals: usize, questions: usize) -> String {
    let noun =
        |n: usize, one: &str, many: &str| format!("{n} {}", [many, one][usize::from(n == 1)]);
    match (approvals, questions) {
        (0, q) => noun(q, "question", "questions"),
        (a, 0) => noun(a, "approval", "approvals"),
        (a, q) => format!(
            "{} and {}",
            noun(a, "approval", "approvals"),
            noun(q, "question", "questions")
        ),
    }
}

fn louder(approvals: usize) -> (u8, &'static [&'static str]) {
    match approvals {
        0 => (3, &["question"]),
        _ => (4, &["lock"]),
    }
}

/// Several new prompts of one session told as one: no buttons, a link.
pub fn summary_text(session_id: &str, approvals: usize, questions: usize) -> Text {
    let (priority, tags) = louder(approvals);
    let new = counted(approvals, questions).replacen(' ', " new ", 1);
    Text {
        title: format!("{new} in {}", shown(session_id)),
        message: "Open askgate to see and answer them.".into(),
        priority,
        tags,
        whole: true,
    }
}

/// The end of quiet hours, with what they held.
pub fn held_text(approvals: usize, questions: usize) -> Text {
    let (priority, tags) = louder(approvals);
    let waiting = counted(approvals, questions);
    let verb = ["wait", "waits"][usize::from(approvals + questions == 1)];
    Text {
        title: "Quiet hours are over".into(),
        message: format!("{waiting} {verb} for you in askgate."),
        priority,
        tags,
        whole: true,
    }
}

/// `askgate notify test`.
pub fn test_text() -> Text {
    Text {
        title: "askgate: a test notification".into(),
        message: "Notifications from askgate reach you. Nothing to answer.".into(),
        priority: 3,
        tags: &["white_check_mark"],
        whole: true,
    }
}

/// ntfy's publish JSON for a notification without buttons.
pub fn ntfy_plain(text: &Text, topic: &str, click: &str) -> Value {
    json!({
        "topic": topic,
        "title": text.title,
        "message": text.message,
        "priority": text.priority,
        "tags": text.tags,
        "click": click,
    })
}

/// The webhook JSON of a notification without buttons: `event` names it
/// (`summary`, `held`, `test`); the priority is on Gotify's scale.
pub fn webhook_plain(event: &str, text: &Text, click: &str) -> Value {
    json!({
        "event": event,
        "title": text.title,
        "message": text.message,
        "priority": gotify_priority(text.priority),
        "click": click,
        "extras": {"client::notification": {"click": {"url": click}}},
    })
}

/// The webhook's follow-up once a notified prompt is resolved: priority 0,
/// which Gotify keeps without a notification on the phone.
pub fn webhook_resolved(session_id: &str, kind: Kind, id: &str, status: &str) -> Value {
    let what = match kind {
        Kind::Approval => "An approval",
        Kind::Clarify => "A question",
    };
    json!({
        "event": "resolved",
        "kind": kind.as_str(),
        "session_id": session_id,
        "id": id,
        kind.id_field(): id,
        "status": status,
        "title": format!("{what} in {} was {status}", shown(session_id)),
        "message": format!("{what} in {} was {status}; nothing is left to answer.", shown(session_id)),
        "priority": 0,
    })
}

/// Characters that render as blank space without being a plain space: they
/// could pass for one, or push what follows out of sight (the page's
/// `www/visible.js` escapes the same ones).
fn is_blank(c: char) -> bool {
    matches!(u32::from(c),
        0xA0 | 0x1680 | 0x2000..=0x200A | 0x202F | 0x205F | 0x2800 | 0x3000
        | 0x115F | 0x1160 | 0x3164 | 0xFFA0 | 0x1D159 | 0x1BCA0..=0x1BCA3)
}

/// What an approval asks, in a title: "a command", "an edit" and so on.
fn what(action: &ActionKind) -> &'static str {
    match action {
        ActionKind::Command { .. } => "a command",
        ActionKind::Edit { .. } => "an edit",
        ActionKind::Write { .. } => "a file write",
        ActionKind::Fetch { .. } => "a fetch",
        ActionKind::Tool { .. } => "a tool call",
    }
}

/// Text with every character that does not show as itself escaped.
fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\\' => out.push_str("\\\\"),
            c if is_hidden(c) || is_blank(c) => {
                let _ = write!(out, "\\u{{{:X}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// At most `MESSAGE_BYTES`, cut at a character and saying so.
fn cut(mut message: String) -> String {
    if message.len() <= MESSAGE_BYTES {
        return message;
    }
    let mut end = MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let left = message.len() - end;
    message.truncate(end);
    let _ = write!(message, "… ({left} more bytes: open askgate to see it all)");
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(command: &str) -> Prompt {
        let action = crate::core::action::Action::Command {
            command: command.into(),
            cwd: None,
        };
        let context = crate::core::prompt::Context::default();
        let payload = Payload::approval(action, "tidy up".into(), vec![], context);
        Prompt::new("a".repeat(32), "s1".into(), 1_795_477_000.0, 300, payload)
    }

    fn clarify(choices: &[&str]) -> Prompt {
        let choices = choices.iter().map(|c| c.to_string()).collect();
        let payload = Payload::question("Which?".into(), choices);
        Prompt::new("c".repeat(12), "s1".into(), 1_795_477_000.0, 0, payload)
    }

    fn links() -> Links {
        Links {
            base: "https://home.example/askgate".into(),
        }
    }

    fn labels(prompt: &Prompt) -> Vec<String> {
        let capabilities = Capabilities::new(&[1; 32]);
        let actions = actions(prompt, &text(prompt), &capabilities);
        actions.into_iter().map(|action| action.label).collect()
    }

    #[test]
    fn an_approval_is_shown_escaped_with_allow_once_and_deny() {
        let prompt = approval("rm -rf /tmp/x\n\u{202E}txt");
        let text = text(&prompt);
        assert_eq!(text.title, "Approve a command? (s1)");
        assert_eq!(
            text.message,
            "$ rm -rf /tmp/x\\n\\u{202E}txt\n\nThe agent says: tidy up"
        );
        assert_eq!(labels(&prompt), ["Allow once", "Deny"]);
    }

    #[test]
    fn blank_and_bidi_characters_are_escaped_and_the_command_comes_first() {
        let command = crate::core::action::Action::Command {
            command: "ls\u{2800}\u{2800}\u{A0}\u{2000}\u{200A}\u{202F}\u{205F}\u{1680}\u{3000}\u{3164}\u{FFA0}\u{115F}\u{200B}; rm -rf ~".into(),
            cwd: None,
        };
        let description = "lists \u{202E}txt.exe".into();
        let payload = Payload::approval(command, description, vec![], Default::default());
        let prompt = Prompt::new("a".repeat(32), "s1".into(), 1_795_477_000.0, 300, payload);
        let message = text(&prompt).message;
        assert_eq!(
            message,
            "$ ls\\u{2800}\\u{2800}\\u{A0}\\u{2000}\\u{200A}\\u{202F}\\u{205F}\\u{1680}\\u{3000}\\u{3164}\\u{FFA0}\\u{115F}\\u{200B}; rm -rf ~\n\nThe agent says: lists \\u{202E}txt.exe"
        );
        let capabilities = Capabilities::new(&[1; 32]);
        let actions = actions(&prompt, &text(&prompt), &capabilities);
        assert_eq!(webhook(&prompt, &links(), &actions)["message"], message);
        assert_eq!(ntfy(&prompt, "t", &links(), &actions)["message"], message);
    }

    #[test]
    fn a_clarify_is_escaped_and_a_choice_that_hides_characters_gets_no_button() {
        let payload = Payload::question(
            "Deploy to \u{202E}niam?".into(),
            vec!["\u{202E}niam".into(), "main\u{2800}".into(), "main".into()],
        );
        let prompt = Prompt::new("c".repeat(12), "s1".into(), 1_795_477_000.0, 0, payload);
        assert_eq!(
            text(&prompt).message,
            "Deploy to \\u{202E}niam?\n1. \\u{202E}niam\n2. main\\u{2800}\n3. main"
        );
        assert_eq!(labels(&prompt), ["main"]);
    }

    #[test]
    fn an_action_shows_its_type_and_path_or_url_escaped_and_the_webhook_carries_it_whole() {
        let edit = crate::core::action::Action::Edit {
            path: "a\u{202E}txt.rs".into(),
            edits: vec![crate::core::action::Edit {
                old: "1".into(),
                new: "2".into(),
            }],
        };
        let context = crate::core::prompt::Context::default();
        let payload = Payload::approval(edit.clone(), String::new(), vec![], context);
        let prompt = Prompt::new("a".repeat(32), "s1".into(), 1_795_477_000.0, 300, payload);
        let text = text(&prompt);
        assert_eq!(text.title, "Approve an edit? (s1)");
        assert_eq!(
            text.message,
            "edit: a\\u{202E}txt.rs\nedit a\\u{202E}txt.rs (1 edit, +1 -1)"
        );
        assert_eq!(
            labels(&prompt),
            ["Deny"],
            "an edit is allowed on the page, where it is shown whole"
        );
        let webhook = webhook(&prompt, &links(), &[]);
        assert_eq!(webhook["action"], edit.to_json());
        assert_eq!(webhook["prompt"]["action"], edit.to_json());

        let fetch = crate::core::action::Action::Fetch {
            url: "https://example.org/a".into(),
            method: None,
        };
        let payload = Payload::approval(fetch, String::new(), vec![], Default::default());
        let prompt = Prompt::new("b".repeat(32), "s1".into(), 1_795_477_000.0, 300, payload);
        let words = super::text(&prompt);
        assert_eq!(words.title, "Approve a fetch? (s1)");
        assert!(words.message.starts_with("fetch: https://example.org/a\n"));
        assert_eq!(
            labels(&prompt),
            ["Allow once", "Deny"],
            "a URL is shown whole"
        );
    }

    #[test]
    fn a_command_that_does_not_fit_is_cut_and_cannot_be_allowed() {
        let prompt = approval(&"x".repeat(5000));
        let text = text(&prompt);
        assert!(!text.whole);
        assert!(text.message.len() < 3100, "{}", text.message.len());
        assert!(text.message.ends_with("open askgate to see it all)"));
        assert_eq!(labels(&prompt), ["Deny"]);
    }

    #[test]
    fn a_clarify_offers_its_first_three_plain_choices() {
        let long = "y".repeat(65);
        let prompt = clarify(&["a\u{200B}b", "alpha", &long, "beta", "gamma", "delta"]);
        assert_eq!(labels(&prompt), ["alpha", "beta", "gamma"]);
        assert_eq!(
            text(&prompt).message,
            format!("Which?\n1. a\\u{{200B}}b\n2. alpha\n3. {long}\n4. beta\n5. gamma\n6. delta")
        );
    }

    #[test]
    fn ntfy_gets_its_publish_json() {
        let prompt = approval("ls");
        let capabilities = Capabilities::new(&[1; 32]);
        let actions = actions(&prompt, &text(&prompt), &capabilities);
        let json = ntfy(&prompt, "askgate", &links(), &actions);
        assert_eq!(json["topic"], "askgate");
        assert_eq!(json["priority"], 4);
        assert_eq!(json["click"], "https://home.example/askgate/#s=s1");
        let allow = &json["actions"][0];
        assert_eq!(allow["action"], "http");
        assert_eq!(allow["url"], "https://home.example/askgate/api/act");
        assert_eq!(allow["method"], "POST");
        assert_eq!(allow["headers"]["Content-Type"], "application/json");
        assert!(
            allow["headers"][capability::HEADER]
                .as_str()
                .unwrap()
                .starts_with("v1.")
        );
        let body: Value = serde_json::from_str(allow["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"session_id": "s1", "approval_id": prompt.id, "choice": "once"})
        );
        assert!(!json.to_string().contains("session\""), "no rule choice");
    }

    #[test]
    fn the_webhook_gets_the_prompt_and_the_requests_to_make() {
        let prompt = clarify(&["yes"]);
        let capabilities = Capabilities::new(&[1; 32]);
        let actions = actions(&prompt, &text(&prompt), &capabilities);
        let json = webhook(&prompt, &links(), &actions);
        assert_eq!(json["event"], "prompt");
        assert_eq!(json["kind"], "clarify");
        assert_eq!(json["clarify_id"], prompt.id);
        assert_eq!(json["prompt"], prompt.to_json());
        assert_eq!(json["actions"][0]["label"], "yes");
        assert_eq!(
            json["extras"]["client::notification"]["click"]["url"],
            json["click"]
        );
    }
}
