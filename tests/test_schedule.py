"""Evaluation schedules: which steps each kind evaluates, and one-line errors for bad values."""
import pytest

from grokking.config import check_command_line
from grokking.errors import ConfigError
from grokking.schedule import eval_steps
from tests.helpers import FAST, make_cfg, metrics, run


def steps_of(overrides: list[str]) -> list[int]:
    return sorted(eval_steps(make_cfg(FAST + overrides)))


def test_linear_and_log_schedules():
    assert steps_of(["steps=35", "eval_every=10"]) == [10, 20, 30]
    assert steps_of(["steps=100", "eval_schedule=log", "eval_per_decade=4"]) == [1, 2, 3, 6, 10, 18, 32, 56, 100]


def test_log_linear_is_log_spaced_below_eval_every_then_linear():
    schedule = ["eval_schedule=log_linear", "eval_per_decade=5", "eval_every=100"]
    assert steps_of(["steps=450"] + schedule) == [1, 2, 3, 4, 6, 10, 16, 25, 40, 63, 100, 200, 300, 400]
    # a longer run evaluates the shorter one's steps and more (an extended run matches one long run)
    assert set(steps_of(["steps=450"] + schedule)) < set(steps_of(["steps=1000"] + schedule))


def test_power2022_ships_the_log_linear_schedule():
    steps = sorted(eval_steps(make_cfg(["experiment=power2022", "steps=1000"])))
    assert steps[:10] == [1, 2, 3, 4, 6, 10, 16, 25, 40, 63] and steps[10:] == list(range(100, 1001, 100))


@pytest.mark.parametrize("override, message", [
    (["eval_schedule=cubic"], "eval_schedule=cubic is not an option; allowed: linear, log, log_linear"),
    (["eval_per_decade=0"], "eval_per_decade=0 is invalid; it must be >= 1"),
    (["eval_per_decade=2.5"], "eval_per_decade=2.5 is not an integer (default 20)"),
    (["eval_per_decade=five"], "eval_per_decade=five is not an integer (default 20)"),
    (["eval_every=0"], "eval_every=0 is invalid; it must be >= 1"),
])
def test_bad_schedules_fail_in_one_line_before_anything_runs(override, message):
    with pytest.raises(ConfigError) as error:
        check_command_line(override)
    assert str(error.value) == message


def test_a_log_linear_run_evaluates_on_its_schedule(tmp_path):
    summary = run(tmp_path, FAST + ["steps=25", "eval_schedule=log_linear", "eval_per_decade=2", "eval_every=10"])
    assert summary["status"] == "completed"
    assert [r["step"] for r in metrics(tmp_path)] == [0, 1, 3, 10, 20, 25]
