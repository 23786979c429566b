"""Rule-based caption perturber: pseudo-initial captions for MM-SeR refinement training (Song et al.).

MM-SeR's refinement stage learns to turn a flawed initial caption into a correct one. Offline, the flawed
captions are made from references by changing exactly one element: an entity (noun), an attribute (colour or
size adjective, count word) or a relation (spatial phrase or action verb), each swapped for another word of the
same kind ("a red circle left of a blue square" -> "a red circle left of a green square"). Word lists cover
the shapes dataset and common COCO objects; a caption with nothing to change is left as it is (None).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

KINDS = ("entity", "attribute", "relation")

# Words of one group replace each other. A word may belong to one group only.
ENTITY_GROUPS: tuple[tuple[str, ...], ...] = (
    ("circle", "square", "triangle"),
    ("man", "woman", "boy", "girl", "child", "person"),
    ("men", "women", "boys", "girls", "children", "people"),
    ("dog", "cat", "horse", "cow", "sheep", "bird", "bear", "elephant", "giraffe", "zebra"),
    ("dogs", "cats", "horses", "cows", "birds", "bears", "elephants", "giraffes", "zebras"),
    ("car", "bus", "truck", "train", "motorcycle", "bicycle", "bike", "airplane", "boat"),
    ("pizza", "sandwich", "cake", "donut", "banana", "apple", "orange", "broccoli", "hot dog"),
    ("table", "chair", "bed", "couch", "bench", "desk"),
    ("street", "road", "beach", "field", "kitchen", "room", "park", "city"),
    ("plate", "bowl", "cup", "glass", "bottle", "vase"),
    ("umbrella", "kite", "frisbee", "surfboard", "skateboard", "laptop", "phone", "clock"),
)
ATTRIBUTE_GROUPS: tuple[tuple[str, ...], ...] = (
    ("red", "green", "blue", "yellow", "purple", "black", "white", "brown", "pink", "gray"),
    ("small", "large"),
    ("big", "little"),
    ("tall", "short"),
    ("young", "old"),
    ("two", "three", "four"),
    ("wooden", "metal", "plastic"),
    ("empty", "full"),
)
RELATION_GROUPS: tuple[tuple[str, ...], ...] = (
    ("to the left of", "to the right of", "above", "below"),
    ("left of", "right of"),
    ("on top of", "underneath"),
    ("in front of", "behind"),
    ("next to", "far from"),
    ("inside", "outside"),
    ("sitting", "standing", "lying"),
    ("riding", "walking", "holding"),
    ("eating", "drinking"),
)

_VOWEL_SOUND = re.compile(r"^[aeiou]", re.IGNORECASE)


@dataclass(frozen=True)
class Perturbation:
    """A caption with one element changed: which kind, and the original and replacement words."""

    text: str
    kind: str
    original: str
    replacement: str


def _index(groups: tuple[tuple[str, ...], ...]) -> dict[str, tuple[str, ...]]:
    index: dict[str, tuple[str, ...]] = {}
    for group in groups:
        for phrase in group:
            if phrase in index:
                raise ValueError(f"perturber word {phrase!r} is in two groups")
            index[phrase] = group
    return index


_LEXICON = {"entity": _index(ENTITY_GROUPS), "attribute": _index(ATTRIBUTE_GROUPS),
            "relation": _index(RELATION_GROUPS)}


def _spans(words: list[str], kind: str) -> list[tuple[int, int, str]]:
    """Non-overlapping ``(start, end, phrase)`` matches of a kind's phrases, longest first at each position."""
    lexicon = _LEXICON[kind]
    longest = max(len(p.split()) for p in lexicon)
    lowered = [w.lower() for w in words]
    out, i = [], 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            phrase = " ".join(lowered[i:i + n])
            if phrase in lexicon:
                out.append((i, i + n, phrase))
                i += n
                break
        else:
            i += 1
    return out


def _fix_article(words: list[str], at: int) -> None:
    """Make ``a``/``an`` before position ``at`` agree with the word now there."""
    if at == 0 or at >= len(words):
        return
    prev = words[at - 1]
    if prev.lower() in ("a", "an"):
        wanted = "an" if _VOWEL_SOUND.match(words[at]) else "a"
        words[at - 1] = wanted.capitalize() if prev[0].isupper() else wanted


def perturb(caption: str, rng: random.Random, kinds: tuple[str, ...] = KINDS) -> Perturbation | None:
    """Change one entity, attribute or relation of ``caption``; None when no listed word occurs in it."""
    words = caption.split()
    options = [(kind, span) for kind in kinds for span in _spans(words, kind)]
    if not options:
        return None
    by_kind: dict[str, list[tuple[int, int, str]]] = {}
    for kind, span in options:
        by_kind.setdefault(kind, []).append(span)
    kind = rng.choice(sorted(by_kind))
    start, end, phrase = rng.choice(by_kind[kind])
    replacement = rng.choice([p for p in _LEXICON[kind][phrase] if p != phrase])
    if words[start][:1].isupper():
        replacement = replacement[:1].upper() + replacement[1:]
    new_words = words[:start] + replacement.split() + words[end:]
    _fix_article(new_words, start)
    return Perturbation(" ".join(new_words), kind, phrase, replacement)


class RulePerturber:
    """Seeded perturber: the pseudo-initial caption for ``(caption, key)`` is the same in every process.

    ``keep`` is the share of captions left unchanged, so the refiner also learns to keep a correct caption.
    """

    name = "rule"

    def __init__(self, seed: int = 0, keep: float = 0.15, kinds: tuple[str, ...] = KINDS) -> None:
        if not 0.0 <= keep <= 1.0:
            raise ValueError(f"keep must be in [0, 1], got {keep}")
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown perturbation kinds {sorted(unknown)}; expected some of {KINDS}")
        self.seed, self.keep, self.kinds = seed, keep, tuple(kinds)

    def __call__(self, caption: str, key: str | int = 0) -> str:
        """The pseudo-initial caption for one reference (``key`` varies it, e.g. the epoch and index)."""
        rng = random.Random(f"{self.seed}|{key}|{caption}")
        if rng.random() < self.keep:
            return caption
        result = perturb(caption, rng, self.kinds)
        return caption if result is None else result.text
