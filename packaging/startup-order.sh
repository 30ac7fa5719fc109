#!/bin/sh
# Regenerate packaging/startup-order.txt: the functions webntpd runs while it starts and
# settles (`serve`, and `run` with the demo config, which serves and polls itself), in the
# order valgrind's callgrind first lists them. The linker (lld, see .cargo/config.toml) puts
# them together at the start of the text, so a start touches a few hundred KiB of code pages
# instead of most of the binary (issue 18: idle RSS 7.9 -> 4.9 MB, BENCHMARKS.md).
#
#   packaging/startup-order.sh          (needs valgrind; builds target/release/webntpd first)
#
# Symbol names carry hashes that change as the code does: a stale list still links, with less
# of the benefit. The script says how many of the listed names the build still has; rerun it
# when that falls, or when bench/run memory shows the idle RSS growing.
set -eu
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "startup-order: valgrind is needed (apt-get install -y valgrind)" >&2; exit 69; }
cargo build --release --bin webntpd
bin=target/release/webntpd
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
profile() { # NAME SECONDS ARGS...
    name=$1 secs=$2
    shift 2
    valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/$name.out" \
        "$bin" "$@" >"$work/$name.log" 2>&1 &
    pid=$!
    sleep "$secs"
    kill -INT "$pid"
    wait "$pid" || true
}
profile serve 15 serve --listen 127.0.0.1:0
profile run 25 run -c config/demo.toml
# Function names as callgrind defines them (fn= and cfn= lines), first seen first, that the
# binary defines (not libc's).
nm --defined-only "$bin" | awk '{print $3}' >"$work/defined"
cat "$work/serve.out" "$work/run.out" |
    sed -n -E 's/^c?fn=\([0-9]+\) ([A-Za-z_][^ ]*)$/\1/p' |
    awk -v defined="$work/defined" 'BEGIN { while ((getline n <defined) > 0) have[n] = 1 }
        (have[$0] && !seen[$0]++)' >packaging/startup-order.txt
echo "startup-order: $(wc -l <packaging/startup-order.txt) functions of $bin listed; rebuild to link them first"
