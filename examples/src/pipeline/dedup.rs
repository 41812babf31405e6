//! Content deduplication: an event whose payload hashes like one seen among the
//! last `window` distinct payloads is a duplicate (a producer's resend, or a
//! replay after the reader restarted from an older checkpoint).

use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};

/// The content hash of a payload: `DefaultHasher::new()` has fixed keys, so the
/// same payload hashes the same for the life of the process.
pub fn content_hash(payload: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    payload.hash(&mut hasher);
    hasher.finish()
}

/// Remembers the last `window` distinct content hashes.
#[derive(Debug)]
pub struct Dedup {
    seen: HashSet<u64>,
    order: VecDeque<u64>,
    window: usize,
}

impl Dedup {
    /// An empty window of `window` hashes (at least one).
    pub fn new(window: usize) -> Self {
        Dedup {
            seen: HashSet::with_capacity(window.min(1 << 16)),
            order: VecDeque::new(),
            window: window.max(1),
        }
    }

    /// Whether `payload` is new; a new one is remembered, forgetting the oldest.
    pub fn check(&mut self, payload: &[u8]) -> bool {
        let hash = content_hash(payload);
        if !self.seen.insert(hash) {
            return false;
        }
        self.order.push_back(hash);
        if self.order.len() > self.window {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_within_the_window_and_forgetting_beyond_it() {
        let mut dedup = Dedup::new(2);
        assert!(dedup.check(b"a"));
        assert!(!dedup.check(b"a"));
        assert!(dedup.check(b"b"));
        assert!(dedup.check(b"c"), "a is forgotten now");
        assert!(dedup.check(b"a"));
        assert!(!dedup.check(b"c"));
        assert_eq!(content_hash(b"a"), content_hash(b"a"));
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
    }
}
