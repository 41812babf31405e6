//! OTLP/gRPC: tonic's generated `MetricsService` client on a lazily connected channel.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use super::tls::Material;
use super::{
    display_endpoint, wire_headers, Failure, Retry, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, USER_AGENT,
};
use crate::config::OtlpConfig;
use crate::error::SetupError;

pub(crate) struct Client {
    client: MetricsServiceClient<Channel>,
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
        let mut client = MetricsServiceClient::new(channel)
            .max_encoding_message_size(MAX_REQUEST_BYTES)
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        if config.gzip {
            client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
        }
        Ok(Client { client, metadata })
    }

    pub(crate) async fn send(
        &self,
        request: &ExportMetricsServiceRequest,
        budget: Option<Duration>,
    ) -> Result<(), Failure> {
        let mut call = tonic::Request::new(request.clone());
        *call.metadata_mut() = self.metadata.clone();
        if let Some(budget) = budget {
            call.set_timeout(budget);
        }
        match self.client.clone().export(call).await {
            Ok(response) => {
                if let Some(partial) = response.into_inner().partial_success {
                    super::report_partial(partial.rejected_data_points, &partial.error_message);
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
