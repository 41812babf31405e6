//! Families as values, and the registry that shares them.
//!
//! A [`Family`] declares its instruments once, in [`Family::build`], through a
//! [`FamilyBuilder`]. A [`Registry`] (owned by a backend) keeps every family built
//! on it by name: building the same family twice returns the first one's cells,
//! so two components recording `delivery.attempts` add to one series instead of
//! overwriting each other, and build/drop cycles register nothing new. The
//! registry also holds the namespace, the series budget (the sum of the declared
//! bounds of everything registered) and the overflow meta counter
//! `outcometer.attribute.overflow{attribute}`.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use crate::attr::admission::{Admission, AdmissionPolicy, AdmittedDimension, Names, OverflowCell};
use crate::attr::Dimension;
use crate::backend::Backend;
use crate::cells::{Counter, FloatGauge, Gauge, Histogram, UpDownCounter};
use crate::error::ConfigError;
use crate::instrument::{Coords, InstrumentDef, InstrumentKind, InstrumentSpec, Namespace, Series};

/// An outcome family: a set of instruments declared together, and the recorder
/// that records into them.
///
/// Implemented by each recorder (`DeliveryRecorder`, `QueueRecorder`, …) and by
/// families users write themselves (see `examples/src/bin/custom_family.rs`).
pub trait Family: Clone + Send + Sync + 'static {
    /// A stable name, unique among families (`delivery`).
    const NAME: &'static str;
    /// What a build depends on; two builds with equal configs share cells.
    type Config: Clone + Default + PartialEq + fmt::Debug + Send + Sync + 'static;
    /// Declares the instruments on `family` and returns the recorder.
    fn build(config: &Self::Config, family: &mut FamilyBuilder<'_>) -> Result<Self, ConfigError>;
    /// The config the catalog documents: the defaults with every opt-in
    /// instrument turned on (the catalog marks those as opt-in).
    fn catalog_config() -> Self::Config {
        Self::Config::default()
    }
}

/// Builds `F` with `config` on `backend`, or returns the recorder already built
/// there with the same config (sharing its cells).
pub fn build<F: Family>(backend: &(impl Backend + ?Sized), config: F::Config) -> Result<F, ConfigError> {
    match backend.registry() {
        Some(registry) => registry.build::<F>(backend, config),
        None => Registry::default().build::<F>(backend, config),
    }
}

/// Any instrument, untyped: what exporters, catalogs and generic tests iterate.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AnyInstrument {
    /// A counter.
    Counter(Counter),
    /// An up-down counter.
    UpDownCounter(UpDownCounter),
    /// An integer gauge.
    Gauge(Gauge),
    /// A float or callback gauge.
    FloatGauge(FloatGauge),
    /// A histogram.
    Histogram(Histogram),
}

impl AnyInstrument {
    /// The definition.
    pub fn def(&self) -> &Arc<InstrumentDef> {
        match self {
            AnyInstrument::Counter(i) => i.def(),
            AnyInstrument::UpDownCounter(i) => i.def(),
            AnyInstrument::Gauge(i) => i.def(),
            AnyInstrument::FloatGauge(i) => i.def(),
            AnyInstrument::Histogram(i) => i.def(),
        }
    }

    /// Records `value` into `series` the way the kind records (add, set, observe):
    /// for generic tests and tools that exercise every series.
    pub fn record_raw(&self, series: usize, value: f64) {
        let at = Series(series);
        match self {
            AnyInstrument::Counter(i) => i.add(at, value as u64),
            AnyInstrument::UpDownCounter(i) => i.add(at, value as i64),
            AnyInstrument::Gauge(i) => i.set(at, value as i64),
            AnyInstrument::FloatGauge(i) => i.set(at, value),
            AnyInstrument::Histogram(i) => i.record(at, value),
        }
    }
}

/// One family as registered.
#[derive(Clone, Debug)]
pub struct RegisteredFamily {
    /// [`Family::NAME`].
    pub name: &'static str,
    /// Its instruments, in declaration order.
    pub instruments: Vec<AnyInstrument>,
}

impl RegisteredFamily {
    /// The sum of its instruments' series bounds.
    pub fn series_bound(&self) -> usize {
        self.instruments.iter().map(|i| i.def().series_bound()).sum()
    }
}

struct Entry {
    family: RegisteredFamily,
    config: Box<dyn Any + Send + Sync>,
    recorder: Box<dyn Any + Send + Sync>,
}

