//! Instrument declarations and series addressing.
//!
//! An instrument is a static [`InstrumentSpec`] (name, kind, unit, boundaries)
//! plus the [`Dimension`]s of its attributes. Its series space is the product of
//! the dimensions' sizes, fixed when it is built; a series is a dense index into
//! it, computed from typed coordinates ([`Coords`]) with strides worked out once
//! in the [`InstrumentDef`], so no family writes index arithmetic by hand.

use std::fmt;
use std::sync::Arc;

use crate::attr::{Attribute, ClosedSet, Dimension};
use crate::error::ConfigError;

/// The most series one instrument may declare. Cells cost 8 bytes a series, so
/// this caps an instrument's memory at 2 MiB; real dashboards want far fewer.
pub const MAX_SERIES_PER_INSTRUMENT: usize = 1 << 18;

/// The most dimensions one instrument may have.
pub const MAX_DIMENSIONS: usize = 4;

/// What kind of OpenTelemetry instrument a spec is exported as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstrumentKind {
    /// Monotonic sum (`…_total` in Prometheus).
    Counter,
    /// Non-monotonic sum that is added to (a gauge in Prometheus).
    UpDownCounter,
    /// A last-value gauge that is set (integer or float), or read from a callback
    /// at collection time.
    Gauge,
    /// Explicit-bucket histogram.
    Histogram,
}

impl InstrumentKind {
    /// How the catalog names the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            InstrumentKind::Counter => "counter",
            InstrumentKind::UpDownCounter => "up-down counter",
            InstrumentKind::Gauge => "gauge",
            InstrumentKind::Histogram => "histogram",
        }
    }
}

/// The static part of an instrument: everything but its namespace and dimensions.
///
/// Declared as a `static` with the `const` constructors, once per instrument:
///
/// ```
/// use outcometer::toolkit::InstrumentSpec;
/// static DEPTH: InstrumentSpec = InstrumentSpec::gauge("queue.depth", "{job}", "Jobs waiting.");
/// assert_eq!(DEPTH.name(), "queue.depth");
/// ```
#[derive(Debug, PartialEq)]
pub struct InstrumentSpec {
    name: &'static str,
    kind: InstrumentKind,
    unit: &'static str,
    description: &'static str,
    boundaries: &'static [f64],
    opt_in: Option<&'static str>,
}

impl InstrumentSpec {
    const fn new(
        name: &'static str,
        kind: InstrumentKind,
        unit: &'static str,
        description: &'static str,
    ) -> Self {
        InstrumentSpec {
            name,
            kind,
            unit,
            description,
            boundaries: &[],
            opt_in: None,
        }
    }

    /// A monotonic counter. `unit` is UCUM (`{request}`, `By`, `s`).
    pub const fn counter(name: &'static str, unit: &'static str, description: &'static str) -> Self {
        Self::new(name, InstrumentKind::Counter, unit, description)
    }

    /// An up-down counter (in-flight work, held resources).
    pub const fn up_down_counter(name: &'static str, unit: &'static str, description: &'static str) -> Self {
        Self::new(name, InstrumentKind::UpDownCounter, unit, description)
    }

    /// A gauge, set to the latest value or read from a callback.
    pub const fn gauge(name: &'static str, unit: &'static str, description: &'static str) -> Self {
        Self::new(name, InstrumentKind::Gauge, unit, description)
    }

    /// A histogram with explicit bucket `boundaries` (finite, strictly increasing).
    pub const fn histogram(
        name: &'static str,
        unit: &'static str,
        description: &'static str,
        boundaries: &'static [f64],
    ) -> Self {
        let mut spec = Self::new(name, InstrumentKind::Histogram, unit, description);
        spec.boundaries = boundaries;
        spec
    }

    /// Marks the instrument as off by default; `how` is the call that turns it on.
    pub const fn opt_in(mut self, how: &'static str) -> Self {
        self.opt_in = Some(how);
        self
    }

    /// Name without namespace, dotted (e.g. `delivery.duration`).
    pub const fn name(&self) -> &'static str {
        self.name
    }
    /// The kind.
    pub const fn kind(&self) -> InstrumentKind {
        self.kind
    }
    /// UCUM unit.
    pub const fn unit(&self) -> &'static str {
        self.unit
    }
    /// One-sentence description.
    pub const fn description(&self) -> &'static str {
        self.description
    }
    /// Histogram bucket boundaries (empty for other kinds).
    pub const fn boundaries(&self) -> &'static [f64] {
        self.boundaries
    }
    /// `Some(call)` when the instrument is off by default.
    pub const fn opt_in_call(&self) -> Option<&'static str> {
        self.opt_in
    }
}

/// A namespace prepended to every instrument name (`wildside` → `wildside.idempotency.requests`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Namespace(Option<String>);

/// Longest accepted namespace: leaves room for the longest instrument name within
/// OpenTelemetry's 255-character limit.
pub const MAX_NAMESPACE_LEN: usize = 200;

impl Namespace {
    /// No namespace.
    pub const NONE: Namespace = Namespace(None);

