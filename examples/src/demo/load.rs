//! The load generator: drives the API at a fixed rate with a seeded mix of
//! scenarios, each of which should produce a known idempotency outcome, and
//! tallies the outcome the server reports.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use outcometer::IdempotencyOutcome;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::api::{CRASH_HEADER, OUTCOME_HEADER};
use super::pool::ConnectionPool;
use super::rng::Rng;
use super::tally::Tally;

/// Keys remembered for replays and conflicts.
const REMEMBERED_KEYS: usize = 4096;
/// How long the generator waits for one API response.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One planned interaction with the API.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scenario {
    /// A new key: `miss`.
    NewKey,
    /// The same request again: `hit`.
    Replay,
    /// A used key with another payload: `conflict`.
    ConflictingReuse,
    /// Two requests with one new key, the second while the first runs: `miss` + `in_flight`.
    ConcurrentDuplicate,
    /// The first request's worker dies holding the lock; the client retries after the
    /// lock TTL: `miss` + `stale_lock_recovered`.
    CrashThenRetry,
    /// The same keyless request twice: `miss` + `fingerprint_duplicate`.
    KeylessDuplicate,
    /// A keyless request: `miss`.
    Keyless,
}

impl Scenario {
    /// Draws a scenario: per thousand, 580 new keys, 150 replays, 50 conflicts,
    /// 60 concurrent duplicates, 20 crashes, 40 keyless duplicates, 100 keyless.
    pub fn draw(rng: &mut Rng) -> Scenario {
        match rng.below(1000) {
            0..=579 => Scenario::NewKey,
            580..=729 => Scenario::Replay,
            730..=779 => Scenario::ConflictingReuse,
            780..=839 => Scenario::ConcurrentDuplicate,
            840..=859 => Scenario::CrashThenRetry,
            860..=899 => Scenario::KeylessDuplicate,
            _ => Scenario::Keyless,
        }
    }
}

#[derive(Clone, Debug)]
struct Order {
    key: Option<String>,
    user: String,
    body: String,
}

/// Drives the API.
#[derive(Debug)]
pub struct LoadGenerator {
    /// Connections to the API.
    pub api: Arc<ConnectionPool>,
    /// Where responses are tallied.
    pub tally: Arc<Tally>,
    /// Requests per second.
    pub rate: u32,
    /// Distinct users.
    pub users: u64,
    /// Webhook hosts, and the index of the unreachable one.
    pub hooks: (usize, Option<usize>),
    /// Scenario seed.
    pub seed: u64,
    /// The API's stale-lock TTL: crash retries wait a little longer.
    pub lock_ttl: Duration,
}

impl LoadGenerator {
    /// Runs until `duration` has passed or `stop` turns true, then waits for every
    /// request it started (crash retries included).
    pub async fn run(self: Arc<Self>, duration: Duration, mut stop: watch::Receiver<bool>) {
        let mut rng = Rng::new(self.seed);
        let completed: Arc<Mutex<VecDeque<Order>>> = Arc::default();
        let mut tasks = JoinSet::new();
        let started = Instant::now();
        let mut launched: u64 = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            let elapsed = started.elapsed().min(duration);
            let due = (elapsed.as_secs_f64() * f64::from(self.rate)) as u64;
            // After a stall (a slow machine), catch up by at most a second's worth.
            let burst = due.saturating_sub(launched).min(u64::from(self.rate));
            for _ in 0..burst {
                let scenario = Scenario::draw(&mut rng);
                let order = self.order(&mut rng, launched);
                let replayed = {
                    let remembered = completed.lock().unwrap_or_else(PoisonError::into_inner);
                    let len = remembered.len() as u64;
                    (len > 0).then(|| remembered[rng.below(len) as usize].clone())
                };
                tasks.spawn(self.clone().play(scenario, order, replayed, completed.clone()));
                launched += 1;
            }
            while tasks.try_join_next().is_some() {}
            if elapsed >= duration {
                break;
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    fn order(&self, rng: &mut Rng, n: u64) -> Order {
        let user = format!("user-{}", rng.below(self.users));
        let (count, unreachable) = self.hooks;
        let hook = match unreachable {
            Some(down) if rng.below(1000) < 50 => down,
            Some(_) => rng.below(count as u64 - 1) as usize,
            None => rng.below(count as u64) as usize,
        };
        let amount = rng.between(100, 99_999);
        Order {
            key: Some(format!("key-{}-{n}", self.seed)),
            body: format!("user={user}&amount={amount}&hook={hook}&n={n}"),
            user,
        }
    }

    async fn play(
        self: Arc<Self>,
        scenario: Scenario,
        order: Order,
        replayed: Option<Order>,
        completed: Arc<Mutex<VecDeque<Order>>>,
    ) {
        let remember = |order: &Order| {
            let mut remembered = completed.lock().unwrap_or_else(PoisonError::into_inner);
            if remembered.len() == REMEMBERED_KEYS {
                remembered.pop_front();
            }
            remembered.push_back(order.clone());
        };
        let keyless = Order {
            key: None,
            ..order.clone()
        };
        match (scenario, replayed) {
            (Scenario::Replay, Some(previous)) => self.post(&previous, false).await,
            (Scenario::ConflictingReuse, Some(previous)) => {
                let changed = Order {
                    body: format!("{}&changed=1", previous.body),
                    ..previous
                };
                self.post(&changed, false).await
            }
            (Scenario::ConcurrentDuplicate, _) => {
                let first = self.clone();
                let original = order.clone();
                let first = tokio::spawn(async move { first.post(&original, false).await });
                tokio::time::sleep(Duration::from_millis(1)).await;
                self.post(&order, false).await;
                let _ = first.await;
            }
            (Scenario::CrashThenRetry, _) => {
                self.post(&order, true).await;
                tokio::time::sleep(self.lock_ttl + Duration::from_millis(250)).await;
                self.post(&order, false).await;
                remember(&order);
            }
            (Scenario::KeylessDuplicate, _) => {
                self.post(&keyless, false).await;
                self.post(&keyless, false).await;
            }
            (Scenario::Keyless, _) => self.post(&keyless, false).await,
            // New keys, and replays or conflicts before any key has completed.
            _ => {
                self.post(&order, false).await;
                remember(&order);
            }
        }
    }

    async fn post(&self, order: &Order, crash: bool) {
        let mut request = Request::post("/orders")
            .header("host", "api.demo.test")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-user-id", &order.user);
        if let Some(key) = &order.key {
            request = request.header("idempotency-key", key);
        }
        if crash {
            request = request.header(CRASH_HEADER, "1");
        }
        let Ok(request) = request.body(Full::new(Bytes::from(order.body.clone()))) else {
            self.tally.unexpected.fetch_add(1, Relaxed);
            return;
        };
        let reply = tokio::time::timeout(REQUEST_TIMEOUT, self.api.send(request)).await;
        let outcome = match &reply {
            Ok(Ok(reply)) => reply
                .headers
                .get(OUTCOME_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| IdempotencyOutcome::ALL.iter().find(|o| o.as_str() == v)),
            _ => None,
        };
        match (outcome, reply) {
            (Some(outcome), _) => self.tally.outcomes[outcome.index()].fetch_add(1, Relaxed),
            // The server took the lock (a miss) and then "died": no response to read.
            (None, Ok(Err(_))) if crash => {
                self.tally.outcomes[IdempotencyOutcome::Miss.index()].fetch_add(1, Relaxed);
                self.tally.crashed.fetch_add(1, Relaxed)
            }
            _ => self.tally.unexpected.fetch_add(1, Relaxed),
        };
    }
}
