"""A synthetic "shapes" captioning dataset: PIL images of coloured shapes with several reference captions each.

Each image holds one to three shapes (circle, square, triangle) in one of five colours and two sizes, placed
without overlap on a light background. Every image gets ``REFS_PER_IMAGE`` reference captions in varied wording
that name the shapes, their colours and sizes, a position (one shape) or a spatial relation (left of, right of,
above, below). Image ``i`` of a split depends only on ``(seed, split, i)``, so the same command writes
byte-identical files and a larger ``n`` extends a smaller one. See ``datasets/shapes.md``.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from capeval.errors import CapevalError

SHAPES = ("circle", "square", "triangle")
COLORS = {
    "red": (215, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 215),
    "yellow": (230, 195, 25),
    "purple": (135, 55, 185),
}
SIZES = {"small": 0.10, "large": 0.19}  # radius as a fraction of the image side
RELATIONS = ("to the left of", "to the right of", "above", "below")
INVERSE = {"to the left of": "to the right of", "to the right of": "to the left of",
           "above": "below", "below": "above"}
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
REFS_PER_IMAGE = 5
DEFAULT_SIZE = 64


@dataclass
class ShapeObject:
    """One shape in a scene; ``x``, ``y`` (centre) and ``r`` (radius) are in pixels."""

    shape: str
    color: str
    size: str
    x: float
    y: float
    r: float

    def phrase(self, with_size: bool = True) -> str:
        """``"small red circle"`` (or ``"red circle"``)."""
        return f"{self.size} {self.color} {self.shape}" if with_size else f"{self.color} {self.shape}"


@dataclass
class Scene:
    """A generated image's content: its shapes and the relation of each ordered pair of shapes."""

    image_id: str
    file_name: str
    width: int
    height: int
    objects: list[ShapeObject]

    def relation(self, i: int, j: int) -> str:
        """The spatial relation of object ``i`` to object ``j`` along the axis where they are further apart."""
        a, b = self.objects[i], self.objects[j]
        dx, dy = a.x - b.x, a.y - b.y
        if abs(dx) >= abs(dy):
            return "to the left of" if dx < 0 else "to the right of"
        return "above" if dy < 0 else "below"

    def position(self, i: int) -> str:
        """Where a shape lies on a 3x3 grid, as a phrase (``"in the top left corner"``, ``"in the center"``)."""
        o = self.objects[i]
        col = min(2, int(3 * o.x / self.width))
        row = min(2, int(3 * o.y / self.height))
        vert = ("top", "", "bottom")[row]
        horiz = ("left", "", "right")[col]
        if vert and horiz:
            return f"in the {vert} {horiz} corner"
        if vert:
            return f"at the {vert}"
        if horiz:
            return f"on the {horiz}"
        return "in the center"


def split_code(split: str) -> int:
    """A stable integer for a split name (train/val/test get 0/1/2; others a CRC32 of the name)."""
    if not split or not split.replace("_", "").replace("-", "").isalnum():
        raise CapevalError(f"split name must be letters, digits, '-' or '_', got {split!r}")
    return SPLIT_CODES.get(split, zlib.crc32(split.encode()) + 3)


def _place(rng: np.random.Generator, size: int, radii: list[float]) -> list[tuple[float, float]] | None:
    """Centres for shapes of the given radii, inside the image and not overlapping (None if it can't)."""
    placed: list[tuple[float, float, float]] = []
    for r in radii:
        for _ in range(200):
            x = rng.uniform(r + 1, size - r - 1)
            y = rng.uniform(r + 1, size - r - 1)
            if all(np.hypot(x - px, y - py) > r + pr + 0.06 * size for px, py, pr in placed):
                placed.append((x, y, r))
                break
        else:
            return None
    return [(x, y) for x, y, _ in placed]


