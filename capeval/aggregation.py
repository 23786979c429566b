"""Aggregation rules: how a metric's per-sample statistics become its corpus value (sacrebleu's design).

Every metric names one rule (``Metric.aggregation``), and the name is stored in the run's manifest. The same
rule computes the corpus value in ``capeval score``, in every bootstrap resample and permutation of
``capeval stats`` and ``capeval check``, and on the driver of a sharded run, from the statistics table the
metric wrote (``statistics/<metric>.parquet``): nothing after scoring tokenises, starts a JVM or loads a model.

A rule works on several captioners at once, each with a statistics table over the same ordered samples, and
on sample multiplicities ``weights`` of shape ``(B, n)`` (``None``: every sample once). It also gives, per
captioner, additive per-sample statistics and a ``finish`` function for the paired permutation test (which
swaps two captioners' statistics on some samples and recomputes both corpus values).

Rules:

* ``mean``: the mean of the finite per-sample values (column named as the output).
* ``ratio``: ``sum(<out>__num) / sum(<out>__den)`` (proxy QA: points over answered questions); derived outputs
  ``<a>/<b>`` ratios and differences are declared by the metric (:data:`RATIO_DERIVED`).
* ``bleu``: corpus BLEU-n from summed ``testlen, reflen, guess_1..4, correct_1..4`` (pycocoevalcap's
  ``BleuScorer.compute_score`` arithmetic, operation for operation).
* ``meteor``: METEOR 1.5's aggregate of summed segment statistics (``MeteorScorer.computeMetrics``, operation
  for operation).
* ``cider-d``: CIDEr-D with document frequencies from the references of the weighted samples (columns
  ``candidate``, ``references``: PTB tokens); with every sample once, the per-sample values (column ``cider``,
  computed with the full set's document frequencies) are averaged as pycocoevalcap does.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

import numpy as np
import pandas as pd

from capeval.errors import CapevalError

Finish = Callable[[np.ndarray], np.ndarray]  # (P, k) summed statistics -> (P,) corpus values
Tables = Mapping[str, pd.DataFrame]  # captioner -> statistics table, rows aligned on the same samples

BLEU_COLUMNS = ("testlen", "reflen", "guess_1", "guess_2", "guess_3", "guess_4",
                "correct_1", "correct_2", "correct_3", "correct_4")
METEOR_COLUMNS = tuple(f"s{k}" for k in range(23))


def _pyfunc(fn: Callable[[float], float], x: np.ndarray) -> np.ndarray:
    """``fn`` applied element by element with Python's ``math`` (libm), so that a vectorised rule gives the
    bits a scalar reference implementation gives (numpy's SIMD ``exp``/``power`` may differ in the last ulp)."""
    flat = np.asarray(x, dtype=np.float64).ravel()
    return np.fromiter((fn(float(v)) for v in flat), dtype=np.float64, count=flat.size).reshape(np.shape(x))


def _weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    if weights is None:
        return np.ones((1, n))
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != n:
        raise ValueError(f"weights must have shape (B, {n}), got {w.shape}")
    return w


def mean_finish(totals: np.ndarray) -> np.ndarray:
    """``finish`` of a mean: per-sample statistics are ``[value, 1]`` (``[0, 0]`` for a missing value)."""
    t = np.atleast_2d(totals)
    with np.errstate(invalid="ignore", divide="ignore"):
        return t[:, 0] / t[:, 1]


def mean_stats(values: np.ndarray) -> np.ndarray:
    """``(n, 2)`` statistics ``[value, 1]`` of a mean, ``[0, 0]`` where the value is NaN."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    return np.column_stack([np.where(finite, values, 0.0), finite.astype(np.float64)])


class Rule(ABC):
    """An aggregation rule (see the module docstring)."""

    name: ClassVar[str] = ""

    @abstractmethod
    def corpus(self, tables: Tables, output: str, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """``{captioner: (B,)}`` corpus values of ``output`` under sample multiplicities ``weights``."""

    @abstractmethod
    def additive(self, table: pd.DataFrame, output: str) -> tuple[np.ndarray, Finish]:
        """``(n, k)`` per-sample statistics whose column sums ``finish`` turns into the corpus value."""

    def n_valid(self, table: pd.DataFrame, output: str) -> int:
        """Samples that count towards the corpus value."""
        return len(table)


class MeanRule(Rule):
    """Mean of the finite per-sample values."""

    name = "mean"

    def corpus(self, tables: Tables, output: str, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
        out = {}
        for cap, table in tables.items():
            v = table[output].to_numpy(dtype=np.float64)
            if weights is None:  # np.nanmean: the exact bits today's metrics reported
                out[cap] = np.array([float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")])
                continue
            w = _weights(weights, len(v))
            finite = np.isfinite(v)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[cap] = (w @ np.where(finite, v, 0.0)) / (w @ finite.astype(np.float64))
        return out

    def additive(self, table: pd.DataFrame, output: str) -> tuple[np.ndarray, Finish]:
        return mean_stats(table[output].to_numpy(dtype=np.float64)), mean_finish

    def n_valid(self, table: pd.DataFrame, output: str) -> int:
        return int(np.isfinite(table[output].to_numpy(dtype=np.float64)).sum())


# Derived ratio outputs: output -> (operation, a, b) over two other outputs' corpus values.
RATIO_DERIVED: dict[str, tuple[str, str, str]] = {
    "proxy_qa_utility": ("div", "proxy_qa", "proxy_qa_image"),
    "proxy_qa_gap": ("sub", "proxy_qa_image", "proxy_qa"),
}


def _ratio_finish(op: str | None) -> Finish:
    def finish(totals: np.ndarray) -> np.ndarray:
        t = np.atleast_2d(totals)
        with np.errstate(invalid="ignore", divide="ignore"):
            a = t[:, 0] / t[:, 1]
            if op is None:
                return a
            b = t[:, 2] / t[:, 3]
            if op == "sub":
                return a - b
            return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)

    return finish


class RatioRule(Rule):
    """``sum(num) / sum(den)`` per output; derived outputs combine two such ratios."""

    name = "ratio"

    def _columns(self, output: str) -> tuple[str | None, list[str]]:
        if output in RATIO_DERIVED:
            op, a, b = RATIO_DERIVED[output]
            return op, [f"{a}__num", f"{a}__den", f"{b}__num", f"{b}__den"]
        return None, [f"{output}__num", f"{output}__den"]

    def corpus(self, tables: Tables, output: str, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
        op, cols = self._columns(output)
        finish = _ratio_finish(op)
        out = {}
        for cap, table in tables.items():
            stats = table[cols].to_numpy(dtype=np.float64)
            totals = stats.sum(axis=0)[None, :] if weights is None else _weights(weights, len(stats)) @ stats
            out[cap] = finish(totals)
        return out

    def additive(self, table: pd.DataFrame, output: str) -> tuple[np.ndarray, Finish]:
        op, cols = self._columns(output)
        return table[cols].to_numpy(dtype=np.float64), _ratio_finish(op)

    def n_valid(self, table: pd.DataFrame, output: str) -> int:
        _, cols = self._columns(output)
        return int((table[cols[1]].to_numpy(dtype=np.float64) > 0).sum())


def bleu_from_totals(totals: np.ndarray, order: int) -> np.ndarray:
    """Corpus BLEU-``order`` of summed statistics ``(B, 10)`` (columns :data:`BLEU_COLUMNS`) -> ``(B,)``.

    ``BleuScorer.compute_score``'s operations in its order (``tiny`` = 1e-15, ``small`` = 1e-9, brevity
    penalty ``exp(1 - 1/ratio)`` when the candidates are shorter), so the bits equal pycocoevalcap's.

    Example:
        >>> float(bleu_from_totals(np.array([[4, 4, 4, 3, 2, 1, 4, 3, 2, 1]]), 4)[0]) > 0.99
        True
    """
    small, tiny = 1e-9, 1e-15
    t = np.atleast_2d(np.asarray(totals, dtype=np.float64))
    bleu = np.ones(t.shape[0])
    for k in range(order):
        bleu = bleu * ((t[:, 6 + k] + tiny) / (t[:, 2 + k] + small))
    score = _pyfunc(lambda b: b ** (1.0 / order), bleu)
    ratio = (t[:, 0] + tiny) / (t[:, 1] + small)
    short = ratio < 1
    if short.any():
        penalty = _pyfunc(lambda r: math.exp(1 - 1 / r), ratio[short])
        score[short] = score[short] * penalty
    return score


class BleuRule(Rule):
    """Corpus BLEU-n from summed sufficient statistics (``bleu_1`` .. ``bleu_4``)."""

    name = "bleu"

    @staticmethod
    def _order(output: str) -> int:
        try:
            return int(output.rsplit("_", 1)[1])
        except (IndexError, ValueError):
            raise CapevalError(f"bleu rule: output {output!r} is not bleu_N") from None

    def corpus(self, tables: Tables, output: str, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
        order = self._order(output)
        out = {}
        for cap, table in tables.items():
            stats = table[list(BLEU_COLUMNS)].to_numpy(dtype=np.float64)
            totals = stats.sum(axis=0)[None, :] if weights is None else _weights(weights, len(stats)) @ stats
            out[cap] = bleu_from_totals(totals, order)
        return out

    def additive(self, table: pd.DataFrame, output: str) -> tuple[np.ndarray, Finish]:
        order = self._order(output)
        return table[list(BLEU_COLUMNS)].to_numpy(dtype=np.float64), lambda t: bleu_from_totals(t, order)


# METEOR 1.5 `-l en -norm` parameters (task "default"): alpha, beta, gamma, delta and the module weights of
# exact, stem, synonym and paraphrase matching.
METEOR_ALPHA, METEOR_BETA, METEOR_GAMMA, METEOR_DELTA = 0.85, 0.2, 0.6, 0.75
METEOR_WEIGHTS = (1.0, 0.6, 0.8, 0.6)


def meteor_aggregable(stats: np.ndarray) -> np.ndarray:
    """Segment statistics ready to be summed: chunks zeroed where Java's ``MeteorStats.addStats`` skips them
    (test and reference fully matched in a single chunk)."""
    stats = np.array(stats, dtype=np.float64, copy=True)
    test_total, ref_total = _meteor_totals(stats)
    perfect = (test_total == stats[:, 0]) & (ref_total == stats[:, 1]) & (stats[:, 20] == 1.0)
    stats[perfect, 20] = 0.0
    return stats


def _meteor_totals(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    test, ref = np.zeros(t.shape[0]), np.zeros(t.shape[0])
    for i in range(4):  # Java: testTotalMatches += content(i); += function(i), module by module
        test = test + t[:, 4 + 4 * i]
        test = test + t[:, 6 + 4 * i]
        ref = ref + t[:, 5 + 4 * i]
        ref = ref + t[:, 7 + 4 * i]
    return test, ref


def meteor_from_totals(totals: np.ndarray) -> np.ndarray:
    """METEOR of summed statistics ``(B, 23)`` -> ``(B,)``: ``MeteorScorer.computeMetrics``'s operations in
    its order (``Math.pow`` as libm's ``pow``), so the bits equal the jar's aggregate."""
    t = np.atleast_2d(np.asarray(totals, dtype=np.float64))
    delta, alpha = METEOR_DELTA, METEOR_ALPHA
    with np.errstate(invalid="ignore", divide="ignore"):
        test_wlen = (delta * (t[:, 0] - t[:, 2])) + ((1.0 - delta) * t[:, 2])
        ref_wlen = (delta * (t[:, 1] - t[:, 3])) + ((1.0 - delta) * t[:, 3])
        test_wm, ref_wm = np.zeros(t.shape[0]), np.zeros(t.shape[0])
        for i, w in enumerate(METEOR_WEIGHTS):
            test_wm = test_wm + t[:, 4 + 4 * i] * w * delta
        for i, w in enumerate(METEOR_WEIGHTS):
            ref_wm = ref_wm + t[:, 5 + 4 * i] * w * delta
        for i, w in enumerate(METEOR_WEIGHTS):
            test_wm = test_wm + t[:, 6 + 4 * i] * w * (1.0 - delta)
        for i, w in enumerate(METEOR_WEIGHTS):
            ref_wm = ref_wm + t[:, 7 + 4 * i] * w * (1.0 - delta)
        precision = test_wm / test_wlen
        recall = ref_wm / ref_wlen
        fmean = 1.0 / (((1.0 - alpha) / precision) + (alpha / recall))
        test_total, ref_total = _meteor_totals(t)
        perfect = (test_total == t[:, 0]) & (ref_total == t[:, 1]) & (t[:, 20] == 1.0)
        frag = np.where(perfect, 0.0, t[:, 20] / ((t[:, 21] + t[:, 22]) / 2))
        penalty = METEOR_GAMMA * _pyfunc(lambda f: math.pow(f, METEOR_BETA) if math.isfinite(f) else math.nan,
                                          frag)
        score = fmean * (1.0 - penalty)
    return np.where(np.isnan(score), 0.0, np.maximum(score, 0.0))


class MeteorRule(Rule):
    """METEOR's Java aggregate of summed segment statistics."""

    name = "meteor"

    def corpus(self, tables: Tables, output: str, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
        out = {}
        for cap, table in tables.items():
            stats = table[list(METEOR_COLUMNS)].to_numpy(dtype=np.float64)
            if not len(stats):
                out[cap] = np.full(1 if weights is None else len(weights), np.nan)
                continue
            totals = stats.sum(axis=0)[None, :] if weights is None else _weights(weights, len(stats)) @ stats
            out[cap] = meteor_from_totals(totals)
        return out

    def additive(self, table: pd.DataFrame, output: str) -> tuple[np.ndarray, Finish]:
        return table[list(METEOR_COLUMNS)].to_numpy(dtype=np.float64), meteor_from_totals


class CiderRule(Rule):
    """CIDEr-D with document frequencies from the weighted samples' references."""

    name = "cider-d"

    def corpus(self, tables: Tables, output: str, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
        if not tables:
            return {}
        first = next(iter(tables.values()))
        n = len(first)
        if n == 0:
            return {cap: np.full(1 if weights is None else len(weights), np.nan) for cap in tables}
        if weights is None:
            # Every sample once: the document frequencies are those the per-sample values were computed with.
            return {cap: np.array([float(np.mean(t[output].to_numpy(dtype=np.float64)))])
                    for cap, t in tables.items()}
        from capeval.stats.cider import CiderResampler

        refs = [list(r) for r in first["references"]]
        resampler = CiderResampler(refs, {cap: list(t["candidate"]) for cap, t in tables.items()})
        return resampler.corpus(_weights(weights, n))

    def additive(self, table: pd.DataFrame, output: str) -> tuple[np.ndarray, Finish]:
        # Swapping two captioners' captions on some samples leaves the references, hence the document
        # frequencies, alone: the permuted corpus value is the mean of swapped per-sample values.
        return mean_stats(table[output].to_numpy(dtype=np.float64)), mean_finish


def mean_over_seeds(values: Sequence[float] | np.ndarray) -> tuple[float, float | None]:
    """The one mean over seeds: the mean of the finite per-seed corpus values and their sample standard
    deviation (ddof=1; None with fewer than two).

    Example:
        >>> m, s = mean_over_seeds([0.5, 0.7, float("nan")])
        >>> round(m, 6), round(s, 6)
        (0.6, 0.141421)
    """
    v = np.asarray(values, dtype=np.float64)
    ok = v[np.isfinite(v)]
    mean = float(np.mean(ok)) if ok.size else float("nan")
    return mean, (float(np.std(ok, ddof=1)) if ok.size > 1 else None)


RULES: dict[str, Rule] = {r.name: r for r in (MeanRule(), RatioRule(), BleuRule(), MeteorRule(), CiderRule())}


def register_rule(rule: Rule) -> Rule:
    """Register a third-party aggregation rule under ``rule.name`` (a metric then names it in
    :attr:`~capeval.metrics.base.Metric.aggregation`); a name already taken is an error."""
    if rule.name in RULES and RULES[rule.name] is not rule:
        raise CapevalError(f"aggregation rule {rule.name!r} is already registered")
    RULES[rule.name] = rule
    return rule


def get_rule(name: str) -> Rule:
    """The rule registered under ``name``; an unknown name is an error naming the known ones."""
    try:
        return RULES[name]
    except KeyError:
        raise CapevalError(f"unknown aggregation rule {name!r} (known: {', '.join(RULES)})") from None


def aggregate(rule: str, table: pd.DataFrame, outputs: Sequence[str],
              weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Corpus values ``{output: (B,)}`` of one statistics table under ``rule``.

    Example:
        >>> t = pd.DataFrame({"rouge_l": [0.5, 1.0, float("nan")]})
        >>> float(aggregate("mean", t, ["rouge_l"])["rouge_l"][0])
        0.75
    """
    r = get_rule(rule)
    return {out: r.corpus({"": table}, out, weights)[""] for out in outputs}
