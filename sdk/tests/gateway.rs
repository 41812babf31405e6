//! The gateway family against hostile input: any status code stays in the
//! status-text domain, model admission keeps distinct names distinct and counts
//! every fold, every emitted name is a valid Prometheus name under any namespace,
//! and 100,000 junk model names keep every instrument within its declared bound.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use outcometer::catalog::prometheus_name;
use outcometer::testing::InMemoryBackend;
use outcometer::toolkit::{Backend as _, Coordinate, Dimension, OTHER, REGISTERED_STATUS_CODES};
use outcometer::{GatewayError, GatewayMetrics, GatewayRecorder, HttpStatus, StatusTextDimension, Usage};
use proptest::prelude::*;

/// The Prometheus metric-name grammar.
fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The Prometheus label-name grammar.
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Model names a client might send: near-duplicates that a "sanitiser" would
/// merge, arbitrary text, the fold value itself, empty and over-long names.
fn model_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "gpt-4[._-]1",
        "[a-c][.\\-_:/ ]?[0-9]",
        any::<String>(),
        Just(String::new()),
        Just(OTHER.to_owned()),
        "\\PC{250,260}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_status_code_is_its_text_or_other(code in any::<u16>()) {
        let dimension = StatusTextDimension::new("status");
        let index = HttpStatus(code).coordinate();
        prop_assert!(index < dimension.cardinality());
        let mut attributes = Vec::new();
        dimension.attributes(index, &mut attributes);
        prop_assert_eq!(attributes.len(), 1);
        let text = attributes[0].value.to_text();
        if REGISTERED_STATUS_CODES.iter().any(|(c, _)| *c == code) {
            prop_assert_eq!(text, code.to_string());
        } else {
            prop_assert_eq!(text, OTHER);
        }
        // And through the recorder, on the `requests` counter.
        let backend = InMemoryBackend::with_namespace("nexus").unwrap();
        let m = GatewayRecorder::builder().build(&backend).unwrap();
        m.record_request("m", "b", code, Duration::ZERO, None, None);
        let points = backend.points();
        let statuses: Vec<&str> = points
            .iter()
            .filter(|p| p.name == "nexus.requests")
            .flat_map(|p| p.attributes.iter().filter(|(k, _)| k == "status").map(|(_, v)| v.as_str()))
            .collect();
        prop_assert_eq!(statuses.len(), 1);
        prop_assert!(statuses[0] == OTHER || statuses[0].parse::<u16>() == Ok(code));
    }

    /// Distinct model names stay distinct, nothing outside the bound is emitted,
    /// and the overflow counter counts exactly the folds into `_OTHER`.
    #[test]
    fn model_admission_keeps_names_distinct_stays_bounded_and_counts_folds(
        inputs in prop::collection::vec(model_name(), 1..120),
        allow in prop::collection::vec("[a-z]{1,3}", 0..4),
        k in 0usize..6,
    ) {
        prop_assume!(!allow.is_empty() || k > 0);
        let backend = InMemoryBackend::with_namespace("nexus").unwrap();
        let m = GatewayRecorder::builder()
            .models(allow.clone())
            .admitted_models(k)
            .build(&backend)
            .unwrap();
        let distinct_allowed: HashSet<&String> = allow.iter().collect();
        let capacity = distinct_allowed.len() + k;
        let mut names: HashMap<outcometer::Model, String> = HashMap::new();
        let mut folds = 0u64;
        for input in &inputs {
            let model = m.model(input);
            // Recording through the port resolves `input` twice more (fallback
            // from it to itself) and once for the error.
            m.record_fallback(input, input);
            m.record_error(input, GatewayError::ModelNotFound);
            if m.model_name(model) == OTHER {
                folds += 4;
                continue;
            }
            // The same coordinate always means the same name, and vice versa.
            let previous = names.entry(model).or_insert_with(|| input.clone());
            prop_assert_eq!(previous.as_str(), input.as_str());
            prop_assert_eq!(m.model_name(model), input.as_str());
        }
        let distinct: HashSet<&String> = names.values().collect();
        prop_assert_eq!(distinct.len(), names.len());
        prop_assert!(names.len() <= capacity);
        let overflow = backend
            .counter_value("outcometer.attribute.overflow", &[("attribute", "model")])
            .unwrap_or(0);
        prop_assert_eq!(overflow, folds);
        for point in backend.points().iter().filter(|p| p.name.starts_with("nexus.")) {
            for (key, value) in &point.attributes {
                if key.ends_with("model") {
                    prop_assert!(value == OTHER || names.values().any(|n| n == value), "{}", value);
                }
            }
        }
        let errors = backend.points().iter().filter(|p| p.name == "nexus.errors").count();
        prop_assert!(errors <= capacity + 1);
    }

    /// Every name the family emits is a valid Prometheus metric name and every
    /// attribute key a valid label name, whatever valid namespace it is built under.
    #[test]
    fn every_emitted_name_is_valid_under_any_namespace(namespace in "[a-zA-Z][a-zA-Z0-9_./-]{0,40}[a-zA-Z0-9_/-]") {
        let backend = InMemoryBackend::with_namespace(&namespace).unwrap();
        GatewayRecorder::builder().build(&backend).unwrap();
        let registry = backend.registry().unwrap();
        for instrument in registry.instruments() {
            let def = instrument.def();
            let name = prometheus_name(def);
            prop_assert!(valid_metric_name(&name), "{}", name);
            for doc in def.dimensions().iter().flat_map(|d| d.docs()) {
                let mut label = String::new();
                outcometer::catalog::push_sanitized(&mut label, doc.key);
                prop_assert_eq!(label.as_str(), doc.key, "label keys need no sanitising");
                prop_assert!(valid_label_name(doc.key), "{}", doc.key);
            }
        }
    }
}

