"""Tests for the `iapo` command line: bad input exits with code 2 and a message, before any output."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from iapo.cli import main

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "params.yaml"
ALL_ENVS = sorted(yaml.safe_load(PARAMS.read_text())["envs"])


def train_args(out: Path, env: str = "HalfCheetah-v2", variant: str = "direct",
               params: Path = PARAMS) -> list[str]:
    return ["--params", str(params), "train", "--env", env, "--variant", variant, "--out", str(out)]


def assert_nothing_written(out: Path) -> None:
    assert not (out / "run.json").exists()
    assert not (out / "metrics.csv").exists()
    assert not out.exists() or not any(out.iterdir()), f"{out} was written to: {list(out.iterdir())}"


def test_bad_params_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = yaml.safe_load(PARAMS.read_text())
    raw["training"]["batch_size"] = "big"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    assert main(train_args(out, params=bad)) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("iapo train: error: ")
    assert "training.batch_size" in captured.err and "'big'" in captured.err
    assert str(bad) in captured.err
    assert captured.out == ""
    assert_nothing_written(out)


def test_missing_params_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(train_args(out, params=tmp_path / "nope.yaml")) == 2
    err = capsys.readouterr().err
    assert "iapo train: error:" in err and "file not found" in err and "--params" in err
    assert_nothing_written(out)


def test_unknown_env_lists_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(train_args(out, env="Foo-v2")) == 2
    err = capsys.readouterr().err
    assert err.startswith("iapo train: error: ")
    assert "'Foo-v2'" in err
    for env in ALL_ENVS:
        assert env in err
    assert_nothing_written(out)


def test_unknown_variant_lists_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(train_args(out, variant="fancy")) == 2
    err = capsys.readouterr().err
    assert err.startswith("iapo train: error: ")
    assert "variant" in err and "'fancy'" in err and "direct" in err and "iterative" in err
    assert_nothing_written(out)


def test_unknown_scale_lists_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main([*train_args(out), "--scale", "huge"]) == 2
    err = capsys.readouterr().err
    assert "'huge'" in err and "mini" in err and "smoke" in err and "paper" in err
    assert_nothing_written(out)


def test_train_help_describes_outputs_and_the_training_settings(capsys: pytest.CaptureFixture[str]) -> None:
    """`iapo train --help`: the files a run writes, and every `training` setting with its meaning (the
    config's field descriptions)."""
    from iapo.config import Training

    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for needle in ("metrics.csv", "run.json", "eval.csv", "--env", "--variant", "--out"):
        assert needle in text
    for name in Training.model_fields:
        assert f"training.{name} " in text, name
    assert "Discount factor" in text and "Table 7" in text


def test_missing_required_argument_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--env", "Hopper-v2"])
    assert exc.value.code == 2
    assert "--variant" in capsys.readouterr().err


def test_console_script_rejects_unknown_env(tmp_path: Path) -> None:
    """The installed entry point, run as a user would from the repository root."""
    script = Path(sys.executable).parent / "iapo"
    assert script.is_file(), f"{script} missing: install the project with `pip install -e .`"
    out = tmp_path / "run"
    result = subprocess.run(
        [str(script), "train", "--env", "Nope-v2", "--variant", "direct", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "iapo train: error:" in result.stderr
    assert "'Nope-v2'" in result.stderr and "Hopper-v2" in result.stderr
    assert "Traceback" not in result.stderr
    assert_nothing_written(out)


def test_unknown_device_is_one_paragraph(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main([*train_args(out, env="Hopper-v2"), "--scale", "smoke", "--device", "tpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("iapo train: error: ") and err.count("\n") == 1, err
    assert "'tpu'" in err and "cpu" in err and "Traceback" not in err
    assert_nothing_written(out)


def test_gymnasium_id_is_an_alias_of_the_paper_name(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`--env Hopper-v5` passes the env check (the run then stops at the bad variant, before training)."""
    out = tmp_path / "run"
    assert main(train_args(out, env="Hopper-v5", variant="fancy")) == 2
    err = capsys.readouterr().err
    assert "'fancy'" in err and "environment" not in err
    assert main(train_args(out, env="Hopper-v6")) == 2  # not an ID of any task
    assert "'Hopper-v6'" in capsys.readouterr().err
    assert_nothing_written(out)


def test_envs_prints_every_alias(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envs"]) == 0
    rows = [line.split()[:2] for line in capsys.readouterr().out.splitlines()[1:]]
    assert sorted(name for name, _ in rows) == ALL_ENVS
    for name, gym_id in rows:  # gymnasium's -v5 of each -v2 task of the paper
        assert gym_id == name.removesuffix("-v2") + "-v5"


def test_notebook_without_summary_tables_says_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    missing = tmp_path / "summary"
    assert main(["notebook", "performance", "--scale", "smoke", "--summary", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("iapo notebook: error: ") and err.count("\n") == 1, err
    assert str(missing) in err and "runs.csv" in err and "iapo summarize --scale smoke" in err
    assert not (tmp_path / "paper_figures").exists()


def test_every_input_error_is_one_class_caught_once(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Each error a user's input can cause derives from `IapoError`; the CLI catches that one class in
    one place and exits with the class's code (2; 1 for a notebook that failed to run)."""
    import inspect

    from iapo import errors

    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, Exception)]
    assert len(classes) >= 9 and all(issubclass(c, errors.IapoError) for c in classes)
    assert errors.NotebookError.exit_code == 1 and errors.MissingSummaryError.exit_code == 2
    source = (Path(__file__).resolve().parents[1] / "src" / "iapo" / "cli.py").read_text()
    assert source.count("except IapoError") == 1 and "except ConfigError" not in source
    # a diagnostic's bad input goes through that handler too
    assert main(["diagnose", "amortization_gap", "--run", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("iapo diagnose: error: ") and "nowhere" in err


def test_scales_lists_every_preset_and_the_makefile_reads_its_default(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`iapo scales` describes each preset of params.yaml and marks the default; `--default` prints
    that name alone, which is where the Makefile's SCALE comes from when it is not given."""
    raw = yaml.safe_load(PARAMS.read_text())
    raw["scale"] = "smoke"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["--params", str(params), "scales"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(raw["scales"])
    assert [line for line in lines if line.endswith("(default)")] == [lines[0]] and "5 runs" in lines[0]
    assert main(["--params", str(params), "scales", "--default"]) == 0
    assert capsys.readouterr().out == "smoke\n"
    venv = Path(sys.executable).parent.parent
    dry = subprocess.run(["make", "-n", "--no-print-directory", "report", f"VENV={venv}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    default = yaml.safe_load(PARAMS.read_text())["scale"]
    assert f"--report results/report/{default}.html" in dry.stdout, dry.stdout + dry.stderr


def test_notebook_of_an_unknown_group_names_the_known_ones(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from iapo.figures import notebooks

    assert main(["notebook", "performance", "nope", "--summary", str(tmp_path / "summary")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("iapo notebook: error: ") and err.count("\n") == 1, err
    assert "'nope'" in err and "'performance'" not in err and all(group in err for group in notebooks())
    assert not (tmp_path / "summary").exists()


def test_every_subcommand_takes_its_options_dataclass(monkeypatch: pytest.MonkeyPatch) -> None:
    """`main` hands each subcommand its dataclass: --scale resolved by `Scaled.scale_of`, --device a
    torch.device, and a default device (gpu-check's cuda) resolved only when --device is left out."""
    import torch

    from iapo import cli
    from iapo.config import load_params

    seen = {}

    def record(args: cli.Args) -> int:
        seen[type(args)] = args
        return 0

    for name, command in cli.COMMANDS.items():
        monkeypatch.setitem(cli.COMMANDS, name, dataclasses.replace(command, run=record))
    assert main(["--params", str(PARAMS), "gpu-check", "--device", "cpu"]) == 0  # cuda is never resolved
    assert seen[cli.GpuCheckArgs].device == torch.device("cpu") and seen[cli.GpuCheckArgs].params == PARAMS
    assert main(["bench", "--variants", "direct", "--no-compile"]) == 0
    bench = seen[cli.BenchArgs]
    assert bench.device.type == "cpu" and bench.variants == ["direct"] and bench.archs == ["A", "B"]
    assert main(["rebuild-figures", "-n"]) == 0 and seen[cli.RebuildFiguresArgs].dry_run
    assert seen[cli.RebuildFiguresArgs].scale_of(load_params(PARAMS)) == load_params(PARAMS).scale
    assert main(["notebook", "--scale", "smoke"]) == 0
    assert seen[cli.NotebookArgs].groups == [] and seen[cli.NotebookArgs].scale_of() == "smoke"
    assert main(["diagnose", "modes", "--run", "x", "--seed", "3"]) == 0
    assert seen[cli.DiagnoseArgs].options == ["--run", "x", "--seed", "3"]
    assert main(["train", "--env", "Hopper-v2", "--variant", "direct", "--no-tensorboard"]) == 0
    assert seen[cli.TrainArgs].tensorboard is False and seen[cli.TrainArgs].seed == 0


def test_help_of_a_device_command_loads_no_device(capsys: pytest.CaptureFixture[str]) -> None:
    """--help never resolves a device (gpu-check's default, cuda, included)."""
    with pytest.raises(SystemExit) as exc:
        main(["gpu-check", "--help"])
    assert exc.value.code == 0 and "cuda (default) | cuda:N | cpu" in capsys.readouterr().out
