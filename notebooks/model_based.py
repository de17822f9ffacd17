# %% [markdown]
# # Model-based value estimates (NeurIPS Figures 9 and 13)
#
# Agents whose value estimate rolls a learned model out for h steps (Retrace, eq. 14, A.5): their
# performance (Fig. 13a), the trajectories the iterative optimizer plans at each iteration for one
# state (Fig. 13b), the objective over iterations (Fig. 13c), and the zero-shot transfer of a
# model-free agent's iterative optimizer onto the model-based objective (Fig. 9, §4.2.5). Reads
# `eval.csv`, `mb_planning.csv`, `mb_planning_rollout.csv` and `mb_transfer.csv`.

# %%
import matplotlib.pyplot as plt

import iapo.figures as F

# %% tags=["parameters"]
summary_dir = "results/summary/smoke"  # the scale's summary tables
scale = "smoke"                        # scale preset the tables come from
out_dir = "paper_figures/smoke/figures"  # where the PDF and PNG files go
band = "ci"                            # ci: mean and 95% bootstrap band over seeds | std: mean ± std
state_dims = 4                         # planned state dimensions to draw (plus the predicted reward)

# %%
F.set_style()
summary = F.Summary(summary_dir, scale)
evals, transfer = summary.table("eval"), summary.table("mb_transfer")
planning, rollout = summary.table("mb_planning"), summary.table("mb_planning_rollout")
variants = ["direct_mb", "iterative_mb"]
mb_envs = ["HalfCheetah-v2", *summary.trained_envs(*variants)]  # the paper's, and this scale's

# %% [markdown]
# (a) Performance with model-based value estimates (HalfCheetah in the paper).

# %%
rows = evals.rows(variant=variants)
fig, _ = F.curves(summary, evals, y="return", hues=variants, envs=F.panel_envs(mb_envs, rows), band=band,
                  ylabel="return", baseline=evals)
F.title(fig, "Performance with model-based value estimates (NeurIPS Fig. 13a)", summary, band)
F.save(fig, out_dir, "mb_performance")

# %% [markdown]
# (b) Planned trajectories: from the real state s, the model's mean states under the estimate λ_i of
# each iteration (colour: iteration), for one state of the lowest seed at the last checkpoint.

# %%
plans = F.last_checkpoint(rollout.rows(variant="iterative_mb"))
envs = F.order_envs(plans["env"].unique()) if not plans.empty else []
fig, axes = F.grid(max(len(envs), 1) * (state_dims + 1), ncols=state_dims + 1, width=2.4, height=2.2)
if not envs:
    F.no_data(axes[0], summary.reason(rollout, None, ["iterative_mb"]))
    for ax in axes[1:]:
        ax.set_visible(False)
for row, env in enumerate(envs):
    p = plans[plans["env"] == env]
    p = p[(p["seed"] == p["seed"].min())]
    p = p[p["state"] == p["state"].min()]
    n = max(int(p["iteration"].max()), 1)
    row_axes = axes[row * (state_dims + 1):(row + 1) * (state_dims + 1)]
    dims = sorted(p["dim"].unique())[:state_dims]
    for ax in row_axes[len(dims):-1]:
        ax.set_visible(False)
    for ax, dim in zip(row_axes, dims, strict=False):
        for i, plan in p[p["dim"] == dim].groupby("iteration"):
            ax.plot(plan["t"], plan["value"], "-o", markersize=2, color=plt.cm.viridis(i / n))
        ax.set(title=f"{env}: state dim {dim}", xlabel="rollout step t", ylabel="planned s_t")
    ax = row_axes[-1]
    for i, plan in p.drop_duplicates(["iteration", "t"]).groupby("iteration"):
        ax.plot(plan["t"], plan["reward"], "-o", markersize=2, color=plt.cm.viridis(i / n), label=f"i = {i}")
    ax.set(title=f"{env}: predicted reward", xlabel="rollout step t", ylabel="r̂(s_t, a_t)")
    ax.legend(fontsize=6)
F.title(fig, "Planned trajectories over policy optimization iterations (NeurIPS Fig. 13b)", summary, None,
        "iterative_mb, lowest seed, first state, last checkpoint; colour = iteration")
F.save(fig, out_dir, "mb_planning")

# %% [markdown]
# (c) The model-based objective over iterations, mean over states within a seed, then over seeds.

# %%
rows = F.last_checkpoint(planning.rows(variant="iterative_mb"))
fig, _ = F.curves(summary, planning, frame=rows, x="iteration", y="J", hues=["iterative_mb"],
                  envs=F.panel_envs([], rows), band=band, xlabel="iteration i", ylabel="J (model-based)")
F.title(fig, "Objective over iterations with model-based values (NeurIPS Fig. 13c)", summary, band)
F.save(fig, out_dir, "mb_objective")

# %% [markdown]
# Fig. 9: evaluation return of the model-based iterative agent with its own optimizer vs the
# optimizer of a model-free iterative run (same env and seed), on the same episodes.

# %%
rows = transfer.rows(variant="iterative_mb")
fig, _ = F.curves(summary, transfer, frame=rows, y="return", hue="optimizer", hues=["own", "transfer"],
                  variants=["iterative_mb"], envs=F.panel_envs(mb_envs, rows), band=band,
                  ylabel="return", baseline=evals)
F.title(fig, "Zero-shot transfer from model-free to model-based values (NeurIPS Fig. 9)", summary, band)
F.save(fig, out_dir, "mb_transfer")
