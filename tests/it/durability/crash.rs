//! The crash test: agents submit, wait for and cancel prompts in sessions of
//! their own while a human answers (some answers grant "session" or
//! "always" rules on the exact command), and the server is SIGKILLed after a
//! random number of acknowledgements. The model holds only what was
//! acknowledged; what was in flight at the kill is in doubt, and settled
//! after the restart.
//!
//! After each kill, a copy of the data directory is taken apart on a server
//! of its own, head by head (ids, payloads, order, deadlines), then the real
//! directory is served again and every outcome, queue and rule is checked
//! against the model before the load resumes.

use super::load::{self, Finish, Op, Rng, Shared, Who};
use super::model::{InDoubt, Model, Prompt, Queue, Status};
use super::{TempDir, id_field, outcome, poll, try_serve_on, unix_now};
use crate::binary::ServerProcess;
use crate::support::Client;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

/// The most acknowledgements between two kills.
const MAX_BETWEEN_KILLS: usize = 80;
/// Where "always" rules are checked: a session no agent submits to.
const RULES_SESSION: &str = "rules-check";

pub fn run(kills: usize, seed: u64) {
    println!(
        "crash test: {kills} kills, seed {seed} (ASKGATE_CRASH_SEED={seed} repeats its choices)"
    );
    let started = Instant::now();
    let dir = TempDir::new("crash");
    let shared = Arc::new(Shared::default());
    let finish = Finish(shared.clone());
    let mut who: Vec<Who> = (0..load::AGENTS).map(Who::Agent).collect();
    who.push(Who::Human);
    let threads: Vec<_> = who
        .iter()
        .enumerate()
        .map(|(n, &who)| {
            let (shared, rng) = (shared.clone(), Rng(seed ^ (n as u64 + 1) << 32));
            thread::spawn(move || load::drive(&shared, who, rng))
        })
        .collect();
    let mut rng = Rng(seed);
    let mut server = restart(&dir, seed, 0);
    let mut snapshots = BTreeSet::new();
    for round in 1..=kills {
        shared.up(server.addr);
        let count = rng.below(MAX_BETWEEN_KILLS + 1) as u64;
        shared.wait_acknowledged(count, who.len(), seed);
        shared.down();
        assert!(
            server.is_running(),
            "before kill {round} (seed {seed}) the server ended by itself: {}",
            server.stderr()
        );
        server.kill();
        shared.wait_parked(who.len(), seed);
        snapshots.extend(std::fs::read(dir.path.join("snapshot")).ok());
        server = restart(&dir, seed, round);
        check_after_restart(&dir, &shared, &server, seed, round);
    }
    drop(finish);
    for thread in threads {
        thread.join().unwrap();
    }
    let model = shared.model();
    println!(
        "crash test: {} acknowledged changes, {} prompts, {} rules, {} snapshots; in doubt: {} happened, {} did not ({} cut off by a slow server); {:?}",
        model.acknowledged,
        model.prompts.len(),
        model.rules.len(),
        snapshots.len(),
        model.happened.0,
        model.happened.1,
        model.cut_off,
        started.elapsed()
    );
}

fn restart(dir: &TempDir, seed: u64, round: usize) -> ServerProcess {
    try_serve_on(dir, &[]).unwrap_or_else(|exited| {
        panic!("after kill {round} (seed {seed}) the server did not start: {exited:?}")
    })
}

fn check_after_restart(
    dir: &TempDir,
    shared: &Shared,
    server: &ServerProcess,
    seed: u64,
    round: usize,
) {
    let mut model = shared.model();
    let (walked, mut problems) = take_apart_a_copy(dir, &model, seed, round);
    problems.extend(settle(&mut model, &walked, server));
    problems.extend(check_queues(&walked, server));
    problems.extend(check_outcomes(&model, server));
    problems.extend(check_rules(&mut model, server));
    problems.append(&mut model.failures);
    assert!(
        problems.is_empty(),
        "after kill {round} (seed {seed}):\n{}",
        problems.join("\n")
    );
}

