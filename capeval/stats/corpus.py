"""Metric values under image multiplicities, from the statistics the run stored (no re-scoring).

Every output metric of a run becomes a :class:`Source`; a :class:`Group` is that metric for some captioners on
one ordered list of images, and gives the metric of each captioner for any bootstrap multiplicities
(:meth:`Group.resample`) plus per-image statistics for the paired permutation test (:meth:`Group.perm_stats`).
The arithmetic is the metric's own aggregation rule (:mod:`capeval.aggregation`), named in the manifest:
the value ``capeval score`` reported is the same function at multiplicity one.

The ``method`` recorded in ``stats.json`` is the rule's name (``bleu``, ``meteor``, ``cider-d``, ``ratio``,
``mean``), or ``mean-seeds`` for a mean over ``S > 1`` seeds: the run reports the mean over seeds of each
seed's value, and a resample draws images *and* seeds with replacement (a two-way bootstrap), so the interval
carries both the image-sampling and the seed (judge sampling) variance.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from capeval.aggregation import Finish, Rule, get_rule, mean_finish, mean_stats
from capeval.errors import CapevalError


@dataclass
class StatsInput:
    """What the statistics read from one run (or from two runs joined for ``capeval check``)."""

    references: dict[str, list[str]]
    scores: pd.DataFrame  # captioner, sample_id, metric, seed, value
    corpus: pd.DataFrame  # captioner, metric, seed, value
    metric_info: dict[str, dict[str, Any]]  # output key -> info of the metric that produced it (+ "metric")
    signatures: dict[str, str]
    captioners: list[str]
    statistics: Callable[[str], pd.DataFrame]  # metric name -> its statistics table

    @classmethod
    def from_run(cls, run: Any) -> StatsInput:
        """Build from a :class:`capeval.rundir.Run`."""
        return cls(
            references={str(k): list(v) for k, v in run.references.items()},
            scores=run.scores,
            corpus=run.corpus,
            metric_info=output_info(run.manifest.get("metrics", {})),
            signatures=dict(run.signatures),
            captioners=list(run.captioners),
            statistics=run.statistics,
        )

    def metrics(self) -> list[str]:
        """Output metric keys in run order."""
        return list(dict.fromkeys(self.corpus["metric"].astype(str)))

    def rule(self, output: str) -> str | None:
        """The aggregation rule of an output (None: the run does not say, e.g. an unknown 0.1.0 metric)."""
        return self.metric_info.get(output, {}).get("aggregation")


def output_info(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Manifest ``metrics`` (keyed by metric name) re-keyed by output (``bleu`` -> ``bleu_1``..``bleu_4``)."""
    out = {}
    for name, info in metrics.items():
        for key in info.get("outputs", [name]):
            out[key] = {**info, "metric": name}
    return out


