//! Replicas: three demos, each with its own pipeline and so its own random
//! `service.instance.id`, push OTLP/gRPC through one rotel collector, which
//! forwards OTLP/HTTP to a receiver decoding with `opentelemetry-proto`. Grouped
//! by `service.instance.id`, the latest cumulative points give each replica
//! exactly its own tally, the totals across ids the sum of the three tallies, and
//! no series of one replica is found under another's id (one resource per id,
//! every series keeps one start time and never decreases). Skips loudly without
//! rotel unless `CI=true`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as NumberValue;
use opentelemetry_proto::tonic::metrics::v1::NumberDataPoint;
use outcometer::{ErrorKind, IdempotencyOutcome, StoreOperation};
use outcometer_examples::demo::{Args, Demo, Snapshot};
use outcometer_tests::e2e::{tool, Rotel};
use outcometer_tests::{attributes, Receiver};

const NAMESPACE: &str = "wildside";
const SERVICE: &str = "outcometer-replica";
const SEEDS: [u64; 3] = [21, 22, 23];

/// One data point as it arrived: start time, time, value (a histogram's count).
#[derive(Clone, Debug)]
struct Point {
    start: u64,
    time: u64,
    value: f64,
}

/// A series: metric name and its data point's attributes (`key=value`, sorted).
type Series = (String, Vec<String>);

/// Everything that arrived, by `service.instance.id`.
#[derive(Debug, Default)]
struct ByInstance {
    /// Every distinct resource (attributes, sorted) seen under each id.
    resources: BTreeMap<String, BTreeSet<Vec<String>>>,
    /// Every point of each series under each id, in arrival order.
    series: BTreeMap<String, BTreeMap<Series, Vec<Point>>>,
    /// Resources that arrived without a `service.instance.id`.
    anonymous: Vec<Vec<String>>,
}

