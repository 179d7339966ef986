#!/usr/bin/env bash
# Queue benchmark: the same load (wrk, one ~740-byte HMAC-signed Prisma alert per request) on
# four siemgate processes that differ only in the file sink's queue: memory, disk with
# fsync=interval, disk with fsync=always (group commit), and kafka against librdkafka's mock
# cluster (examples/mock_kafka.rs, 3 brokers, a 3-partition topic; each request answers 200
# only after the brokers' delivery reports). Rounds alternate between them so they share the
# same machine state; medians of requests/s and p50/p99 are printed with each variant's ratio
# to memory. Bounded: ROUNDS x 4 x DURATION seconds of load.
#
# The mock cluster keeps everything in memory, in one process on the same cores as siemgate and
# wrk, without replication to other machines or disks: its figure shows what the Kafka queue's
# request path costs, and is NO reference for a real Kafka cluster's throughput or latency.
# KAFKA=0 leaves the kafka variant out.
#
#   bash benches/queues.sh                          # 3 rounds of 10s, wrk -t2 -c64
#   ROUNDS=5 DURATION=15s CONNECTIONS=64 bash benches/queues.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/common.sh
source benches/common.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
PORT0=${PORT0:-18191}
KAFKA=${KAFKA:-1}

install_wrk

cargo build --release --quiet --bin siemgate
if [ "$KAFKA" = 1 ]; then
  cargo build --release --quiet --example mock_kafka
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

SIG="$(signature)"

variants=(memory disk-interval disk-always)
if [ "$KAFKA" = 1 ]; then
  variants+=(kafka-mock)
  target/release/examples/mock_kafka 3 siemgate.out:3 >"$work/mock.out" 2>"$work/mock.log" &
  pids+=($!)
  for _ in $(seq 1 100); do
    [ -s "$work/mock.out" ] && break
    sleep 0.1
  done
  BROKERS=$(head -n1 "$work/mock.out")
  [ -n "$BROKERS" ] || { echo "the mock cluster printed no bootstrap servers" >&2; exit 1; }
  echo "mock Kafka cluster (not a performance reference): $BROKERS"
fi
port_of() { # index -> hooks port (metrics is +100)
  echo $((PORT0 + $1))
}

i=0
for v in "${variants[@]}"; do
  port=$(port_of $i)
  case "$v" in
    memory) queue='type = "memory"' ;;
    disk-interval) queue="type = \"disk\"
path = \"$work/q-$v\"
fsync = \"interval\"
fsync_interval = \"100ms\"" ;;
    disk-always) queue="type = \"disk\"
path = \"$work/q-$v\"
fsync = \"always\"" ;;
    kafka-mock) queue="type = \"kafka\"
brokers = [$(echo "$BROKERS" | sed 's/[^,]*/"&"/g')]
produce_timeout = \"10s\"" ;;
  esac
  cat > "$work/$v.toml" <<TOML
[server]
listen = "127.0.0.1:$port"
plaintext = true
[metrics]
listen = "127.0.0.1:$((port + 100))"
[[sinks]]
id = "out"
type = "file"
path = "$work/out-$v.ndjson"
fsync = "never"
rotate_bytes = 268435456
keep_files = 1
[sinks.queue]
$queue
max_events = 1000000
max_bytes = 1073741824
$(bench_tail_toml)
TOML
  SIEMGATE_LOG=warn target/release/siemgate serve --config "$work/$v.toml" 2>"$work/$v.log" &
  pids+=($!)
  i=$((i + 1))
done

write_post_lua "$work/post.lua"

for i in "${!variants[@]}"; do wait_port "$(port_of "$i")"; done

run() { # name port
  BODY_FILE="$BODY" SIG="$SIG" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency \
    -s "$work/post.lua" "http://127.0.0.1:$2/hooks/prisma" | grep '^RESULT' | sed "s/^RESULT/$1/"
}

for i in "${!variants[@]}"; do DURATION=2s run warmup "$(port_of "$i")" >/dev/null; done
: > "$work/results"
for r in $(seq 1 "$ROUNDS"); do
  i=0
  for v in "${variants[@]}"; do
    run "$v" "$(port_of $i)" | tee -a "$work/results"
    i=$((i + 1))
  done
done

echo
i=0
for v in "${variants[@]}"; do
  m=$(curl -s "http://127.0.0.1:$(( $(port_of $i) + 100 ))/metrics")
  acc=$(echo "$m" | awk '/^siemgate_http_requests_total\{source="prisma",code="200"\}/ {print $2}')
  del=$(echo "$m" | awk '/^siemgate_events_delivered_total/ {print $2}')
  echo "  $v: accepted requests ${acc:-?}, events delivered ${del:-?}"
  i=$((i + 1))
done

python3 - "$work/results" "$ROUNDS" "$DURATION" "$CONNECTIONS" "$THREADS" <<'PY'
import statistics, sys
path, rounds, duration, conns, threads = sys.argv[1:]
rows = {}
for line in open(path):
    name, *kv = line.split()
    rows.setdefault(name, []).append({k: float(v) for k, v in (x.split("=") for x in kv)})
print(f"\nwrk -t{threads} -c{conns} -d{duration}, {rounds} rounds, file sink; medians:")
med = {}
for name in ("memory", "disk-interval", "disk-always", "kafka-mock"):
    r = rows.get(name, [])
    if not r:
        continue
    med[name] = m = {k: statistics.median(x[k] for x in r) for k in r[0]}
    ratio = f"   {m['rps'] / med['memory']['rps']:.2f} x memory" if "memory" in med else ""
    print(f"  {name:13} {m['rps']:>9.0f} req/s   p50 {m['p50_ms']:.3f} ms   p99 {m['p99_ms']:.3f} ms   "
          f"errors {m['errors']:.0f}   non-2xx {m['non2xx']:.0f}{ratio}")
if "kafka-mock" in med:
    print("  (kafka-mock: librdkafka's in-memory mock cluster on the same cores; not a reference for a real Kafka)")
PY
