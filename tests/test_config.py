"""Tests for iapo.config: params.yaml follows the paper's tables; bad files fail loudly with the key."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import get_args

import pytest
import yaml
from pydantic import BaseModel

from iapo.config import (
    ConfigError,
    Group,
    Params,
    RunConfig,
    Training,
    describe_settings,
    load_params,
    resolve,
)

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"

# Appendix A.4, Tables 5 and 6: Q-value architecture per environment, (direct, iterative).
PAPER_Q_ARCH = {
    "InvertedPendulum-v2": ("A", "A"),
    "InvertedDoublePendulum-v2": ("A", "A"),
    "Hopper-v2": ("A", "A"),
    "HalfCheetah-v2": ("B", "A"),
    "Walker2d-v2": ("A", "B"),
    "Ant-v2": ("B", "B"),
    "Reacher-v2": ("A", "A"),
    "Swimmer-v2": ("A", "A"),
    "Humanoid-v2": ("B", "B"),
    "HumanoidStandup-v2": ("B", "B"),
}
# Appendix A.4, "Value Pessimism": direct β = 1 everywhere; iterative β = 1.5 on Hopper, 2.5 elsewhere.
PAPER_BETA = {env: (1.0, 1.5 if env == "Hopper-v2" else 2.5) for env in PAPER_Q_ARCH}
# Tables 3 and 4.
PAPER_ARCHS = {
    "A": {"n_layers": 2, "n_units": 256, "nonlinearity": "relu", "layer_norm": False,
          "connectivity": "sequential"},
    "B": {"n_layers": 3, "n_units": 512, "nonlinearity": "elu", "layer_norm": True,
          "connectivity": "highway"},
}


@pytest.fixture(scope="module")
def params() -> Params:
    return load_params(PARAMS)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(PARAMS.read_text())


@pytest.fixture
def write_params(raw: dict, tmp_path: Path) -> Callable[[Callable[[dict], None]], Path]:
    """Copy the real params.yaml, apply `mutate` to the dict, dump it into tmp_path."""

    def write(mutate: Callable[[dict], None]) -> Path:
        data = copy.deepcopy(raw)
        mutate(data)
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


# ------------------------------------------------------------------ the real file
def test_real_params_load(params: Params) -> None:
    assert params.scale in params.scales
    assert set(params.envs) == set(PAPER_Q_ARCH), "params.yaml should cover the paper's 10 environments"
    assert {"direct", "iterative"} <= set(params.variants)


def test_unmodified_copy_loads(write_params: Callable) -> None:
    """The round trip through yaml.safe_dump used by the failure tests is itself harmless."""
    assert load_params(write_params(lambda d: None)) == load_params(PARAMS)


def test_resolve_every_env_variant_scale(params: Params) -> None:
    count = 0
    for scale_name, scale in params.scales.items():
        for env in params.envs:
            for variant in params.variants:
                cfg = resolve(params, env, variant, seed=3, scale=scale_name)
                count += 1
                assert (cfg.env, cfg.variant, cfg.seed, cfg.scale) == (env, variant, 3, scale_name)
                assert cfg.family == params.variants[variant].family
                group = next((g for g in scale.grid if env in g.envs and variant in g.variants), None)
                expected_steps = scale.steps_per_env.get(env, scale.steps)
                assert cfg.steps == (group.steps if group and group.steps else expected_steps)
                assert cfg.checkpoint_steps[-1] == cfg.steps
                assert list(cfg.checkpoint_steps) == sorted(set(cfg.checkpoint_steps))
                assert cfg.q_architecture == params.q_architectures[cfg.q_arch]
                expected_warmup = (params.training.initial_random_steps
                                   if scale.initial_random_steps is None else scale.initial_random_steps)
                assert cfg.initial_random_steps == expected_warmup
    assert count == len(params.scales) * len(params.envs) * len(params.variants)


def test_scales_only_list_known_names(params: Params) -> None:
    for scale in params.scales.values():
        runs = scale.runs()
        assert len(runs) == len(set(runs))
        assert {env for env, _ in runs} <= set(params.envs)
        assert {variant for _, variant in runs} <= set(params.variants)


def test_every_configured_diagnostic_option_parses(params: Params) -> None:
    """A typo in params.yaml `scales.*.diagnostics.*.options` fails here, not hours into a pipeline."""
    from iapo.diagnostics.runner import build_parser
    from iapo.summary import diagnose_argv, diagnostic_runs

    for scale in params.scales:
        for job in diagnostic_runs(params, scale):
            parsed = vars(build_parser(job.name).parse_args(diagnose_argv(job, params, scale)))
            for key, value in params.scales[scale].diagnostics[job.name].options.items():
                assert str(parsed[key]) == str(value), (scale, job.name, key)


@pytest.mark.parametrize("env", sorted(PAPER_Q_ARCH))
def test_beta_and_q_arch_follow_paper_tables(params: Params, env: str) -> None:
    for column, family in enumerate(("direct", "iterative")):
        cfg = resolve(params, env, family, seed=0)
        assert cfg.family == family
        assert cfg.beta == PAPER_BETA[env][column], f"{env} {family}: β (Appendix A.4)"
        assert cfg.q_arch == PAPER_Q_ARCH[env][column], f"{env} {family}: Q architecture (Tables 5-6)"
        assert cfg.q_architecture.model_dump() == PAPER_ARCHS[cfg.q_arch], "Tables 3-4"


def test_paper_table_spot_checks(params: Params) -> None:
    """The brief's examples, stated literally so a typo in PAPER_Q_ARCH cannot hide one."""
    q = {(e, v): resolve(params, e, v, seed=0).q_arch
         for e in ("HalfCheetah-v2", "Walker2d-v2", "Hopper-v2") for v in ("direct", "iterative")}
    assert q == {("HalfCheetah-v2", "direct"): "B", ("HalfCheetah-v2", "iterative"): "A",
                 ("Walker2d-v2", "direct"): "A", ("Walker2d-v2", "iterative"): "B",
                 ("Hopper-v2", "direct"): "A", ("Hopper-v2", "iterative"): "A"}
    assert resolve(params, "Hopper-v2", "iterative", seed=0).beta == 1.5
    assert resolve(params, "Ant-v2", "iterative", seed=0).beta == 2.5
    assert resolve(params, "Ant-v2", "direct", seed=0).beta == 1.0


