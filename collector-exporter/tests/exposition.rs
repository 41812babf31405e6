//! The exposition encoder against `opentelemetry-prometheus` (the oracle), against
//! the Prometheus grammar (names, escaping), and its allocations per scrape.

use std::collections::BTreeMap;

use allocation_counter::measure;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::Resource;
use outcometer::catalog::register_shipped_families;
use outcometer::otel::OtelBackend;
use outcometer::toolkit::{AnyInstrument, Backend};
use outcometer_exporter::exposition::Format;
use outcometer_exporter::{ExporterKind, Telemetry};
use prometheus::{Encoder as _, TextEncoder};
use proptest::prelude::*;

/// One sample: metric name, labels (sorted), value.
type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

/// Parses a label set `{k="v",…}` with the exposition escapes; `None` if malformed.
fn parse_labels(text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    let mut rest = text.strip_prefix('{')?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            labels.sort();
            return Some((labels, after));
        }
        rest = rest.strip_prefix(',').unwrap_or(rest);
        if let Some(after) = rest.strip_prefix('}') {
            labels.sort();
            return Some((labels, after));
        }
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    _ => return None,
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.push((key.to_owned(), value));
        rest = &after[end + 1..];
    }
}

fn parse(body: &str) -> Samples {
    let mut samples = Samples::new();
    for line in body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name_end = line.find(['{', ' ']).expect("a sample line");
        let name = &line[..name_end];
        let (mut labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).unwrap_or_else(|| panic!("bad labels: {line}"))
        } else {
            (Vec::new(), &line[name_end..])
        };
        // Scope labels are off in ours; `le` compared as a number.
        labels.retain(|(k, _)| !k.starts_with("otel_scope_"));
        for (k, v) in labels.iter_mut() {
            if k == "le" && v != "+Inf" {
                *v = v.parse::<f64>().expect("numeric le").to_string();
            }
        }
        let value = rest.split_whitespace().next().expect("a value");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
        };
        samples.insert((name.to_owned(), labels), value);
    }
    samples
}

const INSTANCE: &str = "00000000-0000-4000-8000-000000000000";

/// Every shipped family with every series populated, and application instruments.
fn populate(backend: &OtelBackend, provider: &SdkMeterProvider) {
    register_shipped_families(backend).expect("shipped families");
    let registry = backend.registry().expect("registry");
    // Admit a few hosts, as recording through the recorder would.
    let delivery = outcometer::DeliveryRecorder::builder()
        .build(backend)
        .expect("delivery");
    for host in 0..25 {
        delivery.endpoint(&format!("https://h{host}.example"));
    }
    for instrument in registry.instruments() {
        let def = instrument.def();
        let mut first_complete = None;
        for s in 0..def.series_bound() {
            // Only series a recorder can reach: every dimension has its value
            // (an admission slot not yet admitted has none).
            let coords = def.coordinates(s).expect("in range");
            let complete = def.dimensions().iter().zip(coords).all(|(dim, coord)| {
                let mut attributes = Vec::new();
                dim.attributes(coord, &mut attributes);
                !attributes.is_empty()
            });
            if complete {
                instrument.record_raw(s, 1.0 + (s % 13) as f64 * 0.37);
                first_complete.get_or_insert(s);
            }
        }
        // A second measurement in another bucket of a reachable series.
        if let (AnyInstrument::Histogram(_), Some(s)) = (&instrument, first_complete) {
            instrument.record_raw(s, 12.5);
        }
    }
    let meter = provider.meter("app");
    let jobs = meter.u64_counter("app.jobs").with_unit("{job}").build();
    jobs.add(
        3,
        &[
            KeyValue::new("queue", "emails"),
            KeyValue::new("tenant.id", "a\"b\\c"),
        ],
    );
    jobs.add(4, &[KeyValue::new("queue", "line\nbreak")]);
    let latency = meter
        .f64_histogram("app.latency")
        .with_unit("s")
        .with_boundaries(vec![0.1, 1.0])
        .build();
    latency.record(0.05, &[KeyValue::new("route", "/a")]);
    latency.record(2.0, &[KeyValue::new("route", "/a")]);
    let conns = meter.i64_up_down_counter("app.connections").build();
    conns.add(5, &[]);
    let ratio = meter.f64_gauge("app.cache.fill").with_unit("1").build();
    ratio.record(0.75, &[KeyValue::new("cache", "users")]);
}

fn ours() -> (Telemetry, SdkMeterProvider) {
    let telemetry = Telemetry::builder()
        .service_name("equivalence")
        .service_instance_id(INSTANCE)
        .namespace("svc")
        .exporters([ExporterKind::Prometheus])
        .build_without_pull_server()
        .expect("pipeline");
    let provider = telemetry.provider().clone();
    (telemetry, provider)
}

