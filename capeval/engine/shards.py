"""One run split into shards of samples: what a worker computes per shard, and how the driver joins them.

A shard is a contiguous range of the run's samples (reference order) with every captioner's candidates for
them. A :class:`ShardWorker` (one per Ray worker; plain Python, testable without Ray) scores every metric on
a shard with the run's own metric classes, set up once per worker (models loaded once, one METEOR JVM), and
returns per-sample values plus what the corpus score needs:

Each worker calls the metric's own ``statistics(batch)`` (protocol v2) on its shard; the driver concatenates the
statistics tables and values and calls the metric's ``aggregate`` on the whole table, as the local engine does:

* ``mean`` metrics (ROUGE-L, judges): per-sample values are independent of the other samples.
* ``whole`` metrics (BERTScore, CAPTURE): one worker scores the whole run, as the local engine does. Their
  float32 encoders give results that depend on the shapes of the batches a sentence is encoded and matched in
  (measured: up to 3e-7 for BERTScore, 7e-8 for CAPTURE between a whole run and two halves), so sharding
  them would move scores; each runs on its own worker, in parallel with the sharded metrics, with as many
  torch threads as the local engine would use (the thread count moves them by as much: 1.8e-7 for BERTScore
  between 1 and 2 threads; Ray gives a one-CPU worker one thread).
* ``bleu`` and ``meteor``: per-sample values are independent; the corpus value comes from the summed
  statistics (the ``bleu`` and ``meteor`` aggregation rules), one METEOR JVM per worker.
* ``cider``: the corpus value's rule (``cider-d``) reads the whole table; per-sample values take a second
  pass: the first returns each captioner's reference n-gram document counts, the driver sums them over all
  shards (the document frequencies of the whole reference set, as a local run has them), the second scores
  the shard's samples under those totals. With the native kernels (the default) the first pass builds the
  shard's n-gram table, kept for the second, and its counts travel as numpy arrays keyed by each n-gram's
  words (:mod:`capeval.metrics.native.ngram_keys`); the second runs the native CIDEr-D kernel with the whole
  run's frequencies. With ``coco_impl=pycocoevalcap`` the counts are a Counter of n-gram tuples and the second
  pass runs pycocoevalcap's own CIDEr-D arithmetic.

A metric whose per-sample value depends on other samples in a way not listed here (pairwise comparison
against another captioner, proxy QA's ratio) is refused with a one-line error.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from capeval.errors import CapevalError
from capeval.io.align import Dataset
from capeval.metrics.base import Batch, Metric

MEAN_METRICS = frozenset({"rouge_l", "clair", "mllm_judge"})
WHOLE_METRICS = frozenset({"bertscore", "capture"})


class ShardingError(CapevalError):
    """A metric can't be split over shards."""


def shard_rule(metric: Metric) -> str:
    """How a metric is split: ``bleu``, ``meteor``, ``cider``, ``mean`` or ``whole`` (else a clear error)."""
    name = metric.name
    if name in ("bleu", "meteor", "cider"):
        return name
    if name in WHOLE_METRICS:
        return "whole"
    if name in MEAN_METRICS:
        return "mean"
    raise ShardingError(f"metric {name!r} can't be sharded by the Ray engine (its per-sample values depend on "
                        "other samples or captioners); run it with --engine local")


@dataclass
class Shard:
    """The inputs of one shard: aligned, normalised captions of its samples, and tokenisations of them made
    over the whole run (the PTB tokenizer's output for a caption can depend on the caption after it in its
    batch, so a shard tokenised alone could differ from a local run)."""

    index: int
    references: dict[str, list[str]]
    candidates: dict[str, dict[str, str]]
    images: dict[str, str] = field(default_factory=dict)
    tokenized: dict[str, dict[str, str]] = field(default_factory=dict)

    def dataset(self) -> Dataset:
        """The shard as a :class:`Dataset` (already validated by the driver)."""
        return Dataset(references=self.references, candidates=self.candidates, images=self.images)


def with_tokens(shard: Shard, tokenized: dict[str, dict[str, str]]) -> Shard:
    """The shard with the part of the run's tokenisations (``{tokenizer: {caption: tokens}}``) it uses."""
    texts = {"": None}
    for refs in shard.references.values():
        texts.update(dict.fromkeys(refs))
    for cands in shard.candidates.values():
        texts.update(dict.fromkeys(cands.values()))
    shard.tokenized = {name: {t: tok[t] for t in texts if t in tok} for name, tok in tokenized.items()}
    return shard


def split(dataset: Dataset, n_shards: int) -> list[Shard]:
    """``n_shards`` contiguous ranges of the dataset's samples (reference order), none empty."""
    ids = dataset.sample_ids
    n_shards = max(1, min(n_shards, len(ids)))
    bounds = np.linspace(0, len(ids), n_shards + 1).round().astype(int)
    shards = []
    for k in range(n_shards):
        part = ids[bounds[k]:bounds[k + 1]]
        cands = {cap: {i: c[i] for i in part if i in c} for cap, c in dataset.candidates.items()}
        images = {i: dataset.images[i] for i in part if i in dataset.images}
        shards.append(Shard(k, {i: dataset.references[i] for i in part}, cands, images))
    return shards


