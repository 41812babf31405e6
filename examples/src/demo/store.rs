//! The in-memory idempotency store, in two tiers like a service with a shared
//! store and a local fallback: a *primary* and a *fallback*, each one lock over a
//! map of keys, expiry in insertion order, and a short window of keyless request
//! fingerprints.
//!
//! Every operation (a lookup is a read; taking a lock, saving a response or
//! remembering a fingerprint is a write) goes to the primary unless the fault
//! injector fails it there. Then the fallback answers, with what *it* holds: a key
//! locked on one tier is unknown to the other, so a fallback can run a request
//! twice, which is why fallbacks are counted. When the injector fails both tiers
//! the operation returns a [`StoreError`] and the caller serves the request
//! without idempotency (fail-open).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use outcometer::{key_age, ErrorKind, IdempotencyMetrics, StoreOperation};

use super::rng::Rng;
use super::tally::Tally;

/// Out of every 10,000 store operations: how many fail on the primary and are
/// answered by the fallback (1.5%), and how many fail on both (0.5%).
pub const FALLBACKS_PER_10K: u64 = 150;
/// See [`FALLBACKS_PER_10K`].
pub const ERRORS_PER_10K: u64 = 50;

/// Keeps store-fault draws apart from the sink's, which share the seed.
const FAULT_SALT: u64 = 0x5702_E000;

/// No store could answer `operation`: the request goes on without idempotency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("idempotency store {operation:?} failed on primary and fallback: {kind:?}")]
pub struct StoreError {
    /// What was attempted.
    pub operation: StoreOperation,
    /// How the fallback failed.
    pub kind: ErrorKind,
}

/// Where one store operation is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The primary answers.
    None,
    /// The primary fails; the fallback answers.
    Fallback,
    /// Both fail, with this kind of error.
    Both(ErrorKind),
}

/// The fault injector: the n-th store operation fails the same way in every run
/// with the same `--seed` (which request is n-th depends on scheduling, as in a
/// real service). What it injects is tallied, so the summary and the end-to-end
/// tests can hold the exported counters against it.
#[derive(Debug)]
pub struct Faults {
    seed: u64,
    fallbacks_per_10k: u64,
    errors_per_10k: u64,
    next: AtomicU64,
    tally: Option<Arc<Tally>>,
}

impl Faults {
    /// The demo's mix ([`FALLBACKS_PER_10K`], [`ERRORS_PER_10K`]), tallied in `tally`.
    pub fn new(seed: u64, tally: Arc<Tally>) -> Self {
        Faults {
            tally: Some(tally),
            ..Faults::with_rates(seed, FALLBACKS_PER_10K, ERRORS_PER_10K)
        }
    }

    /// Another mix, untallied (tests).
    pub fn with_rates(seed: u64, fallbacks_per_10k: u64, errors_per_10k: u64) -> Self {
        Faults {
            seed,
            fallbacks_per_10k,
            errors_per_10k,
            next: AtomicU64::new(0),
            tally: None,
        }
    }

    /// Never fails.
    #[cfg(test)]
    pub fn none() -> Self {
        Faults::with_rates(0, 0, 0)
    }

    /// Where the next `operation` is answered.
    pub fn draw(&self, operation: StoreOperation) -> Fault {
        let n = self.next.fetch_add(1, Relaxed);
        let mut rng = Rng::for_item(self.seed, n, FAULT_SALT + operation.index() as u64);
        let roll = rng.below(10_000);
        let fault = if roll < self.errors_per_10k {
            // A store that is down mostly times out; some refuse, some break mid-reply.
            Fault::Both(match rng.below(100) {
                0..=59 => ErrorKind::Timeout,
                60..=84 => ErrorKind::Connect,
                _ => ErrorKind::Io,
            })
        } else if roll < self.errors_per_10k + self.fallbacks_per_10k {
            Fault::Fallback
        } else {
            Fault::None
        };
        if let Some(tally) = &self.tally {
            match fault {
                Fault::None => {}
                Fault::Fallback => {
                    tally.store_fallbacks[operation.index()].fetch_add(1, Relaxed);
                }
                Fault::Both(kind) => {
                    tally.store_errors[operation.index()][kind.index()].fetch_add(1, Relaxed);
                }
            }
        }
        fault
    }
}

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

/// How long keys, locks and fingerprints last, and how many keys a tier keeps.
#[derive(Clone, Copy, Debug)]
struct Limits {
    lock_ttl: Duration,
    key_ttl: Duration,
    fingerprint_window: Duration,
    max_keys: usize,
}

impl Inner {
    fn expire(&mut self, limits: &Limits, now: SystemTime) {
        while let Some((at, _)) = self.key_order.front() {
            if key_age(*at, now) < limits.key_ttl && self.keys.len() <= limits.max_keys {
                break;
            }
            if let Some((_, key)) = self.key_order.pop_front() {
                self.keys.remove(&key);
            }
        }
        while let Some((at, _)) = self.fingerprint_order.front() {
            if key_age(*at, now) < limits.fingerprint_window {
                break;
            }
            if let Some((at, fp)) = self.fingerprint_order.pop_front() {
                if self.fingerprints.get(&fp) == Some(&at) {
                    self.fingerprints.remove(&fp);
                }
            }
        }
    }

