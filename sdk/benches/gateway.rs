//! Cost of recording one LLM-gateway request (docs/performance.md).
//!
//! Every benchmark cycles the same 256 calls in a fixed order: 8 models × 4
//! backends × 8 (status, duration, token) variants, one request a call, beside a
//! relaxed `fetch_add` on a flat array of as many cells (`atomic_floor`).
//!
//! - `request_full`: `record_request_at` with token usage and a time to first
//!   token: 3 counter adds and 4 bound-histogram records (`requests`,
//!   `request.duration`, `tokens` ×2, `tokens.per_request` ×2,
//!   `time_to_first_token`). The target is ≤ 100 ns.
//! - `request_plain`: a non-streamed answer without usage: 1 add, 1 histogram.
//! - `request_by_name`: the full record through the `GatewayMetrics` port, with
//!   the model and backend resolved from their names on every call.
//! - `otel_bound_by_hand`: what `request_full` does, done by hand with OTel bound
//!   instruments bound before the loop (3 bound counters, 4 bound histograms):
//!   the cheapest a user could record the same through the SDK.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use opentelemetry::metrics::{BoundCounter, BoundHistogram, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::{ManualReader, SdkMeterProvider};
use outcometer::otel::OtelBackend;
use outcometer::{Backend, GatewayMetrics, GatewayRecorder, Model, Usage};

const MODELS: usize = 8;
const BACKENDS: usize = 4;
const VARIANTS: usize = 8;
const CALLS: usize = MODELS * BACKENDS * VARIANTS;

const STATUSES: [u16; VARIANTS] = [200, 200, 200, 200, 200, 429, 500, 503];

struct Call {
    model: Model,
    backend: Backend,
    model_name: String,
    backend_name: String,
    status: u16,
    duration: Duration,
    usage: Usage,
    ttft: Duration,
}

fn calls(recorder: &GatewayRecorder) -> Vec<Call> {
    (0..CALLS)
        .map(|i| {
            let (m, b, v) = (i / (BACKENDS * VARIANTS), (i / VARIANTS) % BACKENDS, i % VARIANTS);
            let model_name = format!("model-{m}.{v}b");
            let backend_name = format!("gpu-{b}");
            Call {
                model: recorder.model(&model_name),
                backend: recorder.backend(&backend_name),
                model_name,
                backend_name,
                status: STATUSES[v],
                duration: Duration::from_millis(40 << v),
                usage: Usage::new(16 << v, 64 << v),
                ttft: Duration::from_millis(5 << v),
            }
        })
        .collect()
}

/// Times `iters` calls of `op` over the 256 calls (0, 1, …, 255, 0, …).
fn cycle(iters: u64, mut op: impl FnMut(usize)) -> Duration {
    let start = Instant::now();
    let mut i = 0;
    for _ in 0..iters {
        op(i);
        i += 1;
        if i == CALLS {
            i = 0;
        }
    }
    start.elapsed()
}

fn gateway(c: &mut Criterion) {
    let provider = SdkMeterProvider::builder()
        .with_reader(ManualReader::builder().build())
        .build();
    let backend = OtelBackend::from_provider(&provider)
        .namespace("nexus")
        .expect("a valid namespace");
    let recorder = GatewayRecorder::builder()
        .models((0..MODELS).flat_map(|m| (0..VARIANTS).map(move |v| format!("model-{m}.{v}b"))))
        .backends((0..BACKENDS).map(|b| format!("gpu-{b}")))
        .build(&backend)
        .expect("the gateway recorder");
    let calls = calls(&recorder);
    // Bind every histogram series once, as a warm service has.
    for call in &calls {
        recorder.record_request_at(
            call.model,
            call.backend,
            call.status,
            call.duration,
            Some(call.usage),
            Some(call.ttft),
        );
    }

    let mut group = c.benchmark_group("gateway");
    let cells: Vec<AtomicU64> = (0..CALLS).map(|_| AtomicU64::new(0)).collect();
    group.bench_function("atomic_floor", |b| {
        b.iter_custom(|iters| {
            cycle(iters, |i| {
                cells[black_box(i)].fetch_add(1, Ordering::Relaxed);
            })
        })
    });
    group.bench_function("request_full", |b| {
        b.iter_custom(|iters| {
            cycle(iters, |i| {
                let call = &calls[black_box(i)];
                recorder.record_request_at(
                    call.model,
                    call.backend,
                    call.status,
                    call.duration,
                    Some(call.usage),
                    Some(call.ttft),
                );
            })
        })
    });
    group.bench_function("request_plain", |b| {
        b.iter_custom(|iters| {
            cycle(iters, |i| {
                let call = &calls[black_box(i)];
                recorder.record_request_at(call.model, call.backend, call.status, call.duration, None, None);
            })
        })
    });
    group.bench_function("request_by_name", |b| {
        b.iter_custom(|iters| {
            cycle(iters, |i| {
                let call = &calls[black_box(i)];
                recorder.record_request(
                    &call.model_name,
                    &call.backend_name,
                    call.status,
                    call.duration,
                    Some(call.usage),
                    Some(call.ttft),
                );
            })
        })
    });

    let meter = provider.meter("peers");
    let counter = meter.u64_counter("peer.requests").build();
    let tokens = meter.u64_counter("peer.tokens").build();
    let histogram = |name: &'static str| meter.f64_histogram(name).build();
    let (duration, per_request, ttft) = (
        histogram("peer.request.duration"),
        histogram("peer.tokens.per_request"),
        histogram("peer.time_to_first_token"),
    );
    struct Bound {
        requests: BoundCounter<u64>,
        prompt: BoundCounter<u64>,
        completion: BoundCounter<u64>,
        duration: BoundHistogram<f64>,
        prompt_size: BoundHistogram<f64>,
        completion_size: BoundHistogram<f64>,
        ttft: BoundHistogram<f64>,
    }
    let bound: Vec<Bound> = calls
        .iter()
        .map(|call| {
            let model = KeyValue::new("model", call.model_name.clone());
            let backend = KeyValue::new("backend", call.backend_name.clone());
            let status = KeyValue::new("status", call.status.to_string());
            let pair = [model.clone(), backend.clone()];
            let typed = |t: &'static str| [model.clone(), backend.clone(), KeyValue::new("type", t)];
            let sized = |t: &'static str| [model.clone(), KeyValue::new("type", t)];
            Bound {
                requests: counter.bind(&[model.clone(), backend.clone(), status]),
                prompt: tokens.bind(&typed("prompt")),
                completion: tokens.bind(&typed("completion")),
                duration: duration.bind(&pair),
                prompt_size: per_request.bind(&sized("prompt")),
                completion_size: per_request.bind(&sized("completion")),
                ttft: ttft.bind(&pair),
            }
        })
        .collect();
    group.bench_function("otel_bound_by_hand", |b| {
        b.iter_custom(|iters| {
            cycle(iters, |i| {
                let i = black_box(i);
                let (call, bound) = (&calls[i], &bound[i]);
                bound.requests.add(1);
                bound.duration.record(call.duration.as_secs_f64());
                bound.prompt.add(call.usage.prompt_tokens);
                bound.completion.add(call.usage.completion_tokens);
                bound.prompt_size.record(call.usage.prompt_tokens as f64);
                bound.completion_size.record(call.usage.completion_tokens as f64);
                bound.ttft.record(call.ttft.as_secs_f64());
            })
        })
    });
    group.finish();
}

criterion_group!(benches, gateway);
criterion_main!(benches);
