"""CAPTURE (Dong et al., 2024) over a run: choose the parser, parse each unique sentence once, cache the graphs.

``capture_parser=auto`` uses FACTUAL's T5 parser (the reference's) when its weights can be loaded, and
otherwise the offline spaCy parser, with a warning; ``factual`` and ``spacy`` force one of them.
:class:`GraphCache` keeps ``sentence -> SentenceGraph`` and ``caption -> CaptureGraph`` for one parser, so
references shared by several captioners, and sentences repeated across captions, are parsed once per run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from capeval.capture.factual import FACTUAL_MODEL, FactualParser, factual_available
from capeval.capture.graph import CaptureGraph, SentenceGraph, merge_sentences
from capeval.capture.parsing import Parser, SpacyParser, split_sentences
from capeval.errors import CapevalError

log = logging.getLogger("capeval")

PARSERS = ("auto", "factual", "spacy")


def resolve_parser(choice: str, factual_model: str = FACTUAL_MODEL) -> str:
    """``factual`` or ``spacy`` for a ``capture_parser`` value (``auto`` decides within a few seconds)."""
    choice = (choice or "auto").strip().lower()
    if choice not in PARSERS:
        raise CapevalError(f"capture_parser must be one of {', '.join(PARSERS)}, got {choice!r}")
    if choice != "auto":
        return choice
    if factual_available(factual_model):
        return "factual"
    log.warning("CAPTURE: FACTUAL parser weights %s can't be loaded here (not cached, hub unreachable); using "
                "the offline spaCy parser (recorded in the signature; scores differ from the reference parser)",
                factual_model)
    return "spacy"


def build_parser(kind: str, factual_model: str = FACTUAL_MODEL, device: str | None = None) -> Parser:
    """Instantiate the parser ``kind`` (``factual`` or ``spacy``)."""
    if kind == "factual":
        return FactualParser.from_pretrained(factual_model, device=device)
    return SpacyParser()


class GraphCache:
    """Parse captions into :class:`CaptureGraph` with one parser, each unique sentence once."""

    def __init__(self, parser: Parser) -> None:
        self.parser = parser
        self.sentences: dict[str, SentenceGraph] = {}
        self.captions: dict[tuple[str, str], CaptureGraph] = {}  # (noun case, caption) -> graph
        self.parsed_sentences = 0

    def graphs(self, captions: Sequence[str], noun_case: str = "written") -> list[CaptureGraph]:
        """The graph of each caption (parsing only sentences not seen before, in one batch)."""
        todo = [c for c in dict.fromkeys(captions) if (noun_case, c) not in self.captions]
        split = {c: split_sentences(c) for c in todo}
        new = [s for s in dict.fromkeys(s for sents in split.values() for s in sents) if s not in self.sentences]
        if new:
            self.sentences.update(zip(new, self.parser.parse(new), strict=True))
            self.parsed_sentences += len(new)
        for caption, sents in split.items():
            self.captions[noun_case, caption] = merge_sentences((self.sentences[s] for s in sents),
                                                                noun_case=noun_case)
        return [self.captions[noun_case, c] for c in captions]


def graph_cache(shared: dict[str, Any], kind: str, factual_model: str = FACTUAL_MODEL,
                device: str | None = None) -> GraphCache:
    """The run's :class:`GraphCache` for parser ``kind`` (created on first use, kept in ``shared``)."""
    key = f"capture.graphs:{kind}:{factual_model if kind == 'factual' else ''}"
    if key not in shared:
        shared[key] = GraphCache(build_parser(kind, factual_model, device))
    return shared[key]
