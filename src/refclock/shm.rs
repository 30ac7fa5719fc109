//! The SHM reference clock: a System V shared-memory segment holding one `struct shmTime`,
//! read by ntpd (`server 127.127.28.N`), ntpsec (`refclock shm unit N`), chrony
//! (`refclock SHM N`) and gpsd's `ntpshmmon`.
//!
//! - Unit N is key `0x4E545030 + N` ("NTP0" + N); every unit 0..=255 can be used.
//! - Whoever comes first creates the segment. webntpd, like ntpd and gpsd, creates units 0
//!   and 1 readable and writable by its own user only (0600) and units 2 and up by everyone
//!   (0666), unless told otherwise: with 0666 any local user can feed the reader a time.
//! - The segment is attached once, taken over (`mode` 1, `leap` 3 "not synchronised",
//!   `nsamples` 3, `valid` 0 until the first measurement) and detached on drop; a segment a
//!   webntpd created is then removed if no reader is attached (not by `query`, whose one
//!   sample is for a reader to come). Each write
//!   checks that it is still the segment at the key; one removed under webntpd (`ipcrm`, a
//!   reader recreating it) is let go and the unit attached again (see [`ShmWriter`]).
//! - Each sample is stored with gpsd's mode-1 protocol plus a "busy" mode while the data is
//!   half written, which ntpd's reader needs (see `sys::Mapping::store`); the system calls
//!   and volatile stores are in `sys`, one of the two files of unsafe code.
//!
//! Debugging: `ipcs -m` lists segments (key, owner, permissions, size, attached processes),
//! `ipcrm -M 0x4e545032` removes unit 2's once no one uses it, and `ntpshmmon` from gpsd
//! prints every sample written.

mod sys;

use std::fmt;
use std::io;
use std::sync::Mutex;

use libc::{c_int, c_uint, time_t};

use super::LastFailure;
use crate::clock::{Clock, SystemClock};
use crate::sync::refsample::{split, RefSample};
use crate::sync::Timestamp;

/// Unit 0's key; unit N is `KEY_BASE + N`.
pub const KEY_BASE: i32 = 0x4E54_5030;

/// The key of `unit`.
pub fn key(unit: u8) -> i32 {
    KEY_BASE + i32::from(unit)
}

/// The permissions webntpd creates `unit` with when not told: 0600 for units 0 and 1 (as
/// ntpd and gpsd do: those are for root's own clocks), 0666 from 2 up.
pub fn default_perm(unit: u8) -> u32 {
    if unit < 2 {
        0o600
    } else {
        0o666
    }
}

/// `struct shmTime` as ntpd, chrony and gpsd declare it (C `int` and `time_t`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct ShmTime {
    mode: c_int,
    count: c_int,
    clock_sec: time_t,
    clock_usec: c_int,
    receive_sec: time_t,
    receive_usec: c_int,
    leap: c_int,
    precision: c_int,
    nsamples: c_int,
    valid: c_int,
    clock_nsec: c_uint,
    receive_nsec: c_uint,
    dummy: [c_int; 8],
}

/// `sizeof(struct shmTime)` on this target: 96 bytes with a 64-bit `time_t` (x86_64,
/// aarch64), 80 with a 32-bit one; a segment of any other size was made by a reader built
/// for another ABI.
pub const SIZE: usize = std::mem::size_of::<ShmTime>();

/// Every field of `struct shmTime` by its C name, with its byte offset on this target, for
/// checking against a C compiler.
pub const FIELD_OFFSETS: [(&str, usize); 13] = {
    use std::mem::offset_of;
    [
        ("mode", offset_of!(ShmTime, mode)),
        ("count", offset_of!(ShmTime, count)),
        ("clockTimeStampSec", offset_of!(ShmTime, clock_sec)),
        ("clockTimeStampUSec", offset_of!(ShmTime, clock_usec)),
        ("receiveTimeStampSec", offset_of!(ShmTime, receive_sec)),
        ("receiveTimeStampUSec", offset_of!(ShmTime, receive_usec)),
        ("leap", offset_of!(ShmTime, leap)),
        ("precision", offset_of!(ShmTime, precision)),
        ("nsamples", offset_of!(ShmTime, nsamples)),
        ("valid", offset_of!(ShmTime, valid)),
        ("clockTimeStampNSec", offset_of!(ShmTime, clock_nsec)),
        ("receiveTimeStampNSec", offset_of!(ShmTime, receive_nsec)),
        ("dummy", offset_of!(ShmTime, dummy)),
    ]
};

