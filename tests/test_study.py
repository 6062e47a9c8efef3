"""Studies (grokking/study): outcomes read off a run's evaluations, the aggregation of a grid's
runs over seeds (known medians and quartiles, runs that never reached the outcome, unfinished
and missing runs), the CSV and page beside them, the study's own checks, and which runs a grid
launched again leaves out (grokking/sweep.py). Real trainings of whole studies: test_study_e2e.py."""
import csv
import json
import math
import subprocess
import sys

import pytest
import yaml
from omegaconf import OmegaConf

from grokking.config import check_command_line, compose_config
from grokking.errors import ConfigError
from grokking.study import aggregate, definition, outcomes
from grokking.study.figure import figures
from grokking.study.page import write_study_page
from grokking.sweep import ended_for_good
from tests.helpers import REPO, cli

STUDY = {"name": "toy", "title": "toy study", "source": "a test", "x": "frac", "outcome": "steps_to_val_loss",
         "threshold": 0.1, "log_y": True,
         "reference": [{"x": 0.3, "value": 250, "source": "paper A"}, {"x": 0.28, "value": 900, "source": "paper A"}]}


def curve(steps_below: int | None, last: int, every: int = 50) -> list[dict]:
    """Evaluations every ``every`` steps up to ``last``; val/loss drops below 0.1 at ``steps_below``."""
    return [{"step": s, "train/acc": 1.0, "val/acc": 0.9, "val/loss": 0.05 if steps_below is not None and s >= steps_below
             else 2.0} for s in range(0, last + 1, every)]


def make_run(folder, overrides: list[str], records: list[dict], status: str = "completed") -> None:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["study=toy", "scale=smoke", *overrides]))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "summary.json").write_text(json.dumps({"status": status, "step": records[-1]["step"], "steps": 1000}))


def make_study(folder, study: dict = STUDY, params: dict | None = None) -> None:
    params = params or {"frac": "0.3,0.5", "seed": "range(3)"}
    OmegaConf.save(OmegaConf.create({"scale": "smoke", "study": study, "hydra": {"sweeper": {"params": params}}}),
                   folder / definition.MULTIRUN)


@pytest.fixture
def toy(tmp_path):
    """frac 0.3: seeds 0 and 1 below 0.1 at steps 100 and 300, seed 2 never within its 1000 steps;
    frac 0.5: seeds 0 and 1 at 50 and 100, seed 2 has no folder; one extra run (frac 0.7) still
    training and not yet below."""
    make_study(tmp_path)
    for frac, seed, below, status in [(0.3, 0, 100, "completed"), (0.3, 1, 300, "completed"), (0.3, 2, None, "completed"),
                                      (0.5, 0, 50, "completed"), (0.5, 1, 100, "diverged"), (0.7, 0, None, "running")]:
        last = 1000 if status == "completed" else 400
        make_run(tmp_path / f"frac={frac},seed={seed}", [f"frac={frac}", f"seed={seed}"], curve(below, last), status)
    return tmp_path


def test_outcomes_are_read_off_the_evaluations():
    records = [{"step": 0, "train/acc": 0.1, "val/acc": 0.0, "val/loss": 4.0},
               {"step": 100, "train/acc": 1.0, "val/acc": 0.2, "val/loss": 3.0},
               {"step": 1500, "train/acc": 1.0, "val/acc": 0.995, "val/loss": 0.09}]
    study = definition.typed({**STUDY, "threshold": 0.1})
    done = {"status": "completed", "step": 2000}
    assert outcomes.outcome(study, records, done).value == 1500
    assert outcomes.outcome(definition.typed({**STUDY, "outcome": "steps_to_val_acc", "threshold": 0.99}), records,
                            done).value == 1500
    assert outcomes.outcome(definition.typed({**STUDY, "outcome": "steps_to_train_acc", "threshold": 0.99}),
                            records, done).value == 100
    final = outcomes.outcome(definition.typed({**STUDY, "outcome": "final", "metric": "val/acc"}), records, done)
    assert final.value == 0.995 and final.ended
    running = outcomes.outcome(definition.typed({**STUDY, "outcome": "final"}), records, {"status": "running", "step": 1500})
    assert running.pending  # a final value is known once the run has ended
    never = outcomes.outcome(definition.typed({**STUDY, "threshold": 0.01}), records, done)
    assert not never.reached and not never.pending and never.steps == 2000
    assert outcomes.describe(study) == "steps to val/loss < 0.1"


