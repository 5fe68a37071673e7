//! The hub's side of the credentials the state keeps (`core/credentials.rs`):
//! the page's sign-ins and the spent notification capabilities, committed
//! like any other change (journaled, or appended to the log in Redis), so
//! they survive a restart and every instance sees them.
//!
//! Invariants: a capability is spent in the same operation (one record)
//! as the answer it gives, and a sign-in link's code in the one that signs
//! in, so two requests with either cannot both succeed, on one instance or
//! two, and a refused answer or sign-in spends nothing; with Redis, a
//! cookie or a spend this instance does not know yet is looked for in the
//! log before it is refused or taken as new.

use super::{Hub, Responded};
use crate::core::change::Change;
use crate::core::credentials::CredentialChange;
use crate::core::prompt::Answer;
use crate::core::state::Respond;
use crate::error::Result;
use std::time::Duration;

/// What a sign-in with a link's code came to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CodeSignIn {
    SignedIn,
    /// The code signed in once already (here, before a restart, or on
    /// another instance).
    Used,
    /// Too many unexpired codes are spent; this one must wait.
    Busy,
}

/// A one-time credential spent with an answer: its key (`approval:<id>`)
/// and the Unix second after which it is refused as expired anyway.
#[derive(Clone, Debug, PartialEq)]
pub struct Spend {
    pub key: String,
    pub expires: f64,
}

impl Hub {
    /// Keeps a page's sign-in (the SHA-256 of its cookie, hex) for
    /// `lifetime`; `by` names who signed in, for the log.
    pub fn sign_in(&self, digest: &str, lifetime: Duration, human: &str, by: &str) -> Result<()> {
        let op = self.op(by);
        let expires = op.now + lifetime.as_secs_f64();
        let change = CredentialChange::SignedIn {
            digest: digest.to_string(),
            expires,
            human: human.to_string(),
        };
        self.commit(op, |_| Ok((vec![Change::Credential(change.clone())], ())))
    }

    /// Keeps a page's sign-in as `sign_in` does, spending the sign-in
    /// link's code (its nonce, until `code_expires`) in the same operation:
    /// a code spent already, or one more while `MAX_CODES` unexpired ones
    /// are spent, signs nobody in and changes nothing.
    pub fn sign_in_with_code(
        &self,
        nonce: &str,
        code_expires: f64,
        digest: &str,
        lifetime: Duration,
        human: &str,
        by: &str,
    ) -> Result<CodeSignIn> {
        let op = self.op(by);
        let now = op.now;
        self.commit(op, |inner| {
            let credentials = inner.state.credentials();
            if credentials.code_spent(nonce, now) {
                return Ok((Vec::new(), CodeSignIn::Used));
            }
            if credentials.codes_full(now) {
                return Ok((Vec::new(), CodeSignIn::Busy));
            }
            let spent = CredentialChange::CodeSpent {
                nonce: nonce.to_string(),
                expires: code_expires,
            };
            let signed_in = CredentialChange::SignedIn {
                digest: digest.to_string(),
                expires: now + lifetime.as_secs_f64(),
                human: human.to_string(),
            };
            let changes = vec![Change::Credential(spent), Change::Credential(signed_in)];
            Ok((changes, CodeSignIn::SignedIn))
        })
    }

    /// How many page sign-ins have ended (signed out, expired) since
    /// start: when it moves, what a sign-in let read is asked again.
    pub fn sign_ins_ended(&self) -> u64 {
        self.lock().sign_ins_ended
    }

    /// Forgets a page's sign-in; one that is not kept changes nothing.
    pub fn sign_out(&self, digest: &str, by: &str) -> Result<()> {
        let op = self.op(by);
        let now = op.now;
        self.commit(op, |inner| {
            let known = inner.state.credentials().signed_in(digest, now).is_some();
            let change = CredentialChange::SignedOut {
                digest: digest.to_string(),
            };
            let changes = known.then_some(Change::Credential(change));
            Ok((changes.into_iter().collect(), ()))
        })
    }

