"""Typed, validated `params.yaml`: paper hyperparameters, variants and scales, resolved per run."""

from __future__ import annotations

import difflib
import hashlib
import json
import textwrap
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Literal, TypeGuard, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo

from iapo.errors import ConfigError, SummaryError
from iapo.layout import RunKey

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
    """Table 7 and the settings the paper leaves to the authors' code (original_code.md)."""

    gamma: float = Field(
        gt=0, le=1, description="Discount factor γ of the return, per env step (Table 7: 0.99).")
    tau: float = Field(
        gt=0, le=1,
        description="Polyak rate τ of the target Q-networks: after every update, target ← τ · online + "
        "(1 − τ) · target (Table 7: 0.005).")
    lr: float = Field(
        gt=0,
        description="Adam learning rate of every network (policy optimizer, Q-networks, model) and of the "
        "temperature α (Table 7: 3e-4).")
    batch_size: int = Field(
        gt=0, description="Transitions in the replay batch of each update (Table 7: 256).")
    initial_random_steps: int = Field(
        ge=0,
        description="Env steps of uniformly random actions before the first update (Table 7: 5000); a scale "
        "may shrink it (`scales.<scale>.initial_random_steps`).")
    replay_size: int = Field(
        gt=0, description="Capacity of the replay buffer, in transitions (Table 7: 1e6).")
    updates_per_step: int = Field(
        gt=0,
        description="Updates per env step once the random warm-up is over: the update-to-data ratio "
        "(original_code.md §1.7: 1).")
    update_schedule: Literal["per_step", "per_episode"] = Field(
        description="When the updates run: per_step, `updates_per_step` after every env step, interleaved "
        "with acting (SAC [32]); per_episode, a burst of `updates_per_step` × the episode's length after "
        "each episode ends (the authors' code, original_code.md §1.7).")
    target_hard_copy_every: int = Field(
        ge=0,
        description="Every this many updates the target Q-networks are set to a copy of the online ones, "
        "in place of that update's Polyak average; 0 = Polyak averaging only (the paper), 200 = the "
        "authors' code's hybrid (original_code.md §1.6).")
    n_action_samples: int = Field(
        gt=0,
        description="N: action samples per state that estimate the objective J and its gradient, and the "
        "KL term of the Bellman target (B.4; original_code.md §2.4: 10).")
    n_target_action_samples: int = Field(
        gt=0,
        description="Action samples per next state for Q̂ in the Bellman target (the KL term uses all N); "
        "at most `n_action_samples` (original_code.md §1.4: 1).")
    beta_acting: float = Field(
        description="Pessimism β of the objective while collecting data and evaluating (A.4: 1); training "
        "uses the per-environment β of `envs`.")
    pessimism_std: Literal["population", "unbiased"] = Field(
        description="σ_Q of eq. 13, the spread of the two Q-estimates that β multiplies: population (the "
        "paper; β = 1 gives min(Q₁, Q₂)) or unbiased (|Q₁ − Q₂|/√2, the authors' code, original_code.md "
        "§1.3). A variant may set its own.")
    policy_q: Literal["target", "online"] = Field(
        description="Which Q-networks enter the policy objective J: target (the authors' code, "
        "original_code.md §1.5) or online (SAC [32]).")
    alpha_init: float = Field(
        gt=0,
        description="Initial entropy temperature α, which is then learned (original_code.md §1.5: 1).")
    log_sigma_bounds: list[float] = Field(
        min_length=2, max_length=2,
        description="Initial [low, high] of the learnable soft bounds on the policy's log σ, low < high "
        "(original_code.md §1.1: [-10, 0.5]).")
    log_sigma_bound_reg: float = Field(
        ge=0,
        description="Weight of the regulariser Σ(high − low) on the width of the log σ bounds, added to the "
        "policy loss divided by K × batch size (original_code.md §1.1: 0.01).")
    truncated_obs: bool = Field(
        description="Ant and Humanoid observe the 27/45-dim state without contact forces, as the authors' "
        "code (original_code.md §7); false = gymnasium's full observation. No effect on other envs.")
    fused: bool = Field(
        default=True,
        description="Fast path: Q̂ and ∇ₐQ̂ inside J computed by hand with stacked Q-network members, one "
        "gradient of J per optimizer iteration; false = the reference autograd path (same samples, same "
        "math, other rounding).")
    graphs: OnOff = Field(
        default="off",
        description="on: CUDA graphs of the update and of acting on a CUDA device (`iapo.graphs`); "
        "elsewhere the same computation runs eagerly. How a run executes, not what it computes: not in "
        "the params hash.")

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

    n_layers: int = Field(gt=0, description="Hidden layers of the network.")
    n_units: int = Field(gt=0, description="Units in each hidden layer.")
    nonlinearity: Literal["relu", "elu", "leaky_relu", "tanh"] = Field(
        description="Activation function of the hidden layers.")