/// The layouts every reader of the two common ABIs was built with: (size, offsets in
/// [`FIELD_OFFSETS`] order).
const EXPECTED_LAYOUT: Option<(usize, [usize; 13])> = match (
    std::mem::size_of::<time_t>(),
    std::mem::align_of::<time_t>(),
) {
    (8, 8) => Some((96, [0, 4, 8, 16, 24, 32, 36, 40, 44, 48, 52, 56, 60])),
    (4, 4) => Some((80, [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48])),
    _ => None,
};

// The layout is checked when compiling: a target where it would differ does not build.
const _: () = {
    if let Some((size, offsets)) = EXPECTED_LAYOUT {
        assert!(SIZE == size, "struct shmTime has the wrong size");
        let mut i = 0;
        while i < offsets.len() {
            assert!(
                FIELD_OFFSETS[i].1 == offsets[i],
                "a shmTime field is misplaced"
            );
            i += 1;
        }
    }
};

/// The values one sample stores, in the segment's types. Pure data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fields {
    pub(crate) clock_sec: time_t,
    pub(crate) clock_usec: c_int,
    pub(crate) clock_nsec: c_uint,
    pub(crate) receive_sec: time_t,
    pub(crate) receive_usec: c_int,
    pub(crate) receive_nsec: c_uint,
    pub(crate) leap: c_int,
    pub(crate) precision: c_int,
}

impl Fields {
    /// The fields for `s`: clock = receive + offset; microseconds truncated from the
    /// nanoseconds, which readers require before they trust the nanoseconds.
    pub(crate) fn of(s: &RefSample) -> Fields {
        let (clock_sec, clock_nsec) = split(s.clock());
        let (receive_sec, receive_nsec) = split(s.receive);
        Fields {
            clock_sec: clock_sec as time_t,
            clock_usec: (clock_nsec / 1000) as c_int,
            clock_nsec,
            receive_sec: receive_sec as time_t,
            receive_usec: (receive_nsec / 1000) as c_int,
            receive_nsec,
            leap: s.leap.code(),
            precision: s.precision,
        }
    }
}

/// `mode` while a sample is being written: not 0 or 1, so every reader drops a copy taken
/// then (see `sys::Mapping::store` for why gpsd's protocol alone is not enough for ntpd).
const MODE_BUSY: c_int = -1;

/// `nsamples`: the median-filter length gpsd advertises; no reader uses it.
const NSAMPLES: c_int = 3;

/// The precision written before the first sample (gpsd's default); readers ignore it while
/// `valid` is 0.
const INITIAL_PRECISION: c_int = -1;

/// A segment as webntpd leaves it on attaching: mode 1, "not synchronised", no sample; the
/// writer mark, and whether a webntpd created the segment (see [`MARK_CREATED`]).
fn initial(mark: [c_int; 2], created_by_webntpd: bool) -> ShmTime {
    let mut t = ShmTime {
        mode: 1,
        leap: crate::sync::leap::Leap::Unsynchronised.code(),
        precision: INITIAL_PRECISION,
        nsamples: NSAMPLES,
        ..ShmTime::default()
    };
    t.dummy[0] = mark[0];
    t.dummy[1] = mark[1];
    t.dummy[2] = if created_by_webntpd { MARK_CREATED } else { 0 };
    t
}

/// The writer mark webntpd keeps in `dummy[0]`/`dummy[1]` (which readers ignore): a magic
/// number saying whether a webntpd still holds the segment, and that writer's process id. It
/// lets a second writer tell a live one from a stopped or crashed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Another program's segment, or a fresh one.
    None,
    /// Held by webntpd process `pid` (if it is still alive).
    Held(i32),
    /// Left by a webntpd that detached cleanly.
    Released,
}

const MARK_HELD: c_int = 0x574E_5448; // "WNTH"
const MARK_RELEASED: c_int = 0x574E_5452; // "WNTR"
/// In `dummy[2]`, beside a writer mark: a webntpd created this segment (no reader or other
/// writer did), so a webntpd may remove it when it stops and no one is attached. Kept when
/// a later webntpd takes the segment over (after a crash, a restart).
const MARK_CREATED: c_int = 0x574E_5443; // "WNTC"

/// Whether `found` (a segment about to be taken over) was created by a webntpd.
fn created_by_webntpd(found: &ShmTime) -> bool {
    Mark::decode(&found.dummy) != Mark::None && found.dummy[2] == MARK_CREATED
}

impl Mark {
    fn encode(self) -> [c_int; 2] {
        match self {
            Mark::None => [0, 0],
            Mark::Held(pid) => [MARK_HELD, pid],
            Mark::Released => [MARK_RELEASED, 0],
        }
    }

