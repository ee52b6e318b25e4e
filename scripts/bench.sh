#!/usr/bin/env bash
# The benchmarks, as BENCHMARKS.md reports them (issue #14). Prints figures;
# asserts no timing (the test script does not run this). Sections:
#
#  http     presenced against a bare axum baseline (examples/baseline.rs),
#           both release builds on 127.0.0.1, the same wrk load alternately
#           (baseline, presenced, baseline, presenced, …), one line per
#           scenario: the median requests/s of each and their ratio, and
#           the median CPU time each server spent per request (user +
#           system, from /proc) and that ratio: within one run it moves
#           far less than requests/s, but a busy host raises it too, so
#           compare it only within a run.
#           get: GET /v1.0/users/{id}/presence over users with a session;
#           set: setPresence over the same users, every write a change,
#           answered by presenced only once fsync'd.
#  bulk     getPresencesByUserId with 650 loaded ids: latency percentiles,
#           one connection (sequential), then BENCH_BULK_CONNS; each row
#           against the baseline's getPresencesByUserId (the same ids
#           parsed, the same answer serialized, no auth and no store) and
#           presenced alternately, BENCH_ROUNDS rounds, the median run of
#           each (by p99): the baseline's tail is the host's and the
#           network's, the floor under presenced's.
#  batch    setPresence sent one request at a time against the same writes
#           in Graph JSON batches of BENCH_BATCH (benches/wrk/batch.lua),
#           alternately, same server, same users, same run: HTTP requests/s
#           and setPresence calls/s of each (median of the rounds), and the
#           ratio of setPresence calls/s (batched / single). Every batched
#           answer must be 200 (a run with any other is refused).
#  instructions
#           user-space instructions per request, counted by valgrind's
#           callgrind (all threads), baseline against presenced, get and set:
#           for each, a fresh server under callgrind (presenced loaded with
#           BENCH_INSTR_USERS users, one session each, not counted),
#           BENCH_WARMUP s of the scenario, then BENCH_INSTR_SECS s counted
#           with wrk -t1 and BENCH_INSTR_CONNS connections. A count hardly
#           moves with the host's load, so it compares across runs and shows
#           changes too small for a noisy A/B of requests/s. It is not that
#           ratio: the kernel's work (TCP, fsync) is left out, and callgrind
#           runs one thread at a time, so the writer's batches are smaller
#           than at full speed and set's count is higher than under load.
#  memory   per configuration USERSxSESSIONS: a fresh presenced, RSS before
#           and after loading the sessions through setPresence over HTTP
#           (wrk, 64 connections, one app token per session), then the
#           restart: SIGTERM, start on the same data dir, time until
#           /_presenced/readyz answers 200 and a loaded user reads Busy.
#  redis    presenced on Redis (issue #15), side by side with
#           redis-benchmark against the same redis-server in the same run:
#           a fresh redis-server on a free loopback port in a temp dir,
#           durable as README "Running several nodes" documents
#           (appendonly yes, appendfsync always, no RDB snapshots);
#           redis-benchmark SET, GET and EVALSHA of a small script like
#           presenced's write (HGET, HSET, RPUSH on one hashed key), with
#           BENCH_CONNS clients; then wrk get and set (as in http) against
#           ONE presenced node (--store redis://…), then against TWO nodes
#           on the same Redis (two wrk processes at once, half the
#           connections each, figures summed). One line per scenario:
#           requests/s (median of the rounds) and the p99 of the median run.
#  cargo    the in-process benches: throughput, notify (notification
#           figures; reads PRESENCED_BENCH_PARTS, PRESENCED_BENCH_FADE_USERS,
#           PRESENCED_BENCH_DRAIN_SECS, see benches/notify.rs) and the
#           criterion micro benches (effective, codec, store batch).
#
# Environment (defaults in brackets):
#  BENCH_SECTIONS     sections to run ["http bulk batch instructions memory redis cargo"]
#  BENCH_PROFILE      cargo profile of the binaries [release]; "debug" only
#                     to smoke-test this script (figures mean nothing then)
#  BENCH_BATCH        setPresence requests per batch [20]
#  BENCH_DURATION     seconds per measured wrk run [10]
#  BENCH_WARMUP       seconds of unmeasured load per server and scenario [2]
#  BENCH_ROUNDS       measured runs per server and scenario [3]
#  BENCH_CONNS        wrk connections for http [64]
#  BENCH_USERS        users loaded for http and bulk [10000]
#  BENCH_SESSIONS     sessions loaded per user for http, bulk and batch [1]:
#                     with more, each user's stored row is larger (the set
#                     scenarios still write session 1); answers keep one
#                     shape, as a user's presence is one aggregate
#  BENCH_BULK_CONNS   extra concurrency levels for bulk [16]
#  BENCH_INSTR_SECS   seconds counted per server and scenario [5]
#  BENCH_INSTR_USERS  users loaded for instructions [1000]
#  BENCH_INSTR_CONNS  wrk connections for instructions [8]
#  BENCH_MEM_CONFIGS  USERSxSESSIONS list ["100000x1 10000x10"]; the issue's
#                     figures: "100000x10 1000000x1" (loading runs at about
#                     17 000-22 000 writes/s on 2 cores: about a minute each)
#  BENCH_CARGO        cargo benches to run ["throughput notify micro"]
#  BENCH_REDIS_REQS   requests per redis-benchmark test [200000]
#  BENCH_KEEP         1 keeps the temp dir (data dirs, server logs) [0]
#  RUST_LOG           passed to presenced [unset: presenced=info, as deployed]
# Quick look: BENCH_DURATION=3 BENCH_WARMUP=1 BENCH_ROUNDS=1
#   BENCH_MEM_CONFIGS=10000x1 BENCH_CARGO= scripts/bench.sh
set -euo pipefail
shopt -s inherit_errexit
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