def test_training_and_policy_follow_tables_2_and_7(params: Params) -> None:
    t = params.training
    assert (t.gamma, t.tau, t.lr, t.batch_size) == (0.99, 5e-3, 3e-4, 256)
    assert (t.initial_random_steps, t.replay_size) == (5000, 1_000_000)
    assert t.beta_acting == 1.0, "A.4: β = 1 while collecting data"
    assert params.policy.model_dump() == {"n_layers": 2, "n_units": 256, "nonlinearity": "relu"}


def test_variant_override_of_beta_and_q_arch(write_params: Callable) -> None:
    def add_variant(d: dict) -> None:
        d["variants"]["iterative_b1"] = {"family": "iterative", "n_iters": 2, "beta": 1.0, "q_arch": "B"}

    params = load_params(write_params(add_variant))
    cfg = resolve(params, "Hopper-v2", "iterative_b1", seed=0, scale="smoke")
    assert (cfg.family, cfg.beta, cfg.q_arch, cfg.n_iters) == ("iterative", 1.0, "B", 2)
    assert cfg.q_architecture.n_units == 512


def test_variant_sets_its_own_sigma_q_form(params: Params) -> None:
    """A variant's `pessimism_std` replaces training.pessimism_std for its runs only; the rest of
    `training` and the other variants are untouched."""
    base = resolve(params, "HalfCheetah-v2", "iterative", seed=0, scale="paper")
    code = resolve(params, "HalfCheetah-v2", "iterative_unbiased", seed=0, scale="paper")
    assert base.training.pessimism_std == params.training.pessimism_std == "population"
    assert code.training.pessimism_std == "unbiased"
    assert code.training.model_dump() | {"pessimism_std": "population"} == base.training.model_dump()
    assert code.beta == base.beta == 2.5 and code.params_hash() != base.params_hash()
    beta1 = resolve(params, "HalfCheetah-v2", "iterative_beta1_unbiased", seed=0, scale="paper")
    assert beta1.beta == 1.0 and beta1.training.pessimism_std == "unbiased"