    /// A validated namespace; the empty string means none.
    pub fn new(namespace: &str) -> Result<Self, ConfigError> {
        if namespace.is_empty() {
            return Ok(Namespace(None));
        }
        let mut bytes = namespace.bytes();
        let valid = namespace.len() <= MAX_NAMESPACE_LEN
            && bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/'))
            && !namespace.ends_with('.');
        if valid {
            Ok(Namespace(Some(namespace.to_owned())))
        } else {
            Err(ConfigError::InvalidNamespace {
                namespace: namespace.to_owned(),
                max: MAX_NAMESPACE_LEN,
            })
        }
    }

    /// The namespace, if any.
    pub fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// `name` with the namespace in front.
    pub fn qualify(&self, name: &str) -> String {
        match &self.0 {
            Some(ns) => format!("{ns}.{name}"),
            None => name.to_owned(),
        }
    }
}

/// One axis value of a series: a closed-set value, an admitted name, a scope prefix.
pub trait Coordinate: Copy + 'static {
    /// The dense index along its dimension.
    fn coordinate(self) -> usize;
    /// Whether this coordinate type addresses `dimension` (checked once, at build).
    fn fits(dimension: &dyn Dimension) -> bool {
        let _ = dimension;
        true
    }
}

impl<E: ClosedSet> Coordinate for E {
    #[inline]
    fn coordinate(self) -> usize {
        self.index()
    }
    fn fits(dimension: &dyn Dimension) -> bool {
        dimension.cardinality() == E::ALL.len() && dimension.docs().first().is_some_and(|d| d.key == E::KEY)
    }
}

/// The typed address of one series: a tuple with one [`Coordinate`] per dimension,
/// most significant first (`()` for an instrument without attributes).
pub trait Coords: Copy + 'static {
    /// How many dimensions the tuple addresses.
    const ARITY: usize;
    /// The dense series index under `strides`.
    fn series(self, strides: &Strides) -> usize;
    /// Whether every coordinate fits its dimension.
    fn fit(dimensions: &[Arc<dyn Dimension>]) -> bool;
}

/// A raw series index: what exporters and generic code address cells with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Series(pub usize);

impl Coords for Series {
    const ARITY: usize = usize::MAX;
    #[inline]
    fn series(self, _: &Strides) -> usize {
        self.0
    }
    fn fit(_: &[Arc<dyn Dimension>]) -> bool {
        true
    }
}

impl Coords for () {
    const ARITY: usize = 0;
    #[inline]
    fn series(self, _: &Strides) -> usize {
        0
    }
    fn fit(dimensions: &[Arc<dyn Dimension>]) -> bool {
        dimensions.is_empty()
    }
}

impl<A: Coordinate> Coords for A {
    const ARITY: usize = 1;
    #[inline]
    fn series(self, _: &Strides) -> usize {
        self.coordinate()
    }
    fn fit(dimensions: &[Arc<dyn Dimension>]) -> bool {
        dimensions.len() == 1 && A::fits(&*dimensions[0])
    }
}

macro_rules! tuple_coords {
    ($arity:literal; $($name:ident $i:tt),+) => {
        impl<$($name: Coordinate),+> Coords for ($($name,)+) {
            const ARITY: usize = $arity;
            #[inline]
            fn series(self, strides: &Strides) -> usize {
                0 $(+ self.$i.coordinate() * strides.0[$i])+
            }
            fn fit(dimensions: &[Arc<dyn Dimension>]) -> bool {
                dimensions.len() == $arity $(&& $name::fits(&*dimensions[$i]))+
            }
        }
    };
}
tuple_coords!(1; A 0);
tuple_coords!(2; A 0, B 1);
tuple_coords!(3; A 0, B 1, C 2);
tuple_coords!(4; A 0, B 1, C 2, D 3);

/// Mixed-radix strides of an instrument's dimensions, computed once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Strides([usize; MAX_DIMENSIONS]);

/// A fully resolved instrument: spec, namespaced name, dimensions and strides.
pub struct InstrumentDef {
    spec: &'static InstrumentSpec,
    name: String,
    dimensions: Vec<Arc<dyn Dimension>>,
    strides: Strides,
    series_bound: usize,
    /// Declared by a family (or the registry itself) rather than built by hand:
    /// the registry already lists it.
    registered: bool,
}

impl fmt::Debug for InstrumentDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentDef")
            .field("name", &self.name)
            .field("series_bound", &self.series_bound)
            .finish()
    }
}