def make_scene(seed: int, split: str, index: int, size: int = DEFAULT_SIZE) -> Scene:
    """The scene of image ``index`` of ``split``: a pure function of ``(seed, split, index, size)``."""
    rng = np.random.default_rng([seed, split_code(split), index])
    count = int(rng.choice([1, 2, 3], p=[0.25, 0.5, 0.25]))
    while True:
        kinds = set()
        while len(kinds) < count:  # distinct (colour, shape) pairs so every caption is unambiguous
            kinds.add((str(rng.choice(list(COLORS))), str(rng.choice(SHAPES))))
        kinds_list = sorted(kinds)
        rng.shuffle(kinds_list)
        sizes = [str(rng.choice(list(SIZES))) for _ in kinds_list]
        radii = [SIZES[s] * size * rng.uniform(0.9, 1.1) for s in sizes]
        centres = _place(rng, size, radii)
        if centres is not None:
            break
    objects = [ShapeObject(shape=sh, color=c, size=s, x=round(float(x), 2), y=round(float(y), 2),
                           r=round(float(r), 2))
               for (c, sh), s, r, (x, y) in zip(kinds_list, sizes, radii, centres, strict=True)]
    image_id = f"{split}_{index:05d}"
    return Scene(image_id=image_id, file_name=f"{image_id}.png", width=size, height=size, objects=objects)


def render(scene: Scene, seed: int, split: str, index: int) -> Image.Image:
    """Draw a scene: a near-white background with a little colour jitter, each shape filled in its colour."""
    rng = np.random.default_rng([seed, split_code(split), index, 1])
    grey = int(rng.integers(236, 250))
    base = [int(np.clip(grey + t, 0, 255)) for t in rng.integers(-6, 7, size=3)]
    img = Image.new("RGB", (scene.width, scene.height), tuple(base))
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        jitter = rng.integers(-12, 13, size=3)
        fill = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLORS[o.color], jitter, strict=True))
        x, y, r = o.x, o.y, o.r
        if o.shape == "circle":
            draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
        elif o.shape == "square":
            s = r * 0.89  # a square of about the circle's area
            draw.rectangle([x - s, y - s, x + s, y + s], fill=fill)
        else:
            draw.polygon([(x, y - r * 1.1), (x - r * 1.15, y + r * 0.8), (x + r * 1.15, y + r * 0.8)], fill=fill)
    return img


def _article(phrase: str) -> str:
    return f"a {phrase}"


def captions_for(scene: Scene, rng: np.random.Generator, k: int = REFS_PER_IMAGE) -> list[str]:
    """``k`` distinct reference captions for a scene, drawn from a pool of varied wordings."""
    objs = scene.objects
    pool: list[str] = []
    if len(objs) == 1:
        o, pos = objs[0], scene.position(0)
        pool = [
            f"a {o.phrase()} {pos}",
            f"there is a {o.phrase()} {pos}",
            f"a {o.phrase(False)} {pos}",
            f"a {o.phrase()} on a white background",
            f"the image shows a {o.phrase()}",
            f"a single {o.phrase()} {pos}",
            f"one {o.phrase(False)} {pos} of the image",
        ]
    elif len(objs) == 2:
        a, b = objs
        rel = scene.relation(0, 1)
        pool = [
            f"a {a.phrase()} {rel} a {b.phrase()}",
            f"a {b.phrase()} {INVERSE[rel]} a {a.phrase()}",
            f"there is a {a.phrase()} {rel} a {b.phrase()}",
            f"a {a.phrase(False)} {rel} a {b.phrase(False)}",
            f"a {a.phrase()} and a {b.phrase()}",
            f"two shapes , a {a.phrase()} and a {b.phrase()}",
            f"the {a.color} {a.shape} is {rel} the {b.color} {b.shape}",
        ]
    else:
        a, b, c = objs
        rel_ab, rel_bc = scene.relation(0, 1), scene.relation(1, 2)
        pool = [
            f"a {a.phrase()} , a {b.phrase()} and a {c.phrase()}",
            f"three shapes , a {a.phrase()} , a {b.phrase()} and a {c.phrase()}",
            f"a {a.phrase()} {rel_ab} a {b.phrase()} and a {c.phrase()}",
            f"a {a.phrase(False)} , a {b.phrase(False)} and a {c.phrase(False)}",
            f"there are three shapes , a {a.phrase(False)} , a {b.phrase(False)} and a {c.phrase(False)}",
            f"a {b.phrase()} {rel_bc} a {c.phrase()} and a {a.phrase()}",
            f"a {a.phrase(False)} {rel_ab} a {b.phrase(False)} , and a {c.phrase(False)}",
        ]
    chosen = rng.choice(len(pool), size=min(k, len(pool)), replace=False)
    return [pool[int(i)] for i in sorted(chosen)]


