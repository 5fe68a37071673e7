//! `permission_prompt`, the tool of `askgate mcp` that `claude -p
//! --permission-prompt-tool mcp__askgate__permission_prompt` calls
//! (docs/agents.md), as values (its definition is in `tools.json`): its input
//! (`{tool_name, input, tool_use_id}`) made into the approval the hooks
//! submit for the same tool call (`hooks/`, one mapping for both); and the
//! outcome made into the `behavior` JSON Claude Code reads, as the tool
//! result's text. Pure; `cli/mcp.rs` does the asking.
//!
//! Invariants, the hooks': only the human's approval (or a rule they
//! granted) allows, and with `--verify-key` only on a receipt for the call
//! that runs (`receipt::gate`); the policy's read-only tools pass; a
//! timeout is said to be one, never the human's denial; an input it cannot
//! read, or an askgate it cannot ask, denies, saying what to fix. A deny is
//! an answer, so no result of this tool is `isError`.
//!
//! `AskUserQuestion` reaches this tool too (under `claude -p` only when a
//! permission prompt tool is set): its questions become a clarify (one
//! question with its options as choices, several as a form), and the
//! human's answers go back as `updatedInput.answers`, by question.

use crate::cli::receipt;
use crate::cli::tools::{Submit, text_result};
use crate::core::kind::Kind;
use crate::hooks::{self, Agent, Settings, ToolCall, Verdict, claude_code};
use serde_json::{Map, Value};

pub const PERMISSION_PROMPT: &str = "permission_prompt";
/// Claude Code's tool that asks the user questions with options.
const ASK_USER_QUESTION: &str = "AskUserQuestion";

/// What a call comes to before anything is asked.
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// A result at once: a tool the policy lets through, or an input that
    /// cannot be read.
    Answer(Value),
    /// An approval to submit; `call` turns its outcome into the result.
    Ask { submit: Submit, call: ToolCall },
}

/// The call's plan: the hooks' own for the same tool call, made in the
/// session `settings` names and in the directory `askgate mcp` runs in
/// (Claude Code starts it in the project's).
pub fn plan(arguments: &Map<String, Value>, settings: &Settings, cwd: &str) -> Plan {
    let call = match read(arguments, cwd) {
        Ok(call) => call,
        Err(why) => {
            let reason = format!(
                "askgate's {PERMISSION_PROMPT}: {why}; configure it as docs/agents.md says; not run"
            );
            return Plan::Answer(result(&Verdict::Deny { reason }, &Value::Null));
        }
    };
    let questions = (call.tool_name == ASK_USER_QUESTION)
        .then(|| questions::clarify(&call.tool_input, settings))
        .flatten();
    if let Some(body) = questions {
        let submit = Submit {
            kind: Kind::Clarify,
            body,
        };
        return Plan::Ask { submit, call };
    }
    match hooks::plan(Agent::ClaudeCode, settings, &call) {
        hooks::Plan::Pass => Plan::Answer(result(&Verdict::Pass, &call.tool_input)),
        hooks::Plan::Ask { body, .. } => Plan::Ask {
            submit: Submit {
                kind: Kind::Approval,
                body,
            },
            call,
        },
    }
}

/// What came of asking: the wait's final body and the prompt's id, or why
/// it could not be asked.
pub type Waited<'a> = Result<(&'a Value, &'a str), &'a str>;

/// The result of what the prompt submitted as `body` came to, at `now`
/// (Unix seconds). With a key in `settings`, an allow of the call stands
/// only on a receipt for it; the answers to `AskUserQuestion` go back as
/// the human gave them (a clarify's receipt approves no action).
pub fn outcome(
    settings: &Settings,
    call: &ToolCall,
    body: &Value,
    waited: Waited,
    now: u64,
) -> Value {
    let answered =
        |outcome: &Value| outcome["status"] == "answered" && outcome.get("response").is_some();
    let verdict = match waited {
        Ok((outcome, _)) if call.tool_name == ASK_USER_QUESTION && answered(outcome) => {
            questions::answered(&call.tool_input, &outcome["response"])
        }
        Ok((outcome, id)) => {
            let verdict = hooks::verdict(Agent::ClaudeCode, settings, call, outcome);
            let key = settings.verify_key.as_deref();
            receipt::gate(verdict, key, body, outcome, id, now)
        }
        Err(why) => hooks::failed(settings, why),
    };
    result(&verdict, &call.tool_input)
}

