# %% [markdown]
# # Amortization gap (NeurIPS Figure 6)
#
# Per-step amortization gap J(s, λ̂) − J(s, λ): how much gradient ascent from the agent's estimate
# λ still improves the objective (A.3: Adam, lr 5e-3, 100 steps; 100 on-policy states). Iterative
# agents are also evaluated with 5 more amortized iterations than trained (§4.2.4). Every agent's J
# uses the same β (1, evaluation mode, unless the analysis was told otherwise; the title says which),
# so direct and iterative are compared on one objective. Reads `amortization_gap.csv`.

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
gap = summary.table("amortization_gap")
variants = ["direct", "iterative", "direct_flow"]

# %% [markdown]
# One curve per setting: the agent as trained (`estimate = amortized`) and, for iterative agents,
# with the extra iterations (`amortized_extra`).

# %%
rows = gap.rows(variant=variants)
if not rows.empty:
    extra = rows["estimate"] == "amortized_extra"
    rows = rows.assign(setting=rows["variant"].where(~extra, rows["variant"] + " + 5 iters"))
settings = ["direct", "iterative", "iterative + 5 iters", "direct_flow"]

# %% [markdown]
# Gap over training (mean over the states within a seed, then over seeds), from the first checkpoint
# after the random-action warm-up: the one at its end holds untrained networks (the audit leaves it out too).

# %%
envs = F.panel_envs(F.MAIN_ENVS, rows)
fig, _ = F.curves(summary, gap, frame=rows, y="gap", hue="setting", hues=settings, variants=variants,
                  envs=envs, band=band, ylabel="amortization gap (J units)", skip_warmup=True)
estimators = ", ".join(sorted(rows["estimator"].unique())) if not rows.empty else "?"
betas = ", ".join(f"{b:g}" for b in sorted(rows["beta"].unique())) if "beta" in rows else "?"
F.title(fig, "Amortization gap (NeurIPS Fig. 6)", summary, band,
        "; ".join(filter(None, [f"estimator: {estimators}; β in J: {betas}", F.warmup_note(summary)])))
F.save(fig, out_dir, "amortization_gap")
