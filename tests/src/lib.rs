//! Real receivers for end-to-end tests: OTLP metrics and traces over gRPC (tonic)
//! and HTTP (hyper), both decoding the protobuf with `opentelemetry-proto`, gzip
//! included; and a plain HTTP client for scraping the pull endpoint.

pub mod e2e;
pub mod tls;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as NumberValue;
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, Metric};
use opentelemetry_proto::tonic::trace::v1::Span;

/// Every span request a receiver decoded, in arrival order.
#[derive(Clone, Default)]
pub struct ReceivedSpans(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

/// One span as a receiver got it, with its resource and scope.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    /// The resource's attributes, `key=value`, sorted.
    pub resource: Vec<String>,
    /// The instrumentation scope's name.
    pub scope: String,
    /// The span.
    pub span: Span,
}

impl ReceivedSpan {
    /// The span's attributes, `key=value`, sorted.
    pub fn attributes(&self) -> Vec<String> {
        attributes(&self.span.attributes)
    }

    /// The value of attribute `key`, as text.
    pub fn attribute(&self, key: &str) -> Option<String> {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| text(&kv.value))
    }

    /// Each event's name and attributes (`key=value`, sorted).
    pub fn events(&self) -> Vec<(String, Vec<String>)> {
        self.span
            .events
            .iter()
            .map(|e| (e.name.clone(), attributes(&e.attributes)))
            .collect()
    }
}

/// An outcometer SDK outcome event (a `tracing` event with target
/// `outcometer::<family>`) as it arrives: a span event of the span it happened in.
#[derive(Clone, Debug, PartialEq)]
pub struct OutcomeEvent {
    /// The span the event was recorded in.
    pub span: String,
    /// The family, from the target (`outcometer::idempotency` → `idempotency`).
    pub family: String,
    /// The event's name (its message).
    pub name: String,
    /// The event's attributes other than `level`, `target` and `code.*`, `key=value`, sorted.
    pub attributes: Vec<String>,
}

/// The outcometer outcome events among `spans`' events, in span order.
pub fn outcome_events(spans: &[ReceivedSpan]) -> Vec<OutcomeEvent> {
    spans
        .iter()
        .flat_map(|s| {
            s.span.events.iter().filter_map(move |e| {
                let target = e
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "target")
                    .map(|kv| text(&kv.value))?;
                let family = target.strip_prefix("outcometer::")?.to_owned();
                let attributes = attributes(&e.attributes)
                    .into_iter()
                    .filter(|a| {
                        !a.starts_with("target=") && !a.starts_with("level=") && !a.starts_with("code.")
                    })
                    .collect();
                Some(OutcomeEvent {
                    span: s.span.name.clone(),
                    family,
                    name: e.name.clone(),
                    attributes,
                })
            })
        })
        .collect()
}

