//! TLS for both transports against real in-process TLS receivers, with
//! certificates generated in the test: a private CA from code and from the
//! variables, mutual TLS, a wrong CA and a missing client certificate (a clear
//! error, nothing exported), and every bad certificate path or PEM file (code:
//! an error naming the setting; environment: a warning, and the pipeline starts).
//! No key material or file content is ever printed.

use std::time::Duration;

use outcometer::{IdempotencyMetrics, IdempotencyRecorder, UserScope};
use outcometer_exporter::{ExporterKind, OtlpProtocol, SetupError, Telemetry, TelemetryBuilder};
use outcometer_tests::tls::{Ca, ServerTls, TempDir};
use outcometer_tests::Receiver;

const PROTOCOLS: [OtlpProtocol; 2] = [OtlpProtocol::Grpc, OtlpProtocol::HttpProtobuf];

fn receiver(protocol: OtlpProtocol, tls: &ServerTls) -> Receiver {
    match protocol {
        OtlpProtocol::Grpc => Receiver::grpc_tls(tls),
        OtlpProtocol::HttpProtobuf => Receiver::http_tls(tls),
    }
}

fn builder(protocol: OtlpProtocol, receiver: &Receiver) -> TelemetryBuilder {
    Telemetry::builder()
        .exporters([ExporterKind::Otlp])
        .otlp_protocol(protocol)
        .otlp_endpoint(format!("https://{}", receiver.addr))
        .otlp_timeout(Duration::from_secs(3))
        .export_interval(Duration::from_secs(3600))
}

/// Records one miss and flushes: the flush's result.
fn push(builder: TelemetryBuilder, env: impl Fn(&str) -> Option<String>) -> Result<(), SetupError> {
    let telemetry = builder.build_with_env(env).expect("pipeline starts");
    let idem = IdempotencyRecorder::builder()
        .build(&telemetry.backend())
        .unwrap();
    idem.record_miss(UserScope::ANONYMOUS);
    let result = telemetry.force_flush();
    drop(telemetry.shutdown());
    result
}

fn env_of(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
}

struct Pki {
    dir: TempDir,
    ca: Ca,
    server: ServerTls,
}

fn pki(mutual: bool) -> Pki {
    let ca = Ca::new("outcometer test CA");
    let server = ServerTls {
        identity: ca.server(),
        client_ca: mutual.then(|| ca.pem.clone()),
    };
    Pki {
        dir: TempDir::new("tls"),
        ca,
        server,
    }
}

#[test]
fn row_certificate_private_ca_from_code_and_from_variables() {
    for protocol in PROTOCOLS {
        let pki = pki(false);
        let ca_path = pki.dir.write("ca.pem", &pki.ca.pem);
        let r = receiver(protocol, &pki.server);
        push(builder(protocol, &r).otlp_certificate(&ca_path), |_| None).expect("exported over TLS");
        assert!(!r.received.requests().is_empty(), "{protocol:?}");

        let r = receiver(protocol, &pki.server);
        let path = ca_path.display().to_string();
        push(
            builder(protocol, &r),
            env_of(vec![("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", path)]),
        )
        .expect("exported over TLS");
        assert!(!r.received.requests().is_empty(), "{protocol:?}");
    }
}

#[test]
fn row_client_key_and_certificate_mutual_tls_from_code_and_from_variables() {
    for protocol in PROTOCOLS {
        let pki = pki(true);
        let client = pki.ca.client();
        let ca = pki.dir.write("ca.pem", &pki.ca.pem);
        let cert = pki.dir.write("client.pem", &client.cert);
        let key = pki.dir.write("client.key", &client.key);

        let r = receiver(protocol, &pki.server);
        push(
            builder(protocol, &r)
                .otlp_certificate(&ca)
                .otlp_client_identity(&cert, &key),
            |_| None,
        )
        .expect("mutual TLS");
        assert!(!r.received.requests().is_empty(), "{protocol:?}");

        let r = receiver(protocol, &pki.server);
        push(
            builder(protocol, &r),
            env_of(vec![
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.display().to_string()),
                (
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    cert.display().to_string(),
                ),
                ("OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY", key.display().to_string()),
            ]),
        )
        .expect("mutual TLS from the variables");
        assert!(!r.received.requests().is_empty(), "{protocol:?}");
    }
}

