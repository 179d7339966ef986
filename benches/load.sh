#!/usr/bin/env bash
# Load test: drives the release binary with wrk on loopback, one ~740-byte Prisma alert per
# request, HMAC-signed, and measures a bare hyper+HMAC baseline (examples/bare_ingest.rs) in the
# same run. Rounds alternate baseline and siemgate; medians of requests/s and p50/p99 latency are
# printed with the siemgate/baseline ratio. Bounded: ROUNDS x 2 x DURATION seconds of load.
#
#   bash benches/load.sh                       # defaults: 3 rounds of 10s, wrk -t2 -c32
#   ROUNDS=5 DURATION=15s CONNECTIONS=64 bash benches/load.sh
#   FSYNC=interval bash benches/load.sh       # file sink fsync policy (always|interval|never)
#
# The default, FSYNC=never, measures the ingest path (verify, decode, normalize, enqueue) plus
# the sink's writes into the page cache; with interval/always the disk flushes share the same
# two cores and show up in the tail latency.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/common.sh
source benches/common.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
FSYNC=${FSYNC:-never}
BASE_PORT=${BASE_PORT:-18091}
GW_PORT=${GW_PORT:-18092}
MET_PORT=${MET_PORT:-18093}

install_wrk

cargo build --release --quiet --bin siemgate --example bare_ingest

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

SIG="$(signature)"

cat > "$work/siemgate.toml" <<TOML
[server]
listen = "127.0.0.1:$GW_PORT"
plaintext = true
[metrics]
listen = "127.0.0.1:$MET_PORT"
[[sinks]]
id = "out"
type = "file"
path = "$work/out.ndjson"
fsync = "$FSYNC"
rotate_bytes = 268435456
keep_files = 1
[sinks.queue]
max_events = 1000000
max_bytes = 1073741824
[sinks.batch]
max_events = 2000
max_bytes = 4194304
linger = "5ms"
[[sources]]
id = "prisma"
sinks = ["out"]
[sources.auth]
scheme = "hmac_sha256"
header = "X-Signature"
prefix = "sha256="
secret = "$SECRET"
TOML

write_post_lua "$work/post.lua"


target/release/examples/bare_ingest "127.0.0.1:$BASE_PORT" "$SECRET" 2>/dev/null &
pids+=($!)
SIEMGATE_LOG=warn target/release/siemgate serve --config "$work/siemgate.toml" 2>"$work/siemgate.log" &
pids+=($!)
wait_port "$BASE_PORT"
wait_port "$GW_PORT"

run() { # name url
  BODY_FILE="$BODY" SIG="$SIG" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
    -s "$work/post.lua" "$2" | grep '^RESULT' | sed "s/^RESULT/$1/"
}

# Warm-up, not counted.
DURATION=2s run warmup "http://127.0.0.1:$BASE_PORT/" >/dev/null
DURATION=2s run warmup "http://127.0.0.1:$GW_PORT/hooks/prisma" >/dev/null

: > "$work/results"
for r in $(seq 1 "$ROUNDS"); do
  run baseline "http://127.0.0.1:$BASE_PORT/" | tee -a "$work/results"
  run siemgate "http://127.0.0.1:$GW_PORT/hooks/prisma" | tee -a "$work/results"
done

delivered=$(curl -s "http://127.0.0.1:$MET_PORT/metrics" | awk '/^siemgate_events_delivered_total/ {print $2}')
accepted=$(curl -s "http://127.0.0.1:$MET_PORT/metrics" | awk '/^siemgate_http_requests_total\{source="prisma",code="200"\}/ {print $2}')

python3 - "$work/results" "$ROUNDS" "$DURATION" "$CONNECTIONS" "$THREADS" "$FSYNC" <<'PY'
import statistics, sys
path, rounds, duration, conns, threads, fsync = sys.argv[1:]
rows = {}
for line in open(path):
    name, *kv = line.split()
    d = dict(x.split("=") for x in kv)
    rows.setdefault(name, []).append({k: float(v) for k, v in d.items()})
print(f"\nwrk -t{threads} -c{conns} -d{duration}, {rounds} rounds, file sink fsync={fsync}; medians:")
med = {}
for name in ("baseline", "siemgate"):
    r = rows.get(name, [])
    if not r:
        continue
    med[name] = {k: statistics.median(x[k] for x in r) for k in r[0]}
    m = med[name]
    print(f"  {name:9} {m['rps']:>9.0f} req/s   p50 {m['p50_ms']:.3f} ms   p99 {m['p99_ms']:.3f} ms   "
          f"errors {m['errors']:.0f}   non-2xx {m['non2xx']:.0f}")
if len(med) == 2:
    print(f"  siemgate/baseline requests/s ratio: {med['siemgate']['rps'] / med['baseline']['rps']:.2f}")
PY
echo "  siemgate accepted requests: ${accepted:-?}, events delivered to the file: ${delivered:-?}"
