//! Credentials that outlive a request: the page's sign-ins, each known by
//! the SHA-256 of its cookie (hex; never the cookie itself), and spent
//! one-time credentials (a notification's capability, by its prompt; a
//! sign-in link's code, by its nonce), each until it expires. Part of the state, so they are journaled, replicated
//! through Redis and snapshotted like prompts: a restart or another
//! instance neither signs the page out nor lets a spent button answer.
//!
//! Invariants: pure, like the rest of the core (every time comes inside a
//! change); at most `MAX_SIGN_INS` sign-ins and `MAX_SPENT` spends are
//! kept, the oldest going first; at most `MAX_CODES` spent codes, and
//! none is forgotten before it expires (a code is refused while they are
//! full: `codes_full`); an expired entry never counts, and `Expired`
//! forgets every entry expired at its time.

use std::collections::{HashMap, VecDeque};

/// Sign-ins kept at once (there is one human); the oldest goes first.
pub const MAX_SIGN_INS: usize = 256;
/// Spent capabilities kept at once; the oldest goes first (its prompt was
/// answered with it, so a replay of it is stale anyway).
pub const MAX_SPENT: usize = 1024;
/// Spent sign-in codes kept at once (each for at most the 10 minutes a
/// code lives); when full, a new code waits rather than an old one being
/// forgotten early.
pub const MAX_CODES: usize = 1024;
/// What one entry costs besides its key, held twice (the table and the
/// order): the table's node and room to grow, the expiry, the `String`s.
const ENTRY_OVERHEAD: usize = 128;

/// One change to the credentials.
#[derive(Clone, Debug, PartialEq)]
pub enum CredentialChange {
    /// The page signed in as `human` (a human credential's name): the
    /// digest of its cookie, valid until `expires`.
    SignedIn {
        digest: String,
        expires: f64,
        human: String,
    },
    /// The page signed out.
    SignedOut { digest: String },
    /// A one-time credential was spent (`approval:<id>`), remembered until
    /// `expires`, after which it is refused as expired anyway.
    Spent { key: String, expires: f64 },
    /// A sign-in link's code was spent (its nonce), until it expires.
    CodeSpent { nonce: String, expires: f64 },
    /// Every entry expired at `at` is forgotten.
    Expired { at: f64 },
}

/// The sign-ins and the spent one-time credentials.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Credentials {
    sign_ins: Expiring,
    /// The human each sign-in is, by the digest of its cookie.
    humans: HashMap<String, String>,
    spent: Expiring,
    codes: Expiring,
}

impl Credentials {
    pub fn apply(&mut self, change: &CredentialChange) {
        match change {
            CredentialChange::SignedIn {
                digest,
                expires,
                human,
            } => {
                self.sign_ins.insert(digest, *expires, MAX_SIGN_INS);
                self.humans.insert(digest.clone(), human.clone());
            }
            CredentialChange::SignedOut { digest } => self.sign_ins.remove(digest),
            CredentialChange::Spent { key, expires } => self.spent.insert(key, *expires, MAX_SPENT),
            CredentialChange::CodeSpent { nonce, expires } => {
                self.codes.insert(nonce, *expires, MAX_CODES)
            }
            CredentialChange::Expired { at } => {
                self.sign_ins.expire(*at);
                self.spent.expire(*at);
                self.codes.expire(*at);
            }
        }
        // A sign-in gone (signed out, expired, or the oldest dropped) takes
        // its human's name with it.
        let sign_ins = &self.sign_ins.expires;
        self.humans
            .retain(|digest, _| sign_ins.contains_key(digest));
    }

    /// The human the cookie with this digest is signed in as at `now`.
    pub fn signed_in(&self, digest: &str, now: f64) -> Option<&str> {
        let live = self.sign_ins.holds(digest, now);
        live.then(|| self.humans.get(digest).map(String::as_str))?
    }

    /// Whether this one-time credential was spent (and is still kept).
    pub fn spent(&self, key: &str, now: f64) -> bool {
        self.spent.holds(key, now)
    }

    /// Whether the sign-in code with this nonce was spent.
    pub fn code_spent(&self, nonce: &str, now: f64) -> bool {
        self.codes.holds(nonce, now)
    }

    /// Whether `MAX_CODES` unexpired codes are spent: a new one must wait.
    pub fn codes_full(&self, now: f64) -> bool {
        let live = self
            .codes
            .expires
            .values()
            .filter(|&&expires| expires > now);
        live.count() >= MAX_CODES
    }

    /// `Expired` at `now`, when some entry has expired.
    pub fn expiry(&self, now: f64) -> Option<CredentialChange> {
        let due = [&self.sign_ins, &self.spent, &self.codes]
            .iter()
            .any(|entries| entries.any_expired(now));
        due.then_some(CredentialChange::Expired { at: now })
    }

    /// Every entry as the change that would make it, oldest first: what a
    /// snapshot writes, and applies again to read it back.
    pub fn entries(&self) -> Vec<CredentialChange> {
        let sign_ins = self.sign_ins.entries().map(|(digest, expires)| {
            let human = self.humans.get(digest).cloned().unwrap_or_default();
            let digest = digest.to_string();
            CredentialChange::SignedIn {
                digest,
                expires,
                human,
            }
        });
        let spent = self.spent.entries().map(|(key, expires)| {
            let key = key.to_string();
            CredentialChange::Spent { key, expires }
        });
        let codes = self.codes.entries().map(|(nonce, expires)| {
            let nonce = nonce.to_string();
            CredentialChange::CodeSpent { nonce, expires }
        });
        sign_ins.chain(spent).chain(codes).collect()
    }

