//! Where events come from: a producer appending to an in-memory log at a fixed
//! rate, and the log itself, which keeps the most recent events so a reader that
//! restarts from an older position can read them again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{watch, Notify};

use super::rng::Rng;

/// Events the log keeps for readers that go back.
pub const RETAINED: usize = 8192;
/// Customers whose profiles are looked up; the first [`HOT_CUSTOMERS`] get most events.
pub const CUSTOMERS: u64 = 2000;
/// The busy customers.
pub const HOT_CUSTOMERS: u64 = 40;
/// How often a batch import lands on top of the steady rate, the first half-way
/// through the period: a second's worth of events at once, so queues form.
pub const BURST_EVERY: Duration = Duration::from_secs(5);

/// What happened to the entity an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A new entity.
    Created,
    /// An entity changed: its cached profile is refreshed after the action.
    Updated,
    /// An entity went away: its cached profile is dropped after the action.
    Deleted,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Created => "created",
            Kind::Updated => "updated",
            Kind::Deleted => "deleted",
        }
    }
}

/// One event, as the producer wrote it.
#[derive(Clone, Debug)]
pub struct Event {
    /// Unique per produced event; a resend repeats it.
    pub id: u64,
    /// The customer it concerns.
    pub customer: u64,
    /// What happened.
    pub kind: Kind,
    /// Index of the queue it goes to.
    pub queue: u32,
    /// Index of the action it triggers.
    pub action: u32,
    /// The serialised event: what deduplication hashes.
    pub payload: Bytes,
}

#[derive(Debug, Default)]
struct Inner {
    /// Offset of `events[0]`.
    base: u64,
    events: VecDeque<Event>,
    closed: bool,
}

/// An append-only log keeping the last [`RETAINED`] events.
#[derive(Debug, Default)]
pub struct Log {
    inner: Mutex<Inner>,
    appended: Notify,
}

impl Log {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `event`; returns its offset.
    pub fn append(&self, event: Event) -> u64 {
        let offset = {
            let mut inner = self.lock();
            inner.events.push_back(event);
            if inner.events.len() > RETAINED {
                inner.events.pop_front();
                inner.base += 1;
            }
            inner.base + inner.events.len() as u64 - 1
        };
        self.appended.notify_one();
        offset
    }

    /// No more events will be appended.
    pub fn close(&self) {
        self.lock().closed = true;
        self.appended.notify_one();
    }

    /// Up to `max` events from `from` (or from the oldest kept, if `from` is
    /// older), the offset after them, and whether the log is closed.
    pub fn read(&self, from: u64, max: usize) -> (Vec<Event>, u64, bool) {
        let inner = self.lock();
        let from = from.max(inner.base);
        let skip = (from - inner.base) as usize;
        let events: Vec<Event> = inner.events.iter().skip(skip).take(max).cloned().collect();
        let next = from + events.len() as u64;
        (events, next, inner.closed)
    }

    /// The offset after the last event.
    pub fn end(&self) -> u64 {
        let inner = self.lock();
        inner.base + inner.events.len() as u64
    }

    /// The oldest offset still kept.
    pub fn oldest(&self) -> u64 {
        self.lock().base
    }

    /// Completes when something is appended (or the log closes) after the last wake-up.
    pub async fn appended(&self) {
        self.appended.notified().await
    }
}

/// Half the events go to the first [`BUSY_NAMES`] queues (or actions), the rest
/// to any of them: with many names, both admitted names and `_OTHER` see traffic.
pub const BUSY_NAMES: u32 = 32;

fn busy_or_any(rng: &mut Rng, count: u32) -> u32 {
    let among = if rng.below(2) == 0 {
        count.min(BUSY_NAMES)
    } else {
        count
    };
    rng.below(u64::from(among)) as u32
}

/// Produces events at a fixed rate.
#[derive(Debug)]
pub struct Producer {
    /// Where events go.
    pub log: Arc<Log>,
    /// Events per second.
    pub rate: u32,
    /// Distinct queues.
    pub queues: u32,
    /// Distinct actions.
    pub actions: u32,
    /// Seed of the mix.
    pub seed: u64,
}

