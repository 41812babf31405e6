//! Setup errors: each names the setting or variable and what it accepts.

use thiserror::Error;

/// The pipeline could not be configured or started.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SetupError {
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
    /// The configuration file cannot be used.
    #[error("configuration file {path}: {message}")]
    ConfigFile {
        /// The file.
        path: String,
        /// What is wrong, naming the key, and how to fix it.
        message: String,
    },
    /// A TLS file named in code or in the configuration file cannot be used.
    #[error("{setting}: {message}")]
    Tls {
        /// The builder method or file key that named it.
        setting: String,
        /// What is wrong (never the file's content).
        message: String,
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
    /// A flush or shutdown did not deliver everything.
    #[error(transparent)]
    Export(#[from] ExportError),
}

/// Which lifecycle operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// [`crate::Telemetry::force_flush`].
    Flush,
    /// [`crate::Telemetry::shutdown`] (or dropping the handle).
    Shutdown,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::Flush => "flush",
            Operation::Shutdown => "shutdown",
        })
    }
}

/// One export that failed, and where it was going.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportFailure {
    /// `OTLP/gRPC` or `OTLP/HTTP`.
    pub exporter: &'static str,
    /// The endpoint (query string hidden).
    pub endpoint: String,
    /// Why.
    pub cause: String,
}

/// A flush or shutdown that did not deliver everything: the exports that failed,
/// and whether it gave up waiting.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub struct ExportError {
    /// Flush or shutdown.
    pub operation: Operation,
    /// The exports that failed.
    pub failures: Vec<ExportFailure>,
    /// Set when the operation was abandoned after this long (the shutdown timeout).
    pub gave_up_after: Option<std::time::Duration>,
    /// Which signals failed: `metrics`, `traces`, or `metrics and traces`.
    pub signals: &'static str,
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.signals, self.operation)?;
        if let Some(after) = self.gave_up_after {
            write!(f, " did not finish within {after:?}")?;
        } else {
            f.write_str(" failed")?;
        }
        for (n, failure) in self.failures.iter().enumerate() {
            let sep = if n == 0 { ": " } else { "; " };
            if failure.endpoint.is_empty() {
                write!(f, "{sep}{}: {}", failure.exporter, failure.cause)?;
            } else {
                write!(
                    f,
                    "{sep}the {} export to {}: {}",
                    failure.exporter, failure.endpoint, failure.cause
                )?;
            }
        }
        Ok(())
    }
}
