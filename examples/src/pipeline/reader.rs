//! The reader: follows the log, drops content duplicates, puts each new event on
//! its queue, checkpoints its position every [`SAVE_EVERY`], and every
//! [`RESTART_EVERY`] restarts as a crashed consumer would, from its last
//! checkpoint. Every third restart finds the checkpoint corrupted and falls back
//! to rereading the last [`REREAD_ON_FAILURE`] events of the log; what it reads
//! twice, deduplication catches.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use outcometer::{CheckpointOutcome, CheckpointRecorder, DedupRecorder, DedupResult, RecoveryResult};

use super::checkpoint::{CheckpointStore, Recovered};
use super::dedup::Dedup;
use super::jobs::{Job, JobQueues};
use super::rng::Rng;
use super::source::Log;
use super::tally::Tally;

/// How often the reader saves its position.
pub const SAVE_EVERY: Duration = Duration::from_millis(250);
/// How often the reader restarts from its checkpoint.
pub const RESTART_EVERY: Duration = Duration::from_secs(3);
/// Saves, per hundred, that find a directory where their temporary file goes.
pub const FAILING_SAVES_PERCENT: u64 = 12;
/// Events reread from the end of the log when the checkpoint cannot be used: a
/// safety margin wider than what the reader can have read since its last save.
pub const REREAD_ON_FAILURE: u64 = 256;
/// Distinct payloads deduplication remembers.
pub const DEDUP_WINDOW: usize = 65_536;

/// The reader and what it owns.
#[derive(Debug)]
pub struct Reader {
    /// The log it follows.
    pub log: Arc<Log>,
    /// Where new events go.
    pub queues: Arc<JobQueues>,
    /// Content deduplication.
    pub dedup: Dedup,
    /// Its metrics.
    pub dedup_metrics: DedupRecorder,
    /// The checkpoint on disk.
    pub store: Arc<CheckpointStore>,
    /// Checkpoint metrics.
    pub checkpoints: CheckpointRecorder,
    /// What it saw.
    pub tally: Arc<Tally>,
    /// Seed of the injected save failures.
    pub seed: u64,
    /// The next offset to read.
    position: u64,
    /// The offset after the furthest event ever read: below it is a replay.
    furthest: u64,
    saves: u64,
    restarts: u64,
}

impl Reader {
    /// A reader that has not started.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        log: Arc<Log>,
        queues: Arc<JobQueues>,
        dedup_metrics: DedupRecorder,
        store: Arc<CheckpointStore>,
        checkpoints: CheckpointRecorder,
        tally: Arc<Tally>,
        seed: u64,
    ) -> Self {
        Reader {
            log,
            queues,
            dedup: Dedup::new(DEDUP_WINDOW),
            dedup_metrics,
            store,
            checkpoints,
            tally,
            seed,
            position: 0,
            furthest: 0,
            saves: 0,
            restarts: 0,
        }
    }

    /// Recovers, then follows the log until it is closed and read to the end;
    /// saves a last checkpoint and returns.
    pub async fn run(mut self) {
        self.recover().await;
        let now = tokio::time::Instant::now();
        let mut saves = tokio::time::interval_at(now + SAVE_EVERY, SAVE_EVERY);
        let mut restarts = tokio::time::interval_at(now + RESTART_EVERY, RESTART_EVERY);
        loop {
            if self.read_available() {
                break;
            }
            tokio::select! {
                _ = self.log.appended() => {}
                _ = saves.tick() => self.save(true).await,
                _ = restarts.tick() => self.restart().await,
            }
        }
        self.save(false).await;
    }

    /// Reads everything appended so far; whether the log is closed and read.
    fn read_available(&mut self) -> bool {
        loop {
            let (events, next, closed) = self.log.read(self.position, 512);
            let skipped_to = next - events.len() as u64;
            let replays = self.furthest.saturating_sub(skipped_to).min(events.len() as u64);
            self.tally.replayed.fetch_add(replays, Relaxed);
            for event in events {
                let result = match self.dedup.check(&event.payload) {
                    true => DedupResult::Unique,
                    false => DedupResult::Duplicate,
                };
                self.dedup_metrics.record(result);
                self.tally.dedup[result.index()].fetch_add(1, Relaxed);
                if result == DedupResult::Unique {
                    self.tally.outstanding.fetch_add(1, Relaxed);
                    self.queues.push(Job::new(event));
                }
            }
            let read_any = next > self.position;
            self.position = next;
            self.furthest = self.furthest.max(next);
            if !read_any {
                return closed && next >= self.log.end();
            }
        }
    }

    /// Saves the position; `inject` lets the fault injector fail it.
    async fn save(&mut self, inject: bool) {
        self.saves += 1;
        let fail = inject && Rng::for_item(self.seed, self.saves, 0x5A7E).below(100) < FAILING_SAVES_PERCENT;
        let (store, offset) = (self.store.clone(), self.position);
        let started = Instant::now();
        let saved = tokio::task::spawn_blocking(move || store.save(offset, fail))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        let duration = started.elapsed();
        let finished = SystemTime::now();
        let outcome = match saved {
            Ok(()) => {
                self.tally.saved_at(finished);
                CheckpointOutcome::Success
            }
            Err(_) => CheckpointOutcome::Failure,
        };
        self.checkpoints.record_save_at(outcome, duration, finished);
        self.tally.saves[outcome.index()].fetch_add(1, Relaxed);
    }

    /// Reads the checkpoint back and moves to where it says.
    async fn recover(&mut self) {
        let store = self.store.clone();
        let recovered = tokio::task::spawn_blocking(move || store.recover())
            .await
            .unwrap_or_else(|e| Recovered::Failed(e.to_string()));
        let result = match recovered {
            Recovered::Restored(offset) => {
                self.position = offset;
                RecoveryResult::Restored
            }
            Recovered::Empty => {
                self.position = self.log.oldest();
                RecoveryResult::Empty
            }
            Recovered::Failed(why) => {
                let mut last = self
                    .tally
                    .recovery_failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                *last = Some(why);
                self.position = self.log.end().saturating_sub(REREAD_ON_FAILURE);
                RecoveryResult::Failed
            }
        };
        self.checkpoints.record_recovery_result(result);
        self.tally.recoveries[result.index()].fetch_add(1, Relaxed);
    }

    /// A crash and restart: the position in memory is lost.
    async fn restart(&mut self) {
        self.restarts += 1;
        if self.restarts % 3 == 2 {
            let store = self.store.clone();
            let _ = tokio::task::spawn_blocking(move || store.corrupt()).await;
        }
        self.recover().await;
    }
}
