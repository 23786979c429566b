"""A deliberately weak rule-based captioner for the shapes dataset: it names only the largest shape.

Pixels are matched to the dataset's palette; the largest connected region of one colour is taken as the main
shape and its type is guessed from how much of its bounding box it fills (square ~1, circle ~0.79, triangle
~0.5). The caption is ``"a <colour> <shape>"``: no size, no position, no other shapes, no relations. It is the
lower anchor of ``capeval demo``, not a model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from capeval.baselines.images import list_images, load_image
from capeval.baselines.shapes import COLORS

MAX_COLOR_DISTANCE = 60.0


def describe(image) -> str:
    """``"a red circle"`` for the largest single-colour region of a PIL image (``"an empty image"`` if none)."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32)
    names = list(COLORS)
    palette = np.asarray([COLORS[n] for n in names], dtype=np.float32)
    dist = np.linalg.norm(arr[:, :, None, :] - palette[None, None], axis=-1)
    nearest = dist.argmin(axis=-1)
    close = dist.min(axis=-1) < MAX_COLOR_DISTANCE
    best: tuple[int, str, np.ndarray] | None = None
    for k, name in enumerate(names):
        labels, count = ndimage.label(close & (nearest == k))
        if count == 0:
            continue
        sizes = np.bincount(labels.ravel())[1:]
        j = int(sizes.argmax())
        if best is None or sizes[j] > best[0]:
            best = (int(sizes[j]), name, labels == j + 1)
    if best is None:
        return "an empty image"
    area, color, region = best
    rows, cols = np.nonzero(region)
    box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    fill = area / box
    shape = "square" if fill > 0.9 else "circle" if fill > 0.65 else "triangle"
    return f"a {color} {shape}"


def caption_images_oneshape(images_dir: str | Path) -> dict[str, str]:
    """``{image_id: caption}`` for every image of a folder (id = file stem), naming one shape each."""
    return {image_id: describe(load_image(path)) for image_id, path in list_images(images_dir)}
