//! The Prometheus pull endpoint: an HTTP server of its own, or services to mount.
//!
//! `GET /v1/stats` answers a JSON summary of the LLM-gateway family
//! ([`StatsService`], `docs/stats.md`). `GET /metrics` (and `HEAD`) answers OpenMetrics 1.0 when the scraper's `Accept`
//! names `application/openmetrics-text` (Prometheus does by default), the text
//! format 0.0.4 otherwise; gzip when the scraper asks (honouring `q=0`); 404
//! elsewhere, 405 for other methods. Work per request is bounded: at most two
//! renders run at once (a third waits up to the request timeout, then gets 503),
//! headers must arrive within the timeout, and the body is bounded by the declared
//! series counts. The body comes from [`crate::exposition`]; both endpoints share
//! the render bound.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::error::SetupError;
use crate::exposition::{Exposition, Format};
use crate::stats::{error_json, Stats, StatsUnavailable};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;

/// How long a scrape may take once its request has arrived.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request's headers may take to arrive. A scraper sends its request
/// at once; a connection that trickles bytes is holding a slot, not scraping.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Renders allowed at once.
pub const MAX_CONCURRENT_RENDERS: usize = 2;
/// Connections held at once. At the cap, a new connection evicts the oldest one
/// that is idle or has not finished sending its request, so connections that
/// send nothing cannot lock real scrapers out.
pub const MAX_CONNECTIONS: usize = 64;

/// Renders the pipeline's metrics for Prometheus; cheap to clone.
#[derive(Clone)]
pub struct MetricsService {
    exposition: Arc<Exposition>,
    renders: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for MetricsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsService").finish_non_exhaustive()
    }
}

impl MetricsService {
    pub(crate) fn new(exposition: Arc<Exposition>) -> Self {
        MetricsService {
            exposition,
            renders: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_RENDERS)),
        }
    }

    /// The exposition body in the text format 0.0.4.
    pub fn render(&self) -> String {
        self.render_as(Format::Text)
    }

    /// The exposition body in `format`.
    pub fn render_as(&self, format: Format) -> String {
        let mut body = self.exposition.take_buffer();
        self.exposition.render(format, &mut body);
        let text = String::from_utf8_lossy(&body).into_owned();
        self.exposition.give_back(body);
        text
    }

    /// Renders into `out` (cleared first), reusing its capacity: the
    /// allocation-free way to scrape in a loop.
    pub fn render_into(&self, format: Format, out: &mut Vec<u8>) {
        out.clear();
        self.exposition.render(format, out);
    }

    /// The `/v1/stats` service of the same pipeline, sharing this one's render bound.
    pub fn stats_service(&self) -> StatsService {
        StatsService {
            exposition: self.exposition.clone(),
            renders: self.renders.clone(),
        }
    }

    /// Marks the pipeline shut down: `/v1/stats` answers 503 from now on.
    pub(crate) fn close(&self) {
        self.exposition.close();
    }

    /// Answers one request for the metrics body, whatever its path (the router
    /// that mounted the service chose it).
    pub fn respond<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        if let Some(refusal) = method_not_allowed(request) {
            return refusal;
        }
        let Ok(_permit) = self.renders.try_acquire() else {
            return plain(StatusCode::SERVICE_UNAVAILABLE, "too many concurrent scrapes\n");
        };
        self.body_response(request)
    }

    async fn respond_async<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        if let Some(refusal) = method_not_allowed(request) {
            return refusal;
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, self.renders.acquire()).await {
            Ok(Ok(_permit)) => self.body_response(request),
            _ => plain(StatusCode::SERVICE_UNAVAILABLE, "too many concurrent scrapes\n"),
        }
    }

    /// Like `respond_async`, rendering on the blocking pool.
    async fn respond_off_loop(&self, request: Request<()>) -> Response<Full<Bytes>> {
        if let Some(refusal) = method_not_allowed(&request) {
            return refusal;
        }
        let permit = match tokio::time::timeout(REQUEST_TIMEOUT, self.renders.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => return plain(StatusCode::SERVICE_UNAVAILABLE, "too many concurrent scrapes\n"),
        };
        let this = self.clone();
        let rendered = tokio::task::spawn_blocking(move || {
            let response = this.body_response(&request);
            drop(permit);
            response
        })
        .await;
        rendered.unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "render failed\n"))
    }

    fn body_response<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        let head = request.method() == Method::HEAD;
        let accept = request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        let format = Format::negotiate(accept);
        let mut buffer = self.exposition.take_buffer();
        self.exposition.render(format, &mut buffer);
        let gzip = accepts_gzip(request.headers().get(header::ACCEPT_ENCODING));
        let body = if gzip {
            let zipped = gzip_bytes(&buffer);
            self.exposition.give_back(buffer);
            zipped
        } else {
            buffer
        };
        let length = body.len();
        let mut response = Response::new(if head {
            Full::default()
        } else {
            Full::new(Bytes::from(body))
        });
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        headers.insert(header::VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
        if gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }
}

