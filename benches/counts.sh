#!/usr/bin/env bash
# Per-request costs that do not depend on what else the machine runs: the same fixed number of
# signed requests (h2load --h1 -n N -c 32) against the bare baseline and against siemgate
# (memory queue + file sink), each measured on the server process alone:
#   CPU ms, context switches, and          perf stat -p   (COUNT requests)
#   instructions:u / :k where counted
#   heap allocations (malloc + realloc)     perf uprobes on libc's malloc/realloc (COUNT)
#   syscalls by name                        strace -c -f  (STRACE_COUNT requests; strace slows
#                                           the server, the counts stay exact)
# and divides each by the requests. Needs root (uprobes), perf and strace. Bounded: a few
# fixed-count runs.
#
#   bash benches/counts.sh                  # COUNT=100000 STRACE_COUNT=20000
#   SKIP_STRACE=1 bash benches/counts.sh
#   SIEMGATE_BIN=/path/to/older/siemgate bash benches/counts.sh    # compare another build
#   QUEUE=disk-always bash benches/counts.sh   # the sink's queue: memory (default),
#                                              # disk-interval or disk-always (on target/)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/common.sh
source benches/common.sh

COUNT=${COUNT:-100000}
STRACE_COUNT=${STRACE_COUNT:-20000}
CONNECTIONS=${CONNECTIONS:-32}
PORT0=${PORT0:-18291}
BASE_PORT=$PORT0
GW_PORT=$((PORT0 + 1))
LIBC=$(ldconfig -p | awk '/libc\.so\.6 .*x86-64/ {print $NF; exit}')

SIEMGATE_BIN=${SIEMGATE_BIN:-target/release/siemgate}
BARE_BIN=${BARE_BIN:-target/release/examples/bare_ingest}

install_h2load
[[ -n ${SKIP_BUILD:-} ]] || cargo build --release --quiet --bin siemgate --example bare_ingest

work=$(mktemp -d)
pids=()
probes=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for p in "${probes[@]}"; do perf probe -q -d "$p" 2>/dev/null || true; done
  rm -rf "$work" ${qdir:+"$qdir"}
}
trap cleanup EXIT

QUEUE=${QUEUE:-memory}
case "$QUEUE" in
  memory) queue='type = "memory"' ;;
  disk-interval | disk-always)
    # On the machine's own disk, not a tmpfs: that is where a disk queue runs.
    qdir=$(mktemp -d -p "$PWD/target" counts-queue.XXXXXX)
    queue="type = \"disk\"
path = \"$qdir\"
fsync = \"${QUEUE#disk-}\"" ;;
  *) echo "QUEUE is memory, disk-interval or disk-always, not '$QUEUE'" >&2; exit 2 ;;
esac

SIG="$(signature)"
cat > "$work/siemgate.toml" <<TOML
[server]
listen = "127.0.0.1:$GW_PORT"
plaintext = true
[[sinks]]
id = "out"
type = "file"
path = "$work/out.ndjson"
fsync = "never"
rotate_bytes = 268435456
keep_files = 1
[sinks.queue]
$queue
max_events = 1000000
max_bytes = 1073741824
$(bench_tail_toml)
TOML

"$BARE_BIN" "127.0.0.1:$BASE_PORT" "$SECRET" 2>/dev/null &
base_pid=$!
pids+=($!)
SIEMGATE_LOG=warn "$SIEMGATE_BIN" serve --config "$work/siemgate.toml" 2>"$work/gw.log" &
gw_pid=$!
pids+=($!)
wait_port "$BASE_PORT"
wait_port "$GW_PORT"

if perf probe -q -x "$LIBC" --add 'siemgate_malloc=malloc' 2>/dev/null; then probes+=(siemgate_malloc); fi
if perf probe -q -x "$LIBC" --add 'siemgate_realloc=realloc' 2>/dev/null; then probes+=(siemgate_realloc); fi
# Instruction counters where the CPU exposes them (not in every VM); CPU time always.
events="task-clock,context-switches,cpu-migrations"
if perf stat -e instructions:u -x, true 2>&1 | grep -q '^[0-9]'; then
  events+=",instructions:u,instructions:k"
fi

load() { # url n
  h2load --h1 -n "$2" -c "$CONNECTIONS" -t 2 -d "$BODY" \
    -H "content-type: application/json" -H "x-signature: $SIG" "$1" |
    awk '/^requests:/ {print "  requests: " $8 " succeeded, " $10 " failed"}' >&2
}

for target in baseline siemgate; do
  if [[ $target == baseline ]]; then pid=$base_pid url="http://127.0.0.1:$BASE_PORT/"
  else pid=$gw_pid url="http://127.0.0.1:$GW_PORT/hooks/prisma"; fi
  load "$url" 5000 2>/dev/null # warm-up
  # CPU first, without the uprobes (each costs a trap per call); then the allocations.
  perf stat -x, -e "$events" -p "$pid" -o "$work/stat-$target" &
  perf_pid=$!
  sleep 0.5
  echo "$target: $COUNT requests" >&2
  load "$url" "$COUNT"
  sleep 0.2 # the file sink's last batch
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  if ((${#probes[@]})); then
    perf stat -x, -e "$(printf 'probe_libc:%s,' "${probes[@]}" | sed 's/,$//')" -p "$pid" \
      -o "$work/probes-$target" &
    perf_pid=$!
    sleep 0.5
    load "$url" "$COUNT"
    sleep 0.2
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    cat "$work/probes-$target" >> "$work/stat-$target"
  fi
  echo "$target per request:"
  awk -F, -v n="$COUNT" '$1 ~ /^[0-9.]+$/ {
      if ($3 == "task-clock") printf "  %-28s %12.2f\n", "CPU us", $1 * 1000 / n
      else printf "  %-28s %12.2f\n", $3, $1 / n }' "$work/stat-$target"
  if [[ -z ${SKIP_STRACE:-} ]]; then
    strace -c -f -p "$pid" -o "$work/strace-$target" &
    strace_pid=$!
    sleep 1
    load "$url" "$STRACE_COUNT"
    sleep 0.2
    kill -INT "$strace_pid"
    wait "$strace_pid" || true
    echo "  syscalls per request ($STRACE_COUNT requests under strace):"
    awk -v n="$STRACE_COUNT" '$NF ~ /^[a-z_0-9]+$/ && $(NF-1) ~ /^[0-9]+$/ && $NF != "syscall" && $NF != "total" {
        calls = (NF == 6) ? $4 : $4; printf "    %-18s %8.3f\n", $NF, calls / n }' "$work/strace-$target" |
      sort -k2 -nr | head -12
  fi
done
