//! A small least-recently-used cache bounded in bytes, with a time to live: the
//! kind of cache an event pipeline keeps in front of a lookup service. Entries
//! live in a slab linked most- to least-recently used; a lookup moves its entry
//! to the front, an insert that overflows the budget evicts from the back.
//!
//! It reports what happened to each entry (hit, miss, expired, replaced,
//! evicted for size, removed) and leaves recording to its caller.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

const NIL: usize = usize::MAX;

/// Bytes an entry costs: its value plus its 8-byte key.
pub fn entry_bytes(value: &Bytes) -> usize {
    value.len() + 8
}

/// What a lookup found.
#[derive(Clone, Debug, PartialEq)]
pub enum Lookup {
    /// A live entry.
    Hit(Bytes),
    /// Nothing under the key.
    Miss,
    /// An entry past its time to live: removed now, and a miss.
    Expired,
}

/// Entries an insert pushed out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evicted {
    /// The key held an older value, which the new one replaced.
    pub replaced: bool,
    /// Entries past their time to live, evicted to make room.
    pub expired: u32,
    /// Live entries evicted to make room (least recently used first).
    pub size: u32,
}

#[derive(Debug)]
struct Node {
    key: u64,
    value: Bytes,
    inserted: Instant,
    prev: usize,
    next: usize,
}

/// The cache. Not synchronised: wrap it in a mutex to share it.
#[derive(Debug)]
pub struct Lru {
    index: HashMap<u64, usize>,
    nodes: Vec<Node>,
    free: Vec<usize>,
    head: usize,
    tail: usize,
    bytes: usize,
    capacity: usize,
    ttl: Duration,
}

impl Lru {
    /// An empty cache holding at most `capacity` bytes, entries living `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Lru {
            index: HashMap::new(),
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            bytes: 0,
            capacity,
            ttl,
        }
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries held now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the cache holds nothing.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn expired(&self, at: usize, now: Instant) -> bool {
        now.saturating_duration_since(self.nodes[at].inserted) >= self.ttl
    }

    fn unlink(&mut self, at: usize) {
        let (prev, next) = (self.nodes[at].prev, self.nodes[at].next);
        match prev {
            NIL => self.head = next,
            p => self.nodes[p].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.nodes[n].prev = prev,
        }
    }

    fn push_front(&mut self, at: usize) {
        self.nodes[at].prev = NIL;
        self.nodes[at].next = self.head;
        if self.head != NIL {
            self.nodes[self.head].prev = at;
        }
        self.head = at;
        if self.tail == NIL {
            self.tail = at;
        }
    }

    fn drop_node(&mut self, at: usize) {
        self.unlink(at);
        let key = self.nodes[at].key;
        self.index.remove(&key);
        self.bytes -= entry_bytes(&self.nodes[at].value);
        self.nodes[at].value = Bytes::new();
        self.free.push(at);
    }

    /// Looks `key` up at `now`.
    pub fn get(&mut self, key: u64, now: Instant) -> Lookup {
        let Some(&at) = self.index.get(&key) else {
            return Lookup::Miss;
        };
        if self.expired(at, now) {
            self.drop_node(at);
            return Lookup::Expired;
        }
        self.unlink(at);
        self.push_front(at);
        Lookup::Hit(self.nodes[at].value.clone())
    }

    /// Stores `value` under `key` at `now`, evicting from the least recently used
    /// end until it fits. A value larger than the whole budget is not stored
    /// (and evicts nothing but an older value under its key).
    pub fn insert(&mut self, key: u64, value: Bytes, now: Instant) -> Evicted {
        let mut evicted = Evicted::default();
        if let Some(&at) = self.index.get(&key) {
            self.drop_node(at);
            evicted.replaced = true;
        }
        let cost = entry_bytes(&value);
        if cost > self.capacity {
            return evicted;
        }
        while self.bytes + cost > self.capacity && self.tail != NIL {
            let last = self.tail;
            if self.expired(last, now) {
                evicted.expired += 1;
            } else {
                evicted.size += 1;
            }
            self.drop_node(last);
        }
        let node = Node {
            key,
            value,
            inserted: now,
            prev: NIL,
            next: NIL,
        };
        let at = match self.free.pop() {
            Some(at) => {
                self.nodes[at] = node;
                at
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        self.bytes += cost;
        self.index.insert(key, at);
        self.push_front(at);
        evicted
    }

    /// Removes `key`; whether it was there.
    pub fn remove(&mut self, key: u64) -> bool {
        match self.index.get(&key) {
            Some(&at) => {
                self.drop_node(at);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(len: usize) -> Bytes {
        Bytes::from(vec![b'x'; len])
    }

    #[test]
    fn hits_move_to_the_front_and_size_evicts_the_least_recent() {
        let now = Instant::now();
        let mut lru = Lru::new(3 * 108, Duration::from_secs(60));
        for key in 1..=3 {
            assert_eq!(lru.insert(key, value(100), now), Evicted::default());
        }
        assert_eq!(lru.bytes(), 324);
        assert_eq!(lru.get(1, now), Lookup::Hit(value(100)));
        let evicted = lru.insert(4, value(100), now);
        assert_eq!(evicted.size, 1);
        assert_eq!(lru.get(2, now), Lookup::Miss, "2 was the least recently used");
        assert!(matches!(lru.get(1, now), Lookup::Hit(_)));
        assert_eq!((lru.len(), lru.bytes()), (3, 324));
    }

    #[test]
    fn entries_expire_on_lookup_and_at_the_back() {
        let start = Instant::now();
        let ttl = Duration::from_secs(2);
        let mut lru = Lru::new(2 * 58, ttl);
        lru.insert(1, value(50), start);
        lru.insert(2, value(50), start + Duration::from_secs(1));
        assert_eq!(lru.get(1, start + ttl), Lookup::Expired);
        assert_eq!(lru.get(1, start + ttl), Lookup::Miss);
        lru.insert(3, value(50), start + Duration::from_secs(2));
        // 2 expires at 3 s: the insert at 4 s makes room by evicting it as expired.
        let evicted = lru.insert(4, value(50), start + Duration::from_secs(4));
        assert_eq!((evicted.expired, evicted.size), (1, 0));
        assert_eq!(lru.bytes(), 116);
    }

    #[test]
    fn replace_remove_and_oversized_values() {
        let now = Instant::now();
        let mut lru = Lru::new(200, Duration::from_secs(60));
        lru.insert(7, value(40), now);
        let evicted = lru.insert(7, value(60), now);
        assert!(evicted.replaced);
        assert_eq!((lru.len(), lru.bytes()), (1, 68));
        assert!(lru.remove(7));
        assert!(!lru.remove(7));
        assert!(lru.is_empty() && lru.bytes() == 0);
        assert_eq!(lru.insert(8, value(500), now), Evicted::default());
        assert!(lru.is_empty(), "larger than the budget: not stored");
        // Slots are reused after removal.
        for key in 0..100 {
            lru.insert(key, value(10), now);
        }
        assert!(lru.nodes.len() <= 100 && lru.bytes() <= 200);
    }
}
