//! The crash test's load: agents submit, wait for and cancel prompts in
//! sessions of their own, a human answers, and each thread waits while the
//! server is down. Each request's reply is acknowledged in the model; a
//! request the server died under is in doubt.

use super::id_field;
use super::model::{InDoubt, Model, Queue, Rule, Status};
use super::unix_now;
use crate::support::{Client, Reply};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const AGENTS: usize = 3;
const SESSIONS_PER_AGENT: usize = 2;
/// An agent cancels rather than submits once its queue is this long.
const MAX_QUEUE: usize = 6;
const KINDS: [&str; 2] = ["clarify", "approval"];
/// How long the load may take to reach the next kill.
const STALL: Duration = Duration::from_secs(15);

/// SplitMix64: small and seedable, enough to pick operations.
pub struct Rng(pub u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Between half of `most` and `most` letters.
    fn letters(&mut self, most: usize) -> String {
        let len = most / 2 + self.below(most / 2 + 1);
        (0..len)
            .map(|_| (b'a' + self.below(26) as u8) as char)
            .collect()
    }
}

/// One request of the load.
#[derive(Clone, Debug)]
pub enum Op {
    Submit {
        queue: Queue,
        body: Value,
    },
    /// A command a rule covers, submitted again.
    Covered {
        rule: Rule,
        body: Value,
    },
    Cancel {
        queue: Queue,
        id: String,
    },
    Respond {
        queue: Queue,
        id: String,
        body: Value,
        status: Status,
        rule: Option<Rule>,
    },
    /// An agent asks at once what became of its prompt.
    Wait {
        queue: Queue,
        id: String,
    },
    /// Nothing to answer: a read, as a page would poll.
    Look,
}

impl Op {
    pub fn send(&self, client: &Client) -> std::io::Result<Reply> {
        let (path, body) = match self {
            Op::Submit { queue, body } => (format!("/api/{}/submit", queue.1), body),
            Op::Covered { body, .. } => ("/api/approval/submit".into(), body),
            Op::Cancel { queue, id } => {
                let body = json!({"session_id": queue.0, id_field(queue.1): id});
                return client.try_post(&format!("/api/{}/cancel", queue.1), &body);
            }
            Op::Respond { queue, body, .. } => (format!("/api/{}/respond", queue.1), body),
            Op::Wait { queue, id } => {
                let (session_id, kind) = (&queue.0, queue.1);
                let field = id_field(kind);
                let path =
                    format!("/api/{kind}/wait?session_id={session_id}&{field}={id}&timeout=0");
                return client.try_get(&path);
            }
            Op::Look => return client.try_get("/api/sessions"),
        };
        client.try_post(&path, body)
    }

    pub fn in_doubt(self, sent: (f64, f64)) -> Option<InDoubt> {
        match self {
            Op::Submit { queue, body } => Some(InDoubt::Submit { queue, body, sent }),
            Op::Cancel { id, .. } => Some(InDoubt::Resolve {
                id,
                status: Status::Cancelled,
                rule: None,
            }),
            Op::Respond {
                id, status, rule, ..
            } => Some(InDoubt::Resolve { id, status, rule }),
            Op::Covered { .. } | Op::Wait { .. } | Op::Look => None,
        }
    }
}

/// Who drives a load thread.
#[derive(Clone, Copy, Debug)]
pub enum Who {
    Agent(usize),
    Human,
}

fn choose(who: Who, model: &Model, rng: &mut Rng, number: usize) -> Op {
    match who {
        Who::Agent(me) => choose_for_agent(me, model, rng, number),
        Who::Human => choose_for_human(model, rng, number),
    }
}

fn choose_for_agent(me: usize, model: &Model, rng: &mut Rng, number: usize) -> Op {
    let session_id = format!("a{me}-{}", rng.below(SESSIONS_PER_AGENT));
    let queue: Queue = (session_id.clone(), *rng.pick(&KINDS));
    let pending = model.queues.get(&queue).cloned().unwrap_or_default();
    let roll = rng.below(100);
    let own = |rule: &&Rule| {
        let session = rule.session_id.as_deref();
        session.is_none_or(|s| s.starts_with(&format!("a{me}-")))
    };
    let rules: Vec<&Rule> = model.rules.iter().filter(own).collect();
    if roll >= 85 && !rules.is_empty() {
        let rule = (*rng.pick(&rules)).clone();
        let session_id = rule.session_id.clone().unwrap_or(session_id);
        let body =
            json!({"session_id": session_id, "command": rule.command, "timeout_seconds": 600});
        return Op::Covered { rule, body };
    }
    if roll >= 70 && !pending.is_empty() {
        let id = rng.pick(&pending).clone();
        return Op::Wait { queue, id };
    }
    if (roll >= 50 || pending.len() >= MAX_QUEUE) && !pending.is_empty() {
        let id = rng.pick(&pending).clone();
        return Op::Cancel { queue, id };
    }
    let body = submit_body(&queue, me, number, rng);
    Op::Submit { queue, body }
}

/// A submit with a unique question or command, sometimes a large one (so
/// the journal compacts now and then), some characters JSON escapes, and a
/// deadline far enough away that nothing expires during the test.
fn submit_body(queue: &Queue, me: usize, number: usize, rng: &mut Rng) -> Value {
    let size = *rng.pick(&[0, 200, 3900, 3900]);
    let padding = rng.letters(size);
    let mut body = json!({"session_id": queue.0});
    match rng.below(3) {
        0 => {}
        1 => body["timeout_seconds"] = json!(0),
        _ => body["timeout_seconds"] = json!(300 + rng.below(3300)),
    }
    if queue.1 == "clarify" {
        body["question"] = json!(format!("q{me}.{number} \"quoted\" \\ é ✓\n{padding}"));
        if rng.below(2) == 0 {
            body["choices"] = json!(["yes", format!("no {number}")]);
        }
        return body;
    }
    let command = format!("run {me}.{number} {padding}{padding}");
    body["command"] = json!(command.trim_end());
    if rng.below(2) == 0 {
        body["description"] = json!(format!("why {number}: <b>&amp;</b>\t\u{202e}"));
    }
    if rng.below(2) == 0 {
        body["pattern_keys"] = json!([format!("key {me}.{number}")]);
    }
    body
}