impl ByInstance {
    fn from(requests: &[ExportMetricsServiceRequest]) -> ByInstance {
        let mut out = ByInstance::default();
        for rm in requests.iter().flat_map(|r| r.resource_metrics.iter()) {
            let resource = rm
                .resource
                .as_ref()
                .map(|r| attributes(&r.attributes))
                .unwrap_or_default();
            let Some(id) = resource
                .iter()
                .find_map(|kv| kv.strip_prefix("service.instance.id="))
                .map(str::to_owned)
            else {
                out.anonymous.push(resource);
                continue;
            };
            out.resources.entry(id.clone()).or_default().insert(resource);
            let series = out.series.entry(id).or_default();
            for metric in rm.scope_metrics.iter().flat_map(|sm| sm.metrics.iter()) {
                let number = |p: &NumberDataPoint| Point {
                    start: p.start_time_unix_nano,
                    time: p.time_unix_nano,
                    value: match p.value {
                        Some(NumberValue::AsInt(i)) => i as f64,
                        Some(NumberValue::AsDouble(d)) => d,
                        None => f64::NAN,
                    },
                };
                let points: Vec<(Vec<String>, Point)> = match metric.data.as_ref() {
                    Some(Data::Sum(s)) => s
                        .data_points
                        .iter()
                        .map(|p| (attributes(&p.attributes), number(p)))
                        .collect(),
                    Some(Data::Gauge(g)) => g
                        .data_points
                        .iter()
                        .map(|p| (attributes(&p.attributes), number(p)))
                        .collect(),
                    Some(Data::Histogram(h)) => h
                        .data_points
                        .iter()
                        .map(|p| {
                            let point = Point {
                                start: p.start_time_unix_nano,
                                time: p.time_unix_nano,
                                value: p.count as f64,
                            };
                            (attributes(&p.attributes), point)
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                for (attrs, point) in points {
                    series
                        .entry((metric.name.clone(), attrs))
                        .or_default()
                        .push(point);
                }
            }
        }
        out
    }

    /// The sum, over `id`'s series of `metric` whose attributes include every
    /// `filter`, of each series' latest value (the point with the latest time).
    fn total(&self, id: &str, metric: &str, filter: &[String]) -> f64 {
        self.series
            .get(id)
            .into_iter()
            .flatten()
            .filter(|((name, attrs), _)| name == metric && filter.iter().all(|f| attrs.contains(f)))
            .filter_map(|(_, points)| points.iter().max_by_key(|p| p.time))
            .map(|p| p.value)
            .sum()
    }
}

/// `(metric, attribute filter, what the demo's own tally says)`.
type Expectation = (String, Vec<String>, Box<dyn Fn(&Snapshot) -> u64>);

/// An [`Expectation`] for every counter, histogram count and gauge the tally
/// can vouch for.
fn expectations() -> Vec<Expectation> {
    let name = |n: &str| format!("{NAMESPACE}.{n}");
    let mut out: Vec<Expectation> = Vec::new();
    for &outcome in IdempotencyOutcome::ALL {
        let filter = vec![format!("outcome={}", outcome.as_str())];
        out.push((
            name("idempotency.requests"),
            filter.clone(),
            Box::new(move |s| s.outcome(outcome)),
        ));
        out.push((
            name("idempotency.request.duration"),
            filter,
            Box::new(move |s| s.outcome(outcome)),
        ));
    }
    for &operation in StoreOperation::ALL {
        let op = format!("operation={}", operation.as_str());
        out.push((
            name("idempotency.store.fallbacks"),
            vec![op.clone()],
            Box::new(move |s| s.store_fallbacks_of(operation)),
        ));
        for &kind in ErrorKind::ALL {
            out.push((
                name("idempotency.store.errors"),
                vec![op.clone(), format!("error.type={}", kind.as_str())],
                Box::new(move |s| s.store_errors_of(operation, kind)),
            ));
        }
    }
    let attempts = name("delivery.attempts");
    out.push((
        attempts.clone(),
        vec!["outcome=success".into()],
        Box::new(|s| s.successes),
    ));
    out.push((
        attempts.clone(),
        vec!["outcome=failure".into()],
        Box::new(|s| s.failures),
    ));
    out.push((
        attempts.clone(),
        vec!["outcome=error".into()],
        Box::new(|s| s.errors),
    ));
    out.push((
        attempts,
        vec!["error.type=timeout".into()],
        Box::new(|s| s.timeouts),
    ));
    out.push((name("delivery.duration"), vec![], Box::new(|s| s.attempts())));
    out.push((name("delivery.retries"), vec![], Box::new(|s| s.retries)));
    out.push((
        name("delivery.dead_letters"),
        vec![],
        Box::new(|s| s.dead_letters),
    ));
    out.push((name("delivery.active_tasks"), vec![], Box::new(|_| 0)));
    out
}

#[test]
fn three_replicas_through_one_rotel_add_up_and_never_collide() {
    let Some(rotel) = tool("OUTCOMETER_ROTEL", "rotel-agent") else {
        return;
    };
    let began = Instant::now();
    let backend = Receiver::http("127.0.0.1:0");
    let collector = Rotel::start(&rotel, &format!("http://{}", backend.addr));
    let endpoint = format!("http://{}", collector.grpc);

    // Start all three before any load, so they overlap for the whole run.
    let demos: Vec<Demo> = SEEDS
        .iter()
        .map(|&seed| {
            let settings: Vec<(&str, String)> = vec![
                ("OTEL_SERVICE_NAME", SERVICE.into()),
                ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1".into()),
                ("OTEL_EXPORTER_PROMETHEUS_PORT", "0".into()),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
                ("OTEL_METRIC_EXPORT_INTERVAL", "500".into()),
            ];
            let args = Args {
                duration: Duration::from_secs(4),
                rate: 100,
                users: 50,
                endpoints: 4,
                namespace: NAMESPACE.into(),
                seed,
                ..Args::default()
            };
            Demo::start(args, move |name| {
                settings.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
            })
            .expect("demo starts")
        })
        .collect();
    let ids: Vec<String> = demos
        .iter()
        .map(|d| d.telemetry().config().resource["service.instance.id"].clone())
        .collect();
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        3,
        "each pipeline draws its own instance id: {ids:?}"
    );

    // Run concurrently; each replica stops and flushes on its own thread.
    let runs: Vec<_> = demos
        .into_iter()
        .map(|demo| {
            std::thread::spawn(move || {
                let seen = demo.run(std::future::pending(), |_| {});
                demo.shutdown()
                    .expect("shutdown flushes the last interval to rotel");
                seen
            })
        })
        .collect();
    let seen: Vec<Snapshot> = runs
        .into_iter()
        .map(|r| r.join().expect("replica thread"))
        .collect();
    for (id, s) in ids.iter().zip(&seen) {
        assert!(s.requests() > 0 && s.attempts() > 0, "{id}: {s}");
    }
    let ran = began.elapsed();

    let expected = expectations();
    let matches = |got: &ByInstance| {
        ids.iter().zip(&seen).all(|(id, s)| {
            expected
                .iter()
                .all(|(metric, filter, want)| got.total(id, metric, filter) == want(s) as f64)
        })
    };
    let arrived = backend.received.wait_for(Duration::from_secs(20), |requests| {
        matches(&ByInstance::from(requests))
    });
    let got = ByInstance::from(&backend.received.requests());

    // Exactly the three replicas, each under one resource of its own.
    assert!(
        got.anonymous.is_empty(),
        "resources without service.instance.id: {:?}",
        got.anonymous
    );
    assert_eq!(
        got.resources.keys().collect::<BTreeSet<_>>(),
        ids.iter().collect::<BTreeSet<_>>(),
        "the ids that arrived are the replicas' own\nrotel said:\n{}",
        collector.output()
    );
    for (id, resources) in &got.resources {
        assert_eq!(
            resources.len(),
            1,
            "{id} arrived under more than one resource: {resources:?}"
        );
        let resource = resources.iter().next().expect("one");
        assert!(
            resource.contains(&format!("service.name={SERVICE}")),
            "{id}: {resource:?}"
        );
    }
    // No series mixes two replicas: under each id every series has one start
    // time and, being cumulative, never goes down in time order.
    for (id, series) in &got.series {
        for ((metric, attrs), points) in series {
            let starts: BTreeSet<u64> = points.iter().map(|p| p.start).collect();
            assert_eq!(starts.len(), 1, "{id} {metric} {attrs:?}: start times {starts:?}");
            if metric.ends_with(".active_tasks") {
                continue; // a gauge
            }
            let mut in_time = points.clone();
            in_time.sort_by_key(|p| p.time);
            assert!(
                in_time.windows(2).all(|w| w[0].value <= w[1].value),
                "{id} {metric} {attrs:?} went down: {in_time:?}"
            );
        }
    }

    // Each replica's totals are its own tally, exactly.
    for (id, s) in ids.iter().zip(&seen) {
        for (metric, filter, want) in &expected {
            assert_eq!(
                got.total(id, metric, filter),
                want(s) as f64,
                "{id} {metric} {filter:?}; the replica saw {s}"
            );
        }
    }
    // And across ids, the sum of the three tallies.
    for (metric, filter, want) in &expected {
        let across: f64 = ids.iter().map(|id| got.total(id, metric, filter)).sum();
        let summed: u64 = seen.iter().map(want).sum();
        assert_eq!(across, summed as f64, "{metric} {filter:?} across replicas");
    }
    assert!(arrived, "checked above; the wait agrees");
    let requests: u64 = seen.iter().map(Snapshot::requests).sum();
    let attempts: u64 = seen.iter().map(Snapshot::attempts).sum();
    eprintln!(
        "3 replicas: {requests} requests, {attempts} attempts; load and flush {:.1}s, all in {:.1}s",
        ran.as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
}
