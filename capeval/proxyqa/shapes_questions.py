"""Questions about capeval's synthetic shapes images, derived from their ground truth (``scenes.json``).

Every image of the shapes dataset (:mod:`capeval.baselines.shapes`, ``datasets/shapes.md``) gets up to six
questions whose answers follow from the scene, so proxy QA runs on the shapes test split with no annotation:
how many shapes (open), the colour of a shape, the shape of a colour, a shape's size, the relation of two
shapes (multiple choice) and whether a given shape is present (yes/no). Distractors and the present/absent
choice come from a hash of the image id, so the same scenes always give the same questions. The split of
each question is the image's shape count (``1-shape``, ``2-shapes``, ``3-shapes``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from capeval.errors import InputError

COLORS = ("red", "green", "blue", "yellow", "purple")
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")
RELATIONS = ("to the left of", "to the right of", "above", "below")


def _rank(image_id: str, salt: str, items: list[str]) -> list[str]:
    """``items`` in a fixed pseudo-random order derived from (image id, salt)."""
    return sorted(items, key=lambda x: hashlib.sha256(f"{image_id}\x1f{salt}\x1f{x}".encode()).hexdigest())


def questions_for_scene(scene: dict[str, Any]) -> list[dict[str, Any]]:
    """The question records (plain-JSONL layout) of one scene from ``scenes.json``."""
    image_id = str(scene["image_id"])
    objects = scene["objects"]
    n = len(objects)
    split = "1-shape" if n == 1 else f"{n}-shapes"
    out: list[dict[str, Any]] = []

    def add(key: str, question: str, answer: Any, category: str, options: list[str] | None = None) -> None:
        rec: dict[str, Any] = {"question_id": f"{image_id}-{key}", "image_id": image_id, "question": question}
        if options is not None:
            rec["options"] = options
        rec.update({"answer": answer, "category": category, "split": split})
        out.append(rec)

    add("count", "How many shapes are in the image?", [str(n)], "count")
    first = objects[0]
    shape_counts = {s: sum(o["shape"] == s for o in objects) for s in SHAPES}
    color_counts = {c: sum(o["color"] == c for o in objects) for c in COLORS}
    if shape_counts[first["shape"]] == 1:
        distract = _rank(image_id, "color", [c for c in COLORS if c != first["color"]])[:3]
        add("color", f"What color is the {first['shape']}?", first["color"], "color",
            _rank(image_id, "color-order", [first["color"], *distract]))
    if color_counts[first["color"]] == 1:
        add("shape", f"What shape is the {first['color']} object?", first["shape"], "shape", list(SHAPES))
    add("size", f"What size is the {first['color']} {first['shape']}?", first["size"], "size", list(SIZES))
    relations = scene.get("relations") or []
    if relations:
        i, rel, j = relations[0]
        a, b = objects[i], objects[j]
        add("relation", f"Where is the {a['color']} {a['shape']} relative to the {b['color']} {b['shape']}?",
            rel, "relation", list(RELATIONS))
    present = {(o["color"], o["shape"]) for o in objects}
    if int(hashlib.sha256(f"{image_id}\x1fexists".encode()).hexdigest(), 16) % 2:
        color, shape = first["color"], first["shape"]
    else:
        color, shape = next((c, s) for c in _rank(image_id, "absent-c", list(COLORS))
                            for s in _rank(image_id, "absent-s", list(SHAPES)) if (c, s) not in present)
    add("exists", f"Is there a {color} {shape} in the image?", "Yes" if (color, shape) in present else "No",
        "existence", ["Yes", "No"])
    return out


def shapes_questions(scenes: dict[str, Any] | list[dict[str, Any]], path: str = "<scenes>") -> list[dict]:
    """Question records for every scene of a ``scenes.json`` document (or its ``scenes`` list)."""
    items = scenes.get("scenes") if isinstance(scenes, dict) else scenes
    if not isinstance(items, list):
        raise InputError("expected a shapes scenes.json ({'info', 'scenes': [...]})", path=path)
    out: list[dict] = []
    for n, scene in enumerate(items):
        if not isinstance(scene, dict) or "image_id" not in scene or not scene.get("objects"):
            raise InputError(f"scene {n} has no image_id or objects", path=path)
        out.extend(questions_for_scene(scene))
    return out


def is_scenes_document(doc: Any) -> bool:
    """True for the ``scenes.json`` written by the shapes generator."""
    return isinstance(doc, dict) and isinstance(doc.get("scenes"), list) and "info" in doc


def write_shapes_questions(scenes_path: str | Path, out_path: str | Path) -> int:
    """Write the questions of a ``scenes.json`` as plain JSONL; returns how many were written."""
    doc = json.loads(Path(scenes_path).read_text(encoding="utf-8"))
    records = shapes_questions(doc, str(scenes_path))
    Path(out_path).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return len(records)
