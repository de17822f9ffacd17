# %% [markdown]
# # Multiple policy modes (NeurIPS Figures 2, 7, 24-26)
#
# The iterative optimizer runs several times per state, either from the same λ0 (only the action
# samples differ: `init = same`) or each from its own random λ0, μ0 ~ 0.3·N(0, I) (`init = random`).
# (a) The distance ‖tanh μ_i − tanh μ_j‖₂ between the means of two runs, over seeds and states (at
# most 2√|A|); for the state with the largest distance, (b) J on pairs of action dimensions with
# each run's initialization (square) and final mean (dot) and (c) each run's policy density (B.7).
# Direct amortization gives a single estimate (distance 0). Reads `modes.csv` and `modes_state.csv`.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import iapo.figures as F

# %% tags=["parameters"]
summary_dir = "results/summary/smoke"  # the scale's summary tables
scale = "smoke"                        # scale preset the tables come from
out_dir = "paper_figures/smoke/figures"  # where the PDF and PNG files go
band = "ci"                            # ci: mean and 95% bootstrap band over seeds | std: mean ± std
max_panels = 6                         # at most this many dimension pairs / dimensions per env
zoom = 0.25                            # colour scale (y range for 1-D) from this quantile of J to its max

# %%
F.set_style()
summary = F.Summary(summary_dir, scale)
modes, state = summary.table("modes"), summary.table("modes_state")
INITS = {init: (F.label(f"init_{init}"), F.color(f"init_{init}")) for init in ("same", "random")}


def with_init(df: pd.DataFrame) -> pd.DataFrame:
    """Tables written before runs could start apart came from the same λ0."""
    return df if df.empty or "init" in df else df.assign(init="same")


pairs = with_init(F.last_checkpoint(modes.rows(variant="iterative")))
chosen = with_init(F.last_checkpoint(state.rows(variant="iterative")))
if not chosen.empty:  # one run per env: the lowest seed; random initializations if there are any
    chosen = chosen[chosen["seed"] == chosen.groupby("env")["seed"].transform("min")]
    shown_init = "random" if (chosen["init"] == "random").any() else "same"
    chosen = chosen[chosen["init"] == shown_init]
else:
    shown_init = "same"
print(f"projections and densities: {INITS[shown_init][0]}")

# %% [markdown]
# (a) Histogram of distances between the runs' means at the last checkpoint (Fig. 7a on Walker2d;
# 24a-26a on Hopper, HalfCheetah, Ant).

# %%
envs = F.panel_envs(F.MAIN_ENVS, pairs)
fig, panels = F.env_panels(envs, pairs, lambda env: summary.reason(modes, env, ["iterative"]))
for ax, d in panels:
    bins = np.linspace(0, d["l2_tanh_mu"].max() or 1.0, 31)
    for init, (text, colour) in INITS.items():
        rows = d[d["init"] == init]
        if not rows.empty:
            ax.hist(rows["l2_tanh_mu"], bins=bins, color=colour, histtype="step", linewidth=1.4, label=text)
    ax.set(xlabel=f"‖tanh μi − tanh μj‖ (largest possible {d['max_l2'].iloc[0]:.2f})", ylabel="pairs of runs")
    ax.legend(fontsize=6)
F.title(fig, "Distances between policy means across optimization runs (NeurIPS Fig. 7a, 24a-26a)",
        summary, None, "iterative agents, all seeds, states and pairs of runs at the last checkpoint; "
        "runs from the same λ0 and from random λ0")
F.save(fig, out_dir, "modes_histogram")

# %% [markdown]
# The action dimensions to show per env: those where the runs' means differ most.

# %%
def run_means(env: str, kind: str = "mean"):
    """tanh μ of every run (rows) per action dimension (columns) at the chosen state: the final
    means, or (kind = init) the initializations."""
    m = chosen[(chosen["env"] == env) & (chosen["kind"] == kind)]
    return m.pivot_table(index="run", columns="dim_x", values="x")


def top_dims(env: str) -> list[int]:
    spread = run_means(env).std().sort_values(ascending=False)
    return [int(d) for d in spread.index[:max_panels]]


state_envs = F.order_envs(chosen["env"].unique()) if not chosen.empty else []

# %% [markdown]
# (b) J on pairs of action dimensions at the state with the largest distance (the other dimensions
# and σ at run 0's estimate), with each run's initialization (squares) and final mean (white dots).

# %%
def surface_pairs(env: str) -> list[tuple[int, int | None]]:
    s = chosen[(chosen["env"] == env) & (chosen["kind"] == "surface")]
    dims = s[["dim_x", "dim_y"]].drop_duplicates().itertuples(index=False)
    found = {(int(x), None if pd.isna(y) else int(y)) for x, y in dims}
    if any(y is None for _, y in found):
        return sorted(found, key=str)
    means = run_means(env).std()
    return sorted(found, key=lambda p: -(means.get(p[0], 0) + means.get(p[1], 0)))[:max_panels]