impl ReceivedSpans {
    fn push(&self, request: ExportTraceServiceRequest) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
    }

    /// All requests so far.
    pub fn requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Every span so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.requests()
            .iter()
            .flat_map(|r| r.resource_spans.iter())
            .flat_map(|rs| {
                let resource = rs
                    .resource
                    .as_ref()
                    .map(|r| attributes(&r.attributes))
                    .unwrap_or_default();
                rs.scope_spans.iter().flat_map(move |ss| {
                    let scope = ss.scope.as_ref().map(|s| s.name.clone()).unwrap_or_default();
                    let resource = resource.clone();
                    ss.spans.iter().map(move |span| ReceivedSpan {
                        resource: resource.clone(),
                        scope: scope.clone(),
                        span: span.clone(),
                    })
                })
            })
            .collect()
    }

    /// The spans named `name`.
    pub fn named(&self, name: &str) -> Vec<ReceivedSpan> {
        self.spans().into_iter().filter(|s| s.span.name == name).collect()
    }

    /// Waits until `ready` holds for the spans, up to `timeout`.
    pub fn wait_for(&self, timeout: Duration, ready: impl Fn(&[ReceivedSpan]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if ready(&self.spans()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        ready(&self.spans())
    }
}

/// Every request a receiver decoded, in arrival order.
#[derive(Clone, Default)]
pub struct Received(Arc<Mutex<Vec<ExportMetricsServiceRequest>>>);

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// `key=value` pairs, sorted.
pub fn attributes(kvs: &[KeyValue]) -> Vec<String> {
    let mut out: Vec<String> = kvs
        .iter()
        .map(|kv| format!("{}={}", kv.key, text(&kv.value)))
        .collect();
    out.sort();
    out
}

fn same(kvs: &[KeyValue], want: &[&str]) -> bool {
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    attributes(kvs) == want
}

impl Received {
    fn push(&self, request: ExportMetricsServiceRequest) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
    }

    /// All requests so far.
    pub fn requests(&self) -> Vec<ExportMetricsServiceRequest> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits until `ready` holds for the requests, up to `timeout`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        ready: impl Fn(&[ExportMetricsServiceRequest]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if ready(&self.requests()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        ready(&self.requests())
    }

    /// The metric `name` in the most recent request that has it.
    pub fn latest(&self, name: &str) -> Option<Metric> {
        self.requests().iter().rev().find_map(|r| {
            r.resource_metrics
                .iter()
                .flat_map(|rm| rm.scope_metrics.iter())
                .flat_map(|sm| sm.metrics.iter())
                .find(|m| m.name == name)
                .cloned()
        })
    }

    /// Resource attributes of the most recent request.
    pub fn resource(&self) -> Vec<String> {
        self.requests()
            .last()
            .and_then(|r| r.resource_metrics.first())
            .and_then(|rm| rm.resource.as_ref())
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default()
    }
}

/// The value of the sum or gauge data point with exactly `attrs`.
pub fn number(metric: &Metric, attrs: &[&str]) -> Option<f64> {
    let points = match metric.data.as_ref()? {
        Data::Sum(s) => &s.data_points,
        Data::Gauge(g) => &g.data_points,
        _ => return None,
    };
    points
        .iter()
        .find(|p| same(&p.attributes, attrs))
        .and_then(|p| match p.value? {
            NumberValue::AsInt(i) => Some(i as f64),
            NumberValue::AsDouble(d) => Some(d),
        })
}

/// The sum of a sum's values (or a histogram's counts) over the data points whose
/// attributes include every `key=value` in `attrs`.
pub fn sum_where(metric: &Metric, attrs: &[&str]) -> f64 {
    let includes = |kvs: &[KeyValue]| {
        let have = attributes(kvs);
        attrs.iter().all(|a| have.iter().any(|h| h == a))
    };
    match metric.data.as_ref() {
        Some(Data::Sum(s)) => s
            .data_points
            .iter()
            .filter(|p| includes(&p.attributes))
            .map(|p| match p.value {
                Some(NumberValue::AsInt(i)) => i as f64,
                Some(NumberValue::AsDouble(d)) => d,
                None => 0.0,
            })
            .sum(),
        Some(Data::Histogram(h)) => h
            .data_points
            .iter()
            .filter(|p| includes(&p.attributes))
            .map(|p| p.count as f64)
            .sum(),
        _ => 0.0,
    }
}

/// The histogram data point with exactly `attrs`.
pub fn histogram(metric: &Metric, attrs: &[&str]) -> Option<HistogramDataPoint> {
    match metric.data.as_ref()? {
        Data::Histogram(h) => h.data_points.iter().find(|p| same(&p.attributes, attrs)).cloned(),
        _ => None,
    }
}

/// Aggregation temporality of a sum or histogram (1 delta, 2 cumulative).
pub fn temporality(metric: &Metric) -> Option<i32> {
    match metric.data.as_ref()? {
        Data::Sum(s) => Some(s.aggregation_temporality),
        Data::Histogram(h) => Some(h.aggregation_temporality),
        _ => None,
    }
}

/// One request's headers: (lower-case name, value), in order.
pub type HeaderList = Vec<(String, String)>;

/// Headers of each request a receiver got, in arrival order.
#[derive(Clone, Default)]
pub struct Headers(Arc<Mutex<Vec<HeaderList>>>);

impl Headers {
    fn push(&self, headers: Vec<(String, String)>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(headers);
    }

    /// Every request's headers so far.
    pub fn all(&self) -> Vec<HeaderList> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The values of header `name` (lower-case) in the last request.
    pub fn last(&self, name: &str) -> Vec<String> {
        self.all()
            .last()
            .map(|h| {
                h.iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn header_pairs(map: &http::HeaderMap) -> HeaderList {
    map.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

struct Collector(Received, Headers, Arc<Mutex<u32>>);

struct TraceCollector(ReceivedSpans, Headers, Arc<Mutex<u32>>);

#[tonic::async_trait]
impl TraceService for TraceCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = header_pairs(&request.metadata().clone().into_headers());
        if headers.iter().any(|(k, v)| k == "grpc-encoding" && v == "gzip") {
            *self.2.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        }
        self.1.push(headers);
        self.0.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let headers = header_pairs(&request.metadata().clone().into_headers());
        if headers.iter().any(|(k, v)| k == "grpc-encoding" && v == "gzip") {
            *self.2.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        }
        self.1.push(headers);
        self.0.push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// A receiver running on a runtime thread of its own; stops when dropped.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it decoded.
    pub received: Received,
    /// The span requests it decoded (gRPC `TraceService`, HTTP `/v1/traces`).
    pub spans: ReceivedSpans,
    /// Requests whose body arrived gzip-compressed.
    pub gzipped: Arc<Mutex<u32>>,
    /// Each request's headers (gRPC: its metadata).
    pub headers: Headers,
    /// Each request's path and query (HTTP only).
    pub paths: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The receivers' runtime. Its threads trace nothing: a test that installs the
/// layer as the process's subscriber must see the exporter's spans, not the
/// receiver's own (h2, hyper).
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(|| {
            std::mem::forget(tracing::subscriber::set_default(
                tracing::subscriber::NoSubscriber::default(),
            ))
        })
        .enable_all()
        .build()
        .expect("runtime")
}

impl Receiver {
    /// An OTLP/gRPC receiver on `addr` (port 0 for a free one), accepting gzip.
    pub fn grpc(addr: &str) -> Receiver {
        Self::grpc_with(addr, None)
    }

    /// An OTLP/gRPC receiver over TLS (mutual when `tls` names a client CA).
    pub fn grpc_tls(tls: &tls::ServerTls) -> Receiver {
        Self::grpc_with("127.0.0.1:0", Some(tls))
    }

    fn grpc_with(addr: &str, tls: Option<&tls::ServerTls>) -> Receiver {
        let mut server = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            server = server.tls_config(tls.tonic()).expect("server TLS");
        }
        let listener = TcpListener::bind(addr).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let received = Received::default();
        let (headers, gzipped) = (Headers::default(), Arc::new(Mutex::new(0)));
        let spans = ReceivedSpans::default();
        let service =
            MetricsServiceServer::new(Collector(received.clone(), headers.clone(), gzipped.clone()))
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        let trace_service =
            TraceServiceServer::new(TraceCollector(spans.clone(), headers.clone(), gzipped.clone()))
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let incoming = tonic::transport::server::TcpIncoming::from(listener);
                let _ = server
                    .add_service(service)
                    .add_service(trace_service)
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = stopped.await;
                    })
                    .await;
            })
        });
        Receiver {
            addr,
            received,
            spans,
            gzipped,
            headers,
            paths: Arc::default(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// An OTLP/HTTP receiver on `addr` at `/v1/metrics` and `/v1/traces`, decoding
    /// protobuf (gzip or not).
    pub fn http(addr: &str) -> Receiver {
        Self::http_with(addr, None)
    }

    /// An OTLP/HTTP receiver over TLS (mutual when `tls` names a client CA).
    pub fn http_tls(tls: &tls::ServerTls) -> Receiver {
        Self::http_with("127.0.0.1:0", Some(tls))
    }

    fn http_with(addr: &str, tls: Option<&tls::ServerTls>) -> Receiver {
        let acceptor = tls.map(tls::ServerTls::acceptor);
        use http_body_util::BodyExt;
        let listener = TcpListener::bind(addr).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let received = Received::default();
        let spans = ReceivedSpans::default();
        let gzipped: Arc<Mutex<u32>> = Arc::default();
        let (headers, paths) = (Headers::default(), Arc::new(Mutex::new(Vec::new())));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (sink, gz) = (received.clone(), gzipped.clone());
        let span_sink = spans.clone();
        let (seen, seen_paths) = (headers.clone(), paths.clone());
        let thread = std::thread::spawn(move || {
            runtime().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let stream = tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => match accepted { Ok((s, _)) => s, Err(_) => continue },
                    };
                    let (sink, gz) = (sink.clone(), gz.clone());
                    let span_sink = span_sink.clone();
                    let (seen, seen_paths) = (seen.clone(), seen_paths.clone());
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let handler = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                            let (sink, gz) = (sink.clone(), gz.clone());
                            let span_sink = span_sink.clone();
                            seen.push(header_pairs(req.headers()));
                            seen_paths
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push(req.uri().path_and_query().map_or_else(String::new, |p| p.to_string()));
                            async move {
                                let traces = req.uri().path() == "/v1/traces";
                                let path_ok = traces || req.uri().path() == "/v1/metrics";
                                let is_proto = req
                                    .headers()
                                    .get("content-type")
                                    .is_some_and(|v| v.as_bytes() == b"application/x-protobuf");
                                let gzip = req.headers().get("content-encoding").is_some_and(|v| v.as_bytes() == b"gzip");
                                let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                                let body = if gzip {
                                    *gz.lock().unwrap_or_else(PoisonError::into_inner) += 1;
                                    let mut out = Vec::new();
                                    let _ = flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut out);
                                    bytes::Bytes::from(out)
                                } else {
                                    body
                                };
                                let (decoded, answer) = if traces {
                                    let decoded = <ExportTraceServiceRequest as prost::Message>::decode(body)
                                        .map(|request| {
                                            if is_proto {
                                                span_sink.push(request);
                                            }
                                        });
                                    let answer = ExportTraceServiceResponse { partial_success: None };
                                    (decoded, prost::Message::encode_to_vec(&answer))
                                } else {
                                    let decoded = <ExportMetricsServiceRequest as prost::Message>::decode(body);
                                    let decoded = match (path_ok && is_proto, decoded) {
                                        (true, Ok(request)) => {
                                            sink.push(request);
                                            Ok(())
                                        }
                                        (_, Ok(_)) => Ok(()),
                                        (_, Err(e)) => Err(e),
                                    };
                                    let answer = ExportMetricsServiceResponse { partial_success: None };
                                    (decoded, prost::Message::encode_to_vec(&answer))
                                };
                                let status = match (path_ok, is_proto, decoded) {
                                    (true, true, Ok(())) => 200,
                                    (false, _, _) => 404,
                                    _ => 400,
                                };
                                let mut resp = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(answer)));
                                *resp.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
                                resp.headers_mut().insert("content-type", "application/x-protobuf".parse().expect("ct"));
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        });
                        let http = hyper::server::conn::http1::Builder::new();
                        match acceptor {
                            None => {
                                let _ = http.serve_connection(hyper_util::rt::TokioIo::new(stream), handler).await;
                            }
                            Some(acceptor) => {
                                // A failed handshake (wrong CA, no client certificate) ends here.
                                if let Ok(stream) = acceptor.accept(stream).await {
                                    let _ = http.serve_connection(hyper_util::rt::TokioIo::new(stream), handler).await;
                                }
                            }
                        }
                    });
                }
            })
        });
        Receiver {
            addr,
            received,
            spans,
            gzipped,
            headers,
            paths,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

/// A collector that accepts connections and never answers: holds every socket
/// open without reading a byte, until dropped.
pub struct HungReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HungReceiver {
    /// Listens on a free loopback port.
    pub fn start() -> HungReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        HungReceiver {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HungReceiver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A port that was free a moment ago (bound, then released), for down-then-up tests.
pub fn released_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// An HTTP response, as read off the wire.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body, un-gzipped if it was gzipped.
    pub body: String,
    /// Whether it arrived gzipped.
    pub was_gzipped: bool,
}

impl HttpResponse {
    /// The first header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over a fresh connection, read to the end.
pub fn http_request(addr: SocketAddr, method: &str, path: &str, extra_headers: &[&str]) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in extra_headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = &raw[split + 4..];
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let was_gzipped = headers
        .iter()
        .any(|(k, v)| k == "content-encoding" && v == "gzip");
    let body = if was_gzipped {
        let mut out = String::new();
        flate2::read::GzDecoder::new(body)
            .read_to_string(&mut out)
            .expect("gunzip");
        out
    } else {
        String::from_utf8_lossy(body).to_string()
    };
    HttpResponse {
        status,
        headers,
        body,
        was_gzipped,
    }
}

/// The value of the exposition line `series` (name with labels exactly as rendered, or a prefix ending in `}`).
pub fn exposition_value(body: &str, name: &str, labels: &[&str]) -> Option<f64> {
    body.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        if metric != name {
            return None;
        }
        let present: Vec<&str> = rest
            .trim_end_matches('}')
            .split(',')
            .filter(|s| !s.is_empty())
            .collect();
        labels
            .iter()
            .all(|l| present.contains(l))
            .then(|| value.parse().ok())
            .flatten()
    })
}

/// Runs `f` with a sampled span of `trace`/`span` active in OpenTelemetry's
/// context, as `tracing-opentelemetry` activates it when a `tracing` span is
/// entered: what histogram exemplars are taken from.
pub fn in_sampled_span<R>(trace: u128, span: u64, f: impl FnOnce() -> R) -> R {
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
    let context = SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    let _active = opentelemetry::Context::new()
        .with_remote_span_context(context)
        .attach();
    f()
}
