//! The job queue: named FIFO queues served round-robin to worker tasks, with its
//! gauges kept for real: each queue label's depth and the enqueue instant of its
//! oldest waiting job are set under the same lock that changes them.
//!
//! Queue names beyond the admission bound share the `_OTHER` label, so the
//! gauges are kept per *label*, not per name: the depth of `_OTHER` is the sum
//! over every folded queue, and its oldest job is the oldest among them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use outcometer::{Queue, QueueOutcome, QueueRecorder};
use tokio::sync::Semaphore;

use super::source::Event;
use super::tally::Tally;

/// One unit of work: an event, on its `attempt`-th try.
#[derive(Clone, Debug)]
pub struct Job {
    /// The event.
    pub event: Event,
    /// 1 for the first try.
    pub attempt: u32,
    /// When it was (last) put on its queue.
    pub enqueued_at: Instant,
    seq: u64,
}

impl Job {
    /// A job for the first try of `event`.
    pub fn new(event: Event) -> Job {
        Job {
            event,
            attempt: 1,
            enqueued_at: Instant::now(),
            seq: 0,
        }
    }
}

#[derive(Debug)]
struct Label {
    handle: Queue,
    /// Waiting jobs by enqueue sequence: the first is the oldest.
    waiting: BTreeMap<u64, Instant>,
}

#[derive(Debug, Default)]
struct State {
    /// Non-empty queues by index.
    queues: HashMap<u32, VecDeque<Job>>,
    /// Queues with waiting jobs, in serving order.
    ready: VecDeque<u32>,
    labels: Vec<Label>,
    next_seq: u64,
    depth: u64,
}

/// Queue names resolved to their labels once, at start-up.
#[derive(Debug)]
pub struct Labels {
    handles: Vec<Queue>,
    label_of: Vec<u32>,
}

impl Labels {
    /// Labels for `count` queue names on `metrics`, each resolved once and in
    /// order; `capacity` is how many names the admission keeps.
    pub fn for_queues(metrics: &QueueRecorder, count: u32, capacity: usize) -> (Labels, super::tally::Names) {
        let (handles, label_of, names) = super::resolve_names(
            count,
            super::queue_name,
            |name| metrics.queue(name),
            |a, b| a == b,
            capacity,
        );
        (Labels { handles, label_of }, names)
    }
}

/// The queues, shared by the reader that fills them and the workers that empty them.
#[derive(Debug)]
pub struct JobQueues {
    state: Mutex<State>,
    label_of: Vec<u32>,
    available: Semaphore,
    metrics: QueueRecorder,
    tally: Arc<Tally>,
}

