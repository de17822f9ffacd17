"""The claims audit: evaluate every claim of `claims.yaml` on the summary tables, with statistics.

Each claim names a tidy table (`<summary dir>/<table>.csv`), the value column, an optional
pandas `where` filter, and a test. The unit of replication is the seed: rows are first averaged
per (group, arm, seed). Verdicts are `supported`, `contradicted` or `inconclusive` (with the reason).

Test kinds (a = arm `a`, b = arm `b` of `column`; intervals are 95% bootstrap CIs over seeds):
  greater / less     mean(a) − mean(b) > 0 (< 0): the CI excludes 0 on that side → supported,
                     on the other side → contradicted
  not_worse          mean(a) − mean(b) > −margin·|mean(b)|: CI above → supported, below → contradicted
  similar            |mean(a) − mean(b)| ≤ margin·|mean(b)|: CI inside → supported, CI outside → contradicted
  positive           mean > 0 over seeds
  at_least           mean ≥ threshold
  within             low ≤ mean ≤ high
With `by`, the test runs per group (e.g. per environment); the claim is supported if every group
is, contradicted if any group is, and inconclusive otherwise. A group where the scale runs only one
of the two arms (e.g. an env without β = 1 runs) is not tested, and the reason says so.

For every group it cannot decide, the audit also reports what would decide it (`iapo.power`): the
smallest effect this scale's seeds could detect and the seeds that would decide it at the observed
effect, or that the effect is too small to matter. Claims marked `beta_dependent` carry a note: A.4's
β values were tuned with the original code's σ_Q, not eq. 13's. Statements of the paper that no table
can test are listed under `not_testable` in the claims file with the reason; the report prints them.

Checkpoints taken before training started (env step ≤ the scale's `initial_random_steps`, at most
one update: the optimizer at its initialisation) are left out of the diagnostic tables' claims;
they say nothing about what amortization learned (small scales checkpoint there, the paper never).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from iapo.errors import AuditError
from iapo.power import MAX_SEEDS, Power, power_analysis
from iapo.stats import Interval, mean, probability_of_improvement, stratified_bootstrap
from iapo.summary import produced_tables, table_file

Verdict = Literal["supported", "contradicted", "inconclusive"]
TWO_ARM = ("greater", "less", "not_worse", "similar")
ONE_ARM = ("positive", "at_least", "within")
MIN_SEEDS = 2


class Test(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["greater", "less", "not_worse", "similar", "positive", "at_least", "within"]
    column: str | None = None  # the arm column for two-arm tests (e.g. variant)
    a: str | None = None
    b: str | None = None
    by: list[str] = Field(default_factory=list)  # one verdict per group (e.g. env)
    margin: float = 0.1
    threshold: float = 0.0
    low: float | None = None
    high: float | None = None


class Claim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    section: str
    figures: dict[str, str] = Field(default_factory=dict)  # figure number in each paper version
    claim: str
    metric: str
    table: str
    value: str
    where: str | None = None
    at: Literal["all", "first", "last"] = "all"  # checkpoints: all, or each run's first / last
    derive: str | None = None  # a named derivation (DERIVATIONS) applied before the test
    source: str = ""  # the paper's sentence (or caption) the claim comes from
    beta_dependent: bool = False  # the outcome depends on the β of A.4 (tuned under the code's σ_Q)
    test: Test


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


def load_untestable(path: str | Path) -> list[Untestable]:
    """The claims file's `not_testable` list (statements no table can test, with the reason)."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        return [Untestable.model_validate(u) for u in raw.get("not_testable", [])]
    except (OSError, yaml.YAMLError, AttributeError) as err:
        raise AuditError(f"{path}: cannot read not_testable ({err})") from err
    except ValidationError as err:
        raise AuditError(f"{path}: invalid not_testable entry: {err}") from None


