//! One WebSocket session: reads the client's frames, answers each timestamp, pings and
//! closes, and ends the session with a close frame that says why.
//!
//! Built as the fast path is (see `fast`): each poll reads what has arrived into its runtime
//! thread's scratch buffers, answers every whole frame in it ([`frame::Reader`]) and writes
//! the answers at once. Between messages the session holds no buffer, only the bytes of a
//! frame not complete yet (on the heap only then), so an idle session is its task and its
//! socket; and once idle for `park_after` with nothing half-read or unwritten, a session on a
//! plain connection gives back its socket to be parked (`park`), which keeps even less.
//!
//! Timeouts: a session that receives nothing for `ws_idle_timeout` is closed (1000, "idle
//! timeout"); a client that does not read its replies for that long is dropped. After a
//! close frame, the client has [`CLOSE_GRACE`] to answer it and hang up.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use super::frame::{self, code, Event, Reader, Refusal};
use super::Session;
use crate::server::activity::Activity;
use crate::server::fast::write_now;
use crate::server::stats::{Kind, Reject};
use crate::server::Shared;
use crate::sync::Timestamp;
use crate::wire::reply::{ReplyFields, ReplyTemplate};

/// After sending a close frame, how long to wait for the client's close before hanging up.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Bytes read per read, beyond those of a frame already begun.
const READ: usize = 4096;

/// A session's client: everything about it that outlives one message.
pub(crate) struct Client {
    pub(crate) peer: SocketAddr,
    pub(crate) activity: Arc<Activity>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) session: Session,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Closed (or failed, or dropped): the connection is finished.
    Done,
    /// Idle with nothing half-read or unwritten: the socket may be parked.
    Park,
}

/// Each runtime thread's buffers: what was read, and the frames answering it. Borrowed only
/// within one poll and left empty, so an idle session holds neither.
struct Scratch {
    input: Vec<u8>,
    out: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch {
            input: Vec::new(),
            out: Vec::new(),
        })
    };
}

/// One session, as [`turn`] sees it.
struct Conn<'a, S> {
    io: &'a mut S,
    /// The start of a frame not complete yet (or, before the first read, bytes that came
    /// with the handshake).
    carry: Vec<u8>,
    /// `carry` holds bytes not looked at yet.
    unread: bool,
    reader: Reader,
    client: &'a Client,
}

impl<S> Conn<'_, S> {
    /// Nothing would be lost if the session stopped reading now.
    fn is_idle(&self) -> bool {
        self.carry.is_empty() && !self.unread && self.reader.is_between_messages()
    }
}

/// What a [`turn`] leaves to do: frames the socket did not take at once, then what next.
struct Step {
    unsent: Vec<u8>,
    then: Then,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Read on.
    Read,
    /// A close frame is among the frames written: wait for the client to hang up.
    Closing,
    /// The client hung up (or the connection failed).
    End,
}

