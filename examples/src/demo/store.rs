//! The in-memory idempotency store: one lock over a map of keys, expiry in
//! insertion order, and a short window of keyless request fingerprints.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use outcometer::key_age;

/// What `begin` found for a key.
#[derive(Debug, PartialEq)]
pub enum Begin {
    /// A new key: the caller holds its lock and must `complete` it.
    Fresh,
    /// A completed request with the same payload: replay it.
    Replay {
        /// The stored response status.
        status: u16,
        /// The stored response body.
        body: String,
        /// How old the key is.
        age: Duration,
    },
    /// The key was used with a different payload.
    Conflict {
        /// How old the key is.
        age: Duration,
    },
    /// The first request with this key is still running.
    InFlight {
        /// How long it has been running.
        age: Duration,
    },
    /// The first request's lock outlived the lock TTL (its worker died): the caller
    /// now holds the lock and must `complete` it.
    Recovered {
        /// How old the abandoned lock was.
        lock_age: Duration,
    },
}

#[derive(Debug)]
enum State {
    Locked { since: SystemTime },
    Done { status: u16, body: String },
}

#[derive(Debug)]
struct Entry {
    fingerprint: u64,
    created: SystemTime,
    state: State,
}

#[derive(Debug, Default)]
struct Inner {
    keys: HashMap<String, Entry>,
    key_order: VecDeque<(SystemTime, String)>,
    fingerprints: HashMap<u64, SystemTime>,
    fingerprint_order: VecDeque<(SystemTime, u64)>,
}

/// Keys and fingerprints, bounded in time and in count.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    lock_ttl: Duration,
    key_ttl: Duration,
    fingerprint_window: Duration,
    max_keys: usize,
}

impl Store {
    /// A store whose locks go stale after `lock_ttl`.
    pub fn new(lock_ttl: Duration) -> Self {
        Store {
            inner: Mutex::default(),
            lock_ttl,
            key_ttl: Duration::from_secs(24 * 3600),
            fingerprint_window: Duration::from_secs(10),
            max_keys: 1_000_000,
        }
    }

    fn expire(&self, inner: &mut Inner, now: SystemTime) {
        while let Some((at, _)) = inner.key_order.front() {
            if key_age(*at, now) < self.key_ttl && inner.keys.len() <= self.max_keys {
                break;
            }
            if let Some((_, key)) = inner.key_order.pop_front() {
                inner.keys.remove(&key);
            }
        }
        while let Some((at, _)) = inner.fingerprint_order.front() {
            if key_age(*at, now) < self.fingerprint_window {
                break;
            }
            if let Some((at, fp)) = inner.fingerprint_order.pop_front() {
                if inner.fingerprints.get(&fp) == Some(&at) {
                    inner.fingerprints.remove(&fp);
                }
            }
        }
    }

    /// Looks `key` up for a request whose payload has `fingerprint`, taking its lock
    /// when the request should run.
    pub fn begin(&self, key: &str, fingerprint: u64, now: SystemTime) -> Begin {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        self.expire(&mut inner, now);
        let Some(entry) = inner.keys.get_mut(key) else {
            inner.keys.insert(
                key.to_owned(),
                Entry {
                    fingerprint,
                    created: now,
                    state: State::Locked { since: now },
                },
            );
            inner.key_order.push_back((now, key.to_owned()));
            return Begin::Fresh;
        };
        let age = key_age(entry.created, now);
        match &entry.state {
            State::Locked { since } => {
                let lock_age = key_age(*since, now);
                if lock_age >= self.lock_ttl {
                    entry.state = State::Locked { since: now };
                    entry.fingerprint = fingerprint;
                    Begin::Recovered { lock_age }
                } else {
                    Begin::InFlight { age: lock_age }
                }
            }
            State::Done { .. } if entry.fingerprint != fingerprint => Begin::Conflict { age },
            State::Done { status, body } => Begin::Replay {
                status: *status,
                body: body.clone(),
                age,
            },
        }
    }

    /// Stores the response of the request holding `key`'s lock.
    pub fn complete(&self, key: &str, status: u16, body: String) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = inner.keys.get_mut(key) {
            entry.state = State::Done { status, body };
        }
    }

    /// Whether a keyless request with `fingerprint` was seen within the window;
    /// remembers it either way.
    pub fn seen_recently(&self, fingerprint: u64, now: SystemTime) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        self.expire(&mut inner, now);
        let seen = inner.fingerprints.insert(fingerprint, now).is_some();
        inner.fingerprint_order.push_back((now, fingerprint));
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_walks_through_every_state() {
        let store = Store::new(Duration::from_secs(1));
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(store.begin("k", 1, t0), Begin::Fresh);
        assert_eq!(
            store.begin("k", 1, at(200)),
            Begin::InFlight {
                age: Duration::from_millis(200)
            }
        );
        assert_eq!(
            store.begin("k", 1, at(1500)),
            Begin::Recovered {
                lock_age: Duration::from_millis(1500)
            }
        );
        store.complete("k", 201, "ok".into());
        assert_eq!(
            store.begin("k", 1, at(3000)),
            Begin::Replay {
                status: 201,
                body: "ok".into(),
                age: Duration::from_secs(3)
            }
        );
        assert_eq!(
            store.begin("k", 2, at(4000)),
            Begin::Conflict {
                age: Duration::from_secs(4)
            }
        );
        assert!(!store.seen_recently(9, t0));
        assert!(store.seen_recently(9, at(5000)));
        assert!(!store.seen_recently(9, at(16_000)), "outside the 10 s window");
    }
}
