#!/usr/bin/env bash
# sbatch defaults for `sbatch run.sh [overrides...]` (a training on one GPU); the sbatch command line
# overrides them, e.g. `sbatch -p gpu -t 12:00:00 run.sh op=sub wd=1.0`, or a small driver job for a
# grid on launcher=slurm: `sbatch -c 1 --mem=2G --gpus-per-node=0 -t 2-00:00:00 run.sh -m launcher=slurm ...`
#SBATCH --job-name=grokking
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=04:00:00
#SBATCH --output=slurm-%j.out
#SBATCH --signal=B:USR2@120
# Train or test on a fresh machine: the first call makes .venv with the project installed.
#   ./run.sh [overrides...]        python -m grokking.train [overrides...]   (e.g. op=sub wd=1.0, -m ...)
#   ./run.sh test [pytest args...] the test suite; the default run skips tests marked slow,
#                                  `./run.sh test -m slow` runs those (CI runs both)
# Environment: GROKKING_VENV (default <repo>/.venv), GROKKING_TORCH (torch version installed
# when the environment has none; default 2.13.0, a CPU wheel on these machines and the CUDA
# build from PyPI on GPU machines), GROKKING_PYTHON (interpreter for a new venv, default python3).
set -euo pipefail

# Under sbatch this file runs from a copy in SLURM's spool folder: find the repository from the
# path given to sbatch (the job's Command), else the submitting folder. Runs go to the current
# folder, which sbatch makes the submitting folder.
here="$(dirname "${BASH_SOURCE[0]}")"
if [ -n "${SLURM_JOB_ID:-}" ] && [ ! -f "$here/pyproject.toml" ]; then
  here="$(scontrol show job "$SLURM_JOB_ID" 2>/dev/null | sed -n 's/^ *Command=\([^ ]*\).*/\1/p')"
  here="$(dirname "${here:-$SLURM_SUBMIT_DIR/run.sh}")"
fi
repo="$(cd "$here" && pwd)"
venv="${GROKKING_VENV:-$repo/.venv}"
python="$venv/bin/python"
extras="${GROKKING_EXTRAS:-test,optuna}"  # .ci/run adds interp (TransformerLens, ~450 MB) for its tests

ensure_env() {
  [ -x "$python" ] || "${GROKKING_PYTHON:-python3}" -m venv "$venv"
  local stamp="$venv/.grokking-installed" want
  want="$(cat "$repo/pyproject.toml" | cksum) $extras"
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && return
  echo "run.sh: installing the project into $venv" >&2
  # torch first and pinned: an unpinned torch would pull a multi-GB CUDA build where a local
  # CPU wheel exists; pyproject's range then accepts whatever torch is already there.
  "$python" -c "import torch" 2>/dev/null || "$python" -m pip install -q "torch==${GROKKING_TORCH:-2.13.0}"
  "$python" -m pip install -q -e "$repo[$extras]"
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
