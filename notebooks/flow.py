# %% [markdown]
# # Normalizing-flow baseline: direct + NF (NeurIPS Figures 15 and 16)
#
# Direct amortization with a multi-modal policy (2 inverse autoregressive flow transforms, B.2) next
# to direct and iterative amortization: performance, and the amortization gap early in training.
# Reads `eval.csv` and `amortization_gap.csv`.

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
variants = ["direct", "direct_flow", "iterative"]

# %% [markdown]
# Figure 16: performance on Hopper, HalfCheetah and Walker2d (and any env the flow ran on).

# %%
paper_envs = ["Hopper-v2", "HalfCheetah-v2", "Walker2d-v2", *summary.trained_envs("direct_flow")]
envs = F.panel_envs(paper_envs, evals.rows(variant="direct_flow"))
fig, _ = F.curves(summary, evals, y="return", hues=variants, envs=envs, band=band, ylabel="return",
                  baseline=evals)
F.title(fig, "Performance comparison with NF policies (NeurIPS Fig. 16)", summary, band)
F.save(fig, out_dir, "flow_performance")

# %% [markdown]
# Figure 15: amortization gap (HalfCheetah in the paper). For direct + NF the optimized λ = (μ, σ) is
# the flow's base Gaussian, per state, with the (state-independent) flow transforms held fixed; J is
# the flow policy's own. If the table has no direct + NF rows the title says so.

# %%
rows = gap.rows(variant=variants, estimate="amortized")
flow_rows = rows[rows["variant"] == "direct_flow"] if not rows.empty else rows
envs = F.panel_envs(["HalfCheetah-v2", *summary.trained_envs("direct_flow")], flow_rows)
fig, _ = F.curves(summary, gap, frame=rows, y="gap", hues=variants, envs=envs, band=band,
                  ylabel="amortization gap (J units)", skip_warmup=True)
no_flow = "" if not flow_rows.empty else "amortization_gap.csv has no direct + NF rows at this scale"
note = "; ".join(filter(None, [F.warmup_note(summary), no_flow]))
F.title(fig, "Amortization gap for direct + NF (NeurIPS Fig. 15)", summary, band, note)
F.save(fig, out_dir, "flow_amortization_gap")