sections="${BENCH_SECTIONS:-http bulk batch instructions memory redis cargo}"
duration="${BENCH_DURATION:-10}"
warmup="${BENCH_WARMUP:-2}"
rounds="${BENCH_ROUNDS:-3}"
conns="${BENCH_CONNS:-64}"
users="${BENCH_USERS:-10000}"
sessions_per_user="${BENCH_SESSIONS:-1}"
bulk_conns="${BENCH_BULK_CONNS:-16}"
mem_configs="${BENCH_MEM_CONFIGS:-100000x1 10000x10}"
cargo_benches="${BENCH_CARGO-throughput notify micro}"
profile="${BENCH_PROFILE:-release}"
per_batch="${BENCH_BATCH:-20}"
redis_reqs="${BENCH_REDIS_REQS:-200000}"
instr_secs="${BENCH_INSTR_SECS:-5}"
instr_users="${BENCH_INSTR_USERS:-1000}"
instr_conns="${BENCH_INSTR_CONNS:-8}"

tenant=8f2b7e1c-0d5a-4a3b-9a57-2b5c3f2e9d10
lua="$repo/benches/wrk/presence.lua"
batch_lua="$repo/benches/wrk/batch.lua"
case "$profile" in
  release) profile_flags=(--release) ;;
  debug) profile_flags=() ;;
  *) echo "bench.sh: BENCH_PROFILE must be release or debug" >&2; exit 2 ;;
esac
if [[ ! "$sessions_per_user" =~ ^[1-9][0-9]*$ ]]; then
  echo "bench.sh: BENCH_SESSIONS must be a whole number of at least 1" >&2; exit 2
fi
for knob in BENCH_INSTR_SECS BENCH_INSTR_USERS BENCH_INSTR_CONNS; do
  if [[ -n "${!knob:-}" && ! "${!knob}" =~ ^[1-9][0-9]*$ ]]; then
    echo "bench.sh: $knob must be a whole number of at least 1" >&2; exit 2
  fi
done
bin="$repo/target/$profile/presenced"
baseline_bin="$repo/target/$profile/examples/baseline"

has() { [[ " $sections " == *" $1 "* ]]; }
say() { echo "bench.sh: $*" >&2; }
now_ns() { date +%s%N; }
ms_since() { echo $(( ($(now_ns) - $1) / 1000000 )); }
# The id of user i in group salt (benches/wrk/presence.lua spells it the same).
user_id() { printf '%08x-0000-4000-8000-%012x' "$1" "$2"; }
# The app id of session j (the sessionId setPresence requires).
app_id() { printf '22553876-f5ab-4529-bffb-%012x' "$1"; }

if has http || has bulk || has batch || has instructions || has memory || has redis; then
  command -v wrk >/dev/null || { say "needs wrk (apt-get install -y wrk)"; exit 1; }
  command -v curl >/dev/null || { say "needs curl"; exit 1; }
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/presenced-bench.XXXXXX")"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
    say "kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD…: runs CMD in the background (output in $work/NAME.*),