    fn decode(dummy: &[c_int; 8]) -> Mark {
        match dummy[0] {
            MARK_HELD => Mark::Held(dummy[1]),
            MARK_RELEASED => Mark::Released,
            _ => Mark::None,
        }
    }
}

/// Another writer's sample counts as current for this long: gpsd writes every second.
const FOREIGN_WRITER_WINDOW_S: i64 = 10;

/// Who else writes to a segment found on attaching.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Occupant {
    /// No one (or a webntpd that has stopped): take it over.
    Nobody,
    /// A running webntpd.
    Webntpd(i32),
    /// Another program wrote a sample `age_s` seconds ago.
    Other { age_s: i64 },
}

/// Decide from the segment's contents who else writes to it. Readers never change `count`,
/// so a recent sample with a moved count and no webntpd mark comes from another writer
/// (gpsd, another time source).
fn occupant(found: &ShmTime, now: Timestamp, alive: impl Fn(i32) -> bool) -> Occupant {
    match Mark::decode(&found.dummy) {
        Mark::Held(pid) if alive(pid) => return Occupant::Webntpd(pid),
        Mark::Held(_) | Mark::Released => return Occupant::Nobody,
        Mark::None => {}
    }
    // time_t is 32 bits on some targets.
    #[allow(clippy::useless_conversion)]
    let age_s = now
        .unix_seconds()
        .saturating_sub(i64::from(found.receive_sec));
    let written = found.count != 0 && (found.mode == 0 || found.mode == 1);
    if written && age_s.abs() <= FOREIGN_WRITER_WINDOW_S {
        Occupant::Other { age_s }
    } else {
        Occupant::Nobody
    }
}

/// Whether `pid` is another live process running the same program as this one (so a
/// recycled process id is not mistaken for a writer). A zombie (a webntpd that exited but
/// was not yet reaped by its parent) still answers `kill(pid, 0)` and still has its `comm`,
/// but writes nothing: it is not alive.
fn same_program_alive(pid: i32) -> bool {
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    if pid <= 0 || pid == std::process::id() as i32 {
        return false;
    }
    match kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => {}
        Err(_) => return false,
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
    if stat.as_deref().and_then(process_state).is_some_and(is_dead) {
        return false;
    }
    let comm = |p: &str| std::fs::read_to_string(format!("/proc/{p}/comm")).ok();
    match (comm(&pid.to_string()), comm("self")) {
        (Some(theirs), Some(ours)) => theirs == ours,
        // Cannot tell: assume it is a writer rather than risk two.
        _ => true,
    }
}

/// The state letter of a process from the text of its `/proc/PID/stat`: `PID (COMM) S ...`.
/// COMM is the program's name as the process set it and may hold spaces and parentheses, so
/// the state is the first field after the *last* `)`.
fn process_state(stat: &str) -> Option<char> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    let mut chars = state.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => Some(c),
        _ => None,
    }
}

/// A zombie (Z: exited, not yet reaped) or a process being torn down (X: dead).
fn is_dead(state: char) -> bool {
    matches!(state, 'Z' | 'X' | 'x')
}

/// The units this process has open: a second writer in the same process is refused before
/// it touches the segment.
static CLAIMED: Mutex<[u64; 4]> = Mutex::new([0; 4]);

/// This process's claim on a unit, given back on drop.
#[derive(Debug)]
struct Claim(u8);

impl Claim {
    fn take(unit: u8) -> Result<Claim, ShmError> {
        let (word, bit) = (usize::from(unit / 64), 1u64 << (unit % 64));
        let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
        if claimed[word] & bit != 0 {
            return Err(ShmError::InUse {
                unit,
                by: "another output of this webntpd process".to_string(),
            });
        }
        claimed[word] |= bit;
        Ok(Claim(unit))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let (word, bit) = (usize::from(self.0 / 64), 1u64 << (self.0 % 64));
        let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
        claimed[word] &= !bit;
    }
}

/// A line of `/proc/sysvipc/shm`: what the kernel tells anyone about a segment, even one
/// they may not access.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SegmentInfo {
    mode: u32,
    size: u64,
    creator_pid: i32,
    attached: u64,
    uid: u32,
}

/// Find `key` in the text of `/proc/sysvipc/shm` (columns `key shmid perms size cpid lpid
/// nattch uid ...`, key in decimal, perms in octal).
fn parse_sysvipc(text: &str, key: i32) -> Option<SegmentInfo> {
    text.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || f[0].parse::<i32>().ok()? != key {
            return None;
        }
        Some(SegmentInfo {
            mode: u32::from_str_radix(f[2], 8).ok()? & 0o777,
            size: f[3].parse().ok()?,
            creator_pid: f[4].parse().ok()?,
            attached: f[6].parse().ok()?,
            uid: f[7].parse().ok()?,
        })
    })
}

