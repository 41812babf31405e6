//! The webhook receiver the deliverer POSTs to: answers like a fleet of real
//! subscribers would, with latency, 4xx and 5xx answers, and answers too slow to
//! wait for. Faults are drawn per (event, attempt) from the seed, so a run repeats.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;

use super::rng::Rng;
use super::server::{respond, Handled};
use super::tally::Tally;

/// How the sink answers one attempt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Answer {
    /// `status` after `delay`.
    Status {
        /// HTTP status.
        status: u16,
        /// Time before answering.
        delay: Duration,
    },
    /// Never answers in time: holds the request for `delay`, beyond the client's timeout.
    Stall {
        /// How long it holds the request.
        delay: Duration,
    },
}

/// The fault mix, per thousand attempts. Most attempts succeed quickly; the rest
/// cover retryable and permanent failures and timeouts.
pub fn answer(seed: u64, event: u64, attempt: u64, attempt_timeout: Duration) -> Answer {
    let mut rng = Rng::for_item(seed, event, attempt);
    let ms = |lo, hi, rng: &mut Rng| Duration::from_millis(rng.between(lo, hi));
    let roll = rng.below(1000);
    let status = |status, rng: &mut Rng| Answer::Status {
        status,
        delay: ms(1, 30, rng),
    };
    match roll {
        0..=29 => Answer::Stall {
            delay: attempt_timeout * 2,
        },
        30..=79 => status(503, &mut rng),
        80..=99 => status(500, &mut rng),
        100..=119 => status(429, &mut rng),
        120..=139 => status(400, &mut rng),
        140..=149 => status(410, &mut rng),
        150..=219 => Answer::Status {
            status: 200,
            delay: ms(60, 240, &mut rng),
        },
        _ => Answer::Status {
            status: if roll & 1 == 0 { 200 } else { 204 },
            delay: ms(1, 40, &mut rng),
        },
    }
}

fn header_u64(request: &Request<Incoming>, name: &str) -> u64 {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Handles one webhook POST.
pub async fn handle(
    request: Request<Incoming>,
    seed: u64,
    attempt_timeout: Duration,
    tally: Arc<Tally>,
) -> Handled {
    tally.sink_received.fetch_add(1, Relaxed);
    let event = header_u64(&request, "x-event-id");
    let attempt = header_u64(&request, "x-attempt");
    match answer(seed, event, attempt, attempt_timeout) {
        Answer::Status { status, delay } => {
            tokio::time::sleep(delay).await;
            respond(status, "", &[])
        }
        Answer::Stall { delay } => {
            tokio::time::sleep(delay).await;
            respond(200, "", &[])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_mostly_success_and_repeats_for_a_seed() {
        let timeout = Duration::from_millis(300);
        let answers: Vec<Answer> = (0..10_000).map(|e| answer(42, e, 1, timeout)).collect();
        let again: Vec<Answer> = (0..10_000).map(|e| answer(42, e, 1, timeout)).collect();
        assert_eq!(answers, again);
        let ok = answers
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Answer::Status {
                        status: 200 | 204,
                        ..
                    }
                )
            })
            .count();
        let stalls = answers
            .iter()
            .filter(|a| matches!(a, Answer::Stall { .. }))
            .count();
        assert!((8_200..8_800).contains(&ok), "{ok}");
        assert!((200..400).contains(&stalls), "{stalls}");
    }
}
