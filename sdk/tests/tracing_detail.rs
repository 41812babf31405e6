//! The `tracing` feature's outcome events: every family emits one per record, at
//! DEBUG under `outcometer::<family>`, with the detail metrics drop and none of
//! the secrets an input may carry (raw user ids, URL userinfo, query, fragment).
#![cfg(feature = "tracing")]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outcometer::detail::{clip_name, MAX_NAME_LEN};
use outcometer::prelude::*;
use outcometer::testing::InMemoryBackend;
use outcometer::{
    ActionOutcome, ActionRecorder, CacheRecorder, CacheResult, CheckpointOutcome, CheckpointRecorder,
    DedupRecorder, DedupResult, DeliveryRecorder, DeliveryResult, ErrorKind, EventOutcome,
    EventProcessingRecorder, EvictionCause, GatewayError, GatewayRecorder, IdempotencyOutcome,
    IdempotencyRecorder, QueueOutcome, QueueRecorder, RecoveryResult, ScopeHasher, StoreOperation, Usage,
};
use proptest::prelude::*;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One captured event: its target, level and every field as text.
#[derive(Clone, Debug)]
struct Captured {
    target: String,
    level: Level,
    fields: BTreeMap<String, String>,
}

impl Captured {
    fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }
    fn message(&self) -> &str {
        self.get("message").unwrap_or_default()
    }
}

/// A layer that keeps every event it sees.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

impl Capture {
    fn take(&self) -> Vec<Captured> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields(BTreeMap::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(Captured {
            target: event.metadata().target().to_owned(),
            level: *event.metadata().level(),
            fields: fields.0,
        });
    }
}

/// Every recorder, on one in-memory backend.
struct Recorders {
    idempotency: IdempotencyRecorder,
    delivery: DeliveryRecorder,
    gateway: GatewayRecorder,
    queues: QueueRecorder,
    caches: CacheRecorder,
    actions: ActionRecorder,
    events: EventProcessingRecorder,
    dedup: DedupRecorder,
    checkpoints: CheckpointRecorder,
}

impl Recorders {
    fn new() -> Self {
        let backend = InMemoryBackend::new();
        Recorders {
            idempotency: IdempotencyRecorder::builder()
                .scope_hasher(ScopeHasher::keyed(b"a deployment secret, 32 bytes!!!").unwrap())
                .build(&backend)
                .unwrap(),
            delivery: DeliveryRecorder::builder().build(&backend).unwrap(),
            gateway: GatewayRecorder::builder().build(&backend).unwrap(),
            queues: QueueRecorder::builder().build(&backend).unwrap(),
            caches: CacheRecorder::builder().build(&backend).unwrap(),
            actions: ActionRecorder::builder().build(&backend).unwrap(),
            events: EventProcessingRecorder::builder().build(&backend).unwrap(),
            dedup: DedupRecorder::builder().build(&backend).unwrap(),
            checkpoints: CheckpointRecorder::builder().build(&backend).unwrap(),
        }
    }

    /// One call of every outcome-recording method, by name where there is one.
    fn record_everything(&self, user_id: &str, url: &str, name: &str) {
        let scope = self.idempotency.scope(user_id);
        self.idempotency.record_miss(scope);
        self.idempotency.record_hit(scope, Duration::from_secs(90));
        self.idempotency
            .record_request_duration(IdempotencyOutcome::Hit, Duration::from_millis(3));
        self.idempotency.record_store_fallback(StoreOperation::Read);
        self.idempotency
            .record_store_error(StoreOperation::Write, ErrorKind::Timeout);

        let d = &self.delivery;
        d.record_delivery_success(url, Duration::from_millis(12));
        d.record_delivery_failure(url, 503, Duration::from_millis(40));
        d.record_delivery_error(url, ErrorKind::Connect, Duration::from_secs(1));
        d.record_attempt(
            url,
            3,
            Some(201),
            DeliveryResult::Success,
            Duration::from_millis(9),
        );
        d.record_retry(url);
        d.record_dead_letter(url);
        d.record_result(d.endpoint(url), DeliveryResult::Failure(429), Duration::ZERO);

        let g = &self.gateway;
        let usage = Some(Usage::new(20, 300));
        g.record_request(name, name, 200, Duration::from_millis(800), usage, None);
        g.record_error(name, GatewayError::Timeout);
        g.record_fallback(name, "fallback-model");
        g.record_health_check(name, Duration::from_millis(2));

        self.queues.record_enqueued(name);
        self.queues.record_processed(name, QueueOutcome::ALL[0]);
        self.queues.record_wait(name, Duration::from_millis(70));
        self.caches.record_get(name, CacheResult::ALL[0]);
        self.caches.record_eviction(name, EvictionCause::ALL[0]);
        self.actions
            .record_action(name, ActionOutcome::ALL[0], Duration::from_millis(5));
        self.events
            .record_event(EventOutcome::ALL[0], Duration::from_millis(5));
        self.dedup.record_check(DedupResult::ALL[0]);
        self.checkpoints
            .record_save(CheckpointOutcome::Success, Duration::from_millis(50));
        self.checkpoints.record_recovery(RecoveryResult::ALL[0]);
    }
}

