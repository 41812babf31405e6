//! The services the pipeline calls, on loopback: a profile service the cache sits
//! in front of, and the action endpoints, which answer like real ones do: mostly
//! quickly, sometimes slowly, with 5xx and 4xx, past the caller's deadline, or
//! with a body the handler cannot parse. Answers are drawn per (event, attempt)
//! from the seed, so a run repeats. Plus the small keep-alive client the workers
//! use.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;

use super::rng::Rng;
use super::server::{respond, Handled};
use super::tally::Tally;
use super::ACTION_DEADLINE;

/// What the action endpoint does with one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// `200 ok <event>` after `delay`.
    Ok {
        /// Time before answering.
        delay: Duration,
    },
    /// `status` after a short delay: 5xx are worth retrying, 4xx are not.
    Status {
        /// HTTP status.
        status: u16,
    },
    /// Answers only after twice the caller's deadline.
    Stall,
    /// Answers slowly (within the deadline); the worker loses its lease on the
    /// job first and drops the call.
    Preempted,
    /// `200` with a body that is not an acknowledgement.
    Garbage,
}

/// How long a [`Answer::Preempted`] call takes to answer.
pub const PREEMPTED_ANSWER_AFTER: Duration = Duration::from_millis(150);

/// The fault mix, per thousand calls: 30 stalls, 50 × 503, 15 × 500, 15 × 422,
/// 20 preemptions, 10 garbage bodies, 80 slow successes, the rest quick successes.
pub fn answer(seed: u64, event: u64, attempt: u32) -> Answer {
    let mut rng = Rng::for_item(seed, event, u64::from(attempt));
    match rng.below(1000) {
        0..=29 => Answer::Stall,
        30..=79 => Answer::Status { status: 503 },
        80..=94 => Answer::Status { status: 500 },
        95..=109 => Answer::Status { status: 422 },
        110..=129 => Answer::Preempted,
        130..=139 => Answer::Garbage,
        140..=219 => Answer::Ok {
            delay: Duration::from_millis(rng.between(40, 160)),
        },
        _ => Answer::Ok {
            delay: Duration::from_millis(rng.between(1, 25)),
        },
    }
}

/// The profile of `customer`: 200 to 2,000 bytes of JSON, the same every time.
pub fn profile(customer: u64) -> Bytes {
    let len = 200 + (customer.wrapping_mul(7919) % 1800) as usize;
    let mut text = format!("{{\"customer\":{customer},\"tier\":\"gold\",\"notes\":\"");
    while text.len() + 2 < len {
        text.push('x');
    }
    text.push_str("\"}");
    Bytes::from(text)
}

fn header_u64(request: &Request<Incoming>, name: &str) -> u64 {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Handles one request to the downstream services.
pub async fn handle(request: Request<Incoming>, seed: u64, tally: Arc<Tally>) -> Handled {
    let path = request.uri().path();
    if let Some(customer) = path.strip_prefix("/profiles/") {
        tally.downstream_profiles.fetch_add(1, Relaxed);
        let customer: u64 = customer.parse().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(1 + customer % 4)).await;
        return respond(200, profile(customer), &[("content-type", "application/json")]);
    }
    if path.starts_with("/actions/") {
        tally.downstream_actions.fetch_add(1, Relaxed);
        let event = header_u64(&request, "x-event-id");
        let attempt = header_u64(&request, "x-attempt") as u32;
        let _ = request.into_body().collect().await;
        return match answer(seed, event, attempt) {
            Answer::Ok { delay } => {
                tokio::time::sleep(delay).await;
                respond(200, format!("ok {event}"), &[])
            }
            Answer::Status { status } => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                respond(status, "", &[])
            }
            Answer::Stall => {
                tokio::time::sleep(ACTION_DEADLINE * 2).await;
                respond(200, format!("ok {event}"), &[])
            }
            Answer::Preempted => {
                tokio::time::sleep(PREEMPTED_ANSWER_AFTER).await;
                respond(200, format!("ok {event}"), &[])
            }
            Answer::Garbage => respond(200, "<html>502 Bad Gateway</html>", &[]),
        };
    }
    respond(404, "", &[])
}

/// Any error of a call.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Keep-alive HTTP/1.1 connections to the downstream server.
#[derive(Debug)]
pub struct Client {
    addr: SocketAddr,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

/// Idle connections kept; more are opened on demand and closed after use.
const MAX_IDLE: usize = 256;

impl Client {
    /// A client for `addr`; connects lazily.
    pub fn new(addr: SocketAddr) -> Self {
        Client {
            addr,
            idle: Mutex::new(Vec::new()),
        }
    }

    async fn sender(&self) -> Result<SendRequest<Full<Bytes>>, BoxError> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            match idle {
                Some(mut sender) if !sender.is_closed() => {
                    if sender.ready().await.is_ok() {
                        return Ok(sender);
                    }
                }
                Some(_) => {}
                None => break,
            }
        }
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// Sends `request` and reads the whole answer. A call dropped half-way
    /// closes its connection instead of returning it to the pool.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<(u16, Bytes), BoxError> {
        let mut sender = self.sender().await?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        if !sender.is_closed() {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE {
                idle.push(sender);
            }
        }
        Ok((status, body))
    }

    /// `GET /profiles/<customer>`.
    pub async fn profile(&self, customer: u64) -> Result<Bytes, BoxError> {
        let request = Request::get(format!("/profiles/{customer}"))
            .header("host", "profiles.pipeline.test")
            .body(Full::new(Bytes::new()))?;
        match self.send(request).await? {
            (200, body) => Ok(body),
            (status, _) => Err(format!("profile service answered {status}").into()),
        }
    }

    /// `POST /actions/<action>` for one attempt at an event: the status and body.
    pub async fn action(
        &self,
        action: &str,
        event: u64,
        attempt: u32,
        payload: Bytes,
    ) -> Result<(u16, Bytes), BoxError> {
        let request = Request::post(format!("/actions/{action}"))
            .header("host", "actions.pipeline.test")
            .header("content-type", "application/json")
            .header("x-event-id", event.to_string())
            .header("x-attempt", attempt.to_string())
            .body(Full::new(payload))?;
        self.send(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_repeats_for_a_seed_and_has_every_answer() {
        let answers: Vec<Answer> = (0..10_000).map(|e| answer(42, e, 1)).collect();
        let again: Vec<Answer> = (0..10_000).map(|e| answer(42, e, 1)).collect();
        assert_eq!(answers, again);
        let count = |f: &dyn Fn(&Answer) -> bool| answers.iter().filter(|a| f(a)).count();
        assert!((200..400).contains(&count(&|a| *a == Answer::Stall)));
        assert!((100..300).contains(&count(&|a| *a == Answer::Preempted)));
        assert!((50..150).contains(&count(&|a| *a == Answer::Garbage)));
        assert!(count(&|a| *a == Answer::Status { status: 422 }) > 50);
        assert!((8_300..8_900).contains(&count(&|a| matches!(a, Answer::Ok { .. }))));
        let redrawn = (0..1000)
            .filter(|&e| answer(42, e, 1) != answer(42, e, 2))
            .count();
        assert!(redrawn > 900, "retries draw again: {redrawn}");
        assert_eq!(profile(3), profile(3));
        assert!((200..=2000).contains(&profile(12_345).len()));
    }
}
