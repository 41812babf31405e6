//! Bad input is absorbed: nothing panics, nothing escapes a domain, and no raw
//! user id, credential, path or query reaches an attribute value.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outcometer::testing::{InMemoryBackend, Point};
use outcometer::toolkit::{
    host_of, Admission, AdmissionPolicy, Backend, Hosts, Names, DELIVERY_RESULT_CARDINALITY, OTHER,
    REGISTERED_STATUS_CODES,
};
use outcometer::{
    AgeBucket, DeliveryMetrics, DeliveryRecorder, DeliveryResult, ErrorKind, IdempotencyMetrics,
    IdempotencyOutcome, IdempotencyRecorder, ScopeHasher,
};
use proptest::prelude::*;

fn any_error_kind() -> impl Strategy<Value = ErrorKind> {
    prop::sample::select(ErrorKind::ALL)
}

fn any_outcome() -> impl Strategy<Value = IdempotencyOutcome> {
    prop::sample::select(IdempotencyOutcome::ALL)
}

fn any_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (0u64..200_000).prop_map(Duration::from_secs),
    ]
}

/// A URL whose secret parts carry markers (`zz…`) that a host can never contain.
fn marked_url() -> impl Strategy<Value = (String, Vec<String>)> {
    let host = "[a-m]{1,8}(\\.[a-m]{2,6}){0,2}";
    let marker = "zz[n-z0-9]{8}";
    (
        prop::sample::select(vec!["https://", "http://", "//", "", "HTTPS://", "ftp://"]),
        prop::option::of((marker, marker)),
        host,
        prop::option::of(0u32..100_000),
        marker,
        marker,
        marker,
        prop::sample::select(vec!["", "é", "%2F", "..", " "]),
    )
        .prop_map(|(scheme, userinfo, host, port, path, query, fragment, junk)| {
            let mut url = scheme.to_owned();
            let mut secrets = vec![path.clone(), query.clone(), fragment.clone()];
            if let Some((user, password)) = userinfo {
                url.push_str(&format!("{user}:{password}@"));
                secrets.push(user);
                secrets.push(password);
            }
            url.push_str(&host);
            if let Some(port) = port {
                url.push_str(&format!(":{port}"));
            }
            url.push_str(&format!("/{path}{junk}?token={query}#{fragment}"));
            (url, secrets)
        })
}

fn all_values(points: &[Point]) -> impl Iterator<Item = &str> {
    points
        .iter()
        .flat_map(|p| p.attributes.iter().map(|(_, v)| v.as_str()))
}

