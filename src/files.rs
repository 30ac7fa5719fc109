//! Reading the files a user names: the configuration, the leap-seconds list and its cache,
//! TLS certificates and keys, `cacert` PEM files. One reader for all of them, so that no path
//! can make webntpd block or read without end:
//!
//! - Only regular files are read (a symlink to one is fine). A FIFO, a device, a directory or
//!   a socket is refused with a message naming what it is. The path is looked at before it is
//!   opened, so a device is never opened at all (opening some has side effects, a tape
//!   rewinds), and the open descriptor is checked again, so a file swapped in between is
//!   caught too.
//! - The file is opened with `O_NONBLOCK | O_CLOEXEC | O_NOCTTY`: opening a FIFO that slipped
//!   past the first look returns at once instead of waiting for a writer, and a terminal
//!   never becomes the controlling one.
//! - At most `limit + 1` bytes are read, so a file larger than its [`Limit`] is refused even
//!   when it grows while it is read, or claims a size of 0 (as `/proc` files do).
//!
//! Reading is a blocking call, bounded by the limit (1 MiB at most, from local disk: well
//! under a millisecond from the page cache), so callers on an async thread, such as the
//! daemon's supervisor at SIGHUP, call it directly rather than through `spawn_blocking`.
//! Measured with a release build: `check-config` of the shipped 7.6 KiB example takes 0.5 ms
//! beyond the process start; of a 1 MiB file of 96,000 unknown keys, or 24,000 sources,
//! 0.12-0.15 s, nearly all of it parsing. What no open flag can bound, a file on a network
//! filesystem that stops answering, would stall the supervisor, whose systemd watchdog
//! pings then stop: systemd restarts it.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The largest file of one kind webntpd reads, and what the kind is called in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Most bytes accepted.
    pub bytes: u64,
    /// What such a file is, for messages: "configuration file".
    pub what: &'static str,
}

/// `/etc/webntpd.toml`: the shipped example with every key is about 8 KiB.
pub const CONFIG: Limit = Limit {
    bytes: 1 << 20,
    what: "configuration file",
};

/// A PEM file: a TLS certificate chain, a private key, CA certificates. The system's whole
/// CA bundle is about 200 KiB.
pub const PEM: Limit = Limit {
    bytes: 1 << 20,
    what: "PEM file",
};

/// What a path that is not a regular file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Directory,
    /// A FIFO (named pipe): reading it waits for a writer.
    Fifo,
    /// A character device such as `/dev/zero`: it may never end.
    CharDevice,
    /// A block device (a disk).
    BlockDevice,
    /// A Unix socket.
    Socket,
    /// Anything else the kernel reports.
    Other,
}

impl Kind {
    fn of(meta: &Metadata) -> Option<Kind> {
        let t = meta.file_type();
        Some(if t.is_file() {
            return None;
        } else if t.is_dir() {
            Kind::Directory
        } else if t.is_fifo() {
            Kind::Fifo
        } else if t.is_char_device() {
            Kind::CharDevice
        } else if t.is_block_device() {
            Kind::BlockDevice
        } else if t.is_socket() {
            Kind::Socket
        } else {
            Kind::Other
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Directory => "a directory",
            Kind::Fifo => "a FIFO (named pipe)",
            Kind::CharDevice => "a character device",
            Kind::BlockDevice => "a block device",
            Kind::Socket => "a socket",
            Kind::Other => "not a regular file",
        })
    }
}

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The OS refused: missing, no permission, an I/O error.
    #[error("cannot read {}: {error}{}", path.display(), io_hint(error))]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
    /// The path is a FIFO, a device, a directory or a socket.
    #[error(
        "{} is {kind}, not a regular file: webntpd reads only regular files (a symlink to one \
         is fine), so that a read can neither block nor run without end; point it at a \
         regular file",
        path.display()
    )]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is.
        kind: Kind,
    },
    /// The file is larger than its [`Limit`].
    #[error(
        "{} is {}, more than the {} webntpd reads from a {}: is it the right file?",
        path.display(),
        size_text(*.size),
        show_bytes(limit.bytes),
        limit.what
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit it exceeds.
        limit: Limit,
        /// Its size when the kernel knew it; `None` when it grew past the limit while read.
        size: Option<u64>,
    },
}

fn io_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::PermissionDenied => " (run as a user that may read it, or fix its mode)",
        _ => "",
    }
}

fn size_text(size: Option<u64>) -> String {
    match size {
        Some(n) => format!("{n} bytes"),
        None => "still growing past the limit as it is read".to_owned(),
    }
}

/// `1 MiB`, `256 KiB`, `100 bytes`.
pub fn show_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

impl ReadError {
    /// The file it is about.
    pub fn path(&self) -> &Path {
        match self {
            ReadError::Io { path, .. }
            | ReadError::NotRegular { path, .. }
            | ReadError::TooLarge { path, .. } => path,
        }
    }

    /// Whether the file does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io { error, .. } if error.kind() == io::ErrorKind::NotFound)
    }

    /// The sysexits code: 66 (NOINPUT) when the file cannot be read or is not a regular file,
    /// 78 (CONFIG) when it is too large to be what it should be.
    pub fn exit_code(&self) -> u8 {
        match self {
            ReadError::Io { .. } | ReadError::NotRegular { .. } => crate::exit::NOINPUT,
            ReadError::TooLarge { .. } => crate::exit::CONFIG,
        }
    }
}