/// Every entry of every queue the model knows of, oldest first, read by
/// cancelling head after head on a server of a copy of the directory.
fn take_apart_a_copy(
    dir: &TempDir,
    model: &Model,
    seed: u64,
    round: usize,
) -> (BTreeMap<Queue, Vec<Value>>, Vec<String>) {
    let copy = TempDir::new("crash-copy");
    for file in std::fs::read_dir(&dir.path).unwrap() {
        let file = file.unwrap();
        if file.file_name() != "lock" {
            std::fs::copy(file.path(), copy.path.join(file.file_name())).unwrap();
        }
    }

    let server = restart(&copy, seed, round);
    let mut queues: BTreeSet<Queue> = model.queues.keys().cloned().collect();
    for doubt in &model.in_doubt {
        if let InDoubt::Submit { queue, .. } = doubt {
            queues.insert(queue.clone());
        }
    }
    let mut problems = Vec::new();
    let walked = queues
        .into_iter()
        .map(|queue| {
            let entries = take_apart(&server, &queue, &mut problems);
            (queue, entries)
        })
        .collect();
    let left = server.metric("askgate_pending_prompts{kind=\"clarify\"}")
        + server.metric("askgate_pending_prompts{kind=\"approval\"}");
    if left != 0.0 {
        let sessions = server.get("/api/sessions").text();
        problems.push(format!(
            "{left} prompts pending in queues no one submitted to: {sessions}"
        ));
    }
    (walked, problems)
}

fn take_apart(client: &Client, queue: &Queue, problems: &mut Vec<String>) -> Vec<Value> {
    let (session_id, kind) = (queue.0.as_str(), queue.1);
    let mut entries = Vec::new();
    let first = poll(client, kind, session_id);
    let mut head = first["pending"].clone();
    while !head.is_null() && entries.len() <= 64 {
        let id = head[id_field(kind)].clone();
        let cancel = json!({"session_id": session_id, id_field(kind): id});
        let reply = client.post(&format!("/api/{kind}/cancel"), &cancel);
        if reply.status != 200 {
            problems.push(format!("cancelling {head} answered {}", reply.text()));
        }
        entries.push(head);
        head = poll(client, kind, session_id)["pending"].clone();
    }
    if first["pending_count"] != entries.len() {
        problems.push(format!(
            "{queue:?} counted {} but held {entries:?}",
            first["pending_count"]
        ));
    }
    entries
}

/// Compares each walked queue with the model, settling what was in doubt:
/// an acknowledged prompt may be gone only if a respond or cancel in doubt
/// took it, and a queue may end with one entry no one was told of only if
/// it is, whole, a submit in doubt of that queue.
fn settle(model: &mut Model, walked: &BTreeMap<Queue, Vec<Value>>, server: &Client) -> Vec<String> {
    let mut problems = Vec::new();
    for (queue, entries) in walked {
        let expected = model.queues.get(queue).cloned().unwrap_or_default();
        let mut entries = entries.iter().peekable();
        let mut pending = Vec::new();
        for id in expected {
            let field = id_field(queue.1);
            match entries.next_if(|entry| entry[&field] == id.as_str()) {
                Some(entry) => {
                    let prompt = model.prompts.get_mut(&id).unwrap();
                    problems.extend(prompt.mismatch(&id, entry));
                    prompt.entry = Some(entry.clone());
                    pending.push(id);
                }
                None => problems.extend(settle_gone(model, queue, &id, server)),
            }
        }
        for entry in entries {
            match settle_unknown(model, queue, entry) {
                Some(id) => pending.push(id),
                None => problems.push(format!(
                    "{queue:?} holds {entry}, which no reply told of, and no submit in doubt sent"
                )),
            }
        }
        model.queues.insert(queue.clone(), pending);
    }
    model.happened.1 += model.in_doubt.len() as u64;
    model.in_doubt.clear();
    problems
}

