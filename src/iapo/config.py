"""Typed, validated `params.yaml`: paper hyperparameters, variants and scales, resolved per run."""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from iapo.errors import ConfigError

DEFAULT_PARAMS = Path("params.yaml")
Family = Literal["direct", "iterative", "direct_flow"]
ArchName = Literal["A", "B"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _on_off(value: object) -> object:
    """YAML 1.1 reads a bare `on` / `off` as true / false: take them back as the words."""
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


OnOff = Annotated[Literal["off", "on"],
                  BeforeValidator(_on_off, json_schema_input_type=Literal["off", "on"] | bool)]


class Training(_Strict):
    """Table 7 and the settings the paper leaves to the code (see params.yaml comments)."""

    gamma: float = Field(gt=0, le=1)
    tau: float = Field(gt=0, le=1)
    lr: float = Field(gt=0)
    batch_size: int = Field(gt=0)
    initial_random_steps: int = Field(ge=0)
    replay_size: int = Field(gt=0)
    updates_per_step: int = Field(gt=0)
    update_schedule: Literal["per_step", "per_episode"]
    target_hard_copy_every: int = Field(ge=0)
    n_action_samples: int = Field(gt=0)
    n_target_action_samples: int = Field(gt=0)
    beta_acting: float
    pessimism_std: Literal["population", "unbiased"]
    policy_q: Literal["target", "online"]
    alpha_init: float = Field(gt=0)
    log_sigma_bounds: list[float] = Field(min_length=2, max_length=2)
    log_sigma_bound_reg: float = Field(ge=0)
    truncated_obs: bool
    # Fast path: Q̂ and ∇_a Q̂ inside J by hand with stacked Q members, one gradient of J
    # per optimizer iteration; false = the reference autograd path (same samples, same math).
    fused: bool = True
    # CUDA graphs of the update and of acting on a CUDA device (`iapo.graphs`); elsewhere the same
    # computation runs eagerly. How the run is executed, not what it computes: not in the params hash.
    graphs: OnOff = "off"

    @model_validator(mode="after")
    def _check(self) -> Training:
        lo, hi = self.log_sigma_bounds
        if not lo < hi:
            raise ValueError(f"log_sigma_bounds must be [low, high] with low < high, got {lo}, {hi}")
        if self.n_target_action_samples > self.n_action_samples:
            raise ValueError("n_target_action_samples cannot exceed n_action_samples")
        return self


class Network(_Strict):
    """Table 2 (policy networks)."""

    n_layers: int = Field(gt=0)
    n_units: int = Field(gt=0)
    nonlinearity: Literal["relu", "elu", "leaky_relu", "tanh"]


class QArchitecture(Network):
    """Tables 3 and 4 (Q-value network architectures A and B)."""

    layer_norm: bool
    connectivity: Literal["sequential", "highway"]


class PerFamily(_Strict):
    direct: float
    iterative: float


class ArchPerFamily(_Strict):
    direct: ArchName
    iterative: ArchName


class EnvParams(_Strict):
    """Tables 5-6 (Q architecture) and A.4 (training β) for one environment."""

    q_arch: ArchPerFamily
    beta: PerFamily


class ModelBased(_Strict):
    """Appendix A.5: model networks (Table 8) and model-based value estimation (Table 9)."""

    n_layers: int = Field(gt=0)
    n_units: int = Field(gt=0)
    horizon: int = Field(ge=0)
    retrace_lambda: float = Field(ge=0, le=1)
    pretrain_updates: int = Field(ge=0)
    model_value_targets: bool


class Variant(_Strict):
    """A named agent: an optimizer family, a value estimator, and overrides of the per-env tables."""

    family: Family
    value: Literal["model_free", "model_based"] = "model_free"
    beta: float | None = None
    q_arch: ArchName | None = None
    n_iters: int = Field(default=1, gt=0)
    init_sigma: float = Field(default=1.0, gt=0)
    input_norm: Literal["layernorm", "standardize"] = "layernorm"
    n_flows: int = Field(default=2, gt=0)
    pessimism_std: Literal["population", "unbiased"] | None = None
    """σ_Q of eq. 13 for this variant (default: `training.pessimism_std`)."""

    @model_validator(mode="after")
    def _check(self) -> Variant:
        if self.family != "iterative" and self.n_iters != 1:
            raise ValueError("n_iters applies to the iterative family only (direct is one pass)")
        return self

    @property
    def table_family(self) -> Literal["direct", "iterative"]:
        """Column of the per-environment tables (Tables 5-6, A.4): direct+flow is a direct agent."""
        return "iterative" if self.family == "iterative" else "direct"


class Group(_Strict):
    """One block of a scale's run grid: every env × every variant listed, `seeds` seeds each."""

    purpose: str = ""
    envs: list[str] = Field(min_length=1)
    variants: list[str] = Field(min_length=1)
    steps: int | None = Field(default=None, gt=0)
    seeds: int | None = Field(default=None, gt=0)
    """This group's seed count (default: the scale's `seeds`): spend seeds where they decide a claim."""


DiagnosticOption = str | int | float | bool


class DiagnosticJob(_Strict):
    """`iapo diagnose NAME` on every finished run of the listed variants, with these options."""

    variants: list[str] = Field(min_length=1)
    envs: list[str] | None = None
    """Only the runs of these envs (default: every env the variants run on)."""
    options: dict[str, DiagnosticOption] = Field(default_factory=dict)
    donor: str | None = None
    """Variant whose run (same env and seed) lends its optimizer: passed as --optimizer-from."""


class Scale(_Strict):
    """How much is run: the run grid (groups of envs × variants), seeds, steps, cadence, diagnostics."""

    grid: list[Group] = Field(min_length=1)
    seeds: int = Field(gt=0)
    steps: int = Field(gt=0)
    steps_per_env: dict[str, int] = Field(default_factory=dict)
    initial_random_steps: int | None = Field(default=None, ge=0)
    eval_every: int = Field(gt=0)
    eval_episodes: int = Field(gt=0)
    log_every: int = Field(gt=0)
    checkpoint_steps: list[int] = Field(min_length=1)
    resume_every: int = Field(gt=0)
    diagnostics: dict[str, DiagnosticJob] = Field(default_factory=dict)

    def describe(self) -> str:
        """What the scale trains, in one line: "9 env × variant pairs in 3 groups, 3–8 seeds (40 runs),
        1500–3000 env steps" (each range from the groups' own settings)."""

        def span(values: list[int]) -> str:
            return f"{min(values)}" if min(values) == max(values) else f"{min(values)}–{max(values)}"

        pairs = self.runs()
        seeds = [self.seeds_of(e, v) for e, v in pairs]
        return (f"{len(pairs)} env × variant pairs in {len(self.grid)} groups, {span(seeds)} seeds "
                f"({sum(seeds)} runs), {span([self.steps_of(e, v) for e, v in pairs])} env steps")

    def runs(self) -> list[tuple[str, str]]:
        """(env, variant) of every run of the grid, in the order the groups list them."""
        return [(env, variant) for g in self.grid for env in g.envs for variant in g.variants]

    def group_of(self, env: str, variant: str) -> Group | None:
        return next((g for g in self.grid if env in g.envs and variant in g.variants), None)

    def seeds_of(self, env: str, variant: str) -> int:
        """A group's `seeds`, else the scale's: the run is trained for seeds 0 … seeds_of - 1."""
        group = self.group_of(env, variant)
        return group.seeds if group is not None and group.seeds is not None else self.seeds

    def steps_of(self, env: str, variant: str) -> int:
        """A group's `steps`, else `steps_per_env[env]`, else `steps`."""
        group = self.group_of(env, variant)
        if group is not None and group.steps is not None:
            return group.steps
        return self.steps_per_env.get(env, self.steps)


class Logging(_Strict):
    """What a training run writes besides its CSVs, snapshots and run.json. Never how it trains, so
    not part of a run's settings (`RunConfig`) or its params hash: switching it on or off resumes a run."""

    tensorboard: bool = False
    """Also write TensorBoard event files, RUN/tensorboard/ (`iapo train --tensorboard`, `iapo.curves`)."""


class Params(_Strict):
    """The whole of `params.yaml`."""

    scale: str
    logging: Logging = Field(default_factory=Logging)
    training: Training
    policy: Network
    q_architectures: dict[ArchName, QArchitecture]
    model_based: ModelBased
    envs: dict[str, EnvParams]
    variants: dict[str, Variant]
    scales: dict[str, Scale]

    @model_validator(mode="after")
    def _cross_check(self) -> Params:
        _one_of("scale", self.scale, self.scales)
        for arch in ("A", "B"):
            if arch not in self.q_architectures:
                raise ValueError(f"q_architectures: architecture {arch!r} is missing")
        for name, scale in self.scales.items():
            self._check_scale(name, scale)
        return self

    def _check_scale(self, name: str, scale: Scale) -> None:
        from iapo.layout import REGISTRY

        where = f"scales.{name}"
        for env in scale.steps_per_env:
            _one_of(f"{where}.steps_per_env", env, self.envs)
        for i, group in enumerate(scale.grid):
            for env in group.envs:
                _one_of(f"{where}.grid[{i}].envs", env, self.envs)
            for variant in group.variants:
                _one_of(f"{where}.grid[{i}].variants", variant, self.variants)
        runs = scale.runs()
        twice = sorted({f"{e} × {v}" for e, v in runs if runs.count((e, v)) > 1})
        if twice:
            raise ValueError(f"{where}.grid lists a run more than once: {', '.join(twice)}; "
                             "keep each env × variant in one group")
        for diag, job in scale.diagnostics.items():
            _one_of(f"{where}.diagnostics", diag, REGISTRY)
            for variant in [*job.variants, *([job.donor] if job.donor else [])]:
                _one_of(f"{where}.diagnostics.{diag}.variants", variant, self.variants)
            for env in job.envs or []:
                _one_of(f"{where}.diagnostics.{diag}.envs", env, self.envs)


def _one_of(key: str, value: str, allowed: dict | list, hint: str = "") -> None:
    if value not in allowed:
        close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"{key}: unknown value {value!r}{guess}; allowed: {', '.join(sorted(allowed))}{hint}"
        )


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate `params.yaml`; every problem is reported with its key path."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: file not found. Run from the repository root or pass --params PATH."
        )
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(
            f"{path}: {err.error_count()} invalid setting(s):\n" + describe_errors(err)
            + "\nFix these keys (see the comments in params.yaml for the allowed values)."
        ) from None


