"""The protocol every capeval metric implements (modelled on sacrebleu's metric base class).

A metric turns one captioner's aligned candidates and references into per-sample sufficient statistics
(:meth:`Metric.statistics`) and names one aggregation rule (:attr:`Metric.aggregation`, see
:mod:`capeval.aggregation`) that turns any multiset of those statistics into a corpus value
(:meth:`Metric.aggregate`). The run stores the statistics and the rule's name, so every later step (corpus
values, bootstrap resamples, permutation tests, ``capeval check``, sharded runs) aggregates the same way
without scoring again. It declares what it needs (references, images, an LLM), whether it is stochastic (then
it runs once per seed), whether it can run on this machine, its typed options and a reproducibility signature
built from the options that can move a score.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from capeval.options import MetricOptions, NoOptions
from capeval.version import __version__

NEEDS = ("references", "images", "llm")
log = logging.getLogger("capeval")


@dataclass(frozen=True)
class Availability:
    """Whether a metric can run here, and if not, why."""

    ok: bool
    reason: str = ""


@dataclass
class Batch:
    """One captioner's aligned inputs: ``candidates[i]`` is scored against ``references[i]``."""

    captioner: str
    sample_ids: list[str]
    candidates: list[str]
    references: list[list[str]]
    images: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sample_ids)


@dataclass(frozen=True)
class OutputInfo:
    """How an output is shown and compared: one home for these facts (tables, report, stats, board read it).

    ``scale`` is the factor tables show it with (100 for 0-1 metrics shown as percentages, 1 for CIDEr-D).
    ``aggregation`` is ``"corpus"`` for corpus-level outputs (BLEU, METEOR, CIDEr-D) and ``"mean"`` for means of
    per-sample values.
    """

    key: str
    display: str
    scale: float = 1.0
    higher_is_better: bool = True
    aggregation: str = "mean"

    def as_dict(self) -> dict[str, Any]:
        """The manifest form."""
        return {"display": self.display, "scale": self.scale, "higher_is_better": self.higher_is_better,
                "aggregation": self.aggregation}


@dataclass
class MetricStatistics:
    """One captioner x seed of one metric: per-sample sufficient statistics and per-sample values.

    ``table`` has one row per sample (in ``sample_ids`` order) with the columns the metric's aggregation rule
    reads; ``values[key]`` holds one float per sample for each output (NaN where the sample could not be
    scored, e.g. an unparsable judge reply; counted in ``failures``); ``details`` optional per-sample strings
    (judge reasons, raw replies); ``usage`` optional counters (tokens, requests, cost) summed into the run.
    """

    sample_ids: list[str]
    table: pd.DataFrame
    values: dict[str, np.ndarray]
    failures: dict[str, int] = field(default_factory=dict)
    details: dict[str, list[str | None]] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of_values(cls, sample_ids: list[str], values: dict[str, np.ndarray], **extra: Any) -> MetricStatistics:
        """Statistics of a ``mean`` metric: the per-sample values are the statistics.

        Example:
            >>> s = MetricStatistics.of_values(["a", "b"], {"len": np.array([1.0, 3.0])})
            >>> list(s.table.columns), s.table["len"].tolist()
            (['len'], [1.0, 3.0])
        """
        values = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
        return cls(list(sample_ids), pd.DataFrame(values), values, **extra)


@dataclass
class MetricOutput:
    """Per-sample values and corpus values of one batch (what :meth:`Metric.score` returns)."""

    per_sample: dict[str, np.ndarray]
    corpus: dict[str, float]
    failures: dict[str, int] = field(default_factory=dict)
    details: dict[str, list[str | None]] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)


def format_signature(name: str, params: dict[str, Any]) -> str:
    """sacrebleu-style signature: ``name|key:value|...|capeval:VERSION``; booleans print yes/no."""
    parts = [name]
    for key, value in params.items():
        if isinstance(value, bool):
            value = "yes" if value else "no"
        parts.append(f"{key}:{value}")
    parts.append(f"capeval:{__version__}")
    return "|".join(parts)


def nrefs_label(references: list[list[str]]) -> str:
    """The ``nrefs`` signature field: the reference count, or ``var`` when it differs between samples."""
    counts = {len(r) for r in references}
    return str(counts.pop()) if len(counts) == 1 else "var"