impl InstrumentDef {
    /// Resolves `spec` under `namespace` with `dimensions` (most significant first).
    pub fn new(
        spec: &'static InstrumentSpec,
        namespace: &Namespace,
        dimensions: Vec<Arc<dyn Dimension>>,
    ) -> Result<Self, ConfigError> {
        let name = namespace.qualify(spec.name);
        if dimensions.len() > MAX_DIMENSIONS {
            return Err(ConfigError::TooManyDimensions {
                instrument: name,
                count: dimensions.len(),
                max: MAX_DIMENSIONS,
            });
        }
        let series_bound = dimensions
            .iter()
            .try_fold(1usize, |acc, d| acc.checked_mul(d.cardinality()))
            .unwrap_or(usize::MAX);
        if series_bound > MAX_SERIES_PER_INSTRUMENT {
            return Err(ConfigError::SeriesBoundTooLarge {
                instrument: name,
                bound: series_bound,
                max: MAX_SERIES_PER_INSTRUMENT,
            });
        }
        let sorted = spec.boundaries.windows(2).all(|w| w[0] < w[1]);
        let finite = spec.boundaries.iter().all(|b| b.is_finite());
        if spec.kind == InstrumentKind::Histogram && (spec.boundaries.is_empty() || !sorted || !finite) {
            return Err(ConfigError::InvalidBoundaries {
                instrument: name,
                boundaries: spec.boundaries.to_vec(),
            });
        }
        let mut strides = Strides::default();
        let mut stride = 1usize;
        for (slot, dim) in strides.0.iter_mut().zip(&dimensions).rev() {
            *slot = stride;
            stride *= dim.cardinality();
        }
        Ok(InstrumentDef {
            spec,
            name,
            dimensions,
            strides,
            series_bound,
            registered: false,
        })
    }

    /// Marks a definition the registry lists (declared through a family).
    pub(crate) fn registered(mut self) -> Self {
        self.registered = true;
        self
    }

    /// Whether the registry lists this instrument; backends that export only
    /// through the registry adopt the others ([`crate::toolkit::Registry`]).
    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    pub(crate) fn is_registered(&self) -> bool {
        self.registered
    }

    /// The static spec.
    pub fn spec(&self) -> &'static InstrumentSpec {
        self.spec
    }

    /// The namespaced OpenTelemetry name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dimensions, most significant first.
    pub fn dimensions(&self) -> &[Arc<dyn Dimension>] {
        &self.dimensions
    }

    /// Worst-case series count: the product of the dimensions' cardinalities.
    pub fn series_bound(&self) -> usize {
        self.series_bound
    }

    /// The strides of the dimensions.
    pub fn strides(&self) -> &Strides {
        &self.strides
    }

    /// The series index of `coords`.
    #[inline]
    pub fn series<C: Coords>(&self, coords: C) -> usize {
        coords.series(&self.strides)
    }

    /// The coordinates of series `index`, one per dimension; `None` out of range.
    pub fn coordinates(&self, index: usize) -> Option<[usize; MAX_DIMENSIONS]> {
        if index >= self.series_bound {
            return None;
        }
        let mut coords = [0usize; MAX_DIMENSIONS];
        let mut rest = index;
        for (slot, (dim, stride)) in coords.iter_mut().zip(self.dimensions.iter().zip(self.strides.0)) {
            *slot = rest / stride;
            rest %= stride;
            debug_assert!(*slot < dim.cardinality());
        }
        Some(coords)
    }

    /// The attributes of series `index`, in dimension order (empty out of range).
    pub fn attributes(&self, index: usize) -> Vec<Attribute> {
        let mut out = Vec::with_capacity(self.dimensions.len() + 2);
        if let Some(coords) = self.coordinates(index) {
            for (coord, dim) in coords.iter().zip(&self.dimensions) {
                dim.attributes(*coord, &mut out);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::age::AgeBucket;
    use crate::attr::error_kind::ErrorKind;
    use crate::attr::EnumDimension;

    static SPEC: InstrumentSpec = InstrumentSpec::counter("test.things", "{thing}", "Things.");

    #[test]
    fn coordinates_and_attributes_round_trip() {
        let def = InstrumentDef::new(
            &SPEC,
            &Namespace::new("svc").unwrap(),
            vec![
                Arc::new(EnumDimension::<ErrorKind>::new()),
                Arc::new(EnumDimension::<AgeBucket>::new()),
            ],
        )
        .unwrap();
        assert_eq!(def.name(), "svc.test.things");
        assert_eq!(def.series_bound(), 7 * 8);
        assert!(<(ErrorKind, AgeBucket)>::fit(def.dimensions()));
        assert!(!<(AgeBucket, ErrorKind)>::fit(def.dimensions()));
        let index = def.series((ErrorKind::Dns, AgeBucket::TwoToSixHours));
        assert_eq!(index, 2 * 8 + 4);
        let attrs: Vec<String> = def
            .attributes(index)
            .iter()
            .map(|a| format!("{}={}", a.key, a.value))
            .collect();
        assert_eq!(attrs, ["error.type=dns", "age_bucket=2h-6h"]);
        assert!(def.attributes(def.series_bound()).is_empty());
    }

    #[test]
    fn namespaces_follow_the_instrument_name_syntax() {
        for good in ["wildside", "a", "my_app.v2", "team/app-1"] {
            assert!(Namespace::new(good).is_ok(), "{good}");
        }
        for bad in ["1abc", "has space", "dot.", "ünï", &"a".repeat(201)] {
            let err = Namespace::new(bad).unwrap_err();
            assert!(
                err.to_string().contains("must start with an ASCII letter"),
                "{err}"
            );
        }
        assert_eq!(Namespace::new("").unwrap(), Namespace::NONE);
    }
}
