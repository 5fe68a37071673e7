//! Capabilities: the credential a notification's action button carries,
//! able to answer one prompt with one choice, once, until the prompt ends
//! (docs/PROTOCOL.md §3.4).
//!
//! A capability is `v1.<expires>.<mac>`: an HMAC-SHA256, under a key only
//! the server holds, over the prompt's session, kind and id, the choice and
//! the prompt's deadline (Unix seconds, 0 for none). Nothing is stored when
//! one is made; a used one is remembered by its prompt (`spend_key`) in the
//! hub's state, spent in the operation that answers with it
//! (`Hub::respond_spending`), so two requests with it cannot both answer,
//! and a restart or another instance does not forget it.
//!
//! Invariants: the key comes from the OS's random source and never leaves
//! the server (with Redis, every instance shares one: `server_key.rs`);
//! MACs are compared in constant time; only `once`, `deny` and a clarify's
//! text are ever minted or accepted, never a choice that grants a rule.

use crate::core::kind::Kind;
use crate::core::prompt::Choice;
use crate::core::receipt::{from_hex, hex};
use crate::private_file;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use std::io;
use std::path::Path;

/// The request header a capability travels in (never the URL).
pub const HEADER: &str = "X-Askgate-Capability";
/// The key's file in the data directory: hex, readable by its owner only.
pub const KEY_FILE: &str = "notify.key";
const KEY_BYTES: usize = 32;
const VERSION: &str = "v1";

/// What a capability is bound to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Claim<'a> {
    pub session_id: &'a str,
    pub kind: Kind,
    pub id: &'a str,
    /// `once` or `deny` for an approval; the text for a clarify.
    pub choice: &'a str,
}

/// Why a capability was refused.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Refused {
    /// Not `v1.<expires>.<64 hex>`.
    Malformed,
    /// Its MAC is not that of this prompt and choice: tampered with, or
    /// made for another prompt or another choice.
    Forged,
    /// Its prompt's deadline has passed.
    Expired,
    /// It has answered once already.
    Used,
    /// A choice that grants a rule: never minted, never accepted.
    GrantsRule,
}

impl Refused {
    pub fn message(self) -> &'static str {
        match self {
            Refused::Malformed => "malformed capability",
            Refused::Forged => "the capability does not match this prompt and choice",
            Refused::Expired => "the capability has expired",
            Refused::Used => "the capability has been used",
            Refused::GrantsRule => "a capability never grants a rule",
        }
    }
}

/// The server's key.
pub struct Capabilities {
    key: hmac::Key,
}

