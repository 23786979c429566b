"""Agreement statistics of the caption-metric literature: Kendall tau-b/tau-c, Pearson, pairwise accuracy.

Every value is scaled x100, as the tables of CLIPScore (Hessel et al., 2021), PAC-S (Sarto et al., 2023) and
THumB (Kasai et al., 2022) print them. A correlation that is undefined (fewer than two rows, or a constant
input) is ``None``, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def _finite_or_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _undefined(x: np.ndarray, y: np.ndarray) -> bool:
    return len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0])


def kendall(metric: Sequence[float], human: Sequence[float], variant: str = "b") -> float | None:
    """Kendall's tau (``variant`` "b" or "c", scipy.stats.kendalltau) between two score lists, x100.

    Example:
        >>> kendall([1, 2, 3, 4], [1, 3, 2, 4], "b")
        66.66666666666669
    """
    x, y = np.asarray(metric, dtype=float), np.asarray(human, dtype=float)
    if _undefined(x, y):
        return None
    return _finite_or_none(100.0 * stats.kendalltau(x, y, variant=variant).statistic)


def pearson(metric: Sequence[float], human: Sequence[float]) -> float | None:
    """Pearson's r between two score lists, x100 (None when undefined)."""
    x, y = np.asarray(metric, dtype=float), np.asarray(human, dtype=float)
    if _undefined(x, y):
        return None
    return _finite_or_none(100.0 * stats.pearsonr(x, y).statistic)


def pairwise_accuracy(
    score_a: Sequence[float], score_b: Sequence[float], labels: Sequence[int], higher_is_better: bool = True
) -> tuple[float | None, int]:
    """Accuracy (x100) of a metric at picking the caption humans preferred, and the number of ties.

    ``labels[i]`` is 0 when humans preferred caption a, 1 for caption b. A tie (equal metric scores) earns
    half a point: the expected accuracy of breaking it at random, independent of caption order.

    Example:
        >>> pairwise_accuracy([0.9, 0.2, 0.5], [0.1, 0.8, 0.5], [0, 1, 1])
        (83.33333333333334, 1)
    """
    a, b = np.asarray(score_a, dtype=float), np.asarray(score_b, dtype=float)
    lab = np.asarray(labels, dtype=int)
    if not len(a):
        return None, 0
    if not higher_is_better:
        a, b = -a, -b
    pick_b = b > a
    ties = a == b
    correct = np.where(ties, 0.5, (pick_b == (lab == 1)).astype(float))
    return float(100.0 * correct.mean()), int(ties.sum())
