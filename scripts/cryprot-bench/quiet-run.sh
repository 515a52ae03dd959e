#!/bin/bash
# Pause the fuzzer (afl-fuzz and its children, by PID), run this bench and
# `blindfold bench primitives --json` in the same quiet window, always resume.
set -u
here=$(cd "$(dirname "$0")" && pwd)
desc() { for c in $(pgrep -P "$1"); do echo "$c"; desc "$c"; done; }
PIDS=""
for a in $(pgrep -x afl-fuzz); do PIDS="$PIDS $a $(desc "$a")"; done
resume() { [ -n "$PIDS" ] && kill -CONT $PIDS 2>/dev/null
  for a in $(pgrep -x afl-fuzz); do kill -CONT "$a" $(desc "$a") 2>/dev/null; done; echo "resumed:" $PIDS; }
trap resume EXIT
[ -n "$PIDS" ] && kill -STOP $PIDS && echo "paused:" $PIDS
sleep "${SETTLE:-45}"
echo "load before: $(cat /proc/loadavg)  $(date -u)"
"$here/target/release/cryprot-bench" "${RUNS:-3}" 2>&1 | grep -v '^warning: phase'
/work/main/target/release/blindfold bench primitives --json |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print("blindfold silent: %.2f M OT/s, %.4f bytes/OT" % (d["silent_rot_per_s"]/1e6, d["silent_bytes_per_ot"]))'
echo "load after: $(cat /proc/loadavg)  $(date -u)"
