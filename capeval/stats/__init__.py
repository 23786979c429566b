"""Confidence intervals, paired significance tests and rankings for a run (the ``stats.json`` document).

Entry points::

    from capeval.stats import compute_stats, load_or_compute_stats
    doc = load_or_compute_stats("runs/thumb")          # reuses runs/thumb/stats.json when still valid
    doc = compute_stats(capeval.rundir.load_run(path), n_boot=1000, n_perm=5000, seed=0, alpha=0.05)

Method:

* **CI**: 95% (``1 - alpha``) percentile bootstrap over images, ``n_boot`` resamples drawn from a generator
  seeded by ``seed`` and the image ids (the same resamples for every metric and captioner sharing the same
  images, reproducible across processes). Corpus-level metrics are recomputed on each resample, not averaged
  per sample: BLEU from summed sufficient statistics, METEOR from Java's statistics with its aggregate
  arithmetic, CIDEr-D with document frequencies from the resampled images' references (see
  :mod:`capeval.stats.corpus`). Multi-seed metrics resample images and seeds (two-way bootstrap).
* **Paired tests**: for every pair of captioners, on the images both were scored on, a paired permutation
  test of the difference of the metric (captions swapped per image; exact when ``2**n <= n_perm``), two-sided,
  and the bootstrap CI of the difference; p-values Holm-adjusted over the pairs of each metric.
* **Ranking**: rank = 1 + number of captioners significantly better (Holm-adjusted p < ``alpha``).

``stats.json`` layout::

    {"stats_version": 1, "capeval_version": ..., "inputs_sha256": ..., "params": {n_boot, n_perm, seed, alpha,
     ...}, "captioners": [...], "warnings": [...], "elapsed_seconds": ...,
     "metrics": {METRIC: {"method": "bleu-corpus|meteor-corpus|cider-df-resampled|mean|mean-seeds|unavailable",
        "higher_is_better": bool, "signature": str, "seeds": int, "notes": [...],
        "captioners": {NAME: {"value", "ci_low", "ci_high", "se", "n", "seeds", "seed_std", "rank",
                              "rank_range": [best, worst]}},
        "pairs": [{"a", "b", "n", "diff" (a - b), "ci_low", "ci_high", "p_value" (two-sided), "p_holm",
                   "p_less", "p_greater", "significant", "better" (name or null), "test"}],
        "ranking": [NAME, ...]}}}

``value`` is the run's own number (summary.json's ``mean``); values are on the run's scale (0-1; CIDEr as is).
Unavailable numbers (no Java for re-tokenisation, a corpus metric with no resampling rule) are ``null`` with a
note saying why.
"""

from capeval.stats.compute import (
    STATS_FILE,
    STATS_VERSION,
    analyse,
    compute_stats,
    inputs_sha256,
    load_or_compute_stats,
)
from capeval.stats.corpus import StatsInput

__all__ = [
    "STATS_FILE",
    "STATS_VERSION",
    "StatsInput",
    "analyse",
    "compute_stats",
    "inputs_sha256",
    "load_or_compute_stats",
]
