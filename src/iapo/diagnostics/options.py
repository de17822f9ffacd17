"""The options of a diagnostic: a dataclass whose fields are its command-line options (`--flag`, typed,
with help and default; the mechanism is `iapo.options`) and the options every diagnostic takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from iapo.layout import DiagnosticRun, RunKey
from iapo.options import doc, option

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_OUT", "Options", "doc", "option"]

DEFAULT_OUT = DiagnosticRun("<name>", RunKey("<env>", "<variant>", "<k>")).out("<scale>")
"""The layout of `--out` when it is not given, as --help shows it."""


@dataclass
class Options:
    """Options every diagnostic takes; each diagnostic subclasses this with its own."""

    run: Path = field(metadata=doc("run folder written by `iapo train` (reads RUN/checkpoints/step_N.pt)"))
    checkpoints: str = option("all", "which snapshots: all | last | first | N,M (env steps)")
    out: Path | None = field(default=None, metadata=doc(
        f"output CSV (default: where the pipeline keeps it, {DEFAULT_OUT} of the run's own scale)"))
    seed: int = option(0, "seed of the diagnostic (environments, samples); not the training seed")
    device: str | torch.device = option("cpu", "cpu | cuda | cuda:N", type=str)  # resolved: a torch.device
    threads: int = option(1, "torch CPU threads")

    def __post_init__(self) -> None:
        self.run = Path(self.run)
        self.out = None if self.out is None else Path(self.out)
