//! Response bodies, including the one that stamps the server time as late as possible.
//!
//! hyper encodes the response head, then polls the body for its data, then writes head and
//! body to the socket together. [`ReplyBody::Stamped`] holds a fully formatted reply
//! ([`ReplyTemplate`]) and reads the clock only when hyper polls it: the `st` a client sees
//! is taken after all formatting and header encoding, immediately before the write.
//!
//! Every body also holds the connection's [`InFlight`] guard, so the connection counts as busy
//! (not idle) until hyper has finished with the response.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use std::sync::Arc;

use super::activity::InFlight;
use super::Shared;
use crate::sync::Timestamp;
use crate::wire::reply::ReplyTemplate;

/// The body of every response the server sends.
pub(crate) enum ReplyBody {
    /// A WebNTP reply whose `st` is read from the server's clock when the body is polled;
    /// `st - rt` goes to the latency histogram.
    Stamped {
        template: Option<ReplyTemplate>,
        rt: Timestamp,
        shared: Arc<Shared>,
        _busy: InFlight,
    },
    /// Fixed bytes (errors, NICT pages); `None` once sent.
    Fixed {
        bytes: Option<Bytes>,
        _busy: InFlight,
    },
    /// No body (HEAD, 204, 101).
    Empty { _busy: InFlight },
}

impl ReplyBody {
    pub(crate) fn stamped(
        template: ReplyTemplate,
        rt: Timestamp,
        shared: Arc<Shared>,
        busy: InFlight,
    ) -> Self {
        ReplyBody::Stamped {
            template: Some(template),
            rt,
            shared,
            _busy: busy,
        }
    }

    pub(crate) fn fixed(bytes: impl Into<Bytes>, busy: InFlight) -> Self {
        ReplyBody::Fixed {
            bytes: Some(bytes.into()),
            _busy: busy,
        }
    }

    pub(crate) fn empty(busy: InFlight) -> Self {
        ReplyBody::Empty { _busy: busy }
    }

    /// The body's bytes, once; a WebNTP reply reads the clock for `st` now. The body (and
    /// the connection's in-flight mark) stays alive until dropped.
    pub(crate) fn take_data(&mut self) -> Option<Bytes> {
        match self {
            ReplyBody::Stamped {
                template,
                rt,
                shared,
                ..
            } => template.take().map(|t| {
                let st = shared.clock.realtime();
                shared.stats.replied(*rt, st);
                let (bytes, stamped) = t.stamp(st);
                if !stamped {
                    tracing::debug!(
                        target: "webntpd::server",
                        "server time changed digit count between formatting and sending; \
                         sent the provisional stamp"
                    );
                }
                Bytes::from(bytes)
            }),
            ReplyBody::Fixed { bytes, .. } => bytes.take(),
            ReplyBody::Empty { .. } => None,
        }
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().take_data().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReplyBody::Stamped { template, .. } => template.is_none(),
            ReplyBody::Fixed { bytes, .. } => bytes.is_none(),
            ReplyBody::Empty { .. } => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        let len = match self {
            ReplyBody::Stamped { template, .. } => template.as_ref().map_or(0, |t| t.len()),
            ReplyBody::Fixed { bytes, .. } => bytes.as_ref().map_or(0, |b| b.len()),
            ReplyBody::Empty { .. } => 0,
        };
        SizeHint::with_exact(len as u64)
    }
}
