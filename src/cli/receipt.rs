//! Checking receipts where a decision is acted on (docs/PROTOCOL.md §10):
//! `check`, which the command wrapper, the hooks and `askgate verify` share;
//! `gate`, a hook's or `permission_prompt`'s allow checked against the
//! call that runs; `askgate verify`; and `askgate receipts key`.
//!
//! Invariants: a receipt lets an action run only if it verifies with the
//! key given (never one the server sends alongside), names the expected
//! prompt when one is expected, approves, is for exactly the expected
//! action and has not expired; anything else is a reason, never a run.

use crate::cli::client::Connection;
use crate::core::action::Action;
use crate::core::receipt::{self, Decision, Receipt};
use crate::hooks::Verdict;
use serde_json::Value;
use std::io::Read;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

pub const VERIFY_USAGE: &str = "askgate verify --key KEY --receipt FILE|- [--command CMD | --action FILE]\n    \
    checks a receipt (the JSON a wait returned, or its \"receipt\" object) against the server's public key \
    (hex, from askgate receipts key); with --command or --action also that it approves that action \
    and has not expired; exits 0 valid, 1 invalid (saying why), 2 usage";
pub const KEY_USAGE: &str = "askgate receipts key [--data-dir D | --server URL]   \
    (prints the public key that verifies receipts, hex, from the data directory, the default one unless given, or a running server)";

/// The receipt's verdict on an action: the decision when the receipt
/// verifies with `public_key`, approves `action` (a canonical action,
/// `receipt::command_action`) and has not expired at `now` (Unix seconds).
pub fn check(
    public_key: &str,
    receipt: &Value,
    action: &str,
    now: u64,
) -> Result<Decision, String> {
    let receipt = Receipt::from_json(receipt).ok_or("no receipt")?;
    let decision = receipt::verify(public_key.trim(), &receipt)?;
    receipt::approves(&decision, action, now)?;
    Ok(decision)
}

/// A wait's (or a submit's) answer checked for the prompt `id`.
pub fn check_reply(
    public_key: &str,
    reply: &Value,
    id: &str,
    action: &str,
    now: u64,
) -> Result<Decision, String> {
    if reply.get("receipt").is_none() {
        return Err("the server's answer carries no receipt".into());
    }
    let decision = check(public_key, &reply["receipt"], action, now)?;
    match decision.id == id {
        true => Ok(decision),
        false => Err(format!(
            "the receipt is for another prompt ({})",
            decision.id
        )),
    }
}

/// An agent's verdict on a tool call, held to a receipt when a key is
/// given: an allow stands only on a receipt `key` verifies for the prompt
/// `id` and for the action that runs, the one asked (`asked`, the submit's
/// body) or, when the outcome says the human edited it, the edited one
/// (which is what the tool input given back is made from); any other allow
/// is a deny saying why. Without a key, or for any other verdict, the
/// verdict as it is.
pub fn gate(
    verdict: Verdict,
    key: Option<&str>,
    asked: &Value,
    outcome: &Value,
    id: &str,
    now: u64,
) -> Verdict {
    let (Verdict::Allow { .. }, Some(key)) = (&verdict, key) else {
        return verdict;
    };
    let edited = outcome.get("edited").filter(|edited| !edited.is_null());
    let runs = edited.unwrap_or(&asked["action"]);
    let checked = Action::from_json(runs)
        .ok_or_else(|| "the action to run cannot be read".to_string())
        .and_then(|action| check_reply(key, outcome, id, &action.key(), now));
    match checked {
        Ok(_) => verdict,
        Err(why) => Verdict::Deny {
            reason: format!("askgate: not allowed: {why}; not run"),
        },
    }
}

pub fn now() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.map(|since| since.as_secs()).unwrap_or_default()
}

/// `askgate verify`.
pub fn verify_main(args: &[String]) -> ExitCode {
    match verify_args(args) {
        Ok(Ok(decision)) => {
            println!("{}", decision.payload());
            ExitCode::SUCCESS
        }
        Ok(Err(why)) => {
            eprintln!("askgate verify: invalid: {why}");
            ExitCode::from(1)
        }
        Err(message) => {
            eprintln!("askgate verify: {message}\nusage: {VERIFY_USAGE}");
            ExitCode::from(2)
        }
    }
}

/// The verdict, or a usage error.
fn verify_args(args: &[String]) -> Result<Result<Decision, String>, String> {
    let (mut key, mut receipt, mut action) = (None, None, None);
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().cloned().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--key" => key = Some(value()?),
            "--receipt" => receipt = Some(value()?),
            "--command" => action = Some(receipt::command_action(&value()?)),
            "--action" => action = Some(canonical_action(&read(&value()?)?)?),
            _ => return Err(format!("unexpected argument: {flag}")),
        }
    }
    let key = key.ok_or("--key is required")?;
    let text = read(&receipt.ok_or("--receipt is required")?)?;
    let value: Value =
        serde_json::from_str(&text).map_err(|error| format!("the receipt is not JSON: {error}"))?;
    let value = match value.get("receipt") {
        Some(inner) => inner.clone(),
        None => value,
    };
    let Some(receipt) = Receipt::from_json(&value) else {
        return Ok(Err("no payload and signature".into()));
    };
    let verdict = receipt::verify(key.trim(), &receipt);
    Ok(match action {
        Some(action) => verdict.and_then(|d| receipt::approves(&d, &action, now()).map(|()| d)),
        None => verdict,
    })
}

/// An action from a file: its JSON, written canonically.
fn canonical_action(text: &str) -> Result<String, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|error| format!("the action is not JSON: {error}"))?;
    Ok(value.to_string())
}

/// A file's text, or stdin's for `-`.
fn read(path: &str) -> Result<String, String> {
    let mut text = String::new();
    let read = match path {
        "-" => std::io::stdin().read_to_string(&mut text).map(|_| ()),
        path => std::fs::read_to_string(path).map(|read| text = read),
    };
    read.map_err(|error| format!("cannot read {path}: {error}"))?;
    Ok(text)
}

/// `askgate receipts key`.
pub fn key_main(args: &[String]) -> ExitCode {
    match key_args(args) {
        Ok(key) => {
            println!("{key}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("askgate receipts key: {message}\nusage: {KEY_USAGE}");
            ExitCode::from(2)
        }
    }
}

fn key_args(args: &[String]) -> Result<String, String> {
    let env = |name: &str| std::env::var(name).ok();
    match args {
        [flag, dir] if flag == "--data-dir" => crate::receipt_key::read(dir.as_ref())
            .map(|signer| signer.public_key())
            .map_err(|error| error.to_string()),
        [flag, server] if flag == "--server" => {
            let mut connection = Connection::from_env(&env);
            connection.server = server.clone();
            let client = connection.client(env("ASKGATE_TOKEN"))?;
            let body = client.get_json("/api/receipts/key")?;
            body["public_key"]
                .as_str()
                .map(str::to_string)
                .ok_or("the server sent no public_key".into())
        }
        [] => match crate::config::default_data_dir(&env) {
            Some(dir) => crate::receipt_key::read(&dir)
                .map(|signer| signer.public_key())
                .map_err(|error| error.to_string()),
            None => Err("neither XDG_STATE_HOME nor HOME is set: give --data-dir".into()),
        },
        _ => Err("give --data-dir D or --server URL".into()),
    }
}