class QArchitecture(Network):
    """Tables 3 and 4 (Q-value network architectures A and B)."""

    layer_norm: bool = Field(
        description="LayerNorm between each hidden layer's linear map and its activation (A: false, "
        "B: true).")
    connectivity: Literal["sequential", "highway"] = Field(
        description="sequential: a plain stack of layers (A); highway: every hidden layer after the first "
        "is a gated block h' = g ⊙ h + (1 − g) ⊙ f(h) (B).")


class PerFamily(_Strict):
    """A training β per optimizer family (the columns of A.4's per-environment values)."""

    direct: float = Field(description="β of the direct optimizers (`direct` and `direct_flow` families).")
    iterative: float = Field(description="β of the iterative optimizer.")


class ArchPerFamily(_Strict):
    """A Q-value architecture per optimizer family (the columns of Tables 5-6)."""

    direct: ArchName = Field(
        description="Architecture for the direct optimizers (`direct` and `direct_flow` families).")
    iterative: ArchName = Field(description="Architecture for the iterative optimizer.")


class EnvParams(_Strict):
    """Tables 5-6 (Q architecture) and A.4 (training β) for one environment."""

    q_arch: ArchPerFamily = Field(
        description="Q-value architecture (A or B, `q_architectures`) per optimizer family (Tables 5-6).")
    beta: PerFamily = Field(
        description="Pessimism β of the training objective and targets, per optimizer family (A.4: direct "
        "1 everywhere; iterative 1.5 on Hopper, 2.5 elsewhere).")


class ModelBased(_Strict):
    """Appendix A.5: model networks (Table 8) and model-based value estimation (Table 9)."""

    n_layers: int = Field(
        gt=0, description="Hidden layers of the state and reward model networks, Linear → LayerNorm → "
        "LeakyReLU (Table 8: 2).")
    n_units: int = Field(gt=0, description="Units in each hidden layer of the model networks (Table 8: 256).")
    horizon: int = Field(
        ge=0, description="Rollout horizon h: model steps of the model-based value estimate (eq. 14, "
        "Table 9: 2).")
    retrace_lambda: float = Field(
        ge=0, le=1, description="Retrace λ weighting the TD terms of the rollout in eq. 14 (Table 9: 0.9).")
    pretrain_updates: int = Field(
        ge=0, description="Model-only updates on the warm-up data when the random warm-up ends, before "
        "the first agent update (Table 9: 1000).")
    model_value_targets: bool = Field(
        description="Q-network targets from eq. 14 (Table 9); false = one-step model-free targets, the model "
        "entering only J (the authors' code, original_code.md §4.4).")


