//! Tables a `State` shares with its clones until one of them writes.
//!
//! The Redis store decides ahead on a clone of the shown state, and makes
//! one again after every conflict (hub/batch.rs); three instances under
//! load make hundreds a second, and outcomes are kept for ten minutes. A
//! clone must not copy every kept outcome and pending id: 10,000 of each
//! cost 0.9 ms a clone, made and dropped (BENCHMARKS.md, "Redis
//! throughput"). So `Shards` splits a table by id over `SHARDS` tables,
//! each behind an `Arc`, and `Chunks` splits a queue into runs of at most
//! `CHUNK`: a clone copies pointers, and a write copies only the one table
//! or run it touches, and only if another clone still holds it.
//!
//! Invariants: an id always lives in the same shard (`shard_of`, a hash
//! of its bytes), so a lookup reads one table; `len` is the number of
//! entries or elements; no run is empty; equality is of contents, not of
//! how they are split.

use crate::core::room::{GiveBack, shrunk_past};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Tables a `Shards` splits its entries over.
const SHARDS: usize = 64;

/// A shard's table at or under this many slots keeps its room (all of
/// them together: `room::SMALL`'s 256).
const SMALL_TABLE: usize = 4;

/// Elements in a run of `Chunks`.
const CHUNK: usize = 256;

type Table<V> = HashMap<Arc<str>, V>;

/// A map by id whose clones share its tables until they write.
#[derive(Clone, Debug)]
pub struct Shards<V> {
    /// Empty until the first insert, then `SHARDS` tables.
    tables: Vec<Arc<Table<V>>>,
    len: usize,
}

impl<V> Default for Shards<V> {
    fn default() -> Self {
        Shards {
            tables: Vec::new(),
            len: 0,
        }
    }
}

/// The shard an id lives in: FNV-1a of its bytes.
fn shard_of(id: &str) -> usize {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % SHARDS as u64) as usize
}

impl<V: Clone> Shards<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, id: &str) -> Option<&V> {
        self.tables.get(shard_of(id))?.get(id)
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    pub fn insert(&mut self, id: Arc<str>, value: V) -> Option<V> {
        if self.tables.is_empty() {
            self.tables = (0..SHARDS).map(|_| Arc::default()).collect();
        }
        let table = Arc::make_mut(&mut self.tables[shard_of(&id)]);
        let old = table.insert(id, value);
        self.len += usize::from(old.is_none());
        old
    }

    /// Removes `id`, copying its table only when it holds it.
    pub fn remove(&mut self, id: &str) -> Option<V> {
        let table = self.tables.get_mut(shard_of(id))?;
        if !table.contains_key(id) {
            return None;
        }
        let old = Arc::make_mut(table).remove(id);
        self.len -= usize::from(old.is_some());
        old
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &V)> {
        self.tables.iter().flat_map(|table| table.iter())
    }
}

impl<V: Clone> GiveBack for Shards<V> {
    fn give_back_room(&mut self) {
        for table in &mut self.tables {
            // An empty one keeps no room at all: a few small tables left
            // on pages of their own would keep those pages.
            let to = match table.len() {
                0 if table.capacity() > 0 => Some(0),
                len => shrunk_past(len, table.capacity(), SMALL_TABLE),
            };
            if let Some(to) = to {
                Arc::make_mut(table).shrink_to(to);
            }
        }
    }
}

impl<V: Clone + PartialEq> PartialEq for Shards<V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().all(|(id, value)| other.get(id) == Some(value))
    }
}

/// A queue whose clones share its runs until they write.
#[derive(Clone, Debug)]
pub struct Chunks<T> {
    runs: VecDeque<Arc<VecDeque<T>>>,
    len: usize,
}

impl<T> Default for Chunks<T> {
    fn default() -> Self {
        Chunks {
            runs: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T: Clone> Chunks<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push_back(&mut self, element: T) {
        match self.runs.back_mut() {
            Some(run) if run.len() < CHUNK => Arc::make_mut(run).push_back(element),
            _ => self.runs.push_back(Arc::new(VecDeque::from([element]))),
        }
        self.len += 1;
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let run = self.runs.front_mut()?;
        let first = Arc::make_mut(run).pop_front();
        if run.is_empty() {
            self.runs.pop_front();
        }
        self.len -= usize::from(first.is_some());
        first
    }

    /// Keeps the elements `keep` says to, copying only the runs that lose
    /// one.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        for run in &mut self.runs {
            if !run.iter().all(&mut keep) {
                Arc::make_mut(run).retain(&mut keep);
            }
        }
        self.runs.retain(|run| !run.is_empty());
        self.len = self.runs.iter().map(|run| run.len()).sum();
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.runs.iter().flat_map(|run| run.iter())
    }
}