/// 405 with `Allow` for anything but GET and HEAD.
fn method_not_allowed<B>(request: &Request<B>) -> Option<Response<Full<Bytes>>> {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD are allowed\n");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    Some(response)
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `Accept-Encoding` gives gzip a non-zero quality: named explicitly, or through
/// `*` when gzip is not named (an explicit `gzip;q=0` wins over `*`).
fn accepts_gzip(value: Option<&HeaderValue>) -> bool {
    let Some(value) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut gzip = None;
    let mut any = None;
    for item in value.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let quality = parts
            .find_map(|p| p.strip_prefix("q="))
            .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
        if coding.eq_ignore_ascii_case("gzip") {
            gzip = Some(quality);
        } else if coding == "*" {
            any = Some(quality);
        }
    }
    gzip.or(any).is_some_and(|q| q > 0.0)
}

fn gzip_bytes(body: &[u8]) -> Vec<u8> {
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// Mount it in axum/hyper/tower routers: `Router::new().route_service("/metrics", service)`.
impl<B> tower_service::Service<Request<B>> for MetricsService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let this = self.clone();
        let (parts, _) = request.into_parts();
        Box::pin(async move { Ok(this.respond_async(&Request::from_parts(parts, ())).await) })
    }
}

/// Serves `/v1/stats`: the LLM-gateway summary as JSON (`docs/stats.md`); cheap
/// to clone. Mount it next to the metrics service:
/// `Router::new().route_service("/v1/stats", telemetry.stats_service())`.
///
/// `GET` and `HEAD` answer `200` with `application/json`; after the pipeline is
/// shut down, or on a pipeline without the Prometheus exporter, `503` with
/// `{"error": "…"}`; other methods `405`.
#[derive(Clone)]
pub struct StatsService {
    exposition: Arc<Exposition>,
    renders: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for StatsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsService").finish_non_exhaustive()
    }
}

impl StatsService {
    /// The summary now.
    pub fn snapshot(&self) -> Result<Stats, StatsUnavailable> {
        crate::stats::snapshot(&self.exposition)
    }

    /// The JSON body now (the error body when unavailable).
    pub fn render(&self) -> String {
        match self.snapshot() {
            Ok(stats) => stats.to_json(),
            Err(unavailable) => error_json(&unavailable.to_string()),
        }
    }

    /// Answers one request for the summary, whatever its path.
    pub fn respond<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        if let Some(refusal) = stats_method_not_allowed(request) {
            return refusal;
        }
        let Ok(_permit) = self.renders.try_acquire() else {
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                error_json("too many concurrent renders"),
                false,
            );
        };
        self.body_response(request)
    }

    async fn respond_async<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        if let Some(refusal) = stats_method_not_allowed(request) {
            return refusal;
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, self.renders.acquire()).await {
            Ok(Ok(_permit)) => self.body_response(request),
            _ => json(
                StatusCode::SERVICE_UNAVAILABLE,
                error_json("too many concurrent renders"),
                false,
            ),
        }
    }

    /// Like `respond_async`, summing on the blocking pool.
    async fn respond_off_loop(&self, request: Request<()>) -> Response<Full<Bytes>> {
        if let Some(refusal) = stats_method_not_allowed(&request) {
            return refusal;
        }
        let permit = match tokio::time::timeout(REQUEST_TIMEOUT, self.renders.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            _ => {
                return json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    error_json("too many concurrent renders"),
                    false,
                )
            }
        };
        let this = self.clone();
        let rendered = tokio::task::spawn_blocking(move || {
            let response = this.body_response(&request);
            drop(permit);
            response
        })
        .await;
        rendered.unwrap_or_else(|_| {
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                error_json("render failed"),
                false,
            )
        })
    }

    fn body_response<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        let head = request.method() == Method::HEAD;
        match self.snapshot() {
            Ok(stats) => json(StatusCode::OK, stats.to_json(), head),
            Err(unavailable) => json(
                StatusCode::SERVICE_UNAVAILABLE,
                error_json(&unavailable.to_string()),
                head,
            ),
        }
    }
}

/// A JSON response (headers only for `HEAD`), never cached.
fn json(status: StatusCode, body: String, head: bool) -> Response<Full<Bytes>> {
    let length = body.len();
    let mut response = Response::new(if head {
        Full::default()
    } else {
        Full::new(Bytes::from(body))
    });
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 405 with `Allow` and a JSON body for anything but GET and HEAD.
fn stats_method_not_allowed<B>(request: &Request<B>) -> Option<Response<Full<Bytes>>> {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let mut response = json(
        StatusCode::METHOD_NOT_ALLOWED,
        error_json("only GET and HEAD are allowed"),
        false,
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    Some(response)
}

/// Mount it in axum/hyper/tower routers: `Router::new().route_service("/v1/stats", service)`.
impl<B> tower_service::Service<Request<B>> for StatsService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let this = self.clone();
        let (parts, _) = request.into_parts();
        Box::pin(async move { Ok(this.respond_async(&Request::from_parts(parts, ())).await) })
    }
}

