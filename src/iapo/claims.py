"""The claims registry: the paper's testable claims in `claims.yaml` (`Claim`, with its `Test`), the
statements no table can test (`Untestable`), and the published reference returns, read and checked.

Each claim names a tidy table (`<summary dir>/<table>.csv`), the value column, an optional pandas
`where` filter, an optional derivation (`iapo.derivations`), its **scope** (the environments of the
figure it is about, from the figure registry, or a narrower list the sentence names) and a test
(how `iapo.audit` decides it). Claims marked `beta_dependent` carry a note (`BETA_NOTE`): A.4's β
values were tuned with the original code's σ_Q, not eq. 13's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iapo.decide import KINDS, TWO_ARM
from iapo.derivations import DERIVATIONS
from iapo.errors import AuditError


class Test(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal[KINDS]  # type: ignore[valid-type]
    column: str | None = None  # the arm column for two-arm tests (e.g. variant)
    a: str | None = None
    b: str | None = None
    by: list[str] = Field(default_factory=lambda: ["env"])  # one verdict per group; must name env
    pair_on: list[str] | None = None  # paired design: a and b rows matched on seed + these columns
    aggregate: bool = False  # decide on the mean over the scope's environments (normalized units)
    margin: float = 0.1
    min_effect: float = 0.0  # greater / less / positive: the smallest difference that matters
    units: str = "b"  # b | normalized | absolute | a column of the table
    support_only: bool = False  # the statistic is a lower bound of what the claim is about: never contradicts
    threshold: float = 0.0
    low: float | None = None
    high: float | None = None


class Claim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    section: str
    figures: dict[str, str] = Field(default_factory=dict)  # figure number in each paper version
    figure: str | None = None  # the figure registry entry (iapo.figures.registry.FIGURES) it is about
    scope: list[str] | None = None  # its environments; default: the figure's
    hardware: Literal["any", "cuda"] = "any"
    claim: str
    metric: str
    table: str
    value: str
    where: str | None = None
    at: Literal["all", "first", "last"] = "all"  # checkpoints: all, or each run's first / last
    derive: str | None = None  # a named derivation (iapo.derivations) applied before the test
    source: str = ""  # the paper's sentence (or caption) the claim comes from
    beta_dependent: bool = False  # the outcome depends on the β of A.4 (tuned under the code's σ_Q)
    test: Test

    @property
    def pairing(self) -> str:
        t = self.test
        if t.kind not in TWO_ARM:
            return "one arm"
        return f"paired on seed, {', '.join(t.pair_on)}" if t.pair_on else "unpaired (independent runs)"


class Untestable(BaseModel):
    """A statement of the paper about results that no summary table can test, and why."""

    model_config = ConfigDict(extra="forbid")

    section: str
    figures: dict[str, str] = Field(default_factory=dict)
    sentence: str
    reason: str


BETA_NOTE = ("β-dependent: A.4's β (1.5 Hopper, 2.5 elsewhere) were tuned with the original code's σ_Q = "
             "|Q₁ − Q₂|/√2; eq. 13's σ_Q = |Q₁ − Q₂|/2 (this project's default) makes the same β penalise "
             "1/√2 ≈ 71% as much (docs/deviations.md row 12)")


def _read_yaml(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise AuditError(f"{path}: cannot read the claims ({err})") from err
    if not isinstance(raw, dict):
        raise AuditError(f"{path}: expected a mapping with `claims:`")
    return raw


def load_untestable(path: str | Path) -> list[Untestable]:
    """The claims file's `not_testable` list (statements no table can test, with the reason)."""
    try:
        return [Untestable.model_validate(u) for u in _read_yaml(Path(path)).get("not_testable", [])]
    except ValidationError as err:
        raise AuditError(f"{path}: invalid not_testable entry: {err}") from None


def load_reference_returns(path: str | Path) -> dict[str, float]:
    """The claims file's `reference_returns` (env → a published SAC return, the top of the normalized
    scale)."""
    refs = _read_yaml(Path(path)).get("reference_returns", {}) or {}
    try:
        return {str(k): float(v) for k, v in refs.items()}
    except (TypeError, ValueError, AttributeError) as err:
        raise AuditError(f"{path}: reference_returns must map env ids to numbers ({err})") from None


def load_claims(path: str | Path) -> list[Claim]:
    """Read and check the claims; every claim's scope is resolved (from its figure where not given)."""
    from iapo.figures.registry import FIGURES  # the registry of figures and their environments

    path = Path(path)
    raw = _read_yaml(path)
    try:
        claims = [Claim.model_validate(c) for c in raw["claims"]]
    except (KeyError, TypeError) as err:
        raise AuditError(f"{path}: cannot read the claims ({err})") from err
    except ValidationError as err:
        raise AuditError(f"{path}: invalid claim: {err}") from None
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise AuditError(f"{path}: duplicate claim ids")
    registry = {f.name: f for f in FIGURES}
    for c in claims:
        where = f"{path}: claim {c.id}"
        if c.derive and c.derive not in DERIVATIONS:
            raise AuditError(f"{where}: unknown derive {c.derive!r}; "
                             f"allowed: {', '.join(sorted(DERIVATIONS))}")
        if c.test.kind in TWO_ARM and not (c.test.column and c.test.a and c.test.b):
            raise AuditError(f"{where}: a {c.test.kind} test needs column, a and b")
        if c.test.kind == "within" and (c.test.low is None or c.test.high is None):
            raise AuditError(f"{where}: a within test needs low and high")
        if "env" not in c.test.by:
            raise AuditError(f"{where}: test.by must name env (the unit of replication is the seed of one "
                             f"environment; by {c.test.by} would average seeds of different environments)")
        if c.test.pair_on is not None and c.test.kind not in TWO_ARM:
            raise AuditError(f"{where}: pair_on is for two-arm tests ({', '.join(TWO_ARM)})")
        if c.figure is not None and c.figure not in registry:
            raise AuditError(f"{where}: unknown figure {c.figure!r}; allowed: {', '.join(registry)}")
        if c.scope is None:
            if c.figure is None:
                raise AuditError(f"{where}: needs a scope (its environments) or a figure (whose are taken)")
            c.scope = list(registry[c.figure].envs)
        if not c.scope:
            raise AuditError(f"{where}: an empty scope decides nothing")
    return claims
