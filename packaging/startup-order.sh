#!/bin/sh
# Regenerate packaging/startup-order.txt: the functions webntpd runs while it starts and
# settles, as valgrind's callgrind lists them, from three runs of the shipped build
# (packaging/build-release.sh: glibc linked in, so glibc's functions are listed too):
#   1. `serve` with the usual flags, answering a GET, a WebSocket and a HEAD;
#   2. `run` with the demo config, which serves and polls itself (json, ws, toh);
#   3. `run` polling four sources of a plain `serve` (json, ws, toh, date; no server of its
#      own), as bench/run's daemon figure does, with `status` asked twice.
# The linker (rust-lld, see build.rs) puts them together at the start of the text, so a start
# touches about 1 MiB of code pages instead of most of the binary (issue 18, BENCHMARKS.md).
#
#   packaging/startup-order.sh    (needs valgrind, and perf for the native passes; builds
#                                 target/release/webntpd with packaging/build-release.sh)
#
# Symbol names carry hashes that change as the code does: a stale list still links, with less
# of the benefit. The script says how many of the listed names the build still has; rerun it
# when that falls, or when bench/run memory shows the idle RSS growing. The dynamic build
# (`cargo build --release`) has the same names, without glibc's.
set -eu
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "startup-order: valgrind is needed (apt-get install -y valgrind)" >&2; exit 69; }
packaging/build-release.sh
bin=target/release/webntpd
work=$(mktemp -d)
server=
trap 'if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
profile() { # NAME SECONDS ARGS...
    name=$1 secs=$2
    shift 2
    valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/$name.out" \
        "$bin" "$@" >"$work/$name.log" 2>&1 &
    pid=$!
    sleep "$secs"
    kill -INT "$pid" 2>/dev/null || {
        echo "startup-order: webntpd $* ended before its $secs s; its log:" >&2
        cat "$work/$name.log" >&2
        exit 70
    }
    wait "$pid" || true
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# Requests of each kind to the server on port $1 after $2 seconds (GET, WebSocket, HEAD), so
# that the request path is listed in a stretch of its own, not among the demo's client code.
ask() {
    sleep "$2"
    "$bin" query -n 4 "http://127.0.0.1:$1/" "ws://127.0.0.1:$1/" >/dev/null 2>&1 || true
    "$bin" query -n 2 --mode toh "http://127.0.0.1:$1/" >/dev/null 2>&1 || true
}
# The flags a server is usually given (bench/run gives these): their parsers run at start.
leap=/usr/share/zoneinfo/leap-seconds.list
flags="--max-connections 4096 --keepalive-timeout 1h --ws-idle-timeout 1h"
[ ! -f "$leap" ] || flags="$flags --leap-seconds $leap"
# `serve`: its start (dumped to serve.out.1 at 10 s), then its answers (serve.out).
port=$(free_port)
# shellcheck disable=SC2086 # $flags: words, split on purpose
valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/serve.out" \
    "$bin" serve --listen "127.0.0.1:$port" $flags >"$work/serve.log" 2>&1 &
pid=$!
sleep 10
callgrind_control --dump=start "$pid" >/dev/null
ask "$port" 0
sleep 3
kill -INT "$pid"
wait "$pid" || true
[ -s "$work/serve.out.1" ] || { echo "startup-order: no dump of serve's start; its log:" >&2; cat "$work/serve.log" >&2; exit 70; }
profile run 25 run -c config/demo.toml

# bench/run's daemon: four sources, one per mode, of a server running natively (so it
# answers in time).
port=$(free_port)
"$bin" serve --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server=$!
sed -e "s|@SERVER@|127.0.0.1:$port|g" -e "s|@STATUS@|$work/status.sock|g" \
    bench/daemon-4-sources.toml >"$work/daemon.toml"
(sleep 20; "$bin" status --socket "$work/status.sock" >/dev/null 2>&1 || true
    "$bin" status --json --socket "$work/status.sock" >/dev/null 2>&1 || true) &
profile daemon 30 run -c "$work/daemon.toml"
grep -q 'selected' "$work/daemon.log" || {
    echo "startup-order: the four-source daemon selected nothing; its log:" >&2
    cat "$work/daemon.log" >&2
    exit 70
}

# Function names as callgrind defines them (fn= and cfn= lines), first seen first, that the
# binary defines; grouped so that each kind of process touches few stretches: those both
# `serve` and the plain daemon run at start, then the rest of `serve`'s start, then what
# answering requests adds (an idle `serve` touches the first two, a busy one the first three),
# then the daemon's own, then the rest of the demo's (a daemon with a server).
# The kernel maps up to 64 KiB around each page a process faults in, so a function one kind
# never runs costs it nothing only if it lies outside that kind's stretch.
nm --defined-only "$bin" | awk '{print $3}' >"$work/defined"
for run in serve.out.1 daemon.out serve.out run.out; do
    sed -n -E 's/^c?fn=\([0-9]+\) ([A-Za-z_][^ ]*)$/\1/p' "$work/$run" |
        awk -v defined="$work/defined" 'BEGIN { while ((getline n <defined) > 0) have[n] = 1 }
            (have[$0] && !seen[$0]++)' >"$work/$run.names"
    [ -s "$work/$run.names" ] || { echo "startup-order: callgrind's $run names no function" >&2; exit 70; }
done
awk 'FNR == 1 { file++ }
     { order[file, ++n[file]] = $0; in_[file, $0] = 1 }
     END {
         for (i = 1; i <= n[1]; i++) if ((2, order[1, i]) in in_) say(order[1, i])
         for (i = 1; i <= n[1]; i++) say(order[1, i])
         for (i = 1; i <= n[3]; i++) say(order[3, i])
         for (f = 2; f <= 4; f += 2) for (i = 1; i <= n[f]; i++) say(order[f, i])
     }
     function say(name) { if (!(name in done)) { done[name] = 1; print name } }' \
    "$work/serve.out.1.names" "$work/daemon.out.names" "$work/serve.out.names" \
    "$work/run.out.names" >packaging/startup-order.txt

# Callgrind runs a CPU without AVX-512 or SHA extensions, and slowly: natively, glibc picks
# other string functions, sha1 its SHA-NI compressor, and other paths run. With perf, two
# native passes add the functions whose first instruction faulted outside the list, then
# relink: `perf record -e page-faults` gives, per fault, the address and the instruction.
if command -v perf >/dev/null; then
    for pass in 1 2; do
        packaging/build-release.sh
        native() { # NAME SECONDS ARGS...
            name=$1 secs=$2
            shift 2
            timeout -s INT "$secs" perf record -q -c 1 -e page-faults -d -o "$work/$name.perf" \
                "$bin" "$@" >"$work/$name.native.log" 2>&1 || true
            [ -s "$work/$name.perf" ] || echo "startup-order: perf recorded nothing for $name" \
                "(perf_event_paranoid? run as root); $(tail -n 3 "$work/$name.native.log")" >&2
            # Fields: address, its symbol, instruction, its symbol; an instruction fetch faulted
            # where the two addresses are one.
            perf script -i "$work/$name.perf" -F addr,ip,sym --no-demangle 2>/dev/null |
                awk '$1 == $3 && $4 != "[unknown]" { print $4 }'
        }
        { own=$(free_port)
          ask "$own" 1 &
          native serve 3 serve --listen "127.0.0.1:$own"
          # shellcheck disable=SC2086 # $flags: words, split on purpose
          native serve-flags 2 serve --listen 127.0.0.1:0 $flags
          native daemon 8 run -c "$work/daemon.toml"; } |
            awk -v listed=packaging/startup-order.txt -v defined="$work/defined" '
                BEGIN { while ((getline n <listed) > 0) have[n] = 1
                        while ((getline n <defined) > 0) def[n] = 1 }
                (def[$0] && !have[$0]++)' >"$work/native.names"
        echo "startup-order: native pass $pass adds $(wc -l <"$work/native.names") functions"
        cat "$work/native.names" >>packaging/startup-order.txt
    done
else
    echo "startup-order: no perf: skipping the native passes (CPU-specific variants stay unlisted)" >&2
fi
echo "startup-order: $(wc -l <packaging/startup-order.txt) functions of $bin listed; rebuild to link them first"
