//! Room given back: a table keeps the capacity it grew to, so after a
//! burst (10,000 outcomes, 5,000 streams) its emptied slots would stay
//! allocated, and resident, for as long as the server runs. `GiveBack`
//! shrinks a table to twice what it holds once it holds a quarter of its
//! room or less.
//!
//! Invariants: a table of `SMALL` slots or fewer is never shrunk (no churn
//! on an ordinary server); a shrink leaves room for twice what it holds,
//! so a table growing and emptying by one element does not reallocate on
//! every change (each shrink follows at least as many removals as it
//! copies elements: amortised O(1)).

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash};

/// Tables at or under this many slots keep their room.
const SMALL: usize = 256;

/// A table that can give back room it no longer needs.
pub trait GiveBack {
    /// Shrinks the table if it holds a quarter of its room or less.
    fn give_back_room(&mut self);
}

/// The capacity to shrink to, if any: `None` while the table is small or
/// holds more than a quarter of its room.
fn shrunk(len: usize, capacity: usize) -> Option<usize> {
    shrunk_past(len, capacity, SMALL)
}

/// The same for a table that is one of many (`shared::Shards`), small
/// at `small` slots: together they are as large as one.
pub(super) fn shrunk_past(len: usize, capacity: usize, small: usize) -> Option<usize> {
    (capacity > small && len <= capacity / 4).then(|| len.max(small / 2) * 2)
}

impl<K: Eq + Hash, V, S: BuildHasher> GiveBack for HashMap<K, V, S> {
    fn give_back_room(&mut self) {
        if let Some(to) = shrunk(self.len(), self.capacity()) {
            self.shrink_to(to);
        }
    }
}

impl<T: Eq + Hash, S: BuildHasher> GiveBack for HashSet<T, S> {
    fn give_back_room(&mut self) {
        if let Some(to) = shrunk(self.len(), self.capacity()) {
            self.shrink_to(to);
        }
    }
}

impl<T> GiveBack for VecDeque<T> {
    fn give_back_room(&mut self) {
        if let Some(to) = shrunk(self.len(), self.capacity()) {
            self.shrink_to(to);
        }
    }
}

impl<T> GiveBack for Vec<T> {
    fn give_back_room(&mut self) {
        if let Some(to) = shrunk(self.len(), self.capacity()) {
            self.shrink_to(to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_emptied_after_a_burst_gives_its_room_back() {
        let mut table: HashMap<u64, u64> = (0..10_000).map(|n| (n, n)).collect();
        let grown = table.capacity();
        table.retain(|&n, _| n < 100);
        table.give_back_room();
        assert!(
            table.capacity() <= 2 * SMALL,
            "{grown} -> {}",
            table.capacity()
        );
        assert_eq!(table.len(), 100);
    }

    #[test]
    fn a_small_or_busy_table_keeps_its_room() {
        let mut small: Vec<u64> = Vec::with_capacity(SMALL);
        small.give_back_room();
        assert_eq!(small.capacity(), SMALL);
        let mut busy: VecDeque<u64> = (0..1_000).collect();
        let room = busy.capacity();
        busy.truncate(400);
        busy.give_back_room();
        assert_eq!(busy.capacity(), room);
    }
}