class Group(ABC):
    """One metric for some captioners on one ordered list of images."""

    def __init__(self, captioners: Sequence[str], ids: Sequence[str]) -> None:
        self.captioners = list(captioners)
        self.ids = list(ids)

    seeds: int = 1

    @abstractmethod
    def resample(self, weights: np.ndarray, seed_counts: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """``{captioner: (B,)}`` metric values for image multiplicities ``weights`` ``(B, n)``."""

    @abstractmethod
    def perm_stats(self, captioner: str) -> np.ndarray:
        """``(n, k)`` per-image statistics whose sums :attr:`finish` turns into the metric."""

    finish: Finish = staticmethod(mean_finish)

    def point(self) -> dict[str, float]:
        """The metric of each captioner on every image once."""
        ones = np.ones((1, len(self.ids)))
        counts = np.ones((1, self.seeds)) if self.seeds > 1 else None
        return {k: float(v[0]) for k, v in self.resample(ones, counts).items()}

    def n_valid(self, captioner: str) -> int:
        """Images with a usable value for this captioner."""
        return len(self.ids)


class Source(ABC):
    """A metric over a whole run; :meth:`group` restricts it to captioners and images."""

    kind: str = ""

    @abstractmethod
    def group(self, captioners: Sequence[str], ids: Sequence[str]) -> Group:
        """The metric for ``captioners`` on ``ids`` (each captioner must cover every id)."""


# --- means (per-sample metrics, judges) -------------------------------------------------------------------


class MeanGroup(Group):
    """Mean of finite per-image values; with several seeds, mean over (resampled) seeds of per-seed means."""

    def __init__(self, captioners: Sequence[str], ids: Sequence[str], values: dict[str, np.ndarray]) -> None:
        super().__init__(captioners, ids)
        self.values = values  # captioner -> (n, S)
        self.seeds = next(iter(values.values())).shape[1] if values else 1

    def resample(self, weights: np.ndarray, seed_counts: np.ndarray | None = None) -> dict[str, np.ndarray]:
        out = {}
        for cap in self.captioners:
            v = self.values[cap]
            finite = np.isfinite(v)
            sums = weights @ np.where(finite, v, 0.0)
            counts = weights @ finite.astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                per_seed = sums / counts  # (B, S)
            if self.seeds == 1:
                out[cap] = per_seed[:, 0]
                continue
            c = np.ones_like(per_seed) if seed_counts is None else np.asarray(seed_counts, dtype=np.float64)
            ok = np.isfinite(per_seed)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[cap] = (np.where(ok, per_seed, 0.0) * c).sum(axis=1) / (c * ok).sum(axis=1)
        return out

    def perm_stats(self, captioner: str) -> np.ndarray:
        v = self.values[captioner]
        if v.shape[1] == 1:
            return mean_stats(v[:, 0])
        finite = np.isfinite(v)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_image = np.where(finite, v, 0.0).sum(axis=1) / finite.sum(axis=1)
        return mean_stats(per_image)

    def n_valid(self, captioner: str) -> int:
        return int(np.isfinite(self.values[captioner]).any(axis=1).sum())


class MeanSource(Source):
    """A per-sample-mean metric (ROUGE-L, BERTScore, CAPTURE, judges...), possibly with several seeds."""

    kind = "mean"

    def __init__(self, scores: pd.DataFrame) -> None:
        self.tables: dict[str, pd.DataFrame] = {}
        for cap, grp in scores.groupby("captioner", sort=False):
            self.tables[str(cap)] = grp.pivot_table(index="sample_id", columns="seed", values="value",
                                                    aggfunc="first", dropna=False)
        seeds = {t.shape[1] for t in self.tables.values()}
        self.seeds = max(seeds) if seeds else 1
        if self.seeds > 1:
            self.kind = "mean-seeds"

    def group(self, captioners: Sequence[str], ids: Sequence[str]) -> Group:
        values = {}
        for cap in captioners:
            table = self.tables[cap].reindex(index=list(ids))
            values[cap] = table.to_numpy(dtype=np.float64)
        return MeanGroup(captioners, ids, values)


# --- every other rule (BLEU, METEOR, CIDEr-D, ratios) ----------------------------------------------------


class RuleGroup(Group):
    """An aggregation rule over per-seed statistics tables aligned on ``ids``."""

    def __init__(self, rule: Rule, output: str, captioners: Sequence[str], ids: Sequence[str],
                 tables: dict[str, list[pd.DataFrame]]) -> None:
        super().__init__(captioners, ids)
        self.rule, self.output, self.tables = rule, output, tables
        self.seeds = max((len(t) for t in tables.values()), default=1)
        self._finish: Finish | None = None

    def resample(self, weights: np.ndarray, seed_counts: np.ndarray | None = None) -> dict[str, np.ndarray]:
        per_seed = [self.rule.corpus({c: self.tables[c][s] for c in self.captioners}, self.output, weights)
                    for s in range(self.seeds)]
        if self.seeds == 1:
            return per_seed[0]
        out = {}
        for cap in self.captioners:
            v = np.column_stack([p[cap] for p in per_seed])  # (B, S)
            c = np.ones_like(v) if seed_counts is None else np.asarray(seed_counts, dtype=np.float64)
            ok = np.isfinite(v)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[cap] = (np.where(ok, v, 0.0) * c).sum(axis=1) / (c * ok).sum(axis=1)
        return out

    def perm_stats(self, captioner: str) -> np.ndarray:
        stats = None
        for table in self.tables[captioner]:  # several seeds: statistics pooled over seeds
            st, self._finish = self.rule.additive(table, self.output)
            stats = st if stats is None else stats + st
        return stats if stats is not None else np.zeros((0, 1))

    def finish(self, totals: np.ndarray) -> np.ndarray:  # type: ignore[override]
        if self._finish is None:
            self.perm_stats(self.captioners[0])
        assert self._finish is not None
        return self._finish(totals)

    def n_valid(self, captioner: str) -> int:
        return self.rule.n_valid(self.tables[captioner][0], self.output) if self.tables[captioner] else 0


class RuleSource(Source):
    """One output's statistics table (captioner, seed, sample_id, rule columns) under its rule."""

    def __init__(self, rule: Rule, output: str, table: pd.DataFrame) -> None:
        self.rule, self.output, self.kind = rule, output, rule.name
        self.tables: dict[str, list[pd.DataFrame]] = {}
        for (cap, _seed), sub in table.groupby(["captioner", "seed"], sort=True):
            self.tables.setdefault(str(cap), []).append(sub.set_index(sub["sample_id"].astype(str)))

    def group(self, captioners: Sequence[str], ids: Sequence[str]) -> Group:
        tables = {cap: [t.reindex(list(ids)) for t in self.tables.get(cap, [])] for cap in captioners}
        return RuleGroup(self.rule, self.output, captioners, ids, tables)


def build_source(output: str, data: StatsInput) -> Source:
    """The :class:`Source` of one output metric, from the run's stored statistics; a :class:`CapevalError`
    when the run has none for it (the message says why)."""
    name = data.rule(output)
    if name is None:
        raise CapevalError(f"{output}: the run names no aggregation rule for it")
    rule = get_rule(name)
    if name == "mean":
        return MeanSource(data.scores[data.scores["metric"] == output])
    metric = data.metric_info.get(output, {}).get("metric", output)
    return RuleSource(rule, output, data.statistics(metric))