impl Capabilities {
    pub fn new(secret: &[u8]) -> Capabilities {
        Capabilities {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// From a key as `new_key_hex` makes them (kept as `server_key.rs`
    /// keeps keys: with Redis, one for every instance, so a button minted
    /// by one is taken by the others).
    pub fn from_hex(text: &str) -> io::Result<Capabilities> {
        let secret = from_hex(text.trim())
            .filter(|secret| secret.len() == KEY_BYTES)
            .ok_or_else(|| io::Error::other("the notification key is not a key"))?;
        Ok(Capabilities::new(&secret))
    }

    /// A key for this process only (no data directory).
    pub fn ephemeral() -> io::Result<Capabilities> {
        Ok(Capabilities::new(&random_key()?))
    }

    /// The capability for `claim` until `expires` (Unix seconds, 0 for
    /// never); `None` for a choice that would grant a rule.
    pub fn mint(&self, claim: &Claim<'_>, expires: u64) -> Option<String> {
        if grants_rule(claim) {
            return None;
        }
        let tag = hmac::sign(&self.key, &message(claim, expires));
        Some(format!("{VERSION}.{expires}.{}", hex(tag.as_ref())))
    }

    /// Checks `capability` against what the request asks for, at `now`
    /// (Unix seconds): its expiry (0 for none) when it holds. Whether it
    /// was spent is the hub's to say (`spend_key`).
    pub fn check(&self, claim: &Claim<'_>, capability: &str, now: u64) -> Result<u64, Refused> {
        let (expires, mac) = parse(capability).ok_or(Refused::Malformed)?;
        if grants_rule(claim) {
            return Err(Refused::GrantsRule);
        }
        hmac::verify(&self.key, &message(claim, expires), &mac).map_err(|_| Refused::Forged)?;
        if expires != 0 && now >= expires {
            return Err(Refused::Expired);
        }
        Ok(expires)
    }
}

/// What the state remembers a spent capability by: its prompt (each of a
/// prompt's capabilities answers it, so one spent spends them all).
pub fn spend_key(claim: &Claim<'_>) -> String {
    format!("{}:{}", claim.kind.as_str(), claim.id)
}

/// Whether a claim names an approval choice that grants a rule, or one
/// that is not a choice at all.
fn grants_rule(claim: &Claim<'_>) -> bool {
    match claim.kind {
        Kind::Approval => Choice::parse(claim.choice).is_none_or(Choice::grants_rule),
        Kind::Clarify => false,
    }
}

/// What is signed: every field length-prefixed, so no two claims share
/// their bytes.
fn message(claim: &Claim<'_>, expires: u64) -> Vec<u8> {
    let expires = expires.to_string();
    let fields = [
        "askgate capability",
        VERSION,
        claim.session_id,
        claim.kind.as_str(),
        claim.id,
        claim.choice,
        &expires,
    ];
    let mut bytes = Vec::new();
    for field in fields {
        bytes.extend_from_slice(format!("{}:", field.len()).as_bytes());
        bytes.extend_from_slice(field.as_bytes());
    }
    bytes
}

fn parse(capability: &str) -> Option<(u64, Vec<u8>)> {
    let mut parts = capability.trim().split('.');
    let (version, expires, mac) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = !expires.is_empty() && expires.bytes().all(|b| b.is_ascii_digit());
    if version != VERSION || parts.next().is_some() || !digits || mac.len() != 64 {
        return None;
    }
    Some((expires.parse().ok()?, from_hex(mac)?))
}

/// A new key, hex.
pub fn new_key_hex() -> io::Result<String> {
    Ok(hex(&random_key()?))
}

/// Whether `text` is a key (hex of the right length).
pub fn is_key(text: &str) -> bool {
    from_hex(text.trim()).is_some_and(|secret| secret.len() == KEY_BYTES)
}

fn random_key() -> io::Result<[u8; KEY_BYTES]> {
    let mut secret = [0u8; KEY_BYTES];
    SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| io::Error::other("the OS gave no random bytes"))?;
    Ok(secret)
}

/// Makes a new key in `dir` (replacing any), readable by its owner only.
pub fn write_new_key(dir: &Path) -> io::Result<[u8; KEY_BYTES]> {
    let secret = random_key()?;
    private_file::write(dir, KEY_FILE, &format!("{}\n", hex(&secret)))?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const NOW: u64 = 1_795_477_000;

    fn claim<'a>(kind: Kind, id: &'a str, choice: &'a str) -> Claim<'a> {
        Claim {
            session_id: "s1",
            kind,
            id,
            choice,
        }
    }

    #[test]
    fn a_capability_answers_its_prompt_and_choice_once() {
        let capabilities = Capabilities::new(&[7; 32]);
        let once = claim(Kind::Approval, "a1", "once");
        let capability = capabilities.mint(&once, NOW + 60).unwrap();
        let other_prompt = claim(Kind::Approval, "a2", "once");
        let other_choice = claim(Kind::Approval, "a1", "deny");
        let other_session = Claim {
            session_id: "s2",
            ..once
        };
        let other_kind = claim(Kind::Clarify, "a1", "once");
        for other in [other_prompt, other_choice, other_session, other_kind] {
            assert_eq!(
                capabilities.check(&other, &capability, NOW),
                Err(Refused::Forged),
                "{other:?}"
            );
        }
        assert_eq!(
            capabilities.check(&once, &capability, NOW + 60),
            Err(Refused::Expired)
        );
        assert_eq!(capabilities.check(&once, &capability, NOW), Ok(NOW + 60));
        assert_eq!(spend_key(&once), "approval:a1", "spent by its prompt");
    }

    #[test]
    fn tampered_and_malformed_capabilities_are_refused() {
        let capabilities = Capabilities::new(&[7; 32]);
        let deny = claim(Kind::Approval, "a1", "deny");
        let capability = capabilities.mint(&deny, 0).unwrap();
        let mac = capability.rsplit('.').next().unwrap();
        let flipped = format!(
            "v1.0.{}{}",
            if &mac[..1] == "0" { "1" } else { "0" },
            &mac[1..]
        );
        let later = format!("v1.{}.{mac}", NOW + 999);
        let other_key = Capabilities::new(&[8; 32]).mint(&deny, 0).unwrap();
        for (forged, why) in [
            (flipped.as_str(), Refused::Forged),
            (later.as_str(), Refused::Forged),
            (other_key.as_str(), Refused::Forged),
            ("v1.0.zz", Refused::Malformed),
            ("v2.0.00", Refused::Malformed),
            ("", Refused::Malformed),
            (&capability[..capability.len() - 1], Refused::Malformed),
        ] {
            assert_eq!(capabilities.check(&deny, forged, NOW), Err(why), "{forged}");
        }
        assert_eq!(capabilities.check(&deny, &capability, NOW), Ok(0));
    }

    #[test]
    fn no_capability_grants_a_rule() {
        let capabilities = Capabilities::new(&[7; 32]);
        for choice in ["session", "always", "Once", ""] {
            let rule = claim(Kind::Approval, "a1", choice);
            assert_eq!(capabilities.mint(&rule, 0), None, "{choice}");
            let forged = format!("v1.0.{}", "0".repeat(64));
            assert_eq!(
                capabilities.check(&rule, &forged, NOW),
                Err(Refused::GrantsRule)
            );
        }
        let text = claim(Kind::Clarify, "c1", "session");
        assert!(
            capabilities.mint(&text, 0).is_some(),
            "a clarify's text is only text"
        );
    }

    #[test]
    fn the_key_is_kept_in_the_data_directory() {
        let dir = std::env::temp_dir().join(format!("askgate-key-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let secret = write_new_key(&dir).unwrap();
        let kept = private_file::read(&dir.join(KEY_FILE)).unwrap().unwrap();
        assert!(is_key(&kept) && !is_key("00"));
        let (first, again) = (
            Capabilities::new(&secret),
            Capabilities::from_hex(&kept).unwrap(),
        );
        let once = claim(Kind::Approval, "a1", "once");
        let capability = first.mint(&once, 0).unwrap();
        assert_eq!(again.check(&once, &capability, NOW), Ok(0));
        let mode = fs::metadata(dir.join(KEY_FILE)).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