fn series_per_instrument(points: &[Point]) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for p in points {
        *counts.entry(p.name.as_str()).or_insert(0) += 1;
    }
    counts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_string_resolves_inside_the_endpoint_domain(input in any::<String>(), k in 1usize..8) {
        let admission = Admission::new("server.address", &AdmissionPolicy::first_k(k), Hosts).unwrap();
        let index = admission.resolve(&input).index();
        prop_assert!(index <= k);
        if let Some(host) = admission.value(index) {
            prop_assert!(host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:".contains(&b)));
            prop_assert!(!host.is_empty() && host.len() <= 253);
        }
        if let Some(host) = host_of(&input) {
            prop_assert!(!host.contains(['/', '?', '#', '@']));
        }
    }

    #[test]
    fn credentials_paths_and_queries_never_reach_attributes(urls in prop::collection::vec(marked_url(), 1..20)) {
        let backend = InMemoryBackend::new();
        let m = DeliveryRecorder::builder().endpoints(AdmissionPolicy::first_k(4)).build(&backend).unwrap();
        for (url, _) in &urls {
            m.record_delivery_success(url, Duration::from_millis(5));
            m.record_delivery_failure(url, 500, Duration::from_millis(5));
            m.record_retry(url);
            m.record_dead_letter(url);
        }
        let points = backend.points();
        for (_, secrets) in &urls {
            for value in all_values(&points) {
                for secret in secrets {
                    prop_assert!(!value.to_ascii_lowercase().contains(secret.as_str()), "{value} leaks {secret}");
                }
            }
        }
        prop_assert!(series_per_instrument(&points).values().all(|n| *n <= DELIVERY_RESULT_CARDINALITY * 5));
    }

    #[test]
    fn any_status_code_stays_in_the_registered_domain(code in any::<u16>(), kind in any_error_kind()) {
        let failure = DeliveryResult::Failure(code);
        prop_assert!(failure.index() < DELIVERY_RESULT_CARDINALITY);
        prop_assert!(DeliveryResult::Error(kind).index() < DELIVERY_RESULT_CARDINALITY);
        let backend = InMemoryBackend::new();
        let m = DeliveryRecorder::builder().build(&backend).unwrap();
        m.record_delivery_failure("https://a.example", code, Duration::from_millis(1));
        let points = backend.points();
        let attempt = points.iter().find(|p| p.name == "delivery.attempts").unwrap();
        let status = attempt.attributes.iter().find(|(k, _)| k == "http.response.status_code");
        let error_type = &attempt.attributes.iter().find(|(k, _)| k == "error.type").unwrap().1;
        let registered = REGISTERED_STATUS_CODES.iter().any(|(c, _)| *c == code);
        match status {
            Some((_, v)) => {
                prop_assert!(registered);
                prop_assert_eq!(v, &code.to_string());
                prop_assert_eq!(error_type, v);
            }
            None => {
                prop_assert!(!registered);
                prop_assert_eq!(error_type.as_str(), "_OTHER");
            }
        }
    }

    #[test]
    fn user_ids_never_reach_attributes_and_scopes_stay_bounded(
        ids in prop::collection::vec("[A-Za-z0-9@._+-]{0,40}", 1..50),
        prefix_len in 1u8..=8,
        keyed in any::<bool>(),
        outcome in any_outcome(),
        age in any_duration(),
    ) {
        let hasher = if keyed { ScopeHasher::keyed(b"a deployment secret, 32 bytes...").unwrap() } else { ScopeHasher::sha256() };
        let backend = InMemoryBackend::new();
        let m = IdempotencyRecorder::builder().scope_prefix_len(prefix_len).admitted_scopes(16).scope_hasher(hasher).build(&backend).unwrap();
        for id in &ids {
            m.record_outcome(outcome, m.scope(id), Some(age));
            let hex = m.scope(id).hex();
            prop_assert!(id.is_empty() == (hex.as_str() == "anonymous"));
            prop_assert!(id.is_empty() || (hex.as_str().len() == 8 && hex.as_str().bytes().all(|b| b"0123456789abcdef".contains(&b))));
        }
        let points = backend.points();
        let mut scopes = HashSet::new();
        for p in points.iter().filter(|p| p.name == "idempotency.requests") {
            let scope = &p.attributes.iter().find(|(k, _)| k == "user_scope").unwrap().1;
            prop_assert!(scope == "anonymous" || scope == OTHER || scope.len() == usize::from(prefix_len));
            prop_assert!(scope != OTHER || prefix_len > 3);
            scopes.insert(scope.clone());
        }
        // 1–3 characters: every prefix and `anonymous`; 4–8: 16 admitted, `_OTHER`, `anonymous`.
        let bound = if prefix_len <= 3 { (1usize << (4 * prefix_len)) + 1 } else { 16 + 2 };
        prop_assert!(scopes.len() <= bound);
        for id in ids.iter().filter(|id| id.len() > 20) {
            prop_assert!(all_values(&points).all(|v| !v.contains(id.as_str())));
        }
    }

    #[test]
    fn any_timestamps_give_a_bucket_without_panicking(created in any::<i64>(), now in any::<i64>()) {
        let at = |secs: i64| if secs >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
        };
        if let (Some(created), Some(now)) = (at(created), at(now)) {
            let bucket = AgeBucket::from_timestamps(created, now);
            prop_assert!(bucket != AgeBucket::NotApplicable);
            if created >= now {
                prop_assert_eq!(bucket, AgeBucket::UnderOneMinute);
            }
        }
        let _ = AgeBucket::from_timestamps(SystemTime::now(), UNIX_EPOCH);
    }

    #[test]
    fn any_duration_is_recorded_finitely(durations in prop::collection::vec((any_duration(), any::<u16>(), any_error_kind()), 1..30)) {
        let backend = InMemoryBackend::new();
        let m = DeliveryRecorder::builder().build(&backend).unwrap();
        let idem = IdempotencyRecorder::builder().build(&backend).unwrap();
        for (d, code, kind) in &durations {
            m.record_delivery_success("https://a.example", *d);
            m.record_delivery_failure("https://a.example", *code, *d);
            m.record_delivery_error("https://a.example", *kind, *d);
            idem.record_hit(idem.scope("u"), *d);
        }
        for p in backend.points() {
            if let outcometer::testing::PointValue::Histogram(h) = p.value {
                prop_assert!(h.sum.is_finite() || h.sum == f64::INFINITY);
                prop_assert_eq!(h.bucket_counts.iter().sum::<u64>(), h.count);
            }
        }
        prop_assert_eq!(m.success_count() + m.failure_count() + m.error_count(), 3 * durations.len() as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Generic admission: distinct admitted values stay distinct (no merging by
    /// "sanitising"), nothing outside the bound is emitted, and the overflow
    /// counter counts exactly the folds into `_OTHER`.
    #[test]
    fn admission_keeps_values_distinct_stays_bounded_and_counts_folds(
        inputs in prop::collection::vec(prop_oneof![
            "[a-c][.\\-_]?[0-9]",
            any::<String>(),
            Just(String::new()),
            "\\PC{0,300}",
        ], 1..200),
        allow in prop::collection::vec("[a-z]{1,3}", 0..4),
        k in 0usize..6,
    ) {
        prop_assume!(!allow.is_empty() || k > 0);
        let policy = AdmissionPolicy::allow_then_first_k(allow.clone(), k);
        let backend = InMemoryBackend::new();
        let admission = std::sync::Arc::new(Admission::new("model", &policy, Names).unwrap());
        let recorder = outcometer::toolkit::build::<OpenNames>(&backend, OpenNamesConfig(admission.clone())).unwrap();
        let mut admitted: HashMap<usize, String> = HashMap::new();
        let mut folds = 0u64;
        for input in &inputs {
            let at = recorder.record(input);
            prop_assert!(at.index() <= admission.capacity());
            if at == admission.other() {
                folds += 1;
                continue;
            }
            // The same coordinate always means the same input, and vice versa.
            let previous = admitted.entry(at.index()).or_insert_with(|| input.clone());
            prop_assert_eq!(previous.as_str(), input.as_str());
            prop_assert_eq!(admission.value(at.index()), Some(input.as_str()));
        }
        let distinct: HashSet<&String> = admitted.values().collect();
        prop_assert_eq!(distinct.len(), admitted.len());
        prop_assert!(admitted.len() <= admission.capacity());
        let overflow = backend.counter_value("outcometer.attribute.overflow", &[("attribute", "model")]).unwrap_or(0);
        prop_assert_eq!(overflow, folds);
        let points = backend.points();
        let seen: HashSet<&str> = points.iter().filter(|p| p.name == "names.seen").flat_map(|p| p.attributes.iter().map(|(_, v)| v.as_str())).collect();
        prop_assert!(seen.len() <= admission.capacity() + 1);
    }
}

/// A one-instrument family over an admitted open name, for the admission property.
#[derive(Clone)]
struct OpenNames {
    admission: std::sync::Arc<Admission>,
    seen: outcometer::toolkit::Counter<outcometer::toolkit::Admitted>,
}

#[derive(Clone, Debug)]
struct OpenNamesConfig(std::sync::Arc<Admission>);

impl Default for OpenNamesConfig {
    fn default() -> Self {
        OpenNamesConfig(std::sync::Arc::new(
            Admission::new("model", &AdmissionPolicy::first_k(1), Names).unwrap(),
        ))
    }
}

impl PartialEq for OpenNamesConfig {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

static SEEN: outcometer::toolkit::InstrumentSpec =
    outcometer::toolkit::InstrumentSpec::counter("names.seen", "{name}", "Names seen.");

impl outcometer::toolkit::Family for OpenNames {
    const NAME: &'static str = "open_names";
    type Config = OpenNamesConfig;
    fn build(
        config: &OpenNamesConfig,
        family: &mut outcometer::toolkit::FamilyBuilder<'_>,
    ) -> Result<Self, outcometer::ConfigError> {
        let dim = std::sync::Arc::new(outcometer::toolkit::AdmittedDimension(config.0.clone()));
        Ok(OpenNames {
            seen: family.counter(&SEEN, vec![dim])?,
            admission: config.0.clone(),
        })
    }
}

impl OpenNames {
    fn record(&self, name: &str) -> outcometer::toolkit::Admitted {
        let at = self.admission.resolve(name);
        self.seen.add(at, 1);
        at
    }
}

#[test]
fn distinct_series_have_distinct_attribute_sets() {
    // Every registered family, every series: adding a family adds it here.
    let backend = InMemoryBackend::new();
    outcometer::catalog::register_shipped_families(&backend).unwrap();
    let instruments = backend.registry().unwrap().instruments();
    // Fill every admission (hosts, queue, cache and action names…), so every slot
    // has its value; a valid host name is a valid name too.
    for admission in instruments
        .iter()
        .flat_map(|i| i.def().dimensions().iter().filter_map(|d| d.admission().cloned()))
    {
        for value in (0..admission.capacity() + 10).map(|i| format!("h{i}.example")) {
            admission.resolve(&value);
        }
    }
    assert!(instruments.len() >= 10);
    for def in instruments.iter().map(|i| i.def()) {
        let mut seen = HashSet::new();
        for series in 0..def.series_bound() {
            let attrs: Vec<_> = def
                .attributes(series)
                .into_iter()
                .map(|a| (a.key, a.value.to_text()))
                .collect();
            let admits = def.dimensions().iter().any(|d| d.admission().is_some());
            if attrs.is_empty() {
                // Only a slot of an admission that has not admitted a value yet.
                assert!(
                    def.dimensions().is_empty() || admits,
                    "{} series {series} has no attributes",
                    def.name()
                );
                continue;
            }
            assert!(
                seen.insert(attrs),
                "{} repeats an attribute set at {series}",
                def.name()
            );
        }
    }
}