#[test]
fn a_hundred_thousand_junk_model_names_stay_within_every_bound() {
    let backend = InMemoryBackend::with_namespace("nexus").unwrap();
    let m = GatewayRecorder::builder()
        .models(["gpt-4.1", "llama-3-70b"])
        .admitted_models(16)
        .backends(["gpu-1", "gpu-2"])
        .admitted_backends(4)
        .build(&backend)
        .unwrap();
    let junk = 100_000usize;
    for i in 0..junk {
        let model = format!("junk-model-{i}");
        let backend_name = format!("gpu-{}", i % 50);
        m.record_request(
            &model,
            &backend_name,
            [200, 429, 500, 599][i % 4],
            Duration::from_millis(i as u64 % 5_000),
            Some(Usage::new(i as u64 % 900, i as u64 % 90)),
            Some(Duration::from_millis(15)),
        );
        m.record_error(&model, GatewayError::ALL[i % GatewayError::ALL.len()]);
        m.record_fallback(&model, "gpt-4.1");
        m.record_health_check(&backend_name, Duration::from_millis(3));
    }
    m.record_request("llama-3-70b", "gpu-1", 200, Duration::ZERO, None, None);
    let registry = backend.registry().unwrap();
    let bounds: HashMap<String, usize> = registry
        .instruments()
        .iter()
        .map(|i| (i.def().name().to_owned(), i.def().series_bound()))
        .collect();
    let mut series: HashMap<String, usize> = HashMap::new();
    let mut models = HashSet::new();
    for point in backend.points() {
        *series.entry(point.name.clone()).or_default() += 1;
        for (key, value) in &point.attributes {
            if key.ends_with("model") {
                models.insert(value.clone());
            }
        }
    }
    for (name, count) in &series {
        assert!(
            count <= &bounds[name],
            "{name}: {count} series over its bound {}",
            bounds[name]
        );
    }
    // 2 configured + 16 admitted + `_OTHER`.
    assert_eq!(models.len(), 2 + 16 + 1, "{models:?}");
    assert!(models.contains("gpt-4.1") && models.contains(OTHER));
    assert!(series["nexus.requests"] <= (2 + 16 + 1) * (2 + 4 + 1) * 4);
    // Each call that named a junk model past the first 16 folded once per resolution.
    let folded = (junk - 16) as u64;
    let overflow = backend
        .counter_value("outcometer.attribute.overflow", &[("attribute", "model")])
        .unwrap();
    assert_eq!(
        overflow,
        folded * 3,
        "request, error and fallback each resolve once"
    );
    assert_eq!(m.request_count(), junk as u64 + 1);
    assert_eq!(m.error_count(), junk as u64);
    assert_eq!(m.fallback_count(), junk as u64);
}
