# %% [markdown]
# # Performance curves (NeurIPS Figures 5 and 14)
#
# Deterministic evaluation return over environment steps (§4.2.2, B.1): direct vs iterative
# amortized policy optimization, with the untrained policy's return (dashed) and the random-action
# warm-up (shaded) for reference. Reads `eval.csv` (one row per evaluation episode) and `scale.json`.

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
evals = summary.table("eval")
variants = ["direct", "iterative"]

# %% [markdown]
# Figure 5: the four main environments.

# %%
fig, _ = F.curves(summary, evals, y="return", hues=variants, envs=F.MAIN_ENVS, band=band, ylabel="return",
                  baseline=evals)
F.title(fig, "Performance comparison (NeurIPS Fig. 5)", summary, band)
F.save(fig, out_dir, "performance")

# %% [markdown]
# Figure 14 (B.1): the pendulums.

# %%
fig, _ = F.curves(summary, evals, y="return", hues=variants, envs=F.PENDULUMS, band=band, ylabel="return",
                  baseline=evals)
F.title(fig, "Pendulum performance comparison (NeurIPS Fig. 14)", summary, band)
F.save(fig, out_dir, "performance_pendulums")

# %% [markdown]
# The rest of the MuJoCo suite (Tables 5-6 list their settings; the paper shows no curves).

# %%
fig, _ = F.curves(summary, evals, y="return", hues=variants, envs=F.SUITE, band=band, ylabel="return",
                  baseline=evals)
F.title(fig, "Performance on the rest of the suite (no figure in the paper)", summary, band)
F.save(fig, out_dir, "performance_suite")