@dataclass
class Piece:
    """One (metric, captioner, seed) of one shard: per-sample values and what the corpus score needs."""

    values: dict[str, np.ndarray]
    failures: dict[str, int] = field(default_factory=dict)
    details: dict[str, list[str | None]] = field(default_factory=dict)
    usage: dict[str, float] = field(default_factory=dict)
    table: Any = None  # the metric's per-sample statistics (protocol v2), one row per sample


class _GlobalDfCider:
    """pycocoevalcap's CiderScorer with document frequencies and corpus size given from outside."""

    def __new__(cls, df: dict, n_docs: int):
        from pycocoevalcap.cider.cider_scorer import CiderScorer

        class Scorer(CiderScorer):
            @property
            def ref_len(self) -> float:  # compute_cider assigns log(len(crefs)); the whole set's is used
                return self._log_docs

            @ref_len.setter
            def ref_len(self, value: Any) -> None:
                pass

        scorer = Scorer(n=4, sigma=6.0)
        scorer._log_docs = np.log(float(n_docs))
        scorer.document_frequency = defaultdict(float, df)
        return scorer


def cider_doc_counts(refs_tokens: list[list[str]]) -> Counter:
    """Per-ngram number of samples whose references contain it (pycocoevalcap's ``compute_doc_freq``)."""
    from pycocoevalcap.cider.cider_scorer import cook_refs

    counts: Counter = Counter()
    for refs in refs_tokens:
        counts.update({ng for ref in cook_refs(refs) for ng in ref})
    return counts


def native_cider_values(table: Any, keys: np.ndarray, df: Any, n_docs: int) -> np.ndarray:
    """Per-sample CIDEr-D of a shard's n-gram table (and its n-gram keys) under the whole run's document counts
    (a :class:`~capeval.metrics.native.ngram_keys.DocCounts`) and sample count."""
    from capeval.metrics.native import cider_d

    if table.n_samples == 0:
        return np.zeros(0)
    return cider_d(table, df=df.lookup(keys), n_docs=n_docs)


def cider_values(cands: list[str], refs: list[list[str]], df: dict, n_docs: int) -> np.ndarray:
    """Per-sample CIDEr-D of tokenised captions under given document frequencies."""
    scorer = _GlobalDfCider(df, n_docs)
    for c, r in zip(cands, refs, strict=True):
        scorer += (c, r)
    return np.asarray(scorer.compute_cider(), dtype=float)