/// "; the segment is owned by root (uid 0), mode 0600, created by chronyd (pid 812), 1
/// process attached", from the kernel's table (`this_one`: whether this process is one of
/// those attached); empty when it cannot be read.
fn describe_segment(key: i32, this_one: bool) -> String {
    let Some(info) = std::fs::read_to_string("/proc/sysvipc/shm")
        .ok()
        .and_then(|text| parse_sysvipc(&text, key))
    else {
        return String::new();
    };
    let user = nix::unistd::User::from_uid(info.uid.into())
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {}", info.uid), |u| u.name);
    let creator = std::fs::read_to_string(format!("/proc/{}/comm", info.creator_pid))
        .map(|c| format!("{} (pid {})", c.trim_end(), info.creator_pid))
        .unwrap_or_else(|_| format!("pid {} (no longer running)", info.creator_pid));
    let attached = match (info.attached.saturating_sub(u64::from(this_one)), this_one) {
        (0, true) => "no other process attached".to_string(),
        (1, true) => "1 other process attached".to_string(),
        (n, true) => format!("{n} other processes attached"),
        (1, false) => "1 process attached".to_string(),
        (n, false) => format!("{n} processes attached"),
    };
    format!(
        "; the segment is owned by {user} (uid {}), mode {:04o}, created by {creator}, {attached}",
        info.uid, info.mode
    )
}

/// Why a unit cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// The segment exists and this user may not write it.
    #[error(
        "SHM unit {unit} (key {key:#x}): permission denied{owner}. Fix one of: let the \
         reader create it writable for webntpd's user (chrony: `refclock SHM {unit}:perm=0666`; \
         ntpd and ntpsec do so for units 2 and up), run webntpd as the segment's owner \
         (root){low_unit}, or feed chrony through its SOCK refclock (--sock) instead",
        key = key(*unit),
        low_unit = if *unit < 2 { ", use a unit of 2 or more" } else { "" },
    )]
    PermissionDenied {
        /// The unit.
        unit: u8,
        /// "; the segment is owned by ..." when the kernel would tell, else empty.
        owner: String,
    },
    /// The segment exists with a size other than this build's `struct shmTime`.
    #[error(
        "SHM unit {unit} (key {key:#x}) is {found} bytes, but struct shmTime is {SIZE} bytes \
         on this machine, so the program that created it was built for another ABI (80 \
         bytes: 32-bit time_t){owner}. Use a reader built for this machine or another unit; \
         if no process uses the segment, remove it with `ipcrm -M {key:#x}`",
        key = key(*unit),
    )]
    WrongSize {
        /// The unit.
        unit: u8,
        /// The segment's size.
        found: usize,
        /// "; the segment is owned by ..." when the kernel would tell, else empty.
        owner: String,
    },
    /// Another writer feeds the unit: two would overwrite each other's samples.
    #[error(
        "SHM unit {unit} (key {key:#x}) is already written by {by}; two writers would \
         overwrite each other's samples: give webntpd another unit (and the reader the same \
         one)",
        key = key(*unit),
    )]
    InUse {
        /// The unit.
        unit: u8,
        /// Who writes it.
        by: String,
    },
    /// A system call failed for another reason.
    #[error("SHM unit {unit} (key {key:#x}): {what} failed: {source}", key = key(*unit))]
    Os {
        /// The unit.
        unit: u8,
        /// The call.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
}

impl ShmError {
    /// The sysexits code a command exits with for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ShmError::PermissionDenied { .. } => crate::exit::NOPERM,
            ShmError::WrongSize { .. } | ShmError::InUse { .. } => crate::exit::UNAVAILABLE,
            ShmError::Os { .. } => crate::exit::OSERR,
        }
    }

    fn os(unit: u8, what: &'static str, source: io::Error) -> ShmError {
        match source.raw_os_error() {
            Some(libc::EACCES | libc::EPERM) => ShmError::PermissionDenied {
                unit,
                owner: describe_segment(key(unit), false),
            },
            _ => ShmError::Os { unit, what, source },
        }
    }
}

/// A sample that was not written.
#[derive(Debug, thiserror::Error)]
#[error("{error}; this sample was not written")]
pub struct ShmWriteError {
    /// Why.
    pub error: ShmError,
    /// The previous write failed the same way: the caller has reported this already.
    pub repeated: bool,
}

