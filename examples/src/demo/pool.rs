//! Keep-alive HTTP/1.1 connections to one address, so a high `--rate` reuses
//! sockets instead of leaving thousands in TIME_WAIT.

use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// Idle connections kept per address; more are opened on demand and closed after use.
const MAX_IDLE: usize = 64;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The TCP connection could not be made (refused, unreachable).
    #[error("connect: {0}")]
    Connect(#[from] std::io::Error),
    /// The connection broke before a full response arrived.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
}

/// A response whose body was read to the end and dropped.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
}

/// Connections to one address.
#[derive(Debug)]
pub struct ConnectionPool {
    addr: SocketAddr,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl ConnectionPool {
    /// A pool for `addr`; connects lazily.
    pub fn new(addr: SocketAddr) -> Self {
        ConnectionPool {
            addr,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    /// An idle connection that is ready for a request, or a new one.
    async fn sender(&self) -> Result<SendRequest<Full<Bytes>>, SendError> {
        while let Some(mut sender) = self.take_idle() {
            if sender.ready().await.is_ok() {
                return Ok(sender);
            }
        }
        self.connect().await
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, SendError> {
        let stream = tokio::net::TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// Sends `request` on an idle connection (or a new one) and reads the whole response.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Reply, SendError> {
        let mut sender = self.sender().await?;
        let response = sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        // Read to the end so the connection can carry the next request.
        body.collect().await?;
        if !sender.is_closed() {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE {
                idle.push(sender);
            }
        }
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
        })
    }
}