/// The overflow counter's values: attribute keys (registered by families, never user input).
#[derive(Debug)]
struct AttributeKeys;

impl crate::attr::admission::Normaliser for AttributeKeys {
    fn normalise<'a>(&self, input: &'a str) -> Option<&'a str> {
        Names.normalise(input)
    }
    fn describe(&self) -> &'static str {
        "keys of the attributes whose values are admitted, e.g. `server.address`"
    }
}

/// The meta family every admission reports its folds to.
const META_FAMILY: &str = "outcometer";

/// Where instruments built by hand (outside any family) are listed.
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
const LOOSE_FAMILY: &str = "outcometer.loose";

/// How many distinct admitted attribute keys the overflow counter distinguishes.
const OVERFLOW_KEYS: usize = 32;

/// `outcometer.attribute.overflow`: never namespaced, so one alert covers every service.
pub static ATTRIBUTE_OVERFLOW: InstrumentSpec = InstrumentSpec::counter(
    "outcometer.attribute.overflow",
    "{value}",
    "Inputs folded into `_OTHER` because their attribute's admission bound was reached or the input was invalid.",
);

#[derive(Default)]
struct Inner {
    entries: Vec<Entry>,
    overflow: Option<(Counter, Arc<Admission>)>,
}

type Listener = Box<dyn Fn(&RegisteredFamily, usize) + Send + Sync>;

/// Families built on one backend, by name; see the module docs.
#[derive(Default)]
pub struct Registry {
    namespace: Namespace,
    generation: std::sync::atomic::AtomicUsize,
    inner: Mutex<Inner>,
    listener: Option<Listener>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("namespace", &self.namespace)
            .field("series_budget", &self.series_budget())
            .finish()
    }
}

impl Registry {
    /// A registry whose instruments are named under `namespace` (`""` for none).
    pub fn new(namespace: &str) -> Result<Self, ConfigError> {
        Ok(Registry {
            namespace: Namespace::new(namespace)?,
            ..Registry::default()
        })
    }

