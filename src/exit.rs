//! Exit codes, from BSD's sysexits.h, so init systems and scripts can tell a bad config from
//! a busy port from a bug.

/// Success.
pub const OK: u8 = 0;
/// The command line was wrong (unknown flag, bad value).
pub const USAGE: u8 = 64;
/// Input data was wrong (e.g. a file that does not parse).
pub const DATAERR: u8 = 65;
/// An input file does not exist or cannot be read.
pub const NOINPUT: u8 = 66;
/// A service is unavailable (e.g. the port is in use, no server answered).
pub const UNAVAILABLE: u8 = 69;
/// An internal error: a bug.
pub const SOFTWARE: u8 = 70;
/// An operating system error (cannot create a runtime, a socket...).
pub const OSERR: u8 = 71;
/// An output file or socket cannot be created.
pub const CANTCREAT: u8 = 73;
/// A temporary failure, worth trying again later (e.g. `webntpd status`: the daemon runs
/// but is not synchronised yet).
pub const TEMPFAIL: u8 = 75;
/// Not permitted (e.g. binding a port below 1024 without the capability).
pub const NOPERM: u8 = 77;
/// The configuration is wrong.
pub const CONFIG: u8 = 78;