    /// The read: what `key` holds, or `None` when the caller should try to take
    /// its lock (no entry, or a stale lock).
    fn look_up(&mut self, limits: &Limits, key: &str, fingerprint: u64, now: SystemTime) -> Option<Begin> {
        self.expire(limits, now);
        let entry = self.keys.get(key)?;
        let age = key_age(entry.created, now);
        match &entry.state {
            State::Locked { since } => {
                let lock_age = key_age(*since, now);
                (lock_age < limits.lock_ttl).then_some(Begin::InFlight { age: lock_age })
            }
            State::Done { .. } if entry.fingerprint != fingerprint => Some(Begin::Conflict { age }),
            State::Done { status, body } => Some(Begin::Replay {
                status: *status,
                body: body.clone(),
                age,
            }),
        }
    }

    /// The write: takes `key`'s lock if it is free or stale, like `SET NX`, and
    /// otherwise reports what holds it (another request may have come in since the read).
    fn take_lock(&mut self, limits: &Limits, key: &str, fingerprint: u64, now: SystemTime) -> Begin {
        self.expire(limits, now);
        let Some(entry) = self.keys.get_mut(key) else {
            self.keys.insert(
                key.to_owned(),
                Entry {
                    fingerprint,
                    created: now,
                    state: State::Locked { since: now },
                },
            );
            self.key_order.push_back((now, key.to_owned()));
            return Begin::Fresh;
        };
        let age = key_age(entry.created, now);
        match &entry.state {
            State::Locked { since } => {
                let lock_age = key_age(*since, now);
                if lock_age >= limits.lock_ttl {
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

    /// The write of a response: sets `key` to done, creating the entry when this
    /// tier never saw the lock (it was taken on the other tier).
    fn save(&mut self, key: &str, fingerprint: u64, created: SystemTime, status: u16, body: String) {
        let state = State::Done { status, body };
        if let Some(entry) = self.keys.get_mut(key) {
            entry.state = state;
            return;
        }
        self.keys.insert(
            key.to_owned(),
            Entry {
                fingerprint,
                created,
                state,
            },
        );
        self.key_order.push_back((created, key.to_owned()));
    }
}

/// Keys and fingerprints on two tiers, bounded in time and in count.
pub struct Store {
    primary: Mutex<Inner>,
    fallback: Mutex<Inner>,
    limits: Limits,
    faults: Faults,
    health: Arc<dyn IdempotencyMetrics>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("limits", &self.limits)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store whose locks go stale after `lock_ttl`, failing as `faults` says and
    /// recording each fallback on `health`.
    pub fn new(lock_ttl: Duration, faults: Faults, health: Arc<dyn IdempotencyMetrics>) -> Self {
        Store {
            primary: Mutex::default(),
            fallback: Mutex::default(),
            limits: Limits {
                lock_ttl,
                key_ttl: Duration::from_secs(24 * 3600),
                fingerprint_window: Duration::from_secs(10),
                max_keys: 1_000_000,
            },
            faults,
            health,
        }
    }

    /// The tier that answers the next `operation`, or the error when none does.
    fn tier(&self, operation: StoreOperation) -> Result<MutexGuard<'_, Inner>, StoreError> {
        let tier = match self.faults.draw(operation) {
            Fault::None => &self.primary,
            Fault::Fallback => {
                self.health.record_store_fallback(operation);
                &self.fallback
            }
            Fault::Both(kind) => return Err(StoreError { operation, kind }),
        };
        Ok(tier.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Looks `key` up for a request whose payload has `fingerprint` (a read), and
    /// takes its lock when the request should run (a write).
    pub fn begin(&self, key: &str, fingerprint: u64, now: SystemTime) -> Result<Begin, StoreError> {
        let found = self
            .tier(StoreOperation::Read)?
            .look_up(&self.limits, key, fingerprint, now);
        if let Some(found) = found {
            return Ok(found);
        }
        let mut tier = self.tier(StoreOperation::Write)?;
        Ok(tier.take_lock(&self.limits, key, fingerprint, now))
    }

    /// Stores the response of the request holding `key`'s lock since `started` (a write).
    pub fn complete(
        &self,
        key: &str,
        fingerprint: u64,
        started: SystemTime,
        status: u16,
        body: String,
    ) -> Result<(), StoreError> {
        self.tier(StoreOperation::Write)?
            .save(key, fingerprint, started, status, body);
        Ok(())
    }

    /// Whether a keyless request with `fingerprint` was seen within the window (a
    /// read); remembers it when it was not (a write).
    pub fn seen_recently(&self, fingerprint: u64, now: SystemTime) -> Result<bool, StoreError> {
        let seen = {
            let mut tier = self.tier(StoreOperation::Read)?;
            tier.expire(&self.limits, now);
            tier.fingerprints.contains_key(&fingerprint)
        };
        if !seen {
            let mut tier = self.tier(StoreOperation::Write)?;
            tier.expire(&self.limits, now);
            tier.fingerprints.insert(fingerprint, now);
            tier.fingerprint_order.push_back((now, fingerprint));
        }
        Ok(seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outcometer::{IdempotencyRecorder, NoopIdempotencyMetrics};

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
    }

    #[test]
    fn a_key_walks_through_every_state() {
        let store = Store::new(
            Duration::from_secs(1),
            Faults::none(),
            Arc::new(NoopIdempotencyMetrics),
        );
        let t0 = t0();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(store.begin("k", 1, t0), Ok(Begin::Fresh));
        assert_eq!(
            store.begin("k", 1, at(200)),
            Ok(Begin::InFlight {
                age: Duration::from_millis(200)
            })
        );
        assert_eq!(
            store.begin("k", 1, at(1500)),
            Ok(Begin::Recovered {
                lock_age: Duration::from_millis(1500)
            })
        );
        assert_eq!(store.complete("k", 1, t0, 201, "ok".into()), Ok(()));
        assert_eq!(
            store.begin("k", 1, at(3000)),
            Ok(Begin::Replay {
                status: 201,
                body: "ok".into(),
                age: Duration::from_secs(3)
            })
        );
        assert_eq!(
            store.begin("k", 2, at(4000)),
            Ok(Begin::Conflict {
                age: Duration::from_secs(4)
            })
        );
        assert_eq!(store.seen_recently(9, t0), Ok(false));
        assert_eq!(store.seen_recently(9, at(5000)), Ok(true));
        assert_eq!(
            store.seen_recently(9, at(16_000)),
            Ok(false),
            "outside the 10 s window"
        );
    }

    #[test]
    fn the_fault_mix_is_about_two_percent_and_repeats_for_a_seed() {
        let draw = |seed| {
            let faults = Faults::with_rates(seed, FALLBACKS_PER_10K, ERRORS_PER_10K);
            (0..100_000)
                .map(|n| faults.draw(StoreOperation::ALL[n % 2]))
                .collect::<Vec<_>>()
        };
        let faults = draw(42);
        assert_eq!(faults, draw(42));
        assert_ne!(faults, draw(43));
        let fallbacks = faults.iter().filter(|f| **f == Fault::Fallback).count();
        let errors: Vec<ErrorKind> = faults
            .iter()
            .filter_map(|f| match f {
                Fault::Both(kind) => Some(*kind),
                _ => None,
            })
            .collect();
        assert!((1_300..1_700).contains(&fallbacks), "{fallbacks}");
        assert!((400..600).contains(&errors.len()), "{}", errors.len());
        for kind in [ErrorKind::Timeout, ErrorKind::Connect, ErrorKind::Io] {
            assert!(errors.contains(&kind), "{kind:?}");
        }
    }

    #[test]
    fn a_fallback_is_answered_by_the_other_tier_and_recorded() {
        let recorder = IdempotencyRecorder::builder()
            .build(&outcometer::toolkit::Detached::default())
            .expect("recorder");
        let tally = Arc::new(Tally::default());
        let always = Faults {
            tally: Some(tally.clone()),
            ..Faults::with_rates(1, 10_000, 0)
        };
        let store = Store::new(Duration::from_secs(1), always, Arc::new(recorder.clone()));
        // Taken and completed on the fallback tier: the fallback replays it...
        assert_eq!(store.begin("k", 1, t0()), Ok(Begin::Fresh));
        assert_eq!(store.complete("k", 1, t0(), 201, "ok".into()), Ok(()));
        assert!(matches!(store.begin("k", 1, t0()), Ok(Begin::Replay { .. })));
        // ...and the primary never saw it.
        let primary = store.primary.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(primary.keys.is_empty());
        assert_eq!(store.fallback.lock().map(|f| f.keys.len()).ok(), Some(1));
        drop(primary);
        // read + lock write, response write, read.
        assert_eq!(recorder.store_fallbacks(StoreOperation::Read), 2);
        assert_eq!(recorder.store_fallbacks(StoreOperation::Write), 2);
        let seen = tally.snapshot(Duration::ZERO, 0);
        assert_eq!(seen.store_fallbacks_of(StoreOperation::Read), 2);
        assert_eq!(seen.store_fallbacks(), 4);
    }

    #[test]
    fn when_both_tiers_fail_the_operation_errs_and_stores_nothing() {
        let store = Store::new(
            Duration::from_secs(1),
            Faults::with_rates(1, 0, 10_000),
            Arc::new(NoopIdempotencyMetrics),
        );
        let err = store.begin("k", 1, t0()).expect_err("both tiers down");
        assert_eq!(err.operation, StoreOperation::Read);
        assert!(matches!(
            err.kind,
            ErrorKind::Timeout | ErrorKind::Connect | ErrorKind::Io
        ));
        assert!(store.seen_recently(7, t0()).is_err());
        for tier in [&store.primary, &store.fallback] {
            let tier = tier.lock().unwrap_or_else(PoisonError::into_inner);
            assert!(tier.keys.is_empty() && tier.fingerprints.is_empty());
        }
    }
}
