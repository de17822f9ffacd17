"""Command-line options declared as dataclass fields.

A command's options are one dataclass: each field is an option (`--name-with-dashes`, or an argument
by position), its annotation the type of the value, its default the option's default, and its
metadata (`option`, `doc`) the help and how argparse reads it. `add_options` puts the fields into a
parser; `options_from_args` builds the dataclass from what the parser read.

A field's `convert` runs there, after parsing, not as argparse's `type`: what it raises reaches the
caller (`iapo` reports an `IapoError` as one paragraph, exit code 2) instead of becoming a usage
error, a default is converted only when the option is left out, and what it imports (torch, for a
device) is loaded only when a command runs, never for `--help`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def doc(help: str = "", choices: Iterable | None = None, *, flags: tuple[str, ...] = (),
        positional: bool = False, type: Callable[[str], Any] | None = None, nargs: str | None = None,
        metavar: str | None = None, store_true: bool = False, hidden: bool = False,
        convert: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """Field metadata read by `add_options`; what is not given is left out.

    help, choices   the option's help and its allowed values
    flags           more names, before `--name` (e.g. `("-n",)` for `-n/--dry-run`)
    positional      an argument by position (`name`), not an option
    type            what argparse reads a value with where the annotation is not it (`positive_int`)
    nargs, metavar  as argparse's (`+`, `*`, `argparse.REMAINDER`; the value's name in --help)
    store_true      a bool flag that sets True, with no `--no-` form (else `--x/--no-x`)
    hidden          left out of --help (an option kept for older command lines)
    convert         applied to the parsed value by `options_from_args` (module docstring)
    """
    given = {"help": help, "choices": None if choices is None else list(choices), "flags": flags,
             "positional": positional, "type": type, "nargs": nargs, "metavar": metavar,
             "store_true": store_true, "hidden": hidden, "convert": convert}
    return {key: value for key, value in given.items() if value or key == "help"}


def option(default: Any = dataclasses.MISSING, help: str = "", choices: Iterable | None = None,
           **how: Any) -> Any:
    """A dataclass field that is also a command-line option; `how`: the keywords of `doc`. A list
    default is copied for each instance (a fresh list, as dataclasses require)."""
    metadata = doc(help, choices, **how)
    if isinstance(default, list):
        return dataclasses.field(default_factory=default.copy, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _annotation(cls: type, name: str) -> Any:
    """The type field `name` of `cls` is annotated with, evaluated in the module of the class that
    declares it (as `typing.get_type_hints` does, for this field alone: the annotation of a field that
    names its `type`, e.g. `torch.device` imported for type checking only, is never evaluated)."""
    owner = next(k for k in cls.__mro__ if name in vars(k).get("__annotations__", {}))
    annotation = vars(owner)["__annotations__"][name]
    if isinstance(annotation, str):  # `from __future__ import annotations`
        annotation = eval(annotation, vars(sys.modules[owner.__module__]))
    return annotation


def _unwrap_optional(tp: Any) -> Any:
    """`X | None` → X (the type an option's value is parsed with)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None))
    return tp


def _value_type(tp: Any) -> Any:
    """What argparse reads one value with: X of `X`, `X | None`, `list[X]` and `tuple[X, ...]`."""
    tp = _unwrap_optional(tp)
    return typing.get_args(tp)[0] if typing.get_origin(tp) in (list, tuple) else tp


def _default(f: dataclasses.Field) -> Any:
    """The field's default (a fresh one, from its factory), or MISSING."""
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def add_options(parser: argparse.ArgumentParser, cls: type, *, exclude: type | None = None,
                show_defaults: bool = True) -> None:
    """One argument per field of the dataclass `cls` (but those of its base `exclude`, which another
    parser takes): typed, with its help and default; with `show_defaults`, " (default: …)" is added
    to the help of each option whose default is not None (else the help texts say it themselves)."""
    skip = {f.name for f in dataclasses.fields(exclude)} if exclude is not None else set()
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        meta, default = f.metadata, _default(f)
        kw: dict[str, Any] = {"help": argparse.SUPPRESS if meta.get("hidden") else meta.get("help", "")}
        kw |= {key: meta[key] for key in ("choices", "nargs", "metavar") if key in meta}
        if default is not dataclasses.MISSING:
            kw["default"] = default
        if meta.get("positional"):
            names = [f.name]
        else:
            names = [*meta.get("flags", ()), "--" + f.name.replace("_", "-")]
            kw["dest"] = f.name
            kw["required"] = default is dataclasses.MISSING
        value_type = meta.get("type") or _value_type(_annotation(cls, f.name))
        shown = default is not None and default is not dataclasses.MISSING and value_type is not bool
        if show_defaults and shown:  # a `--x/--no-x` option says its default itself
            kw["help"] += " (default: %(default)s)"
        if meta.get("store_true"):
            parser.add_argument(*names, action="store_true", **kw)
        elif value_type is bool:
            parser.add_argument(*names, action=argparse.BooleanOptionalAction, **kw)
        else:
            parser.add_argument(*names, type=value_type, **kw)


def options_from_args(cls: type[T], args: argparse.Namespace) -> T:
    """The dataclass `cls` of the values the parser read, each field's `convert` applied to its value
    (an error it raises propagates)."""
    values = {}
    for f in dataclasses.fields(cls):
        convert = f.metadata.get("convert")
        values[f.name] = getattr(args, f.name) if convert is None else convert(getattr(args, f.name))
    return cls(**values)
