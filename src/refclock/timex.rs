//! The kernel's clock-discipline state, read (never changed) with `adjtimex(2)`: whether a
//! time daemon vouches for the clock and with what maximum error. The NTP server asks it to
//! tell a free clock from a disciplined one ([`crate::sync::serve`]). nix and rustix do not
//! wrap `adjtimex`, so this is the second file of unsafe code, one call.
//!
//! Reading needs no privilege (`modes = 0`), but systemd's `ProtectClock=yes` and a
//! `SystemCallFilter=@system-service` both refuse the call itself (`EPERM`, the `@clock`
//! group), so under webntpd's units the answer is "cannot tell" and the configuration
//! decides.
#![allow(unsafe_code)]

use std::io;

use crate::sync::serve::KernelClock;

/// The kernel's state now, or why it cannot be read.
pub fn read() -> io::Result<KernelClock> {
    // SAFETY: `libc::timex` is a C struct of integers (and padding), for which all-zero bytes
    // are a valid value.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // No mode bits: the kernel only fills the struct in, changing nothing.
    tx.modes = 0;
    // SAFETY: `tx` is a live, aligned, writable `timex` for the whole call, which is all
    // adjtimex writes to; with `modes = 0` it reads nothing from it.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state == -1 {
        return Err(io::Error::last_os_error());
    }
    // `c_long` is i32 on 32-bit targets, where the conversion is not the identity.
    #[allow(clippy::useless_conversion)]
    let maxerror_us = i64::from(tx.maxerror);
    Ok(KernelClock {
        unsync_flag: tx.status & libc::STA_UNSYNC != 0,
        maxerror_ns: maxerror_us.saturating_mul(1_000),
        insert: tx.status & libc::STA_INS != 0,
        delete: tx.status & libc::STA_DEL != 0,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_kernel_answers_or_says_why_not() {
        match super::read() {
            Ok(k) => assert!(k.maxerror_ns >= 0, "{k:?}"),
            Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}"),
        }
    }
}
