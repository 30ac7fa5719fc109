//! Idle kept-alive connections and WebSockets, parked outside the runtime (issue 18): the
//! parking thread, its epoll set, and every connection parked in it.
//!
//! A time server's clients mostly sit idle between samples: kept-alive HTTP connections, and
//! WebSockets held open by clock pages. As a tokio task, an idle plain HTTP/1 connection costs
//! its task (about 900 bytes), its reactor registration (256) and its [`Activity`]; an idle
//! WebSocket, its session's task (about 1.5 KiB) too. Parked, either costs one entry here
//! (about 90 bytes), its `Activity` and (a WebSocket) its reply id, as nginx's idle
//! connections cost a few hundred bytes:
//!
//! - `conn` parks a connection on the fast path, or a WebSocket session on a plain
//!   connection, that has had nothing to do for
//!   [`Limits::park_after`](super::Limits::park_after) (no request in progress, no partial
//!   head or frame, nothing unwritten): its socket leaves tokio's reactor and its task ends.
//! - One thread (`webntpd-park`) waits on its own epoll set (mio) for any parked socket to
//!   become readable. A socket with bytes goes back to the runtime in a new task
//!   ([`conn::resume`]), with the same `Activity` (receive stamps, connection slot, timers),
//!   and the fast path or the WebSocket session reads what came. A socket the client closed
//!   is closed here, without a task. Every [`SWEEP`], deadlines are checked: an HTTP
//!   connection past its keep-alive deadline is closed here; a WebSocket past its idle
//!   timeout goes back to the runtime, whose session closes it as a running one would (1000,
//!   "idle timeout", and the close handshake).
//! - When the server stops, every parked connection is closed, a WebSocket after its close
//!   frame (1001), written here if its socket takes it at once (an idle socket's send buffer
//!   is empty, so it does).
//!
//! Connections come in through [`Lot::park`] (a short mutex and an eventfd wake-up), so the
//! runtime never waits on this thread. TLS and HTTP/2 connections are not parked.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use tokio::runtime::Handle;

use super::activity::Activity;
use super::{conn, ws, Shared};

/// How often parked connections are checked against their keep-alive deadline: a parked
/// connection is closed up to this much after its deadline.
pub(crate) const SWEEP: Duration = Duration::from_millis(250);

/// The token of the wake-up that says the inbox has arrivals (or the server stops).
const WAKE: Token = Token(usize::MAX);

/// Readiness events taken per `epoll_wait`.
const EVENTS: usize = 256;

/// A connection handed over for parking (its socket a std one), and as the thread keeps it
/// (a mio one, in its epoll set).
pub(crate) struct Parked<S = std::net::TcpStream> {
    pub(crate) stream: S,
    pub(crate) peer: SocketAddr,
    pub(crate) activity: Arc<Activity>,
    /// When it is closed if nothing arrives: its keep-alive deadline, or a WebSocket's idle
    /// deadline.
    pub(crate) deadline: Instant,
    /// The WebSocket session, if the connection is one.
    pub(crate) ws: Option<ws::Session>,
}

impl Parked<mio::net::TcpStream> {
    /// As handed to the runtime.
    fn into_std(self) -> Parked {
        Parked {
            stream: self.stream.into(),
            peer: self.peer,
            activity: self.activity,
            deadline: self.deadline,
            ws: self.ws,
        }
    }
}

/// Close a parked connection because the server stops: a WebSocket gets its close frame
/// (1001) first, if its socket takes it at once (nonblocking, as parked sockets are).
pub(crate) fn farewell<S>(p: Parked<S>)
where
    for<'a> &'a S: Write,
{
    if p.ws.is_some() {
        let _ = (&p.stream).write(&ws::session::shutdown_frame());
    }
}

/// One parked connection, as the thread keeps it.
type Entry = Parked<mio::net::TcpStream>;

/// What connections park through: the parking thread's inbox and its wake-up.
pub(crate) struct Lot {
    inbox: Mutex<Inbox>,
    waker: mio::Waker,
    /// The thread runs and takes connections.
    open: AtomicBool,
}

#[derive(Default)]
struct Inbox {
    arrivals: Vec<Parked>,
    closed: bool,
}

