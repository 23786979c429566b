"""CAPTURE's three-stage matching (Dong et al., 2024): exact, then WordNet synonyms, then soft by embeddings.

For one element type (objects, attributes or relations) of a candidate and a reference caption:

1. exact: each candidate element, in order, takes the first unmatched reference element equal to it;
2. synonyms: each still unmatched candidate element takes the first unmatched reference element it is
   "similar" to. Two phrases are similar when one is a substring of the other, or when the sets of lemma
   names of all their WordNet synsets (any part of speech; spaces joined by "_") share a name. Relations
   are similar when subject, predicate and object are pairwise similar;
3. soft: the elements left on both sides are embedded (relations as "subject predicate object"), and each
   remaining candidate element earns its highest cosine similarity to any remaining reference element
   (precision side), each remaining reference element its highest similarity to any remaining candidate
   element (recall side). Nothing is earned when either side has nothing left.

Stages 1 and 2 give whole matches shared by both sides; stage 3 gives fractional credit that can differ
between the precision and the recall side. These are the rules of the reference implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import numpy as np

from capeval.capture.wordnet import wordnet_reader

T = TypeVar("T", bound=Hashable)


@lru_cache(maxsize=200_000)
def lemma_names(word: str) -> frozenset[str]:
    """Lemma names of every WordNet synset of ``word`` (any part of speech), as the reference collects them."""
    wn = wordnet_reader()
    return frozenset(lemma.name() for synset in wn.synsets(word) for lemma in synset.lemmas())


@lru_cache(maxsize=500_000)
def similar(a: str, b: str) -> bool:
    """CAPTURE's synonym test: substring either way, else shared WordNet lemma names (multi-word with ``_``)."""
    if a in b or b in a:
        return True
    return bool(lemma_names("_".join(a.split())) & lemma_names("_".join(b.split())))


def similar_relation(a: tuple[str, str, str], b: tuple[str, str, str]) -> bool:
    """Relations are synonyms when subject, predicate and object each are."""
    return len(a) == len(b) and all(similar(x, y) for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class HardMatch:
    """Result of the exact and synonym stages for one element type."""

    matched: int  # whole matches (stages 1 and 2)
    exact: int  # of which exact (stage 1)
    left_candidates: tuple[int, ...]  # indices of candidate elements left for soft matching
    left_references: tuple[int, ...]


def hard_match(
    candidates: Sequence[T], references: Sequence[T], is_similar: Callable[[T, T], bool] | None
) -> HardMatch:
    """Stages 1 and 2: greedy exact matching, then greedy synonym matching (``is_similar``; None skips it)."""
    taken_c: set[int] = set()
    taken_r: set[int] = set()
    for i, cand in enumerate(candidates):
        for j, ref in enumerate(references):
            if j not in taken_r and cand == ref:
                taken_c.add(i)
                taken_r.add(j)
                break
    exact = len(taken_c)
    if is_similar is not None:
        for i, cand in enumerate(candidates):
            if i in taken_c:
                continue
            for j, ref in enumerate(references):
                if j not in taken_r and is_similar(cand, ref):
                    taken_c.add(i)
                    taken_r.add(j)
                    break
    return HardMatch(
        matched=len(taken_c),
        exact=exact,
        left_candidates=tuple(i for i in range(len(candidates)) if i not in taken_c),
        left_references=tuple(j for j in range(len(references)) if j not in taken_r),
    )


def soft_credit(candidate_vectors: np.ndarray, reference_vectors: np.ndarray) -> tuple[float, float]:
    """Stage 3: (sum of each candidate's best cosine, sum of each reference's best cosine); 0 when a side is empty.

    Vectors must be L2-normalised rows.
    """
    if len(candidate_vectors) == 0 or len(reference_vectors) == 0:
        return 0.0, 0.0
    sim = candidate_vectors @ reference_vectors.T
    return float(sim.max(axis=1).sum()), float(sim.max(axis=0).sum())
