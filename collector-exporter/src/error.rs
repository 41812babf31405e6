//! Setup errors: each names the setting or variable and what it accepts.

use thiserror::Error;

/// The pipeline could not be configured or started.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SetupError {
    /// An `OTEL_*` environment variable has a value we cannot use.
    #[error("environment variable {var}={value:?} is invalid: expected {expected}")]
    InvalidEnv {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What it accepts.
        expected: &'static str,
    },
    /// A value given in code that we cannot use.
    #[error("{setting} = {value:?} is invalid: expected {expected}")]
    InvalidSetting {
        /// The builder method.
        setting: &'static str,
        /// The value.
        value: String,
        /// What it accepts.
        expected: &'static str,
    },
    /// Something configured needs a cargo feature that is off.
    #[error("{what} needs the `{feature}` feature of outcometer-exporter; enable it in Cargo.toml")]
    FeatureDisabled {
        /// What was asked for.
        what: String,
        /// The feature to enable.
        feature: &'static str,
    },
    /// The OTLP exporter could not be built.
    #[error("could not build the OTLP exporter for {endpoint}: {message}")]
    Otlp {
        /// The endpoint.
        endpoint: String,
        /// The cause.
        message: String,
    },
    /// The Prometheus exporter could not be built.
    #[error("could not build the Prometheus exporter: {0}")]
    Prometheus(String),
    /// The pull endpoint could not listen.
    #[error(
        "could not listen for Prometheus scrapes on {address}: {source}; \
         set OTEL_EXPORTER_PROMETHEUS_HOST/OTEL_EXPORTER_PROMETHEUS_PORT (port 0 picks a free one)"
    )]
    Listen {
        /// The address.
        address: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A background thread or runtime could not start.
    #[error("could not start the {what}: {source}")]
    Runtime {
        /// Which.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// An outcometer setting given in code is invalid (e.g. the namespace).
    #[error(transparent)]
    Config(#[from] outcometer::ConfigError),
    /// The pipeline did not shut down cleanly within its deadline.
    #[error("metrics shutdown did not complete: {0}")]
    Shutdown(String),
}
