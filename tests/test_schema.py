"""The typed schema: one class per option, every key with a role, and the rules derived from roles
(folder names, what may change on resume, ranges checked in one place)."""
import dataclasses
import pickle
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from grokking import schema
from grokking.config import CONF_DIR, compose_config
from grokking.errors import ConfigError
from grokking.record import check_same_run


def all_fields():
    classes = [schema.Config, *(c for options in schema.SCHEMAS.values() for c in options.values())]
    return [f for cls in classes for f in dataclasses.fields(cls) if f.metadata]


def test_every_key_has_one_role_across_the_options_of_its_group():
    assert {f.metadata["role"] for f in all_fields()} <= {schema.SHAPE, schema.MEMBER, schema.RUNTIME}
    for group, options in schema.SCHEMAS.items():
        roles = {}
        for cls in options.values():
            for f in dataclasses.fields(cls):
                assert roles.setdefault(f.name, f.metadata["role"]) == f.metadata["role"], f"{group}.{f.name}"


@pytest.mark.parametrize("key, role", [
    ("p", "shape"), ("model.width", "shape"), ("batch_size", "shape"), ("model.activation", "shape"),
    ("seed", "member"), ("split.seed", "member"), ("lr", "member"), ("optimizer.betas", "member"),
    ("model.init_scale", "member"), ("grokfast.lamb", "member"), ("op", "member"),
    ("steps", "runtime"), ("device", "runtime"), ("logger", "runtime"), ("logger.project", "runtime"),
])
def test_roles_of_the_keys_the_issue_names(key, role):
    assert schema.key_info(key).role == role


def test_every_composed_option_carries_its_class():
    for group, options in schema.SCHEMAS.items():
        for option in (p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml")):
            cfg = compose_config([f"{group}={option}"])
            assert dataclasses.is_dataclass(OmegaConf.get_type(cfg[group])), f"{group}={option}"


def test_runtime_keys_stay_out_of_folder_names():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        hydra_cfg = compose(config_name="config", return_hydra_config=True).hydra
    excluded = set(hydra_cfg.job.config.override_dirname.exclude_keys)
    assert excluded == set(schema.runtime_keys())
    assert {"steps", "device", "logger", "logger.mode", "launcher"} <= excluded and "lr" not in excluded


def test_resume_may_change_runtime_keys_only(tmp_path):
    base = schema.plain(compose_config(["p=47"]))
    check_same_run(base, schema.plain(compose_config(["p=47", "steps=5000", "logger=wandb", "device=cpu"])), tmp_path)
    with pytest.raises(ConfigError, match=r"optimizer.betas: \[0.9, 0.98\] -> \[0.9, 0.99\]"):
        check_same_run(base, schema.plain(compose_config(["p=47", "optimizer.betas=[0.9,0.99]"])), tmp_path)


def test_choices_are_plain_names_in_files_and_compare_as_strings():
    cfg = compose_config(["experiment=nanda2023"])
    assert cfg.model.activation == "relu" and f"{cfg.loss_dtype}" == "float64"
    assert schema.plain(cfg)["model"]["layernorm"] == "none" and type(schema.plain(cfg)["loss"]) is str
    assert pickle.loads(pickle.dumps(cfg)).model.layernorm == "none"  # submitit pickles configs


def test_ranges_of_preset_values_are_checked_in_one_place():
    cfg = compose_config(["p=47"])
    schema.check_ranges(cfg)
    cfg.model.init_scale = -1.0
    with pytest.raises(ConfigError, match=r"model.init_scale=-1.0 is invalid; it must be > 0"):
        schema.check_ranges(cfg)


def test_values_by_role_split_a_config():
    config = schema.plain(compose_config(["p=47", "seed=3"]))
    shape = schema.values_by_role(config, schema.SHAPE)
    member = schema.values_by_role(config, schema.MEMBER)
    assert shape["p"] == 47 and shape["model.width"] == 512 and "seed" not in shape
    assert member["seed"] == 3 and member["optimizer.lr"] == 1e-3 and "steps" not in member
