//! A minimal HTTP/1.1 server loop on loopback, shared by the API and the sink.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// The handler's verdict: a response, or drop the connection without one.
pub type Handled = Result<Response<Full<Bytes>>, DropConnection>;

/// Returned by a handler to close the connection without answering, like a
/// worker that died mid-request.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose")]
pub struct DropConnection;

/// Binds `127.0.0.1:0` and serves `handler` on every connection until the
/// runtime stops. Returns the bound address.
pub async fn serve<H, F>(handler: H) -> std::io::Result<SocketAddr>
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Handled> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors, most likely: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| handler(request));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// A response with `status`, `body` and extra `headers`.
pub fn respond(status: u16, body: impl Into<Bytes>, headers: &[(&'static str, &str)]) -> Handled {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    Ok(builder.body(Full::new(body.into())).unwrap_or_else(|_| {
        let mut fallback = Response::new(Full::new(Bytes::new()));
        *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    }))
}
