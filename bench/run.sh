#!/usr/bin/env bash
# Side-by-side load benchmark of the gateway and the django-polaris peer, in one sitting.
#   bench/run.sh [scenario ...]          default: toml sep10-challenge sep10-token
# Scenarios are anchorbench's (../shared/bench/README.md). Environment:
#   RUNS=3 DURATION=10 CONCURRENCY=16 WARMUP=2 WORKERS=2   run shape
#   DB=sqlite|postgresql                                  the gateway's database
#   SHARED=../shared                                      where anchorbench and the peer live
#   PEER=1                                                also measure django-polaris
#   CLIENTS="anchorbench leanload"                        load generators (both run every
#                                                         scenario; see leanload's docstring)
#   FUNDING_METHODS=one|config                            sep31-*: the gateway offers only the
#                                                         first funding method of each asset, as
#                                                         anchorbench's POST sends none (config:
#                                                         as config/testnet.toml has them)
# Results: one JSON line per run in bench/results/<stamp>.jsonl and a median table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
SHARED=${SHARED:-$root/../shared}
RUNS=${RUNS:-3}; DURATION=${DURATION:-10}; CONCURRENCY=${CONCURRENCY:-16}
WARMUP=${WARMUP:-2}; WORKERS=${WORKERS:-2}; DB=${DB:-sqlite}; PEER=${PEER:-1}
CLIENTS=${CLIENTS:-anchorbench leanload}; FUNDING_METHODS=${FUNDING_METHODS:-one}
scenarios=("$@"); [ ${#scenarios[@]} -gt 0 ] || scenarios=(toml sep10-challenge sep10-token)
tool=$SHARED/bench/anchorbench.py
peer_dir=${PEER_DIR:-/tmp/polaris-peer}
py=$root/.venv/bin/python
mkdir -p bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=bench/results/$stamp.jsonl
log=bench/results/$stamp.log

scripts/install >/dev/null
changes=$(git status --porcelain -- gateway config 2>/dev/null | head -1)
echo "measured: $(git rev-parse --short HEAD 2>/dev/null)${changes:+ with uncommitted changes}" >>"$log"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ "$PEER" = 1 ] && [ -x "$peer_dir/stop.sh" ] && "$peer_dir/stop.sh" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# The peer and its Horizon stand-in (404 for every account) on 8001/8002; the gateway uses
# the same stand-in so both verify new accounts by their master key.
if [ "$PEER" = 1 ]; then
  [ -x "$peer_dir/start.sh" ] || bash "$SHARED/bench/polaris/setup.sh" "$peer_dir" >>"$log" 2>&1
  "$peer_dir/start.sh" >>"$log" 2>&1
  peer_pid=$(cat "$peer_dir/run/gunicorn.pid")
else
  "$py" "$SHARED/bench/polaris/horizon_stub.py" --port 8002 >>"$log" 2>&1 &
  pids+=($!)
fi

case "$DB" in
  sqlite) export GATEWAY_DATABASE_URL="sqlite+aiosqlite:///$root/bench/results/bench-$stamp.db" ;;
  postgresql)
    dbname=$(echo "gateway_bench_$stamp" | tr 'A-Z' 'a-z')
    psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $dbname" >/dev/null
    export GATEWAY_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:5432/$dbname" ;;
  *) echo "DB must be sqlite or postgresql" >&2; exit 2 ;;
esac
export GATEWAY_CONFIG=config/testnet.toml
export GATEWAY_HORIZON_URL=http://127.0.0.1:8002
export GATEWAY_SIGNING_SECRET=${GATEWAY_SIGNING_SECRET:-$("$py" -c 'from stellar_sdk import Keypair; print(Keypair.random().secret)')}
export GATEWAY_JWT_SECRET=${GATEWAY_JWT_SECRET:-$("$py" -c 'import secrets; print(secrets.token_urlsafe(48))')}
if [[ " ${scenarios[*]} " == *" sep31-"* ]] && [ "$FUNDING_METHODS" = one ]; then
  # A POST without funding_method is valid only when the asset has a single method.
  export GATEWAY_SEP31_ASSETS=$("$py" -c 'import json, tomllib
assets = tomllib.load(open("config/testnet.toml", "rb"))["sep31"]["assets"]
print(json.dumps([{**a, "funding_methods": a["funding_methods"][:1]} for a in assets]))')
fi
.venv/bin/gateway db upgrade >>"$log" 2>&1
.venv/bin/gateway serve --port 8000 --workers "$WORKERS" --log-level warning >>"$log" 2>&1 &
gw_pid=$!
pids+=("$gw_pid")
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null http://localhost:8000/health 2>/dev/null && break
  sleep 0.1
done

run() {  # client target-name base-url watch-pid scenario
  local line
  if [ "$1" = leanload ]; then
    line=$("$py" bench/leanload.py "$3" "$5" -d "$DURATION" -c "$CONCURRENCY" \
           --warmup "$WARMUP" --watch-pid "$4" 2>>"$log") || true
  else
    line=$("$py" "$tool" "$3" "$5" -d "$DURATION" -c "$CONCURRENCY" --warmup "$WARMUP" \
           --watch-pid "$4" -q 2>>"$log") || true
  fi
  [ -n "$line" ] || line='{"rps": 0, "errors": -1}'
  echo "{\"target\": \"$2\", \"scenario\": \"$5 [$1]\", \"db\": \"$DB\", \"result\": $line}" >> "$out"
}

for scenario in "${scenarios[@]}"; do
  for client in $CLIENTS; do
    for i in $(seq 1 "$RUNS"); do
      echo "[$scenario $client run $i/$RUNS]" >&2
      [ "$PEER" = 1 ] && run "$client" polaris http://127.0.0.1:8001 "$peer_pid" "$scenario"
      run "$client" gateway http://localhost:8000 "$gw_pid" "$scenario"
    done
  done
done

if command -v wrk >/dev/null && [[ " ${scenarios[*]} " == *" toml "* ]]; then
  for target in "gateway http://localhost:8000" ${PEER:+"polaris http://127.0.0.1:8001"}; do
    set -- $target
    [ "$1" = polaris ] && [ "$PEER" != 1 ] && continue
    wrk -t2 -c"$CONCURRENCY" -d"${DURATION}s" --latency "$2/.well-known/stellar.toml" \
      | "$py" bench/summarize.py --wrk "$1" >> "$out"
  done
fi
"$py" bench/summarize.py --cpu "$out"
cleanup; pids=()  # stop the servers before their database goes
[ "$DB" = postgresql ] && psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE $dbname WITH (FORCE)" >/dev/null 2>&1 || true
echo "raw results: $out" >&2
