//! A model-based test of the state machine: thousands of random sequences
//! of operations (submit, answer, stale answer, cancel, expire, evict,
//! prune, revoke a rule, subscribe, fall behind, resync) driven through
//! `State`, checking after every step the queue rules of docs/PROTOCOL.md
//! §2 and the rules of §3.2 against a plain model (only a live rule the
//! human granted answers, and a revoked one never again; an action that is
//! not a command is covered only by a rule granted on that exact action;
//! a deny's reason, an edit and a note only where they apply, and an
//! edited answer never grants a rule), and that
//! replaying the recorded changes (also through their JSON, as a journal
//! would) and reading back a snapshot give an equal state.

use crate::core::action::{Action, Edit};
use crate::core::change::Change;
use crate::core::credentials::CredentialChange;
use crate::core::kind::Kind;
use crate::core::prompt::{
    Answer, Choice, Context, Decision, LEGACY_AGENT, Outcome, Payload, Prompt,
};
use crate::core::rules::{Lifetime, Scope};
use crate::core::state::{Limits, Lookup, Respond, State, Submitted};
use crate::core::view::{Interest, Update, Watch};
use crate::error::Error;
use std::collections::{HashMap, HashSet, VecDeque};

const SEQUENCES: u64 = 1_200;
const STEPS: usize = 60;
const SESSIONS: [&str; 4] = ["s0", "s1", "s2", "s3"];
/// The agents approvals name of themselves; `None` for none.
const AGENTS: [Option<&str>; 3] = [Some("build-bot"), Some("codex"), None];
const COMMANDS: [&str; 7] = [
    "reboot",
    "git push",
    "git push origin",
    "git push --force",
    "sudo reboot",
    "rm -rf / --no-preserve-root",
    // The summary of the edit of `actions()`: a rule on one must never
    // cover the other.
    "edit a.txt (1 edit, +1 -1)",
];

/// Actions that are not commands: two edits with the same summary, a fetch.
fn actions() -> [Action; 3] {
    let edit = |new: &str| Action::Edit {
        path: "a.txt".into(),
        edits: vec![Edit {
            old: "1".into(),
            new: new.into(),
        }],
    };
    let fetch = Action::Fetch {
        url: "https://example.org/a".into(),
        method: None,
    };
    [edit("2"), edit("3"), fetch]
}
const QUESTIONS: [&str; 2] = ["which db?", "go on?"];
/// The choices of a question that takes several.
const PICKS: [&str; 3] = ["a", "b", "c"];

/// xorshift64*: deterministic, so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn id(&mut self, len: usize) -> String {
        let hex: String = (0..4).map(|_| format!("{:016x}", self.next())).collect();
        hex[..len].to_string()
    }
}

/// A subscriber as a stream holds it: a bounded buffer, a resync mark, and
/// what it has shown of each queue.
struct Watcher {
    interest: Interest,
    buffer: VecDeque<Update>,
    capacity: usize,
    resync: bool,
    /// While marked: the version before the first update it missed.
    behind_since: u64,
    last_version: u64,
    shown: HashMap<(String, Kind), Update>,
}

impl Watcher {
    fn show(&mut self, update: Update) {
        assert!(
            self.interest.includes(&update.session_id, update.kind),
            "rule 6: a watcher only gets what it watches"
        );
        self.last_version = self.last_version.max(update.version);
        self.shown
            .insert((update.session_id.clone(), update.kind), update);
    }

    fn drain(&mut self) {
        let mut last = 0;
        while let Some(update) = self.buffer.pop_front() {
            assert!(
                update.version > last,
                "rule 1: frames arrive in the order of their changes"
            );
            last = update.version;
            if update.version > self.last_version {
                self.show(update);
            }
        }
    }
}

/// A rule as the model keeps it.
#[derive(Clone, Debug, PartialEq)]
struct ModelRule {
    rule_id: String,
    scope: Scope,
    lifetime: Lifetime,
    session_id: Option<String>,
    command: String,
    /// The action it was granted on.
    action: Action,
}

/// The plain model: each queue as ids in order, what each id was, and the
/// rules the human granted that are still live.
#[derive(Default)]
struct Model {
    queues: HashMap<(String, Kind), VecDeque<String>>,
    prompts: HashMap<String, Prompt>,
    outcomes: HashMap<String, Outcome>,
    /// Live rules, oldest first.
    rules: Vec<ModelRule>,
    /// Rules revoked, or gone with their session: none may answer again.
    ended: HashSet<String>,
}

