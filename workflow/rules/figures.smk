# Figures (the figures issue): one papermill job per notebook (notebooks/*.py, jupytext percent
# format, `papermill -k python3 -p scale <scale>`), reading only results/summary/<scale>/ and
# writing paper_figures/. Register the figures with FINAL_TARGETS["figures"] = lambda scale: [...]
# and mark them report(...) so `snakemake --report` shows them.
