//! `ErrorKind` from real client failures on loopback: a refused port, TLS spoken to a
//! plaintext server, a server that never answers, a server that hangs up, and a name
//! under the reserved `.invalid` TLD. No mocks: every error below is what the client
//! really returned. Each test prints the error it got (`--nocapture` shows them).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::thread;
use std::time::{Duration, Instant};

use outcometer::ErrorKind;

/// How long the timeout tests let a stalled server keep the client waiting.
const CLIENT_TIMEOUT: Duration = Duration::from_millis(300);

/// A name that cannot resolve (RFC 6761 reserves `.invalid`).
const INVALID_HOST: &str = "nothing.invalid";

/// A loopback port nobody listens on: bound, then released.
fn refused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    drop(listener);
    port
}

/// A server that runs `handle` on every connection, each on its own thread.
fn serve(handle: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || handle(stream));
        }
    });
    addr
}

#[cfg(all(feature = "rustls", any(feature = "reqwest", feature = "hyper-util")))]
/// Plain HTTP, whatever arrives: reads the first bytes (a TLS ClientHello, for the TLS
/// tests) and answers `200 OK` in clear text.
fn plaintext_server() -> SocketAddr {
    serve(|mut stream| {
        let mut buf = [0; 1024];
        let _ = stream.read(&mut buf);
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    })
}

/// Accepts, then never answers (and never closes).
fn stalled_server() -> SocketAddr {
    serve(|stream| {
        thread::sleep(Duration::from_secs(60));
        drop(stream);
    })
}

#[cfg(any(feature = "reqwest", feature = "hyper-util"))]
/// Reads the request, then closes the connection without a response.
fn hang_up_server() -> SocketAddr {
    serve(|mut stream| {
        let mut buf = [0; 1024];
        let _ = stream.read(&mut buf);
        let _ = stream.shutdown(std::net::Shutdown::Both);
    })
}

/// Lets the request arrive, then closes without reading it: with unread data in its
/// receive buffer the kernel answers with a reset (RST), not an orderly close.
fn reset_server() -> SocketAddr {
    serve(|stream| {
        thread::sleep(Duration::from_millis(100));
        drop(stream);
    })
}

fn report(test: &str, error: &dyn std::error::Error, kind: ErrorKind) {
    let mut chain = Vec::new();
    let mut link = error.source();
    while let Some(e) = link {
        chain.push(e.to_string());
        link = e.source();
    }
    eprintln!("[{test}] kind={kind} display={error:?} sources={chain:?}");
}

#[test]
fn std_connect_to_refused_port_is_connect() {
    let port = refused_port();
    let error = TcpStream::connect(("127.0.0.1", port)).expect_err("nothing listens");
    let kind = ErrorKind::from_io(&error);
    report("std refused", &error, kind);
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(kind, ErrorKind::Connect);
    assert_eq!(ErrorKind::from(&error), ErrorKind::Connect);
    assert_eq!(ErrorKind::from_error(&error), ErrorKind::Connect);
}

#[test]
fn std_read_timeout_on_stalled_server_is_timeout() {
    let addr = stalled_server();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).expect("timeout");
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("write");
    let error = stream.read(&mut [0; 16]).expect_err("server never answers");
    let kind = ErrorKind::from_io(&error);
    report("std stalled", &error, kind);
    assert_eq!(kind, ErrorKind::Timeout);
}

#[test]
fn std_reset_is_connect_for_want_of_context() {
    let addr = reset_server();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("write");
    let error = stream.read(&mut [0; 16]).expect_err("reset");
    let kind = ErrorKind::from_io(&error);
    report("std reset", &error, kind);
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
    // An io::Error alone does not say the connection had been set up.
    assert_eq!(kind, ErrorKind::Connect);
}

#[test]
fn std_lookup_of_invalid_name_is_dns_and_fails_fast() {
    let started = Instant::now();
    let error = (INVALID_HOST, 80)
        .to_socket_addrs()
        .expect_err(".invalid never resolves");
    let took = started.elapsed();
    let kind = ErrorKind::from_io(&error);
    report("std dns", &error, kind);
    eprintln!("[std dns] lookup failed after {took:?}");
    assert!(took < Duration::from_secs(5), "lookup took {took:?}");
    assert_eq!(kind, ErrorKind::Dns);
}

