//! Settings the pipeline families (events, actions, queue, cache, dedup,
//! checkpoint) share: the `sample_rate` check, histogram buckets chosen per
//! config, and [`AdmissionPolicy`] in configuration files.
//!
//! Instruments take their bucket boundaries from a `&'static InstrumentSpec`, so
//! a config with buckets of its own needs a spec of its own. [`histogram_spec`]
//! makes one and keeps it for the life of the process, interned: one spec per
//! distinct (instrument, bucket list), at most [`MAX_BUCKET_SETS`] of them and at
//! most [`MAX_BUCKETS`] boundaries each, so what is kept is bounded (under
//! 40 KiB) however often recorders are built. Bucket lists come from
//! configuration, not from traffic; a process that needs more distinct ones is
//! building recorders from generated settings, and gets a setup error.

use std::sync::{Mutex, PoisonError};

use crate::error::ConfigError;
use crate::instrument::InstrumentSpec;

/// The most distinct custom bucket lists one process keeps, over all instruments.
pub(crate) const MAX_BUCKET_SETS: usize = 64;
/// The most boundaries one histogram may have: each is a Prometheus series per
/// histogram series.
pub(crate) const MAX_BUCKETS: usize = 64;

static CUSTOM: Mutex<Vec<&'static InstrumentSpec>> = Mutex::new(Vec::new());

/// Only a rate of 1.0 is accepted; see the error's text.
pub(crate) fn check_sample_rate(family: &'static str, rate: f64) -> Result<(), ConfigError> {
    if rate == 1.0 {
        return Ok(());
    }
    Err(ConfigError::InvalidSetting {
        family,
        setting: "sample_rate",
        value: rate.to_string(),
        fix: "only 1.0 is accepted. A sampled counter is wrong by the sampling factor in every \
              total, rate and ratio, and recording costs nanoseconds (an atomic add), so there is \
              nothing to save; remove the setting or set it to 1.0",
    })
}

/// `spec` with `buckets` as its boundaries: `spec` itself when they are its own,
/// otherwise an interned copy (see the module docs). Buckets must be finite,
/// strictly increasing and not empty.
pub(crate) fn histogram_spec(
    family: &'static str,
    spec: &'static InstrumentSpec,
    buckets: &[f64],
) -> Result<&'static InstrumentSpec, ConfigError> {
    let increasing = buckets.windows(2).all(|w| w[0] < w[1]);
    if buckets.is_empty() || !increasing || !buckets.iter().all(|b| b.is_finite()) {
        return Err(ConfigError::InvalidBoundaries {
            instrument: spec.name().to_owned(),
            boundaries: buckets.to_vec(),
        });
    }
    if buckets.len() > MAX_BUCKETS {
        return Err(ConfigError::InvalidSetting {
            family,
            setting: "buckets",
            value: format!("{} boundaries for {}", buckets.len(), spec.name()),
            fix: "give at most 64 boundaries: each is one more Prometheus series per histogram series",
        });
    }
    if buckets == spec.boundaries() {
        return Ok(spec);
    }
    let mut custom = CUSTOM.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = custom
        .iter()
        .find(|s| s.name() == spec.name() && s.boundaries() == buckets)
    {
        return Ok(found);
    }
    if custom.len() >= MAX_BUCKET_SETS {
        return Err(ConfigError::InvalidSetting {
            family,
            setting: "buckets",
            value: format!("{buckets:?} for {}", spec.name()),
            fix: "this process already uses 64 distinct bucket lists, the most it keeps: \
                  reuse one (recorders are built from configuration, once, and cloned)",
        });
    }
    let boundaries: &'static [f64] = Box::leak(buckets.to_vec().into_boxed_slice());
    let mut made = InstrumentSpec::histogram(spec.name(), spec.unit(), spec.description(), boundaries);
    if let Some(how) = spec.opt_in_call() {
        made = made.opt_in(how);
    }
    let made: &'static InstrumentSpec = Box::leak(Box::new(made));
    custom.push(made);
    Ok(made)
}

/// [`AdmissionPolicy`](crate::attr::admission::AdmissionPolicy) in configuration
/// files: `{ allow = ["orders"], first_k = 20 }`, both optional (missing: none).
#[cfg(feature = "serde")]
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(remote = "crate::attr::admission::AdmissionPolicy", deny_unknown_fields)]
pub(crate) struct AdmissionPolicyDef {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    first_k: usize,
}

