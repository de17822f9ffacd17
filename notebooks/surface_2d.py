# %% [markdown]
# # 2-D optimization surfaces with optimizer trajectories (NeurIPS Figures 1 left and 19)
#
# For one on-policy state, the objective J over two dimensions of the policy mean (tanh space; the
# other dimensions and σ at the agent's estimate): the agent's own estimate (black diamond), the best
# grid point (red star), and runs of an iterative optimizer on this surface: the run's own, or
# another (iterative) run's optimizer on a direct agent's value function (A.1, B.5). Each run starts
# from its own initialization (square; μ0 ~ 0.3·N(0, I) on the two plotted dimensions) and only
# those two dimensions move: the others and σ are reset to the agent's estimate after every
# iteration. A 1-D action space gives a curve. Reads `surface_2d.csv`.

# %%
import numpy as np
from matplotlib.lines import Line2D

import iapo.figures as F

# %% tags=["parameters"]
summary_dir = "results/summary/smoke"  # the scale's summary tables
scale = "smoke"                        # scale preset the tables come from
out_dir = "paper_figures/smoke/figures"  # where the PDF and PNG files go
band = "ci"                            # unused here (no curves over seeds); kept for a uniform interface
zoom = 0.25                            # colour scale (y range for 1-D) from this quantile of J to its max

# %%
F.set_style()
summary = F.Summary(summary_dir, scale)
surface = summary.table("surface_2d")
rows = F.last_checkpoint(surface.rows(variant=["direct", "iterative"]))


# %% [markdown]
# One panel per (env, variant): the lowest seed's first state at its last checkpoint.

# %%
def draw_surface(fig, ax, s) -> None:
    grid, traj = s[s["kind"] == "grid"], s[s["kind"] == "trajectory"]
    estimate, optimum = s[s["kind"] == "estimate"], s[s["kind"] == "optimum"]
    dx, one_d = int(grid["dim_x"].iloc[0]), grid["dim_y"].isna().all()
    low, high = grid["J"].quantile(zoom), grid["J"].max()  # the colour scale / y range: the top part
    if one_d:  # a curve J(tanh μ) with the points on it
        g = grid.sort_values("x")
        ax.plot(g["x"], g["J"], color="#444444")
        ax.set_ylim(low - 0.05 * (high - low), high + 0.1 * (high - low))
        y_of = "J"
        ax.set(xlabel=f"tanh μ{dx}", ylabel="J")
    else:
        j = grid.pivot_table(index="y", columns="x", values="J")
        levels = np.linspace(low, high, 21) if high > low else 20
        filled = ax.contourf(j.columns, j.index, j.to_numpy(), levels=levels, cmap="viridis", extend="min")
        fig.colorbar(filled, ax=ax, label="J")
        y_of = "y"
        ax.set(xlabel=f"tanh μ{dx}", ylabel=f"tanh μ{int(grid['dim_y'].iloc[0])}")
    ax.plot(estimate["x"], estimate[y_of], "D", color="black", markersize=6, alpha=0.8)
    ax.plot(optimum["x"], optimum[y_of], "*", color="red", markersize=11, alpha=0.8)
    for (optimizer, _), t in traj.groupby(["optimizer", "run"]):
        t = t.sort_values("iteration")
        ax.plot(t["x"], t[y_of], "-o", color=F.color(optimizer), markersize=2, linewidth=1, alpha=0.8)
        ax.plot(t["x"].iloc[:1], t[y_of].iloc[:1], "s", color=F.color(optimizer), markersize=4)


# %%
found = set() if rows.empty else set(rows[["env", "variant"]].itertuples(index=False, name=None))
panels = [(e, v) for e in F.order_envs(e for e, _ in found) for v in ["direct", "iterative"]
          if (e, v) in found]
fig, axes = F.grid(max(len(panels), 1), ncols=2, width=3.6, height=3.0)
if not panels:
    F.no_data(axes[0], summary.reason(surface, None, ["direct", "iterative"]))
for ax, (env, variant) in zip(axes, panels, strict=False):
    s = rows[(rows["env"] == env) & (rows["variant"] == variant)]
    s = s[s["seed"] == s["seed"].min()]
    s = s[s["state"] == s["state"].min()]
    seed, step = s["seed"].iloc[0], F.human(s["step"].iloc[0])
    ax.set_title(f"{env}: {F.label(variant)} agent's J\n(seed {seed}, step {step})")
    draw_surface(fig, ax, s)
optimizers = [] if rows.empty else sorted(rows["optimizer"].dropna().unique())
handles = [Line2D([], [], marker="D", color="black", linestyle="", label="agent's estimate"),
           Line2D([], [], marker="*", color="red", linestyle="", markersize=10, label="grid optimum"),
           *(Line2D([], [], marker="o", color=F.color(o), label=f"{F.label(o)} optimizer (□ = a run's λ0)")
             for o in optimizers)]
fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
F.title(fig, "2-D optimization surfaces (NeurIPS Fig. 1 left, 19)", summary, None,
        f"colour scale from the {zoom:.0%} quantile of J on the grid to its maximum")
F.save(fig, out_dir, "surface_2d")
