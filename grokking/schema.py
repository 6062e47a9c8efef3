"""The typed schema of the config: what each key is, may be, and what role it plays.

The YAML files under grokking/conf hold the values and their comments (the readable table of
contents); the dataclasses here hold each key's type, its allowed range or choices, and its role.
They are registered in Hydra's ConfigStore under ``schema/<group>/<option>`` and each YAML option
names its class in its defaults list, so Hydra's own composition rejects unknown keys, values of
the wrong type and bad choices, for every job of a ``-m`` grid before any job starts.

Every key carries one of three roles, from which the rest of the package derives its rules:

- ``shape``: decides tensor shapes or the structure of the computation (p, model sizes and
  activation, batch size, loss, evaluation schedule, metrics). Runs trained together in a pack
  must agree on all of them.
- ``member``: changes the numbers, not the shapes (seeds, split, lr, weight decay, betas, init
  scale, warm-up, Grokfast strengths, the op among ops with tables of one shape). Members of a pack
  may differ here. Shape and member keys together are a run's identity: they name its folder and
  may not change when the run is continued.
- ``runtime``: does not change what is computed (steps, device, logger, progress, paths). Left out
  of folder names; may change on resume.
"""
from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from grokking.errors import ConfigError

SHAPE, MEMBER, RUNTIME = "shape", "member", "runtime"


def shape(**limits):
    """A key that must agree across runs trained together. ``limits``: see ``check_value``."""
    return field(default=MISSING, metadata={"role": SHAPE, **limits})


def member(**limits):
    return field(default=MISSING, metadata={"role": MEMBER, **limits})


def runtime(**limits):
    return field(default=MISSING, metadata={"role": RUNTIME, **limits})


class Choice(str, Enum):
    """A closed set of names; members compare equal to, print as and serialise as their names."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


def choices(name: str, *options: str) -> type[Choice]:
    """A Choice enum; bound to a module-level name equal to ``name`` so that it pickles."""
    return Choice(name, {o: o for o in options}, module=__name__)


Activation = choices("Activation", "relu", "gelu", "silu", "tanh", "quad", "identity")
Loss = choices("Loss", "ce", "mse", "stablemax")
LossDtype = choices("LossDtype", "float32", "float64", "float16", "bfloat16")
EvalSchedule = choices("EvalSchedule", "linear", "log", "log_linear")
ProgressMode = choices("ProgressMode", "auto", "bar", "lines", "none")
Normalise = choices("Normalise", "unit", "standard")
Embedding = choices("Embedding", "onehot", "learned")
Combine = choices("Combine", "sum", "concat")
MLPInit = choices("MLPInit", "random", "single_freq")
LayerNorm = choices("LayerNorm", "none", "pre", "post")
Readout = choices("Readout", "last", "mean")
TransformerInit = choices("TransformerInit", "nanda", "torch")
WandbMode = choices("WandbMode", "offline", "online", "disabled")
SEQUENCES = ("a b =", "a ∘ b =", "a op b =", "a b c =", "a ∘ b ∘ c =")


# --- root ---------------------------------------------------------------------------------------
@dataclass
class Config:
    data: Any = MISSING
    op: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    split: Any = MISSING
    grokfast: Any = MISSING
    metrics: Any = MISSING
    logger: Any = MISSING
    p: int = shape(min=2)
    frac: float = member(gt=0, max=1)
    wd: float = member(min=0)
    lr: float = member(gt=0)
    seed: int = member()
    steps: int = runtime(min=0)
    batch_size: Optional[int] = shape(min=1)
    loss: Loss = shape()
    loss_dtype: LossDtype = shape()
    eval_every: int = shape(min=1)
    eval_schedule: EvalSchedule = shape()
    eval_per_decade: int = shape(min=1)
    checkpoint_every: int = runtime(min=1)
    early_stop: Optional[float] = runtime(gt=0, max=1)
    early_stop_loss: Optional[float] = runtime(gt=0)
    memorize_at: float = member(gt=0, max=1)
    grok_at: float = member(gt=0, max=1)
    init_from: Optional[str] = member()
    resume: Optional[str] = runtime()
    device: str = runtime()
    threads: Optional[int] = runtime(min=1)
    deterministic: bool = shape()
    compile: bool = shape()
    progress: ProgressMode = runtime()
    progress_every_s: float = runtime(gt=0)
    out_dir: str = runtime()
    sweep_name: str = runtime()
    pack: Optional[int] = runtime(min=1)
    report: bool = runtime()
    objective: Optional[str] = runtime()
    objective_penalty: Optional[float] = runtime()
    study: Optional[Study] = runtime()  # a study's figure, outcome and published points (conf/study)
    scale: str = runtime()  # which grid of a study: paper (its own) or a reduced one (conf/study_scale)


# --- data ---------------------------------------------------------------------------------------
@dataclass
class Arithmetic:
    name: str = shape()


@dataclass
class Digits:
    name: str = shape()
    n_train: int = shape(min=1)
    n_val: Optional[int] = shape(min=1)
    seed: Optional[int] = shape()
    normalise: Normalise = shape()


@dataclass
class Mnist(Digits):
    dir: str = shape()
    download: bool = runtime()
    mirrors: list[str] = field(default_factory=list, metadata={"role": RUNTIME})


@dataclass
class Parity:
    name: str = shape()
    n_bits: int = shape(min=1)
    k: int = member(min=1)
    samples: int = shape(min=2)
    seed: int = shape()


# --- op -----------------------------------------------------------------------------------------
@dataclass
class Op:
    """Ops of one table shape may share a pack: the table's shape is derived, not a key."""

    name: str = member()


