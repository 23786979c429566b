"""Metric values recomputed under image multiplicities: the resampling rule of each kind of metric.

Every metric of a run becomes a :class:`Source`; a :class:`Group` is that metric for some captioners on one
ordered list of images, and gives the metric of each captioner for any bootstrap multiplicities
(:meth:`Group.resample`) plus per-image statistics for the paired permutation test (:meth:`Group.perm_stats`).

Rules (the ``method`` recorded in ``stats.json``):

* ``bleu-corpus``: corpus BLEU-n from summed per-image sufficient statistics (pycocoevalcap's arithmetic,
  closest reference length), captions re-tokenised once with the PTB tokenizer.
* ``meteor-corpus``: METEOR's Java aggregate recomputed from per-image statistics (:mod:`capeval.stats.meteor`).
* ``cider-df-resampled``: CIDEr-D with document frequencies recomputed from the resampled images' references
  (:mod:`capeval.stats.cider`).
* ``mean``: the mean of the per-image values that are not NaN (failed samples are left out, as in the run).
* ``mean-seeds``: for ``S > 1`` seeds, the run reports the mean over seeds of each seed's mean; a resample
  draws images *and* seeds with replacement (a two-way bootstrap), so the interval carries both the
  image-sampling and the seed (judge sampling) variance.
"""

from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from capeval.errors import CapevalError
from capeval.stats.paired import Finish, mean_finish, mean_stats
from capeval.text import normalize_whitespace

BLEU_METRICS = {"bleu_1": 1, "bleu_2": 2, "bleu_3": 3, "bleu_4": 4}


@dataclass
class StatsInput:
    """What the statistics read from one run (or from two runs joined for ``capeval check``)."""

    references: dict[str, list[str]]
    captions: dict[str, dict[str, str]]  # captioner -> sample_id -> caption
    scores: pd.DataFrame  # captioner, sample_id, metric, seed, value
    corpus: pd.DataFrame  # captioner, metric, seed, value
    metric_info: dict[str, dict[str, Any]]  # output key -> info of the metric that produced it (+ "metric")
    signatures: dict[str, str]
    captioners: list[str]

    @classmethod
    def from_run(cls, run: Any) -> StatsInput:
        """Build from a :class:`capeval.rundir.Run`."""
        captions = {str(cap): dict(zip(grp["sample_id"].astype(str), grp["caption"], strict=True))
                    for cap, grp in run.captions.groupby("captioner", sort=False)}
        return cls(
            references={str(k): list(v) for k, v in run.references.items()},
            captions=captions,
            scores=run.scores,
            corpus=run.corpus,
            metric_info=output_info(run.manifest.get("metrics", {})),
            signatures=dict(run.signatures),
            captioners=list(run.captioners),
        )

    def metrics(self) -> list[str]:
        """Output metric keys in run order."""
        return list(dict.fromkeys(self.corpus["metric"].astype(str)))


