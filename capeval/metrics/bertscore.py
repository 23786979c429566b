"""BERTScore (Zhang et al., "BERTScore: Evaluating Text Generation with BERT", ICLR 2020) via bert-score.

Per sample, as ``bert_score.score(cands, refs)`` with a list of references per candidate: the candidate is
matched greedily against each reference (``bert_score.utils.greedy_cos_idf``), and precision, recall and F1
each take their best value over the references. Outputs: ``bertscore`` (F1, the headline), ``bertscore_p``,
``bertscore_r``; the corpus score is the mean over samples.

Options (``capeval score --bertscore-model/--bertscore-layer``, or ``--option KEY=VALUE``):

* ``bertscore_model``, ``bertscore_layer``: default roberta-large, layer 17; offline, when the default can't
  be loaded, the packaged all-MiniLM-L6-v2 at layer 6 with a warning and ``fallback:yes`` in the signature
  (see :mod:`capeval.metrics.bertscore_model`).
* ``bertscore_idf`` (default no): idf weights from the references one captioner is scored on, counted as
  bert_score counts them (each candidate's references once per candidate), so a captioner's score never
  depends on the other captioners of the run.
* ``bertscore_rescale`` (default no): rescale with the baseline bert_score ships for the model (English);
  ``bertscore_baseline=PATH`` takes a baseline file in bert_score's format instead. No baseline exists for
  all-MiniLM-L6-v2: its scores are not rescaled, a warning says so and the signature says ``rescale:no``.
* ``bertscore_batch_size`` (64), ``bertscore_device`` (cuda when available, else cpu).

Blank sentences (bert_score 0.3.13 with transformers 5 crashes the whole batch on them): a blank candidate
scores 0 (P, R and F1, also when rescaling); a blank reference is left out of its sample's references (a
sample whose references are all blank scores 0). Each is warned about and counted in the run's ``usage``
(``bertscore.blank_candidates``, ``bertscore.blank_references``); they are not failures, the 0 is in the mean.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter, defaultdict
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from capeval.errors import CapevalError
from capeval.metrics.base import Availability, Batch, Metric, MetricStatistics
from capeval.metrics.bertscore_model import Encoder, ModelSpec, resolve_model, shared_encoder
from capeval.options import MetricOptions

log = logging.getLogger("capeval")

OPTIONS = ("bertscore_model", "bertscore_layer", "bertscore_idf", "bertscore_rescale", "bertscore_baseline",
           "bertscore_batch_size", "bertscore_device")
PAIR_BATCH = 64  # pairs per greedy-matching batch: bert_score.score's default batch_size


def _bool(key: str, value: Any) -> bool:
    from capeval.options import parse_bool

    return False if value is None else parse_bool(value, key=f"option {key}")


def _int(key: str, value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise CapevalError(f"option {key}={value!r}: expected an integer") from None


@lru_cache(maxsize=1)
def _versions() -> tuple[str, str]:
    try:
        return version("bert-score"), version("transformers")
    except PackageNotFoundError:
        return "missing", "missing"


def load_baseline(path: str | Path, layer: int) -> Any:
    """The (P, R, F) rescale baseline of ``layer`` from a bert_score baseline file (CSV: LAYER,P,R,F)."""
    import pandas as pd
    import torch

    table = pd.read_csv(path)
    if layer >= len(table):
        raise CapevalError(f"{path}: the baseline has no row for layer {layer}")
    return torch.from_numpy(table.iloc[layer].to_numpy(copy=True))[1:].float()


def shipped_baseline(spec: ModelSpec) -> Path | None:
    """bert_score's own English baseline file for the model, if it ships one."""
    import bert_score

    path = Path(bert_score.__file__).parent / "rescale_baseline" / "en" / f"{spec.baseline_key}.tsv"
    return path if path.is_file() else None


def idf_weights(ref_ids: list[list[int]], special: tuple[int | None, int | None], use_idf: bool):
    """bert_score's idf dict: ``log((N + 1) / (df + 1))`` over the reference list, or 1 (0 for CLS/SEP)."""
    if not use_idf:
        weights: defaultdict[int, float] = defaultdict(lambda: 1.0)
        for token in special:
            weights[token] = 0  # as bert_score.score does (an int zero; the padded tensor is float32)
        return weights
    counts: Counter[int] = Counter()
    for ids in ref_ids:
        counts.update(set(ids))
    n = len(ref_ids)
    weights = defaultdict(lambda: math.log((n + 1) / 1))
    weights.update({token: math.log((n + 1) / (c + 1)) for token, c in counts.items()})
    return weights


