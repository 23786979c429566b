"""CAPTURE scores (Dong et al., 2024): per-type precision/recall/F1 and their weighted mean.

For each element type, with ``m_c`` / ``m_r`` the candidate-side / reference-side match credit (whole matches
plus soft credit, see :mod:`capeval.capture.matching`) and ``n_c`` / ``n_r`` the element counts::

    P = m_c / (n_c + eps)      R = m_r / (n_r + eps)      F1 = 2 P R / (P + R + eps)      eps = 1e-6

    CAPTURE = (0.5 F1_obj + 0.5 F1_attr + 0.2 F1_rel) / (0.5 + 0.5 + 0.2)

A type that is empty on either side scores 0 (so two captions without relations get F1_rel = 0, as in the
reference). A candidate is scored against each reference; the per-sample value of every output is the mean
over references, and the corpus value the mean over samples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from capeval.capture.graph import CaptureGraph
from capeval.capture.matching import HardMatch, hard_match, similar, similar_relation, soft_credit

EPS = 1e-6
TYPES = ("obj", "attr", "rel")
OUTPUTS: tuple[str, ...] = ("capture",) + tuple(f"capture_{t}_{m}" for t in TYPES for m in ("p", "r", "f1"))

#: ``phrases -> {phrase: L2-normalised vector}`` (see :class:`capeval.capture.encoders.PhraseEncoder`).
Embedder = Callable[[Sequence[str]], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class Weights:
    """CAPTURE's weights of the object, attribute and relation F1 (alpha, beta, gamma in the reference)."""

    objects: float = 0.5
    attributes: float = 0.5
    relations: float = 0.2

    def label(self) -> str:
        """``0.5,0.5,0.2`` for signatures."""
        return f"{self.objects:g},{self.attributes:g},{self.relations:g}"


def prf(cand_match: float, ref_match: float, n_cand: int, n_ref: int, eps: float = EPS) -> tuple[float, float, float]:
    """Precision, recall and F1 from match credits and element counts, with the reference's ``eps``."""
    p = cand_match / (n_cand + eps)
    r = ref_match / (n_ref + eps)
    return p, r, 2 * p * r / (p + r + eps)


def elements(graph: CaptureGraph) -> tuple[list[str], list[str], list[tuple[str, str, str]]]:
    """The three element lists CAPTURE matches: objects, attributes (flat), relations."""
    return list(graph.objects), graph.attribute_words, list(graph.relations)


def _phrase(element: str | tuple[str, ...]) -> str:
    return element if isinstance(element, str) else " ".join(element)


def score_pairs(
    pairs: Sequence[tuple[CaptureGraph, CaptureGraph]],
    embed: Embedder | None,
    *,
    synonyms: bool = True,
    weights: Weights = Weights(),
) -> np.ndarray:
    """Score (candidate, reference) graph pairs; one row per pair, columns as :data:`OUTPUTS`.

    Runs the exact and synonym stages for every pair first, then embeds every phrase left over for soft
    matching in one call to ``embed`` (None: no soft matching), then computes the scores.
    """
    stage: list[list[tuple[list, list, HardMatch]]] = []
    needed: dict[str, None] = {}
    for cand, ref in pairs:
        row = []
        for c_elems, r_elems, sim in zip(elements(cand), elements(ref), (similar, similar, similar_relation),
                                         strict=True):
            hm = hard_match(c_elems, r_elems, sim if synonyms else None)
            if embed is not None and hm.left_candidates and hm.left_references:
                needed.update((_phrase(c_elems[i]), None) for i in hm.left_candidates)
                needed.update((_phrase(r_elems[j]), None) for j in hm.left_references)
            row.append((c_elems, r_elems, hm))
        stage.append(row)
    vectors = embed(list(needed)) if embed is not None and needed else {}

    out = np.zeros((len(pairs), len(OUTPUTS)), dtype=float)
    w = (weights.objects, weights.attributes, weights.relations)
    for k, row in enumerate(stage):
        f1s = []
        for t, (c_elems, r_elems, hm) in enumerate(row):
            cand_match = ref_match = float(hm.matched)
            if embed is not None and hm.left_candidates and hm.left_references:
                cv = np.stack([vectors[_phrase(c_elems[i])] for i in hm.left_candidates])
                rv = np.stack([vectors[_phrase(r_elems[j])] for j in hm.left_references])
                soft_c, soft_r = soft_credit(cv, rv)
                cand_match += soft_c
                ref_match += soft_r
            p, r, f1 = prf(cand_match, ref_match, len(c_elems), len(r_elems))
            out[k, 1 + 3 * t: 4 + 3 * t] = (p, r, f1)
            f1s.append(f1)
        out[k, 0] = sum(wi * fi for wi, fi in zip(w, f1s, strict=True)) / sum(w)
    return out


def score_samples(
    candidates: Sequence[CaptureGraph],
    references: Sequence[Sequence[CaptureGraph]],
    embed: Embedder | None,
    *,
    synonyms: bool = True,
    weights: Weights = Weights(),
) -> np.ndarray:
    """Per-sample scores: each candidate against each of its references, averaged over references.

    Returns an array of shape (samples, len(OUTPUTS)); a sample without references gets NaN.
    """
    pairs = [(c, r) for c, refs in zip(candidates, references, strict=True) for r in refs]
    scores = score_pairs(pairs, embed, synonyms=synonyms, weights=weights)
    out = np.full((len(candidates), len(OUTPUTS)), np.nan)
    start = 0
    for k, refs in enumerate(references):
        if refs:
            out[k] = scores[start: start + len(refs)].mean(axis=0)
        start += len(refs)
    return out
