//! The OTLP span exporter: `SpanData` batches from the SDK's batch span processor
//! become `ExportTraceServiceRequest`s (upstream's encoding) and go out over the
//! same transports, retries, deadlines, TLS and health reporting as metrics.

use std::fmt;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

use super::{OtlpExporter, OtlpRequest};

impl OtlpRequest for ExportTraceServiceRequest {
    const ITEMS: &'static str = "spans";
    type Response = ExportTraceServiceResponse;
    fn partial(response: &Self::Response) -> Option<(i64, String)> {
        response
            .partial_success
            .as_ref()
            .map(|p| (p.rejected_spans, p.error_message.clone()))
    }
    #[cfg(feature = "otlp-grpc")]
    async fn grpc_export(
        channel: tonic::transport::Channel,
        gzip: bool,
        call: tonic::Request<Self>,
    ) -> Result<tonic::Response<Self::Response>, tonic::Status> {
        use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
        super::grpc_client!(TraceServiceClient::new(channel), gzip)
            .export(call)
            .await
    }
}

/// Sends span batches over OTLP. The batch span processor calls it from its own
/// thread, one batch at a time; each export is bounded by the shorter of the OTLP
/// timeout and `OTEL_BSP_EXPORT_TIMEOUT` (the SDK's processor enforces neither),
/// and by the flush or shutdown deadline.
pub(crate) struct OtlpSpanExporter {
    sender: OtlpExporter,
    resource: ResourceAttributesWithSchema,
}

impl OtlpSpanExporter {
    pub(crate) fn new(sender: OtlpExporter, resource: &Resource) -> Self {
        OtlpSpanExporter {
            sender,
            resource: resource.into(),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.sender.name()
    }
}

impl fmt::Debug for OtlpSpanExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpSpanExporter")
            .field("target", &self.sender.target)
            .finish_non_exhaustive()
    }
}

impl SpanExporter for OtlpSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let request = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(batch, &self.resource),
        };
        self.sender.deliver(&request)
    }

    fn shutdown_with_timeout(&self, _timeout: std::time::Duration) -> OTelSdkResult {
        self.sender.stop();
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.into();
    }
}