def generate_shapes(
    out_dir: str | Path, n: int, seed: int = 0, split: str = "test", size: int = DEFAULT_SIZE
) -> tuple[Path, Path]:
    """Write ``n`` images of ``split`` to ``out_dir/<split>/images`` with their references and scene layouts.

    Returns ``(images_dir, references_path)``. ``references.json`` is a COCO annotation file (string image
    ids such as ``"test_00003"`` equal to the image file stems); ``scenes.json`` lists every shape's colour,
    size, type, centre and radius for question sets built on the images.
    """
    if n < 1:
        raise CapevalError(f"the shapes dataset needs n >= 1, got {n}")
    if size < 16:
        raise CapevalError(f"image size must be at least 16 pixels, got {size}")
    root = Path(out_dir) / split
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    images, annotations, scenes = [], [], []
    for i in range(n):
        scene = make_scene(seed, split, i, size)
        render(scene, seed, split, i).save(images_dir / scene.file_name, format="PNG")
        caption_rng = np.random.default_rng([seed, split_code(split), i, 2])
        images.append({"id": scene.image_id, "file_name": scene.file_name, "width": size, "height": size})
        for text in captions_for(scene, caption_rng):
            annotations.append({"id": len(annotations) + 1, "image_id": scene.image_id, "caption": text})
        scenes.append({"image_id": scene.image_id, "file_name": scene.file_name,
                       "objects": [asdict(o) for o in scene.objects],
                       "relations": [[i1, scene.relation(i1, j1), j1] for i1 in range(len(scene.objects))
                                     for j1 in range(len(scene.objects)) if i1 != j1]})
    info = {"description": "capeval synthetic shapes captions", "seed": seed, "split": split, "n": n,
            "image_size": size}
    references_path = root / "references.json"
    references_path.write_text(json.dumps({"info": info, "images": images, "annotations": annotations},
                                          indent=1) + "\n", encoding="utf-8")
    (root / "scenes.json").write_text(json.dumps({"info": info, "scenes": scenes}, indent=1) + "\n",
                                      encoding="utf-8")
    return images_dir, references_path


def vocabulary() -> list[str]:
    """Every word the shapes captions can use (for building a word-level tokenizer)."""
    words: set[str] = set()
    rng = np.random.default_rng(0)
    for i in range(400):
        scene = make_scene(12345, "vocab", i)
        for text in captions_for(scene, rng, k=100):
            words.update(text.split())
    words.update(SHAPES, COLORS, SIZES)
    for rel in RELATIONS:
        words.update(rel.split())
    return sorted(words)


def mentioned_objects(caption: str) -> list[tuple[str | None, str, str]]:
    """``(size or None, colour, shape)`` for every "[size] colour shape" phrase of a shapes caption."""
    words = caption.lower().replace(",", " ").split()
    found = []
    for i, w in enumerate(words):
        if w in SHAPES and i >= 1 and words[i - 1] in COLORS:
            size = words[i - 2] if i >= 2 and words[i - 2] in SIZES else None
            found.append((size, words[i - 1], w))
    return found


def object_scores(captions: dict[str, str], scenes_path: str | Path) -> dict[str, float]:
    """Grounding of captions in the true scenes (a CHAIR-like check for this dataset).

    Over all images: ``precision`` (named colour+shape pairs that are in the image), ``recall`` (shapes of the
    image that are named), ``exact`` (images whose named pairs equal the image's), ``hallucination`` (images
    with at least one named pair that is not there) and ``size_accuracy`` (named sizes that are right).
    """
    scenes = {s["image_id"]: s for s in json.loads(Path(scenes_path).read_text(encoding="utf-8"))["scenes"]}
    named = right = total = exact = halluc = sizes = sizes_right = 0
    for image_id, caption in captions.items():
        if image_id not in scenes:
            raise CapevalError(f"{scenes_path}: no scene for image {image_id!r}")
        truth = {(o["color"], o["shape"]): o["size"] for o in scenes[image_id]["objects"]}
        said = mentioned_objects(caption)
        pairs = {(c, s) for _, c, s in said}
        named += len(pairs)
        right += len(pairs & truth.keys())
        total += len(truth)
        exact += pairs == truth.keys()
        halluc += bool(pairs - truth.keys())
        for size, c, s in said:
            if size is not None and (c, s) in truth:
                sizes += 1
                sizes_right += size == truth[(c, s)]
    n = max(1, len(captions))
    return {"precision": right / max(1, named), "recall": right / max(1, total), "exact": exact / n,
            "hallucination": halluc / n, "size_accuracy": sizes_right / max(1, sizes), "images": len(captions)}
