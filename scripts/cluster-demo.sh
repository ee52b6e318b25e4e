#!/usr/bin/env bash
# Starts a 3-master Redis Cluster and two presenced nodes on loopback, sets
# a user's presence through node A and reads it back through node B, then
# stops everything it started (by pid) and removes its temp dir.
#
#   scripts/cluster-demo.sh                 # builds target/debug/presenced if needed
#   PRESENCED_BIN=/path/to/presenced REDIS_PORTS="7101 7102 7103" scripts/cluster-demo.sh
#
# Needs redis-server, redis-cli (Debian: apt-get install redis-server) and
# curl. Each Redis port P also uses P+10000 (the cluster bus).
set -euo pipefail

cd "$(dirname "$0")/.."
ports=(${REDIS_PORTS:-7101 7102 7103})
bin=${PRESENCED_BIN:-}
if [ -z "$bin" ]; then
  cargo build -q --bin presenced
  bin=target/debug/presenced
fi
for tool in redis-server redis-cli curl; do
  command -v "$tool" >/dev/null || { echo "cluster-demo: $tool is missing (apt-get install redis-server curl)" >&2; exit 1; }
done

dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# wait_for SECONDS WHAT COMMAND...: retries COMMAND until it succeeds.
wait_for() {
  local seconds=$1 what=$2; shift 2
  for _ in $(seq $((seconds * 10))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "cluster-demo: $what not within ${seconds}s" >&2
  exit 1
}

echo "== Redis Cluster: 3 masters on ports ${ports[*]}"
seeds=()
for p in "${ports[@]}"; do
  mkdir -p "$dir/redis-$p"
  redis-server --port "$p" --bind 127.0.0.1 --dir "$dir/redis-$p" --save "" \
    --appendonly yes --appendfsync always --cluster-enabled yes \
    --cluster-config-file nodes.conf --cluster-node-timeout 3000 \
    --logfile redis.log --daemonize no >/dev/null 2>&1 &
  pids+=($!)
  wait_for 10 "redis-server on port $p" redis-cli -p "$p" ping
  seeds+=("127.0.0.1:$p")
done
redis-cli --cluster create "${seeds[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
for p in "${ports[@]}"; do
  wait_for 20 "cluster_state:ok on port $p" sh -c "redis-cli -p $p cluster info | grep -q cluster_state:ok"
done

store="redis-cluster://$(IFS=,; echo "${seeds[*]}")"
mkdir -p "$dir/data"
# start_node NAME: starts presenced on a free port, sets URL_<NAME>.
start_node() {
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$dir/data" --store "$store" \
    >"$dir/$1.out" 2>"$dir/$1.err" &
  pids+=($!)
  wait_for 30 "presenced node $1" grep -q "presenced listening on" "$dir/$1.out"
  local url
  url=$(sed -n 's/^presenced listening on //p' "$dir/$1.out" | head -1)
  eval "URL_$1=\$url"
}
start_node A
start_node B
echo "== presenced node A: $URL_A"
echo "== presenced node B: $URL_B"

tenant=$(cat /proc/sys/kernel/random/uuid)
user=$(cat /proc/sys/kernel/random/uuid)
token=$("$bin" token --data-dir "$dir/data" --tenant "$tenant" --app demo-app \
  --roles "Presence.ReadWrite.All Presence.Read.All")

echo "== setPresence Busy/InACall for $user through node A"
curl -fsS -X POST "$URL_A/v1.0/users/$user/presence/setPresence" \
  -H "Authorization: Bearer $token" -H "Content-Type: application/json" \
  -d '{"sessionId":"demo-app","availability":"Busy","activity":"InACall","expirationDuration":"PT1H"}'
echo "== GET presence through node B"
read_back=$(curl -fsS "$URL_B/v1.0/users/$user/presence" -H "Authorization: Bearer $token")
echo "$read_back"
case "$read_back" in
  *'"availability":"Busy"'*'"activity":"InACall"'*) echo "OK: written on node A, read on node B" ;;
  *) echo "cluster-demo: node B did not read node A's write" >&2; exit 1 ;;
esac
