#!/bin/sh
# Build target/release/webntpd as the package ships it (issue 18, docs/architecture.md
# "Idle RSS: the shipped binary"):
#
#   packaging/build-release.sh [cargo options...]     e.g. --target-dir DIR
#   cargo deb --no-build --locked                      the .deb of that binary
#
# On a glibc Linux host the binary is linked statically with glibc, as a position-independent
# executable (ASLR as before), with its relative relocations packed (DT_RELR). Dynamically
# linked, an idle `webntpd serve` has 2.3 MB of libc, libm, libgcc_s and the loader resident
# (glibc's IFUNC resolvers and relocations touch pages all over them, for one `pow` tokio calls
# from libm), and the loader reads 260 KB of relocation entries; statically, only the few
# hundred KiB of glibc that webntpd calls are linked in, placed by the startup list
# (packaging/startup-order.txt) beside the rest of the start-up code. Same allocator (jemalloc),
# same memcpy and friends (glibc's, chosen per CPU as before), same requests per CPU-second.
#
# Only the binary gets `crt-static`: as a RUSTFLAGS value it would reach the proc-macro crates,
# which cannot be built static, unless --target is given, and --target changes every symbol
# hash the startup list names. `cargo build --release` still makes a dynamic binary, which
# behaves the same and costs about 2 MB more RSS.
#
# Names: a static glibc resolves host names with its built-in "files" and "dns" services
# (/etc/hosts, /etc/resolv.conf: Debian's default "hosts: files dns"); for any other service
# in /etc/nsswitch.conf (mdns4_minimal, resolve, myhostname...) it loads that NSS module and
# the system's libc.so.6 at run time, which must be the glibc release it was linked with. The
# .deb therefore depends on that release (packaging/README.md).
set -eu
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
case $host in
*-linux-gnu*)
    libc_a=$(${CC:-cc} -print-file-name=libc.a 2>/dev/null || true)
    if [ ! -f "$libc_a" ]; then
        echo "build-release: glibc's static library (libc.a) not found; install it" \
            "(Debian, Ubuntu: apt-get install libc6-dev; Fedora: dnf install glibc-static)" >&2
        exit 69
    fi
    set -- "$@" -- -C target-feature=+crt-static -C link-arg=-Wl,-z,pack-relative-relocs
    ;;
*)
    echo "build-release: host $host is not glibc Linux: building the default way" >&2
    ;;
esac
exec cargo rustc --release --locked --bin webntpd "$@"
