//! The gateway: `POST /v1/chat/completions` and `GET /v1/models` as the OpenAI
//! client libraries call them, routed to the backends serving the model asked
//! for (round robin over the healthy ones), falling back to another model when
//! none is healthy, and recorded through the `GatewayMetrics` port.
//!
//! Each response carries `x-nexus-*` headers (a debugging aid of this demo, not a
//! standard): `x-nexus-error` (the `error_type` recorded), `x-nexus-model` and
//! `x-nexus-backend` (who served), `x-nexus-backend-status` (the status the
//! backend answered with, when one did) and `x-nexus-fallback-from` (the model
//! asked for, when another served), so the load generator can tally what the
//! gateway decided.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use outcometer::{GatewayError, GatewayMetrics, Usage};
use serde_json::{json, Value};

use super::backend::error;
use super::http::{channel, json as respond, Body, Pool};

/// One model the gateway serves.
#[derive(Debug)]
pub struct Route {
    /// Its name.
    pub name: String,
    /// Indexes of the backends serving it.
    pub backends: Vec<usize>,
    /// The model it falls back to when none of its backends is healthy.
    pub fallback: Option<usize>,
}

/// One backend as the gateway sees it.
#[derive(Debug)]
pub struct Upstream {
    /// Its name.
    pub name: String,
    /// Connections to it.
    pub pool: Arc<Pool>,
    /// Whether its last health check passed.
    pub healthy: AtomicBool,
}

/// The gateway.
pub struct Gateway {
    /// Where everything is recorded: the recorder, or `NoopGatewayMetrics`.
    pub metrics: Arc<dyn GatewayMetrics>,
    /// Models served, in order.
    pub routes: Vec<Route>,
    /// Backends.
    pub upstreams: Vec<Upstream>,
    /// The longest the gateway waits for a backend's answer (a stream's first token).
    pub timeout: Duration,
    next: AtomicU64,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("routes", &self.routes)
            .field("upstreams", &self.upstreams)
            .finish_non_exhaustive()
    }
}

/// `increment_pending` now, `decrement_pending` on drop: moves into a stream's task.
struct Pending {
    metrics: Arc<dyn GatewayMetrics>,
    backend: String,
}

impl Pending {
    fn new(metrics: &Arc<dyn GatewayMetrics>, backend: &str) -> Self {
        metrics.increment_pending(backend);
        Pending {
            metrics: metrics.clone(),
            backend: backend.to_owned(),
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.metrics.decrement_pending(&self.backend);
    }
}

/// What the backend sent back, within the timeout.
enum Answer {
    Whole(u16, Bytes),
    Stream {
        first: Bytes,
        ttft: Duration,
        rest: Incoming,
        lease: super::http::Lease,
    },
}

/// Token usage in a completion or in a stream's `data:` line.
fn usage_of(value: &Value) -> Option<Usage> {
    let usage = value.get("usage")?;
    Some(Usage::new(
        usage["prompt_tokens"].as_u64()?,
        usage["completion_tokens"].as_u64()?,
    ))
}

/// Usage in the `data: {…}` lines of a server-sent-events chunk.
fn usage_in_events(chunk: &[u8]) -> Option<Usage> {
    let text = std::str::from_utf8(chunk).ok()?;
    text.lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter(|data| data.contains("\"usage\""))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .find_map(|event| usage_of(&event))
}

impl Gateway {
    /// A gateway over `routes` and `upstreams`.
    pub fn new(
        metrics: Arc<dyn GatewayMetrics>,
        routes: Vec<Route>,
        upstreams: Vec<Upstream>,
        timeout: Duration,
    ) -> Self {
        Gateway {
            metrics,
            routes,
            upstreams,
            timeout,
            next: AtomicU64::new(0),
        }
    }

    /// Models with at least one healthy backend.
    pub fn models_available(&self) -> usize {
        self.routes
            .iter()
            .filter(|r| {
                r.backends
                    .iter()
                    .any(|&b| self.upstreams[b].healthy.load(Relaxed))
            })
            .count()
    }