#[cfg(feature = "reqwest")]
mod reqwest_client {
    use super::*;

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(CLIENT_TIMEOUT)
            .build()
            .expect("client")
    }

    async fn fails(url: &str) -> reqwest::Error {
        client().get(url).send().await.expect_err("request must fail")
    }

    #[tokio::test]
    async fn refused_port_is_connect() {
        let error = fails(&format!("http://127.0.0.1:{}/", refused_port())).await;
        let kind = ErrorKind::from(&error);
        report("reqwest refused", &error, kind);
        assert!(error.is_connect());
        assert_eq!(kind, ErrorKind::Connect);
    }

    #[cfg(feature = "rustls")]
    #[tokio::test]
    async fn https_to_plaintext_server_is_tls() {
        let addr = plaintext_server();
        let error = fails(&format!("https://{addr}/")).await;
        let kind = ErrorKind::from(&error);
        report("reqwest tls", &error, kind);
        assert!(
            error.is_connect(),
            "a failed handshake is a connect error to reqwest"
        );
        assert_eq!(kind, ErrorKind::Tls);
    }

    #[tokio::test]
    async fn stalled_server_is_timeout() {
        let addr = stalled_server();
        let error = fails(&format!("http://{addr}/")).await;
        let kind = ErrorKind::from(&error);
        report("reqwest stalled", &error, kind);
        assert!(error.is_timeout());
        assert_eq!(kind, ErrorKind::Timeout);
    }

    #[tokio::test]
    async fn hang_up_before_response_is_io() {
        let addr = hang_up_server();
        let error = fails(&format!("http://{addr}/")).await;
        let kind = ErrorKind::from(&error);
        report("reqwest hang-up", &error, kind);
        assert_eq!(kind, ErrorKind::Io);
    }

    #[tokio::test]
    async fn reset_after_request_is_io() {
        let addr = reset_server();
        let error = fails(&format!("http://{addr}/")).await;
        let kind = ErrorKind::from(&error);
        report("reqwest reset", &error, kind);
        assert!(!error.is_connect());
        assert_eq!(kind, ErrorKind::Io);
    }

    #[tokio::test]
    async fn invalid_name_is_dns() {
        let started = Instant::now();
        let error = fails(&format!("http://{INVALID_HOST}/")).await;
        let kind = ErrorKind::from(&error);
        report("reqwest dns", &error, kind);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(kind, ErrorKind::Dns);
    }

    #[tokio::test]
    async fn error_for_a_response_status_is_other() {
        let addr = serve(|mut stream| {
            let mut buf = [0; 1024];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
        });
        let response = client()
            .get(format!("http://{addr}/"))
            .send()
            .await
            .expect("a response");
        let error = response.error_for_status().expect_err("503");
        let kind = ErrorKind::from(&error);
        report("reqwest 503", &error, kind);
        // A response arrived: it belongs in the delivery's status, not in `error.type`.
        assert_eq!(kind, ErrorKind::Other);
    }
}

#[cfg(feature = "hyper-util")]
mod hyper_util_client {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Empty;
    use hyper_util::client::legacy::{connect::HttpConnector, Client};
    use hyper_util::rt::TokioExecutor;

    fn client() -> Client<HttpConnector, Empty<Bytes>> {
        Client::builder(TokioExecutor::new()).build_http()
    }

    async fn fails(url: &str) -> hyper_util::client::legacy::Error {
        let uri = url.parse().expect("uri");
        client().get(uri).await.expect_err("request must fail")
    }

    #[tokio::test]
    async fn refused_port_is_connect() {
        let error = fails(&format!("http://127.0.0.1:{}/", refused_port())).await;
        let kind = ErrorKind::from(&error);
        report("hyper-util refused", &error, kind);
        assert!(error.is_connect());
        assert_eq!(kind, ErrorKind::Connect);
    }

    #[cfg(feature = "rustls")]
    #[tokio::test]
    async fn https_to_plaintext_server_is_tls() {
        use std::sync::Arc;

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .build();
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
        let addr = plaintext_server();
        let uri = format!("https://{addr}/").parse().expect("uri");
        let error = client.get(uri).await.expect_err("handshake must fail");
        let kind = ErrorKind::from(&error);
        report("hyper-util tls", &error, kind);
        assert!(error.is_connect());
        assert_eq!(kind, ErrorKind::Tls);

        // The `io::Error` hyper-rustls returned, classified on its own.
        let mut link: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        let mut io_error = None;
        while let Some(e) = link {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                io_error = Some(io);
                break;
            }
            link = e.source();
        }
        let io_error = io_error.expect("an io::Error in the chain");
        eprintln!("[hyper-util tls] io kind={:?} io={io_error}", io_error.kind());
        assert_eq!(ErrorKind::from_io(io_error), ErrorKind::Tls);
    }

    #[tokio::test]
    async fn stalled_server_with_tokio_timeout_is_timeout() {
        let addr = stalled_server();
        let uri = format!("http://{addr}/").parse().expect("uri");
        let elapsed = tokio::time::timeout(CLIENT_TIMEOUT, client().get(uri))
            .await
            .expect_err("server never answers");
        let kind = ErrorKind::from_error(&elapsed);
        report("hyper-util stalled", &elapsed, kind);
        assert_eq!(kind, ErrorKind::Timeout);
        // tokio's conversion to io::Error keeps it a timeout.
        assert_eq!(
            ErrorKind::from_io(&std::io::Error::from(elapsed)),
            ErrorKind::Timeout
        );
    }

    #[tokio::test]
    async fn hang_up_before_response_is_io() {
        let error = fails(&format!("http://{}/", hang_up_server())).await;
        let kind = ErrorKind::from(&error);
        report("hyper-util hang-up", &error, kind);
        assert!(!error.is_connect());
        assert_eq!(kind, ErrorKind::Io);
    }

    #[tokio::test]
    async fn reset_after_request_is_io() {
        let error = fails(&format!("http://{}/", reset_server())).await;
        let kind = ErrorKind::from(&error);
        report("hyper-util reset", &error, kind);
        assert!(!error.is_connect());
        assert_eq!(kind, ErrorKind::Io);
    }

    #[tokio::test]
    async fn invalid_name_is_dns() {
        let started = Instant::now();
        let error = fails(&format!("http://{INVALID_HOST}/")).await;
        let kind = ErrorKind::from(&error);
        report("hyper-util dns", &error, kind);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(error.is_connect());
        assert_eq!(kind, ErrorKind::Dns);
    }

    #[tokio::test]
    async fn aborted_task_is_cancelled() {
        let addr = stalled_server();
        let uri = format!("http://{addr}/").parse().expect("uri");
        let task = tokio::spawn(async move { client().get(uri).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        task.abort();
        let join_error = task.await.expect_err("aborted");
        let kind = ErrorKind::from_error(&join_error);
        report("hyper-util aborted", &join_error, kind);
        assert_eq!(kind, ErrorKind::Cancelled);
    }
}