@dataclass
class PowOp(Op):
    m: int = member(min=0)
    n: int = member(min=0)


@dataclass
class ExprOp(Op):
    expr: str = member()


# --- model --------------------------------------------------------------------------------------
@dataclass
class Model:
    name: str = shape()
    depth: int = shape(min=1)
    width: int = shape(min=1)
    activation: Activation = shape()
    bias: bool = shape()
    init_scale: float = member(gt=0)


@dataclass
class MLP(Model):
    embedding: Embedding = shape()
    embed_dim: int = shape(min=1)
    combine: Combine = shape()
    init: MLPInit = member()


@dataclass
class Transformer(Model):
    heads: int = shape(min=1)
    d_mlp: int = shape(min=1)
    layernorm: LayerNorm = shape()
    causal: bool = shape()
    readout: Readout = shape()
    sequence: str = shape(choices=SEQUENCES)
    init: TransformerInit = member()


# --- optimizer ----------------------------------------------------------------------------------
@dataclass
class Optimizer:
    name: str = shape()
    lr: float = member(gt=0)
    weight_decay: float = member(min=0)
    warmup_steps: int = member(min=0)
    orthogonal: bool = member()


@dataclass
class Adam(Optimizer):
    betas: list[float] = field(default_factory=list, metadata={"role": MEMBER, "min": 0, "lt": 1, "length": 2})
    eps: float = member(gt=0)


@dataclass
class SGD(Optimizer):
    momentum: float = member(min=0)
    nesterov: bool = member()


# --- split, grokfast, metrics, logger -----------------------------------------------------------
@dataclass
class Split:
    frac: float = member(gt=0, max=1)
    n_train: Optional[int] = member(min=1)
    seed: int = member()


@dataclass
class Grokfast:
    name: str = shape()


@dataclass
class GrokfastEMA(Grokfast):
    alpha: float = member(min=0, lt=1)
    lamb: float = member()


@dataclass
class GrokfastMA(Grokfast):
    window: int = shape(min=1)
    lamb: float = member()


@dataclass
class Metrics:
    every: int = shape(min=0)
    norms_every: int = shape(min=0)
    fourier_every: int = shape(min=0)
    top_freqs: int = shape(min=0)
    rank_every: int = shape(min=0)
    restricted_every: int = shape(min=0)
    key_fve: float = shape(gt=0, max=1)
    key_share: float = shape(gt=0, max=1)
    probe_every: int = shape(min=0)
    probe_ridge: float = shape(gt=0)
    collapse_every: int = shape(min=0)
    nlm_every: int = shape(min=0)
    weight_change_every: int = shape(min=0)
    cka_every: int = shape(min=0)


@dataclass
class Logger:
    name: str = runtime()


@dataclass
class Wandb(Logger):
    mode: Optional[WandbMode] = runtime()
    project: Optional[str] = runtime()
    entity: Optional[str] = runtime()
    group: Optional[str] = runtime()
    run_name: Optional[str] = runtime()
    tags: list[str] = field(default_factory=list, metadata={"role": RUNTIME})
    notes: Optional[str] = runtime()
    dir: Optional[str] = runtime()
    init_timeout: float = runtime(gt=0)
    finish_timeout: float = runtime(min=0)



