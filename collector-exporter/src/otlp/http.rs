//! OTLP/HTTP with protobuf bodies: a `reqwest` client, HTTP/1.1, gzip by flate2.

use std::io::Write as _;
use std::time::Duration;

use prost::Message as _;

use super::tls::Material;
use super::{
    display_endpoint, wire_headers, Failure, OtlpRequest, Retry, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES,
    USER_AGENT,
};
use crate::config::OtlpConfig;
use crate::error::SetupError;

pub(crate) struct Client {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: reqwest::header::HeaderMap,
    gzip: bool,
}

fn build_error(config: &OtlpConfig, message: impl std::fmt::Display) -> SetupError {
    SetupError::Otlp {
        endpoint: display_endpoint(&config.endpoint),
        message: message.to_string(),
    }
}

/// The error and its causes, each once.
fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

impl Client {
    pub(crate) fn new(config: &OtlpConfig, tls: &Material) -> Result<Client, SetupError> {
        let url = reqwest::Url::parse(&config.endpoint).map_err(|e| build_error(config, e))?;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/x-protobuf"),
        );
        if config.gzip {
            headers.insert(
                reqwest::header::CONTENT_ENCODING,
                reqwest::header::HeaderValue::from_static("gzip"),
            );
        }
        // Values exactly as configured: decoded once, from the variable, never again here.
        for (name, value) in wire_headers(config)? {
            headers.insert(name, value);
        }
        let mut builder = reqwest::Client::builder().user_agent(USER_AGENT);
        if is_loopback(&url) {
            builder = builder.no_proxy();
        }
        let client = with_tls(builder, tls)
            .map_err(|e| build_error(config, chain(&e)))?
            .build()
            .map_err(|e| build_error(config, chain(&e)))?;
        Ok(Client {
            client,
            url,
            headers,
            gzip: config.gzip,
        })
    }

    pub(crate) async fn send<R: OtlpRequest>(
        &self,
        request: &R,
        budget: Option<Duration>,
    ) -> Result<(), Failure> {
        let body = request.encode_to_vec();
        if body.len() > MAX_REQUEST_BYTES {
            return Err(Failure {
                message: format!(
                    "the request is {} bytes, more than the {MAX_REQUEST_BYTES} an OTLP receiver must accept; not sent",
                    body.len()
                ),
                retry: Retry::No,
            });
        }
        let body = if self.gzip { gzip(&body) } else { body };
        let mut post = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body);
        if let Some(budget) = budget {
            post = post.timeout(budget);
        }
        // The URL is left out: its query string may carry a token.
        let mut response = post.send().await.map_err(|e| Failure {
            message: chain(&e.without_url()),
            retry: Retry::Yes,
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut bytes = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                break;
            }
            bytes.extend_from_slice(&chunk);
        }
        if status.is_success() {
            if let Ok(answer) = R::Response::decode(&bytes[..]) {
                if let Some((rejected, message)) = R::partial(&answer) {
                    super::report_partial(rejected, R::ITEMS, &message);
                }
            }
            return Ok(());
        }
        let retry = match (status.as_u16(), retry_after) {
            (429 | 502 | 503 | 504, Some(after)) => Retry::After(after),
            (429 | 502 | 503 | 504, None) => Retry::Yes,
            _ => Retry::No,
        };
        Err(Failure {
            message: format!("HTTP {status}"),
            retry,
        })
    }
}

/// Whether `url` names this host: such a collector is never reached through a proxy.
fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

#[cfg(feature = "tls")]
fn with_tls(builder: reqwest::ClientBuilder, tls: &Material) -> reqwest::Result<reqwest::ClientBuilder> {
    let mut builder = builder;
    if let Some(ca) = &tls.ca {
        builder = builder.tls_certs_only(reqwest::Certificate::from_pem_bundle(ca)?);
    }
    if let Some((cert, key)) = &tls.identity {
        let mut pem = cert.clone();
        pem.push(b'\n');
        pem.extend_from_slice(key);
        builder = builder.identity(reqwest::Identity::from_pem(&pem)?);
    }
    Ok(builder)
}

#[cfg(not(feature = "tls"))]
fn with_tls(builder: reqwest::ClientBuilder, _: &Material) -> reqwest::Result<reqwest::ClientBuilder> {
    Ok(builder)
}
