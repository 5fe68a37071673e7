//! One-time sign-in codes: the `#signin=CODE` of the link the server prints
//! at start and `askgate signin-link` prints on demand (docs/PROTOCOL.md
//! §7), exchanged once by the page for its cookie.
//!
//! A code is `<expires>-<nonce>-<mac>`: an HMAC-SHA256 keyed by the human's
//! token over the expiry (Unix seconds) and a random nonce. A code for a
//! named human (`askgate signin-link --human anna`) is `anna~<code>`, its
//! MAC over the name and that human's credential as it is now (its token's
//! digest), so revoking the human voids every code minted for them, and a
//! human added again under the name starts afresh. Any process
//! that can read the tokens file can mint one, and the running server
//! checks it without being told: nothing is stored when one is made. A
//! spent code is remembered by its nonce until it expires, in the hub's
//! state (`core/credentials.rs`), so neither a restart nor another
//! instance lets it sign in again.
//!
//! Invariants: a code lives at most `LIFETIME`; it signs in at most once;
//! MACs are compared in constant time; the spent set is bounded, and when
//! it is full a new code is refused rather than an old one forgotten (so a
//! replay never comes back to life): `Hub::sign_in_with_code`.

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use std::time::{SystemTime, UNIX_EPOCH};

/// How long a code signs in.
pub const LIFETIME_SECS: u64 = 600;
/// The URL fragment's name for a code: `#signin=CODE`.
pub const FRAGMENT: &str = "signin";
const NONCE_BYTES: usize = 16;
const MAC_HEX: usize = 64;

/// Why a code was refused.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Refused {
    /// Not `<expires>-<32 hex>-<64 hex>`, or its MAC is not the server's.
    Invalid,
    /// Past its expiry.
    Expired,
    /// It has signed in once already.
    Used,
    /// Too many unexpired codes were spent lately.
    Busy,
}

impl Refused {
    pub fn message(self) -> &'static str {
        match self {
            Refused::Invalid => "not a valid sign-in link",
            Refused::Expired | Refused::Used => {
                "this sign-in link has expired or was used already; `askgate signin-link` prints a new one"
            }
            Refused::Busy => "too many sign-in links used lately; try again in a few minutes",
        }
    }
}

/// The key codes are signed with, from the human's token.
pub fn key(human_token: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, human_token.as_bytes())
}

/// The human a code without a name signs in as: the legacy token's.
pub use crate::core::prompt::LEGACY_HUMAN;
/// Between a named human's name and the rest of the code.
const NAMED: char = '~';

/// A new code, valid for `LIFETIME_SECS` from now.
pub fn mint(key: &hmac::Key) -> std::io::Result<String> {
    mint_for(key, LEGACY_HUMAN, "")
}

/// A new code that signs in as the human `name`, whose credential is
/// `binding` now (its token's digest; ignored for the legacy human, whose
/// token is the key).
pub fn mint_for(key: &hmac::Key, name: &str, binding: &str) -> std::io::Result<String> {
    let mut nonce = [0u8; NONCE_BYTES];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| std::io::Error::other("the OS gave no random bytes"))?;
    Ok(mint_named_at(
        key,
        (name, binding),
        now() + LIFETIME_SECS,
        &to_hex(&nonce),
    ))
}

/// The code for this expiry and nonce (hex).
pub fn mint_at(key: &hmac::Key, expires: u64, nonce: &str) -> String {
    mint_named_at(key, (LEGACY_HUMAN, ""), expires, nonce)
}

/// `human`: the name and its binding.
fn mint_named_at(key: &hmac::Key, human: (&str, &str), expires: u64, nonce: &str) -> String {
    let (name, _) = human;
    let tag = hmac::sign(key, &message(human, expires, nonce));
    let code = format!("{expires}-{nonce}-{}", to_hex(tag.as_ref()));
    match name == LEGACY_HUMAN {
        true => code,
        false => format!("{name}{NAMED}{code}"),
    }
}

/// The sign-in link for `base` (the page's URL, ending in `/`).
pub fn link(base: &str, code: &str) -> String {
    format!("{base}#{FRAGMENT}={code}")
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// A code checked at `now`: the human it signs in as, its expiry and its
/// nonce, for the hub to spend (`Hub::sign_in_with_code`). `binding` gives
/// a human's credential as it is now, `None` for one that is not there.
pub fn check<'a>(
    key: &hmac::Key,
    code: &'a str,
    now: u64,
    binding: impl FnOnce(&str) -> Option<String>,
) -> Result<(&'a str, u64, &'a str), Refused> {
    let (name, code) = code
        .trim()
        .split_once(NAMED)
        .unwrap_or((LEGACY_HUMAN, code.trim()));
    let (expires, nonce, mac) = parse(code).ok_or(Refused::Invalid)?;
    let binding = binding(name).ok_or(Refused::Invalid)?;
    hmac::verify(key, &message((name, &binding), expires, nonce), &mac)
        .map_err(|_| Refused::Invalid)?;
    // A code minted for longer than a code lives is not one of ours to
    // honour (and would sit in the spent set too long).
    if now >= expires || expires > now + LIFETIME_SECS + 60 {
        return Err(Refused::Expired);
    }
    Ok((name, expires, nonce))
}

