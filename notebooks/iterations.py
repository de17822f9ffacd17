# %% [markdown]
# # Iterations during training: K = 1, 2, 5 (NeurIPS Figures 8, 22, 23)
#
# Iterative agents trained with 1, 2 or 5 policy optimization iterations per step: evaluation return
# and estimated amortization gap over training, with direct amortization for reference (§4.2.4,
# B.6). Reads `eval.csv` and `amortization_gap.csv`.

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
evals, gap = summary.table("eval"), summary.table("amortization_gap")
variants = ["iterative_k1", "iterative_k2", "iterative", "direct"]
note = "iterative: K = 5"

# %% [markdown]
# Performance (Fig. 8 left on HalfCheetah; Fig. 22 on the main environments).

# %%
k_envs = [*F.MAIN_ENVS, *summary.trained_envs("iterative_k1", "iterative_k2")]
envs = F.panel_envs(k_envs, evals.rows(variant=variants[:2]))
fig, _ = F.curves(summary, evals, y="return", hues=variants, envs=envs, band=band, ylabel="return",
                  baseline=evals)
F.title(fig, "Performance for varying iterations during training (NeurIPS Fig. 8 left, 22)", summary,
        band, note)
F.save(fig, out_dir, "iterations_performance")

# %% [markdown]
# Amortization gap of the agent as trained (Fig. 8 right, Fig. 23).

# %%
rows = gap.rows(variant=variants, estimate="amortized")
envs = F.panel_envs(k_envs, rows[rows["variant"].isin(variants[:2])] if not rows.empty else rows)
fig, _ = F.curves(summary, gap, frame=rows, y="gap", hues=variants, envs=envs, band=band,
                  ylabel="amortization gap (J units)", skip_warmup=True)
F.title(fig, "Amortization gap for varying iterations during training (NeurIPS Fig. 8 right, 23)", summary,
        band, "; ".join(filter(None, [note, F.warmup_note(summary)])))
F.save(fig, out_dir, "iterations_gap")