def describe_errors(err: ValidationError) -> str:
    """One line per problem: the key path, what is wrong and the value found."""
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "value_error":  # our own validators: the message names key and value
            lines.append(f"  {key}: {msg}" if key else f"  {msg}")
        else:
            got = "" if e["type"] == "missing" else f" (got {e.get('input')!r})"
            lines.append(f"  {key or '(top level)'}: {msg}{got}{_yaml_number_hint(e.get('input'))}")
    return "\n".join(lines)


def _yaml_number_hint(value: object) -> str:
    """Why a number-looking text was refused: PyYAML (YAML 1.1) reads 3e-4 as text, since it wants a
    dot in the mantissa (3.0e-4); a quoted number is text too."""
    if not isinstance(value, str):
        return ""
    try:
        float(value)
    except ValueError:
        return ""
    mantissa, _, exponent = value.lower().partition("e")
    if exponent and "." not in mantissa:
        return (f": YAML reads {value} as text, not a number (it needs a dot in the mantissa); "
                f"write {mantissa}.0e{exponent}")
    return f": {value!r} is text, not a number; write it without quotes"


PIPELINE_CONFIG = {"scale": "the scale to run, a preset of params.yaml `scales`; "
                            "default: params.yaml `scale`"}
"""The `snakemake --config` keys the workflow honours. Every job reads its settings from params.yaml
itself (`iapo train --params`), so any other override would be validated and then ignored."""