def test_phases_follow_the_study_thresholds():
    def run(train_at, val_at):
        return [{"step": s, "train/acc": 1.0 if train_at is not None and s >= train_at else 0.1,
                 "val/acc": 1.0 if val_at is not None and s >= val_at else 0.1} for s in range(0, 5001, 100)]

    assert outcomes.phase(run(None, None), 0.9, 1000) == "confusion"
    assert outcomes.phase(run(200, None), 0.9, 1000) == "memorisation"
    assert outcomes.phase(run(200, 3000), 0.9, 1000) == "grokking"
    assert outcomes.phase(run(200, 1200), 0.9, 1000) == "comprehension"
    assert outcomes.phase(run(500, 300), 0.9, 1000) == "comprehension"


def test_quantiles_count_never_as_infinite():
    assert aggregate.quantile([100.0, 300.0, math.inf], 0.5) == 300
    assert aggregate.quantile([100.0, 300.0, math.inf], 0.25) == 200
    assert aggregate.quantile([100.0, 300.0, math.inf], 0.75) == math.inf
    assert aggregate.quantile([50.0, 100.0], 0.5) == 75
    assert aggregate.quantile([100.0, math.inf], 0.5) == math.inf
    assert aggregate.quantile([], 0.5) is None


def test_a_grid_is_aggregated_over_seeds_with_never_reached_unfinished_and_missing_runs(toy):
    study, values, scale = definition.load(toy)
    assert scale == "smoke" and values == {"frac": ["0.3", "0.5"], "seed": ["0", "1", "2"]}
    keys, cells = aggregate.collect(toy, study, values)
    assert keys == ["frac"]
    by_frac = {c.point["frac"]: c for c in cells}
    assert list(by_frac) == ["0.3", "0.5", "0.7"]
    low = by_frac["0.3"]
    assert [r.outcome.value for r in low.runs] == [100, 300, None]
    assert (low.quantile(0.5), low.quantile(0.25), low.quantile(0.75)) == (300, 200, math.inf)
    assert [aggregate.shown_value(r) for r in low.runs] == ["100", "300", ">1000"]
    high = by_frac["0.5"]
    assert high.quantile(0.5) == 75 and len(high.reached) == 2  # the diverged run had reached it before
    assert high.missing == [{"frac": "0.5", "seed": "2"}]
    extra = by_frac["0.7"]
    assert len(extra.pending) == 1 and extra.quantile(0.5) is None and extra.missing == []


def test_the_csv_holds_each_point_and_the_published_values(toy):
    page = write_study_page(toy)
    rows = list(csv.DictReader(open(toy / aggregate.CSV_FILE)))
    assert [(r["frac"], r["runs"], r["known"], r["reached"], r["not_reached"], r["unfinished"], r["missing"])
            for r in rows] == [("0.3", "3", "3", "2", "1", "0", "0"), ("0.5", "3", "2", "2", "0", "0", "1"),
                               ("0.7", "1", "0", "0", "0", "1", "0")]
    assert (rows[0]["median"], rows[0]["q1"], rows[0]["q3"]) == ("300", "200", "inf")
    assert rows[0]["values"] == "seed=0:100; seed=1:300; seed=2:>1000"
    assert (rows[0]["published"], rows[0]["published_source"]) == ("250", "paper A")
    assert rows[1]["median"] == "75" and rows[1]["published"] == ""
    text = page.read_text()
    assert page.name == "study.html" and "published: paper A" in text and "<script src=" not in text
    assert "frac=0.5,seed=2" in text  # the missing run is listed on the Runs tab


