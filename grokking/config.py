"""The config: where its files live, composing it without Hydra's entrypoint, and checking the
command line's overrides against the typed schema (grokking/schema.py) before Hydra runs them.

Hydra reports an unknown group option or key in several lines, and a bad value deep in a
traceback. Here each becomes one ``ConfigError`` naming the override and what is allowed; for a
``-m`` grid that is before any job is launched: every value of every swept key is checked against
its key's type and range (combinations, such as heads dividing width, when the run starts).
"""
from __future__ import annotations

import copy
import difflib
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, IntervalSweep, Override, Transformer
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException
from omegaconf.nodes import BooleanNode, EnumNode, FloatNode, IntegerNode

from grokking import schema
from grokking.errors import ConfigError
from grokking.record import RunRecord

CONF_DIR = str(Path(__file__).resolve().parent / "conf")
PATH_KEYS = ("resume", "init_from", "out_dir")
_ABSENT = object()

schema.register()
OmegaConf.register_new_resolver("run_name", lambda overrides: overrides or "default", replace=True)
OmegaConf.register_new_resolver("run_dir", lambda resume, default: resume or default, replace=True)
OmegaConf.register_new_resolver("runtime_keys", schema.runtime_keys, replace=True)


def sweep_dir(out_dir: str, sweep_name: str, study: str | None, scale: str) -> str:
    """A grid's folder, ``<out_dir>/sweeps/<sweep_name>``; a study's is fixed,
    ``<out_dir>/studies/<study>_<scale>``, so that the same command again finds its runs."""
    return f"{out_dir}/studies/{study}_{scale}" if study else f"{out_dir}/sweeps/{sweep_name}"


OmegaConf.register_new_resolver("sweep_dir", sweep_dir, replace=True)


def compose_config(overrides: list[str] = ()) -> DictConfig:
    """The config ``python -m grokking.train OVERRIDES`` would run (for tests, scripts, notebooks)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def quote_path_overrides(argv: list[str]) -> list[str]:
    """Quote the values of path overrides for Hydra's grammar.

    Run folders are named from overrides (``runs/op=sub,wd=1.0``); unquoted, Hydra would read the
    ``=`` and ``,`` in ``resume=runs/op=sub,wd=1.0`` as syntax. Already quoted values are kept.
    """
    quoted = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key in PATH_KEYS and value[:1] not in ("'", '"', "") and value != "null":
            arg = f"{key}='{value.replace(chr(39), chr(92) + chr(39))}'"
        quoted.append(arg)
    return quoted


def check_command_line(argv: list[str]) -> None:
    """Raise ConfigError for the first bad override in ``argv`` (the arguments after the program)."""
    args, _ = get_args_parser().parse_known_args(argv)  # Hydra's own flags (-m, --cfg, -cn, ...)
    if args.config_path or args.config_name or args.config_dir or args.help or args.hydra_help \
            or args.info or args.shell_completion:
        return  # another config or no run: leave it to Hydra
    try:
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except OverrideParseException as e:
        raise ConfigError(" ".join(str(e).split())) from None
    overrides = [o for o in overrides if not o.is_hydra_override()]
    sweeps = [o.input_line for o in overrides if o.is_sweep_override()]
    if sweeps and not args.multirun:
        raise ConfigError(f"{sweeps[0]} is a sweep: add -m to run it as a grid")
    packs = [o.input_line for o in overrides if o.key_or_group == "pack" and o.value() not in (None, 1)]
    if packs and not args.multirun:
        raise ConfigError(f"{packs[0]} trains the runs of a -m grid together; a single run has none to pack "
                          "with: add -m and sweep a member key (e.g. -m seed=0,1,2,3), or leave pack out")
    options = group_options(Path(CONF_DIR))
    groups = [o for o in overrides if o.key_or_group in options and not o.is_delete()]
    for o in groups:
        check_group_choice(o, options[o.key_or_group])
    chosen = [f"{o.key_or_group}={choices(o, options[o.key_or_group])[0]}" for o in groups]
    check_study(groups, args.multirun or args.cfg is not None, options)  # --cfg prints a study's config
    base = compose_config(chosen)
    for o in overrides:
        if o.key_or_group not in options and not (o.is_add() or o.is_force_add() or o.is_delete()):
            check_value(o, base)
        if o.key_or_group == "resume":
            for folder in choices(o, []):
                check_resumable(folder)


def check_study(groups: list[Override], multirun: bool, options: dict[str, list[str]]) -> None:
    """``study=<name>`` runs one study's grid (-m; ``multirun`` is also true for --cfg, which only
    prints it); ``scale=`` picks one of its grids; the study's settings must fit its grid, and
    every value of its grid its key (grokking/schema.py)."""
    given = {o.key_or_group: o for o in groups}
    study, scale = given.get("study"), given.get("scale")
    names = choices(study, options["study"]) if study else [None]
    if len(names) > 1:
        raise ConfigError(f"{study.input_line}: one study per command (each has its own folder and page)")
    name, scale_name = names[0], choices(scale, options["scale"])[0] if scale else "paper"
    if name is None:
        if scale is not None:
            raise ConfigError(f"{scale.input_line} picks a grid of a study: add study=<name>; "
                              f"allowed: {', '.join(options['study'])}")
        return
    if not multirun:
        raise ConfigError(f"study={name} runs a grid: add -m (python -m grokking.train -m study={name})")
    scales = ["paper"] + sorted(s.removeprefix(f"{name}_") for s in options.get("study_scale", [])
                                if s.startswith(f"{name}_"))
    if scale_name not in scales:
        raise ConfigError(f"study={name} has no scale {scale_name} (conf/study_scale/{name}_{scale_name}.yaml); "
                          f"allowed: {', '.join(scales)}")
    from grokking.study import definition  # the study's own checks; no training code

    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(config_name="config", overrides=[f"study={name}", f"scale={scale_name}"],
                          return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"study={name}: {' '.join(str(e).split())}") from None
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    definition.check(definition.typed(cfg.study), definition.grid(params))
    for key, value in params.items():
        o = OverridesParser.create().parse_override(f"{key}={value}")
        try:
            check_group_choice(o, options[key]) if key in options else check_value(o, cfg)
        except ConfigError as e:
            raise ConfigError(f"study={name} (hydra.sweeper.params): {e}") from None


def check_resumable(folder: str | None) -> None:
    """There must be a run to continue in ``folder``; checked before Hydra makes it the output folder."""
    record = RunRecord(Path(folder)) if folder is not None else None
    if record is not None and not record.last_path.is_file() and not record.snapshots():
        raise ConfigError(f"resume={folder}: no run to continue there (no checkpoints/last.pt or step_*.pt)")


def group_options(conf_dir: Path) -> dict[str, list[str]]:
    """{group: its option names} for each config group folder."""
    return {d.name: sorted(f.stem for f in d.glob("*.yaml")) for d in conf_dir.iterdir() if d.is_dir()}


def choices(o: Override, options: list[str]) -> list:
    """The values an override gives its key: one, or each of a sweep's."""
    value = o.value()
    if isinstance(value, Glob):
        return value.filter(options)
    if isinstance(value, IntervalSweep):  # a search space (hydra/sweeper=optuna): check its bounds
        return [value.start, value.end]
    return list(o.sweep_iterator()) if o.is_sweep_override() else [value]


