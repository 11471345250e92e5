#!/usr/bin/env bash
# Start time and memory of the local Kafka (`contactsync kafka start`), cold and warm.
#   cold: empty jar cache and empty Maven repository, so mvn downloads every jar;
#   warm: jars cached; each start in a fresh run dir (format + start, as the test fixture does);
#   restart: jars cached, existing run dir (no format), as `make kafka-start` after a stop;
#   test: jars cached, the tests' throwaway broker (fresh run dir, C1-only JIT), timed in-process.
# Prints one line per start (seconds, RSS in MB right after start) and the medians.
# Usage: benchmarks/local_kafka_start.sh [runs per case, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
work=$(mktemp -d)
cleanup() {  # a broker whose stop failed must not outlive its deleted run dir
    for pidfile in "$work"/*/kafka.pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$work"; then kill "$pid"; fi
    done
    rm -rf "$work"
}
trap cleanup EXIT
unset KAFKA_BOOTSTRAP_SERVERS

one_start() {  # $1 case name; env decides cache and run dir
    local t0 t1 pid rss
    t0=$(date +%s.%N)
    .venv/bin/contactsync kafka start --free-ports >/dev/null
    t1=$(date +%s.%N)
    pid=$(cat "$CONTACTSYNC_LOCAL_KAFKA__RUN_DIR/kafka.pid")
    rss=$(ps -o rss= -p "$pid")
    .venv/bin/contactsync kafka stop >/dev/null
    printf '%s %.1f %d\n' "$1" "$(echo "$t1 - $t0" | bc)" "$((rss / 1024))" | tee -a "$work/results"
}

for i in $(seq "$runs"); do
    CONTACTSYNC_LOCAL_KAFKA__CACHE_DIR="$work/cold-cache-$i" CONTACTSYNC_LOCAL_KAFKA__RUN_DIR="$work/cold-run-$i" \
        MAVEN_OPTS="-Dmaven.repo.local=$work/cold-m2-$i" one_start cold
done
export CONTACTSYNC_LOCAL_KAFKA__CACHE_DIR="$work/cold-cache-1"
for i in $(seq "$runs"); do
    CONTACTSYNC_LOCAL_KAFKA__RUN_DIR="$work/warm-run-$i" one_start warm
done
for i in $(seq "$runs"); do
    CONTACTSYNC_LOCAL_KAFKA__RUN_DIR="$work/warm-run-1" one_start restart
done

for i in $(seq "$runs"); do
    .venv/bin/python - "$work/test-run-$i" <<'PY' | tee -a "$work/results"
import subprocess, sys, time
from pathlib import Path
from pipeline.dev.local_kafka import throwaway_broker
from pipeline.settings import Settings
t0 = time.monotonic()
with throwaway_broker(Settings().local_kafka, Path(sys.argv[1])):
    seconds = time.monotonic() - t0
    pid = (Path(sys.argv[1]) / "kafka.pid").read_text().strip()
    rss = int(subprocess.run(["ps", "-o", "rss=", "-p", pid], capture_output=True, text=True).stdout)
print(f"test {seconds:.1f} {rss // 1024}")
PY
done

median() {  # $1 case, $2 column
    awk -v c="$1" -v k="$2" '$1 == c { print $k }' "$work/results" | sort -n | sed -n "$(((runs + 1) / 2))p"
}
echo "median (case seconds rss_mb):"
for case in cold warm restart test; do
    echo "$case $(median "$case" 2) $(median "$case" 3)"
done
