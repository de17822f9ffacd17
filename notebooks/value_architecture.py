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

# %% [markdown]
# A panel without an architecture-B run says so, and so does the title when this scale ran none
# (the panels are then Fig. 5's runs again, not a comparison of architectures).

# %%
with_b = rows[rows["arch"].str.endswith("B")] if not rows.empty else rows
envs = F.panel_envs(F.MAIN_ENVS, with_b)
source = evals if runs.frame is not None else runs  # names the missing table in empty panels
fig, panels = F.curves(summary, source, frame=rows, y="return", hue="arch", hues=arches, variants=variants,
                       envs=envs, band=band, ylabel="return", baseline=evals)
for env, ax in panels.items():
    if with_b.empty or not (with_b["env"] == env).any():
        F.panel_note(ax, f"architecture B not run {'at this scale' if with_b.empty else 'on ' + env}: "
                         "architecture A only")
no_b = "architecture B not run at this scale: A only, the runs of Fig. 5" if with_b.empty else ""
F.title(fig, "Value architecture comparison (NeurIPS Fig. 11)" + (f": {no_b}" if no_b else ""), summary,
        band)
F.save(fig, out_dir, "value_architecture")
