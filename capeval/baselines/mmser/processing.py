"""Inputs of MM-SeR (Song et al.): CLIP-style image preprocessing and the token layout of both passes.

Initial pass:     ``[visual tokens] <bos> caption <eos>``
Refinement pass:  ``[SeR visual tokens] <bos> refine_prompt(initial caption) caption <eos>``

The loss covers ``caption <eos>`` only. Batches are right-padded for training; generation left-pads the
prompts itself (see :meth:`MMSeRForCaptioning.generate_ids`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

IGNORE_INDEX = -100


def preprocess_image(image: Image.Image, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """CLIP preprocessing: resize the shorter side to ``size`` (bicubic), centre-crop, scale to [0, 1], normalise."""
    w, h = image.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), Image.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    image = image.crop((left, top, left + size, top + size))
    arr = np.asarray(image, dtype=np.float32) / 255.0
    arr = (arr - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


class MMSeRProcessor:
    """Turns images and captions into model inputs, and generated ids back into text."""

    def __init__(self, tokenizer, config) -> None:
        self.tokenizer = tokenizer
        self.config = config
        pre, _, post = config.refine_prompt.partition("{caption}")
        self._pre = self._encode(pre)
        self._post = self._encode(post)
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            if getattr(tokenizer, name) is None:
                raise ValueError(f"the tokenizer has no {name.replace('_id', '')}")
        self.bos, self.eos, self.pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id

    def _encode(self, text: str) -> list[int]:
        text = text.strip()
        if not text:
            return []
        return list(self.tokenizer(" " + text, add_special_tokens=False)["input_ids"])

    def pixel_values(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """A ``(batch, 3, size, size)`` float tensor."""
        cfg = self.config
        return torch.stack([preprocess_image(im, cfg.image_size, cfg.image_mean, cfg.image_std) for im in images])

    def caption_ids(self, text: str, max_tokens: int | None = None) -> list[int]:
        """Token ids of a caption, no special tokens, cut to ``max_tokens``."""
        ids = self._encode(text)
        return ids[:max_tokens] if max_tokens else ids

    def initial_prompt(self) -> list[int]:
        """The text prompt of the initial pass (after the visual tokens)."""
        return [self.bos]

    def refine_prompt(self, initial_ids: Sequence[int]) -> list[int]:
        """The text prompt of the refinement pass around an initial caption's ids."""
        return [self.bos, *self._pre, *initial_ids, *self._post]

    def _pad_right(self, prompts: list[list[int]], targets: list[list[int]]) -> dict[str, torch.Tensor]:
        seqs = [p + t + [self.eos] for p, t in zip(prompts, targets, strict=True)]
        length = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), length), self.pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), length), dtype=torch.long)
        labels = torch.full((len(seqs), length), IGNORE_INDEX, dtype=torch.long)
        for i, (p, s) in enumerate(zip(prompts, seqs, strict=True)):
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
            labels[i, len(p): len(s)] = torch.tensor(s[len(p):])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    def pad_ids(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-pad id lists (an empty list becomes one pad token, masked out)."""
        length = max(1, max(len(s) for s in seqs))
        ids = torch.full((len(seqs), length), self.pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), length), dtype=torch.long)
        for i, s in enumerate(seqs):
            if s:
                ids[i, : len(s)] = torch.tensor(s)
                mask[i, : len(s)] = 1
        return ids, mask

    def initial_batch(self, targets: Sequence[str], max_tokens: int | None = None) -> dict[str, torch.Tensor]:
        """Training inputs of the initial pass for the given target captions."""
        tgt = [self.caption_ids(t, max_tokens) for t in targets]
        return self._pad_right([self.initial_prompt() for _ in tgt], tgt)

    def refine_batch(self, initials: Sequence[str], targets: Sequence[str],
                     max_tokens: int | None = None) -> dict[str, torch.Tensor]:
        """Training inputs of the refinement pass: initial captions in the prompt and to the SeR-Connector."""
        init = [self.caption_ids(t, max_tokens) for t in initials]
        tgt = [self.caption_ids(t, max_tokens) for t in targets]
        batch = self._pad_right([self.refine_prompt(i) for i in init], tgt)
        batch["initial_ids"], batch["initial_attention_mask"] = self.pad_ids(init)
        return batch

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids, stopping at the first end-of-sequence token."""
        out = []
        for i in ids:
            if i in (self.eos, self.pad):
                break
            out.append(int(i))
        return " ".join(self.tokenizer.decode(out, skip_special_tokens=True).split())