/// A running pull endpoint; dropping it stops the server.
#[derive(Debug)]
pub(crate) struct PullServer {
    pub(crate) local_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PullServer {
    /// Binds `address` and serves `/metrics` and `/v1/stats` on a thread of its own.
    pub(crate) fn start(address: &str, service: MetricsService) -> Result<Self, SetupError> {
        let listen_error = |source| SetupError::Listen {
            address: address.to_owned(),
            source,
        };
        let listener = std::net::TcpListener::bind(address).map_err(listen_error)?;
        listener.set_nonblocking(true).map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| SetupError::Runtime {
                what: "Prometheus endpoint runtime",
                source,
            })?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("outcometer-prometheus".into())
            .spawn(move || runtime.block_on(serve(listener, service, stopped)))
            .map_err(|source| SetupError::Runtime {
                what: "Prometheus endpoint thread",
                source,
            })?;
        Ok(PullServer {
            local_addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for PullServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One open connection: whether a request is being answered, and how to close it.
struct Open {
    id: u64,
    busy: Arc<std::sync::atomic::AtomicBool>,
    abort: tokio::task::AbortHandle,
}

type OpenConnections = Arc<std::sync::Mutex<std::collections::VecDeque<Open>>>;

/// Makes room for one more connection: evicts the oldest idle or incomplete one
/// when at the cap. `false` when every connection is answering a request.
fn make_room(open: &OpenConnections) -> bool {
    let mut open = open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if open.len() < MAX_CONNECTIONS {
        return true;
    }
    let idle = open
        .iter()
        .position(|c| !c.busy.load(std::sync::atomic::Ordering::Acquire));
    match idle.and_then(|i| open.remove(i)) {
        Some(evicted) => {
            evicted.abort.abort();
            true
        }
        None => false,
    }
}

async fn serve(
    listener: std::net::TcpListener,
    service: MetricsService,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let open: OpenConnections = Arc::default();
    let mut next_id = 0u64;
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await; // e.g. out of file descriptors
            continue;
        };
        if !make_room(&open) {
            continue; // every slot is answering a request: close this one
        }
        let (id, busy) = (next_id, Arc::new(std::sync::atomic::AtomicBool::new(false)));
        next_id += 1;
        let task = tokio::spawn(connection(
            stream,
            service.clone(),
            busy.clone(),
            open.clone(),
            id,
        ));
        open.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push_back(Open {
                id,
                busy,
                abort: task.abort_handle(),
            });
    }
}

/// Serves one connection; marks it busy while a request is answered, and renders
/// on the blocking pool so a large render never stalls the accept loop.
async fn connection(
    stream: tokio::net::TcpStream,
    service: MetricsService,
    busy: Arc<std::sync::atomic::AtomicBool>,
    open: OpenConnections,
    id: u64,
) {
    struct Forget(OpenConnections, u64);
    impl Drop for Forget {
        fn drop(&mut self) {
            let mut open = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            open.retain(|c| c.id != self.1);
        }
    }
    let _forget = Forget(open, id);
    let handler = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let service = service.clone();
        let busy = busy.clone();
        async move {
            busy.store(true, std::sync::atomic::Ordering::Release);
            let response = match request.uri().path() {
                "/metrics" => {
                    let (parts, _) = request.into_parts();
                    service.respond_off_loop(Request::from_parts(parts, ())).await
                }
                "/v1/stats" => {
                    let (parts, _) = request.into_parts();
                    service
                        .stats_service()
                        .respond_off_loop(Request::from_parts(parts, ()))
                        .await
                }
                _ => plain(
                    StatusCode::NOT_FOUND,
                    "not found; metrics are at /metrics, the gateway summary at /v1/stats\n",
                ),
            };
            busy.store(false, std::sync::atomic::Ordering::Release);
            Ok::<_, Infallible>(response)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true)
        .serve_connection(hyper_util::rt::TokioIo::new(stream), handler);
    let _ = tokio::time::timeout(REQUEST_TIMEOUT * 6, connection).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_negotiation() {
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert!(accepts_gzip(Some(&v("gzip"))));
        assert!(accepts_gzip(Some(&v("deflate, gzip;q=0.5"))));
        assert!(accepts_gzip(Some(&v("*"))));
        assert!(!accepts_gzip(Some(&v("gzip;q=0"))));
        assert!(!accepts_gzip(Some(&v("gzip;q=0, *"))));
        assert!(accepts_gzip(Some(&v("identity;q=0.5, *;q=0.1"))));
        assert!(!accepts_gzip(Some(&v("identity"))));
        assert!(!accepts_gzip(None));
    }
}
