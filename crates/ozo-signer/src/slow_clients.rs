//! Limits on clients that connect and then send nothing, and the refusal of HTTP/2.
//! hyper's header read timeout starts only with a request's first byte, so without this
//! a client could keep a new connection, or one on which it finished the TLS handshake,
//! open for ever. hyper has no header or idle timeouts for HTTP/2 at all, and
//! axum-server serves it to any client that opens with its preface.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An acceptor that wraps the streams of `inner`, such as a TLS acceptor, so that a
/// connection whose first byte does not arrive within `timeout` is closed, and so is one
/// that opens with HTTP/2's preface.
#[derive(Clone)]
pub struct FirstByteAcceptor<A> {
    inner: A,
    timeout: Duration,
}

impl<A> FirstByteAcceptor<A> {
    pub fn new(inner: A, timeout: Duration) -> Self {
        FirstByteAcceptor { inner, timeout }
    }
}

impl<I, S, A> Accept<I, S> for FirstByteAcceptor<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Unpin,
{
    type Stream = FirstByteStream<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepting = self.inner.accept(stream, service);
        let timeout = self.timeout;
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            let deadline = Some(Box::pin(tokio::time::sleep(timeout)));
            Ok((FirstByteStream { inner: stream, deadline, opening: Vec::with_capacity(HTTP2_OPENING.len()) }, service))
        })
    }
}

/// The `reason` label of `ozo_connections_closed_total` for a connection whose first
/// byte did not arrive in time.
const NO_FIRST_BYTE: &str = "no-first-byte";

/// The `reason` label of `ozo_connections_closed_total` for a connection that opened
/// with HTTP/2's preface.
const HTTP2: &str = "http2";

/// The `reason` labels of `ozo_connections_closed_total`.
pub const CLOSE_REASONS: [&str; 2] = [NO_FIRST_BYTE, HTTP2];

/// The start of HTTP/2's connection preface, `PRI * HTTP/2.0`.
const HTTP2_OPENING: &[u8] = b"PRI ";

/// A stream whose reads fail with `TimedOut` once its deadline has passed without a
/// byte read, and with `InvalidData` when it opens with [`HTTP2_OPENING`]. After that
/// it passes everything through.
pub struct FirstByteStream<S> {
    inner: S,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The first bytes read, until there are as many as [`HTTP2_OPENING`] has.
    opening: Vec<u8>,
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstByteStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let filled = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);

        if matches!(read, Poll::Ready(Ok(()))) && this.opening.len() < HTTP2_OPENING.len() {
            let new = &buf.filled()[filled..];
            let take = (HTTP2_OPENING.len() - this.opening.len()).min(new.len());
            this.opening.extend_from_slice(&new[..take]);
            if this.opening == HTTP2_OPENING {
                metrics::counter!("ozo_connections_closed_total", "reason" => HTTP2).increment(1);
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "HTTP/2 is not served; use HTTP/1.1")));
            }
        }

        let Some(deadline) = this.deadline.as_mut() else {
            return read;
        };
        match read {
            Poll::Ready(Ok(())) if buf.filled().len() > filled => {
                this.deadline = None;
                Poll::Ready(Ok(()))
            }
            Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                this.deadline = None;
                metrics::counter!("ozo_connections_closed_total", "reason" => NO_FIRST_BYTE).increment(1);
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "no request arrived within the client read timeout")))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstByteStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn wrap(stream: tokio::io::DuplexStream, timeout: Duration) -> FirstByteStream<tokio::io::DuplexStream> {
        let deadline = Some(Box::pin(tokio::time::sleep(timeout)));
        FirstByteStream { inner: stream, deadline, opening: Vec::new() }
    }

    #[tokio::test]
    async fn http2_preface_rejected_across_reads() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut server = wrap(server, Duration::from_secs(10));
        let mut buffer = [0_u8; 64];

        client.write_all(b"PR").await.unwrap();
        assert_eq!(server.read(&mut buffer).await.unwrap(), 2);
        client.write_all(b"I * HTTP/2.0\r\n").await.unwrap();
        let error = server.read(&mut buffer).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn http1_request_passes_through() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut server = wrap(server, Duration::from_millis(50));
        client.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        let mut buffer = [0_u8; 64];
        let count = server.read(&mut buffer).await.unwrap();
        assert_eq!(&buffer[..count], b"GET /healthz HTTP/1.1\r\n");

        // After the first byte the deadline no longer applies.
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.write_all(b"Host: x\r\n").await.unwrap();
        let count = server.read(&mut buffer).await.unwrap();
        assert_eq!(&buffer[..count], b"Host: x\r\n");
    }

    #[tokio::test]
    async fn silent_client_times_out() {
        let (_client, server) = tokio::io::duplex(64);
        let mut server = wrap(server, Duration::from_millis(50));
        let mut buffer = [0_u8; 64];
        let error = server.read(&mut buffer).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