/// A family that can be switched off by its config and validated without being built.
pub(crate) trait Switchable: crate::registry::Family {
    /// Every check `build` makes on `config`, without building anything.
    fn check(config: &Self::Config) -> Result<(), ConfigError>;
    /// Whether `config` turns recording on.
    fn enabled(config: &Self::Config) -> bool;
    /// The recorder that records nothing and registers nothing.
    fn off() -> Self;
}

/// Validates `config` (a disabled one too), then returns the recorder that records
/// nothing when it is off, else builds the family on `backend` or shares the one
/// already built there.
pub(crate) fn build_switchable<F: Switchable>(
    backend: &(impl crate::backend::Backend + ?Sized),
    config: F::Config,
) -> Result<F, ConfigError> {
    F::check(&config)?;
    if !F::enabled(&config) {
        return Ok(F::off());
    }
    crate::registry::build::<F>(backend, config)
}

/// The parts every switchable family shares: its [`Switchable`] impl (`check`
/// validates a config, `enabled` is the config's field, `off` is the recorder's
/// `disabled()`), and on its builder `From<Config>`, `enabled`, `sample_rate` and
/// `build`.
macro_rules! switchable_builder {
    ($builder:ident, $config:ident, $recorder:ident, check = |$checked:ident| $check:expr) => {
        impl $crate::settings::Switchable for $recorder {
            fn check($checked: &$config) -> Result<(), $crate::error::ConfigError> {
                $check
            }
            fn enabled(config: &$config) -> bool {
                config.enabled
            }
            fn off() -> Self {
                Self::disabled()
            }
        }

        impl From<$config> for $builder {
            fn from(config: $config) -> Self {
                $builder { config }
            }
        }

        impl $builder {
            /// Whether anything is recorded (default on).
            pub fn enabled(mut self, enabled: bool) -> Self {
                self.config.enabled = enabled;
                self
            }

            /// The sample rate; anything but 1.0 is a setup error at [`build`](Self::build).
            pub fn sample_rate(mut self, rate: f64) -> Self {
                self.config.sample_rate = rate;
                self
            }

            /// Validates the configuration and creates the instruments on `backend`, or
            /// returns a recorder sharing the cells of the one already built there. A
            /// disabled configuration is validated too, and creates nothing.
            pub fn build(
                self,
                backend: &(impl $crate::backend::Backend + ?Sized),
            ) -> Result<$recorder, $crate::error::ConfigError> {
                $crate::settings::build_switchable::<$recorder>(backend, self.config)
            }
        }
    };
}
pub(crate) use switchable_builder;

#[cfg(test)]
mod tests {
    use super::*;

    static SPEC: InstrumentSpec = InstrumentSpec::histogram("settings.test", "s", "Test.", &[1.0, 2.0]);

    #[test]
    fn own_buckets_keep_the_static_spec_and_others_are_interned() {
        assert!(std::ptr::eq(
            histogram_spec("t", &SPEC, &[1.0, 2.0]).unwrap(),
            &SPEC
        ));
        let one = histogram_spec("t", &SPEC, &[0.5, 9.0]).unwrap();
        let again = histogram_spec("t", &SPEC, &[0.5, 9.0]).unwrap();
        assert!(std::ptr::eq(one, again));
        assert_eq!(one.boundaries(), [0.5, 9.0]);
        assert_eq!((one.name(), one.unit()), (SPEC.name(), SPEC.unit()));
    }

    #[test]
    fn bad_buckets_say_what_is_wrong() {
        for bad in [
            &[][..],
            &[1.0, 1.0],
            &[2.0, 1.0],
            &[f64::NAN],
            &[1.0, f64::INFINITY],
        ] {
            let err = histogram_spec("t", &SPEC, bad).unwrap_err();
            assert!(
                err.to_string().contains("finite and strictly increasing"),
                "{err}"
            );
        }
        let many: Vec<f64> = (0..65).map(f64::from).collect();
        let err = histogram_spec("t", &SPEC, &many).unwrap_err();
        assert!(err.to_string().contains("at most 64"), "{err}");
    }

    #[test]
    fn only_a_full_sample_rate_is_accepted() {
        assert!(check_sample_rate("queue", 1.0).is_ok());
        for rate in [0.0, 0.5, 0.999, 2.0, f64::NAN, -1.0] {
            let err = check_sample_rate("queue", rate).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("`sample_rate` of family `queue`"), "{text}");
            assert!(text.contains("only 1.0 is accepted"), "{text}");
        }
    }
}