impl ShmWriteError {
    /// The sysexits code a command exits with for this error.
    pub fn exit_code(&self) -> u8 {
        self.error.exit_code()
    }
}

/// What a write failure is, for telling a new failure from the same one again (the
/// messages hold details that change at every write, such as a sample's age).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    PermissionDenied,
    WrongSize(usize),
    InUse,
    Os(&'static str, Option<i32>),
}

impl Failure {
    fn of(e: &ShmError) -> Failure {
        match e {
            ShmError::PermissionDenied { .. } => Failure::PermissionDenied,
            ShmError::WrongSize { found, .. } => Failure::WrongSize(*found),
            ShmError::InUse { .. } => Failure::InUse,
            ShmError::Os { what, source, .. } => Failure::Os(what, source.raw_os_error()),
        }
    }
}

/// A segment webntpd has taken over.
#[derive(Debug)]
struct Attached {
    /// Its id: the segment at the unit's key has this id for as long as it is the one.
    id: i32,
    /// The mapping.
    mapping: sys::Mapping,
    /// A webntpd created it (this process, or one before it that held the unit).
    ours: bool,
}

/// A writer for one SHM unit, from [`ShmWriter::open`] until dropped.
///
/// The segment can be taken away while webntpd runs: `ipcrm`, or a reader that removes it
/// and makes a new one when it starts (of another size, if it was built for another ABI).
/// A removed segment lives on, detached from its key, until the last process detaches, so
/// samples written to it reach no one. Every write therefore first checks that the segment
/// at the key is still the attached one (one `shmget`, and another after the sample, so a
/// sample counted as written is one a reader can see); if it is not, the orphan is detached
/// and the unit attached again by the rules of [`ShmWriter::open`].
#[derive(Debug)]
pub struct ShmWriter {
    /// The unit.
    unit: u8,
    /// The permissions a segment is created with.
    perm: u32,
    /// The segment written to; `None` after it went away and the one at the key could not
    /// be taken over (each write tries again).
    attached: Option<Attached>,
    /// How the last write failed, if it did.
    last_failure: LastFailure<Failure>,
    /// On drop, remove the segment if a webntpd created it and no one else is attached
    /// (true unless [`ShmWriter::keep_on_drop`] was called).
    remove_unused: bool,
    /// This process's claim on the unit; released after the mapping is detached.
    _claim: Claim,
}

impl ShmWriter {
    /// Attach to unit `unit`, creating its segment with `perm` (default
    /// [`default_perm`]) if no reader has yet, and take it over. Refuses a segment of the
    /// wrong size, one this user may not write, and one another writer is feeding.
    pub fn open(unit: u8, perm: Option<u32>) -> Result<ShmWriter, ShmError> {
        let perm = perm.unwrap_or_else(|| default_perm(unit)) & 0o777;
        let claim = Claim::take(unit)?;
        let attached = take_over(unit, perm)?;
        Ok(ShmWriter {
            unit,
            perm,
            attached: Some(attached),
            last_failure: LastFailure::none(),
            remove_unused: true,
            _claim: claim,
        })
    }

    /// Leave the segment at its key on drop even when no reader is attached: for a one-shot
    /// write (`webntpd query --shm`), whose sample is for a reader that may attach later.
    pub fn keep_on_drop(&mut self) {
        self.remove_unused = false;
    }

    /// The unit written.
    pub fn unit(&self) -> u8 {
        self.unit
    }

    /// Store one sample; readers pick it up at their next poll. On an error nothing reached
    /// a reader; the next write tries again, so the writer recovers by itself when a usable
    /// segment is back at the key.
    pub fn write(&mut self, sample: &RefSample) -> Result<(), ShmWriteError> {
        let Err(error) = self.store_checked(&Fields::of(sample)) else {
            self.last_failure.ok();
            return Ok(());
        };
        let repeated = self.last_failure.failed(Failure::of(&error));
        Err(ShmWriteError { error, repeated })
    }

    fn store_checked(&mut self, f: &Fields) -> Result<(), ShmError> {
        // A segment replaced again while this sample was stored is chased once, not forever.
        for _ in 0..2 {
            let attached = self.current()?;
            attached.mapping.store(f);
            let id = attached.id;
            if self.at_key()? == Some(id) {
                return Ok(());
            }
        }
        Err(ShmError::Os {
            unit: self.unit,
            what: "shmget",
            source: io::Error::other(
                "the segment was replaced twice while a sample was written to it",
            ),
        })
    }

    /// The id of the segment at the unit's key now.
    fn at_key(&self) -> Result<Option<i32>, ShmError> {
        sys::lookup(key(self.unit)).map_err(|e| ShmError::os(self.unit, "shmget", e))
    }