# waits for its "… listening on URL" line; sets $started_pid, $started_url.
start() {
  local name="$1"; shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  started_pid=$!
  pids+=("$started_pid")
  local line deadline=$((SECONDS + 600))
  while ((SECONDS < deadline)); do
    line="$(grep -m1 ' listening on ' "$work/$name.out" 2>/dev/null || true)"
    if [[ -n "$line" ]]; then
      started_url="${line##* }"
      return 0
    fi
    kill -0 "$started_pid" 2>/dev/null || break
    sleep 0.01
  done
  say "$name did not start:"; cat "$work/$name.err" >&2
  exit 1
}

# start_presenced NAME DATA_DIR: as deployed, with its default log filter
# (presenced=info) unless RUST_LOG says otherwise; logs go to a file.
# Extra arguments go to serve (e.g. --store URL).
start_presenced() {
  local name="$1" data="$2"; shift 2
  start "$name" env -u PRESENCED_JWT_SECRET "$bin" serve --listen 127.0.0.1:0 --data-dir "$data" "$@"
}

# forget PID: a reaped child, which cleanup must not signal (its pid may
# have been reused).
forget() {
  local kept=() pid
  for pid in "${pids[@]}"; do
    [[ "$pid" == "$1" ]] || kept+=("$pid")
  done
  pids=("${kept[@]}")
}

stop() { # PID: SIGTERM and wait for the exit
  kill -TERM "$1"
  wait "$1" || true
  forget "$1"
}

app_token() { # DATA_DIR SESSION_INDEX
  env -u PRESENCED_JWT_SECRET "$bin" token --data-dir "$1" --tenant "$tenant" \
    --app "$(app_id "$2")" --roles "Presence.ReadWrite.All" --ttl PT4H
}

