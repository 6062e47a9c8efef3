"""The launcher configs alone (no cluster): what sbatch would be asked for, site files, the run
folder names and the sweep summary. The real submissions are in test_slurm_launcher.py."""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.plugins import Plugins
from hydra.utils import instantiate
from submitit.slurm.slurm import SlurmExecutor, _make_sbatch_string

from grokking.sweep import MainTask, format_table, write_summary
from grokking.sweep import executor as make_executor
from grokking.config import CONF_DIR
from tests.helpers import FAST, cli

CLUSTER = ["hydra.launcher.partition=debug", "hydra.launcher.gpus_per_node=null",
           "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]


def hydra_cfg(overrides: list[str]):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


@pytest.fixture
def without_srun(monkeypatch):
    """submitit refuses to make a SLURM executor where ``srun`` is not on PATH; these tests only
    build the batch script (submitit's own code), which needs no cluster, so they lift that check."""
    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 2))


def sbatch_lines(overrides: list[str], runs: int = 18) -> list[str]:
    """The #SBATCH lines (and the rest of the script) submitit writes for a grid of ``runs``
    (tests calling it take the ``without_srun`` fixture)."""
    cfg = hydra_cfg(["launcher=slurm", "hydra.sweep.dir=/sweep", *overrides])
    executor = make_executor(instantiate(cfg.hydra.launcher))
    text = _make_sbatch_string(command="python -m x", folder=executor.folder, map_count=runs,
                               **executor._executor.parameters)
    return text.splitlines()


def test_slurm_defaults_ask_for_one_gpu_a_named_job_and_requeue(without_srun):
    cfg = hydra_cfg(["launcher=slurm"])
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.grokking_launcher.launchers.SlurmLauncher"
    assert launcher.max_num_timeout > 0 and launcher.timeout_min > 10
    assert launcher.submitit_folder == f"{cfg.hydra.sweep.dir}/.submitit/%j"
    lines = sbatch_lines([], runs=18)
    for expected in ["#SBATCH --gpus-per-node=1", "#SBATCH --job-name=grokking", "#SBATCH --time=240",
                     "#SBATCH --cpus-per-task=4", "#SBATCH --mem=16GB", "#SBATCH --signal=USR2@120",
                     "#SBATCH --array=0-17%18", "#SBATCH --output=/sweep/.submitit/%A_%a/%A_%a_0_log.out"]:
        assert expected in lines
    assert not any(ln.startswith(("#SBATCH --partition", "#SBATCH --account", "#SBATCH --qos",
                                  "#SBATCH --constraint")) for ln in lines)


def test_every_site_setting_reaches_sbatch(without_srun):
    lines = sbatch_lines([
        "hydra.launcher.partition=gpu", "hydra.launcher.account=proj", "hydra.launcher.qos=high",
        "hydra.launcher.constraint=a100", "hydra.launcher.timeout_min=600", "hydra.launcher.gpus_per_node=2",
        "hydra.launcher.cpus_per_task=8", "hydra.launcher.mem_gb=64", "hydra.launcher.array_parallelism=4",
        "hydra.launcher.name=wd_grid", "hydra.launcher.setup=[module load cuda/12.1,conda activate g]",
        "+hydra.launcher.additional_parameters.mail-type=END"], runs=18)
    for expected in ["#SBATCH --partition=gpu", "#SBATCH --account=proj", "#SBATCH --qos=high",
                     "#SBATCH --constraint=a100", "#SBATCH --time=600", "#SBATCH --gpus-per-node=2",
                     "#SBATCH --cpus-per-task=8", "#SBATCH --mem=64GB", "#SBATCH --array=0-17%4",
                     "#SBATCH --job-name=wd_grid", "#SBATCH --mail-type=END",
                     "module load cuda/12.1", "conda activate g"]:
        assert expected in lines
    # setup lines run in the batch script before srun starts python
    assert lines.index("conda activate g") < next(i for i, ln in enumerate(lines) if ln.startswith("srun"))