def bertscore_pairs(encoder: Encoder, cands: list[str], refs: list[str], idf: dict[int, float]):
    """Raw (P, R, F) for each (candidate, reference) pair: bert_score's greedy matching in batches of 64."""
    import torch
    from bert_score.utils import greedy_cos_idf
    from torch.nn.utils.rnn import pad_sequence

    idf_cache: dict[str, Any] = {}

    def weights(sentence: str):
        if sentence not in idf_cache:
            ids = encoder.token_ids(sentence)
            idf_cache[sentence] = torch.tensor([idf[t] for t in ids], dtype=torch.float)
        return idf_cache[sentence]

    def stats(sentences: list[str]):
        emb = [encoder.embedding(s) for s in sentences]
        lens = torch.tensor([e.size(0) for e in emb])
        mask = torch.arange(int(lens.max())).expand(len(emb), -1) < lens.unsqueeze(1)
        return (pad_sequence(emb, batch_first=True, padding_value=2.0), mask,
                pad_sequence([weights(s) for s in sentences], batch_first=True))

    out = []
    with torch.inference_mode():
        for start in range(0, len(refs), PAIR_BATCH):
            end = start + PAIR_BATCH
            p, r, f = greedy_cos_idf(*stats(refs[start:end]), *stats(cands[start:end]), False)
            out.append(torch.stack((p, r, f), dim=-1))
    return torch.cat(out, dim=0) if out else torch.zeros((0, 3))


