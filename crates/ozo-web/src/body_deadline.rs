//! A deadline for a request's whole body, counted from the end of its headers. A client
//! that sends its body a few bytes at a time would otherwise hold its connection for as
//! long as it likes, because a timeout between reads starts again with every byte.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body as _, Frame, SizeHint};

use crate::error::ApiError;
use crate::AppState;

/// Gives the request's body until the client read timeout to arrive. When it does not,
/// reading it fails, and the handler's client error is replaced by 408 with
/// `Connection: close`, because the rest of the body is never read.
pub async fn limit_body_time(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // A request without a body, such as most GETs, needs no deadline or timer.
    if request.body().size_hint().exact() == Some(0) {
        return next.run(request).await;
    }

    let timeout = state.settings().client_read_timeout;
    let timed_out = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let body = DeadlineBody {
        inner: body,
        deadline: Box::pin(tokio::time::sleep(timeout)),
        timed_out: Arc::clone(&timed_out),
    };

    let response = next.run(Request::from_parts(parts, Body::new(body))).await;

    // A failed body read ends in a client error. A handler that succeeded, or failed with
    // a server error, keeps its response.
    if !timed_out.load(Ordering::Relaxed) || !response.status().is_client_error() {
        return response;
    }
    let mut response = ApiError::body_timeout(timeout).into_response();
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body that fails once its deadline has passed.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timed_out: Arc<AtomicBool>,
}

/// The error of a body read after its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the client read timeout")]
struct BodyTimedOut;

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