/// What is signed: every field length-prefixed, as `notify::capability`;
/// a named human's code (`v3`) signs the name and its binding too (`v2`
/// signed the name alone, and outlived a revoke: never honoured now).
fn message((name, binding): (&str, &str), expires: u64, nonce: &str) -> Vec<u8> {
    let expires = expires.to_string();
    let fields: &[&str] = match name == LEGACY_HUMAN {
        true => &["askgate sign-in code", "v1", &expires, nonce],
        false => &["askgate sign-in code", "v3", &expires, nonce, name, binding],
    };
    let mut bytes = Vec::new();
    for field in fields {
        bytes.extend_from_slice(format!("{}:", field.len()).as_bytes());
        bytes.extend_from_slice(field.as_bytes());
    }
    bytes
}

fn parse(code: &str) -> Option<(u64, &str, Vec<u8>)> {
    let mut parts = code.trim().split('-');
    let (expires, nonce, mac) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = (1..=20).contains(&expires.len()) && expires.bytes().all(|b| b.is_ascii_digit());
    let hex = |text: &str, len: usize| text.len() == len && text.bytes().all(is_lower_hex);
    if parts.next().is_some() || !digits || !hex(nonce, NONCE_BYTES * 2) || !hex(mac, MAC_HEX) {
        return None;
    }
    Some((expires.parse().ok()?, nonce, from_hex(mac)?))
}

fn is_lower_hex(byte: u8) -> bool {
    byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "00112233445566778899aabbccddeeff";

    /// Every human there, each bound to the same credential.
    fn any(_: &str) -> Option<String> {
        Some("digest-1".into())
    }

    #[test]
    fn a_code_signs_in_until_it_expires() {
        let key = key("human-token-0123456789");
        let code = mint_at(&key, 1_000, NONCE);
        assert_eq!(
            check(&key, &code, 400, any),
            Ok((LEGACY_HUMAN, 1_000, NONCE))
        );
        let late = mint_at(&key, 1_000, "ffeeddccbbaa99887766554433221100");
        assert_eq!(check(&key, &late, 1_000, any), Err(Refused::Expired));
        let far = mint_at(&key, 1_000_000, NONCE);
        assert_eq!(check(&key, &far, 400, any), Err(Refused::Expired));
    }

    #[test]
    fn a_code_of_another_key_or_tampered_with_is_invalid() {
        let key = key("human-token-0123456789");
        let other = super::key("agent-token-0123456789");
        let foreign = mint_at(&other, 1_000, NONCE);
        assert_eq!(check(&key, &foreign, 400, any), Err(Refused::Invalid));
        let code = mint_at(&key, 1_000, NONCE);
        let longer = code.replacen("1000-", "1001-", 1);
        assert_eq!(check(&key, &longer, 400, any), Err(Refused::Invalid));
        for bad in [
            "",
            "1000",
            "1000-00-00",
            &format!("{code}-x"),
            &code.to_uppercase(),
        ] {
            assert_eq!(check(&key, bad, 400, any), Err(Refused::Invalid), "{bad}");
        }
        assert_eq!(
            check(&key, &code, 400, any),
            Ok((LEGACY_HUMAN, 1_000, NONCE)),
            "the genuine one still works"
        );
    }

    #[test]
    fn a_named_code_signs_in_as_its_human_and_the_name_is_signed() {
        let key = key("human-token-0123456789");
        let code = mint_named_at(&key, ("anna", "digest-1"), 1_000, NONCE);
        assert!(code.starts_with("anna~"), "{code}");
        let renamed = code.replacen("anna~", "bert~", 1);
        assert_eq!(check(&key, &renamed, 400, any), Err(Refused::Invalid));
        let unnamed = code.replacen("anna~", "", 1);
        assert_eq!(check(&key, &unnamed, 400, any), Err(Refused::Invalid));
        assert_eq!(check(&key, &code, 400, any), Ok(("anna", 1_000, NONCE)));
    }

    #[test]
    fn a_named_code_dies_with_its_humans_credential() {
        let key = key("human-token-0123456789");
        let code = mint_named_at(&key, ("anna", "digest-1"), 1_000, NONCE);
        let revoked = |_: &str| None;
        assert_eq!(check(&key, &code, 400, revoked), Err(Refused::Invalid));
        let added_again = |_: &str| Some("digest-2".to_string());
        assert_eq!(check(&key, &code, 400, added_again), Err(Refused::Invalid));
        assert_eq!(check(&key, &code, 400, any), Ok(("anna", 1_000, NONCE)));
    }
}