class Variant(_Strict):
    """A named agent: an optimizer family, a value estimator, and overrides of the per-env tables."""

    family: Family = Field(
        description="Policy optimizer: direct (a network maps s to λ in one pass), iterative (a network "
        "updates λ from s, λ and ∇λJ, K times) or direct_flow (direct, with a normalizing-flow policy, "
        "B.2). Also picks the column of the per-env tables (direct_flow reads `direct`).")
    value: Literal["model_free", "model_based"] = Field(
        default="model_free",
        description="Value estimator: model_free (the two Q-networks) or model_based (a learned model "
        "rolled out h steps, eq. 14; A.5, §4.2.5, settings in `model_based`).")
    beta: float | None = Field(
        default=None,
        description="Training pessimism β of this variant's runs (default: `envs.<env>.beta` for its "
        "family, A.4).")
    q_arch: ArchName | None = Field(
        default=None,
        description="Q-value architecture of this variant's runs (default: `envs.<env>.q_arch` for its "
        "family, Tables 5-6).")
    n_iters: int = Field(
        default=1, gt=0,
        description="K: iterations of the iterative optimizer per state, in training and acting (§4.1; "
        "the paper's K = 5); must be 1 for the other families.")
    init_sigma: float = Field(
        default=1.0, gt=0,
        description="σ of the iterative optimizer's initial estimate λ₀ = (μ = 0, σ) (A.4: 1; the "
        "authors' code 0.5, original_code.md §2.1).")
    input_norm: Literal["layernorm", "standardize"] = Field(
        default="layernorm",
        description="Normalisation of the iterative optimizer's inputs: layernorm, a LayerNorm on each of "
        "s, μ, log σ and the gradients (A.4); standardize, per-state standardisation of the action "
        "blocks without affine, the state raw (the authors' code, original_code.md §2.2).")
    n_flows: int = Field(
        default=2, gt=0,
        description="IAF transforms of the direct_flow policy (B.2: 2; the authors' code used 3); read by "
        "the direct_flow family only.")
    pessimism_std: Literal["population", "unbiased"] | None = Field(
        default=None,
        description="σ_Q of eq. 13 for this variant's runs (default: `training.pessimism_std`).")

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

    purpose: str = Field(
        default="", description="What the group's runs are for (the figures they serve); free text, "
        "read by people only.")
    envs: list[str] = Field(min_length=1, description="Environments (keys of `envs`) of the group's runs.")
    variants: list[str] = Field(
        min_length=1, description="Variants (keys of `variants`) run on each of the group's envs.")
    steps: int | None = Field(
        default=None, gt=0,
        description="Env steps of each of the group's runs (default: the scale's `steps_per_env`, then "
        "`steps`).")
    seeds: int | None = Field(
        default=None, gt=0,
        description="Seeds of each of the group's runs (default: the scale's `seeds`): spend seeds where "
        "they decide a claim.")


DiagnosticOption = str | int | float | bool


class DiagnosticJob(_Strict):
    """`iapo diagnose NAME` on every finished run of the listed variants, with these options."""

    variants: list[str] = Field(
        min_length=1, description="Variants whose finished runs of this scale the diagnostic analyses.")
    envs: list[str] | None = Field(
        default=None, description="Only the runs of these envs (default: every env the variants run on).")
    options: dict[str, DiagnosticOption] = Field(
        default_factory=dict,
        description="Options of `iapo diagnose NAME`, by name with underscores (collect_steps for "
        "--collect-steps); the rest keep the diagnostic's defaults (`iapo diagnose NAME --help`).")
    donor: str | None = Field(
        default=None,
        description="Variant whose run of the same env and seed lends its optimizer to the analysed runs "
        "(passed as --optimizer-from; default: none).")


