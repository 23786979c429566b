"""Rankings with ties for differences that are not significant (the "significance clusters" used in WMT
findings): a captioner's rank is one plus the number of captioners significantly better than it.

Two captioners whose difference is not significant can still get different ranks when a third one separates
them (A ~ B, B ~ C, A > C gives A=1, B=1, C=2), so each captioner also gets the range of ranks consistent with
the tests: ``[1 + #significantly better, n - #significantly worse]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def significance_ranks(
    values: Mapping[str, float],
    significant: Mapping[tuple[str, str], bool],
    higher_is_better: bool = True,
) -> dict[str, dict[str, object]]:
    """``{captioner: {"rank": int, "rank_range": [lo, hi], "better_than": [...]}}``.

    ``significant[(a, b)]`` (either order) says whether ``a`` and ``b`` differ significantly; the direction of
    a significant difference comes from ``values``. A captioner whose value is not finite gets rank ``None``.

    Example:
        >>> r = significance_ranks({"a": 3.0, "b": 2.0, "c": 1.0}, {("a", "b"): False, ("b", "c"): False,
        ...                         ("a", "c"): True})
        >>> [r[k]["rank"] for k in "abc"]
        [1, 1, 2]
    """
    names = [k for k, v in values.items() if v is not None and v == v]
    sign = 1.0 if higher_is_better else -1.0

    def sig(a: str, b: str) -> bool:
        return bool(significant.get((a, b), significant.get((b, a), False)))

    out: dict[str, dict[str, object]] = {}
    for a in names:
        better = [b for b in names if b != a and sig(a, b) and sign * (values[b] - values[a]) > 0]
        worse = [b for b in names if b != a and sig(a, b) and sign * (values[b] - values[a]) < 0]
        out[a] = {"rank": 1 + len(better), "rank_range": [1 + len(better), len(names) - len(worse)],
                  "better_than": sorted(worse, key=names.index)}
    for k in values:
        if k not in out:
            out[k] = {"rank": None, "rank_range": None, "better_than": []}
    return out


def order_by_rank(ranks: Mapping[str, Mapping[str, object]], values: Mapping[str, float],
                  higher_is_better: bool = True) -> Sequence[str]:
    """Captioners by rank, then by value (best first); unranked ones last."""
    sign = -1.0 if higher_is_better else 1.0

    def key(name: str) -> tuple[int, float]:
        rank = ranks[name]["rank"]
        v = values.get(name)
        return (rank if isinstance(rank, int) else 10**9, sign * v if v is not None and v == v else float("inf"))

    return sorted(ranks, key=key)
