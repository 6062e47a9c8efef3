"""scripts/compare.py: gathering a sweep's runs, the table (seeds as repeats), sorting, plots."""
import json
import statistics
import subprocess
import sys

import pytest
import yaml

from grokking import compare
from grokking.compare import Spread
from tests.helpers import FAST, REPO, cli

PNG = b"\x89PNG\r\n\x1a\n"


def fake_run(folder, overrides, steps_to_grok, **final):
    """A run folder as training leaves it, with a two-point validation curve."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    summary = {"status": "completed", "train/acc": 1.0, "val/acc": 0.5, "steps_to_memorize": 100,
               "steps_to_grok": steps_to_grok, "grok_gap": steps_to_grok and steps_to_grok - 100, **final}
    (folder / "summary.json").write_text(json.dumps(summary))
    curve = [{"step": 0, "val/acc": 0.0, "fourier_ipr": 0.1}, {"step": 10, "val/acc": 0.5}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in curve))


@pytest.fixture
def grid(tmp_path):
    """frac x wd x seed: (0.3, *) never grok, (0.5, 0.1) groks with one seed, (0.5, 1.0) with both."""
    grok = {("0.3", "0.1"): (None, None), ("0.3", "1.0"): (None, None),
            ("0.5", "0.1"): (400, None), ("0.5", "1.0"): (200, 300)}
    for (frac, wd), steps in grok.items():
        for seed, steps_to_grok in enumerate(steps):
            overrides = [f"frac={frac}", f"wd={wd}", f"seed={seed}", "steps=500", "sweep_name=s", "p=47"]
            fake_run(tmp_path / f"frac={frac},seed={seed},wd={wd}", overrides, steps_to_grok,
                     **{"feature_rank/layer1": 10 + seed})
    return tmp_path


def test_parameters_are_the_overrides_that_define_a_run():
    overrides = ["frac=0.3", "+model.depth=2", "optimizer.betas=[0.9,0.98]", "steps=100", "logger=wandb",
                 "logger.mode=online", "hydra.sweep.dir=x", "out_dir=o", "~op.m"]
    expected = {"frac": "0.3", "model.depth": "2", "optimizer.betas": "[0.9,0.98]"}
    assert compare.parse_overrides(overrides) == expected
    assert compare.parse_name("frac=0.3,model.depth=2,optimizer.betas=[0.9,0.98]") == expected
    assert compare.parse_name("default") == {}


def test_seeds_are_repeats_of_a_grid_point(grid):
    runs = compare.load_sweep(grid)
    assert compare.swept_keys(runs) == ["frac", "wd", "seed"]
    columns, rows = compare.table(runs)
    assert columns == ["frac", "wd", "n", "grokked", "diverged", "train/acc", "val/acc", "steps_to_memorize",
                       "steps_to_grok", "grok_gap", "fourier_ipr", "feature_rank/layer1"]
    assert [(r["frac"], r["wd"], r["n"], r["grokked"]) for r in rows] == [
        ("0.3", "0.1", 2, "0/2"), ("0.3", "1.0", 2, "0/2"), ("0.5", "0.1", 2, "1/2"), ("0.5", "1.0", 2, "2/2")]
    assert [r["steps_to_grok"] for r in rows] == [None, None, Spread(400, 0, 1), Spread(250, statistics.stdev([200, 300]), 2)]
    assert rows[3]["feature_rank/layer1"] == Spread(10.5, statistics.stdev([10, 11]), 2)
    assert rows[0]["fourier_ipr"] == Spread(0.1, 0, 2)  # last value in metrics.jsonl, absent from the summary
    text = compare.format_table(columns, rows).splitlines()
    assert text[0].split() == columns
    assert text[4].split()[:4] == ["0.5", "1.0", "2", "2/2"] and "250 ± 70.7" in text[4]
    assert [compare.fmt(r["steps_to_grok"]) for r in rows] == ["-", "-", "400", "250 ± 70.7"]


def test_sorting_puts_missing_values_last(grid):
    _, rows = compare.table(compare.load_sweep(grid))
    for descending, expected in ((False, [250, 400, None, None]), (True, [400, 250, None, None])):
        ordered = compare.sort_rows(rows, ["steps_to_grok"], descending)
        assert [r["steps_to_grok"] and r["steps_to_grok"].mean for r in ordered] == expected
    assert [r["frac"] for r in compare.sort_rows(rows, ["frac"], True)] == ["0.5", "0.5", "0.3", "0.3"]


def test_without_seeds_one_row_per_run(tmp_path):
    for wd, lr in (("10", "1e-3"), ("9", "1e-3"), ("9", "3e-3")):
        fake_run(tmp_path / f"wd={wd},lr={lr}", [f"wd={wd}", f"lr={lr}"], None)
    (tmp_path / "wd=10,lr=1e-3" / "metrics.jsonl").write_text("")
    columns, rows = compare.table(compare.load_sweep(tmp_path))
    assert columns[:4] == ["wd", "lr", "status", "train/acc"] and "n" not in columns
    assert [(r["wd"], r["lr"]) for r in rows] == [("9", "1e-3"), ("9", "3e-3"), ("10", "1e-3")]  # as numbers
    assert "feature_rank/layer1" not in columns and "fourier_ipr" in columns


def test_phase_cells_count_never_grokked_runs(grid):
    cells = compare.phase_cells(compare.load_sweep(grid), "frac", "wd")
    assert cells[("0.3", "1.0")] == (None, 2, 0)
    assert cells[("0.5", "0.1")] == (Spread(400, 0, 1), 2, 0)
    assert cells[("0.5", "1.0")][0].mean == 250


def test_command_line_errors(grid, tmp_path, capsys):
    for args, message in ((["--sort", "nope"], "no such column"), (["--phase", "frac", "lr"], "--phase lr")):
        with pytest.raises(SystemExit, match=message):
            compare.main([str(grid), *args])
    with pytest.raises(SystemExit, match="no runs"):
        compare.main([str(tmp_path / "empty")])
    assert compare.main([str(grid), "--out", str(tmp_path / "png")]) == 0
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["phase_frac_wd.png", "val_acc.png"]


@pytest.mark.slow
def test_a_real_sweep(tmp_path):
    """frac x wd x 2 seeds with the fast recipe: frac=0.6, wd=1.0 groks (~250 steps), frac=0.3 does not."""
    args = ["-m", *FAST, "lr=3e-3", "steps=400", "early_stop=0.99", "eval_every=20",
            "frac=0.3,0.6", "wd=0.3,1.0", "seed=0,1", "sweep_name=grid"]
    out = cli(args, tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    sweep = tmp_path / "runs" / "sweeps" / "grid"
    summaries = {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/summary.json")}
    grokked = [s["steps_to_grok"] for name, s in summaries.items() if "frac=0.6" in name and "wd=1.0" in name]
    assert len(summaries) == 8 and None not in grokked
    assert all(s["steps_to_grok"] is None for name, s in summaries.items() if "frac=0.3" in name)

    table = subprocess.run([sys.executable, "scripts/compare.py", str(sweep), "--sort", "steps_to_grok"],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert table.returncode == 0, table.stderr
    header, first, *rest = table.stdout.splitlines()
    assert header.split()[:4] == ["frac", "wd", "n", "grokked"]
    assert {"fourier_ipr", "feature_rank/layer1"} <= set(header.split())
    assert first.split()[:4] == ["0.6", "1.0", "2", "2/2"]
    assert f"{statistics.fmean(grokked):.0f} ± " in first
    assert sum("0/2" in line for line in rest) >= 2 and len(rest) == 3 + 2  # 3 rows, 2 "wrote" lines
    for name in ("val_acc.png", "phase_frac_wd.png"):
        assert (sweep / "compare" / name).read_bytes().startswith(PNG)


def test_wandb_group_through_the_api(monkeypatch):
    """The --wandb path against a stand-in for wandb.Api (the real one needs the network)."""
    class FakeRun:
        def __init__(self, name, steps_to_grok):
            self.name, self.summary_metrics = name, {"val/acc": 1.0, "steps_to_grok": steps_to_grok}

        def scan_history(self, keys):
            return [{"_step": 0, "val/acc": 0.0}, {"_step": 10, "val/acc": 1.0}]

    class FakeApi:
        def runs(self, path, filters):
            assert (path, filters) == ("me/grokking", {"group": "grid"})
            return [FakeRun(f"frac=0.5,seed={s}", 100 * (s + 1)) for s in (0, 1)]

    monkeypatch.setattr("wandb.Api", FakeApi)
    runs = compare.load_wandb_group("me/grokking", "grid")
    assert [(r.params, r.curve) for r in runs][0] == ({"frac": "0.5", "seed": "0"}, [(0, 0.0), (10, 1.0)])
    columns, [row] = compare.table(runs)
    assert (row["n"], row["grokked"], row["steps_to_grok"].mean) == (2, "2/2", 150)


def test_diverged_runs_are_shown_as_diverged(tmp_path):
    for name, status in (("lr=1.0", "diverged"), ("lr=0.001", "completed")):
        folder = tmp_path / name
        (folder / ".hydra").mkdir(parents=True)
        (folder / ".hydra" / "overrides.yaml").write_text(f"- {name}\n")
        (folder / "summary.json").write_text(json.dumps({"status": status, "steps_to_grok": None}))
    columns, rows = compare.table(compare.load_sweep(tmp_path))
    assert {row["lr"]: row["status"] for row in rows} == {"1.0": "diverged", "0.001": "completed"}
    runs = compare.load_sweep(tmp_path)
    assert compare.phase_cells(runs, "lr", "lr")[("1.0", "1.0")] == (None, 1, 1)