/// An acknowledged prompt missing from its queue: a respond or cancel in
/// doubt must have happened, and the server must say so.
fn settle_gone(model: &mut Model, queue: &Queue, id: &str, server: &Client) -> Option<String> {
    let (_, said) = outcome(server, queue.1, &queue.0, id);
    let position = model.in_doubt.iter().position(|doubt| {
        matches!(doubt, InDoubt::Resolve { id: doubted, status, .. }
            if doubted == id && status.said(queue.1) == said)
    });
    let Some(position) = position else {
        return Some(format!(
            "{id}, acknowledged in {queue:?}, is gone; wait says {said}"
        ));
    };
    let InDoubt::Resolve { status, rule, .. } = model.in_doubt.remove(position) else {
        unreachable!("found as a resolve");
    };
    model.resolve(id, status, rule);
    model.happened.0 += 1;
    None
}

/// An entry no reply told of: a submit in doubt of this queue that happened
/// whole. Returns its id.
fn settle_unknown(model: &mut Model, queue: &Queue, entry: &Value) -> Option<String> {
    let id = entry[id_field(queue.1)].as_str()?.to_string();
    let position = model.in_doubt.iter().position(|doubt| match doubt {
        InDoubt::Submit {
            queue: doubted,
            body,
            sent,
        } => doubted == queue && candidate(queue, body, *sent).mismatch(&id, entry).is_none(),
        InDoubt::Resolve { .. } => false,
    })?;
    let InDoubt::Submit { body, sent, .. } = model.in_doubt.remove(position) else {
        unreachable!("found as a submit");
    };
    let mut prompt = candidate(queue, &body, sent);
    prompt.entry = Some(entry.clone());
    model.prompts.insert(id.clone(), prompt);
    model.happened.0 += 1;
    Some(id)
}

fn candidate(queue: &Queue, body: &Value, sent: (f64, f64)) -> Prompt {
    Prompt {
        queue: queue.clone(),
        body: body.clone(),
        sent,
        entry: None,
        status: Status::Pending,
    }
}

/// The restarted server shows each queue as the copy did: head and count.
fn check_queues(walked: &BTreeMap<Queue, Vec<Value>>, server: &Client) -> Vec<String> {
    let mut problems = Vec::new();
    for (queue, entries) in walked {
        let shown = poll(server, queue.1, &queue.0);
        let head = entries.first().cloned().unwrap_or(Value::Null);
        if shown["pending"] != head || shown["pending_count"] != entries.len() {
            problems.push(format!(
                "{queue:?} shows {shown}, its copy held {entries:?}"
            ));
        }
    }
    problems
}

/// Every prompt's outcome (or pending) is what the model says.
fn check_outcomes(model: &Model, server: &Client) -> Vec<String> {
    let mut problems = Vec::new();
    for (id, prompt) in &model.prompts {
        let (session_id, kind) = &prompt.queue;
        let expected = prompt.status.said(kind);
        let (status, said) = outcome(server, kind, session_id, id);
        if (status, &said) != (200, &expected) {
            problems.push(format!(
                "{id} in {session_id}: wait says {status} {said}, not {expected}"
            ));
        }
    }
    problems
}

/// Every rule still answers its exact command at once.
fn check_rules(model: &mut Model, server: &Client) -> Vec<String> {
    let mut problems = Vec::new();
    for rule in model.rules.clone() {
        let session_id = rule.session_id.as_deref().unwrap_or(RULES_SESSION);
        let body =
            json!({"session_id": session_id, "command": rule.command, "timeout_seconds": 600});
        let before = unix_now();
        let reply = server.post("/api/approval/submit", &body);
        let sent = (before, unix_now());
        let op = Op::Covered { rule, body };
        let known = model.failures.len();
        model.acknowledge(op, sent, reply);
        problems.extend(model.failures.drain(known..));
    }
    problems
}
