//! The [`port!`](crate::port!) macro: a port trait with its no-op and forwarding impls.
//!
//! A *port* is the trait application code records through (`DeliveryMetrics`,
//! `QueueMetrics`, …), so it can depend on the trait and swap the recorder for a
//! no-op in tests or when metrics are off. Every port needs the same companions:
//! a zero-sized no-op, and forwarding impls for `&T`, `Arc<T>`, `Box<T>` and
//! `Option<T>` (where `None` records nothing). The macro writes them from the
//! list of required methods; provided methods go in a `provided { … }` block and
//! are not forwarded (they call required ones, which are).
//!
//! A `forwarded { … }` block holds methods added to a port after users had
//! implemented it: they have a default body, so existing implementations still
//! compile, and unlike `provided` ones they *are* forwarded, so a recorder's
//! override is reached through `&T`, `Arc<dyn …>`, `Box` and `Option` too (a
//! recorder that records more detail than the default keeps it behind a pointer).

/// Defines a port trait, its no-op, and forwarding impls; see the module docs of `outcometer::port`.
///
/// ```
/// outcometer::port! {
///     /// Records jobs.
///     pub trait JobMetrics {
///         /// One job finished after `seconds`.
///         fn record_job(&self, queue: &str, seconds: f64);
///         forwarded {
///             /// One job finished after `seconds`, on its `attempt`-th try.
///             fn record_attempt(&self, queue: &str, attempt: u32, seconds: f64) {
///                 let _ = attempt;
///                 self.record_job(queue, seconds)
///             }
///         }
///         provided {
///             /// One job finished instantly.
///             fn record_instant_job(&self, queue: &str) { self.record_job(queue, 0.0) }
///         }
///     }
///     /// Records nothing, at no cost.
///     noop NoopJobMetrics;
/// }
/// use std::sync::Arc;
/// let shared: Arc<dyn JobMetrics> = Arc::new(NoopJobMetrics);
/// shared.record_instant_job("emails");
/// shared.record_attempt("emails", 2, 0.5);
/// let off: Option<NoopJobMetrics> = None;
/// off.record_job("emails", 1.0);
///
/// // An override is reached through the forwarding impls.
/// struct Attempts(std::sync::atomic::AtomicU32);
/// impl JobMetrics for Attempts {
///     fn record_job(&self, _: &str, _: f64) {}
///     fn record_attempt(&self, _: &str, attempt: u32, _: f64) {
///         self.0.store(attempt, std::sync::atomic::Ordering::Relaxed);
///     }
/// }
/// let attempts = Arc::new(Attempts(Default::default()));
/// let port: Arc<dyn JobMetrics> = attempts.clone();
/// Some(&port).record_attempt("emails", 3, 0.1);
/// assert_eq!(attempts.0.load(std::sync::atomic::Ordering::Relaxed), 3);
/// ```
#[macro_export]
macro_rules! port {
    (
        $(#[$meta:meta])*
        $vis:vis trait $name:ident {
            $(
                $(#[$fmeta:meta])*
                fn $f:ident(&self $(, $arg:ident : $ty:ty)*);
            )+
            $(forwarded {
                $(
                    $(#[$dmeta:meta])*
                    fn $d:ident(&$dself:ident $(, $darg:ident : $dty:ty)*) $body:block
                )*
            })?
            $(provided { $($provided:tt)* })?
        }
        $(#[$nmeta:meta])*
        noop $noop:ident;
    ) => {
        $(#[$meta])*
        $vis trait $name: Send + Sync {
            $( $(#[$fmeta])* fn $f(&self $(, $arg: $ty)*); )+
            $($( $(#[$dmeta])* fn $d(&$dself $(, $darg: $dty)*) $body )*)?
            $($($provided)*)?
        }

        impl<T: $name + ?Sized> $name for &T {
            $( #[inline] fn $f(&self $(, $arg: $ty)*) { (**self).$f($($arg),*) } )+
            $($( #[inline] fn $d(&self $(, $darg: $dty)*) { (**self).$d($($darg),*) } )*)?
        }
        impl<T: $name + ?Sized> $name for ::std::sync::Arc<T> {
            $( #[inline] fn $f(&self $(, $arg: $ty)*) { (**self).$f($($arg),*) } )+
            $($( #[inline] fn $d(&self $(, $darg: $dty)*) { (**self).$d($($darg),*) } )*)?
        }
        impl<T: $name + ?Sized> $name for ::std::boxed::Box<T> {
            $( #[inline] fn $f(&self $(, $arg: $ty)*) { (**self).$f($($arg),*) } )+
            $($( #[inline] fn $d(&self $(, $darg: $dty)*) { (**self).$d($($darg),*) } )*)?
        }
        impl<T: $name> $name for ::core::option::Option<T> {
            $(
                #[inline]
                fn $f(&self $(, $arg: $ty)*) {
                    if let ::core::option::Option::Some(inner) = self {
                        inner.$f($($arg),*)
                    }
                }
            )+
            $($(
                #[inline]
                fn $d(&self $(, $darg: $dty)*) {
                    if let ::core::option::Option::Some(inner) = self {
                        inner.$d($($darg),*)
                    }
                }
            )*)?
        }

        $(#[$nmeta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        $vis struct $noop;

        impl $name for $noop {
            $( #[inline] fn $f(&self $(, $arg: $ty)*) { $( let _ = $arg; )* } )+
        }
    };
}
