//! Cardinality limits from the configuration file's views, for the application's
//! own instruments. outcometer's instruments keep the limit their declaration
//! gives them (their exact series bound): a second view on them would add a
//! second stream.

use opentelemetry_sdk::metrics::{Instrument, Stream};

/// A view applying `limits` ((instrument name or `*`, limit), the first match
/// wins) to instruments outside outcometer's scope.
pub(crate) fn cardinality_limits(
    limits: &[(String, usize)],
) -> impl Fn(&Instrument) -> Option<Stream> + Send + Sync + 'static {
    let limits = limits.to_vec();
    move |instrument: &Instrument| {
        if instrument.scope().name() == outcometer::otel::SCOPE_NAME {
            return None;
        }
        let (_, limit) = limits
            .iter()
            .find(|(name, _)| name == "*" || name == instrument.name())?;
        Stream::builder().with_cardinality_limit(*limit).build().ok()
    }
}
