//! The workers: take a job, run its event's handler in a task of its own (so a
//! panic costs one job, not the worker), and decide what happens to the job.
//!
//! A handler looks the customer's profile up in the cache (fetching it from the
//! profile service on a miss), runs the event's action through the action
//! decorator (a loopback HTTP call with a deadline), and on success refreshes or
//! drops the cached profile. A failed attempt goes back on its queue after a
//! backoff, up to [`MAX_ATTEMPTS`]; a rejected one (4xx) or the last one is
//! dead-lettered.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use outcometer::{
    ActionExecutor, ActionOutcome, Cache, CacheRecorder, CacheResult, DeadlineExceeded, EventOutcome,
    EventProcessingRecorder, EvictionCause, InFlightGuard, QueueOutcome,
};

use super::downstream::{self, Answer, BoxError, Client};
use super::jobs::{Job, JobQueues};
use super::lru::{Lookup, Lru};
use super::rng::Rng;
use super::source::Kind;
use super::tally::Tally;
use super::{action_name, INJECTED_PANIC};

/// Tries per event before it is dead-lettered.
pub const MAX_ATTEMPTS: u32 = 4;
/// How long into a preempted call the worker loses its lease on the job.
pub const LEASE_LOST_AFTER: Duration = Duration::from_millis(40);

/// A 4xx or 5xx answer is a failed action, though the HTTP call worked.
fn is_failure(status: &u16) -> bool {
    *status >= 400
}

/// The action deadline on the tokio timer.
fn deadline() -> tokio::time::Sleep {
    tokio::time::sleep(super::ACTION_DEADLINE)
}

/// The decorator as the workers hold it: named per action, classifying by
/// status, with a deadline.
pub type Executor = ActionExecutor<fn(&u16) -> bool, fn() -> tokio::time::Sleep>;

/// The decorator for `executor`'s action: failures by status, and the deadline.
pub fn configure(executor: ActionExecutor) -> Executor {
    executor
        .classify(is_failure as fn(&u16) -> bool)
        .deadline(deadline as fn() -> tokio::time::Sleep)
}

/// The profile cache with its recorder: every lookup, eviction and size change
/// is recorded (and tallied) under the lock that makes it.
#[derive(Debug)]
pub struct ProfileCache {
    lru: Mutex<Lru>,
    metrics: CacheRecorder,
    handle: Cache,
    tally: Arc<Tally>,
}