def test_cpu_only_overrides_of_the_cluster_tests(without_srun):
    lines = sbatch_lines(CLUSTER, runs=4)
    assert not any("gpu" in ln for ln in lines)
    assert "#SBATCH --partition=debug" in lines and "#SBATCH --cpus-per-task=1" in lines


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    """A search path with site/default.yaml and site/other.yaml, as conf/site would hold them."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "default.yaml").write_text(
        "partition: gpu\naccount: proj\nsetup: [module load cuda/12.1]\ntimeout_min: 720\n")
    (tmp_path / "site" / "other.yaml").write_text("partition: big\n")
    return tmp_path


def test_site_file_applies_to_slurm_and_the_command_line_wins(site_dir: Path):
    search = f"hydra.searchpath=[file://{site_dir}]"
    launcher = hydra_cfg(["launcher=slurm", search]).hydra.launcher
    assert (launcher.partition, launcher.account, list(launcher.setup)) == ("gpu", "proj", ["module load cuda/12.1"])
    assert launcher.timeout_min == 720 and launcher.gpus_per_node == 1  # site value, shipped value
    launcher = hydra_cfg(["launcher=slurm", search, "hydra.launcher.partition=debug"]).hydra.launcher
    assert launcher.partition == "debug" and launcher.account == "proj"
    launcher = hydra_cfg(["launcher=slurm", search, "site@hydra.launcher=other"]).hydra.launcher
    assert launcher.partition == "big" and launcher.account is None


def test_site_file_does_not_touch_other_launchers(site_dir: Path):
    search = f"hydra.searchpath=[file://{site_dir}]"
    assert hydra_cfg([search]).hydra.launcher._target_.endswith("BasicLauncher")
    assert hydra_cfg([search, "launcher=basic"]).hydra.launcher._target_.endswith("BasicLauncher")
    local = hydra_cfg([search, "launcher=local"]).hydra.launcher
    assert local._target_ == "hydra_plugins.grokking_launcher.launchers.LocalLauncher"
    assert "partition" not in local and local.gpus_per_node == 0


def test_shipped_example_is_a_valid_site_file(tmp_path: Path, without_srun):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "default.yaml").write_text((Path(CONF_DIR) / "site" / "site.example.yaml").read_text())
    lines = sbatch_lines([f"hydra.searchpath=[file://{tmp_path}]"])
    assert "#SBATCH --partition=gpu" in lines and "#SBATCH --mail-type=FAIL" in lines


@pytest.mark.parametrize("ours, hydras", [("launcher=slurm", "hydra/launcher=submitit_slurm"),
                                           ("launcher=local", "hydra/launcher=submitit_local")])
def test_hydras_spelling_of_the_submitit_launchers_is_ours(site_dir: Path, ours: str, hydras: str):
    """conf/hydra/launcher/submitit_*.yaml shadow the plugin's configs: the same launcher class,
    values and site file whichever way the launcher is named."""
    search = f"hydra.searchpath=[file://{site_dir}]"
    for extra in ([], [search], [search, "hydra.launcher.timeout_min=5"]):
        assert hydra_cfg([ours, *extra]).hydra.launcher == hydra_cfg([hydras, *extra]).hydra.launcher
    launcher = hydra_cfg([hydras, search]).hydra.launcher
    assert launcher._target_.startswith("hydra_plugins.grokking_launcher.launchers.")
    if "slurm" in hydras:
        assert (launcher.partition, launcher.timeout_min, launcher.exclude) == ("gpu", 720, None)


def test_hydras_spelling_composes_without_warnings_and_checks_types(tmp_path: Path):
    """The plugin's schema still checks the values; its deprecation warning is silenced."""
    proc = cli(["hydra/launcher=submitit_slurm", "--cfg", "hydra", "-p", "hydra.launcher"], cwd=tmp_path)
    assert proc.returncode == 0 and "SlurmLauncher" in proc.stdout and proc.stderr == "", proc.stderr
    proc = cli(["hydra/launcher=submitit_slurm", "hydra.launcher.timeout_min=abc", "--cfg", "hydra"], cwd=tmp_path)
    assert proc.returncode == 1 and "'abc' of type 'str' could not be converted to Integer" in proc.stderr


