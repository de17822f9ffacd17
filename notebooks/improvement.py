# %% [markdown]
# # Policy optimization across iterations: per-step improvement ΔJ (NeurIPS Figures 4a, 4b, 17)
#
# How much the iterative optimizer improves the objective J at each of its iterations: over the time
# steps of an episode (Fig. 4b), across iterations including beyond the K it was trained with, and
# over training (Fig. 17, B.3), and how the estimate λ_i itself moves (Fig. 4a). Reads
# `improvement.csv` (J per iteration on on-policy states at each checkpoint),
# `improvement_refinement.csv` (λ_i of one action dimension along one episode) and `metrics.csv`
# (J per iteration of the training batches, `J_iter0 … J_iterK`).

# %%
import matplotlib.pyplot as plt

import iapo.figures as F

# %% tags=["parameters"]
summary_dir = "results/summary/smoke"  # the scale's summary tables
scale = "smoke"                        # scale preset the tables come from
out_dir = "paper_figures/smoke/figures"  # where the PDF and PNG files go
band = "ci"                            # ci: mean and 95% bootstrap band over seeds | std: mean ± std

# %%
F.set_style()
summary = F.Summary(summary_dir, scale)
improvement, metrics = summary.table("improvement"), summary.table("metrics")
refinement = summary.table("improvement_refinement")
states = F.last_checkpoint(improvement.rows(source="states"))

# %% [markdown]
# Fig. 4a: one action dimension of the estimate λ_i at every iteration i over the time steps of one
# on-policy episode, as μ_i ± σ_i after tanh (line: tanh μ_i; band: tanh(μ_i − σ_i) … tanh(μ_i + σ_i)),
# for one run (the lowest seed) of the iterative agent at its last checkpoint
# (`improvement_refinement.csv`).

# %%
refine = F.last_checkpoint(refinement.rows(variant="iterative"))
envs = F.panel_envs(["Ant-v2"], refine)
fig, panels = F.env_panels(envs, refine, lambda env: summary.reason(refinement, env, ["iterative"]))
for ax, run in panels:
    run = run[run["seed"] == run["seed"].min()]
    n = max(run["iteration"].max(), 1)
    for i, it in run.groupby("iteration"):
        it = it.sort_values("t")
        shade = plt.cm.viridis(i / n)
        ax.fill_between(it["t"], it["tanh_low"], it["tanh_high"], color=shade, alpha=0.15, linewidth=0)
        ax.plot(it["t"], it["tanh_mu"], color=shade, label=f"i = {i}")
    ax.set(xlabel=f"time step (seed {run['seed'].iloc[0]}, step {F.human(run['step'].iloc[0])})",
           ylabel=f"action dim. {run['dim'].iloc[0]}: tanh(μ_i ± σ_i)", ylim=(-1.05, 1.05))
    ax.legend(fontsize=6)
F.title(fig, "Policy refinement over time steps (NeurIPS Fig. 4a)", summary, None,
        "iterative (K = 5), one run; line tanh μ_i, band tanh(μ_i ∓ σ_i)")
F.save(fig, out_dir, "policy_refinement")

# %% [markdown]
# Fig. 4b: ΔJ = J_i − J_0 at each iteration i over consecutive on-policy states (their index follows
# time) of one run (the lowest seed) at its last checkpoint.

# %%
rows = states[states["variant"] == "iterative"] if not states.empty else states
envs = F.panel_envs(["Ant-v2"], rows)
fig, panels = F.env_panels(envs, rows, lambda env: summary.reason(improvement, env, ["iterative"]))
for ax, run in panels:
    run = run[run["seed"] == run["seed"].min()]
    n = run["iteration"].max()
    for i, it in run[run["iteration"] > 0].groupby("iteration"):
        ax.plot(it["state"], it["dJ"], color=plt.cm.viridis(i / n), label=f"i = {i}")
    ax.set(xlabel=f"on-policy state (seed {run['seed'].iloc[0]}, step {F.human(run['step'].iloc[0])})",
           ylabel="ΔJ = J_i − J_0")
    ax.legend(fontsize=6)
F.title(fig, "Improvement across iterations over time steps (NeurIPS Fig. 4b)", summary, None,
        "iterative (K = 5), one run")
F.save(fig, out_dir, "improvement_over_time")

# %% [markdown]
# ΔJ against the iteration, mean over states within a seed, then over seeds, at the last checkpoint.
# Iterations past the dotted line (K trained) show generalization beyond the training horizon.

# %%
variants = ["iterative_k1", "iterative_k2", "iterative"]
envs = F.panel_envs([], states)
fig, panels = F.curves(summary, improvement, frame=states, x="iteration", y="dJ", hues=variants, envs=envs,
                       band=band, xlabel="iteration i", ylabel="ΔJ = J_i − J_0")
for env, ax in panels.items():
    for k in states.loc[states["env"] == env, "n_iters_trained"].unique():
        ax.axvline(k, color="#999999", linestyle=":", linewidth=1)
F.title(fig, "Improvement across iterations (last checkpoint)", summary, band, "iterative: K = 5")
F.save(fig, out_dir, "improvement_iterations")

# %% [markdown]
# Fig. 17: per-step improvement over training, J_K − J_0 of the training batches (metrics.csv), one
# curve per seed, for the iterative agent (K = 5).

# %%
train = metrics.rows(variant="iterative")
iters = sorted((c for c in train.columns if c.startswith("J_iter")), key=lambda c: int(c[6:]))
if iters:
    train = train.dropna(subset=[iters[0], iters[-1]]).assign(dJ=lambda d: d[iters[-1]] - d[iters[0]])
envs = F.panel_envs(F.MAIN_ENVS, train)
fig, panels = F.env_panels(envs, train if iters else train.iloc[0:0], lambda env: (
    summary.reason(metrics, env, ["iterative"]) if iters or metrics.frame is None
    else "metrics.csv has no J_iter columns (no iterative run)"))
for ax, run in panels:
    for seed, curve in run.groupby("seed"):
        ax.plot(curve["step"], curve["dJ"], label=f"seed {seed}", linewidth=1)
    F.steps_axis(ax)
    ax.set_ylabel(f"{iters[-1]} − {iters[0]}".replace("J_iter", "J_"))
    ax.legend(fontsize=6)
F.title(fig, "Per-step improvement over training (NeurIPS Fig. 17)", summary, None, "one curve per seed")
F.save(fig, out_dir, "improvement_per_step")
