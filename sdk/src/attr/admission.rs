//! Bounded admission of open names: an allow-list, first-K, or both, then `_OTHER`.
//!
//! Endpoint hosts, queue, cache, action, model and backend names, long user-scope
//! prefixes: all are open inputs that must become a bounded attribute. An
//! [`Admission`] gives each distinct *normalised* input its own dense index,
//! allow-listed values first and then the first `K` others seen, for the life of
//! the process; every other input folds into `_OTHER`, and each fold is counted on
//! the meta counter `outcometer.attribute.overflow{attribute}` so operators see
//! when a bound bites.
//!
//! Admission never allocates and never locks: values are copied into fixed inline
//! slots reserved at build, and a fixed open-addressing table of atomics maps a
//! value to its slot. Memory is fixed at build (`capacity × 264` bytes plus the
//! table), whatever the input.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use super::{AttrValue, Attribute, AttributeDoc, Dimension, OTHER};
use crate::error::ConfigError;
use crate::instrument::Coordinate;

/// The longest value an admission keeps (the longest DNS host name).
pub const MAX_VALUE_LEN: usize = 253;
/// The largest capacity (allow-list plus `K`) of one admission.
pub const MAX_ADMITTED: usize = 4096;

/// Turns a raw input into the value that is admitted, or rejects it (`None` → `_OTHER`).
///
/// A normaliser may only return a sub-slice of its input, so it never allocates.
pub trait Normaliser: Send + Sync + fmt::Debug + 'static {
    /// The value to admit for `input`, or `None` when it cannot be one.
    fn normalise<'a>(&self, input: &'a str) -> Option<&'a str>;
    /// Whether two values that differ only in ASCII case are the same value
    /// (host names), in which case the admitted value is stored lower-cased.
    fn ignores_ascii_case(&self) -> bool {
        false
    }
    /// What the normaliser keeps, for the docs (e.g. `lower-case host only`).
    fn describe(&self) -> &'static str;
}

/// Names (queues, caches, actions, models, backends), kept exactly as given:
/// `gpt-4.1` and `gpt-4_1` stay two values. Empty names, names longer than
/// [`MAX_VALUE_LEN`] bytes, names with control characters and the name `_OTHER`
/// itself (it would repeat the fold's label set) are rejected.
#[derive(Clone, Copy, Debug, Default)]
pub struct Names;

impl Normaliser for Names {
    fn normalise<'a>(&self, input: &'a str) -> Option<&'a str> {
        let ok = !input.is_empty()
            && input.len() <= MAX_VALUE_LEN
            && input != OTHER
            && !input.chars().any(char::is_control);
        ok.then_some(input)
    }
    fn describe(&self) -> &'static str {
        "names kept exactly"
    }
}

/// Which values an [`Admission`] gives their own attribute value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdmissionPolicy {
    /// Values always admitted, in this order (normalised like any input).
    pub allow: Vec<String>,
    /// How many further distinct values are admitted, first come first served.
    pub first_k: usize,
}

impl AdmissionPolicy {
    /// The first `k` distinct values seen.
    pub fn first_k(k: usize) -> Self {
        AdmissionPolicy {
            allow: Vec::new(),
            first_k: k,
        }
    }

    /// Exactly these values; everything else is `_OTHER`.
    pub fn allow_list<S: Into<String>>(values: impl IntoIterator<Item = S>) -> Self {
        AdmissionPolicy {
            allow: values.into_iter().map(Into::into).collect(),
            first_k: 0,
        }
    }

    /// These values, and then the first `k` others seen.
    pub fn allow_then_first_k<S: Into<String>>(values: impl IntoIterator<Item = S>, k: usize) -> Self {
        AdmissionPolicy {
            first_k: k,
            ..Self::allow_list(values)
        }
    }

    /// How many values can have their own attribute value.
    pub fn capacity(&self) -> usize {
        self.allow.len().saturating_add(self.first_k)
    }
}

/// The dense index of an admitted value (or of `_OTHER`): a series coordinate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Admitted(u32);

impl Admitted {
    /// The index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl Coordinate for Admitted {
    #[inline]
    fn coordinate(self) -> usize {
        self.0 as usize
    }
}

/// A value held inline, with its hash for a cheap first comparison.
struct Slot {
    len: u8,
    bytes: [u8; MAX_VALUE_LEN],
}