class Metric:
    """Base class of every metric. Subclasses set the class attributes and implement :meth:`statistics`."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset({"references"})
    outputs: ClassVar[tuple[str, ...]] = ()
    stochastic: ClassVar[bool] = False
    aggregation: ClassVar[str] = "mean"
    higher_is_better: ClassVar[bool] = True
    scale: ClassVar[float] = 1.0  # how tables show its outputs (100: printed x100, as papers print BLEU)
    display_names: ClassVar[dict[str, str]] = {}
    Options: ClassVar[type[MetricOptions]] = NoOptions
    # Scored in a background thread while the other metrics compute (its work is in another process, e.g.
    # METEOR's JVM); the results are collected in the usual order, so nothing else changes.
    background: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.opts = self.Options.from_dict(options)

    @property
    def corpus_level(self) -> bool:
        """Whether the corpus value is not a mean of per-sample values (BLEU, METEOR, CIDEr-D)."""
        return self.aggregation not in ("mean", "ratio")

    @classmethod
    def option_keys(cls) -> frozenset[str]:
        """Every ``--option`` key this metric reads (an unknown key is refused with "did you mean")."""
        return cls.Options.keys() | getattr(cls, "option_keys_", frozenset())

    @classmethod
    def availability(cls) -> Availability:
        """Whether this metric can run on this machine; override to check dependencies."""
        return Availability(True)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Metric:
        """Build the metric from the run's option dict (each metric picks the keys its :attr:`Options` declare)."""
        return cls(**options)

    @classmethod
    def output_info(cls, key: str) -> OutputInfo:
        """Display name, scale, direction and aggregation kind of one output."""
        return OutputInfo(key, cls.display_names.get(key, key), cls.scale, cls.higher_is_better,
                          "mean" if cls.aggregation in ("mean", "ratio") else "corpus")

    def signature_params(self, references: list[list[str]]) -> dict[str, Any]:
        """Named parameters that can move a score, shown in the signature: the reference count, then the
        metric's score-moving options."""
        params: dict[str, Any] = {"nrefs": nrefs_label(references)}
        params.update(self.opts.signature_fields())
        return params

    def _full_params(self, references: list[list[str]]) -> dict[str, Any]:
        return {**self.signature_params(references), "v": self.version}

    def signatures(self, references: list[list[str]]) -> dict[str, str]:
        """Signature string for each output key: the score-moving parameters, the metric's version ``v``,
        capeval's version last."""
        params = self._full_params(references)
        return {key: format_signature(key, params) for key in self.outputs}

    def signatures_json(self, references: list[list[str]]) -> dict[str, dict[str, Any]]:
        """The signatures as JSON objects (the manifest stores both forms)."""
        params = self._full_params(references)
        return {key: {"metric": key, **params, "capeval": __version__} for key in self.outputs}

    def setup(self, context: Any) -> None:  # noqa: B027 - optional hook
        """Prepare for scoring (start a JVM, load a model); called once per run."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`setup` acquired."""

    def prefetch(self, batches: Sequence[Batch], context: Any, seed: int = 0) -> int:
        """Optional hook: start, as one schedule, the work the :meth:`statistics` calls of these captioners'
        batches will need with this seed (a judge metric sends one image's captioners back to back); the run
        calls it before those calls, which then return exactly what they would without it. Returns how many
        units of work were started (0: nothing to do)."""
        return 0

    def statistics(self, batch: Batch, context: Any, seed: int = 0) -> MetricStatistics:
        """Per-sample statistics and values of one captioner's batch (every metric implements it).

        A metric written for capeval 0.1.0's protocol (only ``score()`` returning per-sample and corpus values)
        still runs: its per-sample values become the statistics of a mean, with a warning when its own corpus
        value was not that mean.
        """
        if type(self).score is Metric.score:
            raise NotImplementedError(f"metric {self.name!r} implements neither statistics() nor score()")
        out = self.score(batch, context, seed)
        st = MetricStatistics.of_values(list(batch.sample_ids), out.per_sample, failures=dict(out.failures),
                                        details=dict(out.details), usage=dict(out.usage))
        for key, value in out.corpus.items():
            mean = float(np.nanmean(st.values[key])) if np.isfinite(st.values[key]).any() else float("nan")
            if not (value == mean or (np.isnan(value) and np.isnan(mean))):
                log.warning("metric %s uses capeval 0.1.0's score() protocol: its corpus %s (%r) is replaced by "
                            "the mean of its per-sample values (%r); implement statistics() and an aggregation "
                            "rule to keep it", self.name, key, value, mean)
        return st

    def aggregate(self, table: pd.DataFrame, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Corpus value ``(B,)`` of each output for sample multiplicities ``weights`` ``(B, n)`` (``None``:
        every sample once), by this metric's aggregation rule."""
        from capeval.aggregation import aggregate

        return aggregate(self.aggregation, table, self.outputs, weights)

    def score(self, batch: Batch, context: Any, seed: int = 0) -> MetricOutput:
        """Convenience: :meth:`statistics`, then :meth:`aggregate` over the batch (0.1.0 metrics override it)."""
        st = self.statistics(batch, context, seed)
        corpus = {k: float(v[0]) for k, v in self.aggregate(st.table).items()}
        return MetricOutput(st.values, corpus, st.failures, st.details, st.usage)