def test_slurm_without_srun_is_one_line(tmp_path: Path):
    if shutil.which("srun"):
        pytest.skip("srun is on PATH here: this test is about machines without SLURM")
    proc = cli(["-m", "launcher=slurm", *FAST, "steps=5", f"out_dir={tmp_path}"], cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == ("grokking: error: launcher=slurm needs SLURM, but srun is not on PATH "
                                           "here; on this machine run the grid with launcher=local")


def test_launcher_settings_stay_out_of_the_run_folder_name():
    cfg = hydra_cfg(["launcher=slurm", "op=sub", "wd=1.0", *CLUSTER, "hydra.launcher.timeout_min=30"])
    assert cfg.hydra.job.override_dirname == "op=sub,wd=1.0"


def test_hydra_finds_the_launcher_plugins():
    """Hydra takes launchers only from the hydra_plugins package, installed with the project."""
    names = {f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover()}
    assert "hydra_plugins.grokking_launcher.launchers.SlurmLauncher" in names
    assert "hydra_plugins.grokking_launcher.launchers.LocalLauncher" in names


def test_task_of_python_dash_m_pickles_by_name():
    task = pickle.loads(pickle.dumps(MainTask("grokking.train", "main")))
    assert (task.module, task.name) == ("grokking.train", "main")
    assert len(pickle.dumps(task)) < 200


def test_summary_merges_batches_and_the_table_lists_every_run(tmp_path: Path):
    row = {"job_id": "7_0", "status": "completed", "step": 100, "steps": 100, "val/acc": 0.5,
           "run_dir": str(tmp_path / "op=add"), "error": None}
    write_summary(tmp_path, [{**row, "num": 0}])
    write_summary(tmp_path, [{**row, "num": 1, "job_id": "8_0", "status": "failed", "step": None,
                              "run_dir": str(tmp_path / "op=sub"), "error": "ConfigError: bad"}])
    summary = json.loads((tmp_path / "sweep_summary.json").read_text())
    assert [r["job_id"] for r in summary["runs"]] == ["7_0", "8_0"]
    assert summary["counts"] == {"completed": 1, "failed": 1}
    table = format_table(summary["runs"]).splitlines()
    assert table[0].split() == ["job", "status", "step", "val/acc", "run", "folder", "error"]
    assert "100/100" in table[1] and "0.500" in table[1] and table[2].endswith("ConfigError: bad")


@pytest.mark.slow
def test_local_launcher_runs_the_grid_and_reports_a_diverged_run(tmp_path: Path):
    """launcher=local: the same grid machinery on this machine; a run that diverges (NaN) is
    reported as diverged, an outcome of its grid point, while the other completes."""
    proc = cli(["-m", "launcher=local", *FAST, "steps=30", "lr=1e-3,1e30", f"out_dir={tmp_path}/runs",
                "sweep_name=local"], cwd=tmp_path, timeout=300, env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((tmp_path / "runs" / "sweeps" / "local" / "sweep_summary.json").read_text())
    rows = {r["overrides"].split("lr=")[1].split()[0]: r for r in summary["runs"]}
    assert rows["0.001"]["status"] == "completed" and rows["0.001"]["step"] == 30
    assert rows["1e+30"]["status"] == "diverged" and rows["1e+30"]["step"] == 10
    assert rows["1e+30"]["error"].startswith("Diverged: train/loss is nan at step 10")
    assert "diverged" in proc.stdout and "lr=1e+30" in proc.stdout


@pytest.mark.slow
def test_hydras_spelling_runs_a_local_grid(tmp_path: Path):
    """hydra/launcher=submitit_local runs through grokking's launcher: the task of ``python -m``
    is pickled by name (Hydra's own launcher would fail to pickle torch) and the table is printed."""
    proc = cli(["-m", "hydra/launcher=submitit_local", *FAST, "steps=20", "op=add,sub", f"out_dir={tmp_path}/runs",
                "sweep_name=grid"], cwd=tmp_path, timeout=300, env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((tmp_path / "runs" / "sweeps" / "grid" / "sweep_summary.json").read_text())
    assert summary["counts"] == {"completed": 2}
    assert sorted(Path(r["run_dir"]).name for r in summary["runs"]) == ["frac=0.5,op=add,p=47", "frac=0.5,op=sub,p=47"]
    assert "2 of 2 runs completed" in proc.stdout and "Warning" not in proc.stderr


def test_each_job_is_composed_once_and_not_kept_after_its_second_use():
    from omegaconf import OmegaConf

    from grokking.sweep import compose_once

    class Loader:  # Hydra's config loader as the sweeper and the launcher use it
        def __init__(self):
            self.composed = []

        def load_sweep_config(self, master, overrides):
            self.composed.append(tuple(overrides))
            return OmegaConf.create({"seed": int(overrides[0].split("=")[1])})

    loader, master = Loader(), OmegaConf.create({})
    compose_once(loader)
    compose_once(loader)  # a second launcher set-up does not wrap it twice
    first = loader.load_sweep_config(master, ["seed=1"])  # the sweeper's check
    second = loader.load_sweep_config(master, ["seed=1"])  # the launcher's plan
    assert first == second and first is not second and loader.composed == [("seed=1",)]
    second.seed = 5  # the plan owns its copy: the sweeper's is another object
    assert first.seed == 1
    assert loader.load_sweep_config(master, ["seed=1"]).seed == 1  # a third use composes afresh
    assert loader.composed == [("seed=1",), ("seed=1",)]