impl Model {
    /// The live rules that cover `action` in this session: a command by
    /// its text, any other action only by a rule granted on that very
    /// action.
    fn covering(&self, session_id: &str, action: &Action) -> Vec<&ModelRule> {
        let live = self.rules.iter();
        let here = |rule: &&ModelRule| rule.session_id.as_deref().is_none_or(|s| s == session_id);
        let covers = |rule: &&ModelRule| match (action, &rule.scope) {
            (Action::Command { command, .. }, Scope::Exact(_) | Scope::Prefix { .. }) => {
                rule.scope.matches(command)
            }
            (Action::Command { .. }, _) => false,
            (_, Scope::Action(_)) => rule.action == *action,
            (Action::Tool { name, .. }, Scope::Tool(tool)) => name == tool,
            (Action::Fetch { url, method: m }, Scope::UrlPrefix { prefix, method }) => {
                url.starts_with(prefix.as_str()) && m.as_deref().unwrap_or("GET") == method
            }
            (_, Scope::Directory { .. }) => panic!("the model grants no directory rule"),
            (
                _,
                Scope::Exact(_) | Scope::Prefix { .. } | Scope::Tool(_) | Scope::UrlPrefix { .. },
            ) => false,
        };
        live.filter(here).filter(covers).collect()
    }

    /// A granted rule joins unless one of the same lifetime (and session)
    /// already has its scope.
    fn grant(&mut self, rule: ModelRule) {
        let same = |other: &ModelRule| {
            (other.lifetime, &other.session_id, &other.scope)
                == (rule.lifetime, &rule.session_id, &rule.scope)
        };
        if !self.rules.iter().any(same) {
            self.rules.push(rule);
        }
    }

    fn end_rules(&mut self, gone: impl Fn(&ModelRule) -> bool) {
        let (ended, kept) = self.rules.drain(..).partition(|rule| gone(rule));
        self.rules = kept;
        let ended: Vec<ModelRule> = ended;
        self.ended
            .extend(ended.into_iter().map(|rule| rule.rule_id));
    }
}

struct Run {
    rng: Rng,
    state: State,
    log: Vec<Change>,
    model: Model,
    watchers: Vec<Watcher>,
    now: f64,
    limits: Limits,
    /// The digest of the last sign-in, while it holds.
    signed_in: Option<String>,
}

impl Run {
    fn new(seed: u64) -> Run {
        Run {
            rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            state: State::default(),
            log: Vec::new(),
            model: Model::default(),
            watchers: Vec::new(),
            now: 1_795_477_000.0,
            limits: Limits {
                max_pending: 4,
                max_prompts: 12,
                max_state_bytes: 8 * 1024,
                max_sessions: 3,
                result_ttl: 30.0,
            },
            signed_in: None,
        }
    }

