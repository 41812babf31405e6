//! A fake model backend: an OpenAI-compatible `POST /v1/chat/completions` and a
//! `GET /health` on loopback, with seeded faults. Each answer is drawn from the
//! seed and the request's number on that backend: per thousand, 25 answer `500`,
//! 30 answer `429`, 10 stall past the gateway's timeout, the rest answer after
//! the backend's latency (streams: their first token after it). Every backend is
//! down (its health check and completions answer `503`) for
//! [`DOWN_FOR`] of every [`PERIOD`], the backends' outages staggered so that
//! two of them overlap now and then: a model whose backends are all down falls
//! back to another model.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value};

use super::http::{channel, json as respond, Body, Rng};

/// Length of a backend's health cycle.
pub const PERIOD: Duration = Duration::from_secs(10);
/// How long of each cycle a backend is down.
pub const DOWN_FOR: Duration = Duration::from_secs(4);
/// When the first outage can start: every backend is up for this long after start.
pub const FIRST_OUTAGE: Duration = Duration::from_secs(2);

/// One fake backend.
#[derive(Debug)]
pub struct FakeBackend {
    /// Its name (`gpu-0`, …).
    pub name: String,
    index: u64,
    count: u64,
    seed: u64,
    started: Instant,
    latency: Duration,
    /// How long a stalled answer waits: past the gateway's timeout.
    stall: Duration,
    requests: AtomicU64,
}

impl FakeBackend {
    /// Backend `index` of `count`, with mean `latency`, stalling for `stall`.
    pub fn new(
        index: usize,
        count: usize,
        seed: u64,
        started: Instant,
        latency: Duration,
        stall: Duration,
    ) -> Self {
        FakeBackend {
            name: format!("gpu-{index}"),
            index: index as u64,
            count: count as u64,
            seed,
            started,
            latency,
            stall,
            requests: AtomicU64::new(0),
        }
    }

    /// Whether the backend is in an outage now.
    pub fn is_down(&self) -> bool {
        let elapsed = self.started.elapsed();
        let Some(since) = elapsed.checked_sub(FIRST_OUTAGE) else {
            return false;
        };
        let offset = PERIOD.as_nanos() * u128::from(self.index) / u128::from(self.count);
        let phase = (since.as_nanos() + PERIOD.as_nanos() - offset) % PERIOD.as_nanos();
        let started_yet = since.as_nanos() >= offset;
        started_yet && phase < DOWN_FOR.as_nanos()
    }

    fn jittered(&self, rng: &mut Rng) -> Duration {
        let micros = self.latency.as_micros() as u64;
        Duration::from_micros(rng.between(micros / 2, micros + micros / 2))
    }

    /// Answers one request.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        match (method, path.as_str()) {
            (hyper::Method::GET, "/health") => {
                if self.is_down() {
                    respond(503, r#"{"status":"down"}"#, &[])
                } else {
                    respond(200, r#"{"status":"ok"}"#, &[])
                }
            }
            (hyper::Method::POST, "/v1/chat/completions") => self.complete(request).await,
            _ => respond(
                404,
                r#"{"error":{"message":"not found","type":"invalid_request_error"}}"#,
                &[],
            ),
        }
    }

    async fn complete(&self, request: Request<Incoming>) -> Response<Body> {
        let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
            return respond(400, "{}", &[]);
        };
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let model = body["model"].as_str().unwrap_or_default().to_owned();
        let stream = body["stream"].as_bool().unwrap_or(false);
        let prompt_chars: usize = body["messages"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["content"].as_str()).map(str::len).sum())
            .unwrap_or(0);
        let n = self.requests.fetch_add(1, Relaxed);
        let mut rng = Rng::for_item(self.seed, n, self.index + 1);
        if self.is_down() {
            return error(503, "backend unavailable", "server_error");
        }
        let roll = rng.below(1000);
        let delay = self.jittered(&mut rng);
        match roll {
            0..=24 => {
                tokio::time::sleep(delay).await;
                return error(500, "internal error", "server_error");
            }
            25..=54 => return error(429, "rate limit reached", "rate_limit_error"),
            55..=64 => tokio::time::sleep(self.stall).await,
            _ => {}
        }
        let usage = (8 + prompt_chars as u64 / 4, rng.between(1, 300));
        let id = format!("chatcmpl-{}-{n}", self.name);
        let created = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let words = ["Hello", " from", " ", &self.name, "."];
        if !stream {
            tokio::time::sleep(delay).await;
            let reply = json!({
                "id": id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": words.concat()},
                    "finish_reason": "stop",
                }],
                "usage": usage_json(usage),
            });
            return respond(200, reply.to_string(), &[]);
        }
        let (tx, body) = channel();
        let chunk = move |choices: Value, usage: Option<Value>| {
            let mut chunk = json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
            });
            if let Some(usage) = usage {
                chunk["usage"] = usage;
            }
            Bytes::from(format!("data: {chunk}\n\n"))
        };
        let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        let gap = self.latency / 20;
        tokio::spawn(async move {
            // The first token after the backend's latency, the rest in quick succession.
            tokio::time::sleep(delay).await;
            for (i, word) in words.iter().enumerate() {
                let delta = if i == 0 {
                    json!({"role": "assistant", "content": word})
                } else {
                    json!({"content": word})
                };
                let piece = chunk(json!([{"index": 0, "delta": delta, "finish_reason": null}]), None);
                if tx.send(piece).await.is_err() {
                    return;
                }
                if !gap.is_zero() {
                    tokio::time::sleep(gap).await;
                }
            }
            let finish = chunk(json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]), None);
            // As with `stream_options.include_usage`: usage in a last chunk without choices.
            let usage = chunk(json!([]), Some(usage_json(usage)));
            for piece in [finish, usage, Bytes::from_static(b"data: [DONE]\n\n")] {
                if tx.send(piece).await.is_err() {
                    return;
                }
            }
        });
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(
            hyper::header::CACHE_CONTROL,
            hyper::header::HeaderValue::from_static("no-cache"),
        );
        response
    }
}

fn usage_json((prompt, completion): (u64, u64)) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// An OpenAI-shaped error body.
pub fn error(status: u16, message: &str, kind: &str) -> Response<Body> {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": null}});
    respond(status, body.to_string(), &[])
}
