"""Deterministic option shuffling for proxy QA (CaptionQA shuffles options to cancel position bias).

CaptionQA's reference code draws every permutation from one ``random.Random(seed)`` in file order, so a
question's option order changes when any earlier question is added, removed or skipped. Here the permutation
of a question depends only on its id and the seed: ``sha256("<question id>\\x1f<seed>")`` seeds a private
Mersenne Twister, which then shuffles ``range(n)``. It is the same in every process, on every platform and
whatever ``PYTHONHASHSEED`` is (Python's ``hash()`` is never used).
"""

from __future__ import annotations

import hashlib
import random

from capeval.proxyqa.questions import Question

CANNOT_ANSWER_CAPTION = "Cannot answer from the caption"
CANNOT_ANSWER_IMAGE = "Cannot answer from the image"

YESNO_STARTERS = (
    "is ", "are ", "was ", "were ", "do ", "does ", "did ", "have ", "has ", "had ", "can ", "could ",
    "will ", "would ", "should ", "shall ", "may ", "might ", "must ",
)


def permutation(qid: str, seed: int, n: int) -> list[int]:
    """The option order for question ``qid`` under ``seed``: ``perm[shown_position] = original_index``.

    Example:
        >>> permutation("974#0", 0, 4) == permutation("974#0", 0, 4)
        True
        >>> sorted(permutation("974#0", 1, 4))
        [0, 1, 2, 3]
    """
    digest = hashlib.sha256(f"{qid}\x1f{int(seed)}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    perm = list(range(n))
    rng.shuffle(perm)
    return perm


def is_yes_no(question: str, options: tuple[str, ...] | list[str]) -> bool:
    """CaptionQA's yes/no test: the options include a "yes" and a "no" one, or the question opens with an
    auxiliary verb (is/are/do/can/...). Such questions get no "cannot answer" option.

    CaptionQA tests ``"yes" in option`` as a substring (so "eyes" or "snow" count); here "yes"/"no" must be
    whole words of the option.
    """
    words = [set(o.casefold().replace(",", " ").replace(".", " ").split()) for o in options]
    if any("yes" in w for w in words) and any("no" in w for w in words):
        return True
    return question.strip().casefold().startswith(YESNO_STARTERS)


def presented_options(q: Question, seed: int, *, unanswerable: bool, shuffle: bool = True,
                      cannot_text: str = CANNOT_ANSWER_CAPTION) -> tuple[list[str], list[int]]:
    """The options as shown to the answering model and ``perm`` (shown position -> original index).

    With ``unanswerable`` a non-yes/no question gets ``cannot_text`` appended as original index
    ``len(q.options)`` before shuffling, as CaptionQA does (which shuffles it along with the others).
    """
    options = list(q.options)
    if unanswerable and options and not is_yes_no(q.question, q.options):
        options.append(cannot_text)
    perm = permutation(q.qid, seed, len(options)) if shuffle else list(range(len(options)))
    return [options[i] for i in perm], perm