fn choose_for_human(model: &Model, rng: &mut Rng, number: usize) -> Op {
    let pending = model.pending();
    if pending.is_empty() {
        return Op::Look;
    }
    let (queue, id) = rng.pick(&pending).clone();
    let (session_id, kind) = (queue.0.clone(), queue.1);
    let mut body = json!({"session_id": session_id, id_field(kind): id});
    if kind == "clarify" {
        let answer = format!("answer {number}");
        body["response"] = json!(format!("  {answer}\n"));
        let status = Status::Answered(answer);
        return Op::Respond {
            queue,
            id,
            body,
            status,
            rule: None,
        };
    }
    let choice = *rng.pick(&["once", "once", "deny", "session", "always"]);
    body["choice"] = json!(choice);
    let rule = Rule::granted(choice, &model.prompts[&id].body, &session_id);
    let status = Status::Answered(choice.into());
    Op::Respond {
        queue,
        id,
        body,
        status,
        rule,
    }
}

/// Where the load threads are told which server is up.
#[derive(Default)]
struct Phase {
    /// The server to use; `None` while it is down.
    addr: Option<SocketAddr>,
    generation: u64,
    /// Threads waiting for the next server.
    parked: usize,
    done: bool,
}

/// The model and the phase, shared by the load threads and the test.
#[derive(Default)]
pub struct Shared {
    model: Mutex<Model>,
    /// Signalled after each acknowledgement.
    progress: Condvar,
    phase: Mutex<Phase>,
    phase_changed: Condvar,
}

impl Shared {
    pub fn model(&self) -> MutexGuard<'_, Model> {
        self.model
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The server to talk to and its generation, once one newer than
    /// generation `after` is up; till then waits, counted as parked. `None`
    /// once the test is over.
    pub fn server(&self, after: u64) -> Option<(Client, u64)> {
        let mut phase = self.phase();
        loop {
            if phase.done {
                return None;
            }
            match phase.addr {
                Some(addr) if phase.generation > after => {
                    return Some((Client { addr }, phase.generation));
                }
                _ => {}
            }
            phase.parked += 1;
            self.phase_changed.notify_all();
            self.progress.notify_all();
            let generation = phase.generation;
            while phase.generation == generation && !phase.done {
                phase = self.phase_changed.wait(phase).unwrap();
            }
            phase.parked -= 1;
        }
    }

    /// Whether the server of `generation` is still the one up.
    fn still_up(&self, generation: u64) -> bool {
        let phase = self.phase();
        phase.addr.is_some() && phase.generation == generation
    }

    pub fn up(&self, addr: SocketAddr) {
        let mut phase = self.phase();
        phase.addr = Some(addr);
        phase.generation += 1;
        self.phase_changed.notify_all();
    }

    pub fn down(&self) {
        self.phase().addr = None;
    }

    pub fn finish(&self) {
        self.phase().done = true;
        self.phase_changed.notify_all();
    }

    /// Waits until every load thread waits for the next server.
    pub fn wait_parked(&self, threads: usize, seed: u64) {
        let deadline = Instant::now() + STALL;
        let mut phase = self.phase();
        while phase.parked < threads {
            let left = deadline.checked_duration_since(Instant::now());
            let left = left.unwrap_or_else(|| panic!("load threads never parked (seed {seed})"));
            phase = self.phase_changed.wait_timeout(phase, left).unwrap().0;
        }
    }

    /// Waits for `count` more acknowledgements, a failure, or every one of
    /// the `threads` waiting for the next server (so none will come).
    pub fn wait_acknowledged(&self, count: u64, threads: usize, seed: u64) {
        let deadline = Instant::now() + STALL;
        let mut model = self.model();
        let target = model.acknowledged + count;
        while model.acknowledged < target && model.failures.is_empty() {
            if self.phase().parked == threads {
                return;
            }
            let left = deadline.checked_duration_since(Instant::now());
            let left = left.unwrap_or_else(|| {
                let got = model.acknowledged;
                panic!("the load stalled at {got} of {target} acknowledgements (seed {seed})")
            });
            // A thread parks under another lock: look again now and then.
            let slice = left.min(Duration::from_millis(100));
            model = self.progress.wait_timeout(model, slice).unwrap().0;
        }
    }
}

/// Ends the load threads however the test ends.
pub struct Finish(pub Arc<Shared>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// One load thread: picks an operation, sends it, and records the reply in
/// the model; when no whole reply comes (the server was killed, or is too
/// slow), records the operation as in doubt and waits for the next server,
/// so that what is in doubt is the last thing it did.
pub fn drive(shared: &Shared, who: Who, mut rng: Rng) {
    let (mut number, mut after) = (0, 0);
    while let Some((client, generation)) = shared.server(after) {
        number += 1;
        let op = choose(who, &shared.model(), &mut rng, number);
        let before = unix_now();
        let reply = op.send(&client);
        let sent = (before, unix_now());
        let mut model = shared.model();
        match reply {
            Ok(reply) => model.acknowledge(op, sent, reply),
            Err(_) => {
                model.cut_off += u64::from(shared.still_up(generation));
                model.in_doubt.extend(op.in_doubt(sent));
                after = generation;
            }
        }
        shared.progress.notify_all();
    }
}
