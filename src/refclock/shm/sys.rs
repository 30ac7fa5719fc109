//! The System V shared-memory calls and the volatile stores into one attached
//! `struct shmTime`: the only unsafe code in webntpd. Which segment, with what permissions,
//! what the errors mean and what values to write are decided in the parent module, in safe
//! code; this module only moves bytes.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::ptr::{read_volatile, write_volatile, NonNull};
use std::sync::atomic::{fence, Ordering::SeqCst};

use super::{Fields, ShmTime, MODE_BUSY, SIZE};

/// The id of the segment with `key`, or `None` when there is none.
pub(super) fn lookup(key: libc::key_t) -> io::Result<Option<i32>> {
    // SAFETY: shmget takes integers only and touches no memory of ours. Size 0 and no flags
    // look an existing segment up without asking for any access to it.
    let id = unsafe { libc::shmget(key, 0, 0) };
    id_unless(id, libc::ENOENT)
}

/// Create the segment with `key`, [`SIZE`] bytes and permissions `perm`; `None` when it
/// exists already (someone created it since [`lookup`]).
pub(super) fn create(key: libc::key_t, perm: u32) -> io::Result<Option<i32>> {
    let flags = libc::IPC_CREAT | libc::IPC_EXCL | (perm & 0o777) as libc::c_int;
    // SAFETY: as in `lookup`: integers only. The kernel zero-fills a new segment.
    let id = unsafe { libc::shmget(key, SIZE, flags) };
    id_unless(id, libc::EEXIST)
}

/// shmget's result: the id, `None` when it failed with `errno`, or the error.
fn id_unless(id: i32, errno: i32) -> io::Result<Option<i32>> {
    if id >= 0 {
        return Ok(Some(id));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(n) if n == errno => Ok(None),
        _ => Err(e),
    }
}

/// What `IPC_STAT` says about a segment.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stat {
    /// Size in bytes.
    pub size: usize,
    /// Permission bits.
    pub mode: u32,
    /// How many processes have it attached.
    pub attached: u64,
}

/// `shmctl(IPC_STAT)`: needs read permission on the segment.
pub(super) fn stat(id: i32) -> io::Result<Stat> {
    let mut ds = MaybeUninit::<libc::shmid_ds>::zeroed();
    // SAFETY: `ds` is a writable shmid_ds, which is what IPC_STAT fills in.
    let r = unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: shmid_ds is plain integers, so the zeroed value was already valid, and the
    // kernel has filled it in.
    let ds = unsafe { ds.assume_init() };
    // shmatt_t is an unsigned long: 32 bits on some targets.
    #[allow(clippy::useless_conversion)]
    Ok(Stat {
        size: ds.shm_segsz,
        mode: u32::from(ds.shm_perm.mode) & 0o777,
        attached: u64::from(ds.shm_nattch),
    })
}