fn oracle_body() -> String {
    let registry = prometheus::Registry::new();
    let reader = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()
        .expect("oracle");
    let resource = Resource::builder()
        .with_attributes([
            KeyValue::new("service.name", "equivalence"),
            KeyValue::new("service.instance.id", INSTANCE),
        ])
        .build();
    let (provider, backend) = OtelBackend::with_views(
        SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader),
    );
    let backend = backend.namespace("svc").expect("namespace");
    populate(&backend, &provider);
    let mut body = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut body)
        .expect("oracle encodes");
    String::from_utf8(body).expect("utf-8")
}

#[test]
fn samples_equal_the_opentelemetry_prometheus_exporter_but_for_documented_differences() {
    let (telemetry, provider) = ours();
    populate(&telemetry.backend(), &provider);
    let service = telemetry.metrics_service();
    let text = parse(&service.render_as(Format::Text));
    let oracle = parse(&oracle_body());
    // Documented differences: the oracle's `target_info` carries the SDK's
    // telemetry.sdk.* attributes from its own detector, which ours has too; the
    // only resource attribute that may differ is none here. Compare everything.
    let strip = |s: &Samples| -> Samples {
        s.iter()
            .filter(|((name, _), _)| name != "target_info")
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    let (ours_samples, oracle_samples) = (strip(&text), strip(&oracle));
    let missing: Vec<_> = oracle_samples
        .keys()
        .filter(|k| !ours_samples.contains_key(*k))
        .collect();
    let extra: Vec<_> = ours_samples
        .keys()
        .filter(|k| !oracle_samples.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}"
    );
    for (key, value) in &oracle_samples {
        let got = ours_samples[key];
        assert!(
            (got - value).abs() <= 1e-9 * value.abs().max(1.0),
            "{key:?}: {got} != {value}"
        );
    }
    assert!(
        oracle_samples.len() > 2_000,
        "{} samples compared",
        oracle_samples.len()
    );
    // OpenMetrics carries the same samples (counters keep `_total` on samples).
    let om_body = service.render_as(Format::OpenMetrics);
    assert!(om_body.ends_with("# EOF\n"));
    let om = strip(&parse(om_body.trim_end_matches("# EOF\n")));
    assert_eq!(om.len(), ours_samples.len());
}

#[test]
fn application_names_are_not_suffixed_twice() {
    let (telemetry, provider) = ours();
    let meter = provider.meter("app");
    meter.u64_counter("jobs.done_total").build().add(1, &[]);
    meter
        .f64_gauge("x.seconds")
        .with_unit("s")
        .build()
        .record(1.0, &[]);
    meter.u64_counter("a..b__c").build().add(1, &[]);
    let body = telemetry.metrics_service().render();
    assert!(body.contains("\njobs_done_total 1\n"), "{body}");
    assert!(body.contains("\nx_seconds 1\n"), "{body}");
    assert!(body.contains("\na_b_c_total 1\n"), "{body}");
    assert!(
        !body.contains("_total_total") && !body.contains("seconds_seconds"),
        "{body}"
    );
}

#[test]
fn scope_labels_are_a_setting() {
    let telemetry = Telemetry::builder()
        .exporters([ExporterKind::Prometheus])
        .prometheus_scope_labels(true)
        .build_without_pull_server()
        .expect("pipeline");
    let delivery = outcometer::DeliveryRecorder::builder()
        .build(&telemetry.backend())
        .expect("recorder");
    outcometer::DeliveryMetrics::record_retry(&delivery, "https://a.example");
    let body = telemetry.metrics_service().render();
    assert!(
        body.contains("delivery_retries_total{server_address=\"a.example\",otel_scope_name=\"outcometer\""),
        "{body}"
    );
}

#[test]
fn a_disabled_pipeline_still_serves_an_empty_exposition() {
    let telemetry = Telemetry::builder()
        .disabled(true)
        .build_without_pull_server()
        .expect("pipeline");
    let service = telemetry.metrics_service();
    assert_eq!(service.render(), "");
    assert_eq!(service.render_as(Format::OpenMetrics), "# EOF\n");
}

