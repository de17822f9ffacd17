# %% [markdown]
# # Value bias and policy change rate, β = 1 vs β = 2.5 (NeurIPS Figure 3)
#
# With the default pessimism β = 1 (eq. 13), iterative amortization overestimates values more and
# changes its policy faster than direct amortization; training with β = 2.5 (Hopper 1.5) mitigates
# both (§3.3, A.2). Reads `value_bias.csv`, `policy_change.csv` (diagnostics), `metrics.csv` (the
# online policy change logged by training) and `runs.csv`.

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
bias, change, runs = summary.table("value_bias"), summary.table("policy_change"), summary.table("runs")
variants = ["direct", "iterative_beta1", "iterative"]

# %% [markdown]
# The training β of each variant, per environment, from `runs.csv` (stated in the titles).

# %%
betas = runs.rows(variant=variants).groupby("variant")["beta"].unique() if runs.frame is not None else {}
beta_note = "training β: " + ", ".join(
    f"{F.label(v)} = {'/'.join(f'{b:g}' for b in sorted(betas[v]))}" for v in variants if v in betas)

# %% [markdown]
# (a) Value bias: Q̂(s, a) − Monte Carlo soft return on fixed random-action pairs, per checkpoint
# (mean over the pairs within a seed, then over seeds). Closer to zero is better.

# %%
envs = F.panel_envs(["Ant-v2"], bias.rows(variant=variants))
fig, _ = F.curves(summary, bias, y="bias", hues=variants, envs=envs, band=band, ylabel="value bias")
F.title(fig, "(a) Value bias (NeurIPS Fig. 3a)", summary, band, beta_note)
F.save(fig, out_dir, "value_bias")

# %% [markdown]
# (b) Policy change: KL(π_prev ‖ π_step) between the policies of successive checkpoints on the
# states of an episode of the earlier one (the paper measured it online, one episode apart).

# %%
envs = F.panel_envs(["Ant-v2"], change.rows(variant=variants))
fig, _ = F.curves(summary, change, y="kl", hues=variants, envs=envs, band=band, ylabel="KL (nats)")
pairs = change.rows(variant=variants)
apart = sorted((pairs["step"] - pairs["prev_step"]).unique()) if not pairs.empty else []
spacing = ""
if apart:
    span = F.human(apart[0]) if len(apart) == 1 else f"{F.human(apart[0])}–{F.human(apart[-1])}"
    spacing = f"checkpoints {span} steps apart"
note = "; ".join(filter(None, [beta_note, spacing]))
F.title(fig, "(b) Policy change rate (NeurIPS Fig. 3b)", summary, band, note)
F.save(fig, out_dir, "policy_change")

# %% [markdown]
# (b) as the paper measured it: `policy_kl` of metrics.csv, logged by training after every episode:
# KL(π_old ‖ π_new) on that episode's states, π_old the λ the agent acted with, π_new its λ after the
# updates since (original_code.md §6, `agent_kl`). Runs trained before training logged it have no such column.

# %%
metrics = summary.table("metrics")
envs = F.panel_envs(["Ant-v2"], metrics.rows(variant=variants))
if metrics.frame is not None and "policy_kl" not in metrics.frame:
    metrics = F.Table("metrics", None, "metrics.csv has no policy_kl column: its runs were trained "
                                       "before training logged the online policy change")
fig, _ = F.curves(summary, metrics, y="policy_kl", hues=variants, envs=envs, band=band,
                  ylabel="KL per episode (nats)")
F.title(fig, "(b) Policy change rate, online (NeurIPS Fig. 3b)", summary, band,
        "; ".join(filter(None, [beta_note, "after every training episode"])))
F.save(fig, out_dir, "policy_change_online")
