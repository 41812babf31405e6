//! Setup errors. Recording never fails; building a recorder can, and says how to fix it.

use thiserror::Error;

/// A recorder or bounding policy was configured with a value it cannot use.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The namespace would make an invalid OpenTelemetry instrument name.
    #[error(
        "invalid metric namespace {namespace:?}: it must start with an ASCII letter and contain only \
         ASCII letters, digits, '_', '.', '-' or '/', at most {max} characters (e.g. \"wildside\")"
    )]
    InvalidNamespace {
        /// The rejected namespace.
        namespace: String,
        /// The longest namespace that still leaves room for the instrument names.
        max: usize,
    },
    /// The user-scope prefix length is not 1 to 8 hex characters.
    #[error(
        "user scope prefix length {len} is out of range: use 1 to 8 hex characters \
         (1 keeps the idempotency counter under 2000 series; each extra character multiplies it by 16)"
    )]
    ScopePrefixLenOutOfRange {
        /// The rejected length.
        len: u8,
    },
    /// The HMAC secret for keyed user scopes is too short.
    #[error(
        "user scope secret is {len} bytes; use at least {min} bytes of random data \
         (e.g. 32 bytes from a secret store) so scopes cannot be reversed by a dictionary"
    )]
    ScopeSecretTooShort {
        /// Its length.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// An endpoint allow-list with no hosts.
    #[error("endpoint allow-list is empty: list at least one host, or use first-K admission")]
    EmptyAllowList,
    /// An allow-list entry that is not a bare host name.
    #[error(
        "endpoint allow-list entry {entry:?} is not a host name: give the bare host \
         (e.g. \"hooks.example.com\"), without scheme, port, path or credentials"
    )]
    InvalidAllowedHost {
        /// The rejected entry.
        entry: String,
    },
    /// First-K admission with K = 0.
    #[error("endpoint admission K is 0: admit at least 1 host (the default is 20), or use an allow-list")]
    ZeroAdmittedHosts,
    /// More hosts than the admission can scan cheaply.
    #[error("endpoint admission of {k} hosts exceeds the maximum of {max}; lower K or the allow-list")]
    TooManyAdmittedHosts {
        /// The requested count.
        k: usize,
        /// The maximum.
        max: usize,
    },
    /// An instrument whose worst case would need more series than memory allows.
    #[error(
        "instrument {instrument} would have up to {bound} series, over the limit of {max}: \
         lower the user scope prefix length or the endpoint K (detail belongs in traces)"
    )]
    SeriesBoundTooLarge {
        /// The instrument name.
        instrument: String,
        /// Its worst-case series count.
        bound: usize,
        /// The limit.
        max: usize,
    },
    /// Histogram boundaries that are empty, unsorted or not finite.
    #[error(
        "histogram boundaries for {instrument} must be finite and strictly increasing, and not empty; got {boundaries:?}"
    )]
    InvalidBoundaries {
        /// The instrument name.
        instrument: String,
        /// The rejected boundaries.
        boundaries: Vec<f64>,
    },
}