    /// What they cost held: at most about 2,300 entries of 250 bytes.
    pub fn bytes(&self) -> usize {
        let humans: usize = self.humans.iter().map(|(d, h)| d.len() + h.len()).sum();
        self.sign_ins.bytes() + humans + self.spent.bytes() + self.codes.bytes()
    }
}

/// Keys with an expiry each, at most a given number, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
struct Expiring {
    expires: HashMap<String, f64>,
    order: VecDeque<String>,
}

impl Expiring {
    fn insert(&mut self, key: &str, expires: f64, max: usize) {
        self.remove(key);
        while self.order.len() >= max {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.expires.remove(&oldest);
        }
        self.expires.insert(key.to_string(), expires);
        self.order.push_back(key.to_string());
    }

    fn remove(&mut self, key: &str) {
        if self.expires.remove(key).is_some() {
            self.order.retain(|known| known != key);
        }
    }

    fn holds(&self, key: &str, now: f64) -> bool {
        self.expires.get(key).is_some_and(|&expires| expires > now)
    }

    fn any_expired(&self, now: f64) -> bool {
        self.expires.values().any(|&expires| expires <= now)
    }

    fn expire(&mut self, at: f64) {
        self.expires.retain(|_, expires| *expires > at);
        let expires = &self.expires;
        self.order.retain(|key| expires.contains_key(key));
    }

    fn entries(&self) -> impl Iterator<Item = (&str, f64)> {
        let expires = &self.expires;
        self.order
            .iter()
            .filter_map(|key| Some((key.as_str(), *expires.get(key)?)))
    }

    fn bytes(&self) -> usize {
        self.order.iter().map(|key| 2 * key.len()).sum::<usize>()
            + self.order.len() * ENTRY_OVERHEAD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_in(digest: &str, expires: f64) -> CredentialChange {
        CredentialChange::SignedIn {
            digest: digest.into(),
            expires,
            human: "anna".into(),
        }
    }

    #[test]
    fn a_sign_in_holds_until_it_expires_or_signs_out() {
        let mut credentials = Credentials::default();
        credentials.apply(&signed_in("d1", 100.0));
        credentials.apply(&signed_in("d2", 200.0));
        assert!(credentials.signed_in("d1", 99.0).is_some());
        assert!(credentials.signed_in("d1", 100.0).is_none(), "expired");
        assert!(
            credentials.signed_in("d3", 0.0).is_none(),
            "never signed in"
        );
        assert_eq!(credentials.expiry(99.0), None);
        let expired = credentials.expiry(150.0).unwrap();
        credentials.apply(&expired);
        assert_eq!(credentials.entries(), [signed_in("d2", 200.0)]);
        credentials.apply(&CredentialChange::SignedOut {
            digest: "d2".into(),
        });
        assert!(credentials.signed_in("d2", 0.0).is_none());
        assert_eq!(credentials, Credentials::default());
    }

    #[test]
    fn the_oldest_goes_first_when_full() {
        let mut credentials = Credentials::default();
        for n in 0..MAX_SIGN_INS + 2 {
            credentials.apply(&signed_in(&format!("d{n}"), 1e9));
        }
        assert!(
            credentials.signed_in("d0", 0.0).is_none()
                && credentials.signed_in("d1", 0.0).is_none()
        );
        assert!(credentials.signed_in("d2", 0.0).is_some());
        let spend = |n: usize| CredentialChange::Spent {
            key: format!("approval:{n}"),
            expires: 1e9,
        };
        for n in 0..MAX_SPENT + 1 {
            credentials.apply(&spend(n));
        }
        assert!(!credentials.spent("approval:0", 0.0));
        assert!(credentials.spent("approval:1", 0.0));
        assert_eq!(credentials.entries().len(), MAX_SIGN_INS + MAX_SPENT);
        assert!(credentials.bytes() < 400 * (MAX_SIGN_INS + MAX_SPENT));
    }

    #[test]
    fn spent_codes_are_bounded_and_never_forgotten_early() {
        let mut credentials = Credentials::default();
        let spend = |n: usize, expires: f64| CredentialChange::CodeSpent {
            nonce: format!("{n:032x}"),
            expires,
        };
        for n in 0..MAX_CODES {
            assert!(!credentials.codes_full(500.0));
            credentials.apply(&spend(n, 1_000.0));
        }
        assert!(credentials.codes_full(500.0), "a new code waits");
        assert!(credentials.code_spent(&format!("{:032x}", 0), 500.0));
        assert!(!credentials.codes_full(1_000.0), "room once they expire");
        credentials.apply(&credentials.expiry(1_000.0).unwrap());
        assert_eq!(credentials.entries(), []);
    }

    #[test]
    fn every_change_and_the_entries_read_back() {
        let mut credentials = Credentials::default();
        let changes = [
            signed_in("d1", 10.5),
            CredentialChange::SignedOut {
                digest: "d1".into(),
            },
            CredentialChange::Spent {
                key: "approval:a1".into(),
                expires: 20.0,
            },
            CredentialChange::CodeSpent {
                nonce: "00ff".into(),
                expires: 30.0,
            },
            CredentialChange::Expired { at: 5.25 },
        ];
        for change in &changes {
            credentials.apply(change);
        }
        let mut again = Credentials::default();
        for entry in credentials.entries() {
            again.apply(&entry);
        }
        assert_eq!(again, credentials);
    }
}
