"""Live training curves: TensorBoard event files holding the rows of metrics.csv and eval.csv.

With `iapo train --tensorboard` (or params.yaml `logging.tensorboard: true`) a run also writes
RUN/tensorboard/: every metrics.csv row as the scalars `metrics/<column>` and every evaluation as
`eval/return` (the mean return of its episodes, as the progress bar shows) and `eval/length`, each
at its env step; a metric a row leaves empty (NaN, e.g. `train_return` of an interval in which no
episode ended) is left out. Watch it with `tensorboard --logdir RUN` (or a folder of runs).

The event files are a view of the rows the run keeps, rewritten from them whenever the loop
starts: a resumed run drops the rows written after its resume state (as the CSVs do), and the
curves then hold exactly the CSVs' rows, never a point twice. The old files are removed and the
new one starts with a purge at step 0 (`SummaryWriter(purge_step=0)`), so a TensorBoard that has
already read the old files drops their points too.
"""

from __future__ import annotations

import math
import shutil
from itertools import groupby
from pathlib import Path

FOLDER = "tensorboard"
"""The event files' folder inside a run folder."""


class Curves:
    """The TensorBoard writer of one training run."""

    def __init__(self, folder: Path, metrics_rows: list[dict], eval_rows: list[dict]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        shutil.rmtree(folder, ignore_errors=True)
        self.writer = SummaryWriter(str(folder), purge_step=0)
        for row in metrics_rows:
            self.metrics(row, flush=False)
        for _, rows in groupby(eval_rows, key=lambda r: r["env_step"]):
            self.evaluation(list(rows), flush=False)
        self.writer.flush()

    def metrics(self, row: dict, flush: bool = True) -> None:
        """One metrics.csv row: `metrics/<column>` at its env step."""
        step = int(row["env_step"])
        for key, value in row.items():
            if key != "env_step" and not math.isnan(value):
                self.writer.add_scalar(f"metrics/{key}", value, step)
        if flush:
            self.writer.flush()

    def evaluation(self, rows: list[dict], flush: bool = True) -> None:
        """The eval.csv rows of one evaluation: mean return and length at its env step."""
        step = int(rows[0]["env_step"])
        self.writer.add_scalar("eval/return", sum(r["return"] for r in rows) / len(rows), step)
        self.writer.add_scalar("eval/length", sum(r["length"] for r in rows) / len(rows), step)
        if flush:
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()
