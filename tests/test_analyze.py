"""python -m grokking.analyze: metrics recomputed from a run's snapshots, and the plots."""
import json
import subprocess
import sys

import pytest

from grokking.analyze import main
from tests.helpers import REPO, metrics, run

PLOTS = ("curves.png", "progress.png", "spectrum.png", "circle.png")


def analysis(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "analysis" / "metrics.jsonl").read_text().splitlines()]


def test_a_run_without_metrics_is_analysed_from_its_snapshots(tmp_path):
    run(tmp_path, ["p=23", "model.width=64", "steps=60", "checkpoint_every=20", "metrics.every=0", "progress=none"])
    assert "weight_norm" not in metrics(tmp_path)[-1]
    main([str(tmp_path), "--device", "cpu"])
    records = analysis(tmp_path)
    assert [r["step"] for r in records] == [20, 40, 60]
    assert records[-1]["val/acc"] == pytest.approx(metrics(tmp_path)[-1]["val/acc"])
    for key in ("weight_norm", "fourier_ipr", "fourier/top_freqs", "feature_rank/layer1", "effective_rank/layer1",
                "probe_acc/layer1"):
        assert key in records[-1]
    assert all((tmp_path / "analysis" / name).stat().st_size > 1000 for name in PLOTS)


def test_transformer_on_add_gets_progress_measures_with_the_last_key_frequencies(tmp_path):
    run(tmp_path, ["model=transformer", "p=11", "model.width=16", "model.heads=2", "model.d_mlp=32", "steps=20",
                   "checkpoint_every=10", "progress=none"])
    main([str(tmp_path), "--device", "cpu", "--every", "2"])
    records = analysis(tmp_path)
    assert [r["step"] for r in records] == [10, 20]
    assert all(r["key_freqs"] == records[-1]["key_freqs"] for r in records)
    assert {"restricted_loss", "excluded_loss", "feature_rank/block0.mlp", "feature_rank/block0.resid"} <= set(records[0])


def test_s5_is_analysed_without_fourier_plots(tmp_path):
    run(tmp_path, ["op=s5_xy", "model.width=32", "steps=10", "progress=none"])
    main([str(tmp_path), "--device", "cpu"])
    assert "fourier" in analysis(tmp_path)[0]["metrics/skipped"]
    assert (tmp_path / "analysis" / "curves.png").exists() and not (tmp_path / "analysis" / "circle.png").exists()


def test_a_folder_without_snapshots_is_a_one_line_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "grokking.analyze", str(tmp_path)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"grokking.analyze: error: {tmp_path}: no checkpoints/step_*.pt to analyse"]
