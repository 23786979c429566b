"""Seeded bootstrap resampling over images (Efron & Tibshirani, 1993) with percentile intervals.

A resample is stored as a row of *multiplicities*: ``weights[b, i]`` is how often image ``i`` was drawn in
resample ``b``. Every statistic in :mod:`capeval.stats` is computed from such weights, so corpus-level
metrics can be recomputed on a resample without materialising it. Multi-seed metrics also draw seeds with
replacement (``seed_counts``), which combines the between-seed and the between-image variance.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np


def rng_for(seed: int, *keys: str) -> np.random.Generator:
    """A generator determined by ``seed`` and string keys (e.g. the image ids), stable across processes."""
    return np.random.default_rng([int(seed), *(zlib.crc32(k.encode("utf-8")) for k in keys)])


def ids_key(ids: Sequence[str]) -> str:
    """A short stable key for an ordered id list (used to seed its resamples)."""
    return format(zlib.crc32("\x1f".join(ids).encode("utf-8")), "08x")


def resample_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n)`` multiplicities of ``n`` items drawn ``n`` times with replacement per resample.

    Example:
        >>> w = resample_counts(5, 3, np.random.default_rng(0))
        >>> w.shape, w.sum(axis=1).tolist()
        ((3, 5), [5.0, 5.0, 5.0])
    """
    if n == 0 or n_boot == 0:
        return np.zeros((n_boot, n), dtype=np.float64)
    draws = rng.integers(0, n, size=(n_boot, n))
    flat = (draws + (np.arange(n_boot) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def percentile_interval(samples: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """The percentile bootstrap interval ``[q(alpha/2), q(1-alpha/2)]`` of finite resampled values.

    Returns ``(nan, nan)`` when no resample is finite.
    """
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def bootstrap_se(samples: np.ndarray) -> float:
    """Standard deviation of the finite resampled values (the bootstrap standard error)."""
    finite = samples[np.isfinite(samples)]
    return float(np.std(finite, ddof=1)) if finite.size > 1 else float("nan")