impl Producer {
    /// Per thousand events: 50 resends of a recent event (a producer retrying
    /// after a lost acknowledgement); of the new ones, 700 created, 200 updated,
    /// 100 deleted; 80 % of them about one of the [`HOT_CUSTOMERS`]; queues and
    /// actions as [`BUSY_NAMES`] says.
    fn next(&self, rng: &mut Rng, next_id: &mut u64, recent: &mut VecDeque<Event>) -> Event {
        if !recent.is_empty() && rng.below(1000) < 50 {
            return recent[rng.below(recent.len() as u64) as usize].clone();
        }
        let id = *next_id;
        *next_id += 1;
        let customer = if rng.below(100) < 80 {
            rng.below(HOT_CUSTOMERS)
        } else {
            rng.below(CUSTOMERS)
        };
        let kind = match rng.below(1000) {
            0..=699 => Kind::Created,
            700..=899 => Kind::Updated,
            _ => Kind::Deleted,
        };
        let queue = busy_or_any(rng, self.queues);
        let action = busy_or_any(rng, self.actions);
        let payload = Bytes::from(format!(
            "{{\"id\":{id},\"customer\":{customer},\"kind\":\"{}\",\"queue\":{queue},\"action\":{action},\"amount\":{}}}",
            kind.as_str(),
            rng.between(100, 99_999)
        ));
        let event = Event {
            id,
            customer,
            kind,
            queue,
            action,
            payload,
        };
        if recent.len() == 256 {
            recent.pop_front();
        }
        recent.push_back(event.clone());
        event
    }

    /// Appends events until `duration` has passed or `stop` turns true, then
    /// closes the log: `rate` a second, plus a second's worth at once every
    /// [`BURST_EVERY`]. Returns how many events it appended.
    pub async fn run(self, duration: Duration, mut stop: watch::Receiver<bool>) -> u64 {
        let mut rng = Rng::new(self.seed);
        let mut recent = VecDeque::new();
        let (mut next_id, mut appended) = (1u64, 0u64);
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            let elapsed = started.elapsed().min(duration);
            let bursts = ((elapsed + BURST_EVERY / 2).as_secs_f64() / BURST_EVERY.as_secs_f64()) as u64;
            let due = (elapsed.as_secs_f64() * f64::from(self.rate)) as u64 + bursts * u64::from(self.rate);
            // After a stall (a slow machine), catch up by at most two seconds' worth.
            let burst = due.saturating_sub(appended).min(2 * u64::from(self.rate));
            for _ in 0..burst {
                self.log.append(self.next(&mut rng, &mut next_id, &mut recent));
                appended += 1;
            }
            if elapsed >= duration {
                break;
            }
        }
        self.log.close();
        appended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u64) -> Event {
        Event {
            id,
            customer: 0,
            kind: Kind::Created,
            queue: 0,
            action: 0,
            payload: Bytes::from(id.to_string()),
        }
    }

    #[test]
    fn the_log_keeps_the_most_recent_events() {
        let log = Log::default();
        for id in 0..(RETAINED as u64 + 10) {
            assert_eq!(log.append(event(id)), id);
        }
        assert_eq!((log.oldest(), log.end()), (10, RETAINED as u64 + 10));
        let (events, next, closed) = log.read(0, 3);
        assert_eq!(events.iter().map(|e| e.id).collect::<Vec<_>>(), [10, 11, 12]);
        assert_eq!((next, closed), (13, false));
        log.close();
        let (events, next, closed) = log.read(log.end(), 3);
        assert!(events.is_empty() && closed && next == log.end());
    }

    #[test]
    fn the_mix_has_resends_and_every_kind() {
        let producer = Producer {
            log: Arc::default(),
            rate: 1,
            queues: 3,
            actions: 4,
            seed: 1,
        };
        let (mut rng, mut id, mut recent) = (Rng::new(1), 1, VecDeque::new());
        let events: Vec<Event> = (0..10_000)
            .map(|_| producer.next(&mut rng, &mut id, &mut recent))
            .collect();
        let resends = 10_000 - (id - 1);
        assert!((400..600).contains(&resends), "{resends}");
        for kind in [Kind::Created, Kind::Updated, Kind::Deleted] {
            assert!(events.iter().any(|e| e.kind == kind));
        }
        assert!(events.iter().all(|e| e.queue < 3 && e.action < 4));
    }
}