    /// Calls `listener` with each family registered and the series budget after it.
    pub fn on_register(
        mut self,
        listener: impl Fn(&RegisteredFamily, usize) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Box::new(listener));
        self
    }

    /// The namespace every instrument name is qualified with.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every family registered, the overflow meta family included.
    pub fn families(&self) -> Vec<RegisteredFamily> {
        self.lock().entries.iter().map(|e| e.family.clone()).collect()
    }

    /// Changes whenever a family registers: readers that cache per instrument
    /// refresh when it moves.
    pub fn generation(&self) -> usize {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Every instrument registered, in registration order.
    pub fn instruments(&self) -> Vec<AnyInstrument> {
        self.lock()
            .entries
            .iter()
            .flat_map(|e| e.family.instruments.iter().cloned())
            .collect()
    }

    /// The recorder of family `F` registered here, if any (it shares the cells of
    /// every other build of `F` on this backend). For readers of a family's cells
    /// that did not build it: a summary endpoint, a test.
    pub fn recorder<F: Family>(&self) -> Option<F> {
        self.lock()
            .entries
            .iter()
            .find(|e| e.family.name == F::NAME)
            .and_then(|e| e.recorder.downcast_ref::<F>().cloned())
    }

    /// The series budget: the sum of the declared bounds of everything registered.
    pub fn series_budget(&self) -> usize {
        self.lock().entries.iter().map(|e| e.family.series_bound()).sum()
    }

    /// Lists an instrument built by hand on a backend that exports only what the
    /// registry lists (`OtelBackend::cells_only`), under a family of its own, and
    /// returns the listed one: an instrument of that name already listed (built
    /// by hand before, or by a family) stays the only one, so a name is never
    /// exported twice.
    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    pub(crate) fn adopt(&self, instrument: AnyInstrument) -> AnyInstrument {
        let mut inner = self.lock();
        let name = instrument.def().name();
        let listed = inner
            .entries
            .iter()
            .flat_map(|e| e.family.instruments.iter())
            .find(|i| i.def().name() == name);
        if let Some(listed) = listed {
            return listed.clone();
        }
        match inner.entries.iter_mut().find(|e| e.family.name == LOOSE_FAMILY) {
            Some(entry) => entry.family.instruments.push(instrument.clone()),
            None => inner.entries.push(Entry {
                family: RegisteredFamily {
                    name: LOOSE_FAMILY,
                    instruments: vec![instrument.clone()],
                },
                config: Box::new(()),
                recorder: Box::new(()),
            }),
        }
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        instrument
    }

    /// Builds `F` on `backend`, or returns the one already registered with an
    /// equal config; a different config is an error.
    pub fn build<F: Family>(
        &self,
        backend: &(impl Backend + ?Sized),
        config: F::Config,
    ) -> Result<F, ConfigError> {
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.iter().find(|e| e.family.name == F::NAME) {
            let same = entry.config.downcast_ref::<F::Config>() == Some(&config);
            return match (same, entry.recorder.downcast_ref::<F>()) {
                (true, Some(recorder)) => Ok(recorder.clone()),
                _ => Err(ConfigError::FamilyConfigConflict { family: F::NAME }),
            };
        }
        let mut builder = FamilyBuilder {
            backend: &backend,
            namespace: &self.namespace,
            family: F::NAME,
            taken: &inner.entries,
            instruments: Vec::new(),
        };
        let recorder = F::build(&config, &mut builder)?;
        let instruments = builder.instruments;
        self.count_overflows(&mut inner, backend, &instruments)?;
        let family = RegisteredFamily {
            name: F::NAME,
            instruments,
        };
        inner.entries.push(Entry {
            family: family.clone(),
            config: Box::new(config),
            recorder: Box::new(recorder.clone()),
        });
        let budget = inner.entries.iter().map(|e| e.family.series_bound()).sum();
        self.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        drop(inner);
        if let Some(listener) = &self.listener {
            listener(&family, budget);
        }
        Ok(recorder)
    }

    /// Points every admission of `instruments` at its series of the overflow counter.
    fn count_overflows(
        &self,
        inner: &mut Inner,
        backend: &(impl Backend + ?Sized),
        instruments: &[AnyInstrument],
    ) -> Result<(), ConfigError> {
        let admissions = instruments
            .iter()
            .flat_map(|i| i.def().dimensions().iter().filter_map(|d| d.admission().cloned()));
        for admission in admissions {
            if inner.overflow.is_none() {
                let keys = Arc::new(Admission::new(
                    "attribute",
                    &AdmissionPolicy::first_k(OVERFLOW_KEYS),
                    AttributeKeys,
                )?);
                let def = InstrumentDef::new(
                    &ATTRIBUTE_OVERFLOW,
                    &Namespace::NONE,
                    vec![Arc::new(AdmittedDimension(keys.clone()))],
                )?
                .registered();
                let counter = backend.counter(Arc::new(def));
                inner.entries.insert(
                    0,
                    Entry {
                        family: RegisteredFamily {
                            name: META_FAMILY,
                            instruments: vec![AnyInstrument::Counter(counter.clone())],
                        },
                        config: Box::new(()),
                        recorder: Box::new(()),
                    },
                );
                inner.overflow = Some((counter, keys));
            }
            if let Some((counter, keys)) = &inner.overflow {
                let series = keys.resolve(admission.key()).index();
                admission.count_overflow_on(OverflowCell::new(counter.clone(), series));
            }
        }
        Ok(())
    }
}

/// What [`Family::build`] declares its instruments with.
pub struct FamilyBuilder<'a> {
    backend: &'a dyn DynBackend,
    namespace: &'a Namespace,
    family: &'static str,
    taken: &'a [Entry],
    instruments: Vec<AnyInstrument>,
}

/// Object-safe view of a backend, so the builder is not generic.
trait DynBackend {
    fn backend(&self) -> &dyn Backend;
}

impl<B: Backend + ?Sized> DynBackend for &B {
    fn backend(&self) -> &dyn Backend {
        self
    }
}

