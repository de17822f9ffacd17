"""Derivations: the statistic a claim tests, computed per row (state, curve, run) from a summary table.

Each takes the claim's rows (after its filter and the warm-up cut) and returns a table with the
value column the claim names; the audit then averages it per seed (the unit of replication).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FINAL_EVALS = 3  # "final performance": the mean over each run's last 3 evaluations, not one


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


class NotDecidable(Exception):
    """A derivation cannot give an unbiased statistic from this table; the message says why."""


def surface_suboptimality(df: pd.DataFrame) -> pd.DataFrame:
    """2-D surfaces (A.1, B.5): J at the best grid point minus J at the agent's own estimate, both
    re-evaluated on fresh sample noise (kinds `optimum_fresh`, `estimate_fresh`). The grid's own
    maximum is taken over one noisy surface and is at least the estimate's J on that same surface
    by construction, so without the fresh rows there is no unbiased statistic."""
    kinds = set(df["kind"].unique())
    if not {"optimum_fresh", "estimate_fresh"} <= kinds:
        raise NotDecidable(
            "the table holds J at the grid optimum on the grid's own noise only: a maximum over one noisy "
            "surface is ≥ the estimate's J on it by construction (positive even for a perfect optimizer); "
            "needs the optimum and the estimate re-evaluated on fresh noise (rows optimum_fresh / "
            "estimate_fresh of the surface_2d diagnostic)")
    keys = ["env", "variant", "seed", "step", "state"]
    fresh = df[df["kind"].isin(["optimum_fresh", "estimate_fresh"])]
    wide = fresh.pivot_table(index=keys, columns="kind", values="J")
    wide["suboptimality"] = wide["optimum_fresh"] - wide["estimate_fresh"]
    wide["J_scale"] = wide["estimate_fresh"].abs()  # the unit of the practical threshold
    return wide.reset_index()


def trajectory_end(df: pd.DataFrame) -> pd.DataFrame:
    """2-D surfaces (A.1, B.5): per optimizer trajectory, J at its last iteration minus J at its start
    (`trajectory_gain`) and minus J at the agent's own estimate on the same surface and noise
    (`end_vs_estimate`, and as a fraction of |J(estimate)|)."""
    keys = ["env", "variant", "seed", "step", "state"]
    estimate = df[df["kind"] == "estimate"].groupby(keys)["J"].mean().rename("J_estimate")
    traj = df[df["kind"] == "trajectory"].sort_values("iteration")
    g = traj.groupby([*keys, "optimizer", "run"])["J"]
    out = pd.concat([g.first().rename("J_start"), g.last().rename("J_end")], axis=1).reset_index()
    out = out.join(estimate, on=keys)
    out["J_scale"] = out["J_estimate"].abs()
    return out.assign(trajectory_gain=out["J_end"] - out["J_start"],
                      end_vs_estimate=out["J_end"] - out["J_estimate"],
                      end_vs_estimate_fraction=(out["J_end"] - out["J_estimate"]) / out["J_scale"])


def mode_spread(df: pd.DataFrame) -> pd.DataFrame:
    """Multiple modes (B.7): per state, checkpoint and initialization of the runs (`init`: same λ_0,
    or random; tables without the column came from the same λ_0), the largest pairwise
    ‖tanh μ_i − tanh μ_j‖ between its optimization runs, as a fraction of the largest possible
    distance 2√|A|. Runs from the same λ_0 differ only by the objective's sample noise: their spread
    is the noise null that random-start spreads are compared with (paired by state)."""
    df = df if "init" in df.columns else df.assign(init="same")
    keys = [k for k in ("env", "variant", "family", "init", "seed", "step", "state") if k in df.columns]
    g = df.groupby(keys)
    return (g["l2_tanh_mu"].max() / g["max_l2"].first()).rename("spread").reset_index()


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


def final_return(df: pd.DataFrame) -> pd.DataFrame:
    """Final performance (§4.2.2): each run's mean evaluation return over its last FINAL_EVALS
    evaluations (every episode of each), the customary estimate (one evaluation is noisy)."""
    keys = [k for k in df.columns if k not in ("step", "updates", "episode", "return", "length")]
    per_eval = df.groupby([*keys, "step"], as_index=False, dropna=False)["return"].mean()
    rank = per_eval.groupby(keys, dropna=False)["step"].rank(ascending=False, method="first")
    last = rank <= FINAL_EVALS
    out = per_eval[last].groupby(keys, as_index=False, dropna=False)["return"].mean()
    return out.rename(columns={"return": "final_return"})


def gap_negative_share(df: pd.DataFrame) -> pd.DataFrame:
    """Amortization-gap estimator (A.3: "consistently converged"): per checkpoint, the share of states
    where Adam from the amortized estimate ends below its start (gap < 0)."""
    keys = [k for k in ("env", "variant", "family", "seed", "step") if k in df.columns]
    return df.groupby(keys, as_index=False)["gap"].agg(lambda g: float((g < 0).mean())).rename(
        columns={"gap": "negative"})


def policy_change_above_floor(df: pd.DataFrame) -> pd.DataFrame:
    """Policy change (§3.3, Fig. 3b) above the optimizer's own sample noise: per state, KL between
    successive checkpoints minus the KL between two evaluations of the earlier one (`kl_floor`)."""
    if "kl_floor" not in df.columns:
        raise NotDecidable("the policy-change table has no noise floor (column kl_floor): an iterative "
                           "policy's KL includes its optimizer's sample noise; rerun the policy_change "
                           "diagnostic, which now measures it")
    return df.assign(kl_above_floor=df["kl"] - df["kl_floor"])


def overestimation(df: pd.DataFrame) -> pd.DataFrame:
    """Value overestimation (§3.3, Fig. 3a): per checkpoint the mean bias Q̂ − Q_MC over the sampled
    state-action pairs, kept where positive (max(bias, 0)); an agent that underestimates has none.
    `q_mc_scale` (|Q_MC| at that checkpoint) is the unit of the practical threshold."""
    keys = [k for k in ("env", "variant", "family", "seed", "step") if k in df.columns]
    g = df.groupby(keys, as_index=False).agg(bias=("bias", "mean"), q_mc_scale=("q_mc", "mean"))
    return g.assign(overestimation=g["bias"].clip(lower=0.0), q_mc_scale=g["q_mc_scale"].abs())


DERIVATIONS = {f.__name__: f for f in (iters_to_match, surface_suboptimality, mode_spread, gap_fraction,
                                       objective_gain, step_decline, beyond_k_gain, final_return,
                                       overestimation, trajectory_end, gap_negative_share,
                                       policy_change_above_floor)}
