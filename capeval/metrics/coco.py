"""The COCO caption metrics (Chen et al., 2015) through pycocoevalcap 1.2's scorer classes.

Each metric scores PTB-tokenised captions (tokenised once per run, see :mod:`capeval.tokenizers.ptb`) with the
pycocoevalcap class that ``COCOEvalCap.evaluate()`` uses, called in capeval's own loop, so the numbers are
pycocoevalcap's. ``COCOEvalCap.evaluate()`` itself is not used: it always builds SPICE, which downloads
Stanford CoreNLP.

Empty candidates are passed to the scorers as the empty string: BLEU and CIDEr-D score them ~0 (and corpus
BLEU counts their reference length in the brevity penalty), ROUGE-L and METEOR score them 0.

CIDEr-D's document frequencies come from the references of the samples one captioner is scored on (as
pycocoevalcap computes them), so a captioner's score never depends on the other captioners in the run.

BLEU, ROUGE-L and CIDEr-D run by default on capeval's native vectorised kernels
(:mod:`capeval.metrics.native`), which give pycocoevalcap's numbers bit for bit (tests/test_coco_native.py);
``coco_impl=pycocoevalcap`` runs pycocoevalcap's scorer classes instead. The signature's ``impl`` field says
which ran. METEOR and SPICE always run pycocoevalcap's jars.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import pandas as pd

from capeval.aggregation import BLEU_COLUMNS, METEOR_COLUMNS, meteor_aggregable
from capeval.errors import InputError
from capeval.java import java_problem, pycocoevalcap_dir
from capeval.metrics.base import Availability, Batch, Metric, MetricStatistics
from capeval.metrics.meteor_process import MeteorProcess
from capeval.options import MetricOptions


@lru_cache(maxsize=1)
def _impl() -> str:
    try:
        return f"pycocoevalcap-{version('pycocoevalcap')}"
    except PackageNotFoundError:
        return "pycocoevalcap-missing"


NATIVE_IMPL = "native-1"  # bump when a change of capeval.metrics.native could move a number
COCO_IMPLS = ("native", "pycocoevalcap")
_TABLE_BUDGET = 300_000  # samples of n-gram tables kept for reuse by BLEU, ROUGE-L and CIDEr-D


@dataclasses.dataclass(frozen=True)
class CocoOptions(MetricOptions):
    """BLEU, ROUGE-L and CIDEr-D: which implementation scores (the signature's ``impl`` field records it)."""

    coco_impl: str = "native"


def coco_impl(options: dict[str, Any]) -> str:
    """The ``coco_impl`` option: ``native`` (default) or ``pycocoevalcap``."""
    impl = str(options.get("coco_impl", "native")).strip().lower()
    if impl not in COCO_IMPLS:
        raise InputError(f"option coco_impl must be one of {', '.join(COCO_IMPLS)}, got {options['coco_impl']!r}")
    return impl


def _native_table(batch: Batch, context: Any):
    """The n-gram table of one captioner's PTB-tokenised batch, built once per run for all native metrics."""
    from capeval.metrics.native import encode

    cache: dict[str, Any] = context.shared.setdefault("coco_native_tables", {})
    key = batch.captioner
    hit = cache.get(key)
    if hit is not None and hit[0] == batch.sample_ids:
        return hit[1]
    cands, refs = _tokenized(batch, context)
    table = encode(cands, refs)
    while cache and sum(t.n_samples for _, t in cache.values()) + table.n_samples > _TABLE_BUDGET:
        cache.pop(next(iter(cache)))
    cache[key] = (list(batch.sample_ids), table)
    return table


def _coco_availability(jar: str | None = None) -> Availability:
    base = pycocoevalcap_dir()
    if base is None:
        return Availability(False, "pycocoevalcap is not installed (pip install pycocoevalcap==1.2)")
    problem = java_problem()
    if problem:
        return Availability(False, problem)
    if jar and not (base / jar).exists():
        return Availability(False, f"{base / jar} is missing")
    return Availability(True)


def _tokenized(batch: Batch, context: Any) -> tuple[list[str], list[list[str]]]:
    tok = context.tokenized("ptb")
    return [tok[c] for c in batch.candidates], [[tok[r] for r in refs] for refs in batch.references]


class _CocoMetric(Metric):
    needs = frozenset({"references"})
    jar: str | None = "tokenizer/stanford-corenlp-3.4.1.jar"
    has_native: bool = False  # a native kernel exists (BLEU, ROUGE-L, CIDEr-D)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.impl = coco_impl(options) if self.has_native else "pycocoevalcap"

    @classmethod
    def availability(cls) -> Availability:
        return _coco_availability(cls.jar)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Metric:
        return cls(**({"coco_impl": options["coco_impl"]} if cls.has_native and "coco_impl" in options else {}))

    def signature_params(self, references: list[list[str]]) -> dict[str, Any]:
        params = super().signature_params(references)
        params.update(self.extra_params())
        params.update({"tok": "ptb", "impl": NATIVE_IMPL if self.impl == "native" else _impl()})
        return params

    def extra_params(self) -> dict[str, Any]:
        return {}


class Bleu(_CocoMetric):
    """BLEU-1..4 (Papineni et al., 2002) as pycocoevalcap computes it: 'closest' reference length."""

    description = "BLEU-1..4, pycocoevalcap's BleuScorer arithmetic (closest reference length)"
    outputs = ("bleu_1", "bleu_2", "bleu_3", "bleu_4")
    aggregation = "bleu"
    scale = 100.0
    display_names = {f"bleu_{k}": f"BLEU-{k}" for k in range(1, 5)}

    has_native = True
    Options = CocoOptions

    def statistics(self, batch: Batch, context: Any, seed: int = 0) -> MetricStatistics:
        """Per-sample BLEU-1..4 and the sufficient statistics corpus BLEU sums (:data:`BLEU_COLUMNS`)."""
        if self.impl == "native":
            from capeval.metrics.native import bleu_statistics, sentence_bleu

            stats = bleu_statistics(_native_table(batch, context))
            per = sentence_bleu(stats)
            table = pd.DataFrame(stats, columns=list(BLEU_COLUMNS))
            values = {key: per[:, k].copy() for k, key in enumerate(self.outputs)}
            return MetricStatistics(list(batch.sample_ids), table, values)
        from pycocoevalcap.bleu.bleu_scorer import BleuScorer

        cands, refs = _tokenized(batch, context)
        scorer = BleuScorer(n=4)
        for c, r in zip(cands, refs, strict=True):
            scorer += (c, r)
        with contextlib.redirect_stdout(io.StringIO()):
            _, per_sample = scorer.compute_score(option="closest", verbose=0)
        rows = [[comps["testlen"], scorer._single_reflen(comps["reflen"], "closest", comps["testlen"]),
                 *comps["guess"], *comps["correct"]] for comps in scorer.ctest]
        table = pd.DataFrame(np.asarray(rows, dtype=np.float64).reshape(-1, len(BLEU_COLUMNS)),
                             columns=list(BLEU_COLUMNS))
        values = {key: np.asarray(per_sample[k], dtype=float) for k, key in enumerate(self.outputs)}
        return MetricStatistics(list(batch.sample_ids), table, values)


class Meteor(_CocoMetric):
    """METEOR 1.5 (Denkowski & Lavie, 2014) through pycocoevalcap's jar, one supervised JVM per run."""

    description = "METEOR 1.5 (en, -norm), pycocoevalcap's jar; corpus score is METEOR's own aggregate"
    outputs = ("meteor",)
    aggregation = "meteor"
    scale = 100.0
    display_names = {"meteor": "METEOR"}
    jar = "meteor/meteor-1.5.jar"
    background = True  # the JVM scores while BLEU, ROUGE-L and CIDEr-D compute

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._process: MeteorProcess | None = None

    def extra_params(self) -> dict[str, Any]:
        return {"lang": "en", "norm": True}

    def setup(self, context: Any) -> None:
        self._process = MeteorProcess()
        self._process.start()  # the JVM loads its paraphrase tables while other metrics work

    def close(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None

    def statistics(self, batch: Batch, context: Any, seed: int = 0) -> MetricStatistics:
        """Per-segment METEOR (Java's) and the 23 segment statistics its corpus aggregate sums."""
        if self._process is None:
            self.setup(context)
        assert self._process is not None
        cands, refs = _tokenized(batch, context)
        result = self._process.score_segments(cands, refs, ids=batch.sample_ids)
        # a segment the JVM could not score is NaN and adds nothing to the corpus statistics (as in Java's
        # aggregate over the scored segments)
        stats = np.nan_to_num(result.statistics(), nan=0.0)
        table = pd.DataFrame(meteor_aggregable(stats), columns=list(METEOR_COLUMNS))
        return MetricStatistics(
            list(batch.sample_ids), table, {"meteor": np.asarray(result.per_sample, dtype=float)},
            failures={"meteor": len(result.failed)} if result.failed else {},
            details={"meteor": [result.failed.get(i) for i in batch.sample_ids]} if result.failed else {})


class RougeL(_CocoMetric):
    """ROUGE-L (Lin, 2004) F-measure with beta 1.2, best over references, as pycocoevalcap computes it."""

    description = "ROUGE-L, pycocoevalcap's Rouge arithmetic (beta=1.2); corpus score is the mean"
    has_native = True
    Options = CocoOptions
    outputs = ("rouge_l",)
    scale = 100.0
    display_names = {"rouge_l": "ROUGE-L"}

    def extra_params(self) -> dict[str, Any]:
        return {"beta": 1.2}

    def statistics(self, batch: Batch, context: Any, seed: int = 0) -> MetricStatistics:
        """Per-sample ROUGE-L (the statistics of a mean)."""
        if self.impl == "native":
            from capeval.metrics.native import rouge_l

            values = rouge_l(_native_table(batch, context)) if len(batch) else np.zeros(0)
            return MetricStatistics.of_values(list(batch.sample_ids), {"rouge_l": values})
        from pycocoevalcap.rouge.rouge import Rouge

        cands, refs = _tokenized(batch, context)
        rouge = Rouge()
        values = np.asarray([rouge.calc_score([c], r) for c, r in zip(cands, refs, strict=True)], dtype=float)
        return MetricStatistics.of_values(list(batch.sample_ids), {"rouge_l": values})


class CiderD(_CocoMetric):
    """CIDEr-D (Vedantam et al., 2015): n=4, sigma=6, document frequencies from this captioner's references."""

    description = "CIDEr-D, pycocoevalcap's Cider arithmetic (n=4, sigma=6, df from the evaluated references)"
    has_native = True
    Options = CocoOptions
    outputs = ("cider",)
    aggregation = "cider-d"
    scale = 100.0
    display_names = {"cider": "CIDEr"}

    def extra_params(self) -> dict[str, Any]:
        return {"n": 4, "sigma": 6, "df": "refs"}

    def statistics(self, batch: Batch, context: Any, seed: int = 0) -> MetricStatistics:
        """Per-sample CIDEr-D and its statistics: the tokenised candidate and references of each sample
        (the document frequencies of any subset of samples are derived from them)."""
        from pycocoevalcap.cider.cider import Cider

        cands, refs = _tokenized(batch, context)
        if not cands:
            values = np.zeros(0)
        elif self.impl == "native":
            from capeval.metrics.native import cider_d

            values = cider_d(_native_table(batch, context))
        else:
            keys = range(len(cands))
            _, per_sample = Cider(n=4, sigma=6.0).compute_score(
                {i: refs[i] for i in keys}, {i: [cands[i]] for i in keys})
            values = np.asarray(per_sample, dtype=float)
        return MetricStatistics(list(batch.sample_ids), cider_statistics(cands, refs, values), {"cider": values})


def cider_statistics(cands: list[str], refs: list[list[str]], values: np.ndarray) -> pd.DataFrame:
    """CIDEr-D's per-sample statistics table (the ``cider-d`` rule's columns): tokenised candidate and
    references of each sample, and its value."""
    return pd.DataFrame({"candidate": pd.Series(cands, dtype=object),
                         "references": pd.Series(refs, dtype=object), "cider": values})


class Spice(_CocoMetric):
    """SPICE (Anderson et al., 2016) through pycocoevalcap's jar; needs Stanford CoreNLP 3.6.0 models."""

    description = "SPICE 1.0, pycocoevalcap's jar (needs Stanford CoreNLP 3.6.0, downloaded on first use)"
    outputs = ("spice",)
    scale = 100.0
    display_names = {"spice": "SPICE"}
    jar = "spice/spice-1.0.jar"

    @classmethod
    def availability(cls) -> Availability:
        base = _coco_availability(cls.jar)
        if not base.ok:
            return base
        lib = pycocoevalcap_dir() / "spice" / "lib"  # type: ignore[operator]
        needed = ["stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar"]
        missing = [n for n in needed if not (lib / n).exists()]
        if missing:
            return Availability(
                False,
                f"Stanford CoreNLP 3.6.0 is not in {lib} ({', '.join(missing)} missing); pycocoevalcap downloads "
                "it on first use, which needs internet: run `python -c \"from pycocoevalcap.spice."
                "get_stanford_models import get_stanford_models; get_stanford_models()\"` once",
            )
        return Availability(True)

    def statistics(self, batch: Batch, context: Any, seed: int = 0) -> MetricStatistics:
        """Per-sample SPICE F-scores (corpus: their mean, as pycocoevalcap reports it)."""
        from pycocoevalcap.spice.spice import Spice as _Spice

        cands, refs = _tokenized(batch, context)
        keys = [str(i) for i in range(len(cands))]
        _, per_sample = _Spice().compute_score(
            {k: refs[i] for i, k in enumerate(keys)}, {k: [cands[i]] for i, k in enumerate(keys)}
        )
        # pycocoevalcap's Spice sorts ids as strings: put the scores back in sample order.
        order = sorted(keys)
        by_key = {k: s["All"]["f"] for k, s in zip(order, per_sample, strict=True)}
        values = np.asarray([float(by_key[k]) for k in keys], dtype=float)
        return MetricStatistics.of_values(list(batch.sample_ids), {"spice": values})