def test_steps_override_filters_checkpoints(params: Params) -> None:
    cfg = resolve(params, "HalfCheetah-v2", "direct", seed=0, scale="smoke", steps=1000)
    assert cfg.steps == 1000
    assert cfg.checkpoint_steps == (750, 1000)
    with pytest.raises(ConfigError, match="positive"):
        resolve(params, "HalfCheetah-v2", "direct", seed=0, scale="smoke", steps=0)


# ------------------------------------------------------------------ bad files
BAD_FILES: dict[str, tuple[Callable[[dict], None], list[str]]] = {
    "unknown top-level key": (lambda d: d.update(bogus_key=1), ["bogus_key"]),
    "unknown nested key": (lambda d: d["training"].update(bogus=1), ["training.bogus"]),
    "wrong type": (lambda d: d["training"].update(batch_size="big"), ["training.batch_size", "'big'"]),
    "float for int": (lambda d: d["training"].update(batch_size=256.5), ["training.batch_size", "256.5"]),
    "invalid literal": (lambda d: d["training"].update(pessimism_std="median"),
                        ["training.pessimism_std", "'median'", "population", "unbiased"]),
    "invalid arch name": (lambda d: d["envs"]["Hopper-v2"]["q_arch"].update(direct="C"),
                          ["envs.Hopper-v2.q_arch.direct", "'C'"]),
    "missing key": (lambda d: d["training"].pop("gamma"), ["training.gamma"]),
    "out of range": (lambda d: d["training"].update(gamma=1.5), ["training.gamma", "1.5"]),
    "scale lists unknown env": (lambda d: d["scales"]["smoke"]["grid"][0]["envs"].append("Foo-v2"),
                                ["scales.smoke.grid[0].envs", "'Foo-v2'", "HalfCheetah-v2"]),
    "scale lists unknown variant": (lambda d: d["scales"]["smoke"]["grid"][1]["variants"].append("fancy"),
                                    ["scales.smoke.grid[1].variants", "'fancy'", "direct"]),
    "scale lists a run twice": (lambda d: d["scales"]["smoke"]["grid"][1]["variants"].append("direct"),
                                ["scales.smoke.grid", "more than once", "Pendulum-v2 × direct"]),
    "unknown diagnostic": (
        lambda d: d["scales"]["smoke"]["diagnostics"].update(bias={"variants": ["direct"]}),
        ["scales.smoke.diagnostics", "'bias'", "value_bias"]),
    "diagnostic of unknown variant": (
        lambda d: d["scales"]["mini"]["diagnostics"]["modes"]["variants"].append("fancy"),
        ["scales.mini.diagnostics.modes.variants", "'fancy'"]),
    "unknown default scale": (lambda d: d.update(scale="huge"), ["scale", "'huge'", "mini", "smoke"]),
    "direct with iterations": (lambda d: d["variants"]["direct"].update(n_iters=3),
                               ["variants.direct", "n_iters"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_names_key_and_value(write_params: Callable, case: str) -> None:
    mutate, expected = BAD_FILES[case]
    path = write_params(mutate)
    with pytest.raises(ConfigError) as err:
        load_params(path)
    message = str(err.value)
    assert str(path) in message
    for text in expected:
        assert text in message, f"{case}: {text!r} not in message:\n{message}"


def test_cross_check_error_is_short_and_keyed(write_params: Callable) -> None:
    path = write_params(lambda d: d.update(scale="huge"))
    with pytest.raises(ConfigError) as err:
        load_params(path)
    message = str(err.value)
    assert "(top level)" not in message
    assert len(message) < 500, f"{len(message)} characters: the whole file is echoed back"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError, match="file not found") as err:
        load_params(path)
    assert str(path) in str(err.value)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("training: [unclosed\n  gamma: :\n")
    with pytest.raises(ConfigError, match="not valid YAML") as err:
        load_params(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("text", ["", "- a list\n- not a mapping\n"])
def test_empty_or_non_mapping_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="invalid setting"):
        load_params(path)


# ------------------------------------------------------------------ bad command-line choices
@pytest.mark.parametrize(
    ("kwargs", "key", "allowed"),
    [
        ({"env": "Foo-v2"}, "environment", ["Hopper-v2", "HalfCheetah-v2", "HumanoidStandup-v2"]),
        ({"variant": "fancy"}, "variant", ["direct", "iterative"]),
        ({"scale": "huge"}, "scale", ["mini", "paper", "smoke"]),
    ],
)
def test_resolve_unknown_choice_lists_allowed(params: Params, kwargs: dict, key: str,
                                              allowed: list[str]) -> None:
    args = {"env": "Hopper-v2", "variant": "direct", "seed": 0} | kwargs
    with pytest.raises(ConfigError) as err:
        resolve(params, **args)
    message = str(err.value)
    assert message.startswith(f"{key}:")
    bad = next(iter(kwargs.values()))
    assert repr(bad) in message
    for name in allowed:
        assert name in message


TYPOS = [({"env": "Hoper-v2"}, "Hopper-v2"), ({"variant": "drect"}, "direct"), ({"scale": "smoek"}, "smoke")]


@pytest.mark.parametrize(("kwargs", "guess"), TYPOS)
def test_a_typo_gets_a_did_you_mean(params: Params, kwargs: dict, guess: str) -> None:
    with pytest.raises(ConfigError, match=rf"\(did you mean '{guess}'\?\)"):
        resolve(params, **({"env": "Hopper-v2", "variant": "direct", "seed": 0} | kwargs))


def test_a_number_yaml_reads_as_text_says_how_to_write_it(tmp_path: Path) -> None:
    """PyYAML reads `lr: 3e-4` as the text '3e-4' (no dot in the mantissa): the message says so and
    gives the spelling it reads as a number; a quoted number gets its own hint."""
    text = PARAMS.read_text()
    assert "\n  lr: 3.0e-4" in text or "\n  lr: 0.0003" in text
    bad = tmp_path / "params.yaml"
    for written, hint in (("3e-4", "write 3.0e-4"), ("'0.0003'", "write it without quotes")):
        bad.write_text(re.sub(r"\n  lr: [^\n]*", f"\n  lr: {written}", text, count=1))
        with pytest.raises(ConfigError, match=re.escape(hint)):
            load_params(bad)
    bad.write_text(re.sub(r"\n  lr: [^\n]*", "\n  lr: 3.0e-4", text, count=1))
    assert load_params(bad).training.lr == pytest.approx(3e-4)


# ------------------------------------------------------------------ RunConfig
def test_run_config_round_trip(params: Params) -> None:
    for env, variant in [("HalfCheetah-v2", "iterative"), ("Hopper-v2", "direct")]:
        cfg = resolve(params, env, variant, seed=7, scale="paper")
        assert RunConfig.from_dict(cfg.to_dict()) == cfg
        # checkpoints and run.json carry the dict through JSON (tuples become lists)
        assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_run_config_from_dict_validates(params: Params) -> None:
    d = resolve(params, "Hopper-v2", "direct", seed=0).to_dict()
    d["training"] = d["training"] | {"pessimism_std": "median"}
    with pytest.raises(ValueError, match="pessimism_std"):
        RunConfig.from_dict(d)


def test_params_hash(params: Params, write_params: Callable) -> None:
    cfg = resolve(params, "HalfCheetah-v2", "iterative", seed=0, scale="mini")
    h = cfg.params_hash()
    assert len(h) == 16 and int(h, 16) >= 0
    assert h == cfg.params_hash() == resolve(load_params(PARAMS), "HalfCheetah-v2", "iterative",
                                             seed=0, scale="mini").params_hash()
    assert RunConfig.from_dict(cfg.to_dict()).params_hash() == h
    # how long a run is does not change how it is computed
    assert resolve(params, "HalfCheetah-v2", "iterative", 0, "mini", steps=7000).params_hash() == h
    # anything that changes the computation does
    others = [
        resolve(params, "HalfCheetah-v2", "direct", 0, "mini"),
        resolve(params, "HalfCheetah-v2", "iterative", 1, "mini"),
        resolve(params, "Hopper-v2", "iterative", 0, "mini"),
    ]
    hashes = {o.params_hash() for o in others}
    assert h not in hashes and len(hashes) == len(others)

    def set_beta(d: dict) -> None:
        d["envs"]["HalfCheetah-v2"]["beta"]["iterative"] = 3.0

    def set_lr(d: dict) -> None:
        d["training"]["lr"] = 1.0e-3

    for mutate in (set_beta, set_lr):
        changed = resolve(load_params(write_params(mutate)), "HalfCheetah-v2", "iterative", 0, "mini")
        assert changed.params_hash() != h


def test_logging_is_not_a_training_setting(params: Params, write_params: Callable) -> None:
    """`logging.tensorboard` changes what a run writes, never how it trains: off by default (also
    when the section is left out), validated, and outside the run's settings and params hash (a
    run resumes with it switched either way)."""
    assert params.logging.tensorboard is False
    on = load_params(write_params(lambda d: d["logging"].update(tensorboard=True)))
    absent = load_params(write_params(lambda d: d.pop("logging")))
    assert on.logging.tensorboard is True and absent.logging.tensorboard is False
    runs = [resolve(p, "Hopper-v2", "iterative", 0, "mini") for p in (params, on, absent)]
    assert runs[0] == runs[1] == runs[2] and len({r.params_hash() for r in runs}) == 1
    with pytest.raises(ConfigError, match=r"logging\.tensorboard"):
        load_params(write_params(lambda d: d["logging"].update(tensorboard="yes")))


def test_params_hash_stable_across_processes(params: Params) -> None:
    """No dependence on dict order, hash randomisation or object ids."""
    cfg = resolve(params, "Walker2d-v2", "iterative", seed=2, scale="paper")
    code = ("import sys; from iapo.config import load_params, resolve; "
            "print(resolve(load_params(sys.argv[1]), 'Walker2d-v2', 'iterative', 2, 'paper').params_hash())")
    env = os.environ | {"PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code, str(PARAMS)], capture_output=True, text=True,
                         env=env, check=True, timeout=60)
    assert out.stdout.strip() == cfg.params_hash()


def test_pipeline_config_honours_scale_only(tmp_path: Path) -> None:
    """`snakemake --config`: `scale` is read by the workflow; any other key (every job reads
    params.yaml itself) and any --configfile but params.yaml would be ignored, so they are refused."""
    from iapo.config import check_pipeline_config

    params_file = tmp_path / "params.yaml"
    check_pipeline_config({"scale": "smoke"}, [], params_file)
    check_pipeline_config({}, [params_file], params_file)
    with pytest.raises(ConfigError) as err:
        check_pipeline_config({"scale": "smoke", "scael": "mini"}, [], params_file)
    assert "'scael'" in str(err.value) and "did you mean 'scale'?" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"'training'\. Allowed --config keys: scale \("):
        check_pipeline_config({"training": {"lr": 0.1}}, [], params_file)
    other = tmp_path / "mine.yaml"
    with pytest.raises(ConfigError, match=rf"--configfile {other}: the jobs read their settings from"):
        check_pipeline_config({}, [other], params_file)


def test_scale_describes_what_it_trains(params: Params) -> None:
    """`Scale.describe()` (the pipeline's opening line) counts the runs `run_grid` trains and gives
    the groups' own step counts (mini: 1500-3000, not its default 3000)."""
    from iapo.summary import run_grid

    for name, scale in params.scales.items():
        text = scale.describe()
        assert f"({len(run_grid(params, name))} runs)" in text, text
    assert params.scales["mini"].describe().endswith("1500–3000 env steps")


# ------------------------------------------------------------------ field docs
def reachable_models(model: type[BaseModel]) -> list[type[BaseModel]]:
    """`model` and every model its fields hold, directly, in a list, as a dict's values or None-able."""
    found: list[type[BaseModel]] = []

    def visit(annotation: object) -> None:
        is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if is_model and annotation not in found:
            found.append(annotation)
            for field in annotation.model_fields.values():
                visit(field.annotation)
        for arg in get_args(annotation):
            visit(arg)

    visit(model)
    return found


def test_every_setting_has_a_description() -> None:
    """A field added to any config model without `Field(description=...)` fails here; the JSON
    schema (`iapo schema`) carries every description."""
    models = reachable_models(Params)
    assert Training in models and len(models) >= 12
    missing = [f"{m.__name__}.{name}" for m in models for name, field in m.model_fields.items()
               if not (field.description or "").strip()]
    assert not missing, f"fields without a description: {', '.join(missing)}"
    schema = Params.model_json_schema()
    for name, definition in [("Params", schema), *schema["$defs"].items()]:
        for key, prop in definition["properties"].items():
            assert prop.get("description", "").strip(), f"schema {name}.{key} has no description"


def parse_settings(text: str) -> dict[str, tuple[str, str]]:
    """`describe_settings` text → {key: (header line, description joined into one line)}."""
    entries: dict[str, tuple[str, str]] = {}
    key = ""
    for line in text.splitlines():
        if line.startswith("    "):
            header, description = entries[key]
            entries[key] = header, f"{description} {line.strip()}".strip()
        else:
            key = line.split()[0]
            entries[key] = line, ""
    return entries


def test_describe_settings_lists_key_type_default_and_description() -> None:
    """`describe_settings` (command-line help): each field's dotted key, type with its bounds, default
    and description, columns aligned; nested models recursed into."""
    text = describe_settings(Training, "training")
    entries = parse_settings(text)
    assert list(entries) == [f"training.{name}" for name in Training.model_fields]
    header, description = entries["training.fused"]
    assert header.split() == ["training.fused", "bool", "true"]
    assert description == Training.model_fields["fused"].description
    assert entries["training.graphs"][0].split() == ["training.graphs", "off|on", "off"]
    assert entries["training.gamma"][0].split() == ["training.gamma", "float", "(0,", "1]", "required"]
    assert "Table 7" in entries["training.gamma"][1]
    # the columns line up, the descriptions wrap within the width
    assert len({re.match(r"\S+\s+", header).end() for header, _ in entries.values()}) == 1
    assert max(len(line) for line in text.splitlines() if line.startswith("    ")) <= 100
    # the whole of params.yaml: one entry per field of every reachable model, with its description,
    # under the keys a reader writes (`<name>` for a mapping's keys, `[i]` for a list's items)
    entries = parse_settings(describe_settings(Params))
    assert len(entries) == sum(len(m.model_fields) for m in reachable_models(Params))  # each in one place
    assert all(description for _, description in entries.values())
    for key in ("logging.tensorboard", "q_architectures.<A|B>.layer_norm", "envs.<env>.beta.iterative",
                "variants.<variant>.n_iters", "scales.<scale>.grid[i].seeds",
                "scales.<scale>.diagnostics.<diagnostic>.donor"):
        assert key in entries, key
    assert entries["variants.<variant>.n_iters"][0].split()[1:] == ["int", ">", "0", "1"]
    assert entries["variants.<variant>.beta"][0].split()[-1] == "unset"
    assert entries["scales.<scale>.grid[i].envs"][0].split()[1:] == ["list[str]", "non-empty", "required"]
    assert entries["scales.<scale>.grid[i].seeds"][1] == Group.model_fields["seeds"].description