/// Serve the session on `io` until it closes, or until it is idle and may be parked (only if
/// `park`). `early` are bytes that came after the handshake, before the session started.
pub(crate) async fn run<S>(io: &mut S, early: Vec<u8>, client: &Client, park: bool) -> End
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let Client {
        peer,
        activity,
        shared,
        ..
    } = client;
    let limits = &shared.limits;
    let mut conn = Conn {
        io,
        unread: !early.is_empty(),
        carry: early,
        reader: Reader::new(limits.ws_max_message),
        client,
    };
    let shutdown = shared.shutdown.cancelled();
    tokio::pin!(shutdown);
    loop {
        // Deadlines from the last bytes read: `turn` answers messages without coming back
        // here, so they are read again when the timer fires.
        let idle_at = || activity.last_read_at() + limits.ws_idle_timeout;
        let park_at = || activity.last_read_at() + limits.park_after;
        let wake = if !park {
            idle_at()
        } else if conn.is_idle() {
            park_at().min(idle_at())
        } else {
            // Inside a message or a frame: looked at again once it may have ended.
            (Instant::now() + limits.park_after).min(idle_at())
        };
        let step = tokio::select! {
            // What arrived first: a resumed session's bytes are read before its park time
            // (passed) could park it again unread, and an expired one's before it closes.
            biased;
            r = std::future::poll_fn(|cx| turn(cx, &mut conn)) => r,
            () = &mut shutdown => {
                say_goodbye(conn.io, code::AWAY, "server shutting down").await;
                return End::Done;
            }
            () = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                if now >= idle_at() {
                    say_goodbye(conn.io, code::NORMAL, "idle timeout").await;
                    return End::Done;
                }
                if park && conn.is_idle() && now >= park_at() {
                    return End::Park;
                }
                continue;
            }
        };
        let step = match step {
            Ok(step) => step,
            Err(e) => {
                tracing::debug!(target: "webntpd::server", "{peer}: WebSocket ended: {e}");
                return End::Done;
            }
        };
        if !step.unsent.is_empty() {
            // A client that stops reading blocks the write; it gets the idle timeout too (or
            // the close grace, if the write ends in a close).
            let idle = match step.then {
                Then::Closing => CLOSE_GRACE,
                _ => limits.ws_idle_timeout,
            };
            match tokio::time::timeout(idle, conn.io.write_all(&step.unsent)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(target: "webntpd::server", "{peer}: WebSocket send failed: {e}");
                    return End::Done;
                }
                Err(_) => {
                    tracing::debug!(target: "webntpd::server", "{peer}: WebSocket client not reading its replies for {idle:?}; dropped");
                    return End::Done;
                }
            }
        }
        match step.then {
            Then::Read => {}
            Then::Closing => {
                Box::pin(linger(conn.io)).await;
                return End::Done;
            }
            Then::End => return End::Done,
        }
    }
}

/// Read what has arrived into this thread's [`Scratch`], answer every whole frame and write
/// the answers, until the socket has nothing more to read (pending) or something is left for
/// [`run`] to do. The scratch is left empty whatever happens.
fn turn<S>(cx: &mut Context<'_>, conn: &mut Conn<'_, S>) -> Poll<io::Result<Step>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    SCRATCH.with_borrow_mut(|s| loop {
        let r = read_and_answer(cx, conn, s);
        s.out.clear();
        if s.input.len() > 64 * 1024 {
            // Grown for a large `ws_max_message`: not kept for the thread's life.
            s.input = Vec::new();
        }
        match r {
            Poll::Ready(Ok(Step {
                then: Then::Read,
                ref unsent,
            })) if unsent.is_empty() => {}
            other => return other,
        }
    })
}

/// One read and its answers (see [`turn`]).
fn read_and_answer<S>(
    cx: &mut Context<'_>,
    conn: &mut Conn<'_, S>,
    s: &mut Scratch,
) -> Poll<io::Result<Step>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let kept = conn.carry.len();
    let size = kept + READ;
    if s.input.len() < size {
        s.input.resize(size, 0);
    }
    s.input[..kept].copy_from_slice(&conn.carry);
    let have = if conn.unread {
        conn.unread = false;
        kept
    } else {
        let mut rb = ReadBuf::new(&mut s.input[kept..size]);
        // Pending: nothing more to read now, and `carry` still holds what was.
        ready!(Pin::new(&mut *conn.io).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        if n == 0 {
            return Poll::Ready(Ok(Step {
                unsent: Vec::new(),
                then: Then::End,
            }));
        }
        kept + n
    };
    conn.carry = Vec::new();
    let (used, then) = answer(
        conn.client,
        &mut conn.reader,
        &mut s.input[..have],
        &mut s.out,
    );
    if then == Then::Read {
        conn.carry.extend_from_slice(&s.input[used..have]);
    }
    let written = write_now(cx, conn.io, &s.out)?;
    Poll::Ready(Ok(Step {
        unsent: s.out[written..].to_vec(),
        then,
    }))
}

