# %% [markdown]
# # Extra optimization at test time (NeurIPS Figures 20 and 21)
#
# Evaluation return of the agents as trained vs with more policy optimization at every action, only
# at evaluation (B.6): direct agents + 50 Adam steps on λ, iterative agents + 5 iterations beyond
# the K = 5 they were trained with. Reads `test_time.csv`, and `eval.csv` for the untrained policy's
# return (dashed).

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
test_time, evals = summary.table("test_time"), summary.table("eval")
modes = ["amortized", "optimized"]


# %% [markdown]
# The same figure for each family; the number of extra steps comes from the table.

# %%
def test_time_figure(variant: str, paper: str, name: str) -> None:
    rows, extra = test_time.rows(variant=variant), test_time.rows(variant=variant, mode="optimized")
    kinds = {"adam": "Adam steps on λ", "iterations": "iterations"}
    pairs = zip(extra.get("extra_kind", []), extra.get("extra_steps", []), strict=True)
    what = ", ".join(sorted({f"+{n} {kinds.get(k, k)}" for k, n in pairs})) or "none"
    envs = F.panel_envs(F.MAIN_ENVS, rows)
    fig, _ = F.curves(summary, test_time, frame=rows, y="return", hue="mode", hues=modes, variants=[variant],
                      envs=envs, band=band, ylabel="return", baseline=evals)
    F.title(fig, f"{paper}: {F.label(variant)} agents", summary, band, f"optimized = {what} per action")
    F.save(fig, out_dir, name)


# %%
test_time_figure("direct", "Test-time gradient-based optimization (NeurIPS Fig. 20)", "test_time_direct")

# %%
test_time_figure("iterative", "Additional amortized test-time iterations (NeurIPS Fig. 21)",
                 "test_time_iterative")
