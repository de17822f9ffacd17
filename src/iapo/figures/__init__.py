"""The paper's figures: one seaborn style, the helpers every notebook draws with, and the registry.

The notebooks (`notebooks/<group>.py`, jupytext percent format, executed by Snakemake through
papermill) read only the small summary tables of one scale (`results/summary/<scale>/`, never a
checkpoint) and draw with the helpers of this package, so every figure has the same look, the same
statistics (mean and a 95% stratified-bootstrap band over seeds from `iapo.stats`, or the paper's
mean ± std) and a title stating the scale, seeds and steps behind it. Where a table or some of its
rows are missing at a scale (no model-based runs at `smoke`, …) the panel says so; nothing is made up.

One module per concern: `labels` (environments, labels, colours), `folder` (the summary folder and
its tables), `bands` (statistics over seeds), `panels` (panels, axes, bands, legend), `baseline` (the
untrained policy and the warm-up), `plots` (`curves`, the figure most notebooks draw), `style` (look,
title, files), `registry` (`FIGURES`: every figure and table of the paper), `index`
(paper_figures/README.md) and `jobs` (what a notebook job reads and writes). The names the notebooks
use (`import iapo.figures as F`) are handed on here.
"""

from __future__ import annotations

from iapo.figures.bands import over_seeds
from iapo.figures.baseline import UNTRAINED, WARMUP, past_warmup, untrained_returns, warmup_note
from iapo.figures.folder import Summary, Table, last_checkpoint, timing_text
from iapo.figures.index import index_markdown, write_index
from iapo.figures.labels import MAIN_ENVS, PENDULUMS, SUITE, color, human, label, order_envs
from iapo.figures.panels import env_panels, grid, no_data, panel_envs, panel_note, steps_axis
from iapo.figures.plots import curves
from iapo.figures.registry import FIGURES, NONE, TABLE_FILES, by_name, notebook_inputs, notebooks
from iapo.figures.style import save, set_style, title

__all__ = [
    "FIGURES", "MAIN_ENVS", "NONE", "PENDULUMS", "SUITE", "TABLE_FILES", "UNTRAINED", "WARMUP", "Summary",
    "Table", "by_name", "color", "curves", "env_panels", "grid", "human", "index_markdown", "label",
    "last_checkpoint", "no_data", "notebook_inputs", "notebooks", "order_envs", "over_seeds", "panel_envs",
    "panel_note", "past_warmup", "save", "set_style", "steps_axis", "timing_text", "title",
    "untrained_returns", "warmup_note", "write_index",
]
