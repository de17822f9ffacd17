"""Statistics over seeds, the curves' points: per x the mean over seeds and a band, a 95% stratified
bootstrap interval (`iapo.stats`) or the paper's mean ± std."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from iapo.stats import mean_band

N_BOOT = 2000
BAND_TEXT = {"ci": "mean and 95% bootstrap CI over seeds", "std": "mean ± std over seeds"}


def over_seeds(df: pd.DataFrame, x: str, y: str, by: Sequence[str] = (), band: str = "ci",
               n_boot: int = N_BOOT) -> pd.DataFrame:
    """One curve point per (by…, x): `y` is first averaged within each seed (the unit of
    replication: episodes, states, pairs …), then over seeds with a band: `ci` = the percentile
    bootstrap of `iapo.stats.mean_band`, `std` = mean ± sample standard deviation (0 for one seed).
    Columns: by…, x, mean, low, high, n_seeds."""
    if band not in BAND_TEXT:
        raise ValueError(f"band: {band!r}; allowed: {', '.join(BAND_TEXT)}")
    keys = [*by, x]
    per_seed = df.dropna(subset=[y]).groupby([*keys, "seed"], sort=True)[y].mean().reset_index()
    rows = []
    for key, group in per_seed.groupby(keys, sort=True):
        values = group[y].to_numpy(float)
        if band == "ci":
            iv = mean_band(values, n_boot=n_boot)
            mid, low, high = iv.estimate, iv.low, iv.high
        else:
            mid = float(values.mean())
            sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            low, high = mid - sd, mid + sd
        rows.append({**dict(zip(keys, key, strict=True)), "mean": mid, "low": low, "high": high,
                     "n_seeds": len(values)})
    return pd.DataFrame(rows, columns=[*keys, "mean", "low", "high", "n_seeds"])
