#!/usr/bin/env bash
# Load test: drives the release binary on loopback, one ~740-byte HMAC-signed Prisma alert per
# request, with a bare hyper+HMAC baseline (examples/bare_ingest.rs) measured in the same run.
# Every path a user runs, selectable with PATHS (default: all of them):
#
#   http1  wrk -t2 -c32: baseline vs siemgate (memory queue + NDJSON file sink)
#   disk   the same sink behind a disk queue with fsync = "always", on the machine's own disk
#          (under target/, never tmpfs), vs the memory queue
#   h2     h2load (HTTP/2, prior knowledge): baseline vs siemgate, and h2 vs HTTP/1.1 from the
#          same client (h2load --h1), so that the ratio is the protocol's, not wrk's vs h2load's
#   hec    HTTP in -> Splunk HEC out (gzip, batches) into examples/hec_collector.rs, which answers
#          at once, vs the file-sink path
#   paced  examples/paced_load.rs at half the baseline's peak rate (open loop, latency from the
#          scheduled send time): p50/p99 of baseline and siemgate, and siemgate's added p99
#   rss    RSS idle, then under overload (RSS_CONNECTIONS senders into a RSS_QUEUE_MIB queue
#          whose HEC destination is down: 503s) and after it: it must stay flat
#
# Rounds alternate the runs of the selected paths so all share the same machine state; medians
# of each are printed with the ratios. Bounded: ROUNDS x (runs) x DURATION seconds of load, plus
# the paced and rss phases (ROUNDS x 2 x DURATION and 2 x DURATION).
#
#   bash benches/load.sh                                 # all paths, 3 rounds of 10s
#   PATHS="http1 paced" ROUNDS=3 DURATION=8s bash benches/load.sh
#   FSYNC=interval bash benches/load.sh                  # file sink fsync (always|interval|never)
#   SKIP_BUILD=1 bash benches/load.sh                    # use the release binaries as built
#
# FSYNC=never (the default) measures the ingest path plus the sink's writes into the page cache;
# with interval/always the disk flushes share the same two cores and show in the tail latency.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/common.sh
source benches/common.sh

PATHS=${PATHS:-"http1 disk h2 hec paced rss"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
FSYNC=${FSYNC:-never}
H2_STREAMS=${H2_STREAMS:-1}
PACED_RATE=${PACED_RATE:-}              # default: half the baseline's peak (measured if unknown)
PACED_CONNECTIONS=${PACED_CONNECTIONS:-16}
RSS_CONNECTIONS=${RSS_CONNECTIONS:-256}
RSS_QUEUE_MIB=${RSS_QUEUE_MIB:-16}
PORT0=${PORT0:-18091}
secs=${DURATION%s}

has() { [[ " $PATHS " == *" $1 "* ]]; }

install_wrk
has h2 && install_h2load

[[ -n ${SKIP_BUILD:-} ]] || cargo build --release --quiet --bin siemgate --example bare_ingest \
  --example hec_collector --example paced_load

work=$(mktemp -d)
# The disk queue lives on the machine's own disk: under target/ when the temporary directory is
# a tmpfs (memory would flatter fsync).
if [[ "$(stat -f -c %T "$work")" == tmpfs ]]; then
  diskdir=$(mktemp -d -p target load-disk.XXXXXX)
else
  diskdir="$work/disk"
  mkdir -p "$diskdir"
fi
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work" "$diskdir"
}
trap cleanup EXIT

SIG="$(signature)"
write_post_lua "$work/post.lua"
: > "$work/results"

BASE_PORT=$PORT0
# name -> "hooks port"; each siemgate's metrics listener is its port + 100.
declare -A PORT=([memory]=$((PORT0 + 1)) [disk]=$((PORT0 + 2)) [hec]=$((PORT0 + 3)) [rss]=$((PORT0 + 4)))
HEC_PORT=$((PORT0 + 5))
DEAD_PORT=$((PORT0 + 6))   # nothing listens here: the rss gateway's HEC destination is down
declare -A PID=()

