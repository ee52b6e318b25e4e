#!/usr/bin/env bash
# Schemathesis against the live server's own OpenAPI document
# (GET /_presenced/openapi.json): generated requests for every operation,
# with valid tokens, checking that nothing answers 5xx and that every answer
# conforms to the document (status codes, content types, headers, schemas).
#
# Usage: scripts/schemathesis.sh
# Env:   PRESENCED_BIN         the binary (default: target/debug/presenced)
#        SCHEMATHESIS_EXAMPLES examples per operation and phase (default: 12)
#
# The server runs in emulator mode (--manual-clock) so the clock and client
# session endpoints exist, with a temp data dir, on a free loopback port; it
# is stopped by the pid this script started. `/_presenced/events` is left
# out: it is a stream that only ends at shutdown, which schemathesis would
# wait on (the Rust suite tests it). Creating fault rules is left out too:
# an injected 500/503/504 or delay is what a rule is for, and it would
# answer schemathesis's later requests (the Rust suite and the examples test
# fault injection).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

bin="${PRESENCED_BIN:-target/debug/presenced}"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
[ -x "$bin" ] || { echo "schemathesis: no binary at $bin (cargo build first)" >&2; exit 1; }
examples="${SCHEMATHESIS_EXAMPLES:-12}"

# --- A venv of its own, reinstalled only when the pinned version changes.
# shellcheck source=scripts/venv.sh
. "$repo/scripts/venv.sh"
venv="$repo/.venv-schemathesis"
ensure_venv "$venv" "$repo/sdk-tests/schemathesis/requirements.txt"

# --- The server.
work="$(mktemp -d)"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" serve --data-dir "$work/data" --listen 127.0.0.1:0 --manual-clock \
  --start-time 2026-01-05T09:00:00Z >"$work/stdout" 2>"$work/stderr" &
pid=$!
url=""
for _ in $(seq 1 100); do
  url="$(sed -n 's/^presenced listening on \(http:\/\/127\.0\.0\.1:[0-9]*\)$/\1/p' "$work/stdout")"
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/stderr" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "schemathesis: the server did not start" >&2; cat "$work/stderr" >&2; exit 1; }

tenant="$(cat /proc/sys/kernel/random/uuid)"
user="$(cat /proc/sys/kernel/random/uuid)"
app="$(cat /proc/sys/kernel/random/uuid)"
mint() { "$bin" token --data-dir "$work/data" --tenant "$tenant" --app "$app" "$@"; }
# A delegated token that may do everything a user may (its own presence,
# everyone's reads, subscriptions), and an application token with every
# role (writes for anyone, the admin endpoints).
delegated="$(mint --user "$user" --scopes "Presence.ReadWrite Presence.ReadWrite.All Presence.Read.All")"
application="$(mint --roles "Presence.ReadWrite.All Presenced.Admin")"

run() {
  local who="$1" token="$2"
  shift 2
  echo "schemathesis: as the $who token"
  # From the temp dir: schemathesis keeps a cache in its working directory.
  (cd "$work" && "$venv/bin/st" run "$url/_presenced/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$examples" \
    --exclude-path /_presenced/events \
    --exclude-operation-id presenced.createFault \
    --request-timeout 20 \
    --workers 1 \
    --no-color \
    --seed 1 \
    "$@")
}
status=0
run delegated "$delegated" || status=$?
run application "$application" || status=$?
if ! kill -0 "$pid" 2>/dev/null; then
  echo "schemathesis: the server died" >&2
  cat "$work/stderr" >&2
  exit 1
fi
if grep -q "panicked" "$work/stderr"; then
  echo "schemathesis: the server logged a panic" >&2
  grep -B2 -A5 "panicked" "$work/stderr" >&2
  exit 1
fi
exit "$status"
