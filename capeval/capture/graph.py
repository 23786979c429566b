"""CAPTURE's scene graphs (Dong et al., 2024): per-sentence parser output merged into objects/attributes/relations.

A parser (FACTUAL's T5 or capeval's spaCy rules) turns each sentence into a :class:`SentenceGraph`: entity
heads as written (``"dogs"``, ``"clock tower"``), (entity, attribute) pairs and (subject, predicate, object)
triples, plus the sentence's noun tokens as written. :func:`merge_sentences` then does what the reference's
``merge_sentence_results`` and noun filter do:

- entity heads are lemmatised as WordNet nouns, attributes as WordNet adjectives (NLTK's lemmatizer, applied
  to the whole string: a multi-word head such as ``"palm trees"`` is not in WordNet and stays as it is);
  attributes containing ``" of"`` are dropped; quantities were never attributes; predicates are kept as the
  parser wrote them;
- an object is kept when it is not in the stop list of scene words and it, or each of its words, is one of the
  caption's noun lemmas; attributes are kept when their object passes the noun test (stop words or not);
  relations when both ends pass it.

Case, as the reference does it (the default, ``noun_case="written"``): heads and noun tokens are lemmatised as
written, and WordNet only knows lower-case forms, so ``"Cars"`` stays ``"Cars"``. A sentence-initial noun
("Cars are parked") therefore never lets the parser's head ``"cars"`` -> ``"car"`` through, while a capitalised
head ("Man", as FACTUAL may write) passes against the token "Man". ``noun_case="lower"`` (capeval's option,
``capture_noun_case=lower``, recorded in the signature as ``nouns:lower``) lower-cases heads and noun tokens
before lemmatising, so both cases pass.

Orders are those of first appearance, which makes the greedy matching deterministic (the reference iterates
Python sets, whose order changes between runs: see :mod:`capeval.metrics.capture` for the measured effect).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from capeval.capture.stopwords import STOP_WORDS
from capeval.capture.wordnet import lemmatize


@dataclass(frozen=True)
class SentenceGraph:
    """One sentence as a parser reads it (heads and attributes as written, predicates lemmatised)."""

    entities: tuple[str, ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()
    relations: tuple[tuple[str, str, str], ...] = ()
    nouns: tuple[str, ...] = ()  # the sentence's noun tokens (PTB tags NN*) as written, for the noun filter
    malformed: int = 0  # parser output that could not be read (counted, never silently dropped)


@dataclass(frozen=True)
class CaptureGraph:
    """A caption's elements after merging its sentences and filtering, ready for matching."""

    objects: tuple[str, ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()  # (object, attribute); matched as a flat list of attributes
    relations: tuple[tuple[str, str, str], ...] = ()
    malformed: int = 0

    @property
    def attribute_words(self) -> list[str]:
        """Attributes as CAPTURE matches them: a flat list, one entry per (object, attribute) pair."""
        return [a for _, a in self.attributes]

    @property
    def relation_phrases(self) -> list[str]:
        """Relations as soft matching embeds them: ``"subject predicate object"``."""
        return [" ".join(r) for r in self.relations]

    def phrases(self) -> set[str]:
        """Every string soft matching may embed for this graph."""
        return set(self.objects) | set(self.attribute_words) | set(self.relation_phrases)

    def describe(self) -> str:
        """A one-line summary for per-sample details."""
        attrs = ", ".join(f"{a} {o}" for o, a in self.attributes)
        rels = ", ".join(f"{s} {p} {o}" for s, p, o in self.relations)
        return f"objects: {', '.join(self.objects)} | attributes: {attrs} | relations: {rels}"


def _passes_noun_test(phrase: str, nouns: set[str]) -> bool:
    return phrase in nouns or all(piece in nouns for piece in phrase.split(" "))


NOUN_CASES = ("written", "lower")


def merge_sentences(sentences: Iterable[SentenceGraph], stop_words: frozenset[str] = STOP_WORDS,
                    noun_case: str = "written") -> CaptureGraph:
    """Merge a caption's sentence graphs into one :class:`CaptureGraph` (lemmatise, filter; see module doc).

    ``noun_case``: ``written`` (the reference's rule) or ``lower`` (heads and noun tokens lower-cased first).
    """
    if noun_case not in NOUN_CASES:
        raise ValueError(f"noun_case must be one of {NOUN_CASES}, got {noun_case!r}")
    fold = str.lower if noun_case == "lower" else str

    def noun(word: str) -> str:
        return lemmatize(fold(word), "n")

    objects: dict[str, None] = {}
    attributes: dict[str, dict[str, None]] = {}
    relations: dict[tuple[str, str, str], None] = {}
    nouns: set[str] = set()
    malformed = 0
    for sent in sentences:
        malformed += sent.malformed
        nouns.update(noun(t) for t in sent.nouns)
        for head in sent.entities:
            objects.setdefault(noun(head))
        for head, attribute in sent.attributes:
            obj = noun(head)
            objects.setdefault(obj)
            attribute = lemmatize(attribute, "a")
            if " of" in attribute:
                continue
            attributes.setdefault(obj, {})[attribute] = None
        for subj, pred, obj in sent.relations:
            s, o = noun(subj), noun(obj)
            objects.setdefault(s)
            objects.setdefault(o)
            relations.setdefault((s, pred, o))
    return CaptureGraph(
        objects=tuple(o for o in objects if o not in stop_words and _passes_noun_test(o, nouns)),
        attributes=tuple((o, a) for o, attrs in attributes.items() if _passes_noun_test(o, nouns) for a in attrs),
        relations=tuple(r for r in relations if _passes_noun_test(r[0], nouns) and _passes_noun_test(r[2], nouns)),
        malformed=malformed,
    )


def noun_tokens(tokens: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """The nouns among ``(text, PTB tag)`` tokens, as written (CAPTURE's noun filter lemmatises them)."""
    return tuple(dict.fromkeys(text for text, tag in tokens if tag.startswith("NN")))