    /// Handles one request.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        match (request.method().clone(), request.uri().path()) {
            (hyper::Method::GET, "/v1/models") => self.list_models(),
            (hyper::Method::POST, "/v1/chat/completions") => self.complete(request, started).await,
            _ => error(
                404,
                "POST /v1/chat/completions or GET /v1/models",
                "invalid_request_error",
            ),
        }
    }

    fn list_models(&self) -> Response<Body> {
        let data: Vec<Value> = self
            .routes
            .iter()
            .map(|r| json!({"id": r.name, "object": "model", "created": 0, "owned_by": "nexus"}))
            .collect();
        respond(200, json!({"object": "list", "data": data}).to_string(), &[])
    }

    /// A failed request: recorded under `error_type` and the model asked for.
    fn fail(
        &self,
        model: &str,
        kind: GatewayError,
        status: u16,
        message: &str,
        mut headers: Vec<(&str, String)>,
    ) -> Response<Body> {
        self.metrics.record_error(model, kind);
        let span = tracing::Span::current();
        span.record("error.type", kind.as_str());
        span.record("http.response.status_code", status);
        let kind_name = match kind {
            GatewayError::RateLimited => "rate_limit_error",
            GatewayError::InvalidRequest | GatewayError::ModelNotFound => "invalid_request_error",
            _ => "server_error",
        };
        let body =
            json!({"error": {"message": message, "type": kind_name, "param": null, "code": kind.as_str()}});
        headers.push(("x-nexus-error", kind.as_str().to_owned()));
        respond(status, body.to_string(), &headers)
    }

    /// The first healthy backend (round robin) of the model, else of its fallback.
    fn route(&self, model: usize) -> Option<(usize, usize)> {
        let n = self.next.fetch_add(1, Relaxed) as usize;
        let mut candidate = Some(model);
        let mut hops = 0;
        while let (Some(m), true) = (candidate, hops < 2) {
            let backends = &self.routes[m].backends;
            for j in 0..backends.len() {
                let b = backends[(n + j) % backends.len()];
                if self.upstreams[b].healthy.load(Relaxed) {
                    return Some((m, b));
                }
            }
            candidate = self.routes[m].fallback;
            hops += 1;
        }
        None
    }

    async fn complete(self: Arc<Self>, request: Request<Incoming>, started: Instant) -> Response<Body> {
        let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
            return self.fail("", GatewayError::InvalidRequest, 400, "unreadable body", vec![]);
        };
        let Ok(mut body) = serde_json::from_slice::<Value>(&body) else {
            return self.fail(
                "",
                GatewayError::InvalidRequest,
                400,
                "the body is not JSON",
                vec![],
            );
        };
        let Some(requested) = body["model"].as_str().map(str::to_owned) else {
            return self.fail(
                "",
                GatewayError::InvalidRequest,
                400,
                "`model` is required",
                vec![],
            );
        };
        if !body["messages"].is_array() {
            return self.fail(
                &requested,
                GatewayError::InvalidRequest,
                400,
                "`messages` must be an array",
                vec![],
            );
        }
        let stream = body["stream"].as_bool().unwrap_or(false);
        let Some(asked) = self.routes.iter().position(|r| r.name == requested) else {
            let message = format!("the model `{requested}` does not exist");
            return self.fail(&requested, GatewayError::ModelNotFound, 404, &message, vec![]);
        };
        let Some((served, backend)) = self.route(asked) else {
            return self.fail(
                &requested,
                GatewayError::NoHealthyBackend,
                503,
                "no healthy backend serves the model",
                vec![],
            );
        };
        let served_name = self.routes[served].name.clone();
        let upstream = &self.upstreams[backend];
        // Names from the gateway's own tables: bounded.
        let span = tracing::Span::current();
        span.record("model", served_name.as_str());
        span.record("backend", upstream.name.as_str());
        if served != asked {
            tracing::info!(requested = %self.routes[asked].name, "served by the fallback model");
        }
        let mut headers = vec![
            ("x-nexus-model", served_name.clone()),
            ("x-nexus-backend", upstream.name.clone()),
        ];
        if served != asked {
            self.metrics.record_fallback(&requested, &served_name);
            headers.push(("x-nexus-fallback-from", requested.clone()));
            body["model"] = Value::String(served_name.clone());
        }
        let pending = Pending::new(&self.metrics, &upstream.name);
        let forward = Request::post("/v1/chat/completions")
            .header("host", "backend.nexus.test")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())));
        let Ok(forward) = forward else {
            return self.fail(
                &requested,
                GatewayError::Other,
                500,
                "could not build the request",
                headers,
            );
        };
        let pool = upstream.pool.clone();
        let call = async {
            let (response, lease) = pool.send(forward).await?;
            let status = response.status().as_u16();
            let mut incoming = response.into_body();
            if stream && status == 200 {
                // Wait for the first token, within the timeout, before answering.
                while let Some(frame) = incoming.frame().await {
                    if let Ok(first) = frame?.into_data() {
                        let ttft = started.elapsed();
                        return Ok(Answer::Stream {
                            first,
                            ttft,
                            rest: incoming,
                            lease,
                        });
                    }
                }
                return Ok(Answer::Whole(status, Bytes::new()));
            }
            let whole = incoming.collect().await?.to_bytes();
            lease.release();
            Ok::<_, super::http::SendError>(Answer::Whole(status, whole))
        };
        let answer = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => {
                return self.fail(
                    &requested,
                    GatewayError::Timeout,
                    504,
                    "the backend did not answer in time",
                    headers,
                )
            }
            Ok(Err(_)) => {
                return self.fail(
                    &requested,
                    GatewayError::BackendError,
                    502,
                    "the backend broke the connection",
                    headers,
                )
            }
            Ok(Ok(answer)) => answer,
        };
        match answer {
            Answer::Whole(status, whole) => {
                let usage = if status == 200 {
                    serde_json::from_slice::<Value>(&whole)
                        .ok()
                        .as_ref()
                        .and_then(usage_of)
                } else {
                    None
                };
                self.metrics.record_request(
                    &served_name,
                    &upstream.name,
                    status,
                    started.elapsed(),
                    usage,
                    None,
                );
                drop(pending);
                headers.push(("x-nexus-backend-status", status.to_string()));
                match status {
                    200 => {
                        tracing::Span::current().record("http.response.status_code", 200_u16);
                        respond(200, whole, &headers)
                    }
                    429 => self.fail(
                        &requested,
                        GatewayError::RateLimited,
                        429,
                        "the backend is rate limited",
                        headers,
                    ),
                    _ => self.fail(
                        &requested,
                        GatewayError::BackendError,
                        502,
                        "the backend failed",
                        headers,
                    ),
                }
            }
            Answer::Stream {
                first,
                ttft,
                mut rest,
                lease,
            } => {
                tracing::info!(
                    ttft_ms = ttft.as_millis() as u64,
                    "first token; streaming the rest"
                );
                tracing::Span::current().record("http.response.status_code", 200_u16);
                let (tx, client_body) = channel();
                let metrics = self.metrics.clone();
                let backend_name = upstream.name.clone();
                tokio::spawn(async move {
                    let mut usage = usage_in_events(&first);
                    // A client that went away stops the forwarding, not the reading.
                    let mut client = tx.send(first).await.is_ok().then_some(tx);
                    let mut complete = true;
                    while let Some(frame) = rest.frame().await {
                        let Ok(frame) = frame else {
                            complete = false;
                            break;
                        };
                        if let Ok(chunk) = frame.into_data() {
                            usage = usage.or_else(|| usage_in_events(&chunk));
                            if let Some(sender) = &client {
                                if sender.send(chunk).await.is_err() {
                                    client = None;
                                }
                            }
                        }
                    }
                    metrics.record_request(
                        &served_name,
                        &backend_name,
                        200,
                        started.elapsed(),
                        usage,
                        Some(ttft),
                    );
                    drop(pending);
                    if complete {
                        lease.release();
                    }
                    // The client's body ends here, after everything was recorded.
                    drop(client);
                });
                headers.push(("x-nexus-backend-status", "200".to_owned()));
                let mut response = Response::new(client_body);
                let h = response.headers_mut();
                h.insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("text/event-stream"),
                );
                h.insert(
                    hyper::header::CACHE_CONTROL,
                    hyper::header::HeaderValue::from_static("no-cache"),
                );
                for (name, value) in headers {
                    if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
                        h.insert(name, value);
                    }
                }
                response
            }
        }
    }

    /// Checks every backend's `/health` every `every`, recording each check's
    /// latency and keeping the health table the router and the fleet callback read.
    pub async fn check_health(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for upstream in &self.upstreams {
                let started = Instant::now();
                let Ok(request) = Request::get("/health")
                    .header("host", "backend.nexus.test")
                    .body(Full::new(Bytes::new()))
                else {
                    continue;
                };
                let check = tokio::time::timeout(every, upstream.pool.send_collect(request)).await;
                let healthy = match check {
                    Ok(Ok((parts, _))) => {
                        self.metrics
                            .record_health_check(&upstream.name, started.elapsed());
                        parts.status == 200
                    }
                    _ => false,
                };
                upstream.healthy.store(healthy, Relaxed);
            }
        }
    }
}
