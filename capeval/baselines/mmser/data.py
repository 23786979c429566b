"""Image-caption data for MM-SeR training and inference: an images folder plus any captions file capeval reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from capeval.baselines.images import list_images, load_image
from capeval.baselines.mmser.processing import preprocess_image
from capeval.errors import InputError
from capeval.io.readers import read_references


@dataclass
class CaptionedImages:
    """Training data: image paths and their reference captions, in the captions file's order."""

    ids: list[str]
    paths: list[Path]
    captions: list[list[str]]

    def pairs(self) -> list[tuple[int, str]]:
        """One ``(image index, caption)`` per reference: the unit of an epoch."""
        return [(i, c) for i, caps in enumerate(self.captions) for c in caps]


def load_captioned_images(images_dir: str | Path, captions_path: str | Path) -> CaptionedImages:
    """Match every id of a captions file (COCO, JSON map, JSONL, CSV) to an image of ``images_dir``.

    An id is matched through the file name the captions file gives for it (COCO ``file_name``, an image
    column), else through an image file whose stem is the id. A missing image is an error naming the id.
    """
    refs = read_references(captions_path)
    root = Path(images_dir)
    by_stem = dict(list_images(root))
    ids, paths, captions = [], [], []
    for sid, caps in refs.captions.items():
        caps = [" ".join(c.split()) for c in caps if c.strip()]
        if not caps:
            raise InputError("every caption of this id is blank", path=str(captions_path), sample_id=sid)
        named = refs.images.get(sid)
        path = None
        if named:
            for cand in (root / named, Path(named), root / Path(named).name):
                if cand.is_file():
                    path = cand
                    break
        if path is None:
            path = by_stem.get(sid)
        if path is None:
            hint = f" (looked for {named!r} and for a file named {sid}.*)" if named else f" (no file named {sid}.*)"
            raise InputError(f"no image for this id in {root}{hint}", path=str(captions_path), sample_id=sid)
        ids.append(sid)
        paths.append(path)
        captions.append(caps)
    return CaptionedImages(ids, paths, captions)


class PixelCache:
    """Preprocessed pixels per image path; kept in memory when ``keep`` (small datasets such as shapes)."""

    def __init__(self, size: int, mean, std, keep: bool = True) -> None:
        self.size, self.mean, self.std, self.keep = size, mean, std, keep
        self._store: dict[Path, torch.Tensor] = {}

    def __call__(self, path: Path) -> torch.Tensor:
        """The ``(3, size, size)`` tensor of one image."""
        if path in self._store:
            return self._store[path]
        pixels = preprocess_image(load_image(path), self.size, self.mean, self.std)
        if self.keep:
            self._store[path] = pixels
        return pixels

    def batch(self, paths: list[Path]) -> torch.Tensor:
        """A ``(batch, 3, size, size)`` tensor."""
        return torch.stack([self(p) for p in paths])