# --- study (grokking/study: a grid, its outcome and figure, the published points) ---------------
Outcome = choices("Outcome", "steps_to_val_acc", "steps_to_val_loss", "steps_to_train_acc", "final", "phase")
Figure = choices("Figure", "line", "heatmap", "phase")


def setting(default, **limits):
    """A study setting: it never changes a run (runtime); a study YAML may leave it at ``default``."""
    return field(default=default, metadata={"role": RUNTIME, **limits})


@dataclass
class Reference:
    """A published point drawn beside the study's result, with where it comes from."""

    x: Any = MISSING  # the value of the study's x key (a number, or a name such as an op)
    y: Any = setting(None)  # the value of its y key (heat maps and phase diagrams)
    group: Optional[str] = setting(None)  # the line it belongs to, as "key=value" (e.g. "op=div")
    value: Optional[float] = setting(None)  # the published outcome; null for a label only
    label: Optional[str] = setting(None)  # a phase, or what the source says in words
    source: str = setting(MISSING)  # paper, figure or file, and how the number was read


@dataclass
class Study:
    """A question over a grid (the grid itself is hydra.sweeper.params of the study's YAML)."""

    name: str = setting(MISSING)
    title: str = setting(MISSING)
    source: str = setting(MISSING)  # the paper or notebook whose figure this is
    x: str = setting(MISSING)  # the swept key on the figure's x axis
    y: Optional[str] = setting(None)  # the second swept key (figure heatmap or phase)
    repeat: list[str] = field(default_factory=lambda: ["seed"], metadata={"role": RUNTIME})  # keys aggregated over
    outcome: Outcome = setting(Outcome.steps_to_val_acc)
    threshold: Optional[float] = setting(None)  # of a steps_to_* outcome and of phase
    metric: str = setting("val/acc")  # the metric of outcome=final
    delay: int = setting(1000, min=0)  # phase: grokking when validation passes threshold more steps than this after train
    figure: Figure = setting(Figure.line)
    log_x: bool = setting(False)
    log_y: bool = setting(False)
    budget: Optional[int] = setting(None, min=1)  # a step budget drawn on the figure (Power et al.'s 1e5)
    note: Optional[str] = setting(None)  # said on the page (e.g. what the paper says beside its figure)
    scale_note: Optional[str] = setting(None)  # said on the page too: what a reduced scale changes
    reference: list[Reference] = field(default_factory=list, metadata={"role": RUNTIME})

# Each group's options and their classes; a YAML option names its class in its defaults list as
# `/schema/<group>/<class key>@_here_`. `roles` of a group choice itself: GROUP_ROLES.
SCHEMAS: dict[str, dict[str, type]] = {
    "data": {"arithmetic": Arithmetic, "digits": Digits, "mnist": Mnist, "parity": Parity},
    "op": {"op": Op, "pow_mn": PowOp, "expr": ExprOp},
    "model": {"mlp": MLP, "transformer": Transformer},
    "optimizer": {"adam": Adam, "sgd": SGD},
    "split": {"split": Split},
    "grokfast": {"none": Grokfast, "ema": GrokfastEMA, "ma": GrokfastMA},
    "metrics": {"metrics": Metrics},
    "logger": {"none": Logger, "wandb": Wandb},
    "study": {"study": Study},
}
GROUP_ROLES = {"data": SHAPE, "op": MEMBER, "model": SHAPE, "optimizer": SHAPE, "split": MEMBER,
               "grokfast": SHAPE, "metrics": SHAPE, "logger": RUNTIME, "launcher": RUNTIME,
               "experiment": SHAPE, "study": RUNTIME, "scale": RUNTIME}


def register() -> None:
    """Put the schema into Hydra's ConfigStore (idempotent; done when grokking.config is imported)."""
    store = ConfigStore.instance()
    store.store(name="schema", node=Config)
    for group, options in SCHEMAS.items():
        for name, cls in options.items():
            store.store(group=f"schema/{group}", name=name, node=cls)


