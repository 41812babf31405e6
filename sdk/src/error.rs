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
         (1–3 give every prefix a series, 17 to 4,097 values; 4–8 admit the first K prefixes seen, default 1,000)"
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
    /// An admission with nothing to admit (K = 0 and an empty allow-list).
    #[error(
        "admission for attribute `{attribute}` admits nothing: set first-K to at least 1, \
         or list at least one allowed value"
    )]
    NothingAdmitted {
        /// The attribute key.
        attribute: &'static str,
    },
    /// An allow-list entry the attribute's normaliser does not accept as it is.
    #[error(
        "allow-list entry {entry:?} for attribute `{attribute}` is not a valid value ({expected}): \
         give the value exactly as it should appear (e.g. a bare host \"hooks.example.com\")"
    )]
    InvalidAllowListEntry {
        /// The attribute key.
        attribute: &'static str,
        /// The rejected entry.
        entry: String,
        /// What the normaliser keeps.
        expected: &'static str,
    },
    /// More admitted values than one admission holds.
    #[error(
        "admission for attribute `{attribute}` of {capacity} values exceeds the maximum of {max}: \
         lower K or the allow-list (detail belongs in traces)"
    )]
    TooManyAdmitted {
        /// The attribute key.
        attribute: &'static str,
        /// Allow-list length plus K.
        capacity: usize,
        /// The maximum.
        max: usize,
    },
    /// A family whose instrument name another family (or itself) already uses.
    #[error(
        "instrument {instrument} of family `{family}` is already declared by family `{other_family}`: \
         give one of them another name or namespace"
    )]
    DuplicateInstrument {
        /// The instrument name.
        instrument: String,
        /// The family being built.
        family: &'static str,
        /// The family that declared it first.
        other_family: &'static str,
    },
    /// The same family built twice on one backend with different configurations.
    #[error(
        "family `{family}` is already built on this backend with a different configuration: \
         build it once and clone the recorder (clones share cells), or use the same settings"
    )]
    FamilyConfigConflict {
        /// The family name.
        family: &'static str,
    },
    /// A handle typed with coordinates that do not match its dimensions.
    #[error(
        "instrument {instrument} is addressed by coordinates that do not match its dimensions ({dimensions}): \
         list the dimensions in the same order as the coordinate tuple"
    )]
    CoordinatesMismatch {
        /// The instrument name.
        instrument: String,
        /// Its attribute keys.
        dimensions: String,
    },
    /// A spec built as another kind than it declares.
    #[error("instrument {instrument} is declared as a {declared} but built as a {built}: use the matching builder method")]
    KindMismatch {
        /// The instrument name.
        instrument: String,
        /// The spec's kind.
        declared: &'static str,
        /// The builder method's kind.
        built: &'static str,
    },
    /// More dimensions than an instrument may have.
    #[error("instrument {instrument} has {count} dimensions, over the maximum of {max}: join correlated attributes into one dimension")]
    TooManyDimensions {
        /// The instrument name.
        instrument: String,
        /// How many it has.
        count: usize,
        /// The maximum.
        max: usize,
    },
    /// An instrument whose worst case would need more series than memory allows.
    #[error(
        "instrument {instrument} would have up to {bound} series, over the limit of {max}: \
         lower the user scope prefix length or an admission's K (detail belongs in traces)"
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
    /// A family setting with a value the family does not accept (e.g. a
    /// `sample_rate` other than 1.0).
    #[error("setting `{setting}` of family `{family}` cannot be {value}: {fix}")]
    InvalidSetting {
        /// The family.
        family: &'static str,
        /// The setting's name, as in the family's config.
        setting: &'static str,
        /// The rejected value.
        value: String,
        /// Why, and what to set instead.
        fix: &'static str,
    },
}