/// Read the regular file at `path`, at most `limit.bytes` of it. Never blocks on a FIFO or a
/// device (they are refused), never reads more than `limit.bytes + 1` bytes.
pub fn read(path: &Path, limit: Limit) -> Result<Vec<u8>, ReadError> {
    let io_error = |error| ReadError::Io {
        path: path.to_path_buf(),
        error,
    };
    let regular = |meta: &Metadata| match Kind::of(meta) {
        None => Ok(()),
        Some(kind) => Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            kind,
        }),
    };
    // Look before opening: a device is never opened, a socket gets its name rather than
    // ENXIO.
    regular(&std::fs::metadata(path).map_err(io_error)?)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_error)?;
    // And look again at what was opened: the path may have been replaced meanwhile.
    let meta = file.metadata().map_err(io_error)?;
    regular(&meta)?;
    let too_large = |size| ReadError::TooLarge {
        path: path.to_path_buf(),
        limit,
        size,
    };
    if meta.len() > limit.bytes {
        return Err(too_large(Some(meta.len())));
    }
    read_bounded(file, limit.bytes).map_err(|e| match e {
        Bounded::Io(error) => io_error(error),
        Bounded::Over => too_large(None),
    })
}

enum Bounded {
    Io(io::Error),
    Over,
}

fn read_bounded(file: File, limit: u64) -> Result<Vec<u8>, Bounded> {
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(Bounded::Io)?;
    if bytes.len() as u64 > limit {
        return Err(Bounded::Over);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limit = Limit {
        bytes: 16,
        what: "test file",
    };

    /// `mkfifo PATH` (coreutils): no unsafe code outside `refclock`, and nix's `fs` feature
    /// is not enabled.
    fn make_fifo(path: &Path) {
        let ok = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mkfifo {}", path.display());
    }

    #[test]
    fn a_regular_file_and_a_symlink_to_one_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "hello").unwrap();
        assert_eq!(read(&path, SMALL).unwrap(), b"hello");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(read(&link, SMALL).unwrap(), b"hello");
        // Exactly the limit is fine; one byte more is not.
        std::fs::write(&path, [b'x'; 16]).unwrap();
        assert_eq!(read(&path, SMALL).unwrap().len(), 16);
        std::fs::write(&path, [b'x'; 17]).unwrap();
        let e = read(&path, SMALL).unwrap_err();
        assert!(
            matches!(e, ReadError::TooLarge { size: Some(17), .. }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!(
                "{} is 17 bytes, more than the 16 bytes webntpd reads from a test file: is it \
                 the right file?",
                path.display()
            )
        );
        assert_eq!(e.exit_code(), crate::exit::CONFIG);
    }

    #[test]
    fn what_is_not_a_regular_file_is_named_and_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        make_fifo(&fifo);
        let sock = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let fifo_link = dir.path().join("fifo-link");
        std::os::unix::fs::symlink(&fifo, &fifo_link).unwrap();
        let cases = [
            (fifo.as_path(), Kind::Fifo),
            (fifo_link.as_path(), Kind::Fifo),
            (Path::new("/dev/zero"), Kind::CharDevice),
            (Path::new("/dev/null"), Kind::CharDevice),
            (dir.path(), Kind::Directory),
            (sock.as_path(), Kind::Socket),
        ];
        for (path, kind) in cases {
            let e = read(path, SMALL).unwrap_err();
            assert!(
                matches!(&e, ReadError::NotRegular { kind: k, .. } if *k == kind),
                "{}: {e:?}",
                path.display()
            );
            assert_eq!(e.exit_code(), crate::exit::NOINPUT);
            assert!(e.to_string().contains(&kind.to_string()), "{e}");
            assert!(e.to_string().contains("point it at a regular file"), "{e}");
        }
    }

    #[test]
    fn a_missing_file_says_so() {
        let e = read(Path::new("/nonexistent/webntpd-test"), SMALL).unwrap_err();
        assert!(e.is_not_found(), "{e:?}");
        assert_eq!(e.exit_code(), crate::exit::NOINPUT);
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/webntpd-test: "),
            "{e}"
        );
    }

    #[test]
    fn a_file_without_a_size_that_runs_past_the_limit_is_caught_while_read() {
        // /proc files report a size of 0: only the bounded read can catch them.
        let limit = Limit {
            bytes: 8,
            what: "test file",
        };
        let path = Path::new("/proc/self/status");
        assert_eq!(std::fs::metadata(path).unwrap().len(), 0);
        let e = read(path, limit).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { size: None, .. }), "{e:?}");
        assert!(
            e.to_string().contains("still growing past the limit"),
            "{e}"
        );
        // The same file within a large enough limit is read whole.
        assert!(read(path, CONFIG).unwrap().starts_with(b"Name:"));
    }

    #[test]
    fn a_huge_sparse_file_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge");
        let f = File::create(&path).unwrap();
        f.set_len(2 << 30).unwrap(); // 2 GiB of holes
        let start = std::time::Instant::now();
        let e = read(&path, CONFIG).unwrap_err();
        assert!(
            matches!(e, ReadError::TooLarge { size: Some(n), .. } if n == 2 << 30),
            "{e:?}"
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn sizes_are_shown_in_the_largest_whole_unit() {
        assert_eq!(show_bytes(1 << 20), "1 MiB");
        assert_eq!(show_bytes(256 * 1024), "256 KiB");
        assert_eq!(show_bytes(1000), "1000 bytes");
        assert_eq!(show_bytes((1 << 20) + 1), "1048577 bytes");
    }
}