def output_info(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Manifest ``metrics`` (keyed by metric name) re-keyed by output (``bleu`` -> ``bleu_1``..``bleu_4``)."""
    out = {}
    for name, info in metrics.items():
        for key in info.get("outputs", [name]):
            out[key] = {**info, "metric": name}
    return out


def metric_kind(metric: str, info: dict[str, Any], signature: str) -> str:
    """The resampling rule of an output metric (see the module docstring); ``unsupported`` when a
    corpus-level metric has no known rule."""
    coco = "impl:pycocoevalcap" in signature or "impl:native" in signature  # native = same numbers (issue 17)
    if metric in BLEU_METRICS and info.get("metric") == "bleu" and coco:
        return "bleu-corpus"
    if metric == "meteor" and coco:
        return "meteor-corpus"
    if metric == "cider" and coco and "df:refs" in signature:
        return "cider-df-resampled"
    if info.get("corpus_level"):
        return "unsupported"
    return "mean"


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


# --- sufficient-statistics metrics (BLEU, METEOR) ---------------------------------------------------------


class StatsGroup(Group):
    """A corpus metric ``finish(sum of per-image statistics)``."""

    def __init__(self, captioners: Sequence[str], ids: Sequence[str], stats: dict[str, np.ndarray],
                 finish: Finish) -> None:
        super().__init__(captioners, ids)
        self.stats = stats
        self.finish = finish  # type: ignore[assignment]

    def resample(self, weights: np.ndarray, seed_counts: np.ndarray | None = None) -> dict[str, np.ndarray]:
        return {cap: self.finish(weights @ self.stats[cap]) for cap in self.captioners}

    def perm_stats(self, captioner: str) -> np.ndarray:
        return self.stats[captioner]


def bleu_finish(order: int) -> Finish:
    """Corpus BLEU-``order`` of summed statistics (columns as ``capeval.metrics.coco.BLEU_STAT_COLUMNS``),
    vectorised over rows, with the arithmetic of pycocoevalcap's ``BleuScorer.compute_score``."""
    small, tiny = 1e-9, 1e-15

    def finish(totals: np.ndarray) -> np.ndarray:
        t = np.atleast_2d(totals)
        bleu = np.ones(t.shape[0])
        for k in range(order):
            bleu = bleu * ((t[:, 6 + k] + tiny) / (t[:, 2 + k] + small))
        score = bleu ** (1.0 / order)
        ratio = (t[:, 0] + tiny) / (t[:, 1] + small)
        with np.errstate(divide="ignore", over="ignore"):
            penalty = np.where(ratio < 1, np.exp(1 - 1 / np.where(ratio < 1, ratio, 1.0)), 1.0)
        return score * penalty

    return finish


class StatsSource(Source):
    """Per-image sufficient statistics of every captioner, keyed by sample id."""

    def __init__(self, kind: str, stats: dict[str, dict[str, np.ndarray]], finish: Finish) -> None:
        self.kind = kind
        self.stats = stats
        self.finish = finish

    def group(self, captioners: Sequence[str], ids: Sequence[str]) -> Group:
        stats = {cap: np.stack([self.stats[cap][i] for i in ids]) if ids else np.zeros((0, 1))
                 for cap in captioners}
        return StatsGroup(captioners, ids, stats, self.finish)


# --- CIDEr-D ----------------------------------------------------------------------------------------------


class CiderGroup(Group):
    """CIDEr-D with document frequencies from the resampled images' references."""

    def __init__(self, captioners: Sequence[str], ids: Sequence[str], resampler: Any) -> None:
        super().__init__(captioners, ids)
        self.resampler = resampler
        self._per_image: dict[str, np.ndarray] | None = None

    def resample(self, weights: np.ndarray, seed_counts: np.ndarray | None = None) -> dict[str, np.ndarray]:
        return self.resampler.corpus(weights)

    def perm_stats(self, captioner: str) -> np.ndarray:
        # Swapping captions between two captioners leaves the images, hence the document frequencies, alone:
        # the permuted corpus score is the mean of swapped per-image scores.
        if self._per_image is None:
            self._per_image = self.resampler.per_image()
        return mean_stats(self._per_image[captioner])


class CiderSource(Source):
    """CIDEr-D from tokenised references and captions."""

    kind = "cider-df-resampled"

    def __init__(self, refs: dict[str, list[str]], caps: dict[str, dict[str, str]]) -> None:
        self.refs = refs
        self.caps = caps

    def group(self, captioners: Sequence[str], ids: Sequence[str]) -> Group:
        from capeval.stats.cider import CiderResampler

        resampler = CiderResampler([self.refs[i] for i in ids],
                                   {cap: [self.caps[cap][i] for i in ids] for cap in captioners})
        return CiderGroup(captioners, ids, resampler)


# --- building sources from a run --------------------------------------------------------------------------


@dataclass
class Resources:
    """Expensive things shared by every metric of one computation: PTB tokens, the METEOR JVM.

    :meth:`prefetch_meteor` starts tokenisation and the METEOR statistics in a background thread (the JVM
    spends most of its time loading its paraphrase tables) while the other metrics are resampled.
    """

    data: StatsInput
    _tokens: dict[str, str] | None = None
    _stats: dict[str, Any] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _prefetch: threading.Thread | None = None
    _prefetch_error: BaseException | None = None

    def tokens(self) -> dict[str, str]:
        """``{normalised caption: PTB tokens}`` for every caption and reference of the input."""
        with self._lock:
            if self._tokens is None:
                from capeval.tokenizers.ptb import tokenize_ptb

                texts = [r for refs in self.data.references.values() for r in refs]
                texts += [c for caps in self.data.captions.values() for c in caps.values()]
                self._tokens = tokenize_ptb(texts)
            return self._tokens

    def prefetch_meteor(self) -> None:
        """Compute the METEOR statistics in a background thread; :meth:`meteor_stats` waits for it."""

        def work() -> None:
            try:
                self._meteor_stats()
            except BaseException as exc:  # re-raised by meteor_stats() in the caller's thread
                self._prefetch_error = exc

        self._prefetch = threading.Thread(target=work, name="capeval-meteor-stats", daemon=True)
        self._prefetch.start()

    def tokenised(self) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
        """Tokenised references ``{id: [...]}`` and captions ``{captioner: {id: ...}}``."""
        with self._lock:
            return self._tokenised()

    def _tokenised(self) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
        if "tokenised" not in self._stats:
            tok = self.tokens()
            refs = {i: [tok[normalize_whitespace(r)] for r in rs] for i, rs in self.data.references.items()}
            caps = {c: {i: tok[normalize_whitespace(t)] for i, t in d.items()} for c, d in self.data.captions.items()}
            self._stats["tokenised"] = (refs, caps)
        return self._stats["tokenised"]

    def _per_image(self, name: str, compute: Any) -> dict[str, dict[str, np.ndarray]]:
        if name not in self._stats:  # callers hold no lock: METEOR runs while BLEU is computed
            refs, caps = self.tokenised()
            out = {}
            for cap, texts in caps.items():
                ids = [i for i in texts if i in refs]
                rows = compute([texts[i] for i in ids], [refs[i] for i in ids])
                out[cap] = dict(zip(ids, rows, strict=True))
            self._stats[name] = out
        return self._stats[name]

    def bleu_stats(self) -> dict[str, dict[str, np.ndarray]]:
        """Per-image BLEU statistics of every captioner."""
        from capeval.metrics.coco import Bleu

        return self._per_image("bleu", Bleu.sufficient_statistics)

    def meteor_stats(self) -> dict[str, dict[str, np.ndarray]]:
        """Per-image METEOR statistics (chunks zeroed as Java's aggregate does) of every captioner."""
        if self._prefetch is not None:
            self._prefetch.join()
            self._prefetch = None
            if self._prefetch_error is not None:
                error, self._prefetch_error = self._prefetch_error, None
                raise error
        return self._meteor_stats()

    def _meteor_stats(self) -> dict[str, dict[str, np.ndarray]]:
        from capeval.stats.meteor import MeteorStatsProcess, aggregable

        def compute(hyps: list[str], refs: list[list[str]]) -> np.ndarray:
            proc = self._stats.get("meteor_process")
            if proc is None:
                proc = self._stats["meteor_process"] = MeteorStatsProcess()
            return aggregable(proc.statistics(hyps, refs))

        return self._per_image("meteor", compute)

    def close(self) -> None:
        """Stop the METEOR JVM if one was started."""
        if self._prefetch is not None:
            self._prefetch.join()
            self._prefetch = None
        proc = self._stats.pop("meteor_process", None)
        if proc is not None:
            proc.close()


def build_source(kind: str, metric: str, data: StatsInput, resources: Resources) -> Source:
    """The :class:`Source` of one output metric; may raise :class:`CapevalError` (e.g. no Java)."""
    if kind == "mean":
        return MeanSource(data.scores[data.scores["metric"] == metric])
    if kind == "bleu-corpus":
        return StatsSource(kind, resources.bleu_stats(), bleu_finish(BLEU_METRICS[metric]))
    if kind == "meteor-corpus":
        from capeval.stats.meteor import meteor_from_totals

        return StatsSource(kind, resources.meteor_stats(), meteor_from_totals)
    if kind == "cider-df-resampled":
        refs, caps = resources.tokenised()
        return CiderSource(refs, caps)
    raise CapevalError(f"{metric}: corpus-level metric with no resampling rule in capeval.stats")


def close_enough(a: float, b: float, tol: float = 1e-6) -> bool:
    """Whether a recomputed value matches the run's (both NaN counts as a match)."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return not math.isfinite(a) and not math.isfinite(b)
    return abs(a - b) <= tol * max(1.0, abs(b))