class Scale(_Strict):
    """How much is run: the run grid (groups of envs × variants), seeds, steps, cadence, diagnostics."""

    grid: list[Group] = Field(
        min_length=1,
        description="The runs, in groups of envs × variants; each env × variant pair is in at most one "
        "group.")
    seeds: int = Field(gt=0, description="Seeds of each run (0 … seeds − 1) where its group sets none.")
    steps: int = Field(gt=0, description="Env steps per run, where neither its group nor `steps_per_env` "
                       "sets them.")
    steps_per_env: dict[str, int] = Field(
        default_factory=dict,
        description="Env steps per run of the named envs, where the group sets none (paper scale: 1e6 for "
        "the two pendulums).")
    initial_random_steps: int | None = Field(
        default=None, ge=0,
        description="Random warm-up steps at this scale, so that short runs still update (default: "
        "`training.initial_random_steps`, Table 7's 5000); the one training setting a scale may change, "
        "reported with the results.")
    eval_every: int = Field(
        gt=0,
        description="Env steps between evaluations (`eval_episodes` deterministic episodes on a separately "
        "seeded env); a run's last step is always evaluated.")
    eval_episodes: int = Field(gt=0, description="Episodes per evaluation (deterministic policy, tanh μ).")
    log_every: int = Field(
        gt=0,
        description="Env steps between rows of a run's metrics.csv (means over the interval); a run's last "
        "step is always logged.")
    checkpoint_steps: list[int] = Field(
        min_length=1,
        description="Env steps at which an agent snapshot (checkpoints/step_N.pt, read by the diagnostics) "
        "is kept; steps beyond a run's length are dropped, its last step is always added.")
    resume_every: int = Field(
        gt=0,
        description="Env steps between resume states (all a run needs to continue exactly after a stop; the "
        "newest two are kept).")
    diagnostics: dict[str, DiagnosticJob] = Field(
        default_factory=dict,
        description="Analyses of the finished runs: diagnostic name (`iapo diagnose NAME`) → the variants, "
        "envs and options it runs with.")

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

    tensorboard: bool = Field(
        default=False,
        description="Also write TensorBoard event files, RUN/tensorboard/ (`iapo.curves`); one run: "
        "`iapo train --tensorboard`.")


class Params(_Strict):
    """The whole of `params.yaml`."""

    scale: str = Field(
        description="Default scale (a key of `scales`) of the pipeline and of `iapo train`; "
        "`iapo train --scale` and `snakemake --config scale=` override it.")
    logging: Logging = Field(
        default_factory=Logging,
        description="What a run writes besides its CSVs, snapshots and run.json; not a training setting, "
        "not in the params hash.")
    training: Training = Field(
        description="Training settings: Table 7, and those the paper leaves to the authors' code.")
    policy: Network = Field(
        description="Shape of the policy network, shared by the direct and iterative optimizers (Table 2: "
        "2 × 256, ReLU).")
    q_architectures: dict[ArchName, QArchitecture] = Field(
        description="The Q-value network architectures A (Table 3) and B (Table 4), both required.")
    model_based: ModelBased = Field(
        description="Model networks and model-based value estimation of the model_based variants (A.5, "
        "Tables 8-9).")
    envs: dict[str, EnvParams] = Field(
        description="Per environment, by its paper name (Hopper-v2, …): Q architecture (Tables 5-6) and "
        "training β (A.4) per optimizer family.")
    variants: dict[str, Variant] = Field(
        description="Named agents: optimizer family, value estimator and overrides of the per-env "
        "tables; the scales' grids list them by name.")
    scales: dict[str, Scale] = Field(
        description="Named presets of how much is run (grid, seeds, steps, cadence, diagnostics), never "
        "how a run is computed, bar the random warm-up.")

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


def describe_settings(model: type[BaseModel], prefix: str = "", width: int = 100) -> str:
    """The settings of `model` as plain text, one entry per field, nested models included: a line with
    the dotted key, the type (with its bounds) and the default, aligned in columns, then the field's
    description wrapped to `width`, indented by four. `prefix` is prepended to the keys
    (`describe_settings(Training, "training")` gives `training.gamma`, …). A mapping of nested models
    has `<name>` in its keys (`scales.<scale>.seeds`; `<A|B>` where the keys are fixed), a list of them
    `[i]` (`scales.<scale>.grid[i].envs`); "required" marks a setting without a default, "unset" a
    default of nothing, whose meaning the description gives."""
    rows = list(_setting_rows(model, prefix))
    key_w = max(len(key) for key, *_ in rows)
    type_w = max(len(kind) for _, kind, *_ in rows)
    lines = []
    for key, kind, default, description in rows:
        lines.append(f"{key:<{key_w}}  {kind:<{type_w}}  {default}".rstrip())
        lines.extend(textwrap.wrap(description, width, initial_indent="    ", subsequent_indent="    ",
                                   break_long_words=False, break_on_hyphens=False))
    return "\n".join(lines)