    /// Sessions a watcher still needs: watched by name, or any while a
    /// watcher is behind.
    fn watched(&self) -> impl Fn(&str) -> bool + '_ {
        |session_id| {
            let by_name = |w: &Watcher| matches!(&w.interest.watch, Watch::Sessions(s) if s.iter().any(|n| n == session_id));
            self.watchers.iter().any(|w| w.resync || by_name(w))
        }
    }

    /// Applies decided changes as the hub does: apply, then publish the
    /// touched queue to every interested watcher, marking the full ones.
    fn commit(&mut self, mut changes: Vec<Change>) {
        if let Some(room) = self.state.room_for_outcomes(&self.limits, &changes) {
            changes.insert(0, room);
        }
        for change in changes {
            self.follow_in_model(&change);
            let applied = self.state.apply(&change);
            self.log.push(change);
            let Some((session_id, kind)) = applied.queue else {
                continue;
            };
            let update = self.state.update_of(&session_id, kind);
            for watcher in &mut self.watchers {
                if !watcher.interest.includes(&session_id, kind) || watcher.resync {
                    continue;
                }
                match watcher.buffer.len() < watcher.capacity {
                    true => watcher.buffer.push_back(update.clone()),
                    false => {
                        watcher.resync = true;
                        watcher.behind_since = update.version - 1;
                    }
                }
            }
        }
    }

    /// What each change must do, told to the model independently of `State`.
    fn follow_in_model(&mut self, change: &Change) {
        let model = &mut self.model;
        match change {
            Change::Paused { .. } => {}
            Change::Submitted(prompt) => {
                let key = (prompt.session_id.clone(), prompt.kind());
                model
                    .queues
                    .entry(key)
                    .or_default()
                    .push_back(prompt.id.clone());
                model
                    .prompts
                    .insert(prompt.id.clone(), Prompt::clone(prompt));
            }
            Change::Resolved {
                session_id,
                kind,
                id,
                outcome,
                grant,
                ..
            } => {
                let queue = model
                    .queues
                    .get_mut(&(session_id.clone(), *kind))
                    .expect("a known queue");
                let position = queue
                    .iter()
                    .position(|other| other == id)
                    .expect("a pending id");
                queue.remove(position);
                model.outcomes.insert(id.clone(), outcome.clone());
                let decision = match outcome {
                    Outcome::Answered(Answer::Decision(decision)) => Some(decision),
                    _ => None,
                };
                let lifetime = decision.and_then(|d| Lifetime::of(d.choice));
                if let Some(decision) = decision {
                    assert!(
                        decision.edited.is_none() || grant.is_none(),
                        "an edited answer never grants a rule"
                    );
                }
                if let (Some(scope), Some(lifetime)) = (grant, lifetime) {
                    let payload = &model.prompts[id].payload;
                    let command = payload.command().expect("an approval");
                    let action = payload.action().expect("an approval").clone();
                    // A prefix without "any options" may leave out the
                    // options of the very command it was picked on.
                    assert!(
                        scope.covers(&action, None) || action.command().is_some(),
                        "an action's rule covers exactly that action"
                    );
                    assert_eq!(
                        scope.refusal_for(&action, None),
                        None,
                        "a rule may be granted on its action"
                    );
                    model.grant(ModelRule {
                        rule_id: id.clone(),
                        scope: scope.clone(),
                        lifetime,
                        session_id: (lifetime == Lifetime::Session).then(|| session_id.clone()),
                        command: command.to_string(),
                        action,
                    });
                }
            }
            Change::AutoAnswered {
                id,
                answer,
                rule_id,
                ..
            } => {
                assert!(
                    !model.ended.contains(rule_id),
                    "a revoked rule never answers again"
                );
                let rule = model.rules.iter().find(|rule| rule.rule_id == *rule_id);
                let rule = rule.expect("only a live rule the human granted answers");
                assert_eq!(
                    *answer,
                    Answer::choice(rule.lifetime.choice()),
                    "a rule answers with its lifetime"
                );
                model
                    .outcomes
                    .insert(id.clone(), Outcome::Answered(answer.clone()));
            }
            Change::RuleRevoked { rule_id, .. } => {
                let live = model.rules.iter().any(|rule| rule.rule_id == *rule_id);
                assert!(live, "only a live rule is revoked");
                model.end_rules(|rule| rule.rule_id == *rule_id);
            }
            Change::SessionEvicted { session_id } => {
                for kind in Kind::ALL {
                    let queue = model
                        .queues
                        .remove(&(session_id.clone(), kind))
                        .unwrap_or_default();
                    assert!(queue.is_empty(), "only idle sessions are evicted");
                }
                model.end_rules(|rule| rule.session_id.as_ref() == Some(session_id));
            }
            Change::Pruned { outcomes, sessions } => {
                for id in outcomes {
                    model.outcomes.remove(id);
                }
                for session_id in sessions {
                    let holds = |rule: &ModelRule| rule.session_id.as_ref() == Some(session_id);
                    assert!(
                        !model.rules.iter().any(holds),
                        "a session that holds rules is not pruned"
                    );
                }
            }
            Change::Restarted { .. } | Change::Credential(_) => {}
        }
    }

    fn step(&mut self) {
        match self.rng.below(100) {
            0..=34 => self.submit(),
            35..=51 => self.answer(),
            52..=56 => self.stale_answer(),
            57..=63 => self.cancel(),
            64..=71 => self.pass_time(),
            72 => self.restart(),
            73..=76 => self.revoke(),
            77..=84 => self.subscribe(),
            85..=92 => self.drain_one(),
            93..=94 => self.triage(),
            95..=97 => self.unsubscribe(),
            _ => self.sign_in_or_spend(),
        }
    }

    fn submit(&mut self) {
        let session_id = self.rng.pick(&SESSIONS).to_string();
        let kind = *self.rng.pick(&Kind::ALL);
        let payload = match kind {
            Kind::Clarify => match self.rng.below(3) {
                0 => Payload::Clarify {
                    question: self.rng.pick(&QUESTIONS).to_string(),
                    choices: PICKS.iter().map(|c| c.to_string()).collect(),
                    multiple: true,
                    schema: None,
                },
                _ => Payload::question(self.rng.pick(&QUESTIONS).to_string(), vec![]),
            },
            Kind::Approval => {
                let action = match self.rng.below(3) {
                    0 => self.rng.pick(&actions()).clone(),
                    _ => Action::Command {
                        command: self.rng.pick(&COMMANDS).to_string(),
                        cwd: None,
                    },
                };
                // An agent's keys, chosen to try to widen rules.
                let keys = vec![self.rng.pick(&COMMANDS).to_string()];
                let context = Context {
                    agent: self.rng.pick(&AGENTS).map(str::to_string),
                    ..Context::default()
                };
                Payload::approval(action, String::new(), keys, context)
            }
        };
        let timeout = *self.rng.pick(&[0, 5, 20]);
        let id = self.state.fresh_id(kind, |len| self.rng.id(len));
        let prompt = Prompt::new(id, session_id.clone(), self.now, timeout, payload.clone());
        let last = self
            .model
            .queues
            .get(&(session_id.clone(), kind))
            .and_then(|q| q.back().cloned());
        let before = self.state.clone();
        let covering: Vec<String> = match payload.action() {
            Some(action) => self.model.covering(&session_id, action),
            None => vec![],
        }
        .into_iter()
        .map(|rule| rule.rule_id.clone())
        .collect();
        let decided = self
            .state
            .submit(&self.limits, prompt.clone(), self.watched());
        let auto = matches!(decided, Ok((_, Submitted::AutoAnswered { .. })));
        assert_eq!(
            auto,
            !covering.is_empty(),
            "a command a live rule covers is answered at once, and only such a command"
        );
        if let Ok((changes, _)) = &decided
            && let [
                Change::AutoAnswered {
                    rule_id, command, ..
                },
            ] = changes.as_slice()
        {
            assert!(
                covering.contains(rule_id),
                "the rule that answers covers the command in this session"
            );
            assert_eq!(Some(command.as_str()), payload.command(), "and names it");
        }
        match decided {
            Ok((
                changes,
                Submitted::Queued {
                    id, deduped: true, ..
                },
            )) => {
                assert!(changes.is_empty(), "rule 9: a duplicate changes nothing");
                assert_eq!(
                    Some(&id),
                    last.as_ref(),
                    "rule 9: the duplicate of the last entry"
                );
                assert_eq!(self.model.prompts[&id].payload, payload);
            }
            Ok((changes, submitted)) => {
                if kind.deduplicates() {
                    let same =
                        last.is_some_and(|last| self.model.prompts[&last].payload == payload);
                    assert!(
                        !same,
                        "rule 9: a repeat of the last clarify is deduplicated"
                    );
                }
                self.commit(changes);
                if let Submitted::Queued { pending_count, .. } = submitted {
                    assert_eq!(pending_count, self.state.queue_len(&session_id, kind));
                }
            }
            Err(_) => assert_eq!(self.state, before, "a refused submit changes nothing"),
        }
    }

    fn pending_ids(&self) -> Vec<(String, Kind, String)> {
        let queues = self.model.queues.iter();
        let ids =
            queues.flat_map(|((s, k), q)| q.iter().map(move |id| (s.clone(), *k, id.clone())));
        let mut ids: Vec<_> = ids.collect();
        ids.sort();
        ids
    }

    fn answer(&mut self) {
        let pending = self.pending_ids();
        if pending.is_empty() {
            return;
        }
        let (session_id, kind, id) = self.rng.pick(&pending).clone();
        let answer = match kind {
            Kind::Clarify => self.clarify_answer(),
            Kind::Approval => Answer::Decision(self.decision()),
        };
        let fits = self.fits(&id, &answer);
        let by_id = self.rng.below(2) == 0;
        let head = self.model.queues[&(session_id.clone(), kind)]
            .front()
            .cloned();
        let target = if by_id { Some(id.as_str()) } else { None };
        let prefix = match self.rng.below(5) {
            0 => Some(Scope::Prefix {
                prefix: "git push".into(),
                options: self.rng.below(2) == 0,
            }),
            1 => Some(Scope::Prefix {
                prefix: "sudo".into(),
                options: false,
            }),
            // The method is the action's, whatever the respond body says.
            2 => Some(Scope::UrlPrefix {
                prefix: "https://example.org/".into(),
                method: String::new(),
            }),
            _ => None,
        };
        let before = self.state.clone();
        let prefix_picked = prefix.is_some();
        match self
            .state
            .respond(&self.limits, &session_id, target, answer, prefix, self.now)
        {
            Ok(Respond::Answer(change)) => {
                let change = *change;
                let Change::Resolved { id: resolved, .. } = &change else {
                    panic!("an answer resolves")
                };
                let expected = if by_id { Some(id.clone()) } else { head };
                assert_eq!(
                    Some(resolved.clone()),
                    expected,
                    "the named id, or the head"
                );
                self.commit(vec![change]);
            }
            Ok(Respond::Stale { .. }) => panic!("a pending id is not stale"),
            Err(error) => {
                assert_eq!(self.state, before, "a refused answer changes nothing");
                let refused_as_bad = matches!(error, Error::BadRequest(_));
                let prefix_refused = prefix_picked && kind == Kind::Approval;
                assert!(
                    !(by_id && fits == Some(true) && refused_as_bad && !prefix_refused),
                    "an answer that fits its prompt is taken: {error:?}"
                );
            }
        }
        if let (Some(false), Some(outcome)) = (fits, self.model.outcomes.get(&id))
            && by_id
        {
            panic!("an answer that does not fit its prompt was taken: {outcome:?}");
        }
    }

    /// A random decision: a choice, and now and then a reason, an edit
    /// (of the asked action's type or another) and a note, whether or not
    /// they apply.
    fn decision(&mut self) -> Decision {
        let choice = *self.rng.pick(&Choice::ALL);
        let mut edits: Vec<Action> = actions().to_vec();
        edits.push(Action::Command {
            command: "reboot --dry-run".into(),
            cwd: None,
        });
        Decision {
            choice,
            reason: (self.rng.below(3) == 0).then(|| "not now".to_string()),
            edited: (self.rng.below(3) == 0).then(|| Box::new(self.rng.pick(&edits).clone())),
            note: (self.rng.below(4) == 0).then(|| "careful".to_string()),
        }
    }

    /// A clarify's answer: a text, or picks (some repeated, some not offered).
    fn clarify_answer(&mut self) -> Answer {
        let picks = |list: &[&str]| Answer::Picks(list.iter().map(|p| p.to_string()).collect());
        match self.rng.below(5) {
            0 => picks(&["b", "a"]),
            1 => picks(&["a", "a"]),
            2 => picks(&["z"]),
            3 => picks(&[]),
            _ => Answer::Text("postgres".into()),
        }
    }

    /// Whether an answer fits the prompt `id` (docs/PROTOCOL.md §3.2), told
    /// independently of `validate`.
    fn fits(&self, id: &str, answer: &Answer) -> Option<bool> {
        let payload = &self.model.prompts[id].payload;
        let decision = match (payload, answer) {
            (Payload::Clarify { multiple, .. }, Answer::Text(_)) => return Some(!multiple),
            (
                Payload::Clarify {
                    multiple, choices, ..
                },
                Answer::Picks(picks),
            ) => {
                let distinct = picks
                    .iter()
                    .enumerate()
                    .all(|(i, p)| !picks[..i].contains(p));
                let offered = picks.iter().all(|p| choices.contains(p));
                return Some(*multiple && !picks.is_empty() && distinct && offered);
            }
            (_, Answer::Decision(decision)) => decision,
            _ => return Some(false),
        };
        let asked = self.model.prompts[id].payload.action()?;
        let approves = decision.choice != Choice::Deny;
        let edit_fits = match &decision.edited {
            None => true,
            Some(edited) => {
                decision.choice == Choice::Once
                    && std::mem::discriminant(&**edited) == std::mem::discriminant(asked)
                    && match (asked, &**edited) {
                        (Action::Edit { path, edits }, Action::Edit { path: p, edits: e }) => {
                            path == p && edits.len() == e.len() && edits[0].old == e[0].old
                        }
                        (Action::Fetch { method, .. }, Action::Fetch { method: m, .. }) => {
                            method == m
                        }
                        _ => true,
                    }
            }
        };
        let reason_fits = decision.reason.is_none() || !approves;
        let note_fits = decision.note.is_none() || approves;
        Some(edit_fits && reason_fits && note_fits)
    }

    fn stale_answer(&mut self) {
        let session_id = self.rng.pick(&SESSIONS).to_string();
        let kind = *self.rng.pick(&Kind::ALL);
        let id = self.rng.id(kind.id_len());
        let answer = match kind {
            Kind::Clarify => Answer::Text("x".into()),
            Kind::Approval => Answer::choice(Choice::Once),
        };
        let before = self.state.clone();
        let stale =
            self.state
                .respond(&self.limits, &session_id, Some(&id), answer, None, self.now);
        let still_pending = self
            .model
            .queues
            .get(&(session_id, kind))
            .map_or(0, VecDeque::len);
        assert_eq!(
            stale,
            Ok(Respond::Stale { still_pending }),
            "rule 8: a stale id resolves nothing"
        );
        assert_eq!(self.state, before, "rule 8: and changes nothing");
    }

    /// Revokes a live rule, now and then an id that names none.
    fn revoke(&mut self) {
        let live: Vec<String> = self.model.rules.iter().map(|r| r.rule_id.clone()).collect();
        let ended: Vec<String> = self.model.ended.iter().cloned().collect();
        let rule_id = match (self.rng.below(4), live.is_empty(), ended.is_empty()) {
            (0, _, false) => self.rng.pick(&ended).clone(),
            (1, _, _) | (_, true, _) => self.rng.id(32),
            _ => self.rng.pick(&live).clone(),
        };
        let before = self.state.clone();
        match self.state.revoke(&rule_id, self.now) {
            Ok(change) => {
                assert!(live.contains(&rule_id), "only a live rule is revoked");
                self.commit(vec![change]);
            }
            Err(error) => {
                assert!(!live.contains(&rule_id), "a live rule can be revoked");
                assert_eq!(error, Error::NotFound("no such rule".into()));
                assert_eq!(self.state, before, "a refused revoke changes nothing");
            }
        }
    }

    fn cancel(&mut self) {
        let session_id = self.rng.pick(&SESSIONS).to_string();
        let kind = *self.rng.pick(&Kind::ALL);
        let expected: Vec<String> = self
            .model
            .queues
            .get(&(session_id.clone(), kind))
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let changes = self
            .state
            .cancel(&session_id, kind, None, LEGACY_AGENT, self.now)
            .expect("cancel all never fails");
        let cancelled: Vec<String> = changes
            .iter()
            .map(|c| match c {
                Change::Resolved {
                    id,
                    outcome: Outcome::Cancelled,
                    ..
                } => id.clone(),
                other => panic!("cancel made {other:?}"),
            })
            .collect();
        assert_eq!(
            cancelled, expected,
            "cancel takes every pending prompt of the queue"
        );
        self.commit(changes);
    }

    /// The human pauses or resumes an agent, or stops one or all: a stop
    /// cancels exactly the pending prompts of that agent, in every session.
    fn triage(&mut self) {
        // Every prompt here is the legacy credential's; a stop of another
        // agent must cancel none of them.
        let agent = self.rng.pick(&[LEGACY_AGENT, "build-bot"]).to_string();
        if self.rng.below(2) == 0 {
            let paused = !self.state.is_paused(&agent);
            let changes = self
                .state
                .pause(&agent, paused, self.now)
                .expect("a short name");
            self.commit(changes);
            assert_eq!(self.state.is_paused(&agent), paused);
            return;
        }
        let all = self.rng.below(3) == 0;
        let mut expected: Vec<&String> = self
            .model
            .queues
            .values()
            .flatten()
            .filter(|id| all || self.model.prompts[*id].agent_name() == agent)
            .collect();
        expected.sort();
        let changes = self.state.stop((!all).then_some(agent.as_str()), self.now);
        let mut cancelled: Vec<&String> = changes
            .iter()
            .map(|c| match c {
                Change::Resolved {
                    id,
                    outcome: Outcome::Cancelled,
                    ..
                } => id,
                other => panic!("stop made {other:?}"),
            })
            .collect();
        cancelled.sort();
        assert_eq!(
            cancelled, expected,
            "a stop cancels exactly that agent's prompts"
        );
        self.commit(changes);
    }

    fn pass_time(&mut self) {
        self.now += *self.rng.pick(&[0.5, 3.0, 11.0, 40.0]);
        let changes = self.state.expire_due(self.now);
        self.commit(changes);
        for (_, _, id) in self.pending_ids() {
            assert!(
                !self.model.prompts[&id].is_expired(self.now),
                "rule 10: nothing past its time stays pending"
            );
        }
        let pruned = self.state.prune(self.now, &self.limits, self.watched());
        self.commit(pruned.into_iter().collect());
        let expired = self.state.expire_credentials(self.now);
        self.commit(expired.into_iter().collect());
        if let Some(digest) = self.signed_in.take() {
            self.signed_in = self
                .state
                .credentials()
                .signed_in(&digest, self.now)
                .is_some()
                .then_some(digest);
        }
    }

    /// A page signs in, out, or a capability or a code is spent: kept
    /// until it expires, signed out or spent once (the replay check covers
    /// them).
    fn sign_in_or_spend(&mut self) {
        let key = format!("{:06x}", self.log.len());
        let expires = self.now + *self.rng.pick(&[1.0, 20.0, 600.0]);
        let change = match (self.rng.below(4), self.signed_in.take()) {
            (0, Some(digest)) => {
                assert!(
                    self.state
                        .credentials()
                        .signed_in(&digest, self.now)
                        .is_some()
                );
                CredentialChange::SignedOut { digest }
            }
            (2, signed_in) => {
                self.signed_in = signed_in;
                let credentials = self.state.credentials();
                assert!(
                    !credentials.code_spent(&key, self.now) && !credentials.codes_full(self.now)
                );
                CredentialChange::CodeSpent {
                    nonce: key,
                    expires,
                }
            }
            (1, _) => {
                let spent = format!("approval:{key}");
                assert!(
                    !self.state.credentials().spent(&spent, self.now),
                    "spent once"
                );
                CredentialChange::Spent {
                    key: spent,
                    expires,
                }
            }
            _ => {
                self.signed_in = Some(key.clone());
                CredentialChange::SignedIn {
                    digest: key,
                    expires,
                    human: "anna".into(),
                }
            }
        };
        self.commit(vec![Change::Credential(change)]);
        if let Some(digest) = &self.signed_in {
            assert!(
                self.state
                    .credentials()
                    .signed_in(digest, self.now)
                    .is_some()
            );
        }
    }

    /// A restart: versions jump, and nothing a watcher saw inside the jump
    /// can be resumed from.
    fn restart(&mut self) {
        let before = self.state.version();
        self.commit(vec![Change::Restarted { skip: 1000 }]);
        assert_eq!(self.state.version(), before + 1000);
        assert!(
            !self.state.can_resume_from(before + 1),
            "a version that may have been lost"
        );
        assert!(
            self.state.can_resume_from(before) || before < 1,
            "one that was durable"
        );
    }

    fn subscribe(&mut self) {
        let watch = match self.rng.below(3) {
            0 => Watch::All,
            _ => Watch::Sessions(vec![self.rng.pick(&SESSIONS).to_string()]),
        };
        let kind = match self.rng.below(3) {
            0 => Some(*self.rng.pick(&Kind::ALL)),
            _ => None,
        };
        let interest = Interest { watch, kind };
        let mut watcher = Watcher {
            interest: interest.clone(),
            buffer: VecDeque::new(),
            capacity: 1 + self.rng.below(3),
            resync: false,
            behind_since: 0,
            last_version: self.state.version(),
            shown: HashMap::new(),
        };
        for update in self.state.states(&interest, None) {
            watcher.show(update);
        }
        watcher.last_version = self.state.version();
        self.watchers.push(watcher);
    }

    fn drain_one(&mut self) {
        if self.watchers.is_empty() {
            return;
        }
        let index = self.rng.below(self.watchers.len());
        let state = &self.state;
        let watcher = &mut self.watchers[index];
        watcher.drain();
        if watcher.resync {
            watcher.resync = false;
            let since = watcher.behind_since;
            assert!(
                state.can_resume_from(since),
                "nothing a marked watcher needs is forgotten"
            );
            for update in state.states(&watcher.interest, Some(since)) {
                watcher.show(update);
            }
            watcher.last_version = state.version();
            check_watcher_is_current(state, watcher);
        }
    }

    fn unsubscribe(&mut self) {
        if !self.watchers.is_empty() {
            let index = self.rng.below(self.watchers.len());
            self.watchers.remove(index);
        }
    }

    /// The checks that hold after every step.
    fn check(&self, replay: bool) {
        let (pending, outcomes, rules) = self.state.bytes();
        assert!(
            pending <= self.limits.max_state_bytes,
            "pending prompts within the budget"
        );
        assert!(
            outcomes <= self.limits.max_outcome_bytes(),
            "outcomes within theirs"
        );
        assert!(rules <= self.limits.max_rule_bytes(), "rules within theirs");
        for ((session_id, kind), ids) in &self.model.queues {
            let update = self.state.update_of(session_id, *kind);
            assert_eq!(update.pending_count, ids.len(), "rule 2: the count");
            let head = ids
                .front()
                .map(|id| self.model.prompts[id].to_json().to_string());
            assert_eq!(
                update.pending.as_deref(),
                head.as_deref(),
                "rule 2: the head, never the newest"
            );
        }
        for (id, outcome) in &self.model.outcomes {
            let prompt = self.model.prompts.get(id);
            if let Some(prompt) = prompt {
                let found = self
                    .state
                    .lookup(id, prompt.kind(), &prompt.session_id, &prompt.agent);
                assert!(
                    matches!(found, Lookup::Done(ref got, _) if got == outcome),
                    "outcome of {id}"
                );
            }
        }
        let rules: Vec<ModelRule> = (self.state.rules().into_iter())
            .map(|rule| ModelRule {
                rule_id: rule.rule_id.clone(),
                scope: rule.scope.clone(),
                lifetime: rule.lifetime,
                session_id: rule.session_id.clone(),
                command: rule.command.clone(),
                action: (self.model.prompts[&rule.rule_id].payload.action())
                    .expect("a rule comes from an approval")
                    .clone(),
            })
            .collect();
        let mut expected = self.model.rules.clone();
        expected.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));
        let mut got = rules;
        got.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));
        assert_eq!(
            got, expected,
            "the rules are the live ones the human granted"
        );
        for watcher in self
            .watchers
            .iter()
            .filter(|w| w.buffer.is_empty() && !w.resync)
        {
            check_watcher_is_current(&self.state, watcher);
        }
        if replay {
            self.check_replay();
        }
    }

    fn check_replay(&self) {
        let mut replayed = State::default();
        let mut through_json = State::default();
        for change in &self.log {
            replayed.apply(change);
            let decoded = Change::from_json(&change.to_json()).expect("a change reads back");
            assert_eq!(&decoded, change, "a change survives its JSON");
            let record = crate::core::record::encode(std::slice::from_ref(change));
            let from_disk = crate::core::record::decode(&record).expect("a record reads back");
            assert_eq!(
                from_disk,
                vec![change.clone()],
                "a change survives its record"
            );
            through_json.apply(&decoded);
        }
        assert_eq!(
            replayed, self.state,
            "replaying the changes gives the same state"
        );
        assert_eq!(through_json, self.state, "and so does replaying their JSON");
        let snapshot = serde_json::to_string(&self.state.to_snapshot()).unwrap();
        let read_back = State::from_snapshot(&serde_json::from_str(&snapshot).unwrap());
        assert_eq!(
            read_back.as_ref(),
            Some(&self.state),
            "a snapshot reads back equal"
        );
        let lines = self.state.snapshot_view().to_lines();
        assert_eq!(
            State::from_lines(&lines).as_ref(),
            Some(&self.state),
            "a snapshot in lines reads back equal"
        );
    }
}

