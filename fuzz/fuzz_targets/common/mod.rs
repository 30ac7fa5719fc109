//! What the targets that serve connections share.

use std::sync::OnceLock;

use webntpd::sync::Timestamp;

/// The standing clock's time: 2026-11-21, with nanoseconds, so rounding shows.
pub const NOW: Timestamp = Timestamp::from_nanos(1_795_270_670_615_087_123);

/// `t` as the wire carries it: its six-decimal text, parsed.
pub fn micros(t: Timestamp) -> Option<Timestamp> {
    Timestamp::parse(&t.to_micros_string()).ok()
}

/// One single-threaded runtime for every run: spawned sessions run while the run blocks on it.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => panic!("no runtime: {e}"),
        }
    })
}