def bertscore_samples(
    encoder: Encoder,
    candidates: list[str],
    references: list[list[str]],
    *,
    idf: bool = False,
    baseline: Any = None,
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Per-sample BERTScore P, R, F1 (best over each sample's references) and the counts of blank inputs.

    Equal to ``bert_score.score(candidates, references, model_type, num_layers, idf=idf)`` (rescaled with
    ``baseline``, a (P, R, F) tensor, when given) for inputs without blank sentences; see the module docstring
    for blank ones.
    """
    import torch

    blank_cands = 0
    blank_refs = 0
    flat_c: list[str] = []
    flat_r: list[str] = []
    idf_docs: list[str] = []  # bert_score's idf documents: every (non-blank) reference, once per candidate
    groups: list[tuple[int, int] | None] = []
    for cand, refs in zip(candidates, references, strict=True):
        kept = [r for r in refs if not encoder.is_blank(r)]
        blank_refs += len(refs) - len(kept)
        idf_docs.extend(kept)
        if encoder.is_blank(cand):
            blank_cands += 1
            groups.append(None)
            continue
        if not kept:
            groups.append(None)
            continue
        groups.append((len(flat_r), len(flat_r) + len(kept)))
        flat_c.extend([cand] * len(kept))
        flat_r.extend(kept)
    encoder.encode(flat_r + flat_c)  # no-op for sentences already encoded in this run
    weights = idf_weights([encoder.token_ids(r) for r in idf_docs], encoder.special_ids, idf)
    pairs = bertscore_pairs(encoder, flat_c, flat_r, weights)
    best = torch.zeros((len(groups), 3))
    scored = [i for i, g in enumerate(groups) if g is not None]
    if scored:
        best[scored] = torch.stack([pairs[beg:end].max(dim=0)[0] for beg, end in (groups[i] for i in scored)])
        if baseline is not None:
            best[scored] = (best[scored] - baseline) / (1 - baseline)
    values = best.double().numpy()
    per_sample = {"bertscore_p": values[:, 0], "bertscore_r": values[:, 1], "bertscore": values[:, 2]}
    return per_sample, {"blank_candidates": blank_cands, "blank_references": blank_refs}


@dataclasses.dataclass(frozen=True)
class BERTScoreOptions(MetricOptions):
    """BERTScore's ``--option`` keys (model and layer also as ``--bertscore-model/--bertscore-layer``)."""

    bertscore_model: str | None = None
    bertscore_layer: int | None = None
    bertscore_idf: bool | None = None
    bertscore_rescale: bool | None = None
    bertscore_baseline: str | None = None
    bertscore_batch_size: int | None = None
    bertscore_device: str | None = None


class BERTScore(Metric):
    """BERTScore F1 (headline), precision and recall; best match over several references."""

    name = "bertscore"
    version = "1"
    description = "BERTScore (Zhang et al., 2020) via bert-score; roberta-large L17, offline MiniLM fallback"
    needs = frozenset({"references"})
    outputs = ("bertscore", "bertscore_p", "bertscore_r")
    Options = BERTScoreOptions
    display_names = {"bertscore": "BERTScore", "bertscore_p": "BERTScore-P", "bertscore_r": "BERTScore-R"}

    def __init__(self, model: str | None = None, layer: int | None = None, idf: bool = False,
                 rescale: bool = False, baseline: str | None = None, batch_size: int = 64,
                 device: str | None = None) -> None:
        super().__init__(model=model, layer=layer, idf=idf, rescale=rescale, baseline=baseline,
                         batch_size=batch_size, device=device)
        self.model, self.layer, self.idf = model, layer, idf
        self.rescale = rescale or baseline is not None
        self.baseline_path = baseline
        self.batch_size, self.device = batch_size, device
        self._spec: ModelSpec | None = None
        self._baseline: Any = None
        self._baseline_checked = False
        self._encoder: Encoder | None = None

    @classmethod
    def availability(cls) -> Availability:
        missing = [m for m in ("torch", "transformers", "bert_score") if find_spec(m) is None]
        if missing:
            return Availability(False, f"needs {', '.join(missing)}: pip install 'capeval[neural]'")
        return Availability(True)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Metric:
        unknown = sorted(k for k in options if k.startswith("bertscore_") and k not in OPTIONS)
        if unknown:
            raise CapevalError(
                f"unknown bertscore option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}"
            )
        return cls(
            model=options.get("bertscore_model"),
            layer=_int("bertscore_layer", options.get("bertscore_layer")),
            idf=_bool("bertscore_idf", options.get("bertscore_idf", False)),
            rescale=_bool("bertscore_rescale", options.get("bertscore_rescale", False)),
            baseline=options.get("bertscore_baseline"),
            batch_size=_int("bertscore_batch_size", options.get("bertscore_batch_size")) or 64,
            device=options.get("bertscore_device"),
        )

    @property
    def spec(self) -> ModelSpec:
        """The resolved model and layer (decided once, on first use)."""
        if self._spec is None:
            self._spec = resolve_model(self.model, self.layer)
        return self._spec

    def baseline(self) -> Any:
        """The (P, R, F) baseline used for rescaling, or None (not asked for, or none exists: warned)."""
        if self._baseline_checked:
            return self._baseline
        self._baseline_checked = True
        if not self.rescale:
            return None
        path = Path(self.baseline_path).expanduser() if self.baseline_path else shipped_baseline(self.spec)
        if path is None:
            log.warning("bertscore: no rescale baseline exists for %s; scores are NOT rescaled (rescale:no)",
                        self.spec.label)
            return None
        if not path.is_file():
            raise CapevalError(f"bertscore: baseline file {path} does not exist")
        self._baseline = load_baseline(path, self.spec.layer)
        return self._baseline

    def signature_params(self, references: list[list[str]]) -> dict[str, Any]:
        spec = self.spec
        rescaled = self.baseline() is not None
        bs_version, tf_version = _versions()
        return {
            "model": f"{spec.label}_L{spec.layer}",
            "idf": self.idf,
            "rescale": ("custom" if self.baseline_path else "yes") if rescaled else "no",
            "fallback": spec.fallback,
            "nrefs": super().signature_params(references)["nrefs"],
            "impl": f"bert_score-{bs_version}",
            "transformers": tf_version,
        }

    def setup(self, context: Any) -> None:
        """Load the model once per run and encode every sentence the run will score, longest first."""
        shared = context.shared if context is not None else {}
        self._encoder = shared_encoder(shared, self.spec, self.device, self.batch_size)
        dataset = getattr(context, "dataset", None)
        if dataset is not None:
            texts: dict[str, None] = {}
            for cap in dataset.captioners:
                for sid in dataset.ids_for(cap):
                    texts[dataset.candidates[cap][sid]] = None
                    texts.update(dict.fromkeys(dataset.references[sid]))
            spec = self.spec
            log.info("bertscore: %s layer %d on %s: encoding %d unique sentences", spec.label, spec.layer,
                     self._encoder.device, len(texts))
            self._encoder.encode(texts)

    def statistics(self, batch: Batch, context: Any, seed: int = 0) -> MetricStatistics:
        """Score one captioner's batch (see :func:`bertscore_samples`)."""
        if self._encoder is None:
            self.setup(context)
        assert self._encoder is not None
        per_sample, counts = bertscore_samples(self._encoder, batch.candidates, batch.references,
                                               idf=self.idf, baseline=self.baseline())
        if counts["blank_candidates"]:
            log.warning("bertscore: captioner %r has %d blank candidate(s); each scores 0",
                        batch.captioner, counts["blank_candidates"])
        if counts["blank_references"]:
            log.warning("bertscore: %d blank reference(s) for captioner %r's samples were left out",
                        counts["blank_references"], batch.captioner)
        usage = {k: float(v) for k, v in counts.items()}
        return MetricStatistics.of_values(list(batch.sample_ids), per_sample, usage=usage)

    def close(self) -> None:
        """Drop this metric's handle on the encoder (the run's ``context.shared`` keeps the cache)."""
        self._encoder = None