def check_pipeline_config(overrides: dict, configfiles: list[Path],
                          params_file: Path = DEFAULT_PARAMS) -> None:
    """Refuse `snakemake --config KEY=…` for a key the workflow does not honour, and a
    `--configfile` other than params.yaml, with a message naming the key and the allowed ones."""
    allowed = "; ".join(f"{key} ({what})" for key, what in PIPELINE_CONFIG.items())
    for key in overrides:
        if key not in PIPELINE_CONFIG:
            close = difflib.get_close_matches(key, list(PIPELINE_CONFIG), n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"--config {key}=…: no job of the workflow reads {key!r}{guess}. Allowed --config keys: "
                f"{allowed}. Every other setting is read from {params_file} by each job, so change it "
                "there (the run's params hash in run.json records it).")
    for file in configfiles:
        if Path(file).resolve() != params_file.resolve():
            raise ConfigError(
                f"--configfile {file}: the jobs read their settings from {params_file}, not from this "
                f"file, so its values would be ignored. Edit {params_file} instead, and pick the scale "
                "with --config scale=….")


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs, resolved from params.yaml for (env, variant, seed, scale)."""

    env: str
    variant: str
    seed: int
    scale: str
    family: Family
    value: str
    steps: int
    beta: float
    q_arch: ArchName
    n_iters: int
    init_sigma: float
    input_norm: str
    n_flows: int
    initial_random_steps: int
    eval_every: int
    eval_episodes: int
    log_every: int
    checkpoint_steps: tuple[int, ...]
    resume_every: int
    training: Training
    policy: Network
    q_architecture: QArchitecture
    model_based: ModelBased

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("training", "policy", "q_architecture", "model_based"):
            d[key] = getattr(self, key).model_dump()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """Inverse of `to_dict` (checkpoints carry their run's settings)."""
        d = dict(d)
        # snapshots written while the Q products could be bf16 carry `precision`: their weights load
        # the same (a resume of a bf16 run is refused by its params hash)
        d["training"] = Training.model_validate({k: v for k, v in d["training"].items() if k != "precision"})
        d["policy"] = Network.model_validate(d["policy"])
        d["q_architecture"] = QArchitecture.model_validate(d["q_architecture"])
        d["model_based"] = ModelBased.model_validate(d["model_based"])
        d["checkpoint_steps"] = tuple(d["checkpoint_steps"])
        return cls(**d)

    def params_hash(self) -> str:
        """sha256 of the settings that decide how the run is computed (not how long it runs)."""
        d = self.to_dict()
        for key in ("steps", "checkpoint_steps", "resume_every"):
            d.pop(key)
        d["training"].pop("graphs")
        # runs hashed while the Q products could be bf16 recorded `precision: fp32`, the only
        # precision there is now: kept in the hash so that their folders still resume and match
        d["training"]["precision"] = "fp32"
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _training_of(training: Training, variant: Variant) -> Training:
    """The training settings of a variant: `training`, with the variant's σ_Q form if it sets one."""
    if variant.pessimism_std is None:
        return training
    return training.model_copy(update={"pessimism_std": variant.pessimism_std})


def resolve(
    params: Params, env: str, variant: str, seed: int, scale: str | None = None,
    steps: int | None = None,
) -> RunConfig:
    """Resolve one run; unknown env / variant / scale raise `ConfigError` listing the choices."""
    scale = scale or params.scale
    _one_of("scale", scale, params.scales)
    _one_of("environment", env, params.envs, hint=" (or the gymnasium ID of one, e.g. Hopper-v5 for "
            "Hopper-v2: `iapo envs` lists them)")
    _one_of("variant", variant, params.variants)
    sc, v, e = params.scales[scale], params.variants[variant], params.envs[env]
    n_steps = steps if steps is not None else sc.steps_of(env, variant)
    if n_steps <= 0:
        raise ConfigError(f"--steps must be positive, got {n_steps}")
    arch = v.q_arch or getattr(e.q_arch, v.table_family)
    warmup = sc.initial_random_steps
    return RunConfig(
        env=env, variant=variant, seed=seed, scale=scale, family=v.family, value=v.value,
        steps=n_steps, beta=v.beta if v.beta is not None else getattr(e.beta, v.table_family),
        q_arch=arch, n_iters=v.n_iters, init_sigma=v.init_sigma, input_norm=v.input_norm,
        n_flows=v.n_flows,
        initial_random_steps=params.training.initial_random_steps if warmup is None else warmup,
        eval_every=sc.eval_every, eval_episodes=sc.eval_episodes, log_every=sc.log_every,
        checkpoint_steps=tuple(sorted({s for s in sc.checkpoint_steps if s <= n_steps} | {n_steps})),
        resume_every=sc.resume_every, training=_training_of(params.training, v), policy=params.policy,
        q_architecture=params.q_architectures[arch], model_based=params.model_based,
    )
