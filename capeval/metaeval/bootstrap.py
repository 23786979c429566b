"""Percentile bootstrap confidence intervals for meta-evaluation statistics (Efron & Tibshirani, 1993).

Resampling follows the unit that was sampled: Flickr8k rows are resampled image by image (the three ratings
of a caption, and the captions of one image, share their references and are not independent), Pascal-50S
pairs within their category (the reported accuracy is the mean of the four categories). A resample whose
statistic is undefined (e.g. a constant score) is skipped; the interval is ``None`` when most are, or when
there are fewer than two units to resample (one image says nothing about the spread).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

DEFAULT_RESAMPLES = 1000
LEVEL = 0.95


def _interval(samples: list[float], wanted: int) -> list[float] | None:
    if len(samples) < wanted / 2:
        return None
    lo, hi = np.percentile(np.asarray(samples), [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    return [float(lo), float(hi)]


def kendall_ci(values: Sequence[float], human: Sequence[float], clusters: Sequence[str],
               variants: Sequence[str] = ("b", "c"), resamples: int = DEFAULT_RESAMPLES,
               seed: int = 0) -> dict[str, list[float] | None]:
    """95% CIs (x100) of Kendall's tau between ``values`` and ``human``, resampling whole ``clusters``.

    Example:
        >>> ci = kendall_ci([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 6, 5], list("aabbcc"), resamples=200)
        >>> ci["c"][0] < 80 < ci["c"][1] <= 100
        True
    """
    x, y = np.asarray(values, dtype=float), np.asarray(human, dtype=float)
    keys = np.asarray(list(clusters))
    names, inverse = np.unique(keys, return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(names))]
    if len(members) < 2:
        return {v: None for v in variants}
    rng = np.random.default_rng(seed)
    found: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(resamples):
        pick = rng.integers(0, len(members), len(members))
        idx = np.concatenate([members[k] for k in pick]) if len(pick) else np.array([], dtype=int)
        xs, ys = x[idx], y[idx]
        if len(xs) < 2 or np.all(xs == xs[0]) or np.all(ys == ys[0]):
            continue
        for v in variants:
            tau = stats.kendalltau(xs, ys, variant=v).statistic
            if np.isfinite(tau):
                found[v].append(100.0 * float(tau))
    return {v: _interval(found[v], resamples) for v in variants}


def pairwise_ci(correct: Sequence[float], categories: Sequence[str], resamples: int = DEFAULT_RESAMPLES,
                seed: int = 0) -> list[float] | None:
    """95% CI (x100) of the mean over categories of the per-category accuracy; pairs resampled per category.

    ``correct`` is 1, 0 or 0.5 (a tie) per pair.

    Example:
        >>> lo, hi = pairwise_ci([1, 1, 0, 1, 0.5, 1, 0, 1], list("AAAABBBB"), resamples=300)
        >>> lo < 68.75 < hi
        True
    """
    c = np.asarray(correct, dtype=float)
    cats = np.asarray(list(categories))
    groups = [c[cats == k] for k in dict.fromkeys(cats.tolist())]
    groups = [g for g in groups if len(g)]
    if not groups:
        return None
    rng = np.random.default_rng(seed)
    means = [float(np.mean([g[rng.integers(0, len(g), len(g))].mean() for g in groups])) * 100.0
             for _ in range(resamples)]
    return _interval(means, resamples)
