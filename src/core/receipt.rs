//! Receipts: a decision as a canonical JSON payload, signed with Ed25519
//! (docs/PROTOCOL.md §10), and checked again by whoever runs the action.
//!
//! Invariants: the payload holds only strings and integers, its keys
//! sorted, no whitespace, as serde_json writes a map (so any language can
//! reproduce and read it); a receipt is made from what the state keeps of
//! an outcome (journaled, replayed, snapshotted), and Ed25519 signatures
//! are deterministic, so the same outcome gives the same receipt after a
//! restart. Nothing here reads a clock or draws a random number: `now` and
//! the key are handed in.

use crate::core::kind::Kind;
use crate::core::prompt::{Answer, Outcome, Payload};
use ring::digest::{SHA256, digest};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde_json::{Map, Value, json};

/// How long a receipt counts after its decision, in seconds.
pub const VALID_FOR: u64 = 300;

/// The version of the payload's shape (`v`).
pub const VERSION: u64 = 1;

/// Who decided, when no name is known yet (docs/PROTOCOL.md §10).
pub const BY_HUMAN: &str = "human";
pub const BY_RULE: &str = "rule";
pub const BY_SERVER: &str = "server";
pub const BY_AGENT: &str = "agent";

/// The agent a prompt came from, until agents have names of their own.
pub const AGENT: &str = "agent";

/// One decision, as a receipt's payload says it.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub id: String,
    pub session: String,
    pub agent: String,
    pub kind: String,
    /// The hex SHA-256 of the canonical action (`action_digest`).
    pub action: String,
    /// `answered`, `expired` or `cancelled`.
    pub status: String,
    /// The approval's choice or the clarify's text, when answered.
    pub answer: Option<String>,
    /// The rule that answered, when one did.
    pub rule: Option<String>,
    /// The hex SHA-256 of the canonical action the human approved in place
    /// of the one asked, when they edited it: what may run instead.
    pub edited: Option<String>,
    pub by: String,
    /// Unix seconds.
    pub at: u64,
    pub expires: u64,
}

impl Decision {
    /// The decision an outcome records; `at` is the outcome's time.
    pub fn of(id: &str, session: &str, kind: Kind, action: &str, outcome: &Outcome) -> Decision {
        Decision {
            id: id.to_string(),
            session: session.to_string(),
            agent: AGENT.to_string(),
            kind: kind.as_str().to_string(),
            action: action.to_string(),
            status: outcome.status().to_string(),
            answer: match outcome {
                Outcome::Answered(answer) => Some(answer.summary()),
                Outcome::Expired | Outcome::Cancelled => None,
            },
            rule: None,
            edited: match outcome {
                Outcome::Answered(Answer::Decision(decision)) => {
                    let edited = decision.edited.as_deref();
                    edited.map(|action| action_digest(&action.key()))
                }
                _ => None,
            },
            by: match outcome {
                Outcome::Answered(_) => BY_HUMAN,
                Outcome::Expired => BY_SERVER,
                Outcome::Cancelled => BY_AGENT,
            }
            .to_string(),
            at: 0,
            expires: 0,
        }
    }

    /// Answered by `rule` rather than a human.
    pub fn by_rule(mut self, rule: &str) -> Decision {
        self.rule = Some(rule.to_string());
        self.by = BY_RULE.to_string();
        self
    }

    /// Decided at `at` (Unix seconds, cut to whole ones), valid
    /// `VALID_FOR` after.
    pub fn at(mut self, at: f64) -> Decision {
        self.at = at.max(0.0) as u64;
        self.expires = self.at + VALID_FOR;
        self
    }

    /// Whether it lets an approval's action run: an approval answered with
    /// once, session or always.
    pub fn approves(&self) -> bool {
        let approving = ["once", "session", "always"];
        self.kind == Kind::Approval.as_str()
            && self.status == "answered"
            && self
                .answer
                .as_deref()
                .is_some_and(|a| approving.contains(&a))
    }

