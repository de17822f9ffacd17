"""What a notebook job of the pipeline reads and writes: the summary tables a scale produces for it
(its inputs) and its figures, executed notebook and HTML (its outputs)."""

from __future__ import annotations

from pathlib import Path

from iapo.config import Params
from iapo.figures.registry import notebook_inputs, notebooks
from iapo.layout import figures_root, notebooks_dir, summary_dir
from iapo.summary import SUMMARY_FILES, diagnostic_tables


def notebook_tables(params: Params, scale: str, notebook: str) -> list[Path]:
    """The summary files a notebook reads that the scale produces (the inputs of its job); a
    diagnostic table the scale does not make is left out and drawn as a 'no data' panel."""
    produced = set(diagnostic_tables(params, scale))
    return [summary_dir(scale) / file for file in notebook_inputs(notebook)
            if file in SUMMARY_FILES or file.removesuffix(".csv") in produced]


def notebook_outputs(scale: str, notebook: str) -> list[Path]:
    """Every file a notebook job writes: its figures, the executed notebook and its HTML."""
    figures = [figures_root(scale) / file for entry in notebooks()[notebook] for file in entry.files]
    return figures + [notebooks_dir(scale) / f"{notebook}.{ext}" for ext in ("ipynb", "html")]
