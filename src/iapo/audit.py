"""The claims audit: evaluate every claim of `claims.yaml` (`iapo.claims`) on the summary tables
(`iapo.audit_inputs`), with statistics: its groups, the test of each, and the claim's verdict.

The unit of replication is the seed of one environment: rows are first averaged per (environment,
group, arm, seed); `by` must therefore name `env`. A design where both arms were measured on the
same things (same agent and episode seeds, same states) is **paired** (`pair_on`): rows of the two
arms are matched on the seed and those columns, and the test runs on the per-seed mean difference.

Each group's statistic gets a Student-t 95% interval (Welch for two independent arms, one-sample t
for one arm or paired differences; `iapo.stats`), and `iapo.decide` turns it into a verdict with the
rules of the test kind (greater, less, not_worse, not_better, similar, positive, at_least, within),
each calibrated by simulation at 2-8 seeds (tests/test_calibration.py). A group needs MIN_SEEDS
seeds per arm for a decided verdict. Margins and practical thresholds (`margin`, `min_effect`) are
given in `units`: `b` (|mean of arm b|), `normalized` (returns: the span from the untrained policy's
return to a published reference return of the environment, as rliable normalizes scores),
`absolute`, or a column of the table (e.g. `J_amortized`: |J| of the amortized estimate).

Verdict of a claim, from the groups in its scope only (groups outside it are reported, never
decide): supported if every in-scope group is; contradicted if any in-scope group is after Holm's
correction across the in-scope groups; inconclusive otherwise. A claim about environments taken
together ("generally", "on average", the abstract's "performance improvements") sets `aggregate`:
it is decided on the mean over its in-scope environments of the per-environment differences in
normalized units (stratified t), the environments themselves reported. A claim whose statement
depends on the hardware (`hardware: cuda`, the wall-clock ratios the paper timed on a GPU) is
decided only on results measured on that hardware; elsewhere it is "not comparable on this
hardware" with the measured values shown.

For every open group the audit reports what would decide it (`iapo.power`).

Rows taken before training started (env step `step`, at or before the scale's
`initial_random_steps`; the evaluation and log tables' `env_step` is read as `step`) are left out:
they say nothing about what was learned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from iapo.audit_inputs import RUN, Context, claim_table, context, why_missing
from iapo.claims import Claim, Test, load_claims, load_reference_returns
from iapo.decide import ALPHA_ONE_SIDED, CONTRADICTED, SUPPORTED, TWO_ARM, Rule, group_estimate
from iapo.derivations import DERIVATIONS, NotDecidable
from iapo.errors import AuditError
from iapo.power import Power, aggregate_power, power_analysis
from iapo.stats import TEstimate, holm, stratified_t
from iapo.summary import STEP, read_table, step_in_file

Verdict = Literal["supported", "contradicted", "inconclusive"]
VERDICT = {SUPPORTED: "supported", CONTRADICTED: "contradicted", 0: "inconclusive"}
MIN_SEEDS = 3  # per arm for a decided verdict (with 2, one seed's deviation is all the spread there is)
INTERVAL = "Student t 95% (one-sample / paired differences / Welch), over seeds"


@dataclass
class GroupResult:
    group: str
    verdict: Verdict
    reason: str
    env: str | None = None
    in_scope: bool = True
    estimate: float = float("nan")
    low: float = float("nan")
    high: float = float("nan")
    n_seeds: str = ""
    unit: float = 1.0  # margins and min_effect are multiples of this (the test's `units`)
    p_contradiction: float = 1.0
    power: Power | None = None
    by_step: str = ""  # open groups: the statistic at the first and the last checkpoint
    power_note: str = ""  # why an open group has no power estimate (when not for too few seeds)
    rule: Rule | None = None
    arms: list[np.ndarray] = field(default_factory=list)
    t: TEstimate | None = None


@dataclass
class ClaimResult:
    claim: Claim
    verdict: Verdict
    reason: str
    groups: list[GroupResult] = field(default_factory=list)
    aggregate: GroupResult | None = None

    @property
    def seeds(self) -> str:
        """Seeds per arm of the in-scope groups (e.g. "3 vs 3"), "" when none."""
        return "; ".join(sorted({g.n_seeds for g in self.groups if g.in_scope and g.n_seeds}))


def _at(df: pd.DataFrame, at: str) -> pd.DataFrame:
    """Keep each run's first or last checkpoint (`step`)."""
    if at == "all" or STEP not in df.columns:
        return df
    keys = [k for k in RUN if k in df.columns]
    pick = df.groupby(keys)[STEP].transform("max" if at == "last" else "min")
    return df[df[STEP] == pick]


