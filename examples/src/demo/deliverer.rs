//! Delivers each accepted order as a webhook: a real POST over loopback with a
//! per-attempt timeout, retries with backoff for retryable answers, and a
//! dead letter when the event gives up. Every attempt is recorded through
//! `DeliveryMetrics`, the port a real deliverer would use.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use outcometer::{ActiveTaskGuard, DeliveryMetrics, DeliveryRecorder, DeliveryResult, ErrorKind};

use super::pool::{ConnectionPool, SendError};
use super::tally::Tally;

/// Attempts per event before it is dead-lettered.
pub const MAX_ATTEMPTS: u64 = 3;

/// The webhook hosts and where their names point: every host resolves to the sink
/// on loopback, except one decommissioned host that refuses connections.
#[derive(Debug)]
pub struct Routes {
    urls: Vec<String>,
    hosts: Vec<String>,
    unreachable: Option<usize>,
    all_down: bool,
    sink: ConnectionPool,
    closed: ConnectionPool,
    _closed_socket: tokio::net::TcpSocket,
}

impl Routes {
    /// `count` hosts on `sink`; when `count > 1` the last one is unreachable.
    pub fn new(count: u32, sink: SocketAddr) -> std::io::Result<Self> {
        // Bound but never listening: connecting gets ECONNREFUSED, and holding it keeps
        // the port from being reused by someone else while the demo runs.
        let closed_socket = tokio::net::TcpSocket::new_v4()?;
        closed_socket.bind("127.0.0.1:0".parse().map_err(std::io::Error::other)?)?;
        let closed = closed_socket.local_addr()?;
        let hosts: Vec<String> = (0..count).map(|i| format!("hook-{i}.demo.test")).collect();
        Ok(Routes {
            urls: hosts.iter().map(|h| format!("http://{h}/events")).collect(),
            hosts,
            unreachable: (count > 1).then_some(count as usize - 1),
            all_down: false,
            sink: ConnectionPool::new(sink),
            closed: ConnectionPool::new(closed),
            _closed_socket: closed_socket,
        })
    }

    /// The `--sink-down` fault: every host refuses connections, like the unreachable one.
    pub fn all_down(mut self) -> Self {
        self.all_down = true;
        self
    }

    /// How many hosts there are.
    pub fn host_count(&self) -> usize {
        self.urls.len()
    }

    /// The index of the unreachable host, if any.
    pub fn unreachable(&self) -> Option<usize> {
        self.unreachable
    }

    fn pool(&self, endpoint: usize) -> &ConnectionPool {
        if self.all_down || Some(endpoint) == self.unreachable {
            &self.closed
        } else {
            &self.sink
        }
    }
}

/// An accepted order to announce.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    /// Unique per run.
    pub id: u64,
    /// Index into the routes.
    pub endpoint: usize,
}

/// Delivers events on the current tokio runtime.
#[derive(Clone, Debug)]
pub struct Deliverer {
    /// The recorder every attempt goes through.
    pub metrics: Arc<DeliveryRecorder>,
    /// Hosts and their addresses.
    pub routes: Arc<Routes>,
    /// What the deliverer saw.
    pub tally: Arc<Tally>,
    /// The longest an attempt may take.
    pub attempt_timeout: Duration,
}

enum Attempt {
    Delivered,
    Retry,
    GiveUp,
}

impl Deliverer {
    /// Starts delivering `event` in the background.
    pub fn spawn(&self, event: Event) {
        let deliverer = self.clone();
        // One trace per event: the delivery, its attempts as child spans.
        let span = tracing::info_span!(
            "webhook.delivery",
            event.id = event.id,
            server.address = %self.routes.hosts[event.endpoint],
            attempts = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        tokio::spawn(tracing::Instrument::instrument(deliverer.deliver(event), span));
    }

    async fn deliver(self, event: Event) {
        let _active = ActiveTaskGuard::new(self.metrics.clone());
        let url = &self.routes.urls[event.endpoint];
        let delivery = tracing::Span::current();
        for attempt in 1..=MAX_ATTEMPTS {
            delivery.record("attempts", attempt);
            let span = tracing::info_span!(
                "webhook.delivery_attempt",
                attempt,
                http.response.status_code = tracing::field::Empty,
                error.type = tracing::field::Empty,
                outcome = tracing::field::Empty,
            );
            let result =
                tracing::Instrument::instrument(self.attempt(event, attempt, url), span.clone()).await;
            span.record(
                "outcome",
                match result {
                    Attempt::Delivered => "delivered",
                    Attempt::Retry => "retry",
                    Attempt::GiveUp => "give_up",
                },
            );
            match result {
                Attempt::Delivered => {
                    delivery.record("outcome", "delivered");
                    return;
                }
                Attempt::Retry if attempt < MAX_ATTEMPTS => {
                    self.metrics.record_retry(url);
                    self.tally.retries.fetch_add(1, Relaxed);
                    let backoff_ms = 25_u64 << attempt;
                    tracing::info!(attempt, backoff_ms, "retrying the delivery");
                    tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                }
                _ => break,
            }
        }
        delivery.record("outcome", "dead_letter");
        tracing::warn!("delivery dead-lettered");
        self.metrics.record_dead_letter(url);
        self.tally.dead_letters.fetch_add(1, Relaxed);
    }

    async fn attempt(&self, event: Event, attempt: u64, url: &str) -> Attempt {
        let request = Request::post("/events")
            .header("host", &self.routes.hosts[event.endpoint])
            .header("content-type", "application/json")
            .header("x-event-id", event.id.to_string())
            .header("x-attempt", attempt.to_string())
            .body(Full::new(Bytes::from(format!(
                "{{\"type\":\"order.created\",\"id\":{}}}",
                event.id
            ))));
        let Ok(request) = request else {
            return Attempt::GiveUp;
        };
        let started = Instant::now();
        let sent = tokio::time::timeout(
            self.attempt_timeout,
            self.routes.pool(event.endpoint).send(request),
        )
        .await;
        let elapsed = started.elapsed();
        self.tally.latency.record(elapsed);
        let error = |kind: ErrorKind| {
            tracing::Span::current().record("error.type", kind.as_str());
            self.metrics
                .record_attempt(url, attempt as u32, None, DeliveryResult::Error(kind), elapsed);
            self.tally.errors.fetch_add(1, Relaxed);
            Attempt::Retry
        };
        match sent {
            Ok(Ok(reply)) if reply.status.is_success() => {
                tracing::Span::current().record("http.response.status_code", reply.status.as_u16());
                let status = reply.status.as_u16();
                self.metrics.record_attempt(
                    url,
                    attempt as u32,
                    Some(status),
                    DeliveryResult::Success,
                    elapsed,
                );
                self.tally.successes.fetch_add(1, Relaxed);
                Attempt::Delivered
            }
            Ok(Ok(reply)) => {
                let status = reply.status.as_u16();
                tracing::Span::current().record("http.response.status_code", status);
                self.metrics.record_attempt(
                    url,
                    attempt as u32,
                    Some(status),
                    DeliveryResult::Failure(status),
                    elapsed,
                );
                self.tally.failures.fetch_add(1, Relaxed);
                if status == 429 || status >= 500 {
                    Attempt::Retry
                } else {
                    Attempt::GiveUp
                }
            }
            Ok(Err(SendError::Connect(e))) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                error(ErrorKind::Connect)
            }
            Ok(Err(_)) => error(ErrorKind::Io),
            Err(_) => {
                self.tally.timeouts.fetch_add(1, Relaxed);
                error(ErrorKind::Timeout)
            }
        }
    }
}