impl Slot {
    fn new(value: &str, fold: bool) -> Self {
        let mut bytes = [0u8; MAX_VALUE_LEN];
        for (dst, src) in bytes.iter_mut().zip(value.bytes()) {
            *dst = if fold { src.to_ascii_lowercase() } else { src };
        }
        Slot {
            len: value.len().min(MAX_VALUE_LEN) as u8,
            bytes,
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or(OTHER)
    }

    #[inline]
    fn matches(&self, value: &str, fold: bool) -> bool {
        let stored = &self.bytes[..usize::from(self.len)];
        if fold {
            stored.eq_ignore_ascii_case(value.as_bytes())
        } else {
            stored == value.as_bytes()
        }
    }
}

/// FNV-1a, case-folded when the normaliser ignores case.
#[inline]
fn hash(value: &str, fold: bool) -> u64 {
    value.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        let b = if fold { b.to_ascii_lowercase() } else { b };
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A table entry: `0` empty; else the high 32 bits of the hash and `index + 1`,
/// or [`RESERVED`] while the slot's value is being written.
const RESERVED: u64 = 0xFFFF_FFFF;

/// Where folds into `_OTHER` are counted.
#[derive(Clone, Debug)]
pub(crate) struct OverflowCell {
    counter: crate::cells::Counter,
    series: usize,
}

impl OverflowCell {
    pub(crate) fn new(counter: crate::cells::Counter, series: usize) -> Self {
        OverflowCell { counter, series }
    }
}

/// Maps open inputs to dense indexes under an [`AdmissionPolicy`]; see the module docs.
pub struct Admission {
    key: &'static str,
    normaliser: Box<dyn Normaliser>,
    fold: bool,
    allowed: usize,
    slots: Box<[OnceLock<Slot>]>,
    next: AtomicUsize,
    table: Box<[AtomicU64]>,
    overflow: OnceLock<OverflowCell>,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("attribute", &self.key)
            .field("allowed", &self.allowed)
            .field("capacity", &self.slots.len())
            .field("normaliser", &self.normaliser)
            .finish()
    }
}

impl Admission {
    /// Validates `policy` for attribute `key` and reserves its slots.
    pub fn new(
        key: &'static str,
        policy: &AdmissionPolicy,
        normaliser: impl Normaliser,
    ) -> Result<Self, ConfigError> {
        let capacity = policy.capacity();
        if capacity == 0 {
            return Err(ConfigError::NothingAdmitted { attribute: key });
        }
        if capacity > MAX_ADMITTED {
            return Err(ConfigError::TooManyAdmitted {
                attribute: key,
                capacity,
                max: MAX_ADMITTED,
            });
        }
        let fold = normaliser.ignores_ascii_case();
        let table_len = (2 * capacity + 16).next_power_of_two();
        let admission = Admission {
            key,
            fold,
            normaliser: Box::new(normaliser),
            allowed: 0,
            slots: (0..capacity).map(|_| OnceLock::new()).collect(),
            next: AtomicUsize::new(0),
            table: (0..table_len).map(|_| AtomicU64::new(0)).collect(),
            overflow: OnceLock::new(),
        };
        for entry in &policy.allow {
            let value = admission
                .normaliser
                .normalise(entry)
                .filter(|v| v.len() == entry.len())
                .ok_or_else(|| ConfigError::InvalidAllowListEntry {
                    attribute: key,
                    entry: entry.clone(),
                    expected: admission.normaliser.describe(),
                })?;
            admission.lookup(value, true);
        }
        let allowed = admission.next.load(Ordering::Relaxed);
        // Duplicates in the allow-list took no slot: keep exactly allowed + K.
        let mut slots = admission.slots.into_vec();
        slots.truncate(allowed + policy.first_k);
        let admission = Admission {
            allowed,
            slots: slots.into_boxed_slice(),
            ..admission
        };
        Ok(admission)
    }

    /// The attribute key whose values this admits.
    pub fn key(&self) -> &'static str {
        self.key
    }

    /// How many values can have their own attribute value.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The coordinate of `_OTHER`.
    pub fn other(&self) -> Admitted {
        Admitted(self.slots.len() as u32)
    }

    /// Counts folds on `cell` from now on (set once, by the registry).
    pub(crate) fn count_overflow_on(&self, cell: OverflowCell) {
        let _ = self.overflow.set(cell);
    }

    /// The coordinate of `input`, admitting its normalised value if the policy
    /// still allows; `_OTHER` (counted as a fold) otherwise.
    #[inline]
    pub fn resolve(&self, input: &str) -> Admitted {
        let found = self
            .normaliser
            .normalise(input)
            .and_then(|value| self.lookup(value, self.allowed < self.slots.len()));
        match found {
            Some(index) => Admitted(index as u32),
            None => self.fold(),
        }
    }

    #[cold]
    fn fold(&self) -> Admitted {
        if let Some(cell) = self.overflow.get() {
            cell.counter.add(crate::instrument::Series(cell.series), 1);
        }
        self.other()
    }