def check_group_choice(o: Override, options: list[str]) -> None:
    allowed = f"allowed: {', '.join(options)}"
    values = choices(o, options)
    if not values:
        raise ConfigError(f"{o.input_line} matches no option; {allowed}")
    for value in values:
        if value is not None and str(value) not in options:
            raise ConfigError(f"{in_sweep(o)}{o.key_or_group}={value} is not an option; {allowed}")


def check_value(o: Override, base: DictConfig) -> None:
    """Each value the override gives its key must fit the key's type (by assigning it to the
    composed config, as Hydra would) and its range (schema limits)."""
    key = o.key_or_group
    if OmegaConf.select(base, key, default=_ABSENT) is _ABSENT:
        raise ConfigError(f"{o.input_line}: {unknown_key(key, base)}")
    info = schema.key_info(key)
    trial = copy.deepcopy(base)  # the values are tried here; base keeps the defaults for messages
    for value in choices(o, []):
        try:
            with open_dict(trial):  # a key under a node without schema (an old run's config) may be new
                OmegaConf.update(trial, key, value, merge=False)
            converted = OmegaConf.select(trial, key)
            if isinstance(converted, bool) and not isinstance(value, bool):
                raise OmegaConfBaseException()  # OmegaConf reads 1 as true: a typo more often than not
        except OmegaConfBaseException:
            raise ConfigError(f"{in_sweep(o)}{key}={Transformer.str(value)} {type_problem(base, key, value)}") from None
        if info is not None:
            try:
                schema.check_value(key, converted, info.limits, shown=Transformer.str(value))
            except ConfigError as e:
                raise ConfigError(f"{in_sweep(o)}{e}") from None


def in_sweep(o: Override) -> str:
    return f"in {o.input_line}: " if o.is_sweep_override() else ""


def unknown_key(key: str, base: DictConfig) -> str:
    parent, _, name = key.rpartition(".")
    node = OmegaConf.select(base, parent) if parent else base
    if not isinstance(node, DictConfig):
        return f"there is no setting {key} ({parent} has no settings under it)"
    known = [str(k) for k in node.keys()]
    close = difflib.get_close_matches(name, known, n=3)
    where = f"{parent} has" if parent else "the settings are"
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return f"there is no setting {key}; {hint}{where}: {', '.join(known)}"


def type_problem(base: DictConfig, key: str, value) -> str:
    """Why the schema refused ``value`` for ``key``, in words, with the default as an example."""
    parent, _, name = key.rpartition(".")
    node = (OmegaConf.select(base, parent) if parent else base)._get_node(name)
    default = OmegaConf.select(base, key)
    example = "" if default is None else f" (default {default})"
    if value is None:
        return f"cannot be null (default {default})"
    if isinstance(node, BooleanNode):
        return "is not true or false"
    if isinstance(node, IntegerNode):
        return f"is not an integer{example}"
    if isinstance(node, FloatNode):
        return f"is not a number{example}"
    if isinstance(node, EnumNode):
        return f"is not an option; allowed: {', '.join(node.enum_type.__members__)}"
    if isinstance(node, ListConfig):
        return f"is not a list like {str(OmegaConf.to_container(node)).replace(' ', '')}"
    if isinstance(node, DictConfig):
        return f"replaces a section; set its keys instead: {', '.join(map(str, node.keys()))}"
    return f"does not fit {key}{example}"
