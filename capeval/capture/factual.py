"""FACTUAL's T5 scene-graph parser (Li et al., ACL 2023), as CAPTURE (Dong et al., 2024) runs it.

CAPTURE parses every sentence with ``lizhuang144/flan-t5-base-VG-factual-sg``: the prompt
``"Generate Scene Graph: <sentence>"`` (at most 64 input tokens), beam search with 5 beams, at most 128
output tokens, decoding started from the pad token. The model writes facts such as
``( pigs , is , 2 ) , ( pigs , is , beautiful ) , ( pigs , fly on , sky )``: a fact with predicate ``is``
gives a quantity (a number) or an attribute, any other fact a relation, and a lone phrase an entity.
Duplicate facts are dropped and so is a last fact cut off by the length limit; other facts that do not have
three parts are skipped (and counted here).

The weights come from the Hugging Face hub (or its local cache); when neither can be reached the parser
fails at once with :class:`~capeval.errors.MetricUnavailable`, never after a minute of retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from capeval.capture.graph import SentenceGraph
from capeval.capture.parsing import tag_nouns
from capeval.errors import MetricUnavailable

FACTUAL_MODEL = "lizhuang144/flan-t5-base-VG-factual-sg"
PROMPT = "Generate Scene Graph: "
MAX_INPUT_TOKENS = 64
MAX_OUTPUT_TOKENS = 128
BEAMS = 5


def factual_available(model_id: str = FACTUAL_MODEL) -> bool:
    """Whether the FACTUAL weights can be loaded now (local directory, HF cache, or a reachable hub)."""
    from capeval.models.offline import hub_model_available

    return hub_model_available(model_id)


def _space_out(text: str) -> str:
    return " ".join(text.replace("(", " ( ").replace(")", " ) ").replace(",", " , ").split())


def split_facts(text: str) -> list[str]:
    """The facts of a generated graph string, without brackets: duplicates and a truncated last fact dropped."""
    text = _space_out(text.replace(PROMPT.strip(), "").strip())
    if not text:
        return []
    facts = text.split(") ,")
    if not text.endswith(")"):
        facts = facts[:-1] if len(facts) > 1 else [facts[0].split(",")[0]]
    cleaned = (f.strip().strip("()").strip() for f in facts)
    return list(dict.fromkeys(f for f in cleaned if f))


def read_graph_text(text: str) -> SentenceGraph:
    """A :class:`SentenceGraph` (without noun lemmas) from one generated graph string."""
    facts = split_facts(text)
    entities: dict[str, None] = {}
    attributes: dict[tuple[str, str], None] = {}
    relations: dict[tuple[str, str, str], None] = {}
    malformed = 0
    for fact in facts:
        parts = [p.strip() for p in fact.split(",")]
        if len(parts) != 3:
            if len(facts) == 1 and parts[0]:
                entities.setdefault(parts[0])
            else:
                malformed += 1
            continue
        subj, pred, obj = parts
        entities.setdefault(subj)
        if pred == "is":
            if not obj.isdigit():  # a number is a quantity, which CAPTURE does not score
                attributes.setdefault((subj, obj))
        else:
            entities.setdefault(obj)
            relations.setdefault((subj, pred, obj))
    return SentenceGraph(entities=tuple(entities), attributes=tuple(attributes), relations=tuple(relations),
                         malformed=malformed)


class FactualParser:
    """CAPTURE's parser: FACTUAL's flan-t5-base model, one generation per sentence."""

    def __init__(self, tokenizer: Any, model: Any, name: str = "factual-flan-t5-base-VG-factual-sg",
                 batch_size: int = 32) -> None:
        self.tokenizer = tokenizer
        self.model = model
        self.name = name
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(cls, model_id: str = FACTUAL_MODEL, device: str | None = None) -> FactualParser:
        """Load the weights (hub or cache); :class:`MetricUnavailable` at once when they can't be reached."""
        from pathlib import Path

        from capeval.models.offline import hub_model_cached, hub_offline

        if not factual_available(model_id):
            raise MetricUnavailable(
                f"CAPTURE's FACTUAL parser needs the weights {model_id!r}, which are neither cached nor "
                "reachable (no network?); use capture_parser=spacy for the offline parser"
            )
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        local = Path(model_id).expanduser().is_dir() or hub_model_cached(model_id)
        try:
            with hub_offline(local):
                tokenizer = AutoTokenizer.from_pretrained(model_id)
                model = AutoModelForSeq2SeqLM.from_pretrained(model_id).to(device).eval()
        except OSError as exc:
            raise MetricUnavailable(f"CAPTURE's FACTUAL parser {model_id!r} could not be loaded: {exc}") from exc
        return cls(tokenizer, model, name=f"factual-{model_id.rstrip('/').rsplit('/', 1)[-1]}")

    def generate(self, sentences: Sequence[str]) -> list[str]:
        """The raw graph strings the model writes for ``sentences``."""
        import torch

        out: list[str] = []
        device = getattr(self.model, "device", "cpu")
        for start in range(0, len(sentences), self.batch_size):
            prompts = [PROMPT + s.strip() for s in sentences[start: start + self.batch_size]]
            enc = self.tokenizer(prompts, max_length=MAX_INPUT_TOKENS, truncation=True, padding="longest",
                                 return_tensors="pt")
            with torch.no_grad():
                ids = self.model.generate(
                    enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device),
                    use_cache=True, decoder_start_token_id=self.tokenizer.pad_token_id, num_beams=BEAMS,
                    max_length=MAX_OUTPUT_TOKENS, early_stopping=True, num_return_sequences=1,
                )
            out.extend(self.tokenizer.batch_decode(ids, skip_special_tokens=True,
                                                   clean_up_tokenization_spaces=True))
        return out

    def parse(self, sentences: Sequence[str]) -> list[SentenceGraph]:
        """Parse each sentence; noun tokens (for CAPTURE's noun filter) come from spaCy's tagger."""
        graphs = [read_graph_text(t) for t in self.generate(sentences)]
        nouns = tag_nouns(sentences)
        return [SentenceGraph(g.entities, g.attributes, g.relations, n, g.malformed)
                for g, n in zip(graphs, nouns, strict=True)]