/// Rules 3, 4 and 7: a watcher that has drained (and resynced) shows the
/// true state of every queue it watches, empty ones as empty.
fn check_watcher_is_current(state: &State, watcher: &Watcher) {
    for ((session_id, kind), shown) in &watcher.shown {
        let current = state.update_of(session_id, *kind);
        let (shown_head, shown_count) = (shown.pending.as_deref(), shown.pending_count);
        let expected = (current.pending.as_deref(), current.pending_count);
        if current.version > 0 {
            assert_eq!(
                (shown_head, shown_count),
                expected,
                "watcher shows {session_id}/{kind:?}"
            );
        }
    }
    for update in state.states(&watcher.interest, None) {
        if update.pending_count > 0 {
            let key = (update.session_id.clone(), update.kind);
            assert!(
                watcher.shown.contains_key(&key),
                "rule 7: a watcher learns of every non-empty queue it watches"
            );
        }
    }
}

#[test]
fn random_operations_keep_the_queue_rules_and_replay_to_the_same_state() {
    for seed in 0..SEQUENCES {
        let mut run = Run::new(seed);
        for step in 0..STEPS {
            run.step();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run.check(seed < 150 || step + 1 == STEPS)
            }));
            if let Err(panic) = outcome {
                eprintln!("failed at seed {seed}, step {step}");
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// A prompt is its credential's (docs/PROTOCOL.md §7): even in a session
/// that holds two credentials' prompts (replayed from a journal), the same
/// question is deduplicated only against the asker's own, and lookups and
/// cancels of another's are as of an unknown id.
#[test]
fn deduplication_lookups_and_cancels_never_cross_credentials() {
    let limits = Limits {
        max_pending: 8,
        max_prompts: 8,
        max_sessions: 4,
        result_ttl: 60.0,
        max_state_bytes: 1 << 20,
    };
    let question = || Payload::question("Which?".into(), Vec::new());
    let ask = |id: &str, agent: &str| {
        Prompt::new(id.into(), "s".into(), 1.0, 60, question()).with_agent(agent)
    };
    let mut state = State::default();
    state.apply(&Change::Submitted(ask("aaaaaaaaaaaa", LEGACY_AGENT).into()));
    state.apply(&Change::Submitted(ask("bbbbbbbbbbbb", "bot").into()));
    let (changes, submitted) = state
        .submit(&limits, ask("cccccccccccc", LEGACY_AGENT), |_| false)
        .unwrap();
    assert_eq!(changes.len(), 1, "the newest is the bot's: a new prompt");
    assert!(
        matches!(submitted, Submitted::Queued { deduped: false, .. }),
        "{submitted:?}"
    );
    let refused = state.submit(&limits, ask("dddddddddddd", "bot"), |_| false);
    assert!(
        matches!(refused, Err(Error::Forbidden(_))),
        "the session is agent's: {refused:?}"
    );
    assert_eq!(
        state.lookup("bbbbbbbbbbbb", Kind::Clarify, "s", LEGACY_AGENT),
        Lookup::Unknown
    );
    assert_eq!(
        state.lookup("bbbbbbbbbbbb", Kind::Clarify, "s", "bot"),
        Lookup::Pending
    );
    let cancelled = state.cancel("s", Kind::Clarify, None, "bot", 2.0).unwrap();
    assert_eq!(cancelled.len(), 1, "only the bot's own");
    assert!(
        state
            .cancel("s", Kind::Clarify, Some("aaaaaaaaaaaa"), "bot", 2.0)
            .is_err()
    );
}
