# %% [markdown]
# # Iterative amortization vs Adam vs CEM (NeurIPS Figures 4c and 18)
#
# From the same initial λ0 on the same objective (on-policy states of iterative runs), J over the
# iterations of the run's own iterative optimizer, Adam (step 0.01, 10-sample gradients) and CEM
# (100 samples, top 10); and the wall-clock cost of one iteration (B.4: iterative amortization is
# about 1.15× Adam's and 1.25× CEM's). Reads `optimizer_comparison.csv`.

# %%
import iapo.figures as F

# %% tags=["parameters"]
summary_dir = "results/summary/smoke"  # the scale's summary tables
scale = "smoke"                        # scale preset the tables come from
out_dir = "paper_figures/smoke/figures"  # where the PDF and PNG files go
band = "ci"                            # ci: mean and 95% bootstrap band over seeds | std: mean ± std

# %%
F.set_style()
summary = F.Summary(summary_dir, scale)
comparison = summary.table("optimizer_comparison")
rows = F.last_checkpoint(comparison.rows(variant="iterative"))
optimizers = ["iterative", "iterative_transfer", "adam", "cem"]

# %% [markdown]
# J over iterations (log scale past 1), mean over states within a seed, then over seeds; the dotted
# line marks the K iterations the optimizer was trained with.

# %%
envs = F.panel_envs(F.MAIN_ENVS, rows)
fig, panels = F.curves(summary, comparison, frame=rows, x="iteration", y="J", hue="optimizer",
                       hues=optimizers, variants=["iterative"], envs=envs, band=band, xlabel="iteration",
                       ylabel="J")
for env, ax in panels.items():
    ax.set_xscale("symlog", linthresh=1)
    for k in rows.loc[rows["env"] == env, "n_iters_trained"].dropna().unique():
        ax.axvline(k, color="#999999", linestyle=":", linewidth=1)
F.title(fig, "Comparison with iterative optimizers (NeurIPS Fig. 4c, 18)", summary, band)
F.save(fig, out_dir, "optimizer_comparison")

# %% [markdown]
# Wall-clock ratio t(iterative) / t(optimizer) per iteration (one value per run), and the paper's (×).
# The title names the hardware the analysis timed them on (its `device` option in scale.json).

# %%
timed_on = summary.timing_device("optimizer_comparison")
paper = {"adam": 1.15, "cem": 1.25}
ratio = rows[rows["optimizer"].isin(list(paper))] if not rows.empty else rows
if not ratio.empty:
    ratio = ratio.drop_duplicates(["env", "seed", "optimizer"])  # one value per run: its last checkpoint
    ratio = ratio.assign(step=ratio.groupby("env")["step"].transform("max"))  # each env's own length
    by_run = ratio.groupby(["env", "step", "optimizer"])["time_ratio"]
    print(by_run.agg(["mean", "count"]).round(3).to_string())
envs = F.panel_envs(F.MAIN_ENVS, ratio)
fig, panels = F.curves(summary, comparison, frame=ratio, y="time_ratio", hue="optimizer", hues=list(paper),
                       variants=["iterative"], envs=envs, band=band, ylabel="t(iterative) / t(optimizer)")
for env, ax in panels.items():
    present = [o for o in paper if ((ratio["env"] == env) & (ratio["optimizer"] == o)).any()]
    ax.plot(range(len(present)), [paper[o] for o in present], "x", color="black")
    ax.axhline(1, color="#999999", linewidth=0.8)
F.title(fig, f"Wall-clock per iteration relative to Adam and CEM (B.4), {F.timing_text(timed_on)}",
        summary, band, "× = paper (1.15 Adam, 1.25 CEM); above 1: iterative is slower per iteration")
F.save(fig, out_dir, "optimizer_wall_clock")
