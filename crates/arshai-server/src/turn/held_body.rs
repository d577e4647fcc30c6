//! A response body that holds a value until the body is finished or dropped: how a turn's
//! admission slot, metrics and limit settlement last as long as its response (a stream's
//! included), whatever ends it.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// `response`, whose body keeps `held` alive until it is dropped (after its last byte, or
/// when the client leaves).
pub(crate) fn hold_until_sent<H: Send + Unpin + 'static>(response: Response, held: H) -> Response {
    response.map(|inner| Body::new(HeldBody { inner, _held: held }))
}

struct HeldBody<H> {
    inner: Body,
    _held: H,
}

impl<H: Send + Unpin + 'static> http_body::Body for HeldBody<H> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        // `Body` and `H` are both `Unpin`, so the body can be reached without pinning.
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
