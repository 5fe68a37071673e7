//! The FIFO of pending prompts of one (session, kind), generic over its entries.
//!
//! A queue knows its entries and the version of its last change, nothing
//! else: no locking, no notification, no HTTP. Every view of it shows the
//! head (the oldest entry) and the count, never the newest entry.

use std::collections::VecDeque;

/// What a queue needs of its entries: a stable id to find them by.
pub trait Identified {
    fn id(&self) -> &str;
}

#[derive(Clone, Debug, PartialEq)]
pub struct Queue<T> {
    entries: VecDeque<T>,
    /// Global version of this queue's last change; 0 for a queue never changed.
    version: u64,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue {
            entries: VecDeque::new(),
            version: 0,
        }
    }
}

impl<T: Identified> Queue<T> {
    /// A queue as a snapshot recorded it.
    pub fn restore(entries: Vec<T>, version: u64) -> Queue<T> {
        Queue {
            entries: entries.into(),
            version,
        }
    }

    /// Appends an entry as a snapshot recorded it, keeping the queue's
    /// recorded version.
    pub fn push_restored(&mut self, entry: T) {
        self.entries.push_back(entry);
    }

    pub fn head(&self) -> Option<&T> {
        self.entries.front()
    }

    /// The newest entry: what clarify de-duplication compares with.
    pub fn last(&self) -> Option<&T> {
        self.entries.back()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.iter()
    }

    pub fn get(&self, id: &str) -> Option<&T> {
        self.entries.iter().find(|entry| entry.id() == id)
    }

    pub fn push(&mut self, entry: T, version: u64) {
        self.entries.push_back(entry);
        self.version = version;
    }

    /// Takes the entry with this id out of the queue, wherever it stands.
    pub fn remove(&mut self, id: &str, version: u64) -> Option<T> {
        let position = self.entries.iter().position(|entry| entry.id() == id)?;
        self.version = version;
        self.entries.remove(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Identified for &'static str {
        fn id(&self) -> &str {
            self
        }
    }

    #[test]
    fn head_is_the_oldest_and_removal_anywhere_keeps_order() {
        let mut queue = Queue::default();
        for (version, id) in ["a", "b", "c"].into_iter().enumerate() {
            queue.push(id, version as u64 + 1);
        }
        assert_eq!(
            (queue.head(), queue.last(), queue.len()),
            (Some(&"a"), Some(&"c"), 3)
        );
        assert_eq!(queue.remove("b", 7), Some("b"));
        assert_eq!(queue.iter().copied().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(queue.version(), 7);
        assert_eq!(queue.remove("zz", 8), None);
        assert_eq!(queue.version(), 7, "a miss changes nothing");
    }
}
