"""Paired significance between captioners on the same images: a paired permutation test (approximate
randomisation, Noreen 1989; the test scipy.stats.permutation_test runs with ``permutation_type="samples"``)
on any statistic computed from summed per-image statistics, and Holm's (1979) step-down correction.

Under the null hypothesis the two captioners' outputs for an image are exchangeable, so each permutation swaps
the two captioners' per-image statistics on a random subset of images (all ``2**n`` subsets when that is no
more than ``n_perm``: the exact test) and recomputes both corpus statistics. Corpus BLEU and METEOR are
recomputed from swapped sufficient statistics; means are means of swapped values.

p-values follow scipy's conventions, so they can be checked against it: ``less``/``greater`` count null values
on each side of the observed one (with scipy's relative tolerance of 100 machine epsilons), adding one to
numerator and denominator for a randomised test; ``two-sided`` is twice the smaller one, capped at 1.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from capeval.aggregation import Finish, mean_finish, mean_stats  # noqa: E402,F401  (one home: aggregation)


def is_exact(n: int, n_perm: int) -> bool:
    """Whether all ``2**n`` swap patterns fit in ``n_perm`` permutations (then the test is exact)."""
    return n <= 24 and 2**n <= n_perm


def iter_flip_masks(n: int, n_perm: int, rng: np.random.Generator,
                    max_cells: int = 4_000_000) -> Iterator[np.ndarray]:
    """``(P, n)`` 0/1 masks of the images whose captioners are swapped, in blocks of at most ``max_cells``
    entries (bounded memory on large runs): all ``2**n`` masks (identity included) when :func:`is_exact`, else
    ``n_perm`` random ones drawn as packed random bits (reproducible for a given generator state
    and ``max_cells``)."""
    if is_exact(n, n_perm):
        yield np.array(list(itertools.product((0.0, 1.0), repeat=n)), dtype=np.float64).reshape(2**n, n)
        return
    block = max(1, max_cells // max(1, n))
    for start in range(0, n_perm, block):
        bits = rng.integers(0, 256, size=(min(block, n_perm - start), (n + 7) // 8), dtype=np.uint8)
        yield np.unpackbits(bits, axis=1, count=n).astype(np.float64)


def flip_masks(n: int, n_perm: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """All masks of :func:`iter_flip_masks` as one matrix, and whether the set is exhaustive."""
    return np.concatenate(list(iter_flip_masks(n, n_perm, rng))), is_exact(n, n_perm)


def permutation_null(stats_a: np.ndarray, stats_b: np.ndarray, finish: Finish,
                     masks: np.ndarray | Iterator[np.ndarray]) -> tuple[float, np.ndarray]:
    """Observed ``finish(a) - finish(b)`` and its permutation distribution (one value per mask).

    ``masks`` is a ``(P, n)`` array or an iterator of such blocks (:func:`iter_flip_masks`).
    ``stats_a``/``stats_b`` are ``(n, k)`` per-image statistics of the two captioners on the same images.
    """
    total_a, total_b = stats_a.sum(axis=0), stats_b.sum(axis=0)
    observed = float(finish(total_a[None, :])[0] - finish(total_b[None, :])[0])
    blocks = [masks] if isinstance(masks, np.ndarray) else masks
    delta = stats_b - stats_a
    nulls = []
    for block in blocks:
        moved = block @ delta
        nulls.append(finish(total_a[None, :] + moved) - finish(total_b[None, :] - moved))
    return observed, np.concatenate(nulls) if nulls else np.zeros(0)


def swap_moves(masks: np.ndarray | Iterator[np.ndarray], stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``masks @ stats[c]`` for every captioner in one pass over the mask blocks: the statistics each mask
    moves. The permutation distribution of a pair is then :func:`null_from_moves` (one matrix product per
    captioner instead of one per pair)."""
    blocks = [masks] if isinstance(masks, np.ndarray) else masks
    names = list(stats)
    widths = np.cumsum([0] + [stats[c].shape[1] for c in names])
    stacked = np.concatenate([stats[c] for c in names], axis=1)  # one matrix product per block
    parts = [block @ stacked for block in blocks]
    moved = np.concatenate(parts) if parts else np.zeros((0, stacked.shape[1]))
    return {c: moved[:, widths[k]:widths[k + 1]] for k, c in enumerate(names)}


def null_from_moves(stats_a: np.ndarray, stats_b: np.ndarray, moves_a: np.ndarray, moves_b: np.ndarray,
                    finish: Finish) -> tuple[float, np.ndarray]:
    """Same as :func:`permutation_null`, from :func:`swap_moves` of the two captioners."""
    total_a, total_b = stats_a.sum(axis=0), stats_b.sum(axis=0)
    observed = float(finish(total_a[None, :])[0] - finish(total_b[None, :])[0])
    moved = moves_b - moves_a
    return observed, finish(total_a[None, :] + moved) - finish(total_b[None, :] - moved)


def permutation_pvalues(observed: float, null: np.ndarray, exact: bool) -> dict[str, float]:
    """``{"less", "greater", "two-sided"}`` p-values of ``observed`` under ``null`` (scipy's conventions)."""
    if not np.isfinite(observed):
        return {"less": float("nan"), "greater": float("nan"), "two-sided": float("nan")}
    null = np.where(np.isfinite(null), null, 0.0)  # a degenerate permutation counts as no difference
    adjustment = 0 if exact else 1
    gamma = abs(np.finfo(np.float64).eps * 100 * observed)
    denom = len(null) + adjustment
    less = (np.count_nonzero(null <= observed + gamma) + adjustment) / denom
    greater = (np.count_nonzero(null >= observed - gamma) + adjustment) / denom
    return {"less": float(min(less, 1.0)), "greater": float(min(greater, 1.0)),
            "two-sided": float(min(2 * min(less, greater), 1.0))}


def holm(pvalues: np.ndarray | list[float]) -> np.ndarray:
    """Holm-adjusted p-values (family-wise error control); NaN entries stay NaN and are not counted.

    Example:
        >>> holm([0.01, 0.04, 0.03]).round(4).tolist()
        [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full_like(p, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = len(idx)
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out