impl JobQueues {
    /// Empty queues recording on `metrics`.
    pub fn new(labels: Labels, metrics: QueueRecorder, tally: Arc<Tally>) -> Self {
        let state = State {
            labels: labels
                .handles
                .iter()
                .map(|&handle| Label {
                    handle,
                    waiting: BTreeMap::new(),
                })
                .collect(),
            ..State::default()
        };
        JobQueues {
            state: Mutex::new(state),
            label_of: labels.label_of,
            available: Semaphore::new(0),
            metrics,
            tally,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the label's gauges from the state, under the lock.
    fn gauges(&self, state: &State, label: usize) {
        let label = &state.labels[label];
        self.metrics
            .record_depth_at(label.handle, label.waiting.len() as u64);
        self.metrics
            .record_oldest_enqueued_at(label.handle, label.waiting.values().next().copied());
    }

    /// Puts `job` on its event's queue.
    pub fn push(&self, mut job: Job) {
        let queue = job.event.queue;
        let label = self.label_of[queue as usize] as usize;
        {
            let mut state = self.lock();
            job.seq = state.next_seq;
            state.next_seq += 1;
            job.enqueued_at = Instant::now();
            state.labels[label].waiting.insert(job.seq, job.enqueued_at);
            let jobs = state.queues.entry(queue).or_default();
            jobs.push_back(job);
            if jobs.len() == 1 {
                state.ready.push_back(queue);
            }
            state.depth += 1;
            self.tally.max_depth.fetch_max(state.depth, Relaxed);
            self.tally.enqueued.fetch_add(1, Relaxed);
            self.metrics.record_enqueued_at(state.labels[label].handle);
            self.gauges(&state, label);
        }
        self.available.add_permits(1);
    }

    /// Waits for a job; `None` once the queues are closed.
    pub async fn pop(&self) -> Option<Job> {
        self.available.acquire().await.ok()?.forget();
        let mut state = self.lock();
        let queue = state.ready.pop_front()?;
        let jobs = state.queues.get_mut(&queue)?;
        let job = jobs.pop_front()?;
        if jobs.is_empty() {
            state.queues.remove(&queue);
        } else {
            state.ready.push_back(queue);
        }
        let label = self.label_of[queue as usize] as usize;
        state.labels[label].waiting.remove(&job.seq);
        state.depth -= 1;
        let wait = job.enqueued_at.elapsed();
        let micros = u64::try_from(wait.as_micros()).unwrap_or(u64::MAX);
        self.tally.max_wait_micros.fetch_max(micros, Relaxed);
        self.metrics.record_wait_at(state.labels[label].handle, wait);
        self.gauges(&state, label);
        Some(job)
    }

    /// Records how the job taken off its queue left it.
    pub fn processed(&self, job: &Job, outcome: QueueOutcome) {
        let label = self.label_of[job.event.queue as usize] as usize;
        let handle = self.lock().labels[label].handle;
        self.metrics.record_processed_at(handle, outcome);
        self.tally.processed[outcome.index()].fetch_add(1, Relaxed);
    }

    /// Jobs waiting and the oldest one's age.
    pub fn holding(&self) -> (u64, Duration) {
        let state = self.lock();
        let oldest = state
            .labels
            .iter()
            .filter_map(|l| l.waiting.values().next())
            .min()
            .map_or(Duration::ZERO, |at| at.elapsed());
        (state.depth, oldest)
    }

    /// Wakes every waiting worker with `None`: no more jobs.
    pub fn close(&self) {
        self.available.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::source::Kind;
    use bytes::Bytes;
    use outcometer::toolkit::{Detached, Registry};
    use outcometer::AdmissionPolicy;

    fn event(id: u64, queue: u32) -> Event {
        Event {
            id,
            customer: 0,
            kind: Kind::Created,
            queue,
            action: 0,
            payload: Bytes::new(),
        }
    }

    #[tokio::test]
    async fn folded_queues_share_their_label_gauges() {
        let backend = Detached::with_registry(Registry::new("t").unwrap());
        let metrics = QueueRecorder::builder()
            .queues(AdmissionPolicy::first_k(2))
            .build(&backend)
            .unwrap();
        let (labels, names) = Labels::for_queues(&metrics, 5, 2);
        assert_eq!((names.given, names.labels, names.folded), (5, 3, 3));
        let tally = Arc::new(Tally::default());
        let queues = JobQueues::new(labels, metrics.clone(), tally.clone());
        for (id, queue) in [(1, 0), (2, 3), (3, 4), (4, 4)] {
            queues.push(Job::new(event(id, queue)));
        }
        let (orders, other) = (metrics.queue("orders"), metrics.queue("queue-4"));
        assert_eq!(metrics.depth_of(orders), Some(1));
        assert_eq!(metrics.depth_of(other), Some(3), "queues 3 and 4 are both _OTHER");
        assert!(metrics
            .oldest_age_of(other)
            .is_some_and(|age| age > Duration::ZERO));
        // Served round-robin across queues, FIFO within one.
        let mut served = Vec::new();
        for _ in 0..4 {
            let job = queues.pop().await.unwrap();
            queues.processed(&job, QueueOutcome::Success);
            served.push(job.event.id);
        }
        assert_eq!(served, [1, 2, 3, 4]);
        assert_eq!(metrics.depth_of(other), Some(0));
        assert_eq!(
            metrics.oldest_age_of(other),
            Some(Duration::ZERO),
            "nothing waits"
        );
        assert_eq!(queues.holding(), (0, Duration::ZERO));
        assert_eq!(tally.enqueued.load(Relaxed), 4);
        assert_eq!(tally.max_depth.load(Relaxed), 4);
        assert_eq!(metrics.processed(QueueOutcome::Success), 4);
        assert_eq!(metrics.enqueued(), 4);
        queues.close();
        assert!(queues.pop().await.is_none());
    }
}