ncols = max((len(surface_pairs(e)) for e in state_envs), default=1)
fig, axes = F.grid(max(len(state_envs), 1) * ncols, ncols=ncols, width=2.8, height=2.5)
if not state_envs:
    F.no_data(axes[0], summary.reason(state, None, ["iterative"]))
for row, env in enumerate(state_envs):
    s = chosen[(chosen["env"] == env) & (chosen["kind"] == "surface")]
    means, starts = run_means(env), run_means(env, "init")
    row_axes = axes[row * ncols:(row + 1) * ncols]
    for ax in row_axes:
        ax.set_visible(False)
    for ax, (dx, dy) in zip(row_axes, surface_pairs(env), strict=False):
        ax.set_visible(True)
        ax.set_title(f"{env}, state {int(s['state'].iloc[0])}")
        low, high = s["value"].quantile(zoom), s["value"].max()
        if dy is None:  # a 1-D action space: J along the only dimension
            c = s.sort_values("x")
            ax.plot(c["x"], c["value"], color="#444444")
            ax.set_ylim(low - 0.05 * (high - low), high + 0.1 * (high - low))
            for x in means[dx]:
                ax.axvline(x, color=F.color("iterative"), alpha=0.6, linewidth=1)
            ax.set(xlabel=f"tanh μ{dx}", ylabel="J")
            continue
        j = s[(s["dim_x"] == dx) & (s["dim_y"] == dy)].pivot_table(index="y", columns="x", values="value")
        levels = np.linspace(low, high, 21) if high > low else 20
        ax.contourf(j.columns, j.index, j.to_numpy(), levels=levels, cmap="viridis", extend="min")
        if dx in starts and dy in starts:
            ax.plot(starts[dx], starts[dy], "s", color="none", markeredgecolor="white", markersize=5)
        ax.plot(means[dx], means[dy], "o", color="white", markeredgecolor="black", markersize=4)
        ax.set(xlabel=f"tanh μ{dx}", ylabel=f"tanh μ{dy}")
note = (f"iterative, lowest seed, last checkpoint, {INITS[shown_init][0]} (squares: "
        f"initializations, dots: final means); ≤ {max_panels} pairs where runs differ most; "
        f"colour scale from the {zoom:.0%} quantile of J")
F.title(fig, "Optimization surface on pairs of action dimensions (NeurIPS Fig. 2 left, 7b, 24b-26b)",
        summary, None, note)
F.save(fig, out_dir, "modes_projections")

# %% [markdown]
# (c) Each run's marginal policy density π(a) per action dimension at that state.

# %%
ncols = max((len(top_dims(e)) for e in state_envs), default=1)
fig, axes = F.grid(max(len(state_envs), 1) * ncols, ncols=ncols, width=2.6, height=2.2)
if not state_envs:
    F.no_data(axes[0], summary.reason(state, None, ["iterative"]))
for row, env in enumerate(state_envs):
    dens = chosen[(chosen["env"] == env) & (chosen["kind"] == "density")]
    row_axes = axes[row * ncols:(row + 1) * ncols]
    for ax in row_axes:
        ax.set_visible(False)
    for ax, d in zip(row_axes, top_dims(env), strict=False):
        ax.set_visible(True)
        ax.set_title(f"{env}, state {int(dens['state'].iloc[0])}")
        for run, curve in dens[dens["dim_x"] == d].groupby("run"):
            ax.plot(curve["x"], curve["value"], color=plt.cm.tab10(int(run) % 10), linewidth=1)
        ax.set(xlabel=f"action a{d}", ylabel="π(a)")
F.title(fig, "Policy densities of the optimization runs (NeurIPS Fig. 2 right, 7c, 24c-26c)", summary, None,
        f"iterative, lowest seed, last checkpoint, {INITS[shown_init][0]}; one colour per run; "
        f"up to {max_panels} dimensions")
F.save(fig, out_dir, "modes_density")

# %% [markdown]
# Mean distance between the runs' means over training (v1 Fig. 18), one curve per way the runs
# start (iterative agents).

# %%
rows = with_init(modes.rows(variant="iterative"))
rows = rows if rows.empty else rows.assign(start="init_" + rows["init"])
fig, _ = F.curves(summary, modes, frame=rows, y="l2_tanh_mu", hue="start", hues=["init_same", "init_random"],
                  variants=["iterative"], envs=F.panel_envs(F.MAIN_ENVS, rows), band=band,
                  ylabel="‖tanh μi − tanh μj‖")
F.title(fig, "Distance between policy means over training (v1 Fig. 18)", summary, band)
F.save(fig, out_dir, "modes_distance_training")