impl ProfileCache {
    /// `lru`, recorded on `metrics` as cache `name`.
    pub fn new(lru: Lru, metrics: CacheRecorder, name: &str, tally: Arc<Tally>) -> Self {
        ProfileCache {
            lru: Mutex::new(lru),
            handle: metrics.cache(name),
            metrics,
            tally,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn evicted(&self, cause: EvictionCause, n: u32) {
        for _ in 0..n {
            self.metrics.record_eviction_at(self.handle, cause);
        }
        self.tally.evictions[cause.index()].fetch_add(u64::from(n), Relaxed);
    }

    fn got(&self, result: CacheResult) {
        self.metrics.record_get_at(self.handle, result);
        self.tally.cache_gets[result.index()].fetch_add(1, Relaxed);
    }

    /// Looks `customer` up.
    pub fn get(&self, customer: u64) -> Option<Bytes> {
        let mut lru = self.lock();
        match lru.get(customer, Instant::now()) {
            Lookup::Hit(profile) => {
                self.got(CacheResult::Hit);
                Some(profile)
            }
            Lookup::Miss => {
                self.got(CacheResult::Miss);
                None
            }
            Lookup::Expired => {
                self.evicted(EvictionCause::Expired, 1);
                self.got(CacheResult::Miss);
                self.metrics.record_size_at(self.handle, lru.bytes() as u64);
                None
            }
        }
    }

    /// Stores `profile` for `customer`.
    pub fn put(&self, customer: u64, profile: Bytes) {
        let mut lru = self.lock();
        let evicted = lru.insert(customer, profile, Instant::now());
        self.evicted(EvictionCause::Replaced, u32::from(evicted.replaced));
        self.evicted(EvictionCause::Expired, evicted.expired);
        self.evicted(EvictionCause::Size, evicted.size);
        self.metrics.record_size_at(self.handle, lru.bytes() as u64);
    }

    /// Drops `customer`'s profile, if held.
    pub fn invalidate(&self, customer: u64) {
        let mut lru = self.lock();
        if lru.remove(customer) {
            self.evicted(EvictionCause::Explicit, 1);
            self.metrics.record_size_at(self.handle, lru.bytes() as u64);
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes() as u64
    }
}

/// Polls a future, catching a panic as an `Err` with its payload: how the
/// handler sees, from the outside, that its action panicked.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.get_mut().0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// Whether a panic payload is one of the injected ones.
pub fn is_injected(payload: &(dyn Any + Send)) -> bool {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    text.is_some_and(|t| t.starts_with(INJECTED_PANIC))
}

/// Reads an acknowledgement. It trusts the downstream too much: a body that is
/// not `ok <id>` panics, which is the bug the garbage answers reach.
fn parse_ack(body: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(body);
    match text.strip_prefix("ok ").and_then(|id| id.trim().parse().ok()) {
        Some(id) => id,
        None => panic!("{INJECTED_PANIC}: unparseable acknowledgement {text:?}"),
    }
}

/// How one attempt at a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    /// The action succeeded.
    Done,
    /// The downstream rejected the event (4xx): retrying cannot help.
    Rejected,
    /// Worth another try.
    Failed,
}

/// What every worker shares.
#[derive(Debug)]
pub struct Workers {
    /// The queues they serve.
    pub queues: Arc<JobQueues>,
    /// Event processing metrics.
    pub events: EventProcessingRecorder,
    /// The profile cache.
    pub cache: ProfileCache,
    /// One decorator per action label.
    pub executors: Vec<Executor>,
    /// Action index → its decorator.
    pub executor_of: Vec<u32>,
    /// The downstream services.
    pub client: Client,
    /// What they saw.
    pub tally: Arc<Tally>,
    /// Seed of the faults.
    pub seed: u64,
}

/// Decrements the tally's in-flight count when dropped, panics included.
struct TallyInFlight(Arc<Tally>);

impl TallyInFlight {
    fn new(tally: &Arc<Tally>) -> Self {
        tally.in_flight.fetch_add(1, Relaxed);
        TallyInFlight(tally.clone())
    }
}

impl Drop for TallyInFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

impl Workers {
    /// Serves jobs until the queues close.
    pub async fn work(self: Arc<Self>) {
        while let Some(job) = self.queues.pop().await {
            self.process(job).await;
        }
    }

    async fn process(self: &Arc<Self>, job: Job) {
        let span = tracing::info_span!(
            "pipeline.job",
            event.id = job.event.id,
            event.kind = job.event.kind.as_str(),
            queue = job.event.queue,
            attempt = job.attempt,
            outcome = tracing::field::Empty,
        );
        tracing::Instrument::instrument(self.process_in_span(job), span).await;
    }

    async fn process_in_span(self: &Arc<Self>, job: Job) {
        let started = Instant::now();
        let guards = (self.events.track_in_flight(), TallyInFlight::new(&self.tally));
        let handled = tracing::Instrument::in_current_span(self.clone().handle(job.clone(), guards));
        let attempt = match tokio::spawn(handled).await {
            Ok(attempt) => attempt,
            Err(error) => {
                if let Ok(panic) = error.try_into_panic() {
                    if !is_injected(panic.as_ref()) {
                        self.tally.unexpected_panics.fetch_add(1, Relaxed);
                    }
                }
                Attempt::Failed
            }
        };
        let elapsed = started.elapsed();
        let outcome = match attempt {
            Attempt::Done => EventOutcome::Success,
            _ => EventOutcome::Failure,
        };
        self.events.record(outcome, elapsed);
        self.tally.events[outcome.index()].fetch_add(1, Relaxed);
        self.tally.event_latency.record(elapsed);
        let span = tracing::Span::current();
        match attempt {
            Attempt::Done => {
                span.record("outcome", "success");
                self.finish(&job, QueueOutcome::Success)
            }
            Attempt::Failed if job.attempt < MAX_ATTEMPTS => {
                span.record("outcome", "retry");
                self.retry(job)
            }
            _ => {
                span.record("outcome", "dead_letter");
                tracing::warn!("job dead-lettered");
                self.finish(&job, QueueOutcome::DeadLetter)
            }
        }
    }

    fn finish(&self, job: &Job, outcome: QueueOutcome) {
        self.queues.processed(job, outcome);
        self.tally.outstanding.fetch_sub(1, Relaxed);
    }

    /// Back on the queue after 40 ms × 2^(attempt − 1), plus up to 20 ms of jitter.
    fn retry(&self, mut job: Job) {
        self.queues.processed(&job, QueueOutcome::Retry);
        let mut rng = Rng::for_item(self.seed, job.event.id, 0xBAC0 + u64::from(job.attempt));
        let backoff = Duration::from_millis((40 << (job.attempt - 1)) + rng.below(20));
        job.attempt += 1;
        let queues = self.queues.clone();
        tokio::spawn(async move {
            tokio::time::sleep(backoff).await;
            queues.push(job);
        });
    }

    /// One attempt, in a task of its own. The in-flight guards move in and drop
    /// when it ends, however it ends.
    async fn handle(self: Arc<Self>, job: Job, _in_flight: (InFlightGuard, TallyInFlight)) -> Attempt {
        let event = &job.event;
        if self.cache.get(event.customer).is_none() {
            match self.client.profile(event.customer).await {
                Ok(profile) => self.cache.put(event.customer, profile),
                Err(_) => return Attempt::Failed,
            }
        }
        let attempt = self.act(&job).await;
        if attempt == Attempt::Done {
            match event.kind {
                Kind::Created => {}
                Kind::Updated => self.cache.put(event.customer, downstream::profile(event.id)),
                Kind::Deleted => self.cache.invalidate(event.customer),
            }
        }
        attempt
    }

    /// Runs the event's action through its decorator, and tallies how it ended
    /// as the caller sees it.
    async fn act(&self, job: &Job) -> Attempt {
        let event = &job.event;
        let executor = &self.executors[self.executor_of[event.action as usize] as usize];
        let name = action_name(event.action);
        let client = &self.client;
        let started = Instant::now();
        let run = CatchUnwind(Box::pin(executor.run(async move {
            let (status, body) = client
                .action(&name, event.id, job.attempt, event.payload.clone())
                .await?;
            if status == 200 {
                parse_ack(&body);
            }
            Ok::<u16, BoxError>(status)
        })));
        let preempted = downstream::answer(self.seed, event.id, job.attempt) == Answer::Preempted;
        let ended = if preempted {
            tokio::select! {
                biased;
                ended = run => Some(ended),
                // The lease is lost: the running action is dropped unfinished.
                _ = tokio::time::sleep(LEASE_LOST_AFTER) => None,
            }
        } else {
            Some(run.await)
        };
        let (outcome, attempt, panic) = match ended {
            None => (ActionOutcome::Cancelled, Attempt::Failed, None),
            Some(Err(panic)) => (ActionOutcome::Panic, Attempt::Failed, Some(panic)),
            Some(Ok(Ok(status))) if (400..500).contains(&status) => {
                (ActionOutcome::Failure, Attempt::Rejected, None)
            }
            Some(Ok(Ok(status))) if is_failure(&status) => (ActionOutcome::Failure, Attempt::Failed, None),
            Some(Ok(Ok(_))) => (ActionOutcome::Success, Attempt::Done, None),
            Some(Ok(Err(e))) if e.is::<DeadlineExceeded>() => (ActionOutcome::Timeout, Attempt::Failed, None),
            Some(Ok(Err(_))) => (ActionOutcome::Failure, Attempt::Failed, None),
        };
        self.tally.action_latency.record(started.elapsed());
        self.tally.actions[outcome.index()].fetch_add(1, Relaxed);
        if let Some(panic) = panic {
            // As the decorator does: counted, then the panic goes on unwinding.
            resume_unwind(panic);
        }
        attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_parse_or_panic_with_the_marker() {
        assert_eq!(parse_ack(b"ok 42"), 42);
        let panic = catch_unwind(|| parse_ack(b"<html>")).unwrap_err();
        assert!(is_injected(panic.as_ref()));
        assert!(!is_injected(&"something else"));
        assert!(is_failure(&503) && is_failure(&422) && !is_failure(&200));
    }
}
