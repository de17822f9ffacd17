"""`iapo diagnose <name> [options]`: parse a diagnostic's options, run it, write its tables atomically."""

from __future__ import annotations

import argparse
import importlib
import sys
import textwrap
import time
import types
from pathlib import Path

import pandas as pd
import torch

from iapo.devices import DeviceError, resolve_device
from iapo.diagnostics import REGISTRY
from iapo.diagnostics.common import write_table
from iapo.diagnostics.options import Options
from iapo.diagnostics.snapshots import load_snapshot, select_checkpoints
from iapo.errors import DiagnosticError
from iapo.layout import EXTRA_TABLES, table_files
from iapo.options import add_options, options_from_args


def load(name: str) -> types.ModuleType:
    if name not in REGISTRY:
        raise DiagnosticError(f"unknown diagnostic {name!r}; choose from {', '.join(REGISTRY)}")
    return importlib.import_module(f"iapo.diagnostics.{name}")


def options_class(module: types.ModuleType) -> type[Options]:
    """The module's options dataclass: the subclass of `Options` it defines."""
    (cls,) = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Options)
              and v is not Options and v.__module__ == module.__name__]
    return cls


def table_paths(name: str, out: Path) -> dict[str, Path]:
    """Each table of diagnostic `name` (its COLUMNS key: "main", then the extra tables) → its file,
    `out` for the main one (`iapo.layout.table_files` names them)."""
    keys = ["main", *EXTRA_TABLES.get(name, ())]
    return dict(zip(keys, table_files(name, out).values(), strict=True))


def default_out(name: str, opts: Options) -> Path:
    """Where the pipeline keeps this table: results/diagnostics/<scale>/<name>/<env>/<variant>/
    seed<k>.csv for the run's own scale, env, variant and seed (read from its last checkpoint)."""
    from iapo.layout import DiagnosticRun, RunKey

    cfg = load_snapshot(select_checkpoints(opts.run, "last")[0][1], "cpu").cfg
    return DiagnosticRun(name, RunKey(cfg.env, cfg.variant, cfg.seed)).out(cfg.scale)


def describe(name: str, module: types.ModuleType) -> str:
    """--help text: what it computes, what it reads and writes, one line per column."""
    cls = options_class(module)
    lines = [REGISTRY[name], "", textwrap.dedent(module.__doc__ or "").strip(), "",
             f"Reads RUN/checkpoints/step_N.pt. {textwrap.dedent(cls.__doc__ or '').strip()}"]
    for table, columns in module.COLUMNS.items():
        where = "--out" if table == "main" else f"<out stem>_{table}.csv"
        lines += ["", f"Columns of {where}:"]
        lines += [f"  {c:<16} {d}" if d else f"  {c}" for c, d in columns.items()]
    return "\n".join(lines)


def build_parser(name: str) -> argparse.ArgumentParser:
    module = load(name)
    parser = argparse.ArgumentParser(prog=f"iapo diagnose {name}", description=describe(name, module),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(parser, options_class(module))
    return parser


def diagnose(name: str, opts: Options) -> dict[str, Path]:
    """Run one diagnostic and write its tables atomically; returns table name → path written."""
    module = load(name)
    if not (Path(opts.run) / "checkpoints").is_dir():
        raise DiagnosticError(f"--run {opts.run}: no checkpoints/ folder; pass a run folder written "
                              "by `iapo train --out`")
    torch.set_num_threads(opts.threads)
    try:
        opts.device = resolve_device(opts.device)  # once: what follows takes the torch.device
    except DeviceError as err:
        raise DiagnosticError(str(err)) from None
    out = Path(opts.out) if opts.out is not None else default_out(name, opts)
    paths = table_paths(name, out)
    print(f"iapo diagnose {name}: {opts.run} -> {', '.join(str(p) for p in paths.values())}",
          file=sys.stderr)
    start = time.perf_counter()
    tables: dict[str, pd.DataFrame] = module.run(opts)
    for table, df in tables.items():
        expected = list(module.COLUMNS[table])
        if list(df.columns) != expected:  # a bug, never user error: the schema is documented
            raise RuntimeError(f"{name}: table {table!r} has columns {list(df.columns)}, "
                               f"documented {expected}")
    for table, df in tables.items():
        write_table(df, paths[table])
        if df.empty:
            print(f"warning: {paths[table]} has no rows (e.g. policy_change needs two checkpoints)",
                  file=sys.stderr)
    elapsed = time.perf_counter() - start
    summary = ", ".join(f"{paths[t]} ({len(df)} rows)" for t, df in tables.items())
    print(f"written: {summary} in {elapsed:.1f} s", file=sys.stderr)
    return paths


def main(name: str, argv: list[str]) -> int:
    """`iapo diagnose <name> [options]`; a bad input raises `DiagnosticError` (the CLI reports it)."""
    opts = options_from_args(options_class(load(name)), build_parser(name).parse_args(argv))
    diagnose(name, opts)
    return 0
