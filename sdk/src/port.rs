//! The [`port!`](crate::port) macro: a port trait with its no-op and forwarding impls.
//!
//! A *port* is the trait application code records through (`DeliveryMetrics`,
//! `QueueMetrics`, …), so it can depend on the trait and swap the recorder for a
//! no-op in tests or when metrics are off. Every port needs the same companions:
//! a zero-sized no-op, and forwarding impls for `&T`, `Arc<T>`, `Box<T>` and
//! `Option<T>` (where `None` records nothing). The macro writes them from the
//! list of required methods; provided methods go in a `provided { … }` block and
//! are not forwarded (they call required ones, which are).

/// Defines a port trait, its no-op, and forwarding impls; see the [module docs](crate::port).
///
/// ```
/// outcometer::port! {
///     /// Records jobs.
///     pub trait JobMetrics {
///         /// One job finished after `seconds`.
///         fn record_job(&self, queue: &str, seconds: f64);
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
/// let off: Option<NoopJobMetrics> = None;
/// off.record_job("emails", 1.0);
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
            $(provided { $($provided:tt)* })?
        }
        $(#[$nmeta:meta])*
        noop $noop:ident;
    ) => {
        $(#[$meta])*
        $vis trait $name: Send + Sync {
            $( $(#[$fmeta])* fn $f(&self $(, $arg: $ty)*); )+
            $($($provided)*)?
        }

        impl<T: $name + ?Sized> $name for &T {
            $( #[inline] fn $f(&self $(, $arg: $ty)*) { (**self).$f($($arg),*) } )+
        }
        impl<T: $name + ?Sized> $name for ::std::sync::Arc<T> {
            $( #[inline] fn $f(&self $(, $arg: $ty)*) { (**self).$f($($arg),*) } )+
        }
        impl<T: $name + ?Sized> $name for ::std::boxed::Box<T> {
            $( #[inline] fn $f(&self $(, $arg: $ty)*) { (**self).$f($($arg),*) } )+
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
        }

        $(#[$nmeta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        $vis struct $noop;

        impl $name for $noop {
            $( #[inline] fn $f(&self $(, $arg: $ty)*) { $( let _ = $arg; )* } )+
        }
    };
}