# session_tokens DATA_DIR N: an app token for each of sessions 0 … N-1 in
# $tokens and their app ids in $apps, space-separated, in session order.
session_tokens() {
  tokens="" apps=""
  for ((j = 0; j < $2; j++)); do
    tokens+="$(app_token "$1" "$j") " apps+="$(app_id "$j") "
  done
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# wrk_run URL CONNS SECS [VAR=VALUE…]: one wrk run of presence.lua (of
# $WRK_SCRIPT when set); prints its wrk-result line (key=value …) and
# refuses a run with errors.
wrk_run() {
  local url="$1" c="$2" secs="$3"; shift 3
  local out
  out="$(env "$@" wrk -t1 -c"$c" -d"${secs}s" --timeout 30s -s "${WRK_SCRIPT:-$lua}" "$url")"
  local result
  result="$(grep '^wrk-result ' <<<"$out" || true)"
  if [[ -z "$result" ]]; then
    say "wrk printed no result:"; echo "$out" >&2; exit 1
  fi
  local inner
  inner="$(field inner_errors "$result")" # batch.lua only
  if [[ "$(field status_errors "$result")" != 0 || "$(field socket_errors "$result")" != 0 \
    || "${inner:-0}" != 0 ]]; then
    say "wrk run against $url ($*) had errors: $result"; exit 1
  fi
  echo "$result"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }
# cpu_ticks PID: the process's user + system CPU time so far, in clock
# ticks (/proc/PID/stat fields 14 and 15, all threads).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# per_request TICKS_BEFORE TICKS_AFTER WRK_RESULT: CPU microseconds per
# request answered in that run. Within one run it moves far less than
# requests/s; across runs a busy host raises it too.
per_request() {
  awk -v t=$(($2 - $1)) -v hz="$(getconf CLK_TCK)" -v n="$(field requests "$3")" \
    'BEGIN {printf "%.1f", t * 1000000 / hz / n}'
}
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# load URL SALT USERS TOKENS APPS: one session per token for every user,
# through setPresence with 64 connections; sets $load_secs. wrk runs until
# its -d even after the script's thread stops, so the script marks the last
# answer in a file and wrk is interrupted (it then reports as usual).
load() {
  local url="$1" salt="$2" n="$3" tokens="$4" apps="$5"
  local sessions=$(( $(wc -w <<<"$tokens") * n ))
  local marker="$work/load-done" out="$work/load.out"
  rm -f "$marker"
  local started wrk_pid
  started="$(now_ns)"
  WRK_MODE=load WRK_SALT="$salt" WRK_USERS="$n" WRK_TOKENS="$tokens" WRK_APPS="$apps" \
    WRK_DONE_FILE="$marker" wrk -t1 -c64 -d"$(( sessions / 200 + 60 ))s" --timeout 30s \
    -s "$lua" "$url" >"$out" &
  wrk_pid=$!
  pids+=("$wrk_pid")
  while [[ ! -e "$marker" ]] && kill -0 "$wrk_pid" 2>/dev/null; do
    sleep 0.02
  done
  local ms
  ms="$(ms_since "$started")"
  kill -INT "$wrk_pid" 2>/dev/null || true
  wait "$wrk_pid" || true
  forget "$wrk_pid"
  local result
  result="$(grep '^wrk-result ' "$out" || true)"
  if [[ ! -e "$marker" || "$(field status_errors "$result")" != 0 || "$(field socket_errors "$result")" != 0 ]]; then
    say "loading $sessions sessions failed:"; cat "$out" >&2; exit 1
  fi
  load_secs="$(awk -v ms="$ms" 'BEGIN {printf "%.2f", ms / 1000}')"
}

# reads URL TOKEN USER: the GET of a loaded user answers 200 Busy.
reads_busy() {
  curl -fs "$1/v1.0/users/$3/presence" -H "Authorization: Bearer $2" 2>/dev/null \
    | grep -q '"availability":"Busy"'
}

cores="$(nproc)"
say "$(date -u +%FT%TZ), $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml || echo '+dirty'), $cores cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

if has instructions; then
  for tool in valgrind callgrind_control callgrind_annotate; do
    command -v "$tool" >/dev/null || { say "needs $tool (apt-get install -y valgrind)"; exit 1; }
  done
fi

if has redis; then
  for tool in redis-server redis-cli redis-benchmark python3; do
    command -v "$tool" >/dev/null || { say "needs $tool (apt-get install -y redis-server python3)"; exit 1; }
  done
fi

if has http || has bulk || has batch || has instructions || has memory || has redis; then
  targets=(--bin presenced)
  if has http || has bulk || has instructions; then
    targets+=(--example baseline)
  fi
  say "cargo build ${profile_flags[*]} ${targets[*]}"
  cargo build "${profile_flags[@]}" "${targets[@]}"
fi

if has http || has bulk; then
  start baseline "$baseline_bin" 127.0.0.1:0
  base_pid="$started_pid" base_url="$started_url"
fi

if has http || has bulk || has batch; then
  data="$work/http-data"
  start_presenced presenced "$data"
  pres_pid="$started_pid" pres_url="$started_url"
  session_tokens "$data" "$sessions_per_user"
  token="${tokens%% *}"
  app="$(app_id 0)"
  common=(WRK_SALT=1 WRK_USERS="$users" WRK_TOKENS="$token" WRK_APPS="$app")
  load "$pres_url" 1 "$users" "$tokens" "$apps"
  reads_busy "$pres_url" "$token" "$(user_id 1 $((users - 1)))" \
    || { say "user $((users - 1)) does not read Busy after loading"; exit 1; }
  say "loaded $users users x $sessions_per_user session(s) into presenced in $load_secs s"
fi

if has http; then
  echo
  echo "## http: requests/s, median of $rounds x ${duration}s, wrk -t1 -c$conns, $users users x $sessions_per_user session(s) (ratio = presenced / baseline)"
  echo "## and each server's CPU time per request (us, user + system, all its threads; median)"
  printf '%-10s %14s %14s %8s %12s %12s %8s\n' scenario baseline_rps presenced_rps ratio base_cpu_us pres_cpu_us ratio
  for scenario in get set; do
    wrk_run "$base_url" "$conns" "$warmup" WRK_MODE="$scenario" "${common[@]}" >/dev/null
    wrk_run "$pres_url" "$conns" "$warmup" WRK_MODE="$scenario" "${common[@]}" >/dev/null
    base_runs="" pres_runs="" base_cpu="" pres_cpu=""
    for ((r = 0; r < rounds; r++)); do
      before="$(cpu_ticks "$base_pid")"
      result="$(wrk_run "$base_url" "$conns" "$duration" WRK_MODE="$scenario" "${common[@]}")"
      base_runs+=" $(field rps "$result")"
      base_cpu+=" $(per_request "$before" "$(cpu_ticks "$base_pid")" "$result")"
      before="$(cpu_ticks "$pres_pid")"
      result="$(wrk_run "$pres_url" "$conns" "$duration" WRK_MODE="$scenario" "${common[@]}")"
      pres_runs+=" $(field rps "$result")"
      pres_cpu+=" $(per_request "$before" "$(cpu_ticks "$pres_pid")" "$result")"
    done
    b="$(median <<<"$base_runs")" p="$(median <<<"$pres_runs")"
    bc="$(median <<<"$base_cpu")" pc="$(median <<<"$pres_cpu")"
    printf '%-10s %14.0f %14.0f %7.2fx %12.1f %12.1f %7.2fx\n' "$scenario" "$b" "$p" \
      "$(awk -v b="$b" -v p="$p" 'BEGIN {print p / b}')" "$bc" "$pc" \
      "$(awk -v b="$bc" -v p="$pc" 'BEGIN {print p / b}')"
    say "$scenario runs: baseline$base_runs; presenced$pres_runs"
    say "$scenario CPU us/request: baseline$base_cpu; presenced$pres_cpu"
  done
fi

if has bulk; then
  echo
  echo "## bulk: getPresencesByUserId, 650 ids among $users users, the median of $rounds x ${duration}s by p99 (ms)"
  printf '%-10s %-12s %9s %8s %8s %8s %8s %8s\n' server connections requests rps p50 p99 p99.9 max
  bulk_row() { # server connections result
    printf '%-10s %-12s %9d %8.0f %8.2f %8.2f %8.2f %8.2f\n' "$1" "$2" "$(field requests "$3")" \
      "$(field rps "$3")" \
      "$(awk -v u="$(field p50_us "$3")" 'BEGIN {print u / 1000}')" \
      "$(awk -v u="$(field p99_us "$3")" 'BEGIN {print u / 1000}')" \
      "$(awk -v u="$(field p999_us "$3")" 'BEGIN {print u / 1000}')" \
      "$(awk -v u="$(field max_us "$3")" 'BEGIN {print u / 1000}')"
  }
  # The run whose p99 is the median of the rounds' (the whole line kept).
  median_run() { sort -t' ' -k2,2n | awk '{ line[NR] = $0 } END { print line[int((NR + 1) / 2)] }' | cut -d' ' -f3-; }
  for c in 1 $bulk_conns; do
    base_results="" pres_results=""
    for ((r = 0; r < rounds; r++)); do
      result="$(wrk_run "$base_url" "$c" "$duration" WRK_MODE=bulk WRK_IDS=650 "${common[@]}")"
      base_results+="run $(field p99_us "$result") $result"$'\n'
      result="$(wrk_run "$pres_url" "$c" "$duration" WRK_MODE=bulk WRK_IDS=650 "${common[@]}")"
      pres_results+="run $(field p99_us "$result") $result"$'\n'
    done
    bulk_row baseline "$c" "$(printf '%s' "$base_results" | median_run)"
    bulk_row presenced "$c" "$(printf '%s' "$pres_results" | median_run)"
    say "bulk p99 (us) at $c connections: baseline $(printf '%s' "$base_results" | cut -d' ' -f2 | tr '\n' ' '); presenced $(printf '%s' "$pres_results" | cut -d' ' -f2 | tr '\n' ' ')"
  done
fi

if has batch; then
  echo
  echo "## batch: setPresence one per request vs \$batch of $per_batch, median of $rounds x ${duration}s, wrk -t1 -c$conns, $users users (ratio = batched / single setPresence calls/s)"
  printf '%-10s %14s %16s %8s\n' scenario http_rps setPresence_per_s ratio
  batch_common=(WRK_BATCH="$per_batch" "${common[@]}")
  for scenario in single batch; do
    WRK_SCRIPT="$batch_lua" wrk_run "$pres_url" "$conns" "$warmup" WRK_MODE="$scenario" "${batch_common[@]}" >/dev/null
  done
  single_runs="" batch_runs=""
  for ((r = 0; r < rounds; r++)); do
    result="$(WRK_SCRIPT="$batch_lua" wrk_run "$pres_url" "$conns" "$duration" WRK_MODE=single "${batch_common[@]}")"
    single_runs+=" $(field rps "$result")"
    result="$(WRK_SCRIPT="$batch_lua" wrk_run "$pres_url" "$conns" "$duration" WRK_MODE=batch "${batch_common[@]}")"
    batch_runs+=" $(field rps "$result")"
  done
  s="$(median <<<"$single_runs")" b="$(median <<<"$batch_runs")"
  printf '%-10s %14.0f %16.0f %8s\n' single "$s" "$s" 1.00x
  printf '%-10s %14.0f %16.0f %7.2fx\n' "batch$per_batch" "$b" "$(awk -v b="$b" -v n="$per_batch" 'BEGIN {print b * n}')" \
    "$(awk -v b="$b" -v n="$per_batch" -v s="$s" 'BEGIN {print b * n / s}')"
  say "batch runs (HTTP requests/s): single$single_runs; batch$batch_runs"
fi

if has http || has bulk; then
  stop "$base_pid"
fi
if has http || has bulk || has batch; then
  stop "$pres_pid"
fi

if has instructions; then
  echo
  echo "## instructions: user-space instructions per request (callgrind, all threads), wrk -t1 -c$instr_conns, ${instr_secs}s counted after ${warmup}s, $instr_users users x 1 session (ratio = presenced / baseline)"
  printf '%-10s %14s %14s %8s\n' scenario baseline presenced ratio
  for scenario in get set; do
    counts=()
    for who in baseline presenced; do
      out="$work/callgrind.$who.$scenario"
      grind=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out")
      if [[ "$who" == baseline ]]; then
        start "cg-$who-$scenario" "${grind[@]}" "$baseline_bin" 127.0.0.1:0
        tok=unused
      else
        cg_data="$work/cg-data-$scenario"
        start "cg-$who-$scenario" env -u PRESENCED_JWT_SECRET "${grind[@]}" "$bin" serve \
          --listen 127.0.0.1:0 --data-dir "$cg_data"
        tok="$(app_token "$cg_data" 0)"
      fi
      cg_pid="$started_pid" cg_url="$started_url"
      cg_common=(WRK_SALT=1 WRK_USERS="$instr_users" WRK_TOKENS="$tok" WRK_APPS="$(app_id 0)")
      if [[ "$who" == presenced ]]; then
        load "$cg_url" 1 "$instr_users" "$tok" "$(app_id 0)"
      fi
      wrk_run "$cg_url" "$instr_conns" "$warmup" WRK_MODE="$scenario" "${cg_common[@]}" >/dev/null
      callgrind_control -i on "$cg_pid" >/dev/null 2>&1
      result="$(wrk_run "$cg_url" "$instr_conns" "$instr_secs" WRK_MODE="$scenario" "${cg_common[@]}")"
      callgrind_control -i off "$cg_pid" >/dev/null 2>&1
      stop "$cg_pid"
      total="$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')"
      [[ -n "$total" ]] || { say "callgrind wrote no totals for $who ($scenario)"; exit 1; }
      counts+=("$(awk -v t="$total" -v n="$(field requests "$result")" 'BEGIN {printf "%.0f", t / n}')")
      say "$scenario $who: $(field requests "$result") requests counted, $total instructions"
    done
    printf '%-10s %14s %14s %7.2fx\n' "$scenario" "${counts[0]}" "${counts[1]}" \
      "$(awk -v b="${counts[0]}" -v p="${counts[1]}" 'BEGIN {print p / b}')"
  done
fi

if has memory; then
  echo
  echo "## memory and restart: sessions loaded through setPresence (wrk, 64 connections), RSS in MiB"
  printf '%-14s %9s %8s %8s %10s %9s %9s %8s %8s %8s %8s %9s\n' \
    'users x sess' sessions load_s writes/s rss_before rss_after B/session db_MiB stop_s listen_s ready_s rss_ready
  n=0
  for config in $mem_configs; do
    n=$((n + 1))
    mem_users="${config%x*}" per_user="${config#*x}"
    data="$work/mem-data-$n"
    start_presenced "mem$n" "$data"
    pid="$started_pid" url="$started_url"
    session_tokens "$data" "$per_user"
    first_token="${tokens%% *}"
    # Warm the server with the same 64 connections first (reads of users
    # never written: no facts stored), so RSS before counts its buffers.
    wrk_run "$url" 64 2 WRK_MODE=get WRK_SALT=99 WRK_USERS=1000 WRK_TOKENS="$first_token" >/dev/null
    sleep 1
    before="$(rss_kb "$pid")"
    load "$url" 2 "$mem_users" "$tokens" "$apps"
    sleep 1
    after="$(rss_kb "$pid")"
    sessions=$((mem_users * per_user))
    last_user="$(user_id 2 $((mem_users - 1)))"
    reads_busy "$url" "$first_token" "$last_user" || { say "last user does not read Busy"; exit 1; }
    started="$(now_ns)"
    stop "$pid"
    stop_ms="$(ms_since "$started")"
    db_kb="$(du -sk "$data" | cut -f1)"
    started="$(now_ns)"
    start_presenced "mem$n-restart" "$data"
    pid="$started_pid" url="$started_url"
    listen_ms="$(ms_since "$started")"
    deadline=$((SECONDS + 600))
    until curl -fs -o /dev/null "$url/_presenced/readyz" && reads_busy "$url" "$first_token" "$last_user"; do
      ((SECONDS < deadline)) || { say "not ready 600 s after the restart"; exit 1; }
      sleep 0.01
    done
    ready_ms="$(ms_since "$started")"
    rss_ready="$(rss_kb "$pid")"
    stop "$pid"
    awk -v u="$mem_users" -v k="$per_user" -v s="$sessions" -v secs="$load_secs" -v b="$before" -v a="$after" \
      -v db="$db_kb" -v st="$stop_ms" -v l="$listen_ms" -v r="$ready_ms" -v rr="$rss_ready" 'BEGIN {
      printf "%-14s %9d %8.1f %8.0f %10.1f %9.1f %9.0f %8.1f %8.2f %8.2f %8.2f %9.1f\n",
        u " x " k, s, secs, s / secs, b / 1024, a / 1024, (a - b) * 1024 / s, db / 1024,
        st / 1000, l / 1000, r / 1000, rr / 1024 }'
  done
