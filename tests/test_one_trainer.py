"""One trainer: a run trained in a pack leaves what the solo run of its config leaves (files,
summary keys, metrics keys, a diverged ending), and runs move between solo and packed on resume."""
import json

import pytest
import torch
from hydra.core.utils import JobStatus

from grokking.errors import ConfigError, Diverged
from grokking.pack.launch import group, job_outcome
from grokking.runlock import run_lock
from grokking.training.loop import train, train_runs
from tests.helpers import one_thread, FAST, REPO, cli, make_cfg, metrics

QUICK = ["p=23", "frac=0.5", "progress=none", "eval_every=10", "threads=1", "checkpoint_every=10"]
VOLATILE = {"wall_time_s", "run_dir"}  # what differs between any two runs of one config


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/helpers.py


def files(run_dir) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())


def summary(run_dir) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_a_member_leaves_the_files_keys_and_report_of_its_solo_run(tmp_path):
    variants = [["seed=0"], ["seed=1", "wd=0.3"]]
    cfgs = [make_cfg(QUICK + ["steps=20", "report=true"] + v) for v in variants]
    dirs = [tmp_path / "m0", tmp_path / "m1"]
    train_runs(cfgs, dirs)
    solo = tmp_path / "solo"
    train(cfgs[1], solo)
    assert "report.html" in files(dirs[1]) and files(dirs[1]) == files(solo)
    assert summary(dirs[1]).keys() == summary(solo).keys()
    assert [r.keys() for r in metrics(dirs[1])] == [r.keys() for r in metrics(solo)]
    packed, alone = summary(dirs[1]), summary(solo)
    for key in set(packed) - VOLATILE:
        value = packed[key]
        assert value == (pytest.approx(alone[key], rel=1e-4) if isinstance(value, float) else alone[key]), key


def test_a_diverged_member_ends_as_the_diverged_solo_run(tmp_path):
    cfgs = [make_cfg(QUICK + ["steps=30", "report=false", f"lr={lr}"]) for lr in ("1e-3", "1e5")]
    dirs = [tmp_path / "m0", tmp_path / "m1"]
    outcomes = train_runs(cfgs, dirs)
    solo = tmp_path / "solo"
    with pytest.raises(Diverged) as raised:
        train(cfgs[1], solo)
    assert isinstance(outcomes[1], Diverged) and str(outcomes[1]) == str(raised.value)
    assert outcomes[0]["status"] == "completed"
    assert files(dirs[1]) == files(solo)
    packed, alone = summary(dirs[1]), summary(solo)
    assert packed["status"] == alone["status"] == "diverged" and packed["step"] == alone["step"] == 10
    assert {k: v for k, v in packed.items() if k not in VOLATILE} == {k: v for k, v in alone.items() if k not in VOLATILE}
    assert [(r["step"], r["train/loss"]) for r in metrics(dirs[1])] == [(r["step"], r["train/loss"]) for r in metrics(solo)]


def test_a_solo_run_joins_a_pack_on_resume(tmp_path):
    seeds = [["seed=0"], ["seed=1"]]
    cfgs = [make_cfg(QUICK + ["steps=40", "report=false"] + s) for s in seeds]
    whole = [tmp_path / "whole0", tmp_path / "whole1"]
    train_runs(cfgs, whole)
    parts = [tmp_path / "part0", tmp_path / "part1"]
    train(make_cfg(QUICK + ["steps=20", "report=false"] + seeds[1]), parts[1])  # alone first
    outcomes = train_runs(cfgs, parts)  # then it joins the pack where it stopped
    assert [o["status"] for o in outcomes] == ["completed", "completed"]
    assert [r["step"] for r in metrics(parts[1])] == [0, 10, 20, 30, 40]
    for a, b in zip(whole, parts):
        assert [r["val/loss"] for r in metrics(a)] == pytest.approx([r["val/loss"] for r in metrics(b)], rel=1e-4)


def test_a_member_holds_its_folder_while_the_pack_trains_it(tmp_path):
    cfgs = [make_cfg(QUICK + ["steps=10", "report=false", f"seed={s}"]) for s in (0, 1)]
    dirs = [tmp_path / "m0", tmp_path / "m1"]
    with run_lock(dirs[1]):  # another process is training in m1
        outcomes = train_runs(cfgs, dirs)
    assert isinstance(outcomes[1], ConfigError) and "is in use by" in str(outcomes[1])
    assert outcomes[0]["status"] == "completed" and not (dirs[1] / "summary.json").exists()


def test_runs_of_one_pack_share_the_process_settings(tmp_path):
    cfgs = [make_cfg(QUICK + ["threads=1"]), make_cfg(QUICK + ["threads=2"])]
    with pytest.raises(ConfigError, match="differ in the process setting threads: 1 vs 2; "):
        train_runs(cfgs, [tmp_path / "a", tmp_path / "b"])
    assert group([make_cfg(QUICK + ["pack=2", f"threads={t}"]) for t in (1, 2, 1)]) == [[0, 2], [1]]


def test_a_member_is_scored_as_its_solo_job(tmp_path):
    """An Optuna search over a packed grid gets each member's number (a diverged one the penalty)."""
    cfg = make_cfg(QUICK + ["objective=steps_to_grok", "steps=100"])
    status, value = job_outcome(cfg, {"status": "completed", "steps_to_grok": 70}, tmp_path)
    assert (status, value) == (JobStatus.COMPLETED, 70.0)
    (tmp_path / "summary.json").write_text(json.dumps({"status": "diverged", "steps_to_grok": None}))
    status, value = job_outcome(cfg, Diverged("train/loss is nan at step 10 (lr 1e5)", 10), tmp_path)
    assert (status, value) == (JobStatus.COMPLETED, 200.0)
    status, value = job_outcome(cfg, ConfigError("bad"), tmp_path)
    assert status == JobStatus.FAILED and isinstance(value, ConfigError)


def test_pack_on_a_single_run_is_one_line(tmp_path):
    out = cli(["pack=4", "p=23", "steps=10", "progress=none"], tmp_path)
    assert out.returncode == 2 and not (tmp_path / "runs").exists()
    assert out.stderr.strip() == ("grokking: error: pack=4 trains the runs of a -m grid together; a single run "
                                  "has none to pack with: add -m and sweep a member key (e.g. -m seed=0,1,2,3), "
                                  "or leave pack out")