# --- roles --------------------------------------------------------------------------------------
def fields_of(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


@dataclass(frozen=True)
class KeyInfo:
    role: str
    limits: dict


def key_info(key: str) -> KeyInfo | None:
    """Role and limits of a dotted key (``lr``, ``model.width``, ``logger``), None if unknown."""
    head, _, rest = key.partition(".")
    if head in GROUP_ROLES and not rest:
        return KeyInfo(GROUP_ROLES[head], {})
    if head in SCHEMAS and rest:
        for cls in SCHEMAS[head].values():
            f = fields_of(cls).get(rest)
            if f is not None:
                return KeyInfo(f.metadata["role"], dict(f.metadata))
        return None
    f = fields_of(Config).get(key)
    return KeyInfo(f.metadata["role"], dict(f.metadata)) if f is not None and f.metadata else None


def keys_with_role(role: str) -> list[str]:
    """Every dotted key (and group choice) of that role, over all options of every group."""
    keys = [g for g, r in GROUP_ROLES.items() if r == role]
    keys += [n for n, f in fields_of(Config).items() if f.metadata.get("role") == role]
    for group, options in SCHEMAS.items():
        for cls in options.values():
            keys += [f"{group}.{n}" for n, f in fields_of(cls).items() if f.metadata["role"] == role]
    return list(dict.fromkeys(keys))


def runtime_keys() -> list[str]:
    """Keys that never name a folder and may change when a run is continued."""
    return keys_with_role(RUNTIME)


def identity(config: dict) -> dict:
    """A plain config without its runtime keys (and Hydra's node): what must match on resume."""
    runtime = set(runtime_keys()) | {"hydra"}

    def keep(node: dict, prefix: str) -> dict:
        out = {}
        for k, v in node.items():
            dotted = f"{prefix}{k}"
            if dotted in runtime:
                continue
            out[k] = keep(v, f"{dotted}.") if isinstance(v, dict) else v
        return out

    return keep(config, "")


def plain(cfg: DictConfig) -> dict:
    """The composed config as plain Python values (choices as their names), for files and W&B."""
    own = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # a sweep's job config holds Hydra's too
    return OmegaConf.to_container(own, resolve=True, enum_to_str=True)


def values_by_role(config: dict, role: str) -> dict[str, Any]:
    """{dotted key: value} of a plain config's leaves with that role (group names included)."""
    out = {}

    def walk(node: dict, prefix: str) -> None:
        for k, v in node.items():
            dotted = f"{prefix}{k}"
            info = key_info(dotted)
            if isinstance(v, dict) and k in SCHEMAS and not prefix:
                walk(v, f"{dotted}.")
            elif info is not None and info.role == role:
                out[dotted] = v

    walk(config, "")
    return out


# --- ranges -------------------------------------------------------------------------------------
BOUNDS = (("min", operator.ge, ">="), ("gt", operator.gt, ">"), ("max", operator.le, "<="), ("lt", operator.lt, "<"))


def check_value(key: str, value: Any, limits: dict, shown: str | None = None) -> None:
    """Raise ConfigError if ``value`` is outside ``limits`` (min, gt, max, lt, choices, length);
    the message shows ``shown`` (the value as the user typed it) where given."""
    if value is None or isinstance(value, str) and value.startswith("${"):
        return
    if not isinstance(value, str) and hasattr(value, "__len__"):  # a list (or ListConfig)
        items = list(value)
        if "length" in limits and len(items) != limits["length"]:
            raise ConfigError(f"{key}={items} is invalid; it must have {limits['length']} items")
        for item in items:
            check_value(key, item, {k: v for k, v in limits.items() if k != "length"})
        return
    if "choices" in limits and value not in limits["choices"]:
        raise ConfigError(f"{key}={value!r} is invalid; allowed: {', '.join(map(repr, limits['choices']))}")
    bounds = [(name, ok, sign) for name, ok, sign in BOUNDS if name in limits]
    if not all(ok(value, limits[name]) for name, ok, _ in bounds):
        rule = " and ".join(f"{sign} {limits[name]}" for name, _, sign in bounds)
        raise ConfigError(f"{key}={value if shown is None else shown} is invalid; it must be {rule}")


def check_ranges(cfg: DictConfig) -> None:
    """Check every key of a composed config against its limits (the one place ranges live)."""
    for group, cls in [("", Config), *((g, OmegaConf.get_type(cfg[g])) for g in SCHEMAS if g in cfg)]:
        if not dataclasses.is_dataclass(cls):
            continue  # a node without a schema (an old run's stored config): checked when it was made
        node = cfg[group] if group else cfg
        for name, f in fields_of(cls).items():
            if f.metadata and name in node:
                check_value(f"{group}.{name}".lstrip("."), node[name], f.metadata)
