"""METEOR 1.5 (Denkowski & Lavie, 2014) corpus scores recomputed from per-segment sufficient statistics.

METEOR's corpus score (the ``EVAL`` aggregate pycocoevalcap reports) is not a mean of segment scores: Java sums
the 23 statistics of every segment (``MeteorStats.addStats``; a segment that matches its reference perfectly in
one chunk adds no chunks) and scores the sums (``MeteorScorer.computeMetrics``). This module gets each
segment's statistics from the same jar (``SCORE`` lines, as pycocoevalcap sends them) and reproduces that
arithmetic in numpy so any number of resamples is scored at once; :meth:`MeteorStatsProcess.evaluate` asks the
JVM for its own aggregate, which the tests compare against.

Statistics columns (Meteor's ``MeteorStats.toString``): test length, reference length, test/reference
function words, then for each of 4 modules (exact, stem, synonym, paraphrase) test content, reference content,
test function, reference function matches; chunks; test and reference word matches.
"""

from __future__ import annotations

import numpy as np

from capeval.metrics.meteor_process import MeteorCrashed, MeteorProcess, score_line

N_STATS = 23
N_MODULES = 4
# `-l en` defaults of Meteor 1.5 (task "default"): alpha, beta, gamma, delta and the module weights.
ALPHA, BETA, GAMMA, DELTA = 0.85, 0.2, 0.6, 0.75
MODULE_WEIGHTS = np.array([1.0, 0.6, 0.8, 0.6])
_TC = np.arange(N_MODULES) * 4 + 4  # test content matches per module
_RC, _TF, _RF = _TC + 1, _TC + 2, _TC + 3
_CHUNKS, _TWM, _RWM = 20, 21, 22


def _totals(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (stats[..., _TC].sum(axis=-1) + stats[..., _TF].sum(axis=-1),
            stats[..., _RC].sum(axis=-1) + stats[..., _RF].sum(axis=-1))


def aggregable(stats: np.ndarray) -> np.ndarray:
    """Per-segment statistics ready to be summed: chunks zeroed where Java's ``addStats`` skips them
    (test and reference fully matched in a single chunk)."""
    stats = np.array(stats, dtype=np.float64, copy=True)
    test_total, ref_total = _totals(stats)
    perfect = (test_total == stats[:, 0]) & (ref_total == stats[:, 1]) & (stats[:, _CHUNKS] == 1.0)
    stats[perfect, _CHUNKS] = 0.0
    return stats


def meteor_from_totals(totals: np.ndarray) -> np.ndarray:
    """METEOR of summed statistics ``(B, 23)`` -> ``(B,)``, as ``MeteorScorer.computeMetrics`` scores them."""
    t = np.atleast_2d(np.asarray(totals, dtype=np.float64))
    test_total, ref_total = _totals(t)
    with np.errstate(invalid="ignore", divide="ignore"):
        test_wlen = DELTA * (t[:, 0] - t[:, 2]) + (1.0 - DELTA) * t[:, 2]
        ref_wlen = DELTA * (t[:, 1] - t[:, 3]) + (1.0 - DELTA) * t[:, 3]
        test_wm = (t[:, _TC] * MODULE_WEIGHTS * DELTA).sum(axis=1) + (t[:, _TF] * MODULE_WEIGHTS * (1 - DELTA)).sum(1)
        ref_wm = (t[:, _RC] * MODULE_WEIGHTS * DELTA).sum(axis=1) + (t[:, _RF] * MODULE_WEIGHTS * (1 - DELTA)).sum(1)
        precision = test_wm / test_wlen
        recall = ref_wm / ref_wlen
        fmean = 1.0 / ((1.0 - ALPHA) / precision + ALPHA / recall)
        perfect = (test_total == t[:, 0]) & (ref_total == t[:, 1]) & (t[:, _CHUNKS] == 1.0)
        frag = np.where(perfect, 0.0, t[:, _CHUNKS] / ((t[:, _TWM] + t[:, _RWM]) / 2.0))
        score = fmean * (1.0 - GAMMA * np.power(frag, BETA))
    return np.where(np.isnan(score), 0.0, np.maximum(score, 0.0))


class MeteorStatsProcess(MeteorProcess):
    """The supervised METEOR JVM, asked for segment statistics instead of scores."""

    def statistics(self, hypotheses: list[str], references: list[list[str]]) -> np.ndarray:
        """``(n, 23)`` statistics of each (tokenised) hypothesis against its best reference."""
        if not hypotheses:
            return np.zeros((0, N_STATS))
        with self._lock:
            lines = [score_line(h, r) for h, r in zip(hypotheses, references, strict=True)]
            try:
                replies = self._exchange(lines, len(lines))
            except MeteorCrashed:
                self.close()
                replies = self._exchange(lines, len(lines))
        rows = np.array([[float(x) for x in line.split()] for line in replies], dtype=np.float64)
        if rows.shape != (len(hypotheses), N_STATS):
            raise MeteorCrashed(f"METEOR returned statistics of shape {rows.shape}, expected "
                                f"({len(hypotheses)}, {N_STATS})")
        return rows

    def evaluate(self, stats: np.ndarray) -> tuple[list[float], float]:
        """Java's own per-segment and aggregate scores of statistics rows (an ``EVAL`` line)."""
        texts = [" ".join(repr(float(x)) for x in row) for row in np.asarray(stats)]
        with self._lock:
            replies = self._exchange(["EVAL ||| " + " ||| ".join(texts)], len(texts) + 1)
        return [float(x) for x in replies[:-1]], float(replies[-1])