impl FamilyBuilder<'_> {
    /// The family being built.
    pub fn family(&self) -> &'static str {
        self.family
    }

    /// Validates before anything is created on the backend, so a failed build
    /// leaves nothing behind.
    fn define<C: Coords>(
        &self,
        spec: &'static InstrumentSpec,
        kind: InstrumentKind,
        dimensions: Vec<Arc<dyn Dimension>>,
    ) -> Result<Arc<InstrumentDef>, ConfigError> {
        let def = InstrumentDef::new(spec, self.namespace, dimensions)?.registered();
        crate::cells::retype_check::<C>(&def)?;
        if spec.kind() != kind {
            return Err(ConfigError::KindMismatch {
                instrument: def.name().to_owned(),
                declared: spec.kind().as_str(),
                built: kind.as_str(),
            });
        }
        let clash = self
            .taken
            .iter()
            .map(|e| (e.family.name, &e.family.instruments))
            .chain([(self.family, &self.instruments)])
            .find(|(_, instruments)| instruments.iter().any(|i| i.def().name() == def.name()));
        if let Some((other, _)) = clash {
            return Err(ConfigError::DuplicateInstrument {
                instrument: def.name().to_owned(),
                family: self.family,
                other_family: other,
            });
        }
        Ok(Arc::new(def))
    }

    fn typed<T>(
        &mut self,
        any: AnyInstrument,
        typed: impl FnOnce(&AnyInstrument) -> Option<Result<T, ConfigError>>,
    ) -> Result<T, ConfigError> {
        let out = typed(&any).unwrap_or_else(|| {
            Err(ConfigError::CoordinatesMismatch {
                instrument: any.def().name().to_owned(),
                dimensions: String::new(),
            })
        })?;
        self.instruments.push(any);
        Ok(out)
    }

    /// Declares a counter addressed by `C`.
    pub fn counter<C: Coords>(
        &mut self,
        spec: &'static InstrumentSpec,
        dimensions: Vec<Arc<dyn Dimension>>,
    ) -> Result<Counter<C>, ConfigError> {
        let def = self.define::<C>(spec, InstrumentKind::Counter, dimensions)?;
        let any = AnyInstrument::Counter(self.backend.backend().counter(def));
        self.typed(any, |a| match a {
            AnyInstrument::Counter(c) => Some(c.typed()),
            _ => None,
        })
    }

    /// Declares an up-down counter addressed by `C`.
    pub fn up_down_counter<C: Coords>(
        &mut self,
        spec: &'static InstrumentSpec,
        dimensions: Vec<Arc<dyn Dimension>>,
    ) -> Result<UpDownCounter<C>, ConfigError> {
        let def = self.define::<C>(spec, InstrumentKind::UpDownCounter, dimensions)?;
        let any = AnyInstrument::UpDownCounter(self.backend.backend().up_down_counter(def));
        self.typed(any, |a| match a {
            AnyInstrument::UpDownCounter(c) => Some(c.typed()),
            _ => None,
        })
    }

    /// Declares an integer gauge addressed by `C`.
    pub fn gauge<C: Coords>(
        &mut self,
        spec: &'static InstrumentSpec,
        dimensions: Vec<Arc<dyn Dimension>>,
    ) -> Result<Gauge<C>, ConfigError> {
        let def = self.define::<C>(spec, InstrumentKind::Gauge, dimensions)?;
        let any = AnyInstrument::Gauge(self.backend.backend().gauge(def));
        self.typed(any, |a| match a {
            AnyInstrument::Gauge(c) => Some(c.typed()),
            _ => None,
        })
    }

    /// Declares a float gauge addressed by `C`.
    pub fn float_gauge<C: Coords>(
        &mut self,
        spec: &'static InstrumentSpec,
        dimensions: Vec<Arc<dyn Dimension>>,
    ) -> Result<FloatGauge<C>, ConfigError> {
        let def = self.define::<C>(spec, InstrumentKind::Gauge, dimensions)?;
        let any = AnyInstrument::FloatGauge(self.backend.backend().float_gauge(def));
        self.typed(any, |a| match a {
            AnyInstrument::FloatGauge(c) => Some(c.typed()),
            _ => None,
        })
    }

    /// Declares a callback gauge: `callback` sets its series each time it is
    /// collected (fleet state computed at scrape), never on a record path.
    pub fn callback_gauge<C: Coords>(
        &mut self,
        spec: &'static InstrumentSpec,
        dimensions: Vec<Arc<dyn Dimension>>,
        callback: impl Fn(&FloatGauge<C>) + Send + Sync + 'static,
    ) -> Result<FloatGauge<C>, ConfigError> {
        let gauge = self.float_gauge::<C>(spec, dimensions)?;
        gauge.set_callback(callback);
        Ok(gauge)
    }

    /// Declares a histogram addressed by `C`.
    pub fn histogram<C: Coords>(
        &mut self,
        spec: &'static InstrumentSpec,
        dimensions: Vec<Arc<dyn Dimension>>,
    ) -> Result<Histogram<C>, ConfigError> {
        let def = self.define::<C>(spec, InstrumentKind::Histogram, dimensions)?;
        let any = AnyInstrument::Histogram(self.backend.backend().histogram(def));
        self.typed(any, |a| match a {
            AnyInstrument::Histogram(c) => Some(c.typed()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::closed;
    use crate::attr::error_kind::ErrorKind;
    use crate::backend::Detached;

    static THINGS: InstrumentSpec = InstrumentSpec::counter("things", "{thing}", "Things.");
    static HUGE: InstrumentSpec = InstrumentSpec::counter("huge", "{thing}", "Too many.");

    #[derive(Clone)]
    struct A(Counter<ErrorKind>);
    impl Family for A {
        const NAME: &'static str = "a";
        type Config = u8;
        fn build(_: &u8, family: &mut FamilyBuilder<'_>) -> Result<Self, ConfigError> {
            Ok(A(family.counter(&THINGS, vec![closed::<ErrorKind>()])?))
        }
    }

    #[derive(Clone)]
    struct B;
    impl Family for B {
        const NAME: &'static str = "b";
        type Config = ();
        fn build(_: &(), family: &mut FamilyBuilder<'_>) -> Result<Self, ConfigError> {
            family.counter::<ErrorKind>(&THINGS, vec![closed::<ErrorKind>()])?;
            Ok(B)
        }
    }

    #[derive(Clone)]
    struct Mismatched;
    impl Family for Mismatched {
        const NAME: &'static str = "mismatched";
        type Config = ();
        fn build(_: &(), family: &mut FamilyBuilder<'_>) -> Result<Self, ConfigError> {
            family.counter::<crate::attr::age::AgeBucket>(&HUGE, vec![closed::<ErrorKind>()])?;
            Ok(Mismatched)
        }
    }

    #[derive(Clone)]
    struct WrongKind;
    impl Family for WrongKind {
        const NAME: &'static str = "wrong_kind";
        type Config = ();
        fn build(_: &(), family: &mut FamilyBuilder<'_>) -> Result<Self, ConfigError> {
            family.gauge::<()>(&HUGE, vec![])?;
            Ok(WrongKind)
        }
    }

    #[test]
    fn equal_configs_share_cells_and_different_ones_are_refused() {
        let backend = Detached::with_registry(Registry::new("svc").unwrap());
        let first = build::<A>(&backend, 1).unwrap();
        let again = build::<A>(&backend, 1).unwrap();
        assert!(first.0.shares_cells_with(&again.0));
        assert_eq!(first.0.def().name(), "svc.things");
        let err = build::<A>(&backend, 2).err().unwrap();
        assert!(err.to_string().contains("family `a` is already built"), "{err}");
        let found = backend.registry().unwrap().recorder::<A>().unwrap();
        assert!(found.0.shares_cells_with(&first.0));
        assert!(backend.registry().unwrap().recorder::<B>().is_none());
        // Without a registry every build is fresh.
        let detached = Detached::default();
        let one = build::<A>(&detached, 1).unwrap();
        assert!(!one.0.shares_cells_with(&build::<A>(&detached, 1).unwrap().0));
    }

    #[test]
    fn setup_errors_name_the_family_instrument_and_fix() {
        let backend = Detached::with_registry(Registry::default());
        build::<A>(&backend, 0).unwrap();
        let err = build::<B>(&backend, ()).err().unwrap();
        assert_eq!(
            err,
            ConfigError::DuplicateInstrument {
                instrument: "things".into(),
                family: "b",
                other_family: "a"
            }
        );
        assert!(err.to_string().contains("another name or namespace"), "{err}");
        let err = build::<Mismatched>(&backend, ()).err().unwrap();
        assert!(matches!(err, ConfigError::CoordinatesMismatch { .. }), "{err}");
        assert!(err.to_string().contains("huge"), "{err}");
        let err = build::<WrongKind>(&backend, ()).err().unwrap();
        assert!(
            err.to_string()
                .contains("declared as a counter but built as a gauge"),
            "{err}"
        );
        // Nothing half-built was registered.
        assert_eq!(backend.registry().unwrap().families().len(), 1);
    }

    #[test]
    fn the_budget_sums_every_declared_bound() {
        let backend = Detached::with_registry(Registry::default());
        build::<A>(&backend, 0).unwrap();
        assert_eq!(backend.registry().unwrap().series_budget(), ErrorKind::ALL.len());
    }
}