def test_the_study_command_rewrites_the_page_and_refuses_other_folders(toy, tmp_path):
    result = subprocess.run([sys.executable, "-m", "grokking.study", str(toy)], capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (toy / "study.html").is_file() and "study.csv" in result.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run([sys.executable, "-m", "grokking.study", str(empty)], capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"grokking: error: {empty} is not a study folder: it has no multirun.yaml "
        "(run the grid first: python -m grokking.train -m study=<name>)"]


@pytest.mark.parametrize("change, message", [
    ({"x": "lr"}, "study.x=lr is not a key of the study's grid (hydra.sweeper.params: frac, seed)"),
    ({"figure": "heatmap"}, "study.figure=heatmap needs study.y, a second key of the grid"),
    ({"threshold": None}, "study.outcome=steps_to_val_loss needs study.threshold (e.g. 0.99)"),
    ({"outcome": "phase", "threshold": 0.9}, "study.outcome=phase is drawn as study.figure=phase, not line"),
    ({"reference": [{"x": 0.3, "value": 1, "group": "div", "source": "s"}]}, "study.reference group=div is not key=value"),
])
def test_a_study_that_does_not_fit_its_grid_is_one_line(tmp_path, change, message):
    make_study(tmp_path, {**STUDY, **change})
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        definition.load(tmp_path)


def test_a_study_setting_of_the_wrong_type_is_one_line():
    with pytest.raises(ConfigError, match=r"^study: .*figure"):
        definition.typed({**STUDY, "figure": "bars"})


@pytest.mark.parametrize("argv, message", [
    (["study=nanda_frac"], "study=nanda_frac runs a grid: add -m (python -m grokking.train -m study=nanda_frac)"),
    (["-m", "scale=smoke"], "scale=smoke picks a grid of a study: add study=<name>; allowed: "),
    (["-m", "study=nanda_frac", "scale=tiny"], "scale=tiny is not an option; allowed: "),
    (["-m", "study=nanda_frac,power_frac"], "study=nanda_frac,power_frac: one study per command"),
])
def test_the_command_line_checks_studies(argv, message):
    with pytest.raises(ConfigError) as e:
        check_command_line(argv)
    assert str(e.value).startswith(message)


def test_every_shipped_study_composes_and_fits_its_grids():
    studies = sorted(p.stem for p in (REPO / "conf" / "study").glob("*.yaml"))
    assert studies == ["grokfast", "nanda_frac", "omnigrok", "pow_mn", "power_frac"]
    for name in studies:
        for scale in ("paper", "smoke"):
            check_command_line(["-m", f"study={name}", f"scale={scale}"])
            cfg = compose_config([f"study={name}", f"scale={scale}"])
            assert cfg.study.name == name and cfg.scale == scale and cfg.study.source


def test_a_grid_launched_again_leaves_out_only_runs_that_ended_for_good(tmp_path):
    cfg = OmegaConf.create({"steps": 1000, "early_stop": None})
    cases = {"completed": ({"status": "completed", "step": 1000}, True),
             "asked_for_more": ({"status": "completed", "step": 500}, False),
             "interrupted": ({"status": "interrupted", "step": 700}, False),
             "running": ({"status": "running", "step": 300}, False),
             "diverged": ({"status": "diverged", "step": 320}, True)}
    for name, (summary, ends) in cases.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
        assert (ended_for_good(cfg, tmp_path / name) is not None) == ends, name
    assert ended_for_good(cfg, tmp_path / "new") is None
    early = OmegaConf.create({"steps": 1000, "early_stop": 0.99})
    (tmp_path / "early").mkdir()
    (tmp_path / "early" / "summary.json").write_text(json.dumps({"status": "completed", "step": 400, "val/acc": 0.995}))
    assert ended_for_good(early, tmp_path / "early") is not None
    assert ended_for_good(cfg, tmp_path / "early") is None  # without the early stop it trains on
    below = OmegaConf.create({"steps": 1000, "early_stop_loss": 0.1})
    (tmp_path / "below").mkdir()
    (tmp_path / "below" / "summary.json").write_text(json.dumps({"status": "completed", "step": 300, "val/loss": 0.08}))
    assert ended_for_good(below, tmp_path / "below") is not None and ended_for_good(cfg, tmp_path / "below") is None


def test_a_packed_grid_launched_again_trains_nothing(tmp_path):
    grid = ["-m", "p=23", "frac=0.5,0.7", "steps=20", "pack=2", "progress=none", "report=false", "threads=1",
            f"out_dir={tmp_path}", "sweep_name=packed"]
    assert cli(grid, cwd=tmp_path).returncode == 0
    runs = sorted((tmp_path / "sweeps" / "packed").glob("*/summary.json"))
    before = [p.stat().st_mtime_ns for p in runs]
    again = cli(grid, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "[grokking] 2 of 2 run(s)" in again.stdout and "ended before: not launched again" in again.stdout
    assert "pack of" not in again.stdout and [p.stat().st_mtime_ns for p in runs] == before
    summary = json.loads((tmp_path / "sweeps" / "packed" / "sweep_summary.json").read_text())
    assert summary["counts"] == {"completed": 2}


def test_a_phase_study_names_each_cell_by_its_most_common_phase(tmp_path):
    phase = {**STUDY, "x": "wd", "y": "model.init_scale", "figure": "phase", "outcome": "phase", "threshold": 0.7,
             "delay": 200, "reference": [{"x": 1.0e-4, "y": 1, "label": "comprehension", "source": "omnigrok"}]}
    make_study(tmp_path, phase, {"wd": "0.001,0.1", "model.init_scale": "1,8", "seed": "0,1,2"})
    at = {("0.001", "1"): [(20, 40)] * 3, ("0.1", "1"): [(20, 40)] * 3,
          ("0.001", "8"): [(400, None), (400, None), (400, 900)], ("0.1", "8"): [(400, 2700), (400, 500), (None, None)]}
    for (wd, alpha), seeds in at.items():
        for seed, (train, val) in enumerate(seeds):
            records = [{"step": s, "train/acc": 1.0 if train is not None and s >= train else 0.1,
                        "val/acc": 1.0 if val is not None and s >= val else 0.1} for s in range(0, 3001, 20)]
            make_run(tmp_path / f"model.init_scale={alpha},seed={seed},wd={wd}",
                     [f"wd={wd}", f"model.init_scale={alpha}", f"seed={seed}"], records)
    write_study_page(tmp_path)
    rows = {(r["wd"], r["model.init_scale"]): r for r in csv.DictReader(open(tmp_path / aggregate.CSV_FILE))}
    assert {k: r["phase"] for k, r in rows.items()} == {
        ("0.001", "1"): "comprehension", ("0.001", "8"): "memorisation", ("0.1", "1"): "comprehension",
        ("0.1", "8"): "comprehension"}  # one grokking, one comprehension, one confusion: a tie goes to the first in PHASES
    assert all(r["median"] == "" for r in rows.values())
    assert rows[("0.1", "8")]["values"] == "seed=0:grokking; seed=1:comprehension; seed=2:confusion"


def test_a_study_over_names_draws_one_line_per_group_with_the_published_points_on_theirs(tmp_path):
    """x is a group's options (grokfast=none,ema,ma), the lines are weight decays; a published
    point names its line as "wd=0.01"."""
    study = {**STUDY, "x": "grokfast", "outcome": "steps_to_val_acc", "threshold": 0.95,
             "reference": [{"x": "ma", "group": "wd=0.01", "value": 790, "source": "README"}]}
    make_study(tmp_path, study, {"grokfast": "none,ema,ma", "wd": "0,0.01", "seed": "0"})
    steps = {"none": 900, "ema": None, "ma": 400}
    for (name, at), wd in ((item, wd) for item in steps.items() for wd in ("0", "0.01")):
        records = [{"step": s, "train/acc": 1.0, "val/acc": 1.0 if at is not None and s >= at else 0.2}
                   for s in range(0, 2001, 100)]
        make_run(tmp_path / f"grokfast={name},seed=0,wd={wd}", [f"grokfast={name}", f"wd={wd}", "seed=0"], records)
    study_cfg, values, _ = definition.load(tmp_path)
    keys, cells = aggregate.collect(tmp_path, study_cfg, values)
    assert keys == ["wd", "grokfast"]
    [fig] = figures(study_cfg, keys, cells)
    assert fig.layout.xaxis.type == "category"
    assert list(fig.layout.xaxis.categoryarray) == ["none", "ema", "ma"]  # the grid's order
    medians = {t.name: (list(t.x), list(t.y)) for t in fig.data if t.error_y.visible}
    assert medians == {"wd=0": (["none", "ma"], [900, 400]), "wd=0.01": (["none", "ma"], [900, 400])}
    nevers = [(t.name, list(t.x)) for t in fig.data if t.text and "not reached" in t.text]
    assert nevers == [("wd=0", ["ema"]), ("wd=0.01", ["ema"])]  # ema never reached it: drawn, not dropped
    [published] = [t for t in fig.data if t.name == "published: README"]
    assert list(published.x) == ["ma"] and list(published.y) == [790]
