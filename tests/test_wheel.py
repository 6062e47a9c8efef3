"""The wheel, installed (not editable) into a clean venv and used from another folder through its
console scripts: catches files missing from the package (configs, the Hydra plugin) and entry
points that only work from a checkout. Packages come from pip's configured index (no network)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow
TORCH = "torch==2.13.0"  # the local CPU wheel; an unpinned torch would pull a CUDA build


def checkout_copy(dest: Path) -> Path:
    """The files a clone of the repository has (tracked, and new files not ignored): a build in
    the working tree would leave build/ behind and could pick up ignored files such as site configs."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, files):
        src, dst = REPO / name, dest / name
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree, not yet committed
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, dst)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """{"bin": the venv's bin folder, "env": an environment that finds its console scripts}."""
    root = tmp_path_factory.mktemp("wheel")
    source = checkout_copy(root / "source")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(root / "dist"), str(source)],
                   check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = (root / "dist").glob("grokking-*.whl")
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    proc = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-compile", str(wheel), TORCH],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return {"bin": bin_dir, "env": env, "work": root / "work"}


def run(installed: dict, *cmd: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    cwd = cwd or installed["work"]
    cwd.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(cmd, cwd=cwd, env=installed["env"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    return proc


def test_the_installed_package_comes_from_the_venv_not_the_checkout(installed):
    proc = run(installed, "python", "-c", "import grokking, hydra_plugins.grokking_launcher as p; "
               "print(grokking.__file__); print(p.__file__)")
    assert all(str(installed["bin"].parent) in line for line in proc.stdout.splitlines())


def test_grokking_train_trains_and_prints_its_config(installed):
    run(installed, "grokking-train", "p=47", "steps=20", "progress=none")
    summary = json.loads((installed["work"] / "runs" / "p=47" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["step"] == 20
    config = run(installed, "grokking-train", "--cfg", "job").stdout
    assert "p: 97" in config and "model:" in config


def test_a_grid_through_the_packaged_launcher_plugin(installed):
    run(installed, "grokking-train", "-m", "launcher=local", "p=47", "steps=10", "progress=none",
        "op=add,sub", "sweep_name=grid")
    table = run(installed, "grokking-sweep", "runs/sweeps/grid").stdout
    assert table.count("completed") == 2 and "op=sub,p=47" in table


def test_grokking_analyze_reads_a_run(installed):
    work = installed["work"] / "analyze"
    run(installed, "grokking-train", "p=47", "steps=20", "checkpoint_every=10", "progress=none", cwd=work)
    proc = run(installed, "grokking-analyze", "runs/p=47", "--device", "cpu", cwd=work)
    assert proc.stdout.startswith("analysed 2 snapshots")
    assert any((work / "runs" / "p=47" / "analysis").iterdir())


def test_bash_completion_of_grokking_train(installed):
    script = ('eval "$(grokking-train -sc install=bash)"; COMP_LINE="grokking-train op=s" COMP_POINT=19 '
              'COMP_CWORD=1 hydra_bash_completion; printf "%s\\n" "${COMPREPLY[@]}"')
    proc = run(installed, "bash", "-c", script)
    ops = sorted(f"op={f.stem}" for f in (REPO / "grokking" / "conf" / "op").glob("s*.yaml"))
    assert sorted(proc.stdout.split()) == ops and "op=sub" in ops


def test_grokking_study_is_a_console_script_and_the_studies_travel_with_the_package(installed):
    proc = subprocess.run([str(installed["bin"] / "grokking-study"), "nowhere"], cwd=installed["work"],
                          env=installed["env"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["grokking: error: nowhere: no such folder; give a study folder "
                                        "(runs/studies/<study>_<scale>)"]
    config = run(installed, "grokking-train", "study=pow_mn", "scale=smoke", "--cfg", "job").stdout
    assert "name: pow_mn" in config and "p: 31" in config
