//! The payments API: `POST /orders` honouring an `Idempotency-Key` header. Every
//! request's outcome and handling time are recorded through `IdempotencyMetrics`,
//! and each order it accepts is announced by webhook. When the idempotency store
//! cannot answer at all, the request runs without idempotency (fail-open) as a
//! `miss`, and the store error is recorded.
//!
//! The response carries `Idempotency-Outcome` (a debugging aid of this demo, not a
//! standard header) so the load generator can tally what the server decided.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Request;
use outcometer::{IdempotencyMetrics, IdempotencyOutcome, IdempotencyRecorder};

use super::deliverer::{Deliverer, Event};
use super::server::{respond, DropConnection, Handled};
use super::store::{Begin, Store, StoreError};

/// Header naming the outcome the server decided.
pub const OUTCOME_HEADER: &str = "idempotency-outcome";
/// Header that makes the API take the key's lock and then drop the connection,
/// like a worker that died mid-request.
pub const CRASH_HEADER: &str = "x-demo-crash";

/// Everything a request handler needs.
#[derive(Debug)]
pub struct Api {
    /// Keys and fingerprints (it records its own fallbacks).
    pub store: Store,
    /// The recorder every outcome, duration and store error goes through.
    pub metrics: IdempotencyRecorder,
    /// Announces accepted orders.
    pub deliverer: Deliverer,
    /// Next order and event id.
    pub next_id: AtomicU64,
}

fn header<'a>(request: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    request.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Users and payloads are hashed together: the same body from two users is two orders.
fn fingerprint(user: &str, body: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    user.hash(&mut hasher);
    body.hash(&mut hasher);
    hasher.finish()
}

fn field<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    body.split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// One request being answered: the time it started, for the request-duration histogram.
struct Answer<'a> {
    metrics: &'a IdempotencyRecorder,
    started: Instant,
}

impl Answer<'_> {
    /// Records how long the request took with `outcome`, and answers it.
    fn decided(
        &self,
        status: u16,
        outcome: IdempotencyOutcome,
        body: &str,
        extra: &[(&'static str, &str)],
    ) -> Handled {
        self.metrics
            .record_request_duration(outcome, self.started.elapsed());
        let span = tracing::Span::current();
        span.record("outcome", outcome.as_str());
        span.record("http.response.status_code", status);
        let mut headers = vec![(OUTCOME_HEADER, outcome.as_str())];
        headers.extend_from_slice(extra);
        respond(status, body.to_owned(), &headers)
    }

    /// The simulated worker crash: the miss it was, then no answer. (The demo's
    /// crash is in-process, so the handler still records the time it held the request.)
    fn crash(&self) -> Handled {
        tracing::warn!("simulated worker crash: the connection is dropped without an answer");
        self.metrics
            .record_request_duration(IdempotencyOutcome::Miss, self.started.elapsed());
        Err(DropConnection)
    }

    /// No store answered: the request goes on without idempotency.
    fn fail_open(&self, error: StoreError) {
        self.metrics.record_store_error(error.operation, error.kind);
    }
}

impl Api {
    /// Handles one request.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Handled {
        let answer = Answer {
            metrics: &self.metrics,
            started: Instant::now(),
        };
        if request.method() != hyper::Method::POST || request.uri().path() != "/orders" {
            return respond(404, "POST /orders\n", &[]);
        }
        let user = header(&request, "x-user-id").unwrap_or("").to_owned();
        let key = header(&request, "idempotency-key").map(str::to_owned);
        let crash = request.headers().contains_key(CRASH_HEADER);
        let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
            return Err(DropConnection);
        };
        let scope = self.metrics.scope(&user);
        let fingerprint = fingerprint(&user, &body);
        let now = SystemTime::now();
        let Some(key) = key else {
            match self.store.seen_recently(fingerprint, now) {
                Ok(true) => {
                    self.metrics.record_fingerprint_duplicate(scope);
                    return answer.decided(409, IdempotencyOutcome::FingerprintDuplicate, "duplicate\n", &[]);
                }
                Ok(false) => {}
                // Fail-open: without the fingerprint window, the request runs.
                Err(error) => answer.fail_open(error),
            }
            self.metrics.record_miss(scope);
            let (status, reply) = self.process(&body, fingerprint).await;
            return answer.decided(status, IdempotencyOutcome::Miss, &reply, &[]);
        };
        // Whether the request holds the key's lock, and so must save its response.
        let (outcome, holds_lock) = match self.store.begin(&key, fingerprint, now) {
            Ok(Begin::Fresh) => {
                self.metrics.record_miss(scope);
                if crash {
                    return answer.crash();
                }
                (IdempotencyOutcome::Miss, true)
            }
            Err(error) => {
                // Fail-open: no lock and no saved response; a retry runs again.
                answer.fail_open(error);
                self.metrics.record_miss(scope);
                if crash {
                    return answer.crash();
                }
                (IdempotencyOutcome::Miss, false)
            }
            Ok(Begin::Recovered { lock_age }) => {
                self.metrics.record_stale_lock_recovered(scope, lock_age);
                (IdempotencyOutcome::StaleLockRecovered, true)
            }
            Ok(Begin::Replay { status, body, age }) => {
                self.metrics.record_hit(scope, age);
                return answer.decided(
                    status,
                    IdempotencyOutcome::Hit,
                    &body,
                    &[("idempotent-replayed", "true")],
                );
            }
            Ok(Begin::Conflict { age }) => {
                self.metrics.record_conflict(scope, age);
                return answer.decided(
                    422,
                    IdempotencyOutcome::Conflict,
                    "Idempotency-Key reused with a different payload\n",
                    &[],
                );
            }
            Ok(Begin::InFlight { age }) => {
                self.metrics.record_in_flight(scope, age);
                return answer.decided(
                    409,
                    IdempotencyOutcome::InFlight,
                    "a request with this Idempotency-Key is in progress\n",
                    &[("retry-after", "1")],
                );
            }
        };
        let (status, reply) = self.process(&body, fingerprint).await;
        if holds_lock {
            // The order ran; if its response cannot be saved, a retry meets the
            // lock and, after the lock TTL, runs again.
            if let Err(error) = self.store.complete(&key, fingerprint, now, status, reply.clone()) {
                answer.fail_open(error);
            }
        }
        answer.decided(status, outcome, &reply, &[])
    }

    /// Does the work of an order (a few milliseconds) and queues its webhook.
    async fn process(&self, body: &[u8], fingerprint: u64) -> (u16, String) {
        tokio::time::sleep(Duration::from_millis(3 + fingerprint % 13)).await;
        let id = self.next_id.fetch_add(1, Relaxed);
        let hook = std::str::from_utf8(body)
            .ok()
            .and_then(|b| field(b, "hook"))
            .and_then(|h| h.parse::<usize>().ok())
            .filter(|&h| h < self.deliverer.routes.host_count())
            .unwrap_or(0);
        self.deliverer.spawn(Event { id, endpoint: hook });
        (201, format!("{{\"order\":{id}}}\n"))
    }
}