    /// The canonical payload (docs/PROTOCOL.md §10).
    pub fn payload(&self) -> String {
        let mut map = Map::new();
        let mut text = |key: &str, value: &str| map.insert(key.into(), json!(value));
        text("id", &self.id);
        text("session", &self.session);
        text("agent", &self.agent);
        text("kind", &self.kind);
        text("action", &self.action);
        text("status", &self.status);
        text("by", &self.by);
        if let Some(answer) = &self.answer {
            text("answer", answer);
        }
        if let Some(rule) = &self.rule {
            text("rule", rule);
        }
        if let Some(edited) = &self.edited {
            text("edited", edited);
        }
        map.insert("at".into(), json!(self.at));
        map.insert("expires".into(), json!(self.expires));
        map.insert("v".into(), json!(VERSION));
        Value::Object(map).to_string()
    }

    /// Reads a payload back; `None` unless it is a decision of this
    /// version, every field of the right type.
    pub fn parse(payload: &str) -> Option<Decision> {
        let value: Value = serde_json::from_str(payload).ok()?;
        if value["v"].as_u64()? != VERSION {
            return None;
        }
        let text = |key: &str| value[key].as_str().map(str::to_string);
        let optional = |key: &str| match &value[key] {
            Value::Null => Some(None),
            Value::String(text) => Some(Some(text.clone())),
            _ => None,
        };
        Some(Decision {
            id: text("id")?,
            session: text("session")?,
            agent: text("agent")?,
            kind: text("kind")?,
            action: text("action")?,
            status: text("status")?,
            answer: optional("answer")?,
            rule: optional("rule")?,
            edited: optional("edited")?,
            by: text("by")?,
            at: value["at"].as_u64()?,
            expires: value["expires"].as_u64()?,
        })
    }
}

/// The canonical action of what a prompt asks: for an approval the command
/// action, for a clarify its question and choices (docs/PROTOCOL.md §10).
pub fn action_of(payload: &Payload) -> String {
    match payload {
        // `Action::key`: its JSON with sorted keys, no whitespace; for a
        // command without a cwd, the same as `command_action`.
        Payload::Approval { action, .. } => action.key(),
        Payload::Clarify {
            question, choices, ..
        } => json!({"type": "clarify", "question": question, "choices": choices}).to_string(),
    }
}

/// The canonical action of running `command`.
pub fn command_action(command: &str) -> String {
    json!({"type": "command", "command": command}).to_string()
}

/// The hex SHA-256 of a canonical action.
pub fn action_digest(action: &str) -> String {
    hex(digest(&SHA256, action.as_bytes()).as_ref())
}

/// A signed decision, as the wire carries it.
#[derive(Clone, Debug, PartialEq)]
pub struct Receipt {
    pub payload: String,
    /// Hex, 64 bytes.
    pub signature: String,
    /// The id of the key that signed it (`Signer::key_id`).
    pub key_id: String,
}

impl Receipt {
    pub fn to_json(&self) -> Value {
        json!({"payload": self.payload, "signature": self.signature, "key_id": self.key_id})
    }

    pub fn from_json(value: &Value) -> Option<Receipt> {
        Some(Receipt {
            payload: value["payload"].as_str()?.to_string(),
            signature: value["signature"].as_str()?.to_string(),
            key_id: value["key_id"].as_str().unwrap_or_default().to_string(),
        })
    }
}

/// The server's signing key.
pub struct Signer {
    pair: Ed25519KeyPair,
}

impl Signer {
    /// From a PKCS#8 document (what `receipts.key` holds, in hex).
    pub fn from_pkcs8(document: &[u8]) -> Option<Signer> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(document).ok()?;
        Some(Signer { pair })
    }

    /// The public key, hex (32 bytes).
    pub fn public_key(&self) -> String {
        hex(self.pair.public_key().as_ref())
    }

    pub fn key_id(&self) -> String {
        key_id(&self.public_key())
    }

    pub fn sign(&self, decision: &Decision) -> Receipt {
        let payload = decision.payload();
        let signature = hex(self.pair.sign(payload.as_bytes()).as_ref());
        Receipt {
            payload,
            signature,
            key_id: self.key_id(),
        }
    }
}

