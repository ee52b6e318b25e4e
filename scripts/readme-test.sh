#!/usr/bin/env bash
# The README's walk-through, run as pasted: the ```sh blocks between
# `<!-- readme-test: begin -->` and `<!-- readme-test: end -->` markers, in
# order, in one bash session (so variables carry from block to block), with
# `set -euo pipefail`: any failing command fails the test, and the README's
# curls use -fsS, so an HTTP error fails it too. A block after
# `<!-- readme-test: server -->` starts a server: it runs in the
# background (stopping the one before) and the test waits for its
# "listening" line. A ```python block inside a region whose first line is
# `# NAME.py` is saved as NAME.py first, for the sh blocks to run.
#
# Only two things differ from a reader's terminal: `presenced` on PATH is a
# shim to the built binary (no `cargo install` here), and the README's
# ports (8080 for presenced, 9000 for the webhook receiver) are replaced by
# free ones so a server already on them does not break the run (the client
# commands, which default to 8080, get PRESENCED_URL). Everything
# runs in a temp dir (./presenced-data, …). What the walk-through starts in
# the background (a receiver, `presenced watch`) it stops itself; whatever
# is left when it fails is stopped too.
#
# Usage: scripts/readme-test.sh
# Env:   PRESENCED_BIN  path to the binary (default: target/debug/presenced)
#        README_PYTHON  the python3 for the Python snippet (default: the SDK
#                       suite's venv, .venv-sdk, created when missing)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${PRESENCED_BIN:-target/debug/presenced}"
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
if [ ! -x "$bin" ]; then
  echo "readme-test: presenced binary not found or not executable: $bin (cargo build --bin presenced)" >&2
  exit 1
fi
if [ -z "${README_PYTHON:-}" ]; then
  # shellcheck source=scripts/venv.sh
  . "$repo/scripts/venv.sh"
  ensure_venv "$repo/.venv-sdk" "$repo/sdk-tests/python/requirements.txt" "${SDK_TESTS_PYTHON:-python3}"
  README_PYTHON="$repo/.venv-sdk/bin/python"
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The shims: `presenced` is the built binary, `python3` the one with the SDK.
mkdir -p "$work/bin" "$work/home"
ln -s "$bin" "$work/bin/presenced"
# A wrapper, not a symlink: a venv's python finds its packages only when
# run by its own path.
printf '#!/bin/sh\nexec "%s" "$@"\n' "$README_PYTHON" >"$work/bin/python3"
chmod +x "$work/bin/python3"
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port="$(free_port)"
hook_port="$(free_port)"
while [ "$hook_port" = "$port" ]; do hook_port="$(free_port)"; done

# Extract: the walk-through as one bash script, and the named Python files.
python3 - "$repo/README.md" "$work" "$port" "$hook_port" <<'PY'
import re, sys, pathlib
readme, work = pathlib.Path(sys.argv[1]).read_text(), pathlib.Path(sys.argv[2])
port, hook_port = sys.argv[3], sys.argv[4]
def local(text):
    return (text.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
            .replace("127.0.0.1:9000", f"127.0.0.1:{hook_port}")
            .replace('("127.0.0.1", 9000)', f'("127.0.0.1", {hook_port})'))
out, inside, server_next, blocks = [], False, False, 0
lines = readme.splitlines()
i = 0
while i < len(lines):
    line = lines[i]
    if line.startswith("<!-- readme-test: begin"):
        inside = True
    elif line.startswith("<!-- readme-test: end"):
        inside = False
    elif line.startswith("<!-- readme-test: server"):
        server_next = True
    elif inside and line.startswith("```"):
        lang = line[3:].strip()
        body = []
        i += 1
        while not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        text = local("\n".join(body)) + "\n"
        if lang == "sh":
            blocks += 1
            if server_next:
                command = next(l for l in body if l.strip() and not l.startswith("#"))
                if not command.startswith("presenced serve"):
                    sys.exit(f"readme-test: a server block must start with `presenced serve`: {command}")
                out.append(f"start_server {command[len('presenced serve'):].strip()!r}")
                server_next = False
            else:
                out.append(f"echo '--- README block {blocks}' >&2\n{text}")
        elif lang == "python" and body and re.fullmatch(r"# [\w.-]+\.py", body[0]):
            (work / body[0][2:]).write_text(text)
    i += 1
if blocks == 0:
    sys.exit("readme-test: no sh blocks between readme-test markers in README.md")
(work / "walkthrough.sh").write_text("\n".join(out) + "\n")
PY

cat >"$work/run.sh" <<EOF
set -euo pipefail
# Whatever the walk-through left running in the background (it stops what
# it starts, but not when a command fails first) is stopped on the way out.
stop_jobs() {
  local pids
  pids="\$(jobs -p)"
  if [ -n "\$pids" ]; then kill \$pids 2>/dev/null || true; wait \$pids 2>/dev/null || true; fi
}
trap stop_jobs EXIT
start_server() {
  if [ -n "\${server_pid:-}" ]; then kill "\$server_pid"; wait "\$server_pid" || true; fi
  echo "--- README server: presenced serve \$1 (on 127.0.0.1:$port)" >&2
  # The shell truncates server.out in the child, after the fork: without
  # this, the wait below could read the previous server's line and return
  # before the new server is up.
  rm -f server.out server.log
  # shellcheck disable=SC2086
  presenced serve --listen 127.0.0.1:$port \$1 >server.out 2>server.log &
  server_pid=\$!
  echo "\$server_pid" >server.pid
  for _ in \$(seq 1 600); do
    grep -q '^presenced listening on ' server.out 2>/dev/null && return 0
    kill -0 "\$server_pid" 2>/dev/null || { cat server.log >&2; echo "readme-test: the server exited" >&2; return 1; }
    sleep 0.05
  done
  echo "readme-test: the server did not start within 30 s" >&2
  return 1
}
. ./walkthrough.sh
kill "\$server_pid"; wait "\$server_pid" || true
EOF

echo "readme-test: running the README walk-through in $work (port $port)"
status=0
(cd "$work" && env -i PATH="$work/bin:/usr/local/bin:/usr/bin:/bin" HOME="$work/home" \
  PRESENCED_URL="http://127.0.0.1:$port" bash run.sh) || status=$?
if [ -f "$work/server.pid" ]; then server_pid="$(cat "$work/server.pid")"; fi
if [ "$status" -ne 0 ]; then
  echo "readme-test: FAILED (exit $status); the last server's log:" >&2
  tail -n 20 "$work/server.log" >&2 || true
  exit "$status"
fi
echo "readme-test: the README walk-through passed"