    /// The segment at the unit's key, taken over: the attached one while it is still there,
    /// otherwise whatever is at the key now (created if nothing is), by the rules of
    /// [`ShmWriter::open`]. Logs once when the attached segment is found gone.
    fn current(&mut self) -> Result<&mut Attached, ShmError> {
        let at_key = self.at_key()?;
        let attached = match self.attached.take() {
            Some(a) if Some(a.id) == at_key => a,
            old => {
                if old.is_some() {
                    let unit = self.unit;
                    let key = key(unit);
                    match at_key {
                        Some(_) => tracing::warn!(
                            "SHM unit {unit} (key {key:#x}): the segment webntpd was writing \
                             was removed (ipcrm, or a reader that made its own) and a new one \
                             is at the key{}; attaching the new one",
                            describe_segment(key, false)
                        ),
                        None => tracing::warn!(
                            "SHM unit {unit} (key {key:#x}): the segment webntpd was writing \
                             was removed (ipcrm?) and none is at the key; creating it again"
                        ),
                    }
                }
                // The orphan is detached first: the kernel frees it once no one is attached.
                drop(old);
                take_over(self.unit, self.perm)?
            }
        };
        Ok(self.attached.insert(attached))
    }
}

impl Drop for ShmWriter {
    /// Release the unit: the last sample stays valid for readers and the mark says no
    /// webntpd holds it. Then, unless [`ShmWriter::keep_on_drop`] was called, a segment a
    /// webntpd created is removed if no process is attached to it any more, so a daemon
    /// that stops leaves nothing behind; one a reader (chronyd, ntpd) is attached to stays,
    /// as does one a reader or another program created.
    fn drop(&mut self) {
        let Some(mut a) = self.attached.take() else {
            return;
        };
        a.mapping.set_mark(Mark::Released.encode());
        let Attached { id, mapping, ours } = a;
        // Detached first, so that the count of attached processes is the others'.
        drop(mapping);
        if ours && self.remove_unused {
            remove_if_unused(self.unit, id);
        }
    }
}

/// Remove segment `id` if it is still `unit`'s and no process is attached to it.
///
/// There is no atomic "remove if unattached": a reader that looks the key up and attaches
/// between the check and the removal keeps a segment no writer reaches. chronyd and ntpd
/// attach once, when they start, so that takes a reader starting within the microseconds
/// between two system calls of a webntpd stopping; restarting the reader mends it.
fn remove_if_unused(unit: u8, id: i32) {
    let key = key(unit);
    let attached = match (sys::lookup(key), sys::stat(id)) {
        (Ok(Some(at_key)), Ok(stat)) if at_key == id => stat.attached,
        // Gone, or replaced by a reader's: not ours to remove.
        _ => return,
    };
    if attached > 0 {
        tracing::debug!(
            "SHM unit {unit} (key {key:#x}): left in place, {attached} process(es) attached"
        );
        return;
    }
    match sys::remove(id) {
        Ok(()) => tracing::info!(
            "SHM unit {unit} (key {key:#x}): removed the segment webntpd created, as no \
             reader is attached"
        ),
        Err(e) => tracing::warn!(
            "SHM unit {unit} (key {key:#x}): cannot remove the segment webntpd created: {e}; \
             remove it with `ipcrm -M {key:#x}` if no reader uses it"
        ),
    }
}

/// Find or create `unit`'s segment and take it over: refuse a segment of the wrong size, one
/// this user may not write, and one another writer is feeding; warn about one others may
/// write; mark it as this process's, "not synchronised", no sample.
fn take_over(unit: u8, perm: u32) -> Result<Attached, ShmError> {
    let key = key(unit);
    let (id, created) = find_or_create(unit, perm)?;
    let stat = sys::stat(id).map_err(|e| ShmError::os(unit, "shmctl(IPC_STAT)", e))?;
    if stat.size != SIZE {
        return Err(ShmError::WrongSize {
            unit,
            found: stat.size,
            owner: describe_segment(key, false),
        });
    }
    let mut mapping = sys::Mapping::attach(id).map_err(|e| ShmError::os(unit, "shmat", e))?;
    let mut ours = created;
    if !created {
        let found = mapping.read();
        ours = created_by_webntpd(&found);
        let now = SystemClock.realtime();
        match occupant(&found, now, same_program_alive) {
            Occupant::Nobody => {}
            Occupant::Webntpd(pid) => {
                return Err(ShmError::InUse {
                    unit,
                    by: format!("another webntpd (pid {pid})"),
                })
            }
            Occupant::Other { age_s } => {
                return Err(ShmError::InUse {
                    unit,
                    by: format!(
                        "another program (last sample {age_s} s ago{})",
                        describe_segment(key, true)
                    ),
                })
            }
        }
        if stat.mode & 0o022 & !perm != 0 {
            tracing::warn!(
                "SHM unit {unit} (key {key:#x}) is mode {:04o}: users other than its owner \
                 can write samples to it and set this machine's clock",
                stat.mode
            );
        }
    }
    mapping.initialise(&initial(
        Mark::Held(std::process::id() as i32).encode(),
        ours,
    ));
    Ok(Attached { id, mapping, ours })
}