class ShardWorker:
    """Scores shards with every metric of a run; metrics are built and set up once per worker."""

    def __init__(self, metric_names: list[str], options: dict[str, Any], seeds: int,
                 shared: dict[str, Any] | None = None, torch_threads: int | None = None) -> None:
        from capeval.api import build_metrics

        self.options = dict(options)
        self.seeds = seeds
        self.metrics = build_metrics(metric_names, self.options)
        self.rules = {m.name: shard_rule(m) for m in self.metrics}
        self.shared = dict(shared or {})
        self.torch_threads = torch_threads
        self._set_up: set[str] = set()
        # per shard and captioner, what the second CIDEr-D pass needs: (n-gram table, keys) or (cands, refs)
        self._cider_state: dict[int, dict[str, tuple[Any, Any]]] = {}

    def _setup(self, metric: Metric, context: Any) -> None:
        """Set a metric up the first time this worker uses it (a model or a METEOR JVM starts once per worker)."""
        if metric.name in self._set_up:
            return
        if self.rules[metric.name] == "whole" and self.torch_threads:
            import torch

            torch.set_num_threads(self.torch_threads)
        metric.setup(context)
        self._set_up.add(metric.name)

    def run(self, shard: Shard, names: list[str] | None = None) -> dict[str, Any]:
        """First pass over a shard for the metrics ``names`` (default: every metric that is not ``whole``):
        ``{"pieces": {(metric, cap, seed): Piece}, "cider_df": {cap: DocCounts or Counter}, "cider_docs":
        {cap: n}, "tokenized": {tokenizer: {caption: tokens}}}`` (CIDEr-D's values come from :meth:`cider`)."""
        from capeval.context import RunContext

        dataset = shard.dataset()
        context = RunContext(dataset, self.options)
        context.shared = self.shared  # one dict per worker: models and clients are loaded once
        context.merge_tokenized(shard.tokenized)  # the run's tokenisation, as a local run has it
        if names is None:
            names = [m.name for m in self.metrics if self.rules[m.name] != "whole"]
        metrics = [m for m in self.metrics if m.name in names]
        for metric in metrics:
            self._setup(metric, context)
        pieces: dict[tuple[str, str, int], Piece] = {}
        out: dict[str, Any] = {"pieces": pieces, "cider_df": {}, "cider_docs": {}}
        for metric in metrics:
            rule = self.rules[metric.name]
            for cap in dataset.captioners:
                ids = dataset.ids_for(cap)
                if not ids:
                    continue
                batch = Batch(cap, ids, [dataset.candidates[cap][i] for i in ids],
                              [dataset.references[i] for i in ids], [dataset.images.get(i) for i in ids])
                if rule == "cider":
                    pieces[(metric.name, cap, 0)], out["cider_df"][cap] = self._cider_first(
                        metric, shard.index, batch, context)
                    out["cider_docs"][cap] = len(ids)
                    continue
                for seed in range(self.seeds) if metric.stochastic else (0,):
                    st = metric.statistics(batch, context, seed=seed)
                    pieces[(metric.name, cap, seed)] = Piece(
                        {k: np.asarray(v, dtype=float) for k, v in st.values.items()}, dict(st.failures),
                        dict(st.details), dict(st.usage), table=st.table.reset_index(drop=True))
        out["tokenized"] = {name: dict(tok) for name, tok in context._tokenized.items() if name not in shard.tokenized}
        return out

    def _cider_first(self, metric: Metric, index: int, batch: Batch, context: Any) -> tuple[Piece, Any]:
        """First CIDEr-D pass of one captioner on a shard: its statistics table (values to come from the second
        pass) and its reference document counts; keeps what the second pass needs."""
        from capeval.metrics.coco import _native_table, _tokenized, cider_statistics

        cands, refs = _tokenized(batch, context)
        pending = np.full(len(cands), np.nan)
        piece = Piece({"cider": pending}, table=cider_statistics(cands, refs, pending))
        if getattr(metric, "impl", "native") == "native":
            from capeval.metrics.native.ngram_keys import DocCounts, ngram_keys

            table = _native_table(batch, context)
            keys = ngram_keys(table)
            counts = DocCounts.of_table(table, keys)
            self._cider_state.setdefault(index, {})[batch.captioner] = (table, keys)
        else:
            counts = cider_doc_counts(refs)
            self._cider_state.setdefault(index, {})[batch.captioner] = (cands, refs)
        return piece, counts

    def cider(self, shard: Shard, df: dict[str, Any], docs: dict[str, int]) -> dict[str, np.ndarray]:
        """Second pass: per-sample CIDEr-D of a shard under the whole run's frequencies ``df[cap]`` (native
        :class:`~capeval.metrics.native.ngram_keys.DocCounts`, or a dict of n-gram tuples for pycocoevalcap's
        arithmetic) and sample counts, from what :meth:`run` kept, or tokenised again when this worker was
        restarted in between."""
        from capeval.metrics.native.ngram_keys import DocCounts

        kept = self._cider_state.pop(shard.index, {})
        dataset = shard.dataset()
        tok = None
        out: dict[str, np.ndarray] = {}
        for cap in dataset.captioners:
            ids = dataset.ids_for(cap)
            if not ids:
                continue
            native = isinstance(df[cap], DocCounts)
            state = kept.get(cap)
            if state is None or native != isinstance(state[1], np.ndarray):
                if tok is None:
                    from capeval.context import RunContext

                    context = RunContext(dataset, self.options)
                    context.merge_tokenized(shard.tokenized)
                    tok = context.tokenized("ptb")
                cands = [tok[dataset.candidates[cap][i]] for i in ids]
                refs = [[tok[r] for r in dataset.references[i]] for i in ids]
                if native:
                    from capeval.metrics.native import encode
                    from capeval.metrics.native.ngram_keys import ngram_keys

                    table = encode(cands, refs)
                    state = (table, ngram_keys(table))
                else:
                    state = (cands, refs)
            if native:
                out[cap] = native_cider_values(state[0], state[1], df[cap], docs[cap])
            else:
                out[cap] = cider_values(state[0], state[1], df[cap], docs[cap])
        return out

    def peak_rss(self) -> int:
        """This worker process's peak resident memory in bytes (for benchmarks)."""
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024

    def close(self) -> None:
        """Close every metric and the METEOR JVM."""
        for metric in self.metrics:
            metric.close()


def local_torch_threads() -> int | None:
    """The torch thread count the local engine would use here (None when torch is not installed)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    from capeval.metrics.bertscore_model import _limit_torch_threads

    _limit_torch_threads()
    return int(torch.get_num_threads())


def cider_totals(firsts: list[dict[str, Any]], captioners: list[str]) -> tuple[dict[str, Any], dict[str, int]]:
    """Per captioner, the whole run's CIDEr-D document counts and sample count from the shards' first passes."""
    df = {cap: merge_frequencies([f["cider_df"][cap] for f in firsts if cap in f["cider_df"]]) for cap in captioners}
    docs = {cap: sum(f["cider_docs"].get(cap, 0) for f in firsts) for cap in captioners}
    return df, docs


def merge_frequencies(parts: list[Any]) -> Any:
    """The whole run's CIDEr-D document counts from the shards' (native arrays or pycocoevalcap Counters)."""
    from capeval.metrics.native.ngram_keys import DocCounts

    if parts and isinstance(parts[0], DocCounts):
        return DocCounts.merge(parts)
    return merge_counts(parts)


def merge_counts(parts: list[Counter]) -> dict:
    """Sum document counts of several shards (as floats, like pycocoevalcap's defaultdict(float))."""
    total: Counter = Counter()
    for p in parts:
        total.update(p)
    return {k: float(v) for k, v in total.items()}

