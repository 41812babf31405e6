//! Key age at reuse, bucketed on the edges operators reason in (under a minute, minutes, hours, a day):
//! immediate retry, client back-off, session recovery, tab refresh, same-day
//! return, next-day retry, and past a 24-hour TTL.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

crate::closed_set! {
    /// How old an idempotency key was when it was seen again.
    ///
    /// Buckets are half-open `[lower, upper)`: 59.9 s is `0-1m`, 60 s is `1-5m`.
    pub enum AgeBucket: "age_bucket" {
        /// Under one minute: an immediate retry.
        UnderOneMinute = "0-1m",
        /// One to five minutes: client back-off.
        OneToFiveMinutes = "1-5m",
        /// Five to thirty minutes: session recovery.
        FiveToThirtyMinutes = "5-30m",
        /// Thirty minutes to two hours.
        ThirtyMinutesToTwoHours = "30m-2h",
        /// Two to six hours: same-day return.
        TwoToSixHours = "2h-6h",
        /// Six to twenty-four hours: next-day retry.
        SixToTwentyFourHours = "6h-24h",
        /// Twenty-four hours or more: beyond the usual key TTL.
        OverTwentyFourHours = ">24h",
        /// No prior key (a miss), or its age is unknown.
        NotApplicable = "n/a",
    }
}

/// Upper edges of the age buckets in whole seconds; the record path compares
/// against these, with no float conversion.
const AGE_BUCKET_EDGES_SECS: [u64; 6] = [60, 300, 1800, 7200, 21600, 86400];

/// The same edges as `f64`: the key-age histogram's boundaries.
pub const AGE_BUCKET_EDGES_SECONDS: [f64; 6] = {
    let mut edges = [0.0; 6];
    let mut i = 0;
    while i < edges.len() {
        edges[i] = AGE_BUCKET_EDGES_SECS[i] as f64;
        i += 1;
    }
    edges
};

impl AgeBucket {
    /// The bucket of a key that is `age` old.
    #[inline]
    pub fn from_age(age: Duration) -> AgeBucket {
        const BUCKETS: [AgeBucket; 7] = [
            AgeBucket::UnderOneMinute,
            AgeBucket::OneToFiveMinutes,
            AgeBucket::FiveToThirtyMinutes,
            AgeBucket::ThirtyMinutesToTwoHours,
            AgeBucket::TwoToSixHours,
            AgeBucket::SixToTwentyFourHours,
            AgeBucket::OverTwentyFourHours,
        ];
        // Branch-free: the number of edges at or below the age is the bucket.
        let secs = age.as_secs();
        let passed: usize = AGE_BUCKET_EDGES_SECS
            .iter()
            .map(|&edge| usize::from(secs >= edge))
            .sum();
        BUCKETS[passed.min(BUCKETS.len() - 1)]
    }

    /// The bucket of a key created at `created_at`, seen at `now`.
    /// A `created_at` in the future (clock skew between replicas) counts as `0-1m`.
    pub fn from_timestamps(created_at: SystemTime, now: SystemTime) -> AgeBucket {
        AgeBucket::from_age(key_age(created_at, now))
    }
}

/// The age of a key created at `created_at`, seen at `now`; zero when `created_at`
/// is in the future.
pub fn key_age(created_at: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(created_at).unwrap_or(Duration::ZERO)
}

/// A source of the current time, injectable so tests of key ages are exact.
pub trait Clock: Send + Sync {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that stands still until told to move; for tests.
#[derive(Debug)]
pub struct ManualClock {
    nanos_since_epoch: AtomicI64,
}

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: SystemTime) -> Self {
        let clock = ManualClock {
            nanos_since_epoch: AtomicI64::new(0),
        };
        clock.set(at);
        clock
    }

    /// Shows `at` from now on (clamped to the years 1678–2262 that fit in i64 nanoseconds).
    pub fn set(&self, at: SystemTime) {
        let nanos = match at.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
        };
        self.nanos_since_epoch.store(nanos, Ordering::Relaxed);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let add = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        let _ = self
            .nanos_since_epoch
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(add))
            });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        let nanos = self.nanos_since_epoch.load(Ordering::Relaxed);
        let magnitude = Duration::from_nanos(nanos.unsigned_abs());
        if nanos >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_are_half_open_and_match_seed_000() {
        let cases = [
            (0, "0-1m"),
            (59, "0-1m"),
            (60, "1-5m"),
            (299, "1-5m"),
            (300, "5-30m"),
            (1799, "5-30m"),
            (1800, "30m-2h"),
            (7199, "30m-2h"),
            (7200, "2h-6h"),
            (21599, "2h-6h"),
            (21600, "6h-24h"),
            (86399, "6h-24h"),
            (86400, ">24h"),
            (u64::MAX, ">24h"),
        ];
        for (secs, want) in cases {
            assert_eq!(
                AgeBucket::from_age(Duration::from_secs(secs)).as_str(),
                want,
                "{secs}s"
            );
        }
        assert_eq!(AgeBucket::ALL.len(), 8);
    }

    #[test]
    fn future_created_at_clamps_to_first_bucket() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let future = now + Duration::from_secs(3600);
        assert_eq!(AgeBucket::from_timestamps(future, now), AgeBucket::UnderOneMinute);
    }

    #[test]
    fn manual_clock_is_exact() {
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let clock = ManualClock::new(start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(
            AgeBucket::from_timestamps(start, clock.now()),
            AgeBucket::OneToFiveMinutes
        );
        let before_epoch = UNIX_EPOCH - Duration::from_secs(5);
        clock.set(before_epoch);
        assert_eq!(clock.now(), before_epoch);
    }
}