def _setting_rows(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str, str, str]]:
    """(dotted key, type, default, description) of every field of `model` and of the models in it."""
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        yield key, _type_text(field.annotation, field.metadata), _default_text(field), field.description or ""
        nested = _nested_model(field.annotation, name)
        if nested is not None:
            yield from _setting_rows(nested[0], key + nested[1])


def _is_model(annotation: object) -> TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _nested_model(annotation: object, name: str) -> tuple[type[BaseModel], str] | None:
    """The model a field holds (itself, in a list or as the values of a dict) and the key suffix of
    its fields: "", "[i]" or ".<name>" (the dict's field name, singular, or its allowed keys)."""
    if _is_model(annotation):
        return annotation, ""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is list and _is_model(args[0]):
        return args[0], "[i]"
    if origin is dict and _is_model(args[1]):
        keys = "|".join(map(str, get_args(args[0]))) if get_origin(args[0]) is Literal else None
        return args[1], f".<{keys or name.removesuffix('s')}>"
    return None


def _type_text(annotation: object, metadata: list | None = None) -> str:
    """A type as a reader of params.yaml writes it: `float (0, 1]`, `per_step|per_episode`,
    `list[str] non-empty`, `mapping` (a nested model); a None-able type shows without the None."""
    origin, args = get_origin(annotation), get_args(annotation)
    if _is_model(annotation):
        text = "mapping"
    elif origin is Literal:
        text = "|".join(map(str, args))
    elif origin in (Union, UnionType):
        text = "|".join(_type_text(a) for a in args if a is not type(None))
    elif origin is list:
        text = f"list[{_type_text(args[0])}]"
    elif origin is dict:
        text = f"dict[{_type_text(args[0])}, {_type_text(args[1])}]"
    else:
        text = getattr(annotation, "__name__", str(annotation))
    bounds = {attr: getattr(m, attr) for m in metadata or [] for attr in
              ("gt", "ge", "lt", "le", "min_length", "max_length") if getattr(m, attr, None) is not None}
    low = f"({bounds['gt']}" if "gt" in bounds else f"[{bounds['ge']}" if "ge" in bounds else None
    high = f"{bounds['lt']})" if "lt" in bounds else f"{bounds['le']}]" if "le" in bounds else None
    if low and high:
        text += f" {low}, {high}"
    elif low:
        text += f" {'>' if low[0] == '(' else '≥'} {low[1:]}"
    elif high:
        text += f" {'<' if high[-1] == ')' else '≤'} {high[:-1]}"
    n_min, n_max = bounds.get("min_length"), bounds.get("max_length")
    if n_min is not None and n_min == n_max:
        text += f" of {n_min}"
    elif n_min == 1 and n_max is None:
        text += " non-empty"
    elif n_min is not None or n_max is not None:
        text += f" of {n_min or 0}-{'' if n_max is None else n_max}"
    return text


def _default_text(field: FieldInfo) -> str:
    """A default as params.yaml would spell it; "required" where there is none."""
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "optional"  # a section that may be left out: its fields give their defaults
    if value is None:
        return "unset"
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value, ensure_ascii=False)


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


def run_grid(params: Params, scale: str) -> list[RunKey]:
    """Every run a scale asks for: each grid group's envs × variants, × seeds 0 … seeds-1 (the
    group's own seed count where it sets one)."""
    if scale not in params.scales:
        raise SummaryError(f"scale: unknown value {scale!r}; allowed: {', '.join(sorted(params.scales))}")
    sc = params.scales[scale]
    return [RunKey(env, variant, seed) for env, variant in sc.runs()
            for seed in range(sc.seeds_of(env, variant))]
