//! A stream wrapper that tells an [`Observer`] about its traffic.
//!
//! The server's connection timeouts (bytes arriving, writes blocked) and the client's
//! socket-edge timestamps (`t1` just before the request bytes go out, `t4` when reply bytes
//! arrive) both watch the socket this way; each is an observer, the plumbing is here once.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The `AsyncWrite` methods a wrapper with an `inner` stream forwards unchanged:
/// `is_write_vectored`, `poll_flush`, `poll_shutdown`.
macro_rules! forward_flush_and_shutdown {
    () => {
        fn is_write_vectored(&self) -> bool {
            self.inner.is_write_vectored()
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
        }
    };
}
pub(crate) use forward_flush_and_shutdown;

/// Every `AsyncWrite` method of a wrapper with an `inner` stream, forwarded unchanged: for
/// wrappers that only change how bytes are read.
macro_rules! forward_writes {
    () => {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
        }

        fn poll_write_vectored(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            bufs: &[std::io::IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
        }

        crate::net::observe::forward_flush_and_shutdown!();
    };
}
pub(crate) use forward_writes;

/// What a stream reports to whoever watches it.
pub(crate) trait Observer: Unpin {
    /// Taken just before bytes are handed to the inner stream; given back to
    /// [`written`](Observer::written) with the write's result.
    type Before;
    /// About to write.
    fn before_write(&self) -> Self::Before;
    /// A write attempt ended with `result` (bytes written, pending, or an error).
    fn written(&self, before: Self::Before, result: &Poll<io::Result<usize>>);
    /// `data` has just been read.
    fn read(&self, data: &[u8]);
}

/// `inner`, reporting its reads and writes to `observer`.
pub(crate) struct Observed<T, O> {
    pub(crate) inner: T,
    pub(crate) observer: O,
}

impl<T: AsyncWrite + Unpin, O: Observer> Observed<T, O> {
    fn write_with(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce(Pin<&mut T>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let before = self.observer.before_write();
        let res = f(Pin::new(&mut self.inner), cx);
        self.observer.written(before, &res);
        res
    }
}

impl<T: AsyncRead + Unpin, O: Observer> AsyncRead for Observed<T, O> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let filled = buf.filled();
            if filled.len() > before {
                this.observer.read(&filled[before..]);
            }
        }
        res
    }
}

impl<T: AsyncWrite + Unpin, O: Observer> AsyncWrite for Observed<T, O> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().write_with(cx, |w, cx| w.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .write_with(cx, |w, cx| w.poll_write_vectored(cx, bufs))
    }

    forward_flush_and_shutdown!();
}