#[test]
fn a_warm_scrape_allocates_the_same_whatever_the_series_count() {
    let allocations = |hosts: usize| {
        let (telemetry, _) = ours();
        let delivery = outcometer::DeliveryRecorder::builder()
            .endpoints(outcometer::AdmissionPolicy::first_k(hosts))
            .build(&telemetry.backend())
            .expect("recorder");
        for host in 0..hosts {
            outcometer::DeliveryMetrics::record_retry(&delivery, &format!("https://h{host}.example"));
        }
        let service = telemetry.metrics_service();
        let mut buffer = Vec::new();
        for _ in 0..3 {
            service.render_into(Format::Text, &mut buffer);
        }
        measure(|| service.render_into(Format::Text, &mut buffer)).count_total
    };
    let (small, large) = (allocations(50), allocations(2_000));
    assert_eq!(small, large, "allocations per scrape depend on the series count");
    assert!(large < 64, "{large} allocations per warm scrape");
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any instrument name, unit, attribute key and value: names come out valid,
    /// values come back exactly after unescaping, in both formats.
    #[test]
    fn any_names_and_label_text_render_validly_and_round_trip(
        name in "[a-zA-Z][a-zA-Z0-9._/-]{0,30}",
        unit in prop::sample::select(vec!["", "s", "ms", "By", "By/s", "1", "{req}", "%", "weird unit"]),
        key in "[a-zA-Z0-9._ -]{1,12}",
        value in any::<String>(),
        monotonic in any::<bool>(),
    ) {
        let (telemetry, provider) = ours();
        let meter = provider.meter("app");
        let kv = [KeyValue::new(key.clone(), value.clone())];
        if monotonic {
            meter.u64_counter(name.clone()).with_unit(unit).build().add(2, &kv);
        } else {
            meter.f64_gauge(name.clone()).with_unit(unit).build().record(2.5, &kv);
        }
        for format in [Format::Text, Format::OpenMetrics] {
            let body = telemetry.metrics_service().render_as(format);
            let samples = parse(body.trim_end_matches("# EOF\n"));
            let ours: Vec<_> = samples.iter().filter(|((n, _), _)| n != "target_info").collect();
            prop_assert_eq!(ours.len(), 1, "{}", body);
            let ((metric, labels), _) = ours[0];
            prop_assert!(valid_metric_name(metric), "{}", metric);
            prop_assert!(labels.iter().all(|(k, _)| valid_label_name(k)), "{:?}", labels);
            prop_assert_eq!(&labels[0].1, &value);
            for line in body.lines().filter(|l| l.starts_with("# TYPE") || l.starts_with("# UNIT")) {
                let family = line.split(' ').nth(2).unwrap_or("");
                prop_assert!(valid_metric_name(family), "{}", line);
            }
        }
    }
}

#[test]
fn cell_instruments_built_outside_a_family_are_rendered_once() {
    use outcometer::toolkit::{InstrumentDef, InstrumentSpec, Namespace, Series};
    static LOOSE: InstrumentSpec = InstrumentSpec::counter("loose.things", "{thing}", "Built by hand.");
    let (telemetry, _) = ours();
    let backend = telemetry.backend();
    let def = InstrumentDef::new(&LOOSE, &Namespace::NONE, vec![]).expect("definition");
    let counter = backend.counter(std::sync::Arc::new(def));
    counter.add(Series(0), 3);
    let delivery = outcometer::DeliveryRecorder::builder()
        .build(&backend)
        .expect("recorder");
    outcometer::DeliveryMetrics::record_retry(&delivery, "https://a.example");
    for format in [Format::Text, Format::OpenMetrics] {
        let body = telemetry.metrics_service().render_as(format);
        assert_eq!(body.matches("\nloose_things_total 3\n").count(), 1, "{body}");
        assert_eq!(
            body.matches("svc_delivery_retries_total{server_address=\"a.example\"} 1\n")
                .count(),
            1,
            "{body}"
        );
    }
}

#[test]
fn instruments_registered_after_a_scrape_are_rendered_once_whatever_their_order() {
    use outcometer::toolkit::{InstrumentDef, InstrumentSpec, Namespace, Series};
    static LOOSE: InstrumentSpec = InstrumentSpec::counter("loose.calls", "{call}", "By hand.");
    static LOOSE_TIMES: InstrumentSpec =
        InstrumentSpec::histogram("loose.latency", "s", "By hand too.", &[0.1, 1.0]);
    let (telemetry, _) = ours();
    let backend = telemetry.backend();
    let def = |spec: &'static InstrumentSpec| {
        std::sync::Arc::new(InstrumentDef::new(spec, &Namespace::NONE, vec![]).expect("definition"))
    };
    backend.counter(def(&LOOSE)).add(Series(0), 1);
    let idem = outcometer::IdempotencyRecorder::builder()
        .build(&backend)
        .expect("idempotency");
    outcometer::IdempotencyMetrics::record_miss(&idem, outcometer::UserScope::ANONYMOUS);
    let service = telemetry.metrics_service();
    let _ = service.render_as(Format::Text);
    // After a scrape: a family whose admission puts the overflow meta counter
    // first, a histogram by hand, and the same counter built by hand again.
    let delivery = outcometer::DeliveryRecorder::builder()
        .build(&backend)
        .expect("delivery");
    outcometer::DeliveryMetrics::record_retry(&delivery, "https://a.example");
    backend.histogram(def(&LOOSE_TIMES)).record(Series(0), 0.5);
    backend.counter(def(&LOOSE)).add(Series(0), 2);
    for format in [Format::Text, Format::OpenMetrics] {
        let body = service.render_as(format);
        let mut types: Vec<&str> = body.lines().filter(|l| l.starts_with("# TYPE")).collect();
        let all = types.len();
        types.sort_unstable();
        types.dedup();
        assert_eq!(types.len(), all, "every family once:\n{body}");
        assert_eq!(body.matches("\nloose_calls_total 3\n").count(), 1, "{body}");
        assert_eq!(
            body.matches("loose_latency_seconds_count 1\n").count(),
            1,
            "{body}"
        );
        assert!(
            body.contains("svc_delivery_retries_total{server_address=\"a.example\"} 1\n"),
            "{body}"
        );
        assert!(body.contains("svc_idempotency_requests_total{"), "{body}");
    }
}
