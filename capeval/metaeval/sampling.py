"""Seeded subsets of human-judgment corpora for meta-evaluation runs that can't afford every row (LLM judges).

A subset is drawn in whole units so that the statistics stay honest and the judge's prompt-prefix cache
works: Flickr8k rows are taken image by image (all ratings of all candidates of an image), Pascal-50S pairs
pair by pair, stratified over the four categories. The order is a ``numpy.random.default_rng(seed)``
permutation, so ``--limit N --sample-seed S`` names one subset exactly and a larger ``N`` extends a smaller
one (the first images of the permutation are shared).
"""

from __future__ import annotations

import numpy as np

from capeval.errors import CapevalError
from capeval.metaeval.loaders import PairsData, RatingsData


def _check(limit: int) -> None:
    if limit < 1:
        raise CapevalError(f"--limit must be >= 1, got {limit}")


def sample_ratings(data: RatingsData, limit: int, seed: int = 0) -> RatingsData:
    """At least ``limit`` rows of a Flickr8k corpus: whole images in a seeded random order.

    Example:
        >>> from capeval.metaeval.loaders import RatedCaption, RatingsData
        >>> rows = [RatedCaption(k, c, 1.0) for k in "abc" for c in ("x", "y")]
        >>> sub = sample_ratings(RatingsData("-", rows, {k: ["r"] for k in "abc"}), 3, seed=0)
        >>> len(sub.rows), len({r.key for r in sub.rows})
        (4, 2)
    """
    _check(limit)
    keys = list(dict.fromkeys(r.key for r in data.rows))
    order = [keys[i] for i in np.random.default_rng(seed).permutation(len(keys))]
    count: dict[str, int] = {}
    for r in data.rows:
        count[r.key] = count.get(r.key, 0) + 1
    chosen: set[str] = set()
    total = 0
    for key in order:
        if total >= limit:
            break
        chosen.add(key)
        total += count[key]
    rows = [r for r in data.rows if r.key in chosen]
    return RatingsData(path=data.path, rows=rows, references={k: data.references[k] for k in chosen},
                       images={k: v for k, v in data.images.items() if k in chosen}, dropped_nan=0)


def sample_pairs(data: PairsData, limit: int, seed: int = 0) -> PairsData:
    """``limit`` Pascal-50S pairs (all when fewer), as equal a share of each category as possible.

    Example:
        >>> from capeval.metaeval.loaders import CaptionPair, PairsData
        >>> pairs = [CaptionPair(c, i, ("a", "b"), 0, ("r",)) for c in ("HC", "HI") for i in range(5)]
        >>> sub = sample_pairs(PairsData("-", pairs), 4, seed=1)
        >>> [p.category for p in sub.pairs]
        ['HC', 'HC', 'HI', 'HI']
    """
    _check(limit)
    rng = np.random.default_rng(seed)
    by_cat: dict[str, list] = {}
    for p in data.pairs:
        by_cat.setdefault(p.category, []).append(p)
    cats = list(by_cat)
    quota = {c: 0 for c in cats}
    left = min(limit, len(data.pairs))
    while left:  # round robin over categories that still have pairs
        progressed = False
        for c in cats:
            if left and quota[c] < len(by_cat[c]):
                quota[c] += 1
                left -= 1
                progressed = True
        if not progressed:
            break
    picked = []
    for c in cats:
        order = rng.permutation(len(by_cat[c]))[: quota[c]]
        picked.extend(by_cat[c][i] for i in sorted(order))
    return PairsData(path=data.path, pairs=picked)