/// `shmctl(IPC_RMID)`: take segment `id` away from its key; the kernel frees it once the
/// last process detaches. Needs to be its creator or owner.
pub(super) fn remove(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID takes no buffer (a null pointer is what it expects) and touches no
    // memory of ours.
    let r = unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One attached `struct shmTime`, detached on drop.
///
/// Readers in other processes read and clear fields at any time, so the memory is never
/// seen through a Rust reference: every access is a volatile read or write through a raw
/// pointer to one field.
#[derive(Debug)]
pub(super) struct Mapping {
    ptr: NonNull<ShmTime>,
}

// SAFETY: the mapping belongs to the process, not to a thread: it can be used and detached
// from any thread. It is not `Sync`: stores take `&mut self`, so one writer at a time.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Attach segment `id` read-write. Refuses a segment smaller than a `struct shmTime`, so
    /// every field access below stays inside the mapping.
    pub(super) fn attach(id: i32) -> io::Result<Mapping> {
        let size = stat(id)?.size;
        if size < SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("segment is {size} bytes, smaller than struct shmTime ({SIZE})"),
            ));
        }
        // SAFETY: a null address lets the kernel pick where to map; flags 0 is read-write.
        // The size of segment `id` is fixed at creation, so the check above holds for what
        // gets mapped.
        let addr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        if addr as isize == -1 {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(addr.cast::<ShmTime>())
            .ok_or_else(|| io::Error::other("shmat returned a null address"))?;
        Ok(Mapping { ptr })
    }

    /// A copy of the whole segment, for looking at what is there before taking it over. Not
    /// protected against a concurrent writer: fit for heuristics only.
    pub(super) fn read(&self) -> ShmTime {
        // SAFETY: `ptr` is the start of an attached mapping of at least size_of::<ShmTime>()
        // bytes, page-aligned by shmat, and ShmTime is plain integers, valid for any bytes.
        unsafe { read_volatile(self.ptr.as_ptr()) }
    }

    /// Take the segment over: everything written at once, inside the same bracket as a
    /// sample (see [`Mapping::store`]), `valid` left 0.
    pub(super) fn initialise(&mut self, init: &ShmTime) {
        let count = self.begin();
        let mut init = *init;
        init.valid = 0;
        init.mode = MODE_BUSY;
        init.count = count;
        // SAFETY: `ptr` is the start of an attached mapping of at least
        // size_of::<ShmTime>() bytes (checked in `attach`), page-aligned by shmat; ShmTime is
        // plain integers.
        unsafe { write_volatile(self.ptr.as_ptr(), init) };
        self.end(count);
    }

    /// Store one sample so that neither reader protocol can accept a mix of two samples.
    ///
    /// ```text
    /// ntpd/ntpsec: if valid { c = count; fence; copy; valid = 0; fence;
    ///                         drop the copy if mode is not 0/1, or (mode 1) count != c }
    /// chrony:      copy; drop it if !valid, mode is not 0/1, or (mode 1) count != copy.count;
    ///              valid = 0
    /// ```
    ///
    /// gpsd's order: `valid = 0`, `count += 1`, fence, the data, fence, `count += 1`, fence,
    /// `valid = 1`. That is enough for chrony, whose copy includes `valid`. It is not for
    /// ntpd, which reads `valid` before `count`: a reader that saw `valid` just before the
    /// writer cleared it, then read `count` and copied while the data was half written, sees
    /// the same (odd) count afterwards and takes the mix (the stress test in
    /// tests/it/refclock.rs caught this about once in ten thousand reads). So `mode` also says
    /// "busy" (-1, which every reader drops) from before the first `count` step until after
    /// the second: a copy that overlaps the data either saw the count move or saw the busy
    /// mode.
    pub(super) fn store(&mut self, f: &Fields) {
        let count = self.begin();
        let p = self.ptr.as_ptr();
        // SAFETY: as in `initialise`; `&raw mut` makes field pointers without references.
        unsafe {
            write_volatile(&raw mut (*p).clock_sec, f.clock_sec);
            write_volatile(&raw mut (*p).clock_usec, f.clock_usec);
            write_volatile(&raw mut (*p).clock_nsec, f.clock_nsec);
            write_volatile(&raw mut (*p).receive_sec, f.receive_sec);
            write_volatile(&raw mut (*p).receive_usec, f.receive_usec);
            write_volatile(&raw mut (*p).receive_nsec, f.receive_nsec);
            write_volatile(&raw mut (*p).leap, f.leap);
            write_volatile(&raw mut (*p).precision, f.precision);
        }
        self.end(count);
        // SAFETY: as above.
        unsafe { write_volatile(&raw mut (*p).valid, 1) };
    }

    /// Open the bracket: `valid = 0`, `mode` busy, fence, `count += 1`, fence. Returns the
    /// new count.
    fn begin(&mut self) -> libc::c_int {
        let p = self.ptr.as_ptr();
        // SAFETY: as in `initialise`.
        unsafe {
            write_volatile(&raw mut (*p).valid, 0);
            write_volatile(&raw mut (*p).mode, MODE_BUSY);
            fence(SeqCst);
            let count = read_volatile(&raw const (*p).count).wrapping_add(1);
            write_volatile(&raw mut (*p).count, count);
            fence(SeqCst);
            count
        }
    }

    /// Close it: fence, `count += 1`, fence, `mode = 1`, fence.
    fn end(&mut self, count: libc::c_int) {
        let p = self.ptr.as_ptr();
        fence(SeqCst);
        // SAFETY: as in `initialise`.
        unsafe {
            write_volatile(&raw mut (*p).count, count.wrapping_add(1));
            fence(SeqCst);
            write_volatile(&raw mut (*p).mode, 1);
        }
        fence(SeqCst);
    }

    /// Write the writer mark (see `super::Mark`) into `dummy[0..2]`, which readers ignore.
    pub(super) fn set_mark(&mut self, mark: [libc::c_int; 2]) {
        let p = self.ptr.as_ptr();
        // SAFETY: as in `initialise`; `dummy` has 8 elements.
        unsafe {
            write_volatile(&raw mut (*p).dummy[0], mark[0]);
            write_volatile(&raw mut (*p).dummy[1], mark[1]);
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from shmat and is detached exactly once, here; nothing reads it
        // afterwards (the Mapping is gone).
        let r = unsafe { libc::shmdt(self.ptr.as_ptr().cast()) };
        if r < 0 {
            tracing::warn!(
                "detaching the SHM segment failed: {}",
                io::Error::last_os_error()
            );
        }
    }
}
