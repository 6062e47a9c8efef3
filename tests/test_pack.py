"""Packed sweeps (pack=N): members trained together are ordinary runs with a solo run's record,
milestones close to the solo run's, exact resume, and one-line errors for bad combinations."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from grokking import analyze, compare
from grokking.errors import ConfigError, Diverged
from grokking.pack.launch import group
from grokking.training.loop import train_runs
from grokking.record import RunRecord
from grokking.training.loop import train
from grokking.wandb_offline import find_offline_runs, read_run
from tests.helpers import one_thread, FAST, REPO, cli, make_cfg, metrics

QUICK = FAST + ["eval_every=10", "threads=1"]
CURVE = ("train/loss", "train/acc", "val/loss", "val/acc")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/helpers.py


def pack(root, variants: list[list[str]], common: list[str]):
    """Train one pack in ``root/m<i>``: member i has overrides common + variants[i]."""
    cfgs = [make_cfg(QUICK + common + v) for v in variants]
    dirs = [root / f"m{i}" for i in range(len(variants))]
    return dirs, train_runs(cfgs, dirs)


def curve(run_dir):
    """Steps, losses and accuracies of every evaluation, flat."""
    return [value for r in metrics(run_dir) for value in (r["step"], *(r[k] for k in CURVE))]


def weights(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["model"]


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_each_member_is_an_ordinary_run_with_the_solo_numbers(tmp_path):
    variants = [["seed=0"], ["seed=1", "wd=0.3", "frac=0.4"]]
    dirs, outcomes = pack(tmp_path, variants, ["steps=30"])
    for i, (run_dir, variant) in enumerate(zip(dirs, variants)):
        assert outcomes[i]["status"] == "completed" and outcomes[i]["step"] == 30
        solo_dir = tmp_path / f"solo{i}"
        train(make_cfg(QUICK + ["steps=30"] + variant), solo_dir)
        packed, solo = metrics(run_dir), metrics(solo_dir)
        assert [r.keys() for r in packed] == [r.keys() for r in solo]  # every metric, at every evaluation
        assert curve(run_dir) == pytest.approx(curve(solo_dir), rel=1e-4, abs=1e-6)
        assert packed[-1]["fourier_ipr"] == pytest.approx(solo[-1]["fourier_ipr"], rel=1e-3)
        stored = RunRecord(run_dir).load_last()
        assert stored.keys() == RunRecord(solo_dir).load_last().keys()  # the solo checkpoint format
        assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.pt", "step_0000030.pt"]


def test_a_continued_pack_is_bit_for_bit_the_uninterrupted_one(tmp_path):
    """Stopping a pack and running it again (here: with more steps) changes no number."""
    seeds = [["seed=0"], ["seed=1", "lr=3e-3"]]
    whole, _ = pack(tmp_path / "whole", seeds, ["steps=40"])
    parts, _ = pack(tmp_path / "parts", seeds, ["steps=20"])
    _, outcomes = pack(tmp_path / "parts", seeds, ["steps=40"])
    assert [o["status"] for o in outcomes] == ["completed", "completed"]
    for a, b in zip(whole, parts):
        assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()
        assert same_weights(weights(a), weights(b))


def test_a_member_that_lost_its_checkpoint_catches_up_exactly(tmp_path):
    """Members resuming from different steps: the one behind trains alone until it is level."""
    seeds = [["seed=0"], ["seed=1"]]
    whole, _ = pack(tmp_path / "whole", seeds, ["steps=40"])
    parts, _ = pack(tmp_path / "parts", seeds, ["steps=20"])
    shutil.rmtree(parts[1])
    pack(tmp_path / "parts", seeds, ["steps=40"])
    for a, b in zip(whole, parts):
        assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()
        assert same_weights(weights(a), weights(b))


def test_a_member_continues_as_a_solo_run(tmp_path):
    seeds = [["seed=0"], ["seed=1"]]
    dirs, _ = pack(tmp_path / "p", seeds, ["steps=20"])
    whole, _ = pack(tmp_path / "whole", seeds, ["steps=40"])
    before = metrics(dirs[1])
    summary = train(make_cfg(QUICK + ["seed=1", "steps=40"]), dirs[1])
    assert summary["status"] == "completed" and summary["step"] == 40
    after = metrics(dirs[1])
    assert after[: len(before)] == before and [r["step"] for r in after] == [0, 10, 20, 30, 40]
    assert curve(dirs[1]) == pytest.approx(curve(whole[1]), rel=1e-4, abs=1e-6)


def test_a_diverged_member_stops_and_the_others_go_on(tmp_path):
    dirs, outcomes = pack(tmp_path, [["lr=1e-3"], ["lr=1e5"], ["lr=3e-3"]], ["steps=30"])
    assert isinstance(outcomes[1], Diverged) and outcomes[1].step == 10
    diverged = json.loads((dirs[1] / "summary.json").read_text())
    assert diverged["status"] == "diverged" and diverged["step"] == 10
    assert diverged["error"].startswith("Diverged: train/loss is nan at step 10")
    # the diverged evaluation stays in the record, as a solo run's does; last.pt holds no NaN
    assert [(r["step"], r["train/loss"]) for r in metrics(dirs[1])][1] == (10, None)
    assert "step_0000010.pt" not in {p.name for p in (dirs[1] / "checkpoints").glob("*")}
    for i in (0, 2):
        assert outcomes[i]["status"] == "completed" and [r["step"] for r in metrics(dirs[i])] == [0, 10, 20, 30]


def test_a_member_with_a_bad_value_of_its_own_fails_alone(tmp_path):
    dirs, outcomes = pack(tmp_path, [["frac=0"], ["seed=1"]], ["steps=10"])
    assert isinstance(outcomes[0], ConfigError) and outcomes[1]["status"] == "completed"
    failed = json.loads((dirs[0] / "summary.json").read_text())
    assert failed["status"] == "failed" and "frac=0.0 is invalid; it must be > 0 and <= 1" in failed["error"]


def test_members_of_one_pack_must_agree_on_the_shape(tmp_path):
    cfgs = [make_cfg(QUICK), make_cfg(QUICK + ["model.width=256"])]
    with pytest.raises(ConfigError) as error:
        train_runs(cfgs, [tmp_path / "a", tmp_path / "b"])
    assert "shape key model.width: 512 vs 256" in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "a").exists()


def test_a_grid_is_grouped_by_shape_in_its_order():
    grid = [["seed=0"], ["seed=1", "op=sub"], ["model.width=256"], ["seed=2", "frac=0.3"], ["seed=3", "wd=0.1"],
            ["p=53"], ["pack=null"]]
    configs = [make_cfg(QUICK + ["pack=3"] + job) for job in grid]
    assert group(configs) == [[0, 1, 3], [2], [4], [5], [6]]
    assert group([make_cfg(QUICK)] * 3) is None  # no pack: the launcher runs the grid as before


@pytest.mark.parametrize("value, message", [("0", "pack=0 is invalid; it must be >= 1"),
                                            ("abc", "pack=abc is not an integer")])
def test_a_bad_pack_value_is_one_line(tmp_path, value, message):
    out = cli(["-m", *QUICK, f"pack={value}", "seed=0,1", "steps=10"], tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    [line] = out.stderr.strip().splitlines()
    assert line == f"grokking: error: {message}"
    assert not list(tmp_path.rglob("summary.json"))


ENV = {"OMP_NUM_THREADS": "1"}
GRID_RUNS = [f"eval_every=10,frac=0.5,p=47,seed={s}" for s in range(4)]  # the unpacked grid's folder names


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "local"])
def test_cli_grid_in_a_pack_leaves_ordinary_run_folders(tmp_path, launcher, capsys):
    out = cli(["-m", f"launcher={launcher}", "pack=4", "seed=0,1,2,3", *QUICK, "steps=20", "sweep_name=g"],
              tmp_path, env=ENV)
    assert out.returncode == 0, out.stdout + out.stderr
    sweep = tmp_path / "runs" / "sweeps" / "g"
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")) == GRID_RUNS
    rows = json.loads((sweep / "sweep_summary.json").read_text())["runs"]
    assert [(r["status"], r["step"]) for r in rows] == [("completed", 20)] * 4
    assert len({r.get("job_id") for r in rows}) == 1  # one job (one array task) for the pack
    for name in GRID_RUNS:
        assert (sweep / name / ".hydra" / "config.yaml").exists() and (sweep / name / ".hydra" / "overrides.yaml").exists()
        assert [r["step"] for r in metrics(sweep / name)] == [0, 10, 20]
    # the tools downstream read the members as any runs
    assert compare.main([str(sweep), "--out", str(tmp_path / "compare")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["n", "grokked"] and table[1].split()[:2] == ["4", "0/4"], table  # 4 seeds
    analyze.main([str(sweep / GRID_RUNS[0])])
    assert (sweep / GRID_RUNS[0] / "analysis" / "curves.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_pack_resumes_every_member_exactly(tmp_path, sig):
    args = ["-m", "pack=2", "seed=0,1", *QUICK, "steps=150", "checkpoint_every=50"]
    assert cli(args + ["sweep_name=whole"], tmp_path, env=ENV).returncode == 0
    sweep = tmp_path / "runs" / "sweeps" / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "grokking.train", *args, "sweep_name=cut"], cwd=tmp_path,
                            env={**os.environ, **ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    member = sweep / GRID_RUNS[1]
    deadline = time.time() + 300
    while not ((member / "metrics.jsonl").exists() and any(r["step"] >= 70 for r in metrics(member))):
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(sig)
    proc.wait(60)
    status = json.loads((member / "summary.json").read_text())["status"]
    assert status == ("running" if sig == signal.SIGKILL else "interrupted")
    out = cli(args + ["sweep_name=cut"], tmp_path, env=ENV)
    assert out.returncode == 0, out.stderr
    for name in GRID_RUNS[:2]:
        whole, cut = tmp_path / "runs" / "sweeps" / "whole" / name, sweep / name
        assert (whole / "metrics.jsonl").read_text() == (cut / "metrics.jsonl").read_text()
        assert same_weights(weights(whole), weights(cut))
        assert json.loads((cut / "summary.json").read_text())["status"] == "completed"


def within(a, b, slack: int = 20) -> bool:
    """Two milestones agree: both never reached, or at most ``slack`` steps apart."""
    return a == b or (None not in (a, b) and abs(a - b) <= slack)


def milestones_of(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    return summary["steps_to_memorize"], summary["steps_to_grok"]


@pytest.mark.slow
@pytest.mark.parametrize("variants", [
    [[f"seed={s}"] for s in range(4)],
    [["wd=0.3", "frac=0.4"], ["wd=1.0", "frac=0.4"], ["wd=0.3", "frac=0.5"], ["wd=1.0", "frac=0.5", "seed=1"]],
], ids=["seeds", "wd_frac"])
def test_packed_milestones_agree_with_solo_runs(tmp_path, variants):
    """Within two evaluation intervals: the packed step computes the same function with other
    floating-point sums (docs/packing.md), so the curves drift apart slowly. (wd=0.3 with
    frac=0.4 memorises but does not grok within 3000 steps, packed or alone.)"""
    common = ["steps=3000", "early_stop=0.99"]
    dirs, outcomes = pack(tmp_path / "pack", variants, common)
    grokked = 0
    for i, variant in enumerate(variants):
        solo = tmp_path / f"solo{i}"
        train(make_cfg(QUICK + common + variant), solo)
        packed, alone = milestones_of(dirs[i]), milestones_of(solo)
        assert packed[0] is not None and within(packed[0], alone[0]), (variant, packed, alone)
        assert within(packed[1], alone[1]), (variant, packed, alone)
        grokked += packed[1] is not None
    assert grokked >= 3


@pytest.mark.slow
def test_each_member_has_its_own_wandb_run_in_the_sweep_group(tmp_path, offline_wandb):
    out = cli(["-m", "pack=2", "seed=0,1", *QUICK, "steps=20", "logger=wandb", "sweep_name=g"], tmp_path, env=ENV)
    assert out.returncode == 0, out.stdout + out.stderr
    ids = set()
    for name in GRID_RUNS[:2]:
        run_dir = tmp_path / "runs" / "sweeps" / "g" / name
        [wb] = [read_run(p) for p in find_offline_runs(run_dir)]
        assert (wb.name, wb.group, wb.exit_code) == (name, "g", 0)
        rows = [row for row in wb.history if "train/loss" in row]
        assert [row["_step"] for row in rows] == [r["step"] for r in metrics(run_dir)]
        assert wb.summary["status"] == "completed"
        ids.add(wb.run_id)
    assert len(ids) == 2


def test_the_docs_name_every_shape_key():
    from grokking import schema

    guide = (REPO / "docs" / "packing.md").read_text()
    top = [key for key in schema.keys_with_role(schema.SHAPE) if "." not in key and key not in schema.GROUP_ROLES]
    for key in top:
        assert f"`{key}`" in guide or f"`{key}.*`" in guide, key
