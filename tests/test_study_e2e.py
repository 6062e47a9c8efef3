"""Studies end to end (slow): the smoke scale of two studies trained as a user types it, their
aggregation and their page in a real headless Chromium (the figure drawn with the published
points, no console error, nothing fetched from the network); and a grid killed mid-way that,
launched again, trains only the runs that had not ended.

With GROKKING_STUDY_SCREENSHOTS=<dir> the figures are kept there (docs/figures/study_*.png).
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grokking.study import definition
from tests.helpers import REPO, cli
from tests.test_report_browser import TAB_STATE, browser, chromium  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow


def study_folder(out_dir: Path, name: str) -> Path:
    return out_dir / "studies" / f"{name}_smoke"


def figure_state(browser) -> dict:
    """Whether the figure tab drew its plots, with data, and its published points."""
    browser.evaluate("showTab('tab-figure')")
    deadline = time.time() + 60
    while True:
        state = browser.evaluate(TAB_STATE % json.dumps("tab-figure"))
        if all(s["drawn"] for s in state) or time.time() > deadline:
            break
        time.sleep(0.2)
    names = browser.evaluate("Array.from(document.querySelectorAll('#tab-figure .plot'))"
                             ".flatMap(div => (div.data || []).map(t => t.name || ''))")
    return {"plots": state, "published": [n for n in names if n.startswith("published: ")]}


@pytest.mark.parametrize("name, cells", [("nanda_frac", 3), ("omnigrok", 4)])
def test_a_smoke_study_runs_its_grid_and_draws_its_page(browser, tmp_path, name, cells):
    result = cli(["-m", f"study={name}", "scale=smoke", f"out_dir={tmp_path}"], cwd=tmp_path, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = study_folder(tmp_path, name)
    assert f"[grokking] study page: {folder / 'study.html'}" in result.stdout
    study, values, scale = definition.load(folder)
    assert scale == "smoke" and study.name == name
    rows = list(csv.DictReader(open(folder / "study.csv")))
    assert len(rows) == cells
    assert all(r["missing"] == "0" and r["unfinished"] == "0" and r["known"] == r["runs"] for r in rows)
    if study.outcome == "phase":
        assert all(r["phase"] for r in rows)
    else:
        assert any(r["median"] not in ("", "inf") for r in rows)

    browser.open(folder / "study.html")
    state = figure_state(browser)
    assert state["plots"] and all(p["drawn"] and p["traces"] > 0 for p in state["plots"]), state
    assert state["published"], state  # the published points are on the figure, named by their source
    for tab in ("tab-table", "tab-runs"):
        browser.evaluate(f"showTab('{tab}')")
        time.sleep(0.5)
        assert all(p["drawn"] for p in browser.evaluate(TAB_STATE % json.dumps(tab)))
    assert browser.errors() == []
    assert [u for u in browser.requested() if not u.startswith(("file:", "data:", "blob:"))] == []
    shots = os.environ.get("GROKKING_STUDY_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        browser.evaluate("showTab('tab-figure')")
        time.sleep(1)
        browser.screenshot(Path(shots) / f"study_{name}.png")


def summary(run_dir: Path) -> dict:
    path = run_dir / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def test_a_grid_killed_mid_way_trains_only_what_was_missing_when_launched_again(tmp_path):
    grid = ["-m", "study=nanda_frac", "scale=smoke", "frac=0.7,0.8,0.9", "seed=0", "steps=600", "checkpoint_every=100",
            "early_stop_loss=null", "pack=null", f"out_dir={tmp_path}"]  # every run trains its 600 steps
    folder = study_folder(tmp_path, "nanda_frac")
    runs = [folder / f"frac={f},seed=0" for f in ("0.7", "0.8", "0.9")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen([sys.executable, "-m", "grokking.train", *grid], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:  # kill the grid once the first run has ended and the second has a checkpoint
        deadline = time.time() + 1200
        while not (summary(runs[0]).get("status") == "completed" and (runs[1] / "checkpoints" / "last.pt").is_file()):
            assert first.poll() is None and time.time() < deadline, "the grid ended before it could be killed"
            time.sleep(0.2)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    ended = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in runs[0].iterdir() if p.is_file()}
    assert summary(runs[1]).get("status") == "running" and not runs[2].exists()

    again = cli(grid, cwd=tmp_path, timeout=1200)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"[grokking] 1 of 3 run(s) of {folder} ended before: not launched again" in again.stdout
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in runs[0].iterdir() if p.is_file()} == ended
    assert [summary(r)["status"] for r in runs] == ["completed"] * 3
    steps = [json.loads(line)["step"] for line in (runs[1] / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 600  # continued from its checkpoint, no step twice
    rows = list(csv.DictReader(open(folder / "study.csv")))  # the smoke grid is frac 0.6, 0.75, 0.9 x seeds 0, 1:
    assert [(r["frac"], r["known"], r["missing"]) for r in rows] == [  # its points without a run are listed
        ("0.6", "0", "2"), ("0.7", "1", "0"), ("0.75", "0", "2"), ("0.8", "1", "0"), ("0.9", "1", "1")]

    third = cli(grid, cwd=tmp_path, timeout=600)
    assert third.returncode == 0 and f"3 of 3 run(s) of {folder} ended before" in third.stdout


def test_a_local_grid_launched_again_submits_only_runs_that_have_not_ended(tmp_path):
    """launcher=local (submitit): the second launch submits nothing, and its table still lists the
    completed run and the diverged one (which would diverge again) from their folders."""
    grid = ["-m", "launcher=local", "p=23", "frac=0.5", "steps=30", "lr=1e-3,1e30", "progress=none", "report=false",
            f"out_dir={tmp_path}", "sweep_name=again"]
    first = cli(grid, cwd=tmp_path, timeout=600, env={"OMP_NUM_THREADS": "1"})
    assert first.returncode == 0, first.stdout + first.stderr
    again = cli(grid, cwd=tmp_path, timeout=600, env={"OMP_NUM_THREADS": "1"})
    assert again.returncode == 0, again.stdout + again.stderr
    sweep = tmp_path / "sweeps" / "again"
    assert f"[grokking] 2 of 2 run(s) of {sweep} ended before: not launched again" in again.stdout
    assert "submitted 0 run(s)" in again.stdout
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert sorted(r["status"] for r in summary["runs"]) == ["completed", "diverged"]


def test_a_study_grid_that_logs_to_wandb_logs_its_page_there(tmp_path, offline_wandb):
    from grokking.wandb_offline import find_offline_runs, read_run

    out = cli(["-m", "study=omnigrok", "scale=smoke", "steps=200", "logger=wandb", f"out_dir={tmp_path}"],
              cwd=tmp_path, timeout=1200, env={"OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    folder = study_folder(tmp_path, "omnigrok")
    [page_run] = [read_run(p) for p in find_offline_runs(folder / "wandb_study")]
    assert (page_run.name, page_run.group, page_run.exit_code) == ("study omnigrok (smoke)", "omnigrok_smoke", 0)
    logged = [row["study"] for row in page_run.history if "study" in row]
    assert len(logged) == 1 and logged[0]["_type"] == "html-file"
    assert page_run.config["study"]["name"] == "omnigrok"
    runs = [read_run(p) for p in find_offline_runs(folder) if "wandb_study" not in str(p)]
    assert len(runs) == 4 and {r.group for r in runs} == {"omnigrok_smoke"}  # the runs, in the same group
