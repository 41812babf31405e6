//! The load generator: chat completions at a fixed rate, a seeded mix of served
//! models, junk model names (past `--models`), streamed and plain requests and a
//! few malformed ones, each response tallied from the outside.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::http::{Pool, Rng};
use super::tally::{Observed, Tally};

/// How long the generator waits for one response.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Drives the gateway.
#[derive(Debug)]
pub struct LoadGenerator {
    /// Connections to the gateway.
    pub gateway: Arc<Pool>,
    /// Where responses are tallied.
    pub tally: Arc<Tally>,
    /// Requests per second.
    pub rate: u32,
    /// The models served, in order.
    pub models: Vec<String>,
    /// Distinct model names asked for; those past `models` are junk.
    pub requested_models: u64,
    /// Seed.
    pub seed: u64,
}

/// The body of request `n`: per thousand, 100 ask for a junk model name (when
/// there are junk names), 300 stream, 5 omit `messages`.
pub fn request_body(seed: u64, n: u64, models: &[String], requested_models: u64) -> (Value, bool) {
    let mut rng = Rng::for_item(seed, n, 0x10ad);
    let served = models.len() as u64;
    let junk = requested_models.saturating_sub(served);
    let model = if junk > 0 && rng.below(1000) < 100 {
        format!("junk-model-{}", rng.below(junk))
    } else {
        models[rng.below(served.min(requested_models)) as usize].clone()
    };
    let stream = rng.below(1000) < 300;
    let words = rng.between(2, 60) as usize;
    let content = vec!["word"; words].join(" ");
    let mut body = json!({"model": model, "stream": stream});
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    if rng.below(1000) >= 5 {
        body["messages"] = json!([{"role": "user", "content": content}]);
    }
    (body, stream)
}

/// Reads a gateway response: the `x-nexus-*` headers, and the usage of a
/// successful answer (a completion's `usage`, or a stream's last `usage` chunk
/// before `data: [DONE]`). `None` when a successful answer lacks its usage.
pub fn observe(parts: &hyper::http::response::Parts, body: &[u8], stream: bool) -> Option<Observed> {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut seen = Observed {
        backend_status: header("x-nexus-backend-status").and_then(|s| s.parse().ok()),
        model: header("x-nexus-model"),
        backend: header("x-nexus-backend"),
        error: header("x-nexus-error"),
        fallback_from: header("x-nexus-fallback-from"),
        ..Observed::default()
    };
    if parts.status == 200 {
        let usage_of = |v: &Value| {
            Some((
                v["usage"]["prompt_tokens"].as_u64()?,
                v["usage"]["completion_tokens"].as_u64()?,
            ))
        };
        seen.usage = if stream {
            let text = std::str::from_utf8(body).ok()?;
            let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
            if events.last() != Some(&"[DONE]") {
                return None;
            }
            events
                .iter()
                .filter_map(|e| serde_json::from_str::<Value>(e).ok())
                .find_map(|v| usage_of(&v))
        } else {
            usage_of(&serde_json::from_slice(body).ok()?)
        };
        seen.usage?;
        seen.streamed = stream;
    } else if seen.error.is_none() {
        return None;
    }
    Some(seen)
}

impl LoadGenerator {
    /// Runs until `duration` has passed or `stop` turns true, then waits for every
    /// request it started.
    pub async fn run(self: Arc<Self>, duration: Duration, mut stop: watch::Receiver<bool>) {
        let mut tasks = JoinSet::new();
        let started = Instant::now();
        let mut launched: u64 = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            let elapsed = started.elapsed().min(duration);
            let due = (elapsed.as_secs_f64() * f64::from(self.rate)) as u64;
            // After a stall, catch up by at most a second's worth.
            let burst = due.saturating_sub(launched).min(u64::from(self.rate));
            for _ in 0..burst {
                tasks.spawn(self.clone().send(launched));
                launched += 1;
            }
            while tasks.try_join_next().is_some() {}
            if elapsed >= duration {
                break;
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn send(self: Arc<Self>, n: u64) {
        let (body, stream) = request_body(self.seed, n, &self.models, self.requested_models);
        let request = Request::post("/v1/chat/completions")
            .header("host", "gateway.nexus.test")
            .header("content-type", "application/json")
            .header("authorization", "Bearer sk-demo")
            .body(Full::new(Bytes::from(body.to_string())));
        let Ok(request) = request else {
            self.tally.unexpected();
            return;
        };
        self.tally.sent();
        let reply = tokio::time::timeout(REQUEST_TIMEOUT, self.gateway.send_collect(request)).await;
        match reply {
            Ok(Ok((parts, body))) => match observe(&parts, &body, stream) {
                Some(seen) => self.tally.observe(seen),
                None => self.tally.unexpected(),
            },
            _ => self.tally.unexpected(),
        }
    }
}