def _arms(test: Test, g: pd.DataFrame, value: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-seed values of a group: (a, b) for two-arm tests (matched seed by seed when paired), or
    (x, None) for one arm."""
    if test.kind not in TWO_ARM:
        return g.groupby("seed")[value].mean().to_numpy(), None
    arm_a, arm_b = g[g[test.column] == test.a], g[g[test.column] == test.b]
    if test.pair_on is None:
        return tuple(arm.groupby("seed")[value].mean().to_numpy() for arm in (arm_a, arm_b))
    keys = ["seed", *test.pair_on]
    joined = pd.concat([arm_a.groupby(keys)[value].mean().rename("a"),
                        arm_b.groupby(keys)[value].mean().rename("b")], axis=1, join="inner")
    per_seed = joined.groupby(level="seed").mean()
    return per_seed["a"].to_numpy(), per_seed["b"].to_numpy()


def _unit(test: Test, g: pd.DataFrame, y: np.ndarray | None, env: str | None, ctx: Context) -> float | str:
    """The size of one unit of `margin` / `min_effect` in this group, or why it cannot be had."""
    if test.units == "absolute" or test.kind in ("at_least", "within"):
        return 1.0
    if test.units == "b":
        return (abs(float(np.mean(y))) if y is not None and len(y) else 0.0) or 1.0
    if test.units == "normalized":
        if env not in ctx.reference or env not in ctx.untrained:
            missing = "a reference return (claims.yaml reference_returns)" if env not in ctx.reference \
                else "the untrained policy's return (eval.csv at env step 0)"
            return f"no normalization for {env}: needs {missing}"
        span = ctx.reference[env] - ctx.untrained[env]
        return span if span > 0 else f"no normalization for {env}: reference ≤ untrained return"
    if test.units not in g.columns:
        return f"units column {test.units!r} not in the table"
    return float(g[test.units].abs().mean()) or 1.0


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _describe(rule: Rule, t: TEstimate, low: float, high: float, unit: float, test: Test,
              aggregate: bool = False) -> str:
    what = "difference" if test.kind in TWO_ARM else "mean"
    text = f"{what} {_fmt(float(t.estimate))} [{_fmt(low)}, {_fmt(high)}]"
    if test.kind in ("not_worse", "not_better", "similar"):
        text += f", margin ±{_fmt(test.margin * unit)}"
    if rule.min_effect > 0:
        text += f", practical threshold {_fmt(rule.min_effect)}"
    if test.units not in ("b", "absolute") and test.kind not in ("at_least", "within"):
        text += f" (in {test.units} units)" if aggregate else f" ({test.units} unit {_fmt(unit)})"
    return text


def _normalized_scores(x: np.ndarray, y: np.ndarray | None, untrained: float, span: float) -> str:
    """Where the arms stand on the normalized scale (0: untrained policy, 1: the reference return);
    `span` is the group's unit (`_unit`: reference − untrained)."""
    scores = [(float(np.mean(v)) - untrained) / span for v in ([x] if y is None else [x, y])]
    return "; normalized score " + " vs ".join(f"{v:.3f}" for v in scores)


def _test_group(test: Test, label: str, env: str | None, in_scope: bool, g: pd.DataFrame, value: str,
                ctx: Context) -> GroupResult:
    x, y = _arms(test, g, value)
    n = f"{len(x)} vs {len(y)}" if y is not None else str(len(x))
    base = GroupResult(label, "inconclusive", "", env, in_scope, n_seeds=n)
    if min(len(x), len(y) if y is not None else len(x)) < MIN_SEEDS:
        matched = " matched" if test.pair_on else ""
        base.reason = f"too few seeds ({n}{matched}; a verdict needs ≥ {MIN_SEEDS} per arm)"
        if len(x) and (y is None or len(y)):
            base.estimate = float(np.mean(x) - (np.mean(y) if y is not None else 0.0))
        base.arms = [x] if y is None else [x, y]
        return base
    unit = _unit(test, g, y, env, ctx)
    if isinstance(unit, str):
        base.reason = unit
        return base
    rule = Rule.of(test.kind, margin=test.margin * unit, min_effect=test.min_effect * unit,
                   threshold=test.threshold, low=test.low, high=test.high)
    t = group_estimate(x, y, paired=test.pair_on is not None)
    low, high = (float(v) for v in t.interval())
    code = int(rule.decide(t))
    reason = _describe(rule, t, low, high, unit, test)
    if code == 0 and bool(rule.negligible(t)):
        reason += ": negligible (the whole interval within the practical threshold)"
    if test.units == "normalized" and test.pair_on is None:
        reason += _normalized_scores(x, y, ctx.untrained[env], unit)
    arms = [x] if y is None else ([x - y] if test.pair_on is not None else [x, y])
    return GroupResult(label, VERDICT[code], reason, env, in_scope, float(t.estimate), low, high, n, unit,
                       float(rule.contradiction_p(t)), rule=rule, arms=arms, t=t)


def _aggregate(test: Test, in_scope: list[GroupResult]) -> GroupResult:
    """The claim's statistic averaged over its in-scope environments, each in its own units (stratified t)."""
    parts, envs = [], []
    for r in in_scope:
        if r.t is None:
            return GroupResult("aggregate", "inconclusive", f"{r.group}: {r.reason}", n_seeds=r.n_seeds)
        parts.append(TEstimate(r.t.estimate / r.unit, r.t.se / r.unit, r.t.df))
        envs.append(r.group)
    t = stratified_t(parts)
    rule = Rule.of(test.kind, margin=test.margin, min_effect=test.min_effect, threshold=test.threshold,
                   low=test.low, high=test.high)
    low, high = (float(v) for v in t.interval())
    code = int(rule.decide(t))
    reason = _describe(rule, t, low, high, 1.0, test, aggregate=True) + f", mean over {len(envs)} env(s)"
    n = "; ".join(sorted({r.n_seeds for r in in_scope}))
    return GroupResult(f"aggregate ({', '.join(envs)})", VERDICT[code], reason, None, True, float(t.estimate),
                       low, high, n, 1.0, float(rule.contradiction_p(t)), rule=rule, t=t)


def _filter(claim: Claim, df: pd.DataFrame, warmup: int | None) -> pd.DataFrame | str:
    if claim.where:
        try:
            df = df.query(claim.where)
        except Exception as err:  # a bad filter is a claims-file bug: say which claim
            return f"filter {claim.where!r} failed: {err}"
    if warmup is not None and STEP in df.columns:
        df = df[df[STEP] > warmup]
    df = _at(df, claim.at)
    if claim.derive:
        try:
            df = DERIVATIONS[claim.derive](df)
        except KeyError as err:
            return f"{claim.derive}: table lacks {err}"
        except NotDecidable as err:
            return f"not decidable from this table: {err}"
    return df


def evaluate_claim(claim: Claim, df: pd.DataFrame, seed: int = 0, warmup: int | None = None,
                   ctx: Context | None = None) -> ClaimResult:
    """Run a claim's test on its table (already loaded, as `iapo.summary.read_table` gives it: the env
    step in `step`), deciding on the groups in its scope."""
    ctx = ctx or Context(warmup=warmup)
    t = claim.test
    df = _filter(claim, df, ctx.warmup if warmup is None else warmup)
    if isinstance(df, str):
        return ClaimResult(claim, "inconclusive", df)
    needed = {claim.value, "seed", *t.by, *([t.column] if t.column else []), *(t.pair_on or [])}
    missing = needed - set(df.columns)
    if missing:
        return ClaimResult(claim, "inconclusive", f"table {claim.table} lacks columns {sorted(missing)}")
    df = df.dropna(subset=[claim.value])
    if df.empty:
        return ClaimResult(claim, "inconclusive", f"no data in {claim.table} for this claim at this scale")
    scope = claim.scope or []
    results, untested = [], []
    for name, g in df.groupby(t.by):
        key = dict(zip(t.by, name if isinstance(name, tuple) else (name,), strict=True))
        label = ", ".join(map(str, key.values()))
        env = key["env"]
        if t.kind in TWO_ARM and not ((g[t.column] == t.a).any() and (g[t.column] == t.b).any()):
            untested.append(f"{label} (no runs of {t.b if (g[t.column] == t.a).any() else t.a})")
            continue
        r = _test_group(t, label, env, env in scope, g, claim.value, ctx)
        results.append(r)
    return _verdict(claim, results, untested, df, seed, ctx)


def _verdict(claim: Claim, results: list[GroupResult], untested: list[str], df: pd.DataFrame, seed: int,
             ctx: Context) -> ClaimResult:
    t, scope = claim.test, claim.scope or []
    inside = [r for r in results if r.in_scope]
    outside = [r for r in results if not r.in_scope]
    run_envs = {r.env for r in inside}
    notes = []
    if untested:
        notes.append(f"not tested: {', '.join(untested)}")
    if outside:
        notes.append(f"outside the scope, reported only: {', '.join(r.group for r in outside)}")
    not_run = [e for e in scope if e not in run_envs]
    if not_run and inside:
        notes.append(f"in scope but not run at this scale: {', '.join(not_run)}")
    tail = ("; " + "; ".join(notes)) if notes else ""
    for r in results:
        if r.verdict == "inconclusive" and r.rule is not None:
            r.by_step = _step_trend(claim, df, r.group)
        if not r.in_scope:
            r.reason += " (outside the claim's scope: not deciding)"
    if not results:
        return ClaimResult(claim, "inconclusive", f"no group has both arms{tail}")
    if not inside:
        return ClaimResult(claim, "inconclusive",
                           f"no run of this scale in the claim's scope ({', '.join(scope)}){tail}", results)
    if claim.hardware == "cuda":
        devices = sorted(set().union(*(ctx.devices.get(e, {"unknown"}) for e in run_envs)))
        if not all(d.startswith("cuda") for d in devices):
            measured = "; ".join(f"{r.group}: {r.reason}" for r in inside)
            for r in inside:
                r.verdict = "inconclusive"
            return ClaimResult(claim, "inconclusive", f"not comparable on this hardware "
                               f"({', '.join(devices)}): the paper timed on a GPU; measured {measured}{tail}",
                               results)
    if t.aggregate:
        agg = _aggregate(t, inside)
        if agg.verdict == "inconclusive" and agg.rule is not None:
            agg.power = aggregate_power(agg.rule, [(r.arms, r.unit) for r in inside], seed=seed)
        for r in inside:
            r.reason += " (reported: the claim is decided on the aggregate)"
        return ClaimResult(claim, agg.verdict, f"{agg.group}: {agg.reason}{tail}", results, agg)
    decided = [r for r in inside if r.rule is not None]
    rejected = holm(np.array([r.p_contradiction for r in decided]), ALPHA_ONE_SIDED) if decided else []
    for r, rej in zip(decided, rejected, strict=True):
        if r.verdict == "contradicted" and not rej:
            r.verdict = "inconclusive"
            r.reason += (f"; contradicted alone (p = {r.p_contradiction:.3g}) but not after Holm over "
                         f"{len(decided)} groups")
    if t.support_only:
        for r in inside:
            if r.verdict == "contradicted":
                r.verdict = "inconclusive"
                r.reason += ("; below the boundary, but this statistic is only a lower bound of the claimed "
                             "quantity: it can support the claim, not contradict it")
                r.power_note = ("no seed count decides it: the statistic points against the claim, and as a "
                                "lower bound it cannot contradict it")
    for r in inside:
        _attach_power(r, seed)
    bad = [r.group for r in inside if r.verdict == "contradicted"]
    if bad:
        return ClaimResult(claim, "contradicted", f"contradicted for {', '.join(bad)}{tail}", results)
    if all(r.verdict == "supported" for r in inside):
        return ClaimResult(claim, "supported", f"supported in all {len(inside)} in-scope group(s){tail}",
                           results)
    open_ = [f"{r.group}: {r.reason}" for r in inside if r.verdict == "inconclusive"]
    return ClaimResult(claim, "inconclusive", "; ".join(open_[:3]) + (" …" if len(open_) > 3 else "") + tail,
                       results)


def _attach_power(r: GroupResult, seed: int) -> None:
    """What would decide an open group (nothing for decided ones or ones without a rule)."""
    if r.verdict == "inconclusive" and r.rule is not None and r.arms and not r.power_note:
        r.power = power_analysis(r.rule, r.arms, seed=seed)


def _step_trend(claim: Claim, df: pd.DataFrame, label: str) -> str:
    """The claim's statistic (mean over seeds, or the difference of the arms' means) at the group's first
    and last checkpoint, so that a reader sees whether longer runs move it; "" with one checkpoint."""
    t = claim.test
    if STEP not in df.columns:
        return ""
    labels = df[t.by].astype(str).agg(", ".join, axis=1)
    sub = df[labels == label]
    steps = sorted(sub[STEP].unique())
    if len(steps) < 2:
        return ""

    def statistic(at: pd.DataFrame) -> float:
        if t.kind not in TWO_ARM:
            return float(at.groupby("seed")[claim.value].mean().mean())
        arm = at.groupby([t.column, "seed"])[claim.value].mean().groupby(level=0).mean()
        return float(arm.get(t.a, np.nan) - arm.get(t.b, np.nan))

    what = "a − b" if t.kind in TWO_ARM else "mean"
    first, last = (statistic(sub[sub[STEP] == s]) for s in (steps[0], steps[-1]))
    step = step_in_file(claim.table)  # the column as the table's file names it
    return f"{what} at {step} {steps[0]}: {first:.3g}, at {steps[-1]}: {last:.3g}"


def run_audit(claims_path: str | Path, summary_dir: str | Path) -> list[ClaimResult]:
    """Evaluate every claim on the tables in `summary_dir` (a missing table → inconclusive)."""
    summary_dir, results, cache = Path(summary_dir), [], {}
    if not summary_dir.is_dir():
        raise AuditError(f"{summary_dir}: no such folder. Build the summary tables first "
                         "(`snakemake --config scale=SCALE` or `iapo summarize`).")
    runs = read_table(summary_dir, "runs")
    cache["eval"] = claim_table(summary_dir, "eval", runs)  # read once: the claims' and the anchors'
    ctx = context(summary_dir, load_reference_returns(claims_path), runs, cache["eval"])
    for i, claim in enumerate(load_claims(claims_path)):
        if claim.table not in cache:
            cache[claim.table] = claim_table(summary_dir, claim.table, runs)
        df = cache[claim.table]
        if df is None:
            results.append(ClaimResult(claim, "inconclusive", why_missing(claim.table, summary_dir)))
            continue
        result = evaluate_claim(claim, df, seed=i, ctx=ctx)
        if result.reason.startswith(f"table {claim.table} lacks columns"):  # written before they existed
            result.reason += f"; {why_missing(claim.table, summary_dir, column=True)}"
        results.append(result)
    return results


def verdicts_across_scales(claims_path: str | Path, summary_dirs: list[Path]) -> pd.DataFrame:
    """claim id × scale → verdict, for every summary folder given (one audit per folder)."""
    table = {}
    for d in summary_dirs:
        table[d.name] = {r.claim.id: r.verdict for r in run_audit(claims_path, d)}
    return pd.DataFrame(table)