# gateway NAME SINK_TOML QUEUE_TOML: writes the config and starts siemgate.
gateway() {
  local name=$1 port=${PORT[$1]}
  cat > "$work/$name.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
plaintext = true
[metrics]
listen = "127.0.0.1:$((port + 100))"
[[sinks]]
id = "out"
$2
[sinks.queue]
$3
$(bench_tail_toml)
TOML
  SIEMGATE_LOG=warn target/release/siemgate serve --config "$work/$name.toml" 2>"$work/$name.log" &
  PID[$name]=$!
  pids+=($!)
}

file_sink() {
  echo "type = \"file\"
path = \"$work/$1.ndjson\"
fsync = \"$FSYNC\"
rotate_bytes = 268435456
keep_files = 1"
}
hec_sink() { # port
  echo "type = \"splunk_hec\"
url = \"http://127.0.0.1:$1\"
token = \"load-test-token\"
gzip = true"
}
BIG_QUEUE='max_events = 1000000
max_bytes = 1073741824'

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

target/release/examples/bare_ingest "127.0.0.1:$BASE_PORT" "$SECRET" 2>/dev/null &
pids+=($!)
wait_port "$BASE_PORT"
if has http1 || has h2 || has hec || has paced || has disk; then
  gateway memory "$(file_sink memory)" "type = \"memory\"
$BIG_QUEUE"
  wait_port "${PORT[memory]}"
fi
if has disk; then
  gateway disk "$(file_sink disk)" "type = \"disk\"
path = \"$diskdir/queue\"
fsync = \"always\"
$BIG_QUEUE"
  wait_port "${PORT[disk]}"
fi
if has hec; then
  target/release/examples/hec_collector "127.0.0.1:$HEC_PORT" 2>"$work/collector.log" &
  pids+=($!)
  wait_port "$HEC_PORT"
  gateway hec "$(hec_sink "$HEC_PORT")" "type = \"memory\"
$BIG_QUEUE"
  wait_port "${PORT[hec]}"
fi
if has rss; then
  gateway rss "$(hec_sink "$DEAD_PORT")" "type = \"memory\"
max_events = 1000000
max_bytes = $((RSS_QUEUE_MIB * 1024 * 1024))"
  wait_port "${PORT[rss]}"
  sleep 1
  echo "rss idle $(rss_kib "${PID[rss]}")" >> "$work/results"
fi

url_of() { # target -> URL
  if [[ $1 == baseline ]]; then echo "http://127.0.0.1:$BASE_PORT/"; else echo "http://127.0.0.1:${PORT[$1]}/hooks/prisma"; fi
}
wrk_run() { # label target [seconds]
  BODY_FILE="$BODY" SIG="$SIG" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${3:-$secs}s" --latency \
    -s "$work/post.lua" "$(url_of "$2")" | grep '^RESULT' | sed "s/^RESULT/$1/"
}
h2_run() { # label target [--h1]
  local out
  out=$(h2load ${3:-} -c "$CONNECTIONS" -m "$H2_STREAMS" -t "$THREADS" -D "$secs" -d "$BODY" \
    -H "content-type: application/json" -H "x-signature: $SIG" "$(url_of "$2")" 2>&1)
  echo "$out" | awk -v label="$1" '
    /^finished in/ {rps = $4}
    /^requests:/ {failed = $10; errored = $12}
    /^status codes:/ {non2xx = $5 + $7 + $9}
    /^time for request:/ {mean = $6; unit = $6}
    END {
      gsub(/,/, "", rps); sub(/[a-z]+$/, "", mean)
      if (unit ~ /us$/) mean = mean / 1000; else if (unit ~ /[0-9]s$/) mean = mean * 1000
      printf "%s rps=%s mean_ms=%.3f errors=%d non2xx=%d\n", label, rps, mean, failed + errored, non2xx
    }'
}

