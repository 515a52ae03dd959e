#!/usr/bin/env bash
# Fuzz each target for a fixed time with AFL++ (through afl.rs), one after the
# other, and print a table: target, executions, exec/s, crashes, hangs.
#
#   fuzz/run.sh [TARGET...] [--seconds N | --until EXECUTIONS] [--no-build]
#   fuzz/run.sh [TARGET...] --report
#
# No TARGET: every target of fuzz/src/lib.rs (TARGETS), in that order.
# --seconds N: time per target (default 60). --until E: instead, fuzz each
# target in slices until its total over all runs reaches E executions.
# --no-build: use the binaries built last time. --report: fuzz nothing, print
# the totals over all runs kept in fuzz/out (executions, fuzzing time, average
# exec/s, crashes, hangs) as a Markdown table. Environment: FUZZ_JOBS (cargo
# -j, default 1), FUZZ_TIMEOUT_MS (an execution longer than this is a hang,
# default 1000), FUZZ_MEM_MB (memory limit per execution, default 4096).
#
# Fuzzer state (queue, statistics) is kept in fuzz/out/TARGET and resumed on
# the next run, so executions add up; "total" in the table is the sum over all
# runs. Crashes and hangs are copied to fuzz/findings/TARGET/ (git-ignored);
# the script exits 1 if a run saved any. Reproduce one without AFL:
#   cargo run --manifest-path fuzz/Cargo.toml --bin TARGET -- fuzz/findings/TARGET/FILE
set -euo pipefail
cd "$(dirname "$0")"
FUZZ_DIR=$(pwd)

seconds=60
build=1
report=0
until=0
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --seconds=*) seconds="${1#*=}"; shift ;;
        --no-build) build=0; shift ;;
        --report) report=1; shift ;;
        --until) until="$2"; shift 2 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
if [ ${#targets[@]} -eq 0 ]; then
    # The names in the TARGETS table, in order.
    mapfile -t targets < <(sed -n 's/^ *("\([a-z0-9_]*\)", targets::.*/\1/p' src/lib.rs)
fi
for t in "${targets[@]}"; do
    if [ ! -f "src/bin/$t.rs" ]; then
        echo "no target $t (see fuzz/src/lib.rs)" >&2
        exit 2
    fi
done

stat() { # stat FILE KEY: a value of AFL's fuzzer_stats, empty if absent
    [ -f "$1" ] && sed -n "s/^$2 *: *//p" "$1" | head -1 || true
}

if [ "$report" = 1 ]; then
    echo "| target | executions | fuzzing time (s) | exec/s | crashes | hangs |"
    echo "|---|---:|---:|---:|---:|---:|"
    for t in "${targets[@]}"; do
        s="out/$t/default/fuzzer_stats"
        [ -f "$s" ] || { echo "| \`$t\` | not run | | | | |"; continue; }
        e=$(stat "$s" execs_done); r=$(stat "$s" run_time)
        echo "| \`$t\` | $e | $r | $(( e / (r > 0 ? r : 1) )) | $(stat "$s" saved_crashes) | $(stat "$s" saved_hangs) |"
    done
    exit 0
fi

# afl.rs: cargo-afl builds AFL++ (afl-fuzz and its runtime) when it is
# installed; Debian's afl++ package is not needed.
if ! cargo afl --version >/dev/null 2>&1; then
    echo "== installing cargo-afl (builds AFL++)"
    cargo install cargo-afl --locked -j "${FUZZ_JOBS:-1}"
fi
afl_help=$(cargo afl fuzz -h 2>&1 || true)
case "$afl_help" in
    *afl-fuzz*) ;;
    *) cargo afl config --build ;;
esac

export CARGO_TARGET_DIR="$FUZZ_DIR/target"
if [ "$build" = 1 ]; then
    echo "== cargo afl build --profile fuzz"
    cargo afl build --profile fuzz -j "${FUZZ_JOBS:-1}" --bins
fi

# A shared machine: no core pinning; no UI; core dumps may go to a handler.
export AFL_NO_AFFINITY=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1
export AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_AUTORESUME=1
export AFL_SKIP_CRASHES=1

# One slice of fuzzing: fuzz_slice TARGET SECONDS; adds to the counters below.
fuzz_slice() {
    local t=$1 secs=$2 stats="out/$1/default/fuzzer_stats" before c0 h0 start
    before=$(stat "$stats" execs_done); before=${before:-0}
    c0=$(stat "$stats" saved_crashes); c0=${c0:-0}
    h0=$(stat "$stats" saved_hangs); h0=${h0:-0}
    echo "== $t: ${secs}s (log: fuzz/out/$t.log)"
    start=$(date +%s)
    cargo afl fuzz -V "$secs" -t "${FUZZ_TIMEOUT_MS:-1000}" -m "${FUZZ_MEM_MB:-4096}" \
        -i "corpus/$t" -o "out/$t" -- "target/fuzz/$t" >"out/$t.log" 2>&1 || {
        echo "afl-fuzz failed for $t; the end of fuzz/out/$t.log:" >&2
        tail -20 "out/$t.log" >&2
        exit 1
    }
    took=$(( took + $(date +%s) - start ))
    total=$(stat "$stats" execs_done); total=${total:-0}
    crashes=$(( crashes + $(stat "$stats" saved_crashes) - c0 ))
    hangs=$(( hangs + $(stat "$stats" saved_hangs) - h0 ))
    execs=$(( execs + total - before ))
}

results=()
found=0
mkdir -p out findings
for t in "${targets[@]}"; do
    stats="out/$t/default/fuzzer_stats"
    execs=0 took=0 crashes=0 hangs=0
    if [ "$until" -gt 0 ]; then
        # Slices sized by the rate so far, until the total reaches $until.
        while :; do
            total=$(stat "$stats" execs_done); total=${total:-0}
            [ "$total" -lt "$until" ] || break
            run_time=$(stat "$stats" run_time); run_time=${run_time:-0}
            rate=$(( run_time > 0 ? total / run_time : 5000 ))
            slice=$(( (until - total) / (rate > 0 ? rate : 1) * 11 / 10 + 10 ))
            [ "$slice" -le 3600 ] || slice=3600
            fuzz_slice "$t" "$slice"
            [ "$crashes" -eq 0 ] && [ "$hangs" -eq 0 ] || break
        done
    else
        fuzz_slice "$t" "$seconds"
    fi
    total=$(stat "$stats" execs_done); total=${total:-0}
    rate=$(( execs / (took > 0 ? took : 1) ))
    for kind in crashes hangs; do
        if compgen -G "out/$t/default/$kind/id*" >/dev/null; then
            mkdir -p "findings/$t"
            cp -n out/"$t"/default/"$kind"/id* "findings/$t/" 2>/dev/null || true
        fi
    done
    if [ "$crashes" -gt 0 ] || [ "$hangs" -gt 0 ]; then found=1; fi
    results+=("$(printf '%-22s %12s %8s %14s %8s %6s' "$t" "$execs" "$rate" "$total" "$crashes" "$hangs")")
done

echo
printf '%-22s %12s %8s %14s %8s %6s\n' target executions exec/s total crashes hangs
for r in "${results[@]}"; do echo "$r"; done
if [ "$found" = 1 ]; then
    echo "findings copied to fuzz/findings/" >&2
    exit 1
fi
