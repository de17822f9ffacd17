"""The paper's analyses as `iapo diagnose <name>`: each reads a run's checkpoints, writes tidy CSVs.

A diagnostic is one module here with three things: an options dataclass (a subclass of
`options.Options`; its fields are the command-line options), `COLUMNS` (table name → column → meaning;
"main" is the CSV at --out, any other table T goes next to it as <stem>_T.csv) and
`run(options) -> {table name: DataFrame}`. Adding one (e.g. the model-based transfer and planning
analyses) is a new module plus a line in `REGISTRY`; `runner` does the command line and the writing.
The pieces they share: `options` (options as dataclass fields), `snapshots` (checkpoints → agents),
`objectives` (J with β, common noise, random starts), `recording` (J that records a trajectory),
`rollouts` (states from the task) and `common` (what every table is written with).
The CSV schemas are in docs/diagnostics.md. The names (`REGISTRY`, `EXTRA_TABLES`, `table_names`)
live in `iapo.layout`, with every other product's name, and are handed on here (nothing heavy:
`iapo --help` lists them without loading torch).
"""

from __future__ import annotations

from iapo.layout import EXTRA_TABLES, REGISTRY, table_names

__all__ = ["EXTRA_TABLES", "REGISTRY", "table_names"]