# The runs of the selected paths, each once per round.
runs=()
add() { [[ " ${runs[*]} " == *" $1 "* ]] || runs+=("$1"); }
if has http1 || has paced; then add h1:baseline; add h1:memory; fi
if has disk; then add h1:memory; add h1:disk; fi
if has hec; then add h1:memory; add h1:hec; fi
if has h2; then
  add h1:baseline; add h1:memory
  add h2load-h1:baseline; add h2load-h1:memory; add h2:baseline; add h2:memory
fi

if ((${#runs[@]})); then
  # Warm-up, not counted.
  for run in "${runs[@]}"; do
    [[ $run == h1:* ]] && wrk_run warmup "${run#h1:}" 2 >/dev/null
  done
  for r in $(seq 1 "$ROUNDS"); do
    for run in "${runs[@]}"; do
      case $run in
        h1:*) wrk_run "$run" "${run#h1:}" ;;
        h2:*) h2_run "$run" "${run#h2:}" ;;
        h2load-h1:*) h2_run "$run" "${run#h2load-h1:}" --h1 ;;
      esac | tee -a "$work/results"
    done
  done
fi

if has paced; then
  if [[ -z $PACED_RATE ]]; then
    peak=$(python3 -c 'import statistics,sys
r=[float(l.split("rps=")[1].split()[0]) for l in open(sys.argv[1]) if l.startswith("h1:baseline ")]
print(int(statistics.median(r)) if r else 0)' "$work/results")
    PACED_RATE=$((peak / 2))
  fi
  echo "paced: $PACED_RATE req/s (half the baseline's peak), $PACED_CONNECTIONS connections"
  for r in $(seq 1 "$ROUNDS"); do
    for t in baseline memory; do
      target/release/examples/paced_load "$(url_of $t)" "$PACED_RATE" "$secs" "$PACED_CONNECTIONS" \
        "$BODY" "Content-Type: application/json" "X-Signature: $SIG" | sed "s/^RESULT/paced:$t/" |
        tee -a "$work/results"
    done
  done
fi

if has rss; then
  # Two floods far above capacity into a queue whose destination is down: the queue fills,
  # then every request gets a 503. RSS is sampled every half second.
  for flood in 1 2; do
    peak=0
    (CONNECTIONS=$RSS_CONNECTIONS wrk_run "rss:flood$flood" rss > "$work/flood$flood") &
    wrk_pid=$!
    while kill -0 "$wrk_pid" 2>/dev/null; do
      now=$(rss_kib "${PID[rss]}")
      ((now > peak)) && peak=$now
      sleep 0.5
    done
    wait "$wrk_pid" || true
    cat "$work/flood$flood"
    echo "rss flood$flood $peak $(rss_kib "${PID[rss]}")" >> "$work/results"
  done
  sleep 2
  echo "rss after $(rss_kib "${PID[rss]}")" >> "$work/results"
  curl -s "http://127.0.0.1:$((PORT[rss] + 100))/metrics" |
    awk '/^siemgate_http_requests_total\{source="prisma",code="(200|503)"\}/ {print "  rss gateway " $1 " " $2}'
fi

echo
for name in memory disk hec; do
  [[ -n ${PID[$name]:-} ]] || continue
  m=$(curl -s "http://127.0.0.1:$((PORT[$name] + 100))/metrics")
  acc=$(echo "$m" | awk '/^siemgate_http_requests_total\{source="prisma",code="200"\}/ {print $2}')
  gone=$(echo "$m" | awk '/^siemgate_http_requests_total\{source="prisma",code="499"\}/ {print $2}')
  rec=$(echo "$m" | awk '/^siemgate_events_received_total\{source="prisma"\}/ {print $2}')
  del=$(echo "$m" | awk '/^siemgate_events_delivered_total/ {print $2}')
  # A request whose sender hung up while its events were being queued (wrk stopping mid-round)
  # is counted under 499, not 200; its events are received and delivered all the same.
  echo "  $name: 200 answers ${acc:-?}, 499 (sender gone) ${gone:-?}, events received ${rec:-?}, delivered ${del:-?} (the rest still queued)"
done
[[ -n ${PID[memory]:-} ]] && echo "  memory gateway RSS after the load: $(rss_kib "${PID[memory]}") KiB"

python3 - "$work/results" "$ROUNDS" "$DURATION" "$CONNECTIONS" "$THREADS" "$FSYNC" \
  "$(findmnt -no FSTYPE -T "$diskdir" 2>/dev/null || stat -f -c %T "$diskdir")" "$RSS_CONNECTIONS" "$RSS_QUEUE_MIB" <<'PY'
import statistics, sys
path, rounds, duration, conns, threads, fsync, diskfs, rss_conns, rss_mib = sys.argv[1:]
rows, rss = {}, {}
for line in open(path):
    name, *kv = line.split()
    if name == "rss":
        rss[kv[0]] = [int(x) for x in kv[1:]]
        continue
    rows.setdefault(name, []).append({k: float(v) for k, v in (x.split("=") for x in kv)})
med = {n: {k: statistics.median(x[k] for x in r) for k in r[0]} for n, r in rows.items()}
def line(label, name, base=None, base_label=""):
    m = med.get(name)
    if not m:
        return
    lat = (f"p50 {m['p50_ms']:.3f} ms   p99 {m['p99_ms']:.3f} ms" if "p99_ms" in m
           else f"mean {m['mean_ms']:.3f} ms")
    ratio = f"   {m['rps'] / med[base]['rps']:.2f} x {base_label}" if base in med else ""
    print(f"  {label:28} {m['rps']:>9.0f} req/s   {lat}   errors {m['errors']:.0f}"
          f"   non-2xx {m['non2xx']:.0f}{ratio}")
print(f"\n{rounds} rounds of {duration}, {conns} connections, {threads} load threads, "
      f"file sink fsync={fsync}; medians:")
line("baseline, HTTP/1.1", "h1:baseline")
line("siemgate memory, HTTP/1.1", "h1:memory", "h1:baseline", "baseline")
line(f"siemgate disk always ({diskfs})", "h1:disk", "h1:memory", "memory")
line("siemgate HEC out (gzip)", "h1:hec", "h1:memory", "file sink")
line("baseline, h2load --h1", "h2load-h1:baseline")
line("siemgate memory, h2load --h1", "h2load-h1:memory", "h2load-h1:baseline", "baseline")
line("baseline, h2", "h2:baseline", "h2load-h1:baseline", "baseline HTTP/1.1 (h2load)")
line("siemgate memory, h2", "h2:memory", "h2load-h1:memory", "siemgate HTTP/1.1 (h2load)")
if "h2:memory" in med and "h2:baseline" in med:
    print(f"  siemgate/baseline over h2: {med['h2:memory']['rps'] / med['h2:baseline']['rps']:.2f}")
if "paced:baseline" in med:
    print("paced (open loop, latency from the scheduled send):")
    line("baseline", "paced:baseline")
    line("siemgate", "paced:memory")
    if "paced:memory" in med:
        print(f"  siemgate added p99: {med['paced:memory']['p99_ms'] - med['paced:baseline']['p99_ms']:.3f} ms"
              f"   (client's own send lateness p99: {med['paced:memory']['late_ms_p99']:.3f} ms)")
if rss:
    mib = lambda kib: f"{kib / 1024:.1f} MiB"
    print(f"RSS, HEC destination down, queue {rss_mib} MiB, {rss_conns} senders:")
    print(f"  idle {mib(rss['idle'][0])}; flood 1 peak {mib(rss['flood1'][0])}, end {mib(rss['flood1'][1])}; "
          f"flood 2 peak {mib(rss['flood2'][0])}, end {mib(rss['flood2'][1])}; after {mib(rss['after'][0])}")
PY