    /// The human the cookie with this digest is signed in as. With Redis,
    /// the log is read first when `may_look_further` says so, given the
    /// human this instance knows the sign-in as, if any: for a sign-in it
    /// knows, unless the cookie is refused anyway (another instance may
    /// have signed it out a moment ago, and a sign-out holds everywhere
    /// from its acknowledgement on); for one it does not know, within a
    /// budget of such trips (made-up cookies are free to send).
    pub fn signed_in(
        &self,
        digest: &str,
        may_look_further: impl FnOnce(Option<&str>) -> bool,
    ) -> Option<String> {
        let known = || {
            let inner = self.lock();
            let human = inner
                .state
                .credentials()
                .signed_in(digest, self.clock.now());
            human.map(str::to_string)
        };
        let human = known();
        // Without a shared log nothing more can be known.
        if self.store.shared().is_none() || !may_look_further(human.as_deref()) {
            return human;
        }
        self.store.catch_up_if(self, |_| true);
        known()
    }

    /// Answers as `respond` does, spending `spend` in the same operation;
    /// `None` when it was spent already, and nothing changes. A stale
    /// answer spends nothing.
    pub fn respond_spending(
        &self,
        spend: &Spend,
        session_id: &str,
        id: &str,
        answer: Answer,
        by: &str,
    ) -> Result<Option<Responded>> {
        let op = self.op(by);
        let now = op.now;
        self.commit(op, |inner| {
            if inner.state.credentials().spent(&spend.key, now) {
                return Ok((Vec::new(), None));
            }
            let respond = inner.state.respond(
                &self.limits,
                session_id,
                Some(id),
                answer.clone(),
                None,
                now,
            )?;
            Ok(match respond {
                Respond::Answer(change) => {
                    let spent = CredentialChange::Spent {
                        key: spend.key.clone(),
                        expires: spend.expires,
                    };
                    let changes = vec![Change::Credential(spent), *change];
                    (changes, Some(Responded::Answered))
                }
                Respond::Stale { still_pending } => {
                    (Vec::new(), Some(Responded::Stale { still_pending }))
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::prompt::Payload;
    use crate::core::state::{Limits, Submitted};
    use crate::hub::Asker;

    fn hub() -> Hub {
        let limits = Limits {
            max_pending: 8,
            max_prompts: 8,
            max_state_bytes: 1 << 20,
            max_sessions: 8,
            result_ttl: 600.0,
        };
        Hub::new(limits, 4)
    }

    #[test]
    fn a_sign_in_holds_until_signed_out_or_expired_and_then_is_forgotten() {
        let hub = hub();
        hub.sign_in("kept", Duration::from_secs(60), "anna", "test")
            .unwrap();
        hub.sign_in("out", Duration::from_secs(60), "anna", "test")
            .unwrap();
        hub.sign_in("brief", Duration::ZERO, "anna", "test")
            .unwrap();
        hub.sign_out("out", "test").unwrap();
        hub.sign_out("never", "test").unwrap();
        let held = ["kept", "out", "brief"].map(|digest| hub.signed_in(digest, |_| true).is_some());
        assert_eq!(held, [true, false, false]);
        hub.expire_due(Duration::ZERO);
        let kept = hub.lock().state.credentials().entries();
        assert_eq!(kept.len(), 1, "the expired one is forgotten: {kept:?}");
    }

    #[test]
    fn a_spend_answers_once_and_a_stale_answer_spends_nothing() {
        let hub = hub();
        let payload = Payload::question("go?".into(), Vec::new());
        let Ok(Submitted::Queued { id, .. }) = hub.submit(
            "s1",
            60,
            payload,
            Asker {
                agent: "agent",
                by: "agent",
            },
        ) else {
            panic!("queued");
        };
        let spend = Spend {
            key: format!("clarify:{id}"),
            expires: f64::MAX,
        };
        let answer = || Answer::Text("yes".into());
        let stale = Spend {
            key: "clarify:other".into(),
            ..spend.clone()
        };
        let missing = hub.respond_spending(&stale, "s1", "0123456789ab", answer(), "t");
        assert_eq!(missing, Ok(Some(Responded::Stale { still_pending: 1 })));
        assert!(!hub.lock().state.credentials().spent(&stale.key, 0.0));
        let first = hub.respond_spending(&spend, "s1", &id, answer(), "t");
        assert_eq!(first, Ok(Some(Responded::Answered)));
        let again = hub.respond_spending(&spend, "s1", &id, answer(), "t");
        assert_eq!(again, Ok(None), "spent");
    }
}