impl<T> GiveBack for Chunks<T> {
    fn give_back_room(&mut self) {
        self.runs.give_back_room();
    }
}

impl<T: Clone + PartialEq> PartialEq for Chunks<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: usize) -> Arc<str> {
        Arc::from(format!("{n:032x}"))
    }

    #[test]
    fn a_clone_shares_every_table_until_it_writes_and_then_only_the_one_it_wrote() {
        let mut shown: Shards<usize> = Shards::default();
        for n in 0..10_000 {
            shown.insert(id(n), n);
        }
        let mut ahead = shown.clone();
        let shared = |a: &Shards<usize>, b: &Shards<usize>| {
            let pairs = a.tables.iter().zip(&b.tables);
            pairs.filter(|(x, y)| Arc::ptr_eq(x, y)).count()
        };
        assert_eq!(shared(&shown, &ahead), SHARDS);
        ahead.insert(id(10_000), 10_000);
        ahead.remove(&id(0));
        ahead.remove("never there");
        assert!(
            shared(&shown, &ahead) >= SHARDS - 2,
            "only the tables written"
        );
        assert_eq!((shown.len(), ahead.len()), (10_000, 10_000));
        assert_eq!(shown.get(&id(0)), Some(&0), "the shown one unchanged");
        assert_eq!(ahead.get(&id(0)), None);
        assert_eq!(ahead.get(&id(10_000)), Some(&10_000));
        assert_ne!(shown, ahead);
        ahead.remove(&id(10_000));
        ahead.insert(id(0), 0);
        assert_eq!(shown, ahead, "equal by contents");
        assert_eq!(ahead.iter().count(), 10_000);
    }

    #[test]
    fn tables_emptied_after_a_burst_give_their_room_back() {
        let mut outcomes: Shards<usize> = Shards::default();
        for n in 0..10_000 {
            outcomes.insert(id(n), n);
        }
        let grown: usize = outcomes.tables.iter().map(|table| table.capacity()).sum();
        for n in 100..10_000 {
            outcomes.remove(&id(n));
        }
        outcomes.give_back_room();
        let room: usize = outcomes.tables.iter().map(|table| table.capacity()).sum();
        assert!(room <= 2 * 256, "{grown} -> {room} slots");
        assert_eq!(outcomes.len(), 100);
        for n in 0..100 {
            outcomes.remove(&id(n));
        }
        outcomes.give_back_room();
        let room: usize = outcomes.tables.iter().map(|table| table.capacity()).sum();
        assert_eq!(room, 0, "empty tables keep no room");
    }

    #[test]
    fn a_queue_keeps_its_order_through_pushes_pops_and_retains_and_clones_share_its_runs() {
        let mut shown: Chunks<usize> = Chunks::default();
        let mut model: VecDeque<usize> = VecDeque::new();
        for n in 0..1_000 {
            shown.push_back(n);
            model.push_back(n);
        }
        let ahead = shown.clone();
        for _ in 0..300 {
            assert_eq!(shown.pop_front(), model.pop_front());
        }
        shown.retain(|n| n % 7 != 0);
        model.retain(|n| n % 7 != 0);
        for n in 1_000..1_600 {
            shown.push_back(n);
            model.push_back(n);
        }
        assert_eq!(shown.len(), model.len());
        assert!(shown.iter().eq(model.iter()));
        assert!(
            shown.iter().rev().eq(model.iter().rev()),
            "newest first too"
        );
        assert!(ahead.iter().copied().eq(0..1_000), "the clone unchanged");
        assert!(shown.runs.iter().all(|run| !run.is_empty()));
        let mut rebuilt = Chunks::default();
        model.iter().for_each(|&n| rebuilt.push_back(n));
        assert_eq!(shown, rebuilt, "equal by contents, however split");
        while shown.pop_front().is_some() {}
        assert!(shown.is_empty() && shown.runs.is_empty());
    }
}