def load_claims(path: str | Path) -> list[Claim]:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
        claims = [Claim.model_validate(c) for c in raw["claims"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise AuditError(f"{path}: cannot read the claims ({err})") from err
    except ValidationError as err:
        raise AuditError(f"{path}: invalid claim: {err}") from None
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise AuditError(f"{path}: duplicate claim ids")
    for c in claims:
        if c.derive and c.derive not in DERIVATIONS:
            raise AuditError(f"{path}: claim {c.id}: unknown derive {c.derive!r}; "
                             f"allowed: {', '.join(sorted(DERIVATIONS))}")
        if c.test.kind in TWO_ARM and not (c.test.column and c.test.a and c.test.b):
            raise AuditError(f"{path}: claim {c.id}: a {c.test.kind} test needs column, a and b")
        if c.test.kind == "within" and (c.test.low is None or c.test.high is None):
            raise AuditError(f"{path}: claim {c.id}: a within test needs low and high")
    return claims


@dataclass
class GroupResult:
    group: str
    verdict: Verdict
    reason: str
    estimate: float = float("nan")
    low: float = float("nan")
    high: float = float("nan")
    p_improvement: float | None = None
    n_seeds: str = ""
    power: Power | None = None
    by_step: str = ""  # open groups: the statistic at the first and the last checkpoint


@dataclass
class ClaimResult:
    claim: Claim
    verdict: Verdict
    reason: str
    groups: list[GroupResult] = field(default_factory=list)


RUN = ["env", "variant", "seed"]


def _at(df: pd.DataFrame, at: str) -> pd.DataFrame:
    """Keep each run's first or last checkpoint (`step`, or `env_step` for training logs)."""
    step = "step" if "step" in df.columns else "env_step"
    if at == "all" or step not in df.columns:
        return df
    keys = [k for k in RUN if k in df.columns]
    pick = df.groupby(keys)[step].transform("max" if at == "last" else "min")
    return df[df[step] == pick]


def iters_to_match(df: pd.DataFrame) -> pd.DataFrame:
    """Optimizer comparison (B.4): for Adam and CEM, the iterations needed to reach the J that the
    iterative optimizer reaches after K iterations (its training K), divided by K. Curves are
    means over states per (env, seed, step). A curve that never gets there counts its length + 1
    (a lower bound, so the ratio is conservative)."""
    rows = []
    for (env, seed, step), g in df.groupby(["env", "seed", "step"]):
        curves = g.groupby(["optimizer", "iteration"])["J"].mean()
        if "iterative" not in curves.index.get_level_values(0):
            continue
        k = int(g["n_iters_trained"].iloc[0]) if "n_iters_trained" in g else 5
        target = curves["iterative"].get(k, curves["iterative"].iloc[-1])
        for opt in ("adam", "cem"):
            if opt not in curves.index.get_level_values(0):
                continue
            curve = curves[opt]
            reached = curve.index[curve.to_numpy() >= target]
            n = int(reached.min()) if len(reached) else int(curve.index.max()) + 1
            rows.append({"env": env, "seed": seed, "step": step, "optimizer": opt, "ratio": n / k})
    return pd.DataFrame(rows, columns=["env", "seed", "step", "optimizer", "ratio"])


def surface_suboptimality(df: pd.DataFrame) -> pd.DataFrame:
    """2-D surfaces (A.1, B.5): J at the best grid point minus J at the agent's own estimate."""
    keys = ["env", "variant", "seed", "step", "state"]
    wide = df[df["kind"].isin(["optimum", "estimate"])].pivot_table(index=keys, columns="kind", values="J")
    wide["suboptimality"] = wide["optimum"] - wide["estimate"]
    return wide.reset_index()


def mode_spread(df: pd.DataFrame) -> pd.DataFrame:
    """Multiple modes (B.7): per checkpoint and initialization of the runs (`init`: same λ_0, or
    random; tables without the column came from the same λ_0) the largest pairwise
    ‖tanh μ_i − tanh μ_j‖ over states, as a fraction of the largest possible distance 2√|A|."""
    df = df if "init" in df.columns else df.assign(init="same")
    g = df.groupby(["env", "variant", "init", "seed", "step"])
    out = (g["l2_tanh_mu"].max() / g["max_l2"].first()).rename("max_fraction").reset_index()
    return out


def gap_fraction(df: pd.DataFrame) -> pd.DataFrame:
    """Amortization gap relative to the objective (§4.2.4: "small relative to the objective"):
    gap / |J(amortized)| per state."""
    return df.assign(gap_fraction=df["gap"] / df["J_amortized"].abs())


def _per_curve(df: pd.DataFrame, value: str, pick: str) -> pd.DataFrame:
    """One row per curve (all columns but `iteration`, the value and per-iteration extras)."""
    keys = [k for k in ("env", "variant", "family", "seed", "step", "state", "source", "optimizer")
            if k in df.columns]
    rows = []
    for key, g in df.groupby(keys, dropna=False):
        g = g.sort_values("iteration")
        trained = g["n_iters_trained"] if "n_iters_trained" in g else pd.Series(dtype=float)
        k = int(trained.iloc[0]) if len(trained) and trained.notna().all() else int(g["iteration"].max())
        rows.append(dict(zip(keys, key, strict=True)) | {pick: _curve_value(g, value, pick, k)})
    return pd.DataFrame(rows, columns=[*keys, pick])


def _curve_value(g: pd.DataFrame, value: str, pick: str, k: int) -> float:
    by_iter = g.set_index("iteration")[value]
    if pick == "gain":  # J(last iterate) − J(λ_0)
        return float(by_iter.iloc[-1] - by_iter.iloc[0])
    if pick == "decline":  # the first iteration's improvement minus the K-th one's
        return float(by_iter.get(1, np.nan) - by_iter.get(k, np.nan))
    return float(by_iter.iloc[-1] - by_iter.get(k, np.nan))  # beyond_k: J(last) − J(λ_K)


def objective_gain(df: pd.DataFrame) -> pd.DataFrame:
    """J at the last iterate minus J at λ_0, per curve (A.5, Fig. 13c: J increases over iterations)."""
    return _per_curve(df, "J", "gain")


def step_decline(df: pd.DataFrame) -> pd.DataFrame:
    """Improvement of iteration 1 minus that of iteration K, per curve (§5: improvements diminish)."""
    return _per_curve(df, "dJ_step", "decline")


def beyond_k_gain(df: pd.DataFrame) -> pd.DataFrame:
    """J after the last iteration minus J after the K iterations trained with (B.4: it keeps improving
    far beyond K)."""
    return _per_curve(df, "J", "beyond_k")


DERIVATIONS = {f.__name__: f for f in (iters_to_match, surface_suboptimality, mode_spread, gap_fraction,
                                       objective_gain, step_decline, beyond_k_gain)}


def _per_seed(df: pd.DataFrame, value: str, keys: list[str]) -> pd.DataFrame:
    return df.groupby([*keys, "seed"], as_index=False)[value].mean()


def _decide(ci: Interval, lower_ok: float, upper_bad: float | None = None) -> Verdict:
    """supported if the CI lies above `lower_ok`; contradicted if it lies below `upper_bad`."""
    if ci.low > lower_ok:
        return "supported"
    if ci.high < (lower_ok if upper_bad is None else upper_bad):
        return "contradicted"
    return "inconclusive"


def _two_arm(test: Test, x: np.ndarray, y: np.ndarray, seed: int) -> GroupResult:
    n = f"{len(x)} vs {len(y)}"
    if min(len(x), len(y)) < MIN_SEEDS:
        return GroupResult("", "inconclusive", f"too few seeds ({n}; need ≥ {MIN_SEEDS} per arm)",
                           float(np.mean(x) - np.mean(y)) if len(x) and len(y) else float("nan"),
                           n_seeds=n)
    ci = stratified_bootstrap(lambda a, b: mean(a) - mean(b), x, y, seed=seed)
    p_imp = probability_of_improvement(x, y)
    scale = abs(float(np.mean(y))) or 1.0
    tol = test.margin * scale
    if test.kind == "greater":
        verdict = _decide(ci, 0.0)
    elif test.kind == "less":
        verdict = _decide(Interval(-ci.estimate, -ci.high, -ci.low), 0.0)
    elif test.kind == "not_worse":
        verdict = _decide(ci, -tol)
    else:  # similar: equivalence within ± tol
        inside, outside = ci.low > -tol and ci.high < tol, ci.low > tol or ci.high < -tol
        verdict = "supported" if inside else "contradicted" if outside else "inconclusive"
    reason = f"difference {ci.estimate:.3g} [{ci.low:.3g}, {ci.high:.3g}], P(a > b) = {p_imp:.2f}"
    if test.kind in ("not_worse", "similar"):
        reason += f", margin ±{tol:.3g}"
    return GroupResult("", verdict, reason, ci.estimate, ci.low, ci.high, p_imp, n)


def _one_arm(test: Test, x: np.ndarray, seed: int) -> GroupResult:
    n = str(len(x))
    if len(x) < MIN_SEEDS:
        est = float(np.mean(x)) if len(x) else float("nan")
        return GroupResult("", "inconclusive", f"too few seeds ({n}; need ≥ {MIN_SEEDS})", est, n_seeds=n)
    ci = stratified_bootstrap(mean, x, seed=seed)
    if test.kind == "positive":
        verdict = _decide(ci, 0.0)
    elif test.kind == "at_least":
        verdict = _decide(ci, test.threshold)
    else:
        inside = ci.low >= test.low and ci.high <= test.high
        outside = ci.high < test.low or ci.low > test.high
        verdict = "supported" if inside else "contradicted" if outside else "inconclusive"
    return GroupResult("", verdict, f"mean {ci.estimate:.3g} [{ci.low:.3g}, {ci.high:.3g}]",
                       ci.estimate, ci.low, ci.high, None, n)


def _boundaries(test: Test, y: np.ndarray | None) -> tuple[list[float], float | None]:
    """The values a decisive interval must leave out, and the statistic's scale for the negligibility
    rule: |mean(b)| for two-arm tests, the threshold or range for at_least / within, none for positive."""
    scale = (abs(float(np.mean(y))) if y is not None and len(y) else 0.0) or 1.0
    tol = test.margin * scale
    kinds = {"greater": [0.0], "less": [0.0], "not_worse": [-tol], "similar": [-tol, tol],
             "positive": [0.0], "at_least": [test.threshold],
             "within": [test.low or 0.0, test.high or 0.0]}
    if test.kind in ("at_least", "within"):
        return kinds[test.kind], max(abs(b) for b in kinds[test.kind]) or 1.0
    return kinds[test.kind], None if test.kind == "positive" else scale


def _with_power(r: GroupResult, test: Test, arms: list[np.ndarray], seed: int) -> GroupResult:
    """Attach what would decide an inconclusive group (nothing for decided ones)."""
    if r.verdict == "inconclusive":
        bounds, scale = _boundaries(test, arms[1] if len(arms) > 1 else None)
        r.power = power_analysis(arms, bounds, scale, seed=seed)
    return r


def _step_trend(claim: Claim, df: pd.DataFrame, name: object) -> str:
    """The claim's statistic (mean over seeds, or the difference of the arms' means) at the group's first
    and last checkpoint, so that a reader sees whether longer runs move it; "" with one checkpoint."""
    step = next((c for c in ("step", "env_step") if c in df.columns), None)
    t = claim.test
    if step is None:
        return ""
    key = name if isinstance(name, tuple) else (name,)
    sub = df[(df[t.by] == pd.Series(key, index=t.by)).all(axis=1)] if t.by else df
    steps = sorted(sub[step].unique())
    if len(steps) < 2:
        return ""

    def statistic(at: pd.DataFrame) -> float:
        if t.kind not in TWO_ARM:
            return float(at.groupby("seed")[claim.value].mean().mean())
        arm = at.groupby([t.column, "seed"])[claim.value].mean().groupby(level=0).mean()
        return float(arm.get(t.a, np.nan) - arm.get(t.b, np.nan))

    what = "a − b" if t.kind in TWO_ARM else "mean"
    first, last = (statistic(sub[sub[step] == s]) for s in (steps[0], steps[-1]))
    return f"{what} at {step} {steps[0]}: {first:.3g}, at {steps[-1]}: {last:.3g}"


def evaluate_claim(claim: Claim, df: pd.DataFrame, seed: int = 0, warmup: int | None = None) -> ClaimResult:
    """Run a claim's test on its table (already loaded); checkpoints (`step`) at or before `warmup`
    env steps, taken before training started, are left out."""
    t = claim.test
    if claim.where:
        try:
            df = df.query(claim.where)
        except Exception as err:  # a bad filter is a claims-file bug: say which claim
            return ClaimResult(claim, "inconclusive", f"filter {claim.where!r} failed: {err}")
    if warmup is not None and "step" in df.columns:
        df = df[df["step"] > warmup]
    df = _at(df, claim.at)
    if claim.derive:
        try:
            df = DERIVATIONS[claim.derive](df)
        except KeyError as err:
            return ClaimResult(claim, "inconclusive", f"{claim.derive}: table lacks {err}")
    missing = {claim.value, "seed", *t.by, *([t.column] if t.column else [])} - set(df.columns)
    if missing:
        return ClaimResult(claim, "inconclusive", f"table {claim.table} lacks columns {sorted(missing)}")
    df = df.dropna(subset=[claim.value])
    if df.empty:
        return ClaimResult(claim, "inconclusive", f"no data in {claim.table} for this claim at this scale")
    keys = [*t.by, *([t.column] if t.column else [])]
    per_seed = _per_seed(df, claim.value, keys)
    groups = per_seed.groupby(t.by) if t.by else [((), per_seed)]
    results, untested = [], []
    for name, g in groups:
        label = ", ".join(map(str, name if isinstance(name, tuple) else (name,))) or "all"
        if t.kind in TWO_ARM:
            x = g.loc[g[t.column] == t.a, claim.value].to_numpy()
            y = g.loc[g[t.column] == t.b, claim.value].to_numpy()
            if len(x) == 0 or len(y) == 0:  # an arm this scale does not run there: not evidence
                untested.append(f"{label} (no runs of {t.a if not len(x) else t.b})")
                continue
            r = _with_power(_two_arm(t, x, y, seed), t, [x, y], seed)
        else:
            x = g[claim.value].to_numpy()
            r = _with_power(_one_arm(t, x, seed), t, [x], seed)
        r.group = label
        if r.verdict == "inconclusive":
            r.by_step = _step_trend(claim, df, name)
        results.append(r)
    skipped = f"; not tested: {', '.join(untested)}" if untested else ""
    if not results:
        return ClaimResult(claim, "inconclusive", f"no group has both arms{skipped}")
    verdicts = {r.verdict for r in results}
    if "contradicted" in verdicts:
        bad = [r.group for r in results if r.verdict == "contradicted"]
        return ClaimResult(claim, "contradicted", f"contradicted for {', '.join(bad)}{skipped}", results)
    if verdicts == {"supported"}:
        return ClaimResult(claim, "supported", f"supported in all {len(results)} group(s){skipped}", results)
    open_ = [f"{r.group}: {r.reason}" for r in results if r.verdict == "inconclusive"]
    return ClaimResult(claim, "inconclusive",
                       "; ".join(open_[:3]) + (" …" if len(open_) > 3 else "") + skipped, results)


def run_audit(claims_path: str | Path, summary_dir: str | Path) -> list[ClaimResult]:
    """Evaluate every claim on the tables in `summary_dir` (a missing table → inconclusive)."""
    summary_dir, results, cache = Path(summary_dir), [], {}
    if not summary_dir.is_dir():
        raise AuditError(f"{summary_dir}: no such folder. Build the summary tables first "
                         "(`snakemake --config scale=SCALE` or `iapo summarize`).")
    warmup = _warmup(summary_dir)
    for i, claim in enumerate(load_claims(claims_path)):
        path = table_file(summary_dir, claim.table)
        if claim.table not in cache:
            cache[claim.table] = pd.read_csv(path, low_memory=False) if path.is_file() else None
        df = cache[claim.table]
        if df is None:
            results.append(ClaimResult(claim, "inconclusive", _missing(claim.table, summary_dir)))
        else:
            result = evaluate_claim(claim, df, seed=i, warmup=warmup)
            if result.reason.startswith(f"table {claim.table} lacks columns"):  # written before they existed
                result.reason += f"; {_missing(claim.table, summary_dir, column=True)}"
            results.append(result)
    return results


def _missing(table: str, summary_dir: Path, column: bool = False) -> str:
    """Why a claim's table (or, with `column`, a column of a present table) is absent: not produced by
    this scale, or produced but not present here."""
    info_path = summary_dir / "scale.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else None
    scale = (info or {}).get("scale", "SCALE")
    rebuild = (f"rebuild with `snakemake --cores N --config scale={scale}` (runs what is missing, then "
               f"`iapo summarize --scale {scale}`)")
    path = summary_dir / f"{table}.csv"
    if column:
        return (f"not present: the jobs behind {path} predate these columns (or no code writes them); "
                f"rerun those jobs and rebuild with `iapo summarize --scale {scale}`")
    if info is None:
        return f"{path} not present (no scale.json says whether the scale produces it): {rebuild}"
    if table in produced_tables(info):
        return f"{path} not present: {rebuild}"
    return (f"{table} not produced at scale {scale}: no diagnostic of scales.{scale}.diagnostics writes it "
            "for this scale's runs")


def _warmup(summary_dir: Path) -> int | None:
    """The scale's `initial_random_steps` (scale.json), None when unknown."""
    info_path = summary_dir / "scale.json"
    if not info_path.is_file():
        return None
    return json.loads(info_path.read_text()).get("preset", {}).get("initial_random_steps")


def _scale_note(summary_dir: Path) -> str:
    info_path = summary_dir / "scale.json"
    if not info_path.is_file():
        return "scale: unknown (no scale.json)"
    info = json.loads(info_path.read_text())
    this, paper = info.get("preset", {}), info.get("paper", {})

    def group(g: dict) -> str:
        own = [f"{g[key]} {key}" for key in ("seeds", "steps") if g.get(key)]  # the group's own values
        runs = f"{', '.join(g['envs'])} × {', '.join(g['variants'])}"
        return runs + (f" ({', '.join(own)})" if own else "")

    def runs(preset: dict) -> str:
        groups = [group(g) for g in preset.get("grid", [])]
        return "; ".join(groups) or "?"

    lines = [f"- **scale**: {info.get('scale', '?')}"]
    for name, preset in (("this scale", this), ("paper", paper)):
        lines.append(f"- **{name}**: {preset.get('seeds', '?')} seeds, {preset.get('steps', '?')} env steps "
                     f"(per env: {preset.get('steps_per_env') or 'same'}), runs: {runs(preset)}")
    lines.append(f"- **reduced against paper**: {', '.join(info.get('reduced', [])) or 'nothing'} "
                 f"(results/summary/<scale>/scale.json has every value)")
    if this.get("initial_random_steps") is not None:
        lines.append(f"- **left out**: diagnostics of checkpoints at env step ≤ "
                     f"{this['initial_random_steps']} (initial_random_steps: taken before training "
                     "started; they stay in the figures)")
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    """A Markdown table cell: a literal `|` (e.g. |A|) would end the cell."""
    return str(text).replace("|", "\\|")


def _power_lines(results: list[ClaimResult], summary_dir: Path) -> list[str]:
    """What would decide each open group: MDE at this scale's seeds, seeds needed at the observed
    effect (and this scale's steps against the paper's, where the claim reads training runs)."""
    info_path = summary_dir / "scale.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    steps = (info.get("preset", {}).get("steps"), info.get("paper", {}).get("steps"))
    rows = []
    for r in results:
        for g in r.groups:
            if g.verdict != "inconclusive":
                continue
            what = g.power.describe() if g.power else "cannot be estimated (fewer than 2 seeds in an arm)"
            what += f"; {g.by_step}" if g.by_step else ""
            mde = f"{g.power.mde:.3g}" if g.power else ""
            need = ("—" if g.power is None or g.power.negligible
                    else f"> {MAX_SEEDS}" if g.power.seeds_needed is None else str(g.power.seeds_needed))
            rows.append(f"| {r.claim.id} | {_md_cell(g.group)} | {g.n_seeds} | {mde} | {need} | "
                        f"{_md_cell(what)} |")
    if not rows:
        return []
    head = ["", "## What would decide the open claims", "",
            "Simulated from the per-seed values (95% interval, 80% power; `iapo.power`). MDE: the smallest "
            "distance of the statistic from the test's boundary that this scale's seeds detect. Seeds: "
            "per arm, at the observed effect. Where the table has checkpoints, the note gives the statistic "
            "at the first and the last one. "
            + (f"Steps: this scale runs {steps[0]} env steps per run against the paper's {steps[1]}; the "
               "effect at the paper's length may differ, so these counts hold for this run length only."
               if all(steps) else ""), "",
            "| id | group | seeds now | MDE | seeds needed | note |", "|---|---|---|---|---|---|"]
    return head + rows


def _untestable_lines(untestable: list[Untestable]) -> list[str]:
    if not untestable:
        return []
    lines = ["", "## Statements not testable here", "",
             f"{len(untestable)} statements of the paper about results have no test; why:", "",
             "| paper | sentence | reason |", "|---|---|---|"]
    for u in untestable:
        figs = "; ".join(f"{k}: {v}" for k, v in u.figures.items())
        where = u.section + (f" · {figs}" if figs else "")
        lines.append(f"| {_md_cell(where)} | {_md_cell(u.sentence)} | {_md_cell(u.reason)} |")
    return lines


def verdicts_across_scales(claims_path: str | Path, summary_dirs: list[Path]) -> pd.DataFrame:
    """claim id × scale → verdict, for every summary folder given (one audit per folder)."""
    table = {}
    for d in summary_dirs:
        table[d.name] = {r.claim.id: r.verdict for r in run_audit(claims_path, d)}
    return pd.DataFrame(table)


def _scales_lines(claims_path: str | Path | None, summary_dir: Path) -> list[str]:
    """The verdict of every claim at each scale whose summary sits next to this one (if several)."""
    if claims_path is None:
        return []
    dirs = sorted(d for d in summary_dir.parent.iterdir() if (d / "scale.json").is_file()) \
        if summary_dir.parent.is_dir() else []
    if len(dirs) < 2 or summary_dir not in dirs:
        return []
    table = verdicts_across_scales(claims_path, dirs)
    lines = ["", "## Verdicts across scales", "", "| id | " + " | ".join(table.columns) + " |",
             "|---|" + "---|" * len(table.columns)]
    lines += [f"| {cid} | " + " | ".join(str(v) for v in row) + " |" for cid, row in table.iterrows()]
    return lines


def write_report(results: list[ClaimResult], summary_dir: str | Path, out_md: str | Path,
                 deviations: str | Path | None = None, claims_path: str | Path | None = None
                 ) -> tuple[Path, Path]:
    """`audit.md` and `audit.html`: verdict table, per-group statistics, what would decide the open
    claims, the statements not testable, verdicts at the sibling scales, scale, deviations."""
    summary_dir, out_md = Path(summary_dir), Path(out_md)
    counts = pd.Series([r.verdict for r in results]).value_counts().to_dict()
    lines = ["# Claims audit", "", "## Scale of the results", "", _scale_note(summary_dir), "",
             "## Verdicts", "",
             f"{len(results)} claims: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())), "",
             "| id | claim | paper | metric | verdict | reason |", "|---|---|---|---|---|---|"]
    for r in results:
        c = r.claim
        figs = "; ".join(f"{k}: {v}" for k, v in c.figures.items())
        paper = c.section + (f" · {figs}" if figs else "")
        reason = r.reason + (" (β-dependent: see the note below)" if c.beta_dependent else "")
        cells = (c.id, c.claim, paper, c.metric, f"**{r.verdict}**", reason)
        lines.append("| " + " | ".join(_md_cell(x) for x in cells) + " |")
    if any(r.claim.beta_dependent for r in results):
        lines += ["", f"**Note on β-dependent claims.** {BETA_NOTE}."]
    lines += ["", "## Per group", "", "| id | group | seeds | estimate | 95% CI | P(a > b) | verdict |",
              "|---|---|---|---|---|---|---|"]
    for r in results:
        for g in r.groups:
            p = "" if g.p_improvement is None else f"{g.p_improvement:.2f}"
            lines.append(f"| {r.claim.id} | {g.group} | {g.n_seeds} | {g.estimate:.4g} | "
                         f"[{g.low:.4g}, {g.high:.4g}] | {p} | {g.verdict} |")
    lines += _power_lines(results, summary_dir)
    lines += _untestable_lines(load_untestable(claims_path) if claims_path else [])
    lines += _scales_lines(claims_path, summary_dir)
    sourced = [r.claim for r in results if r.claim.source]
    if sourced:
        lines += ["", "## Where each claim comes from", "", "| id | paper | sentence |", "|---|---|---|"]
        lines += [f"| {c.id} | {_md_cell(c.section)} | {_md_cell(c.source)} |" for c in sourced]
    if deviations and Path(deviations).is_file():
        lines += ["", Path(deviations).read_text().replace("# Deviations", "## Deviations", 1)]
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text("\n".join(lines) + "\n")
    table = pd.DataFrame([{"id": r.claim.id, "claim": r.claim.claim, "paper": r.claim.section,
                           "metric": r.claim.metric, "verdict": r.verdict, "reason": r.reason}
                          for r in results])
    out_html = out_md.with_suffix(".html")
    out_html.write_text(
        "<!doctype html><meta charset='utf-8'><title>IAPO claims audit</title>"
        "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}td,th{padding:4px;"
        "border:1px solid #ccc;vertical-align:top}</style><h1>Claims audit</h1>"
        f"<pre>{html.escape(_scale_note(summary_dir))}</pre>"
        + table.to_html(index=False, escape=True) + "<h2>Full report</h2>"
        f"<pre>{html.escape(out_md.read_text())}</pre>"
    )
    return out_md, out_html
