"""Proxy-QA scoring as CaptionQA defines it (Yang et al., 2025, "CaptionQA: Is Your Caption as Useful as the
Image Itself?", section 3.4) and its aggregation: overall, per category, per split/domain, over seeds.

Per question: 1 for the correct option, 0 for a wrong one, ``1/K + 0.05`` for "Cannot answer from the caption"
where ``K`` is the number of the question's own options (the "cannot" option excluded), exactly as in
CaptionQA's ``qa.py``. An open question scores 1 on a (normalised exact or LLM-graded) match, else 0.
An unparsable reply scores NaN: it is counted and left out of every mean (CaptionQA's code scores it 0).
The score of a set of questions is the mean over its answered questions; ``accuracy`` counts only correct
answers (a "cannot" is not correct) and ``cannot`` is the fraction of "cannot" choices.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

CANNOT_BONUS = 0.05


@dataclass
class Graded:
    """One answered question."""

    qid: str
    image_id: str
    score: float  # NaN when the reply could not be parsed (or graded)
    correct: bool = False
    cannot: bool = False
    category: str = ""
    split: str = ""
    chosen: str = ""  # the chosen option's text, or the extracted open answer
    method: str = ""  # how the answer was extracted
    reply: str = ""

    @property
    def parsed(self) -> bool:
        """False when the reply was unparsable."""
        return not math.isnan(self.score)


def cannot_score(n_options: int) -> float:
    """CaptionQA's score for choosing "Cannot answer": ``1/K + 0.05`` with K the question's own options.

    Example:
        >>> round(cannot_score(4), 4)
        0.3
    """
    if n_options < 1:
        raise ValueError("a question has at least one option")
    return 1.0 / n_options + CANNOT_BONUS


def score_choice(original_index: int, answer_index: int, n_options: int) -> tuple[float, bool, bool]:
    """``(score, correct, cannot)`` for choosing original option ``original_index`` of a question with
    ``n_options`` own options; index ``n_options`` is the appended "cannot answer" option."""
    if original_index == n_options:
        return cannot_score(n_options), False, True
    if not 0 <= original_index < n_options:
        raise ValueError(f"option index {original_index} out of range for {n_options} options")
    correct = original_index == answer_index
    return (1.0 if correct else 0.0), correct, False


@dataclass
class GroupScore:
    """Aggregate of a group of questions."""

    score: float  # mean score over answered questions (NaN when none was answered)
    accuracy: float  # fraction correct among answered questions
    cannot: float  # fraction of "cannot answer" choices among answered questions
    n: int  # questions in the group
    answered: int  # questions whose reply was parsed
    unparsable: int

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict (for JSON)."""
        return dict(self.__dict__)


def aggregate(records: Sequence[Graded]) -> GroupScore:
    """Mean score, accuracy and cannot-ratio over the answered questions of ``records``.

    Example:
        >>> rs = [Graded("q1", "i", 1.0, correct=True), Graded("q2", "i", 0.3, cannot=True),
        ...       Graded("q3", "i", float("nan"))]
        >>> g = aggregate(rs)
        >>> round(g.score, 4), g.accuracy, g.unparsable
        (0.65, 0.5, 1)
    """
    answered = [r for r in records if r.parsed]
    k = len(answered)
    return GroupScore(
        score=float(np.mean([r.score for r in answered])) if k else float("nan"),
        accuracy=sum(r.correct for r in answered) / k if k else float("nan"),
        cannot=sum(r.cannot for r in answered) / k if k else float("nan"),
        n=len(records),
        answered=k,
        unparsable=len(records) - k,
    )


def breakdown(records: Sequence[Graded], by: str) -> dict[str, GroupScore]:
    """:func:`aggregate` per value of ``by`` (``category`` or ``split``); empty values are left out."""
    groups: dict[str, list[Graded]] = {}
    for r in records:
        key = getattr(r, by)
        if key:
            groups.setdefault(key, []).append(r)
    return {k: aggregate(v) for k, v in groups.items()}


def per_image(records: Iterable[Graded], image_ids: Sequence[str]) -> np.ndarray:
    """Mean score of each image's answered questions, in ``image_ids`` order (NaN: nothing answered)."""
    sums: dict[str, list[float]] = {}
    for r in records:
        if r.parsed:
            sums.setdefault(r.image_id, []).append(r.score)
    return np.array([float(np.mean(sums[i])) if i in sums else float("nan") for i in image_ids], dtype=float)


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1) of per-seed scores, NaNs left out; std None for one seed
    (:func:`capeval.aggregation.mean_over_seeds`, the one mean over seeds).

    Example:
        >>> m, s = mean_std([0.5, 0.7])
        >>> round(m, 6), round(s, 6)
        (0.6, 0.141421)
    """
    from capeval.aggregation import mean_over_seeds

    return mean_over_seeds([float(v) for v in values])


def utility_ratio(caption_score: float, image_score: float) -> float:
    """Caption utility relative to the image: caption score / image score (NaN when the image score is 0 or
    unknown). CaptionQA's paper also reports the gap ``image - caption``; both are returned by the metric."""
    if not (image_score > 0) or math.isnan(caption_score):
        return float("nan")
    return caption_score / image_score