    /// The index of `value`, inserting it when `admit` and a slot is free.
    fn lookup(&self, value: &str, admit: bool) -> Option<usize> {
        let h = hash(value, self.fold);
        let tag = (h >> 32) << 32;
        let mask = self.table.len() - 1;
        let mut at = (h as usize) & mask;
        for _ in 0..self.table.len() {
            let entry = &self.table[at];
            let current = entry.load(Ordering::Acquire);
            if current == 0 {
                if !admit || self.next.load(Ordering::Relaxed) >= self.slots.len() {
                    return None;
                }
                match entry.compare_exchange(0, tag | RESERVED, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => {
                        let index = self.next.fetch_add(1, Ordering::Relaxed);
                        let Some(slot) = self.slots.get(index) else {
                            // Lost the race for the last slots: the value stays out.
                            entry.store(tag | RESERVED, Ordering::Release);
                            return None;
                        };
                        let _ = slot.set(Slot::new(value, self.fold));
                        entry.store(tag | (index as u64 + 1), Ordering::Release);
                        return Some(index);
                    }
                    Err(_) => continue, // re-read the same entry
                }
            }
            if current & !0xFFFF_FFFF == tag {
                let low = current & 0xFFFF_FFFF;
                if low == RESERVED {
                    // Same hash, value still being written (or shut out): fold this
                    // once rather than wait or admit it twice.
                    return None;
                }
                let index = (low - 1) as usize;
                if self.slots[index]
                    .get()
                    .is_some_and(|s| s.matches(value, self.fold))
                {
                    return Some(index);
                }
            }
            at = (at + 1) & mask;
        }
        None
    }

    /// The admitted value at `index`, once admitted.
    pub fn value(&self, index: usize) -> Option<&str> {
        self.slots.get(index)?.get().map(Slot::as_str)
    }

    /// The value of `coordinate` as an attribute value: the admitted value or `_OTHER`.
    pub fn value_of(&self, coordinate: Admitted) -> &str {
        self.value(coordinate.index()).unwrap_or(OTHER)
    }

    fn describe_policy(&self) -> String {
        let first_k = self.slots.len() - self.allowed;
        let what = self.normaliser.describe();
        match (self.allowed, first_k) {
            (0, k) => format!("the first {k} distinct values seen ({what}), `_OTHER`"),
            (n, 0) => format!("the {n} allow-listed values ({what}), `_OTHER`"),
            (n, k) => {
                format!("the {n} allow-listed values, then the first {k} others seen ({what}), `_OTHER`")
            }
        }
    }
}

/// The dimension of an [`Admission`]: its admitted values and `_OTHER`.
#[derive(Debug, Clone)]
pub struct AdmittedDimension(pub Arc<Admission>);

impl Dimension for AdmittedDimension {
    fn cardinality(&self) -> usize {
        self.0.capacity() + 1
    }
    fn attributes(&self, index: usize, out: &mut Vec<Attribute>) {
        let value = if index == self.0.capacity() {
            AttrValue::Str(OTHER)
        } else if let Some(value) = self.0.value(index) {
            AttrValue::Shared(value.into())
        } else {
            return;
        };
        out.push(Attribute {
            key: self.0.key,
            value,
        });
    }
    fn docs(&self) -> Vec<AttributeDoc> {
        vec![AttributeDoc {
            key: self.0.key,
            values: self.0.describe_policy(),
        }]
    }
    fn admission(&self) -> Option<&Arc<Admission>> {
        Some(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_k_then_other_and_names_stay_distinct() {
        let a = Admission::new("queue", &AdmissionPolicy::first_k(2), Names).unwrap();
        assert_eq!(a.resolve("gpt-4.1").index(), 0);
        assert_eq!(a.resolve("gpt-4_1").index(), 1);
        assert_eq!(a.resolve("gpt-4.1").index(), 0);
        assert_eq!(a.resolve("third"), a.other());
        assert_eq!(a.resolve(""), a.other());
        assert_eq!(a.value(1), Some("gpt-4_1"));
        // `_OTHER` as an input is the fold, even with room to spare.
        let roomy = Admission::new("model", &AdmissionPolicy::first_k(4), Names).unwrap();
        assert_eq!(roomy.resolve(OTHER), roomy.other());
        assert_eq!(roomy.value(0), None);
        let err = Admission::new("model", &AdmissionPolicy::allow_list([OTHER]), Names).unwrap_err();
        assert!(err.to_string().contains("_OTHER"), "{err}");
    }

    #[test]
    fn allow_list_then_first_k() {
        let policy = AdmissionPolicy::allow_then_first_k(["a", "b", "a"], 1);
        let a = Admission::new("model", &policy, Names).unwrap();
        assert_eq!(a.capacity(), 3);
        assert_eq!(a.resolve("b").index(), 1);
        assert_eq!(a.resolve("z").index(), 2);
        assert_eq!(a.resolve("y"), a.other());
        let fixed = Admission::new("model", &AdmissionPolicy::allow_list(["a", "a"]), Names).unwrap();
        assert_eq!(fixed.capacity(), 1);
        assert_eq!(fixed.resolve("b"), fixed.other());
    }

    #[test]
    fn bad_policies_name_the_attribute() {
        let err = Admission::new("queue", &AdmissionPolicy::first_k(0), Names).unwrap_err();
        assert!(err.to_string().contains("queue"), "{err}");
        let err = Admission::new("queue", &AdmissionPolicy::allow_list([""]), Names).unwrap_err();
        assert!(err.to_string().contains("queue"), "{err}");
    }
}