impl Lot {
    /// A lot and the epoll set its thread will wait on; nothing parks until [`start`].
    pub(crate) fn new() -> io::Result<(Arc<Lot>, Poll)> {
        let poll = Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKE)?;
        let lot = Arc::new(Lot {
            inbox: Mutex::default(),
            waker,
            open: AtomicBool::new(false),
        });
        Ok((lot, poll))
    }

    /// The parking thread is running: connections may park.
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Hand `p` to the parking thread. Refused (and given back) once the lot is closed.
    pub(crate) fn park(&self, p: Parked) -> Result<(), Parked> {
        {
            let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
            if inbox.closed {
                return Err(p);
            }
            inbox.arrivals.push(p);
        }
        // An eventfd write; it only fails if the counter would overflow, which needs 2^64
        // wake-ups the thread has not read: the connection is in the inbox either way.
        let _ = self.waker.wake();
        Ok(())
    }

    /// Stop taking connections and close every parked one; the thread ends.
    pub(crate) fn close(&self) {
        self.open.store(false, Ordering::Relaxed);
        self.inbox.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        let _ = self.waker.wake();
    }
}

/// Start the parking thread for `shared`'s connections. Resumed connections become tasks
/// on `runtime`, tracked in `shared.tasks`.
pub(crate) fn start(
    lot: Arc<Lot>,
    poll: Poll,
    shared: Arc<Shared>,
    runtime: Handle,
) -> io::Result<()> {
    lot.open.store(true, Ordering::Relaxed);
    let thread_lot = lot.clone();
    let spawned = std::thread::Builder::new()
        .name("webntpd-park".into())
        // Its frames are small: no need for std's 2 MiB of address space.
        .stack_size(64 * 1024)
        .spawn(move || {
            Parking {
                lot: thread_lot,
                poll,
                entries: Vec::new(),
                vacant: Vec::new(),
                parked: 0,
                shared,
                runtime,
            }
            .run()
        });
    if let Err(e) = spawned {
        lot.open.store(false, Ordering::Relaxed);
        return Err(e);
    }
    Ok(())
}

/// The parking thread's state.
struct Parking {
    lot: Arc<Lot>,
    poll: Poll,
    /// Parked connections, by token; `None` where one left.
    entries: Vec<Option<Entry>>,
    /// Indices of the `None`s in `entries`, for reuse.
    vacant: Vec<usize>,
    parked: usize,
    shared: Arc<Shared>,
    runtime: Handle,
}