/// Answer the whole frames at the start of `buf` into `out`: how many bytes they took, and
/// whether the session reads on or is closing.
fn answer(
    client: &Client,
    reader: &mut Reader,
    buf: &mut [u8],
    out: &mut Vec<u8>,
) -> (usize, Then) {
    let mut start = 0;
    loop {
        let refusal = match reader.next(&mut buf[start..]) {
            Ok(None) => return (start, Then::Read),
            Ok(Some((used, event))) => {
                start += used;
                match event {
                    Event::Message { text, payload } => match reply(client, text, &payload, out) {
                        Ok(()) => continue,
                        Err(refusal) => refusal,
                    },
                    Event::Ping(payload) => {
                        frame::pong(out, payload);
                        continue;
                    }
                    Event::Nothing => continue,
                    Event::Close(code) => {
                        // Answered with its code (RFC 6455 section 5.5.1); the client then
                        // hangs up.
                        frame::close(out, code, "");
                        return (start, Then::Closing);
                    }
                }
            }
            Err(refusal) => refusal,
        };
        tracing::debug!(target: "webntpd::server", "{}: WebSocket closed with {}: {}", client.peer, refusal.code, refusal.reason);
        client.shared.stats.rejected(Reject::WsMessage);
        frame::close(out, Some(refusal.code), &refusal.reason);
        return (start, Then::Closing);
    }
}

/// Append the reply to one message to `out`, or say why the session must close.
fn reply(client: &Client, text: bool, payload: &[u8], out: &mut Vec<u8>) -> Result<(), Refusal> {
    let Client {
        activity,
        shared,
        session,
        ..
    } = client;
    // When the message's bytes arrived, not when this task got to them.
    let rt = activity.rx.received(&*shared.clock);
    let Ok(msg) = std::str::from_utf8(payload) else {
        let what = if text {
            "text message is not UTF-8"
        } else {
            "binary message is not UTF-8 text"
        };
        return Err(Refusal::new(code::INVALID, what));
    };
    let msg = msg.trim_ascii();
    let it = Timestamp::parse(msg)
        .map_err(|e| Refusal::new(code::INVALID, format!("invalid timestamp: {e}")))?;
    let fields = ReplyFields {
        id: &session.id,
        it,
        it_text: Some(msg),
        rt,
        leap: shared.leap.info(rt),
    };
    let template = ReplyTemplate::new(&fields, rt, None);
    let st = shared.clock.realtime();
    shared.stats.request(Kind::Ws);
    shared.stats.replied(rt, st);
    let (bytes, _) = template.stamp(st);
    frame::text(out, &bytes);
    Ok(())
}

/// Close with `code` and `reason`, then wait for the client to hang up. Boxed: a session
/// closes once, and its idle state should not be as large as this path.
fn say_goodbye<'a, S>(
    io: &'a mut S,
    code: u16,
    reason: &'static str,
) -> Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    Box::pin(async move {
        let mut out = Vec::with_capacity(2 + 2 + reason.len());
        frame::close(&mut out, Some(code), reason);
        if let Ok(Ok(())) = tokio::time::timeout(CLOSE_GRACE, io.write_all(&out)).await {
            linger(io).await;
        }
    })
}

/// A close frame has been sent: end our side, then read (and drop) whatever the client still
/// sends, its close among it, until it hangs up; at most [`CLOSE_GRACE`]. The client thus
/// reads our close before the connection goes (closing with its bytes unread would send it a
/// reset, which can overtake them).
async fn linger<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        io.shutdown().await?;
        let mut sink = [0u8; 512];
        while io.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

/// The close frame a parked session gets when the server stops (see `park`): 1001, as a
/// running session's.
pub(crate) fn shutdown_frame() -> Vec<u8> {
    let mut out = Vec::new();
    frame::close(&mut out, Some(code::AWAY), "server shutting down");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle WebSocket on a TLS connection is this future and the task around it (issue
    /// 18; plain ones are parked): a guard against a change that makes each carry more.
    #[test]
    fn a_session_stays_small() {
        fn size<S: 'static, F: std::future::Future>(
            _: impl Fn(&'static mut S, Vec<u8>, &'static Client, bool) -> F,
        ) -> usize {
            std::mem::size_of::<F>()
        }
        type Io = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;
        let size = size::<Io, _>(run::<Io>);
        eprintln!("session future: {size} bytes");
        assert!(size <= 768, "the WebSocket session is {size} bytes");
    }
}
