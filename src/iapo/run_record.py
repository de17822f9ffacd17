"""run.json: what `iapo train` writes last into a run folder (its presence marks a finished run), and
the one reader of it. Identity, length, cost, the resolved settings and provenance (versions, git
commit, machine, device: kept as written, beyond the fields below)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from iapo import atomic

FILE = "run.json"


class RunRecord(BaseModel):
    """The fields of run.json that the project reads back; any other key is kept as written."""

    model_config = ConfigDict(extra="allow", frozen=True)

    env: str
    variant: str
    seed: int
    scale: str
    steps: int
    updates: int | None = None
    episodes: int | None = None
    params_hash: str | None = None
    final_eval_return: float | None = None
    wall_time_s: float | None = None
    env_steps_per_s_last_session: float | None = None
    resumed_at: list[int] = []
    rng_reseeded_at: list[int] = []
    threads: int | None = None
    device: str | None = None
    git_commit: str | None = None
    config: dict[str, Any] = {}

    @classmethod
    def read(cls, folder: Path) -> RunRecord:
        """`folder/run.json`; OSError if absent or unreadable, ValueError (saying which) if not JSON
        or not a run's record."""
        try:
            info = json.loads((folder / FILE).read_text())
        except ValueError as err:
            raise ValueError(f"not valid JSON ({err})") from None
        try:
            return cls.model_validate(info)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(map(str, first["loc"])) or "(top level)"
            raise ValueError(f"not a run's record ({where}: {first['msg']})") from None



def write(folder: Path, info: dict[str, Any]) -> RunRecord:
    """Check `info` against `RunRecord`, then write it atomically, its keys in the given order."""
    record = RunRecord.model_validate(info)
    atomic.write_json(folder / FILE, info)
    return record