fn result(verdict: &Verdict, input: &Value) -> Value {
    let behavior = claude_code::permission_prompt(verdict, input);
    text_result(&behavior.to_string(), false)
}

fn read(arguments: &Map<String, Value>, cwd: &str) -> Result<ToolCall, String> {
    let tool_name = match arguments.get("tool_name") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        _ => return Err("tool_name must be a tool's name".into()),
    };
    let tool_input = match arguments.get("input") {
        Some(input @ Value::Object(_)) => input.clone(),
        _ => return Err("input must be the tool's input, an object".into()),
    };
    Ok(ToolCall {
        event: PERMISSION_PROMPT.into(),
        agent_session: String::new(),
        cwd: cwd.into(),
        tool_name,
        tool_input,
    })
}

/// `AskUserQuestion`'s input as a clarify, and the response back.
mod questions {
    use crate::hooks::{Settings, Verdict};
    use serde_json::{Value, json};

    /// One question: its text, its options' labels, whether several may
    /// be picked.
    struct Question<'a> {
        text: &'a str,
        labels: Vec<&'a str>,
        multiple: bool,
    }

    fn read_one(question: &Value) -> Option<Question<'_>> {
        let options = question.get("options")?.as_array()?;
        let labels = options.iter().map(|o| o.get("label")?.as_str());
        Some(Question {
            text: question.get("question")?.as_str()?,
            labels: labels.collect::<Option<Vec<&str>>>()?,
            multiple: question.get("multiSelect").and_then(Value::as_bool) == Some(true),
        })
    }

    fn read(input: &Value) -> Option<Vec<Question<'_>>> {
        let list = input.get("questions")?.as_array()?;
        let questions: Option<Vec<Question>> = list.iter().map(read_one).collect();
        questions.filter(|questions| !questions.is_empty())
    }

    /// The clarify body; `None` when the input is not questions (then it is
    /// asked about as any other tool call).
    pub fn clarify(input: &Value, settings: &Settings) -> Option<Value> {
        let questions = read(input)?;
        let mut body = json!({
            "session_id": settings.session.clone().unwrap_or_default(),
            "timeout_seconds": settings.timeout_seconds,
        });
        match questions.as_slice() {
            [one] => {
                body["question"] = one.text.into();
                body["choices"] = json!(one.labels);
                body["multiple"] = json!(one.multiple && one.labels.len() > 1);
            }
            several => {
                body["question"] = "Claude Code asks:".into();
                let mut properties = serde_json::Map::new();
                for (index, question) in several.iter().enumerate() {
                    let property = match question.multiple {
                        true => json!({"type": "array", "title": question.text,
                                       "items": {"type": "string", "enum": question.labels}}),
                        false => {
                            json!({"type": "string", "title": question.text, "enum": question.labels})
                        }
                    };
                    properties.insert(format!("q{}", index + 1), property);
                }
                let required: Vec<String> = (1..=several.len()).map(|i| format!("q{i}")).collect();
                body["schema"] =
                    json!({"type": "object", "properties": properties, "required": required});
            }
        }
        Some(body)
    }

    /// The human's response as `updatedInput.answers`: each question's
    /// text to its answer (several picks joined by ", ").
    pub fn answered(input: &Value, response: &Value) -> Verdict {
        let text = |answer: &Value| match answer {
            Value::String(text) => text.clone(),
            Value::Array(picks) => {
                let picks: Vec<&str> = picks.iter().filter_map(Value::as_str).collect();
                picks.join(", ")
            }
            other => other.to_string(),
        };
        let questions = read(input).unwrap_or_default();
        let mut answers = serde_json::Map::new();
        match questions.as_slice() {
            [one] => {
                answers.insert(one.text.into(), text(response).into());
            }
            several => {
                for (index, question) in several.iter().enumerate() {
                    let answer = &response[format!("q{}", index + 1)];
                    answers.insert(question.text.into(), text(answer).into());
                }
            }
        }
        let mut updated = input.clone();
        updated["answers"] = Value::Object(answers);
        Verdict::Allow {
            reason: "answered by the human through askgate".into(),
            updated_input: Some(updated),
            note: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings() -> Settings {
        Settings {
            session: Some("s".into()),
            timeout_seconds: 60,
            ..Settings::new()
        }
    }

    fn behavior(result: &Value) -> Value {
        assert_eq!(result["isError"], false, "{result}");
        serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap()
    }

    /// `outcome` for the prompt `body` asked about `call`: its wait's body
    /// (or why there is none), the prompt being `p1`, at time 0.
    fn result_of(
        settings: &Settings,
        call: &ToolCall,
        body: &Value,
        waited: Result<&Value, &str>,
    ) -> Value {
        outcome(
            settings,
            call,
            body,
            waited.map(|outcome| (outcome, "p1")),
            0,
        )
    }

    fn arguments(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn asked(arguments: Map<String, Value>) -> (Value, ToolCall) {
        match plan(&arguments, &settings(), "/r/repo") {
            Plan::Ask { submit, call } => {
                let question = submit.body.get("question").is_some();
                let kind = [Kind::Approval, Kind::Clarify][usize::from(question)];
                assert_eq!(submit.kind, kind, "{}", submit.body);
                (submit.body, call)
            }
            Plan::Answer(result) => panic!("answered at once: {result}"),
        }
    }

    #[test]
    fn a_tool_call_is_asked_as_the_hooks_ask_it() {
        let bash = json!({"command": "make deploy", "description": "Deploy"});
        let (body, _) = asked(arguments(
            json!({"tool_name": "Bash", "input": bash, "tool_use_id": "toolu_1"}),
        ));
        assert_eq!(
            body,
            json!({"session_id": "s", "agent": "claude-code", "cwd": "/r/repo", "timeout_seconds": 60,
                   "action": {"type": "command", "command": "make deploy", "cwd": "/r/repo"},
                   "reason": "Deploy"})
        );
        let (body, _) = asked(arguments(
            json!({"tool_name": "mcp__db__query", "input": {"sql": "drop table x"}}),
        ));
        assert_eq!(
            body["action"],
            json!({"type": "tool", "name": "mcp__db__query", "input": {"sql": "drop table x"}})
        );
    }

    #[test]
    fn read_only_tools_pass_and_what_cannot_be_read_is_denied() {
        let read = arguments(json!({"tool_name": "Read", "input": {"file_path": "/r/a"}}));
        let Plan::Answer(result) = plan(&read, &settings(), "/r") else {
            panic!("Read was asked about")
        };
        assert_eq!(
            behavior(&result),
            json!({"behavior": "allow", "updatedInput": {"file_path": "/r/a"}})
        );
        for bad in [
            json!({"input": {}}),
            json!({"tool_name": "", "input": {}}),
            json!({"tool_name": "Bash"}),
            json!({"tool_name": "Bash", "input": "ls"}),
        ] {
            let Plan::Answer(result) = plan(&arguments(bad.clone()), &settings(), "/r") else {
                panic!("{bad} was asked about")
            };
            let said = behavior(&result);
            assert_eq!(said["behavior"], "deny", "{bad}");
            assert!(
                said["message"].as_str().unwrap().contains("docs/agents.md"),
                "{said}"
            );
        }
    }

    #[test]
    fn outcomes_become_behaviors() {
        let input = json!({"command": "rm -rf build", "description": "clean"});
        let (body, call) = asked(arguments(json!({"tool_name": "Bash", "input": input})));
        let settings = settings();
        let said = |answer: Result<Value, &str>| {
            behavior(&result_of(
                &settings,
                &call,
                &body,
                answer.as_ref().map_err(|why| *why),
            ))
        };
        assert_eq!(
            said(Ok(json!({"status": "answered", "choice": "once"}))),
            json!({"behavior": "allow", "updatedInput": input})
        );
        let edited = json!({"status": "answered", "choice": "once",
                            "edited": {"type": "command", "command": "rm -rf build/tmp"}});
        assert_eq!(
            said(Ok(edited)),
            json!({"behavior": "allow", "updatedInput": {"command": "rm -rf build/tmp", "description": "clean"}})
        );
        let denied = json!({"status": "answered", "choice": "deny", "reason": "use make clean"});
        assert_eq!(
            said(Ok(denied)),
            json!({"behavior": "deny", "message": "denied by the human through askgate: use make clean"})
        );
        assert_eq!(
            said(Ok(json!({"status": "expired"}))),
            json!({"behavior": "deny", "message": "no answer from the human within 60 s through askgate; not run"})
        );
        let down = said(Err(
            "cannot reach the server at http://127.0.0.1:1: connection refused",
        ));
        assert_eq!(down["behavior"], "deny");
        assert!(
            down["message"]
                .as_str()
                .unwrap()
                .contains("start askgate, or set ASKGATE_URL"),
            "{down}"
        );
        // A fallback to the agent's own prompt has none to fall back to here.
        let ask = Settings {
            on_timeout: hooks::Fallback::Ask,
            ..settings.clone()
        };
        let expired = result_of(&ask, &call, &body, Ok(&json!({"status": "expired"})));
        assert_eq!(behavior(&expired)["behavior"], "deny");
    }

    #[test]
    fn ask_user_question_is_a_clarify_and_its_answers_go_back_by_question() {
        let one = json!({"questions": [{"question": "Which database?", "header": "DB", "multiSelect": false,
            "options": [{"label": "postgres", "description": "a server"}, {"label": "sqlite"}]}]});
        let (body, call) = asked(arguments(
            json!({"tool_name": "AskUserQuestion", "input": one}),
        ));
        assert_eq!(
            body,
            json!({"session_id": "s", "timeout_seconds": 60, "question": "Which database?",
                   "choices": ["postgres", "sqlite"], "multiple": false})
        );
        let answered = json!({"status": "answered", "response": "sqlite"});
        let mut expected = one.clone();
        expected["answers"] = json!({"Which database?": "sqlite"});
        assert_eq!(
            behavior(&result_of(&settings(), &call, &body, Ok(&answered))),
            json!({"behavior": "allow", "updatedInput": expected})
        );
        let expired = result_of(&settings(), &call, &body, Ok(&json!({"status": "expired"})));
        assert_eq!(behavior(&expired)["behavior"], "deny");

        let two = json!({"questions": [
            {"question": "Which database?", "options": [{"label": "postgres"}, {"label": "sqlite"}]},
            {"question": "Which extras?", "multiSelect": true, "options": [{"label": "cache"}, {"label": "search"}]}]});
        let (body, call) = asked(arguments(
            json!({"tool_name": "AskUserQuestion", "input": two}),
        ));
        assert_eq!(
            body["schema"],
            json!({"type": "object", "required": ["q1", "q2"], "properties": {
                "q1": {"type": "string", "title": "Which database?", "enum": ["postgres", "sqlite"]},
                "q2": {"type": "array", "title": "Which extras?", "items": {"type": "string", "enum": ["cache", "search"]}}}})
        );
        let response = json!({"q1": "postgres", "q2": ["cache", "search"]});
        // A form the server takes, and an answer that fits it.
        crate::core::form::check_schema(&body["schema"]).expect("a valid form");
        crate::core::form::check_response(&body["schema"], &response).expect("a fitting answer");
        let answered = json!({"status": "answered", "response": response});
        let said = behavior(&result_of(&settings(), &call, &body, Ok(&answered)));
        assert_eq!(
            said["updatedInput"]["answers"],
            json!({"Which database?": "postgres", "Which extras?": "cache, search"})
        );
        // Not questions: asked about as any other tool call.
        let (body, _) = asked(arguments(
            json!({"tool_name": "AskUserQuestion", "input": {"q": 1}}),
        ));
        assert_eq!(body["action"]["type"], "tool");
    }

    /// With `--verify-key`, an allow stands only on a receipt the key
    /// verifies for this prompt and for the call that runs: the one asked,
    /// or the edit the answer names, which is what goes back; anything else
    /// is a deny that says why.
    #[test]
    fn with_a_key_an_allow_stands_only_on_a_receipt_for_the_call_that_runs() {
        use crate::core::action::Action;
        use crate::core::prompt::{Answer, Choice, Decision as Answered, Outcome};
        use crate::core::receipt::{Decision, action_digest};
        let signer = crate::receipt_key::ephemeral().unwrap();
        let settings = Settings {
            verify_key: Some(signer.public_key()),
            ..settings()
        };
        let input = json!({"command": "rm -rf build", "description": "clean"});
        let (body, call) = asked(arguments(json!({"tool_name": "Bash", "input": input})));
        let edit = json!({"type": "command", "command": "rm -rf build/tmp", "cwd": "/r/repo"});
        let receipt = |id: &str, action: &Value, edited: Option<&Value>| {
            let action = Action::from_json(action).unwrap();
            let edited = edited.map(|edit| Box::new(Action::from_json(edit).unwrap()));
            let answer = Answer::Decision(Answered {
                edited,
                ..Answered::plain(Choice::Once)
            });
            let digest = action_digest(&action.key());
            let decision =
                Decision::of(id, "s", Kind::Approval, &digest, &Outcome::Answered(answer));
            signer.sign(&decision.at(0.0)).to_json()
        };
        let once = |receipt: Option<Value>, edited: Option<&Value>| {
            let mut outcome = json!({"status": "answered", "choice": "once"});
            if let Some(receipt) = receipt {
                outcome["receipt"] = receipt;
            }
            if let Some(edited) = edited {
                outcome["edited"] = edited.clone();
            }
            behavior(&result_of(&settings, &call, &body, Ok(&outcome)))
        };
        let asked_action = &body["action"];
        let allowed = json!({"behavior": "allow", "updatedInput": input});
        assert_eq!(once(Some(receipt("p1", asked_action, None)), None), allowed);
        let edited_input = json!({"command": "rm -rf build/tmp", "description": "clean"});
        assert_eq!(
            once(Some(receipt("p1", asked_action, Some(&edit))), Some(&edit)),
            json!({"behavior": "allow", "updatedInput": edited_input})
        );
        let other = json!({"type": "command", "command": "make deploy", "cwd": "/r/repo"});
        for (receipt, edited, why) in [
            (None, None, "the server's answer carries no receipt"),
            (
                Some(receipt("p1", &other, None)),
                None,
                "the receipt is for another action",
            ),
            (
                Some(receipt("p2", asked_action, None)),
                None,
                "the receipt is for another prompt",
            ),
            // An edit the receipt does not name: not what the human approved.
            (
                Some(receipt("p1", asked_action, None)),
                Some(&edit),
                "the receipt is for another action",
            ),
            // The receipt names an edit the answer does not give back.
            (
                Some(receipt("p1", asked_action, Some(&edit))),
                None,
                "the human approved an edited action in place of this one",
            ),
        ] {
            let said = once(receipt, edited);
            assert_eq!(said["behavior"], "deny", "{why}: {said}");
            let message = said["message"].as_str().unwrap();
            assert!(
                message.contains(why) && message.ends_with("; not run"),
                "{message}"
            );
        }
        // A receipt signed by another key.
        let forger = crate::receipt_key::ephemeral().unwrap();
        let digest = action_digest(&Action::from_json(asked_action).unwrap().key());
        let answer = Outcome::Answered(Answer::choice(Choice::Once));
        let forged =
            forger.sign(&Decision::of("p1", "s", Kind::Approval, &digest, &answer).at(0.0));
        let said = once(Some(forged.to_json()), None);
        assert_eq!(said["behavior"], "deny", "{said}");
        // What is not an allow stays as it is.
        let denied = json!({"status": "answered", "choice": "deny", "reason": "no"});
        let said = behavior(&result_of(&settings, &call, &body, Ok(&denied)));
        assert_eq!(said["message"], "denied by the human through askgate: no");
    }
}