/// The id of `unit`'s segment and whether this call created it.
fn find_or_create(unit: u8, perm: u32) -> Result<(i32, bool), ShmError> {
    let key = key(unit);
    // A reader may create or remove the segment between the two calls: try again then.
    for _ in 0..3 {
        if let Some(id) = sys::lookup(key).map_err(|e| ShmError::os(unit, "shmget", e))? {
            return Ok((id, false));
        }
        if let Some(id) = sys::create(key, perm).map_err(|e| ShmError::os(unit, "shmget", e))? {
            return Ok((id, true));
        }
    }
    Err(ShmError::Os {
        unit,
        what: "shmget",
        source: io::Error::other("the segment kept appearing and disappearing"),
    })
}

impl fmt::Display for ShmWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SHM unit {}", self.unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::leap::Leap;

    #[test]
    fn keys_and_permissions_follow_ntpd() {
        assert_eq!(key(0), 0x4e54_5030);
        assert_eq!(key(2), 0x4e54_5032);
        assert_eq!(key(255), 0x4e54_512f);
        assert_eq!(default_perm(0), 0o600);
        assert_eq!(default_perm(1), 0o600);
        assert_eq!(default_perm(2), 0o666);
        assert_eq!(default_perm(255), 0o666);
    }

    #[test]
    fn fields_truncate_microseconds_and_add_the_offset() {
        let s = RefSample {
            receive: Timestamp::from_nanos(1_795_270_670_999_999_999),
            offset_ns: 250_000_002,
            leap: Leap::InsertSecond,
            precision: -15,
        };
        let f = Fields::of(&s);
        assert_eq!(f.receive_sec, 1_795_270_670);
        assert_eq!(f.receive_nsec, 999_999_999);
        assert_eq!(f.receive_usec, 999_999);
        assert_eq!(f.clock_sec, 1_795_270_671);
        assert_eq!(f.clock_nsec, 250_000_001);
        assert_eq!(f.clock_usec, 250_000);
        assert_eq!((f.leap, f.precision), (1, -15));
        // A negative offset borrows from the seconds.
        let f = Fields::of(&RefSample {
            offset_ns: -1_000_000_001,
            ..s
        });
        assert_eq!((f.clock_sec, f.clock_nsec), (1_795_270_669, 999_999_998));
    }

    #[test]
    fn a_taken_over_segment_says_not_synchronised() {
        let t = initial(Mark::Held(42).encode(), false);
        assert_eq!((t.mode, t.valid, t.leap, t.nsamples), (1, 0, 3, 3));
        assert_eq!(Mark::decode(&t.dummy), Mark::Held(42));
        assert_eq!(
            Mark::decode(&initial(Mark::Released.encode(), false).dummy),
            Mark::Released
        );
        assert_eq!(Mark::decode(&[0; 8]), Mark::None);
    }

    #[test]
    fn who_created_a_segment_survives_a_takeover_and_only_with_a_mark() {
        for created in [true, false] {
            let mut t = initial(Mark::Held(42).encode(), created);
            assert_eq!(created_by_webntpd(&t), created);
            // Released on drop: the next webntpd still knows.
            let released = Mark::Released.encode();
            (t.dummy[0], t.dummy[1]) = (released[0], released[1]);
            assert_eq!(created_by_webntpd(&t), created);
        }
        // The word alone, without a writer mark, is some other program's data.
        let mut foreign = ShmTime::default();
        foreign.dummy[2] = MARK_CREATED;
        assert!(!created_by_webntpd(&foreign));
    }

    #[test]
    fn another_writer_is_recognised() {
        let now = Timestamp::from_secs(1_795_270_670);
        let seg = |mark: Mark, count: c_int, receive_sec: i64| {
            let mut t = initial(mark.encode(), false);
            t.count = count;
            t.receive_sec = receive_sec as time_t;
            t
        };
        let alive = |pid: i32| pid == 7;
        let recent = now.unix_seconds() - 2;
        // A live webntpd holds it; a dead or finished one does not, whatever it wrote.
        assert_eq!(
            occupant(&seg(Mark::Held(7), 4, recent), now, alive),
            Occupant::Webntpd(7)
        );
        assert_eq!(
            occupant(&seg(Mark::Held(8), 4, recent), now, alive),
            Occupant::Nobody
        );
        assert_eq!(
            occupant(&seg(Mark::Released, 4, recent), now, alive),
            Occupant::Nobody
        );
        // Unmarked: a recent sample means another program writes it; an old one, a fresh
        // segment (count 0) or a reader's own zeroes do not.
        assert_eq!(
            occupant(&seg(Mark::None, 4, recent), now, alive),
            Occupant::Other { age_s: 2 }
        );
        let old = now.unix_seconds() - 3600;
        assert_eq!(
            occupant(&seg(Mark::None, 4, old), now, alive),
            Occupant::Nobody
        );
        assert_eq!(
            occupant(&seg(Mark::None, 0, recent), now, alive),
            Occupant::Nobody
        );
        assert_eq!(occupant(&ShmTime::default(), now, alive), Occupant::Nobody);
    }

    #[test]
    fn the_process_state_is_the_field_after_the_last_parenthesis() {
        let stat = |comm: &str, state: &str| format!("4242 ({comm}) {state} 1 4242 4242 0 -1");
        assert_eq!(process_state(&stat("webntpd", "S")), Some('S'));
        assert_eq!(process_state(&stat("webntpd", "Z")), Some('Z'));
        // A name with spaces and parentheses, even one that looks like a state.
        assert_eq!(process_state(&stat("a) R (b", "Z")), Some('Z'));
        assert_eq!(process_state(&stat(") X ) ", "R")), Some('R'));
        assert_eq!(process_state(&stat("", "X")), Some('X'));
        // Nothing after the name, no name at all, or a state that is not one letter.
        assert_eq!(process_state("4242 (webntpd)"), None);
        assert_eq!(process_state("4242 (webntpd) "), None);
        assert_eq!(process_state("4242 webntpd S 1"), None);
        assert_eq!(process_state("4242 (webntpd) SZ 1"), None);
        assert_eq!(process_state("4242 (webntpd) 7 1"), None);
        assert_eq!(process_state(""), None);
        assert!(is_dead('Z') && is_dead('X') && is_dead('x'));
        for alive in ['R', 'S', 'D', 'T', 't', 'I', 'P', 'W'] {
            assert!(!is_dead(alive), "{alive}");
        }
    }

    #[test]
    fn this_thread_reads_as_running_and_this_process_is_not_another_writer() {
        // The thread reading is running; the process's main thread may be asleep.
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        assert_eq!(process_state(&stat), Some('R'), "{stat}");
        assert!(!same_program_alive(std::process::id() as i32));
    }

    #[test]
    fn the_kernel_table_is_parsed() {
        let text = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n\
                    1314148402          3   600                    80   812   812      1     0     0     0     0 1763740000          0 1763740000                  4096                     0\n\
                    1314148401          2   666                    96   100   100      0    65534 65534 65534 65534 0 0 0 0 0\n";
        assert_eq!(
            parse_sysvipc(text, key(2)),
            Some(SegmentInfo {
                mode: 0o600,
                size: 80,
                creator_pid: 812,
                attached: 1,
                uid: 0,
            })
        );
        assert_eq!(parse_sysvipc(text, key(1)).map(|i| i.uid), Some(65534));
        assert_eq!(parse_sysvipc(text, key(3)), None);
        assert_eq!(parse_sysvipc("garbage\n1 2 x", key(0)), None);
    }

    #[test]
    fn errors_say_what_to_do() {
        let e = ShmError::PermissionDenied {
            unit: 0,
            owner: "; the segment is owned by root (uid 0), mode 0600".into(),
        };
        let m = e.to_string();
        assert!(
            m.contains("key 0x4e545030): permission denied; the segment is owned by root"),
            "{m}"
        );
        assert!(
            m.contains("perm=0666") && m.contains("unit of 2 or more") && m.contains("--sock"),
            "{m}"
        );
        assert_eq!(e.exit_code(), crate::exit::NOPERM);
        let m = ShmError::WrongSize {
            unit: 2,
            found: 80,
            owner: String::new(),
        }
        .to_string();
        assert!(
            m.contains("is 80 bytes") && m.contains(&format!("{SIZE} bytes")),
            "{m}"
        );
        assert!(m.contains("ipcrm -M 0x4e545032"), "{m}");
    }
}
