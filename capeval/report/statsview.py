"""Read-only view of a ``stats.json`` document (see :mod:`capeval.stats`) shaped for the report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class StatsView:
    """Confidence intervals, ranks and pairwise significance from a stats document."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.params = doc.get("params", {})
        self.metrics: dict[str, Any] = doc.get("metrics", {})

    @property
    def alpha(self) -> float:
        """The significance level (1 - confidence of the intervals)."""
        return float(self.params.get("alpha", 0.05))

    @property
    def ci_label(self) -> str:
        """What the bar charts' error bars are."""
        return f"error bars: {100 * (1 - self.alpha):.0f}% bootstrap CI over images"

    def _cap(self, captioner: str, metric: str) -> dict[str, Any]:
        return self.metrics.get(metric, {}).get("captioners", {}).get(captioner, {}) or {}

    def ci(self, captioner: str, metric: str) -> tuple[float, float] | None:
        """``(low, high)`` or None when the interval is not available."""
        entry = self._cap(captioner, metric)
        lo, hi = entry.get("ci_low"), entry.get("ci_high")
        return None if lo is None or hi is None else (float(lo), float(hi))

    def rank(self, captioner: str, metric: str) -> tuple[int, str] | None:
        """``(rank, range)``: the significance rank and the range of ranks the tests allow (``"1–3"``, or
        ``"1"`` when fixed); None when unranked."""
        entry = self._cap(captioner, metric)
        rank, span = entry.get("rank"), entry.get("rank_range")
        if rank is None:
            return None
        if span and span[0] != span[1]:
            return int(rank), f"{span[0]}–{span[1]}"
        return int(rank), str(rank)

    def significance_matrix(self, captioners: Sequence[str], metric: str) -> np.ndarray | None:
        """Symmetric boolean matrix of Holm-significant pairs, or None when the metric has no tests."""
        pairs = self.metrics.get(metric, {}).get("pairs", [])
        if not pairs:
            return None
        index = {c: k for k, c in enumerate(captioners)}
        out = np.zeros((len(captioners), len(captioners)), dtype=bool)
        for p in pairs:
            i, j = index.get(p.get("a")), index.get(p.get("b"))
            if i is not None and j is not None and p.get("significant"):
                out[i, j] = out[j, i] = True
        return out

    def pair_rows(self, metric: str) -> list[dict[str, Any]]:
        """The metric's pairwise tests as stored."""
        return list(self.metrics.get(metric, {}).get("pairs", []))

    def describe(self) -> list[str]:
        """Lines saying how the numbers were obtained, plus the document's warnings."""
        p = self.params
        conf = 100 * (1 - self.alpha)
        lines = [
            f"CI: {conf:.0f}% {p.get('ci', 'bootstrap')} ({p.get('n_boot', '?')} resamples, seed "
            f"{p.get('seed', '?')}); corpus-level metrics are recomputed on each resample.",
            f"Significance: {p.get('test', 'paired test')}, {p.get('n_perm', '?')} permutations, "
            f"{p.get('correction', 'Holm')}, α = {self.alpha:g}.",
        ]
        unavailable = [m for m, e in self.metrics.items() if e.get("method") == "unavailable"]
        if unavailable:
            lines.append(f"No intervals or tests for: {', '.join(unavailable)} (see the warnings).")
        lines.extend(f"Warning: {w}" for w in self.doc.get("warnings", []))
        return lines
