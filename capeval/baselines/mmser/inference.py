"""Captioning a folder of images with MM-SeR (Song et al.): initial pass, then optional self-refinement.

Images are read in sorted order and captioned in batches; each batch runs the vision encoder once, the initial
pass (greedy or beam search), and, when ``refine``, the refinement pass whose SeR-Connector and text prompt see
the initial caption. The bundled checkpoint is the tiny model trained on the synthetic shapes dataset.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import torch

from capeval.baselines.images import list_images
from capeval.baselines.mmser.data import PixelCache
from capeval.baselines.mmser.processing import MMSeRProcessor
from capeval.errors import CapevalError

BUNDLED_CHECKPOINT = Path(__file__).resolve().parents[1] / "weights" / "mmser-tiny-shapes"


def _device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@lru_cache(maxsize=2)
def _load(path: str, device: str):
    from capeval.baselines.mmser.train import load_model

    model, tokenizer = load_model(path, device)
    model.eval()
    return model, tokenizer


def load_captioner(checkpoint: str | Path | None = None, device: str = "auto"):
    """``(model, tokenizer)`` from a checkpoint folder; the bundled tiny shapes model when None."""
    path = Path(checkpoint) if checkpoint else BUNDLED_CHECKPOINT
    if not (path / "config.json").is_file():
        if checkpoint is None:
            raise CapevalError(f"the bundled MM-SeR weights are missing from {path}; "
                               "train them with scripts/train_tiny_mmser.sh")
        raise CapevalError(f"{path}: not an MM-SeR checkpoint folder (no config.json)")
    return _load(str(path.resolve()), str(_device(device)))


@torch.no_grad()
def caption_batch(model, processor: MMSeRProcessor, pixel_values: torch.Tensor, *, refine: bool = True,
                  num_beams: int = 1, max_new_tokens: int | None = None) -> list[dict[str, str]]:
    """Captions of one batch of preprocessed images: ``[{"initial": ..., "refined": ...}]``."""
    device = next(model.parameters()).device
    features = model.encode_images(pixel_values.to(device))
    gen = {"max_new_tokens": max_new_tokens, "num_beams": num_beams,
           "eos_token_id": processor.eos, "pad_token_id": processor.pad}
    visual = model.initial_visual_tokens(features)
    initial_ids = model.generate_ids(visual, [processor.initial_prompt()] * visual.shape[0], **gen)
    out = [{"initial": processor.decode(ids)} for ids in initial_ids]
    if not refine:
        return out
    limit = model.config.ser_max_text_positions
    initial_ids = [ids[:limit] for ids in initial_ids]
    ids_t, mask_t = processor.pad_ids(initial_ids)
    refined_visual = model.refine_visual_tokens(features, ids_t.to(device), mask_t.to(device))
    refined_ids = model.generate_ids(refined_visual, [processor.refine_prompt(i) for i in initial_ids], **gen)
    for row, ids in zip(out, refined_ids, strict=True):
        row["refined"] = processor.decode(ids)
    return out


def caption_images(
    images_dir: str | Path,
    checkpoint: str | Path | None = None,
    refine: bool = True,
    batch_size: int = 16,
    num_beams: int = 1,
    max_new_tokens: int | None = None,
    device: str = "auto",
    on_batch: Callable[[int, int], None] | None = None,
) -> dict[str, dict[str, str]]:
    """Caption every image of a folder: ``{image_id: {"initial": str, "refined": str}}`` (id = file stem).

    ``refine=False`` runs the single pass only (no ``"refined"`` key). ``on_batch(done, total)`` reports
    progress after each batch.
    """
    if batch_size < 1 or num_beams < 1:
        raise CapevalError("batch size and number of beams must be at least 1")
    model, tokenizer = load_captioner(checkpoint, device)
    processor = MMSeRProcessor(tokenizer, model.config)
    cfg = model.config
    pixels = PixelCache(cfg.image_size, cfg.image_mean, cfg.image_std, keep=False)
    images = list_images(images_dir)
    results: dict[str, dict[str, str]] = {}
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        rows = caption_batch(model, processor, pixels.batch([p for _, p in chunk]), refine=refine,
                             num_beams=num_beams, max_new_tokens=max_new_tokens)
        for (image_id, _), row in zip(chunk, rows, strict=True):
            results[image_id] = row
        if on_batch:
            on_batch(len(results), len(images))
    return results


def write_coco_results(captions: dict[str, dict[str, str]], path: str | Path, which: str = "refined",
                       keep_both: bool = True) -> Path:
    """Write ``[{"image_id", "caption"}]`` (COCO results) using the ``which`` caption of each image.

    ``keep_both`` adds the other caption as ``initial_caption`` / ``refined_caption``; capeval's readers use
    the ``caption`` field.
    """
    rows = []
    for image_id, caps in captions.items():
        if which not in caps:
            raise CapevalError(f"no {which!r} caption for image {image_id!r} (was refinement switched off?)")
        row = {"image_id": image_id, "caption": caps[which]}
        if keep_both:
            for other, text in caps.items():
                if other != which:
                    row[f"{other}_caption"] = text
        rows.append(row)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return path
