# Sourced by scripts/sdk-tests.sh and scripts/schemathesis.sh.
#
# ensure_venv DIR REQUIREMENTS [PYTHON]: a Python venv in DIR (created with
# PYTHON, default python3) holding REQUIREMENTS, reinstalled only when that
# file changes (its SHA-256 is stamped in the venv).
ensure_venv() {
  local venv="$1" req="$2" py="${3:-python3}"
  if [ ! -x "$venv/bin/python" ]; then
    echo "venv: creating $venv"
    "$py" -m venv "$venv"
  fi
  local stamp="$venv/.requirements.sha256" want
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "venv: installing $req into $venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-input -r "$req"
    echo "$want" >"$stamp"
  fi
}
