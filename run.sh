#!/usr/bin/env bash
# Train or test on a fresh machine: the first call makes .venv with the project installed.
#   ./run.sh [overrides...]        python -m grokking.train [overrides...]   (e.g. op=sub wd=1.0, -m ...)
#   ./run.sh test [pytest args...] the test suite; the default run skips tests marked slow,
#                                  `./run.sh test -m slow` runs those (CI runs both)
# Environment: GROKKING_VENV (default <repo>/.venv), GROKKING_TORCH (torch version installed
# when the environment has none; default 2.13.0, a CPU wheel on these machines and the CUDA
# build from PyPI on GPU machines), GROKKING_PYTHON (interpreter for a new venv, default python3).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${GROKKING_VENV:-$repo/.venv}"
python="$venv/bin/python"

ensure_env() {
  [ -x "$python" ] || "${GROKKING_PYTHON:-python3}" -m venv "$venv"
  local stamp="$venv/.grokking-installed" want
  want="$(cat "$repo/pyproject.toml" | cksum)"
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return
  echo "run.sh: installing the project into $venv" >&2
  # torch first and pinned: an unpinned torch would pull a multi-GB CUDA build where a local
  # CPU wheel exists; pyproject's range then accepts whatever torch is already there.
  "$python" -c "import torch" 2>/dev/null || "$python" -m pip install -q "torch==${GROKKING_TORCH:-2.13.0}"
  "$python" -m pip install -q -e "$repo[test]"
  echo "$want" > "$stamp"
}

ensure_env
if [ "${1:-}" = "test" ]; then
  shift
  cd "$repo"
  marker=(-m "not slow")
  for arg in "$@"; do [ "$arg" = "-m" ] && marker=(); done
  exec "$python" -m pytest "${marker[@]}" "$@"
fi
exec "$python" -m grokking.train "$@"
