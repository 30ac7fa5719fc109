#!/bin/sh
# Run fuzz targets one after another, each for SECONDS (default 600), one job, niced, and
# print libFuzzer's final numbers for each: the table in fuzz/README.md comes from this.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      (default: every target)
#
# Needs cargo-fuzz and a nightly toolchain (see fuzz/README.md). Crashes go to
# fuzz/artifacts/TARGET/; the corpus grows in fuzz/corpus/TARGET/ (only seed-* is committed).
set -eu
cd "$(dirname "$0")"
secs=${1:-600}
[ $# -gt 0 ] && shift
targets=${*:-"timestamp reply jsonp fast ws leap config refclock ntp"}
mkdir -p logs
for t in $targets; do
    log=logs/$t.log
    rm -f fuzz-0.log
    status=clean
    touch "$log.start"
    nice -n 19 cargo +nightly fuzz run "$t" -- -max_total_time="$secs" -jobs=1 -workers=1 \
        >"$log.cargo" 2>&1 || status=FAILED
    mv fuzz-0.log "$log" 2>/dev/null || true
    # The last status line (#N ... cov: C ft: F corp: N/S ... exec/s: E) and "Done N runs".
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    done_line=$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1 || true)
    crashes=$(find "artifacts/$t" -type f -newer "$log.start" 2>/dev/null | wc -l)
    corpus=$(ls "corpus/$t" | wc -l)
    echo "$(date -u +%FT%TZ) $t $status secs=$secs corpus_files=$corpus new_artifacts=$crashes"
    echo "    $last"
    echo "    ${done_line:-no Done line (stopped by a crash?)}"
done