/// A key's id: the first 16 hex digits of the SHA-256 of its 32 bytes.
pub fn key_id(public_key: &str) -> String {
    let bytes = from_hex(public_key).unwrap_or_default();
    hex(digest(&SHA256, &bytes).as_ref())[..16].to_string()
}

/// Why a receipt does not let an action run.
pub fn verify(public_key: &str, receipt: &Receipt) -> Result<Decision, String> {
    let key = from_hex(public_key)
        .filter(|key| key.len() == 32)
        .ok_or("the key is not 64 hex digits")?;
    let signature = from_hex(&receipt.signature)
        .filter(|signature| signature.len() == 64)
        .ok_or("the signature is not 128 hex digits")?;
    UnparsedPublicKey::new(&ED25519, key)
        .verify(receipt.payload.as_bytes(), &signature)
        .map_err(|_| "the signature does not verify with this key")?;
    let decision = Decision::parse(&receipt.payload).ok_or("the payload is not a decision")?;
    match decision.payload() == receipt.payload {
        true => Ok(decision),
        false => Err("the payload is not in canonical form".into()),
    }
}

/// Checks that a verified decision lets `action` (a canonical action) run
/// at `now`: an approval, not expired, of exactly that action; when the
/// human edited it, of exactly the edited one, and never the one asked.
pub fn approves(decision: &Decision, action: &str, now: u64) -> Result<(), String> {
    let digest = action_digest(action);
    match &decision.edited {
        Some(edited) if *edited != digest => {
            return Err(match digest == decision.action {
                true => "the human approved an edited action in place of this one".into(),
                false => "the receipt is for another action".into(),
            });
        }
        Some(_) => {}
        None if decision.action != digest => {
            return Err("the receipt is for another action".into());
        }
        None => {}
    }
    if !decision.approves() {
        let said = decision.answer.as_deref().unwrap_or(&decision.status);
        return Err(format!("the receipt does not approve ({said})"));
    }
    if now >= decision.expires {
        return Err(format!("the receipt expired at {}", decision.expires));
    }
    Ok(())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::prompt::{Answer, Choice};

    fn new_signer() -> Signer {
        let rng = ring::rand::SystemRandom::new();
        let document = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        Signer::from_pkcs8(document.as_ref()).unwrap()
    }

    fn approved() -> Decision {
        let action = action_digest(&command_action("git push"));
        let outcome = Outcome::Answered(Answer::choice(Choice::Once));
        Decision::of("a1", "s1", Kind::Approval, &action, &outcome).at(1_795_477_000.9)
    }

    #[test]
    fn the_payload_is_canonical_json_of_strings_and_integers() {
        let decision = approved();
        assert_eq!(
            decision.payload(),
            format!(
                "{{\"action\":\"{}\",\"agent\":\"agent\",\"answer\":\"once\",\"at\":1795477000,\
                 \"by\":\"human\",\"expires\":1795477300,\"id\":\"a1\",\"kind\":\"approval\",\
                 \"session\":\"s1\",\"status\":\"answered\",\"v\":1}}",
                decision.action
            )
        );
        assert_eq!(
            command_action("a \"b\"\n"),
            "{\"command\":\"a \\\"b\\\"\\n\",\"type\":\"command\"}"
        );
        assert_eq!(Decision::parse(&decision.payload()), Some(decision));
    }

    #[test]
    fn a_receipt_verifies_only_unchanged_with_its_key() {
        let signer = new_signer();
        let receipt = signer.sign(&approved());
        let key = signer.public_key();
        let action = command_action("git push");
        let decision = verify(&key, &receipt).unwrap();
        assert_eq!(approves(&decision, &action, 1_795_477_100), Ok(()));
        assert!(approves(&decision, &command_action("git pull"), 1_795_477_100).is_err());
        assert!(approves(&decision, &action, 1_795_477_300).is_err());
        let mut forged = receipt.clone();
        forged.payload = forged.payload.replace("once", "deny");
        assert!(verify(&key, &forged).is_err());
        assert!(verify(&new_signer().public_key(), &receipt).is_err());
        let spaced = Receipt {
            payload: receipt.payload.replace(",", ", "),
            ..receipt
        };
        assert!(verify(&key, &spaced).is_err());
    }
}
