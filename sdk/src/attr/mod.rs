//! Bounded attribute domains.
//!
//! Every attribute value outcometer emits comes from a finite domain whose size is
//! known when the recorder is built. Closed sets (outcomes, age buckets, error kinds)
//! are enums; open inputs (user ids, URLs, status codes) pass through a bounding
//! policy first. A [`Dimension`] maps a dense index `0..cardinality()` to the
//! attribute(s) of that index, which is what lets the hot path record by index.

pub mod admission;
pub mod age;
pub mod delivery_result;
pub mod endpoint;
pub mod error_kind;
pub mod status;
pub mod user_scope;

use std::fmt;
use std::sync::Arc;

/// A value of an emitted attribute. Never derived from Rust identifiers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttrValue {
    /// A value from a compiled-in closed set.
    Str(&'static str),
    /// An integer value (e.g. `http.response.status_code`).
    Int(i64),
    /// A value admitted at run time (an allow-listed or first-K host, a scope prefix).
    Shared(Arc<str>),
}

impl AttrValue {
    /// The value as text, as Prometheus shows it.
    pub fn to_text(&self) -> String {
        match self {
            AttrValue::Str(s) => (*s).to_owned(),
            AttrValue::Int(i) => i.to_string(),
            AttrValue::Shared(s) => s.to_string(),
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Str(s) => f.write_str(s),
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Shared(s) => f.write_str(s),
        }
    }
}

/// One emitted attribute: a static key and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    /// The attribute key, e.g. `outcome` or `server.address`.
    pub key: &'static str,
    /// The attribute value.
    pub value: AttrValue,
}

/// Documentation of one attribute key of a dimension, for the metrics catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributeDoc {
    /// The attribute key.
    pub key: &'static str,
    /// The value set, written for people (e.g. `` `hit`, `miss` `` or `16 hex prefixes`).
    pub values: String,
}

/// A finite axis of an instrument's series space.
///
/// Index `i` in `0..cardinality()` stands for one combination of attribute values;
/// most dimensions emit one attribute, joint dimensions (the delivery result) emit
/// several whose values are correlated, which keeps the series bound tight.
pub trait Dimension: Send + Sync + fmt::Debug {
    /// How many distinct values this dimension has.
    fn cardinality(&self) -> usize;
    /// Appends the attributes of `index` to `out`. Out-of-range indexes append nothing.
    fn attributes(&self, index: usize, out: &mut Vec<Attribute>);
    /// The attribute keys and value sets, for the docs.
    fn docs(&self) -> Vec<AttributeDoc>;
    /// The admission behind this dimension, if its values are admitted at run
    /// time; the registry counts its folds into `_OTHER` on the overflow counter.
    fn admission(&self) -> Option<&Arc<admission::Admission>> {
        None
    }
}

/// A closed set of attribute values with explicit wire strings.
///
/// Implement it with [`closed_set!`](crate::closed_set); the wire strings are
/// written out, so renaming a variant can never rename a series.
pub trait ClosedSet: Copy + Send + Sync + 'static {
    /// The attribute key the set is emitted under.
    const KEY: &'static str;
    /// Every value, in index order.
    const ALL: &'static [Self];
    /// The wire string.
    fn as_str(self) -> &'static str;
    /// The dense index of this value in [`ClosedSet::ALL`].
    fn index(self) -> usize;
}

/// Defines a closed-set enum with explicit wire strings, `ALL`, `as_str` and `index`.
///
/// ```
/// outcometer::closed_set! {
///     /// How a queued message ended.
///     pub enum QueueOutcome: "outcome" {
///         /// Processed and acknowledged.
///         Acked = "acked",
///         /// Gave up; moved to the dead-letter queue.
///         DeadLettered = "dead_lettered",
///     }
/// }
/// use outcometer::toolkit::ClosedSet;
/// assert_eq!(QueueOutcome::DeadLettered.as_str(), "dead_lettered");
/// assert_eq!(QueueOutcome::ALL.len(), 2);
/// ```
#[macro_export]
macro_rules! closed_set {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident : $key:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            /// Every value, in index order.
            pub const ALL: &'static [Self] = &[ $( $name::$variant ),+ ];

            /// The dense index of this value in `ALL`.
            pub const fn index(self) -> usize {
                self as usize
            }

            /// The wire string of this value.
            pub const fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $wire ),+ }
            }
        }

        impl $crate::toolkit::ClosedSet for $name {
            const KEY: &'static str = $key;
            const ALL: &'static [Self] = &[ $( $name::$variant ),+ ];
            fn as_str(self) -> &'static str { $name::as_str(self) }
            fn index(self) -> usize { self as usize }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// The dimension of closed set `E`, ready to list in an instrument's dimensions.
pub fn closed<E: ClosedSet>() -> Arc<dyn Dimension> {
    Arc::new(EnumDimension::<E>::new())
}

/// The dimension of a [`ClosedSet`]: one attribute, `ALL.len()` values.
pub struct EnumDimension<E>(std::marker::PhantomData<fn() -> E>);

impl<E> EnumDimension<E> {
    /// The dimension of `E`.
    pub const fn new() -> Self {
        EnumDimension(std::marker::PhantomData)
    }
}

impl<E> Default for EnumDimension<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: ClosedSet> fmt::Debug for EnumDimension<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnumDimension({})", E::KEY)
    }
}

impl<E: ClosedSet> Dimension for EnumDimension<E> {
    fn cardinality(&self) -> usize {
        E::ALL.len()
    }
    fn attributes(&self, index: usize, out: &mut Vec<Attribute>) {
        if let Some(value) = E::ALL.get(index) {
            out.push(Attribute {
                key: E::KEY,
                value: AttrValue::Str(value.as_str()),
            });
        }
    }
    fn docs(&self) -> Vec<AttributeDoc> {
        vec![AttributeDoc {
            key: E::KEY,
            values: quoted_list(E::ALL.iter().map(|v| v.as_str())),
        }]
    }
}

/// `` `a`, `b`, `c` `` — the catalog's way of listing a value set.
pub(crate) fn quoted_list<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    values
        .into_iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The value every bounding policy maps unknown or rejected input to.
///
/// Spelled as the OpenTelemetry semantic conventions spell their fallback value.
pub const OTHER: &str = "_OTHER";
