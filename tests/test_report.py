"""python -m grokking.report: the run report written from checkpoints (with its cache), the tabs
that apply or say why not, the phases, the sweep table's status, and bad input."""
import subprocess
import sys
from pathlib import Path

import pytest

from grokking.report.cache import load_run, pick
from grokking.report.cli import main
from grokking.report.sweep import status
from grokking.report.tabs import build_tabs
from grokking.report.tabs.common import draw_marks, phases
from tests.helpers import REPO, run

SMALL_MLP = ["p=23", "model.width=64", "steps=60", "checkpoint_every=20", "progress=none"]


def test_pick_spreads_the_snapshots_and_keeps_both_ends():
    paths = [Path(f"step_{i:07d}.pt") for i in range(100)]
    chosen = pick(paths, 5)
    assert [int(p.stem[5:]) for p in chosen] == [0, 25, 50, 74, 99]
    assert pick(paths[:3], 5) == paths[:3]


class FakeRun:
    """What phases() reads: the evaluations and the milestone thresholds."""

    def __init__(self, history):
        self.history, self.snapshots = history, []
        self.cfg = type("Cfg", (), {"memorize_at": 0.99, "grok_at": 0.99})()


def record(step, train_acc, val_loss, val_acc, restricted=None):
    return {"step": step, "train/acc": train_acc, "val/loss": val_loss, "val/acc": val_acc, "restricted_loss": restricted}


def test_phases_follow_the_restricted_loss_when_it_was_logged():
    history = [record(0, 0.0, 4.0, 0.0, 4.0), record(50, 0.5, 4.5, 0.0, 4.5), record(100, 1.0, 6.0, 0.0, 5.0),
               record(200, 1.0, 7.0, 0.1, 3.0), record(300, 1.0, 4.0, 0.5, 2.4), record(400, 1.0, 0.9, 1.0, 0.3),
               record(500, 1.0, 0.05, 1.0, 0.03)]
    # memorised at 100 (restricted 5.0); restricted halves (<= 2.5) at 300; val within 2x of it at 500
    assert phases(FakeRun(history)) == [("memorisation", 50, 100), ("circuit formation", 100, 300),
                                        ("clean-up", 300, 500)]


def test_phases_without_progress_measures_use_the_validation_loss_and_the_grokking_step():
    history = [record(0, 0.0, 4.0, 0.0), record(10, 0.5, 5.0, 0.0), record(20, 1.0, 8.0, 0.0),
               record(30, 1.0, 3.9, 0.6), record(40, 1.0, 0.1, 0.995), record(50, 1.0, 0.05, 1.0)]
    assert phases(FakeRun(history)) == [("memorisation", 10, 20), ("circuit formation", 20, 30), ("clean-up", 30, 40)]
    unmemorised = [record(0, 0.0, 4.0, 0.0), record(10, 0.5, 5.0, 0.0)]
    assert phases(FakeRun(unmemorised)) == []


def test_marks_are_drawn_on_every_subplot():
    from plotly.subplots import make_subplots

    run = FakeRun([record(0, 0.0, 4.0, 0.0), record(10, 0.5, 5.0, 0.0), record(20, 1.0, 8.0, 0.0),
                   record(30, 1.0, 3.9, 0.6), record(40, 1.0, 0.1, 0.995), record(50, 1.0, 0.05, 1.0)])
    fig = make_subplots(rows=2, cols=2)
    draw_marks(fig, run, log_x=True)
    shapes = [s.to_plotly_json() for s in fig.layout.shapes]
    # three phase bands and two milestone lines on each of the four subplots
    assert sorted((s["xref"], s["yref"]) for s in shapes) == sorted(
        (f"x{k}", f"y{k} domain") for k in ("", "2", "3", "4") for _ in range(5))
    assert {(s["type"], s["x0"], s["x1"]) for s in shapes} == {
        ("rect", 10, 20), ("rect", 20, 30), ("rect", 30, 40), ("line", 20, 20), ("line", 40, 40)}
    assert [a.text for a in fig.layout.annotations] == ["memorisation", "circuit formation", "clean-up"]
    assert fig.layout.annotations[0].x == pytest.approx(1.0)  # log10 of step 10 on a log axis


def test_a_run_without_metrics_gets_its_report_from_the_checkpoints_and_a_cache(tmp_path, capsys):
    run(tmp_path, SMALL_MLP + ["metrics.every=0"])
    main([str(tmp_path), "--quiet", "--device", "cpu"])
    page = (tmp_path / "report.html").read_text()
    assert page.count('class="plot"') >= 8 and "Not shown for this run: the model is an MLP" in page
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'report.html'}")
    cache = tmp_path / "report" / "cache.pt"
    stamp = cache.stat().st_mtime_ns
    data = load_run(tmp_path, progress=False)
    assert cache.stat().st_mtime_ns == stamp  # every snapshot came from the cache
    assert [s.step for s in data.snapshots] == [0, 20, 40, 60] and data.snapshots[0].rebuilt
    assert data.snapshots[-1].stats["val/acc"] == pytest.approx(data.summary["val/acc"])
    assert "weight_norm" in data.snapshots[-1].stats and "fourier_ipr" in data.snapshots[-1].stats


@pytest.mark.slow
def test_s5_has_no_fourier_tabs_and_says_why(tmp_path):
    run(tmp_path, ["op=s5_xy", "model.width=32", "steps=20", "checkpoint_every=10", "progress=none"])
    tabs = {t.title: t for t in build_tabs(load_run(tmp_path, progress=False))}
    for title in ("Fourier", "Neurons", "Mechanism"):
        assert "modulus" in tabs[title].absent, (title, tabs[title].absent)
    assert tabs["Training"].figures and tabs["Model output"].figures and not tabs["Model output"].absent


def test_status_names_a_diverged_run():
    assert status({"status": "failed", "error": "FloatingPointError: training diverged: train/loss is NaN"}) == "diverged"
    assert status({"status": "failed", "error": "ValueError: x"}) == "failed"
    assert status({"status": "completed"}) == "completed"


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "{missing}: no such folder; give a run folder or a sweep folder"),
    (["{empty}"], "{empty} is neither a run folder (no checkpoints/ or summary.json) nor a sweep folder (no run folders inside)"),
    (["{empty}", "--snapshots", "1"], "--snapshots=1 is invalid; it must be an integer >= 2"),
])
def test_bad_input_is_one_line(tmp_path, capsys, args, message):
    names = {"missing": tmp_path / "missing", "empty": tmp_path}
    with pytest.raises(SystemExit) as stop:
        main([a.format(**names) for a in args])
    assert stop.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"grokking: error: {message.format(**names)}"]


def test_the_module_runs_from_the_command_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "grokking.report", str(tmp_path / "nothing")], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert (result.returncode, result.stderr) == (2, f"grokking: error: {tmp_path / 'nothing'}: no such folder; "
                                                      "give a run folder or a sweep folder\n")