#[test]
fn a_wrong_ca_is_a_clear_error_and_nothing_is_exported() {
    for protocol in PROTOCOLS {
        let pki = pki(false);
        let other = Ca::new("some other CA");
        let wrong = pki.dir.write("other-ca.pem", &other.pem);
        let r = receiver(protocol, &pki.server);
        let error =
            push(builder(protocol, &r).otlp_certificate(&wrong), |_| None).expect_err("untrusted server");
        let message = error.to_string();
        eprintln!("{protocol:?}, wrong CA: {message}");
        assert!(message.contains(&r.addr.to_string()), "{message}");
        assert!(
            message.to_ascii_lowercase().contains("certificate") || message.contains("UnknownIssuer"),
            "{protocol:?}: says it is about the certificate: {message}"
        );
        assert!(r.received.requests().is_empty(), "{protocol:?}");
    }
}

#[test]
fn public_roots_do_not_trust_a_private_ca() {
    // No CA configured: the public roots are used, so a private server is refused
    // (and the connection is attempted at all: https works without a CA file).
    for protocol in PROTOCOLS {
        let pki = pki(false);
        let r = receiver(protocol, &pki.server);
        let error = push(builder(protocol, &r), |_| None).expect_err("not publicly trusted");
        assert!(error.to_string().contains(&r.addr.to_string()), "{error}");
        assert!(r.received.requests().is_empty());
    }
}

#[test]
fn a_missing_client_certificate_fails_and_nothing_is_exported() {
    for protocol in PROTOCOLS {
        let pki = pki(true);
        let ca = pki.dir.write("ca.pem", &pki.ca.pem);
        let r = receiver(protocol, &pki.server);
        let error = push(builder(protocol, &r).otlp_certificate(&ca), |_| None)
            .expect_err("server wants a client certificate");
        eprintln!("{protocol:?}, no client certificate: {error}");
        assert!(error.to_string().contains(&r.addr.to_string()), "{error}");
        assert!(r.received.requests().is_empty(), "{protocol:?}");
    }
}

#[test]
fn bad_certificate_files_from_code_are_errors_naming_the_setting() {
    let pki = pki(false);
    const SECRET: &str = "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL\n-----END PRIVATE KEY-----\n";
    let garbage = pki.dir.write("garbage.pem", SECRET);
    let missing = pki.dir.path().join("missing.pem");
    let good = pki.dir.write("ca.pem", &pki.ca.pem);
    let client = pki.ca.client();
    let cert = pki.dir.write("client.pem", &client.cert);
    let not_a_key = pki.dir.write("not-a-key.pem", &client.cert);
    let base = || {
        Telemetry::builder()
            .exporters([ExporterKind::Otlp])
            .otlp_endpoint("https://127.0.0.1:4318")
    };
    let cases = [
        (
            base().otlp_certificate(&missing),
            "otlp_certificate",
            "cannot read",
        ),
        (
            base().otlp_certificate(&garbage),
            "otlp_certificate",
            "no PEM certificate",
        ),
        (
            base()
                .otlp_certificate(&good)
                .otlp_client_identity(&cert, &not_a_key),
            "otlp_client_identity",
            "no PEM private key",
        ),
        (
            base().otlp_client_identity(&missing, &garbage),
            "otlp_client_identity",
            "cannot read",
        ),
    ];
    for (builder, setting, why) in cases {
        let error = builder.build_with_env(|_| None).expect_err("a setup error");
        let message = error.to_string();
        assert!(matches!(error, SetupError::Tls { .. }), "{error:?}");
        assert!(message.contains(setting) && message.contains(why), "{message}");
        assert!(!message.contains("TOPSECRET"), "{message}");
    }
}

#[test]
fn bad_certificate_files_from_variables_are_warnings_and_the_pipeline_starts() {
    let pki = pki(false);
    let garbage = pki.dir.write("garbage.pem", "not pem at all TOPSECRET");
    for pairs in [
        vec![("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem".to_owned())],
        vec![(
            "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
            garbage.display().to_string(),
        )],
        vec![(
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            garbage.display().to_string(),
        )],
        vec![
            (
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                garbage.display().to_string(),
            ),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", garbage.display().to_string()),
        ],
    ] {
        let telemetry = Telemetry::builder()
            .exporters([ExporterKind::Otlp])
            .build_with_env(env_of(
                [
                    vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:4318".to_owned())],
                    pairs.clone(),
                ]
                .concat(),
            ))
            .unwrap_or_else(|e| panic!("{pairs:?}: starts anyway, got {e}"));
        drop(telemetry);
    }
}

#[test]
fn certificates_for_a_plain_http_endpoint_are_not_read() {
    let telemetry = Telemetry::builder()
        .exporters([ExporterKind::Otlp])
        .otlp_endpoint("http://127.0.0.1:4318")
        .otlp_certificate("/nonexistent/ca.pem")
        .build_with_env(|_| None)
        .expect("http:// does not use TLS files");
    drop(telemetry);
}
