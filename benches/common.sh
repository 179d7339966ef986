# Shared by benches/load.sh and benches/queues.sh (sourced, not run): wrk and h2load installation, the
# signed request wrk sends, and waiting for a listener.

SECRET=load-test-secret
BODY=fixtures/load/prisma-alert-single.json

install_wrk() {
  if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
  fi
}

# The HMAC-SHA256 signature header value of $BODY under $SECRET.
signature() {
  echo "sha256=$(python3 -c "import hmac,hashlib,sys;print(hmac.new(sys.argv[1].encode(),open(sys.argv[2],'rb').read(),hashlib.sha256).hexdigest())" "$SECRET" "$BODY")"
}

# write_post_lua FILE: the wrk script posting $BODY_FILE signed with $SIG, printing one RESULT line.
write_post_lua() {
  cat > "$1" <<'LUA'
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Signature"] = os.getenv("SIG")
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT rps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, errors, summary.errors.status))
end
LUA
}

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 never opened" >&2
  return 1
}

install_h2load() {
  if ! command -v h2load >/dev/null; then
    echo "installing h2load (nghttp2-client)" >&2
    (apt-get update -qq && apt-get install -y -qq nghttp2-client) >/dev/null
  fi
}

# The end of every bench gateway's config: the sink's batch table and the HMAC-signed source the
# load posts to. The body is a Prisma Cloud alert, so the source uses the Prisma decoder (the
# alert's own `alertId` is the event id, as for a user's Prisma source).
bench_tail_toml() {
  cat <<TOML
[sinks.batch]
max_events = 2000
max_bytes = 4194304
linger = "5ms"
[[sources]]
id = "prisma"
vendor = "prisma_cloud"
sinks = ["out"]
[sources.auth]
scheme = "hmac_sha256"
header = "X-Signature"
prefix = "sha256="
secret = "$SECRET"
TOML
}