/// Records everything under a capturing subscriber and returns what it saw.
fn capture(recorders: &Recorders, user_id: &str, url: &str, name: &str) -> Vec<Captured> {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::with_default(subscriber, || recorders.record_everything(user_id, url, name));
    capture.take()
}

fn is_scope_hex(text: &str) -> bool {
    text.len() == 8 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A URL whose userinfo, query and fragment hold secrets; returns the URL, its
/// host, its path and the secrets.
fn secret_url() -> impl Strategy<Value = (String, String, String, Vec<String>)> {
    (
        prop::sample::select(vec!["https", "http"]),
        "[a-z]{1,8}",
        "[a-z0-9]{4,12}",
        "[a-z]{1,10}(\\.[a-z]{2,6}){1,2}",
        prop::option::of(1u16..),
        prop::collection::vec("[a-zA-Z0-9_-]{0,8}", 0..4),
        "[A-Za-z0-9]{4,12}",
        "[A-Za-z0-9]{4,12}",
    )
        .prop_map(
            |(scheme, user, password, host, port, segments, token, fragment)| {
                let path: String = segments.iter().map(|s| format!("/{s}")).collect();
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                let userinfo = format!("{user}:pa55{password}");
                let query = format!("token=SECRET{token}");
                let fragment = format!("FRAG{fragment}");
                let url = format!("{scheme}://{userinfo}@{host}{port}{path}?{query}#{fragment}");
                let secrets = vec![userinfo, format!("pa55{password}"), query, fragment];
                (url, host, path, secrets)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn events_carry_detail_and_never_a_secret(
        user_id in "user-[a-zA-Z0-9._@-]{6,30}",
        (url, host, path, secrets) in secret_url(),
        name in "\\PC{1,200}",
    ) {
        let recorders = Recorders::new();
        let events = capture(&recorders, &user_id, &url, &name);
        prop_assert_eq!(events.len(), 26, "{:#?}", events);
        let scope = recorders.idempotency.scope(&user_id).hex();
        for event in &events {
            prop_assert_eq!(event.level, Level::DEBUG);
            prop_assert!(event.target.starts_with("outcometer::"), "{}", event.target);
            for (key, value) in &event.fields {
                prop_assert!(!value.contains(user_id.as_str()), "{key}={value}");
                for secret in &secrets {
                    prop_assert!(!value.contains(secret.as_str()), "{key}={value} holds {secret}");
                }
                prop_assert!(!value.contains("SECRET") && !value.contains("FRAG"), "{key}={value}");
                if key == "url.path" || key == "server.address" {
                    prop_assert!(!value.contains(['?', '#', '@']), "{key}={value}");
                }
            }
        }
        let of = |target: &str| events.iter().filter(|e| e.target == target).collect::<Vec<_>>();

        let idempotency = of("outcometer::idempotency");
        prop_assert_eq!(idempotency.len(), 5);
        for event in idempotency.iter().filter(|e| e.message() == "idempotency outcome") {
            let field = event.get("outcometer.user_scope").unwrap();
            prop_assert!(is_scope_hex(field), "{}", field);
            prop_assert_eq!(field, scope.as_str());
            prop_assert!(event.get("outcometer.outcome").is_some());
        }
        prop_assert_eq!(idempotency[1].get("outcometer.key_age_s"), Some("90.0"));
        prop_assert_eq!(idempotency[1].get("outcometer.age_bucket"), Some("1-5m"));
        prop_assert_eq!(idempotency[4].get("error.type"), Some("timeout"));

        let delivery = of("outcometer::delivery");
        prop_assert_eq!(delivery.len(), 7);
        let want_path = (!path.is_empty()).then_some(path.as_str());
        for event in &delivery[..6] {
            prop_assert_eq!(event.get("server.address"), Some(host.as_str()));
            prop_assert_eq!(event.get("url.path"), want_path);
        }
        let outcomes: Vec<_> = delivery[..4].iter().map(|e| e.get("outcometer.outcome")).collect();
        prop_assert_eq!(outcomes, [Some("success"), Some("failure"), Some("error"), Some("success")]);
        prop_assert_eq!(delivery[1].get("http.response.status_code"), Some("503"));
        prop_assert_eq!(delivery[2].get("error.type"), Some("connect"));
        prop_assert_eq!(delivery[3].get("http.response.status_code"), Some("201"));
        prop_assert_eq!(delivery[3].get("http.request.resend_count"), Some("2"));
        prop_assert_eq!(delivery[0].get("http.request.resend_count"), None);
        // The pre-resolved path knows the admitted host only.
        prop_assert_eq!(delivery[6].get("server.address"), Some(host.as_str()));
        prop_assert_eq!(delivery[6].get("url.path"), None);
        prop_assert_eq!(delivery[6].get("http.response.status_code"), Some("429"));

        let clipped = clip_name(&name);
        prop_assert!(clipped.len() <= MAX_NAME_LEN);
        let gateway = of("outcometer::gateway");
        prop_assert_eq!(gateway.len(), 4);
        prop_assert_eq!(gateway[0].get("gen_ai.response.model"), Some(clipped));
        prop_assert_eq!(gateway[0].get("outcometer.backend"), Some(clipped));
        prop_assert_eq!(gateway[0].get("http.response.status_code"), Some("200"));
        prop_assert_eq!(gateway[0].get("gen_ai.usage.output_tokens"), Some("300"));
        prop_assert_eq!(gateway[1].get("gen_ai.request.model"), Some(clipped));
        prop_assert_eq!(gateway[1].get("error.type"), Some("timeout"));
        prop_assert_eq!(gateway[2].get("gen_ai.request.model"), Some(clipped));
        prop_assert_eq!(gateway[2].get("gen_ai.response.model"), Some("fallback-model"));

        for (target, key, count) in [
            ("outcometer::queue", "messaging.destination.name", 3),
            ("outcometer::cache", "outcometer.cache.name", 2),
            ("outcometer::actions", "outcometer.action.name", 1),
        ] {
            let family = of(target);
            prop_assert_eq!(family.len(), count, "{}", target);
            for event in family {
                prop_assert_eq!(event.get(key), Some(clipped), "{}", target);
            }
        }
        prop_assert_eq!(of("outcometer::queue")[1].get("outcometer.outcome"), Some(QueueOutcome::ALL[0].as_str()));
        prop_assert_eq!(of("outcometer::cache")[0].get("outcometer.result"), Some(CacheResult::ALL[0].as_str()));
        prop_assert_eq!(of("outcometer::events")[0].get("outcometer.outcome"), Some(EventOutcome::ALL[0].as_str()));
        prop_assert_eq!(of("outcometer::dedup")[0].get("outcometer.result"), Some(DedupResult::ALL[0].as_str()));
        let checkpoints = of("outcometer::checkpoint");
        prop_assert_eq!(checkpoints[0].get("outcometer.outcome"), Some("success"));
        prop_assert_eq!(checkpoints[1].get("outcometer.result"), Some(RecoveryResult::ALL[0].as_str()));
    }
}

#[test]
fn a_filter_that_disables_outcometer_sees_nothing_and_other_targets_still_pass() {
    let recorders = Recorders::new();
    let capture = Capture::default();
    let filter = Targets::new()
        .with_default(Level::TRACE)
        .with_target("outcometer", tracing::level_filters::LevelFilter::OFF);
    let subscriber = tracing_subscriber::registry().with(capture.clone().with_filter(filter));
    tracing::subscriber::with_default(subscriber, || {
        recorders.record_everything("user-1", "https://h.example/p", "m");
        tracing::debug!(target: "app", "kept");
    });
    let seen = capture.take();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].target, "app");
}

#[test]
fn an_info_filter_disables_the_outcome_events() {
    let recorders = Recorders::new();
    let capture = Capture::default();
    let filter = Targets::new().with_default(Level::INFO);
    let subscriber = tracing_subscriber::registry().with(capture.clone().with_filter(filter));
    tracing::subscriber::with_default(subscriber, || {
        recorders.record_everything("user-1", "https://h.example/p", "m")
    });
    assert!(capture.take().is_empty());
}

#[test]
fn anonymous_requests_and_other_names_keep_their_meaning() {
    let backend = InMemoryBackend::new();
    let idempotency = IdempotencyRecorder::builder().build(&backend).unwrap();
    let queues = QueueRecorder::builder()
        .queues(outcometer::AdmissionPolicy::allow_list(["jobs"]))
        .build(&backend)
        .unwrap();
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::with_default(subscriber, || {
        idempotency.record_miss(idempotency.scope(""));
        // `_OTHER` stands for many queues: the pre-resolved path names none.
        queues.record_enqueued_at(queues.queue("not-admitted"));
        queues.record_enqueued_at(queues.queue("jobs"));
    });
    let seen = capture.take();
    assert_eq!(seen[0].get("outcometer.user_scope"), Some("anonymous"));
    assert_eq!(seen[1].get("messaging.destination.name"), None);
    assert_eq!(seen[2].get("messaging.destination.name"), Some("jobs"));
}
