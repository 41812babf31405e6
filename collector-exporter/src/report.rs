//! Where the pipeline's own problems go: `tracing` (target `outcometer_exporter`)
//! when a subscriber is installed, stderr otherwise, because a failure nobody sees
//! is the bug this exists to prevent. Callers never pass a header value or key
//! material here.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};

#[cfg_attr(not(feature = "otlp"), allow(dead_code))]
pub(crate) fn info(message: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::info!(target: "outcometer_exporter", "{message}");
    } else {
        eprintln!("outcometer-exporter: {message}");
    }
}

pub(crate) fn warn(message: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::warn!(target: "outcometer_exporter", "{message}");
    } else {
        eprintln!("outcometer-exporter: warning: {message}");
    }
}

/// Warns the first time this process sees `message`, and never again: a
/// configuration mistake is reported once, not at every pipeline built.
pub(crate) fn warn_once(message: &str) {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let first = SEEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(message.to_owned());
    if first {
        warn(message);
    }
}
