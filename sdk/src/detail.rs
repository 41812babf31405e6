//! Outcome detail on traces: one `tracing` event per record (feature `tracing`).
//!
//! Metrics keep only bounded attributes, so the detail that would identify one
//! request is dropped before a series is chosen: the full 8-hex user scope, the
//! endpoint path, the attempt number, the model or queue name a client sent. With
//! the `tracing` feature each record also emits a `tracing` event in the current
//! span carrying that detail, so a trace or a log line shows *which* request a
//! counter counted, while the metric keeps its declared series bound.
//!
//! - **Target**: one per family, `outcometer::<family>` (`outcometer::delivery`,
//!   `outcometer::idempotency`, `outcometer::gateway`, `outcometer::queue`,
//!   `outcometer::cache`, `outcometer::actions`, `outcometer::events`,
//!   `outcometer::dedup`, `outcometer::checkpoint`).
//! - **Level**: `DEBUG` for every outcome event, so a default `INFO` filter
//!   disables the call sites and recording pays one relaxed load for them.
//!   Enable them with a filter such as `outcometer=debug`.
//! - **Fields**: OpenTelemetry semantic-convention names where one exists
//!   (`server.address`, `url.path`, `http.response.status_code`, `error.type`,
//!   `gen_ai.request.model`, `messaging.destination.name`, …), `outcometer.*`
//!   otherwise; `outcometer.outcome` is the same string the metric carries.
//!   `docs/tracing.md` lists them per family.
//! - **Never recorded**: a raw user id (only its keyed-hash scope), a URL's
//!   userinfo, query or fragment (credentials and tokens live there), or a name
//!   longer than [`MAX_NAME_LEN`] bytes (cut on a character boundary).
//! - **Cost**: detail is computed inside the event's field expressions, which
//!   `tracing` evaluates only after its call-site interest check passes; with no
//!   subscriber, or one whose filter disables `outcometer`, no hashing, URL
//!   splitting or formatting happens and nothing allocates.
//!
//! In-flight counts, depths and sizes are state, not outcomes, and emit nothing.
//! Without the feature the events compile to nothing.

pub use crate::attr::endpoint::url_path_of;

/// Longest name (model, queue, cache, action) put on an event, in bytes: a
/// client-chosen name is not an unbounded log line.
pub const MAX_NAME_LEN: usize = 128;

/// `name` cut to at most [`MAX_NAME_LEN`] bytes on a character boundary.
///
/// ```
/// use outcometer::detail::{clip_name, MAX_NAME_LEN};
/// assert_eq!(clip_name("gpt-4.1"), "gpt-4.1");
/// let long = "é".repeat(100); // 200 bytes
/// let clipped = clip_name(&long);
/// assert!(clipped.len() <= MAX_NAME_LEN && long.starts_with(clipped));
/// assert_eq!(clipped.len(), 128);
/// ```
pub fn clip_name(name: &str) -> &str {
    if name.len() <= MAX_NAME_LEN {
        return name;
    }
    let mut end = MAX_NAME_LEN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Seconds of an optional duration, for `…_s` fields.
#[inline]
pub(crate) fn seconds(duration: Option<std::time::Duration>) -> Option<f64> {
    duration.map(|d| d.as_secs_f64())
}

/// A name for an event, looked up only once the event is enabled: the by-name
/// record methods pass `|| Some(name)`, the `…_at` ones a lookup of the admitted
/// value (`None` for `_OTHER`), so a disabled event looks nothing up.
pub(crate) trait Name<'a>: FnOnce() -> Option<&'a str> {}
impl<'a, F: FnOnce() -> Option<&'a str>> Name<'a> for F {}

/// Emits one outcome event of `family` at `DEBUG` under target
/// `outcometer::<family>`: `outcome_event!("delivery", "attempt", url.path = p, …)`.
///
/// Field values must implement `tracing::Value` (`&str`, integers, `f64`,
/// `Option` of those; `None` leaves the field out) and are evaluated only when
/// the event is enabled, so compute detail in them, never before.
#[cfg(feature = "tracing")]
macro_rules! outcome_event {
    ($family:literal, $message:literal $(, $($key:ident).+ = $value:expr)* $(,)?) => {
        ::tracing::event!(
            target: concat!("outcometer::", $family),
            ::tracing::Level::DEBUG,
            $($($key).+ = $value,)*
            $message
        )
    };
}

/// Without the `tracing` feature: type-checks the fields, evaluates nothing.
#[cfg(not(feature = "tracing"))]
macro_rules! outcome_event {
    ($family:literal, $message:literal $(, $($key:ident).+ = $value:expr)* $(,)?) => {
        if false {
            $(let _ = &$value;)*
        }
    };
}

pub(crate) use outcome_event;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_clipped_on_a_character_boundary() {
        assert_eq!(clip_name(""), "");
        let exact = "a".repeat(MAX_NAME_LEN);
        assert_eq!(clip_name(&exact), exact);
        let over = format!("{exact}b");
        assert_eq!(clip_name(&over), exact);
        // A 4-byte character straddling the limit is dropped whole.
        let straddle = format!("{}🦀", "a".repeat(MAX_NAME_LEN - 2));
        assert_eq!(clip_name(&straddle), "a".repeat(MAX_NAME_LEN - 2));
    }
}
