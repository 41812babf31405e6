//! OTLP/gRPC: tonic's generated service clients (`MetricsService`, `TraceService`)
//! on one lazily connected channel per exporter.

use std::time::Duration;

use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use super::tls::Material;
use super::{display_endpoint, wire_headers, Failure, OtlpRequest, Retry, USER_AGENT};
use crate::config::OtlpConfig;
use crate::error::SetupError;

pub(crate) struct Client {
    channel: Channel,
    gzip: bool,
    metadata: MetadataMap,
}

fn build_error(config: &OtlpConfig, message: impl std::fmt::Display) -> SetupError {
    SetupError::Otlp {
        endpoint: display_endpoint(&config.endpoint),
        message: message.to_string(),
    }
}

impl Client {
    pub(crate) fn new(
        config: &OtlpConfig,
        tls: &Material,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Client, SetupError> {
        let mut metadata = MetadataMap::new();
        for (name, value) in wire_headers(config)? {
            let key = MetadataKey::from_bytes(name.as_str().as_bytes())
                .map_err(|_| build_error(config, format!("header `{name}` is not valid gRPC metadata")))?;
            let value = MetadataValue::try_from(value.as_bytes()).map_err(|_| {
                build_error(
                    config,
                    format!("header `{name}` has a value gRPC metadata cannot carry"),
                )
            })?;
            metadata.insert(key, value);
        }
        let endpoint = Endpoint::from_shared(config.endpoint.clone())
            .map_err(|e| build_error(config, e))?
            .user_agent(USER_AGENT)
            .map_err(|e| build_error(config, e))?;
        let endpoint = with_tls(endpoint, config, tls)?;
        let channel = {
            let _entered = runtime.enter();
            endpoint.connect_lazy()
        };
        Ok(Client {
            channel,
            gzip: config.gzip,
            metadata,
        })
    }

    pub(crate) async fn send<R: OtlpRequest>(
        &self,
        request: &R,
        budget: Option<Duration>,
    ) -> Result<(), Failure> {
        let mut call = tonic::Request::new(request.clone());
        *call.metadata_mut() = self.metadata.clone();
        if let Some(budget) = budget {
            call.set_timeout(budget);
        }
        match R::grpc_export(self.channel.clone(), self.gzip, call).await {
            Ok(response) => {
                if let Some((rejected, message)) = R::partial(response.get_ref()) {
                    super::report_partial(rejected, R::ITEMS, &message);
                }
                Ok(())
            }
            Err(status) => Err(failure(&status)),
        }
    }
}

#[cfg(feature = "tls")]
fn with_tls(endpoint: Endpoint, config: &OtlpConfig, tls: &Material) -> Result<Endpoint, SetupError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    if !config.endpoint.starts_with("https://") {
        return Ok(endpoint);
    }
    // Since tonic 0.12 `ClientTlsConfig::new()` trusts nothing: say what to trust.
    let mut tls_config = match &tls.ca {
        Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)),
        None => ClientTlsConfig::new().with_enabled_roots(),
    };
    if let Some((cert, key)) = &tls.identity {
        tls_config = tls_config.identity(Identity::from_pem(cert, key));
    }
    endpoint
        .tls_config(tls_config)
        .map_err(|e| build_error(config, e))
}

#[cfg(not(feature = "tls"))]
fn with_tls(endpoint: Endpoint, _: &OtlpConfig, _: &Material) -> Result<Endpoint, SetupError> {
    Ok(endpoint)
}

/// The status, with its transport cause, and whether it is transient (the OTLP
/// specification's retryable gRPC codes).
fn failure(status: &tonic::Status) -> Failure {
    let retry = match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Retry::Yes,
        _ => Retry::No,
    };
    let mut message = format!("gRPC status {:?}", status.code());
    if !status.message().is_empty() {
        message.push_str(": ");
        message.push_str(status.message());
    }
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    Failure { message, retry }
}
