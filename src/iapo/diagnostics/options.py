"""The options of a diagnostic: a dataclass whose fields are its command-line options (`--flag`, typed,
with help and default), the options every diagnostic takes, and the parser built from them."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iapo.layout import DiagnosticRun, RunKey

DEFAULT_OUT = DiagnosticRun("<name>", RunKey("<env>", "<variant>", "<k>")).out("<scale>")
"""The layout of `--out` when it is not given, as --help shows it."""


def doc(help: str, choices: Iterable | None = None) -> dict[str, Any]:
    """Field metadata read by `add_options`: the option's help and allowed values."""
    return {"help": help} | ({"choices": list(choices)} if choices is not None else {})


def option(default: Any = dataclasses.MISSING, help: str = "", choices: Iterable | None = None) -> Any:
    """A dataclass field that is also a command-line option (`--name-with-dashes`)."""
    return field(default=default, metadata=doc(help, choices))


@dataclass
class Options:
    """Options every diagnostic takes; each diagnostic subclasses this with its own."""

    run: Path = field(metadata=doc("run folder written by `iapo train` (reads RUN/checkpoints/step_N.pt)"))
    checkpoints: str = option("all", "which snapshots: all | last | first | N,M (env steps)")
    out: Path | None = field(default=None, metadata=doc(
        f"output CSV (default: where the pipeline keeps it, {DEFAULT_OUT} of the run's own scale)"))
    seed: int = option(0, "seed of the diagnostic (environments, samples); not the training seed")
    device: str = option("cpu", "cpu | cuda | cuda:N")
    threads: int = option(1, "torch CPU threads")

    def __post_init__(self) -> None:
        self.run = Path(self.run)
        self.out = None if self.out is None else Path(self.out)


def _unwrap_optional(tp: Any) -> Any:
    """`X | None` → X (the type an option's value is parsed with)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None))
    return tp


def add_options(parser: argparse.ArgumentParser, cls: type[Options]) -> None:
    """One `--flag` per field of the options dataclass, typed, with its help and default."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        base = _unwrap_optional(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        kw: dict[str, Any] = {"help": f.metadata.get("help", ""), "dest": f.name}
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        if f.default is dataclasses.MISSING:
            kw["required"] = True
        else:
            kw["default"] = f.default
            if f.default is not None:
                kw["help"] += " (default: %(default)s)"
        if base is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        else:
            parser.add_argument(flag, type=base, **kw)


def options_from_args(cls: type[Options], args: argparse.Namespace) -> Options:
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})