impl Parking {
    fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS);
        let mut next_sweep = Instant::now() + SWEEP;
        loop {
            let timeout =
                (self.parked > 0).then(|| next_sweep.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    // epoll_wait fails only on a bad descriptor or argument: a bug. Closing
                    // every parked connection is all that is left to do.
                    tracing::error!(target: "webntpd::server", "parked connections: epoll_wait failed: {e}; closing them and parking no more");
                    self.lot.close();
                    break;
                }
            }
            let mut woken = false;
            for event in events.iter() {
                if event.token() == WAKE {
                    woken = true;
                } else {
                    self.ready(event.token().0);
                }
            }
            if woken && !self.take_arrivals() {
                break;
            }
            let now = Instant::now();
            if now >= next_sweep {
                self.sweep(now);
                next_sweep = now + SWEEP;
            }
            if self.parked == 0 && self.entries.capacity() > 0 {
                // Nothing parked: the tables' memory goes back (19,000 entries are 1.4 MB),
                // and the thread sleeps without a sweep until something parks.
                self.entries = Vec::new();
                self.vacant = Vec::new();
            }
            self.shared.stats.set_parked(self.parked);
        }
        for entry in self.entries.drain(..).flatten() {
            farewell(entry);
        }
        // Handed over after the last look (the lot is closed now, so no more come): closed too.
        let late = std::mem::take(
            &mut self
                .lot
                .inbox
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .arrivals,
        );
        late.into_iter().for_each(farewell);
        self.shared.stats.set_parked(0);
    }

    /// Park what arrived; `false` once the lot is closed (everything parked is then closed).
    fn take_arrivals(&mut self) -> bool {
        let (arrivals, closed) = {
            let mut inbox = self.lot.inbox.lock().unwrap_or_else(|e| e.into_inner());
            (std::mem::take(&mut inbox.arrivals), inbox.closed)
        };
        if closed {
            arrivals.into_iter().for_each(farewell);
            return false;
        }
        for p in arrivals {
            let index = self.vacant.pop().unwrap_or(self.entries.len());
            let mut stream = mio::net::TcpStream::from_std(p.stream);
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut stream, Token(index), Interest::READABLE)
            {
                // Out of epoll watches (fs.epoll.max_user_watches) or memory: the client
                // reconnects, as after a keep-alive timeout.
                tracing::debug!(target: "webntpd::server", "{}: could not park ({e}); closed", p.peer);
                if index < self.entries.len() {
                    self.vacant.push(index);
                }
                continue;
            }
            let entry = Some(Entry {
                stream,
                peer: p.peer,
                activity: p.activity,
                deadline: p.deadline,
                ws: p.ws,
            });
            if index == self.entries.len() {
                self.entries.push(entry);
            } else {
                self.entries[index] = entry;
            }
            self.parked += 1;
        }
        true
    }

    /// Parked connection `index` has something to read, or an error.
    fn ready(&mut self, index: usize) {
        let Some(entry) = self.entries.get(index).and_then(Option::as_ref) else {
            return;
        };
        let mut byte = [0u8; 1];
        let has_bytes = loop {
            match entry.stream.peek(&mut byte) {
                Ok(0) => break false,
                Ok(_) => break true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Nothing after all: stays parked (the next bytes are a new edge).
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!(target: "webntpd::server", "{}: parked connection failed: {e}; closed", entry.peer);
                    break false;
                }
            }
        };
        let Some(entry) = self.remove(index) else {
            return;
        };
        if has_bytes {
            self.resume(entry, false);
        }
        // Otherwise the client closed it (or it failed): dropping the entry closes it.
    }

    /// Hand `entry` back to the runtime: it has bytes to read, or (`expired`) it is a
    /// WebSocket to close after its idle timeout.
    fn resume(&self, entry: Entry, expired: bool) {
        let task = conn::resume(entry.into_std(), expired, self.shared.clone());
        self.shared.tasks.spawn_on(task, &self.runtime);
    }

    /// Take entry `index` out of the epoll set and the table.
    fn remove(&mut self, index: usize) -> Option<Entry> {
        let mut entry = self.entries.get_mut(index)?.take()?;
        // Closing the socket would remove it from the set as well, but a resumed one stays
        // open (in tokio's reactor now).
        let _ = self.poll.registry().deregister(&mut entry.stream);
        self.vacant.push(index);
        self.parked -= 1;
        Some(entry)
    }

    /// Close every connection past its keep-alive deadline, and hand back every WebSocket
    /// past its idle deadline to be closed; give back the table's memory when most of it is
    /// unused.
    fn sweep(&mut self, now: Instant) {
        for index in 0..self.entries.len() {
            if self.entries[index]
                .as_ref()
                .is_some_and(|e| e.deadline <= now)
            {
                match self.remove(index) {
                    Some(e) if e.ws.is_some() => self.resume(e, true),
                    Some(e) => {
                        tracing::debug!(target: "webntpd::server", "{}: Idle after {:?}; closed", e.peer, self.shared.limits.keepalive_timeout);
                    }
                    None => {}
                }
            }
        }
        let len = self.entries.len();
        if len > 1024 && self.parked < len / 4 {
            // Tokens are indices, so only unused entries at the end can go.
            while matches!(self.entries.last(), Some(None)) {
                self.entries.pop();
            }
            let len = self.entries.len();
            self.vacant.retain(|i| *i < len);
            self.entries.shrink_to_fit();
            self.vacant.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parked connection is its entry, its `Activity` and (a WebSocket) its reply id: a
    /// guard against a change that makes each entry carry more (88 bytes with Rust 1.9x).
    #[test]
    fn an_entry_stays_small() {
        let size = std::mem::size_of::<Option<Entry>>();
        eprintln!("parked entry: {size} bytes");
        assert!(size <= 96, "a parked entry is {size} bytes");
    }
}
