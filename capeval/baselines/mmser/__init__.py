"""MM-SeR (Song et al., "MM-SeR: Multimodal Self-Refinement for Lightweight Image Captioning").

Public entry points: :class:`MMSeRConfig`, :class:`MMSeRForCaptioning`, :func:`caption_images` (inference on a
folder, bundled tiny shapes weights by default) and :func:`train` (``capeval baseline train``).
"""

from __future__ import annotations

_LAZY = {
    "MMSeRConfig": "configuration", "tiny_config": "configuration", "MMSeRForCaptioning": "modeling",
    "caption_images": "inference", "write_coco_results": "inference", "BUNDLED_CHECKPOINT": "inference",
    "TrainOptions": "train", "train": "train",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    """Import torch/transformers only when an MM-SeR name is first used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"capeval.baselines.mmser.{_LAZY[name]}"), name)
    raise AttributeError(name)
