//! Prompt ids: random lowercase hex, 12 characters for clarify and 32 for
//! approval. Ids need to be unique, not secret; the hub checks uniqueness.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh id of `len` lowercase hex characters.
pub fn random_hex(len: usize) -> String {
    let mut id = String::with_capacity(len + 16);
    while id.len() < len {
        id.push_str(&format!("{:016x}", random_u64()));
    }
    id.truncate(len);
    id
}

pub fn random_u64() -> u64 {
    // RandomState is seeded from the OS once per thread; the counter and the
    // clock make successive draws differ.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    hasher.write_u128(nanos);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_have_the_asked_length_and_differ() {
        let a = super::random_hex(32);
        let b = super::random_hex(32);
        assert_eq!((a.len(), super::random_hex(12).len()), (32, 12));
        assert!(
            a.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }
}
