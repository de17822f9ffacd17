"""`iapo notebook`: execute the figure notebooks (jupytext → papermill → HTML) of one scale.

notebooks/<group>.py (jupytext percent format, the source of truth) is read as a notebook, executed
by papermill with the kernel `python3` and the parameters summary_dir, scale and out_dir, and the
executed copy is kept with an HTML rendering:

  paper_figures/<scale>/figures/<name>.pdf, .png         the figures the notebook draws
  paper_figures/<scale>/notebooks/<group>.ipynb, .html   the executed notebook, rendered

Snakemake runs one group per job; the DVC stage runs them all (same function).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from iapo import layout
from iapo.errors import MissingSummaryError, NotebookError
from iapo.layout import figures_dir, notebooks_dir

NOTEBOOKS = Path("notebooks")
# the rendering's own style: nbconvert's `basic` body is a quarter the size of its `lab` page (most of
# which is the lab theme's CSS), and the executed notebooks of a scale are kept in git
PAGE_CSS = """body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; }
.input_area pre { background: #f6f8fa; padding: 0.6em; overflow-x: auto; }
.prompt { color: #888; font-size: 0.8em; }
img { max-width: 100%; }
"""


def check_summary(summary_dir: Path, scale: str) -> None:
    """Refuse to draw from a summary folder without the scale's run tables (it would draw only
    empty panels); the message says which command makes them."""
    from iapo.summary import SUMMARY_FILES

    missing = [name for name in SUMMARY_FILES if not (summary_dir / name).is_file()]
    if missing:
        raise MissingSummaryError(
            f"{summary_dir}: the summary tables of scale {scale!r} are missing ({', '.join(missing)}). "
            f"Make them first: `iapo summarize --scale {scale}` from finished run folders, "
            f"`make reproduce SCALE={scale}` for the whole pipeline (training included), or "
            f"`make pull SCALE={scale}` for a study recorded in DVC; or pass --summary FOLDER.")


def executed_path(scale: str, group: str) -> Path:
    return notebooks_dir(scale) / f"{group}.ipynb"


def run_notebook(group: str, scale: str, summary_dir: str | Path | None = None) -> Path:
    """Execute notebooks/<group>.py on results/summary/<scale>; returns the executed notebook's path."""
    import jupytext
    import nbformat
    import papermill

    from iapo import atomic

    source = NOTEBOOKS / f"{group}.py"
    if not source.is_file():
        known = ", ".join(sorted(p.stem for p in NOTEBOOKS.glob("*.py")))
        raise NotebookError(f"{source}: no such notebook; known: {known}")
    summary_dir = Path(summary_dir) if summary_dir is not None else layout.summary_dir(scale)
    check_summary(summary_dir, scale)
    out = executed_path(scale, group)
    out.parent.mkdir(parents=True, exist_ok=True)
    params = {"summary_dir": str(summary_dir), "scale": scale, "out_dir": str(figures_dir(scale))}
    print(f"iapo notebook: {source} -> {out} (+ .html), figures in {figures_dir(scale)}/", file=sys.stderr)
    partial = out.with_name(f".{group}.tmp.ipynb")  # papermill's own writes go here, never to `out`
    try:
        nb = papermill.execute_notebook(jupytext.read(source), str(partial),
                                        parameters=params, kernel_name="python3", language="python",
                                        cwd=".", progress_bar=False)
    except papermill.PapermillExecutionError as err:
        failed = out.with_name(f"{group}.failed.ipynb")
        os.replace(partial, failed)
        raise NotebookError(f"{source} failed in cell {err.exec_count} ({err.ename}: {err.evalue}); "
                            f"the executed notebook with the traceback is {failed}") from None
    nb = numbered(without_volatile_metadata(nb, source, out), group)
    partial.unlink(missing_ok=True)
    atomic.write_text(out, nbformat.writes(nb) + "\n")
    atomic.write_text(out.with_suffix(".html"), html_page(nb, f"{group} ({scale})"))
    return out


def numbered(nb: Any, group: str) -> Any:
    """The notebook with stable cell ids (`<group>-<index>`): jupytext draws random ones on each read
    and papermill another for the cell of parameters it inserts, which would make every rebuild of
    an unchanged notebook a different file."""
    for index, cell in enumerate(nb.cells):
        cell.id = f"{group}-{index}"[-64:]
    return nb


def without_volatile_metadata(nb: Any, source: Path, out: Path) -> Any:
    """The executed notebook without what changes from one execution of the same notebook on the same
    tables to the next (clock times and durations of papermill and the kernel, the input notebook
    papermill copies into the metadata), so that an unchanged figure group rebuilds byte for byte."""
    meta = nb.metadata.get("papermill", {})
    for key in ("start_time", "end_time", "duration"):
        meta.pop(key, None)
    meta.update(input_path=str(source), output_path=str(out))
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for key in ("start_time", "end_time", "duration"):
            cell.metadata.get("papermill", {}).pop(key, None)
    return nb


def html_page(nb: object, title: str) -> str:
    """A standalone HTML page of an executed notebook: nbconvert's `basic` body (figures embedded),
    code highlighted by pygments, `PAGE_CSS`."""
    from html import escape

    from nbconvert import HTMLExporter
    from pygments.formatters import HtmlFormatter

    body, _ = HTMLExporter(template_name="basic").from_notebook_node(nb)
    css = PAGE_CSS + HtmlFormatter().get_style_defs(".highlight")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{escape(title)}</title>\n"
            f"<style>\n{css}\n</style></head>\n<body>\n{body}\n</body></html>\n")