fi

if has redis; then
  rport="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  mkdir -p "$work/redis"
  # Durable as documented: every write on disk before Redis answers.
  redis-server --port "$rport" --bind 127.0.0.1 --dir "$work/redis" --save "" \
    --appendonly yes --appendfsync always --daemonize no \
    >"$work/redis-server.out" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
  deadline=$((SECONDS + 30))
  until redis-cli -h 127.0.0.1 -p "$rport" ping >/dev/null 2>&1; do
    ((SECONDS < deadline)) && kill -0 "$redis_pid" 2>/dev/null \
      || { say "redis-server did not start:"; cat "$work/redis-server.out" >&2; exit 1; }
    sleep 0.05
  done
  say "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$rport (appendonly yes, appendfsync always)"

  echo
  echo "## redis: presenced --store redis:// beside redis-benchmark, one redis-server (appendonly yes, appendfsync always)"
  echo "## redis-benchmark: -c$conns, $redis_reqs requests per test; presenced: wrk -t1 -c$conns (two nodes: two wrk -c$((conns / 2)) at once, summed), median of $rounds x ${duration}s, $users users"
  printf '%-26s %12s %9s\n' scenario rps p99_ms

  # redis-benchmark ARGS…: "rps p99_ms" per test, from its CSV
  # ("test","rps","avg","min","p50","p95","p99","max").
  rb() {
    redis-benchmark -h 127.0.0.1 -p "$rport" -c "$conns" -n "$redis_reqs" -r 100000 --csv "$@" \
      | tail -n +2 | tr -d '"' | awk -F, '{print $2, $7}'
  }
  rb_line() { # NAME "rps p99"
    set -- "$1" $2
    printf '%-26s %12.0f %9.2f\n' "$1" "$2" "$3"
  }
  readarray -t rb_out < <(rb -t set,get)
  rb_line "redis-benchmark SET" "${rb_out[0]}"
  rb_line "redis-benchmark GET" "${rb_out[1]}"
  # A script shaped like presenced's write: read a counter, store a field.
  sha="$(redis-cli -h 127.0.0.1 -p "$rport" script load \
    "local n = redis.call('HINCRBY', KEYS[1], 'n', 1) redis.call('HSET', KEYS[1], 'f', ARGV[1]) return n")"
  rb_line "redis-benchmark EVALSHA" "$(rb evalsha "$sha" 1 'bench:{__rand_int__}' 0123456789abcdef)"
  redis-cli -h 127.0.0.1 -p "$rport" flushall >/dev/null

  store=(--store "redis://127.0.0.1:$rport")
  data="$work/redis-data"
  start_presenced redis-node-a "$data" "${store[@]}"
  node_a_pid="$started_pid" node_a_url="$started_url"
  token="$(app_token "$data" 0)"
  app="$(app_id 0)"
  rcommon=(WRK_SALT=3 WRK_USERS="$users" WRK_TOKENS="$token" WRK_APPS="$app")
  load "$node_a_url" 3 "$users" "$token" "$app"
  reads_busy "$node_a_url" "$token" "$(user_id 3 $((users - 1)))" \
    || { say "user $((users - 1)) does not read Busy after loading (Redis)"; exit 1; }
  say "loaded $users users x 1 session into presenced on Redis in $load_secs s"

  # pick: of "rps p99_us" lines, the median rps and the p99 of the run
  # closest below it.
  pick() {
    sed '/^$/d' | sort -g | awk '{r[NR] = $1; p[NR] = $2} END {
      m = int((NR + 1) / 2)
      printf "%s %s\n", (NR % 2 ? r[m] : (r[m] + r[m + 1]) / 2), p[m] / 1000 }'
  }
  for scenario in get set; do
    wrk_run "$node_a_url" "$conns" "$warmup" WRK_MODE="$scenario" "${rcommon[@]}" >/dev/null
    runs=""
    for ((r = 0; r < rounds; r++)); do
      result="$(wrk_run "$node_a_url" "$conns" "$duration" WRK_MODE="$scenario" "${rcommon[@]}")"
      runs+="$(field rps "$result") $(field p99_us "$result")"$'\n'
    done
    rb_line "presenced $scenario, 1 node" "$(pick <<<"$runs")"
    say "$scenario runs, 1 node (rps p99_us): $(sed '/^$/d' <<<"$runs" | paste -sd';')"
  done

  start_presenced redis-node-b "$data" "${store[@]}"
  node_b_pid="$started_pid" node_b_url="$started_url"
  # The set runs changed the users: node B must read what node A reads.
  probe="$(user_id 3 $((users - 1)))"
  seen_a="$(curl -fs "$node_a_url/v1.0/users/$probe/presence" -H "Authorization: Bearer $token" | grep -o '"availability":"[A-Za-z]*"')"
  seen_b="$(curl -fs "$node_b_url/v1.0/users/$probe/presence" -H "Authorization: Bearer $token" | grep -o '"availability":"[A-Za-z]*"')"
  [[ -n "$seen_a" && "$seen_a" == "$seen_b" ]] \
    || { say "node B reads '$seen_b' where node A reads '$seen_a'"; exit 1; }
  # wrk_pair SECS VAR=VALUE…: both nodes at once, half the connections
  # each, node B's wrk half a pass of users behind node A's (so the two
  # rarely write the same user at once); prints "summed_rps max_p99_us".
  wrk_pair() {
    local secs="$1"; shift
    local half=$((conns / 2)) a_pid b_pid
    wrk_run "$node_a_url" "$half" "$secs" "$@" >"$work/pair-a.out" &
    a_pid=$!
    wrk_run "$node_b_url" "$half" "$secs" WRK_OFFSET=$((users / 2)) "$@" >"$work/pair-b.out" &
    b_pid=$!
    wait "$a_pid" || exit 1
    wait "$b_pid" || exit 1
    local a b
    a="$(cat "$work/pair-a.out")" b="$(cat "$work/pair-b.out")"
    awk -v ra="$(field rps "$a")" -v rb="$(field rps "$b")" \
      -v pa="$(field p99_us "$a")" -v pb="$(field p99_us "$b")" \
      'BEGIN {printf "%.1f %d\n", ra + rb, (pa > pb ? pa : pb)}'
  }
  for scenario in get set; do
    wrk_pair "$warmup" WRK_MODE="$scenario" "${rcommon[@]}" >/dev/null
    runs=""
    for ((r = 0; r < rounds; r++)); do
      runs+="$(wrk_pair "$duration" WRK_MODE="$scenario" "${rcommon[@]}")"$'\n'
    done
    rb_line "presenced $scenario, 2 nodes" "$(pick <<<"$runs")"
    say "$scenario runs, 2 nodes (summed rps, max p99_us): $(sed '/^$/d' <<<"$runs" | paste -sd';')"
  done
  stop "$node_b_pid"
  stop "$node_a_pid"
  stop "$redis_pid"
fi

if has cargo; then
  for bench in $cargo_benches; do
    echo
    say "cargo bench --bench $bench"
    cargo bench --bench "$bench"
  done
fi
