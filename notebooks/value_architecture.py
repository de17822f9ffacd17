# %% [markdown]
# # Value architecture A vs B (NeurIPS Figure 11)
#
# Performance of direct and iterative amortization with each Q-network architecture (Tables 3-4:
# A = 2 × 256 ReLU; B = 3 × 512 ELU, layer norm, highway). Tables 5-6 pick one per environment; the
# variants `*_qA`, `*_qB` train the other. The architecture of every run comes from `runs.csv`.

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
evals, runs = summary.table("eval"), summary.table("runs")
variants = ["direct", "iterative", "direct_qA", "direct_qB", "iterative_qA", "iterative_qB"]
arches = ["direct + A", "direct + B", "iterative + A", "iterative + B"]

# %% [markdown]
# Label every evaluation episode with its run's optimizer family and Q architecture (without
# `runs.csv` the panels say so).

# %%
rows, arch = evals.rows(variant=variants), runs.rows(variant=variants)
if rows.empty or arch.empty:
    rows = rows.iloc[0:0]
else:
    arch = arch[["env", "variant", "seed", "family", "q_arch"]]
    rows = rows.drop(columns=["family"], errors="ignore").merge(arch, on=["env", "variant", "seed"])
    rows = rows.assign(arch=rows["family"] + " + " + rows["q_arch"])

# %%
envs = F.panel_envs(F.MAIN_ENVS, rows[rows["arch"].str.endswith("B")] if not rows.empty else rows)
source = evals if runs.frame is not None else runs  # names the missing table in empty panels
fig, _ = F.curves(summary, source, frame=rows, y="return", hue="arch", hues=arches, variants=variants,
                  envs=envs, band=band, ylabel="return")
F.title(fig, "Value architecture comparison (NeurIPS Fig. 11)", summary, band)
F.save(fig, out_dir, "value_architecture")
