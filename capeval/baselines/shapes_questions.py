"""Proxy-QA questions about the synthetic shapes images, derived from each image's scene layout (scenes.json).

Every question is answerable from a complete, correct caption of its image: how many shapes there are, the
colour of a named shape, which shape has a given colour, and the spatial relation between two shapes. Options
are fixed per question (the proxy-QA metric shuffles them per seed). Used by ``capeval demo``.
"""

from __future__ import annotations

import json
from pathlib import Path

from capeval.baselines.shapes import COLORS, SHAPES

COUNT_OPTIONS = ("one", "two", "three", "four")
RELATION_OPTIONS = ("to the left of", "to the right of", "above", "below")


def _relation(a: dict, b: dict) -> str:
    dx, dy = a["x"] - b["x"], a["y"] - b["y"]
    if abs(dx) >= abs(dy):
        return "to the left of" if dx < 0 else "to the right of"
    return "above" if dy < 0 else "below"


def questions_for_scene(scene: dict) -> list[dict]:
    """The questions of one scene: ``{image_id, question_id, question, options, answer, category}`` dicts."""
    objs = scene["objects"]
    sid = scene["image_id"]
    out = [{
        "image_id": sid, "question_id": f"{sid}-count", "category": "count",
        "question": "How many shapes are in the image?",
        "options": list(COUNT_OPTIONS), "answer": COUNT_OPTIONS[len(objs) - 1],
    }]
    shape_counts = {s: sum(o["shape"] == s for o in objs) for s in SHAPES}
    for k, o in enumerate(objs):
        if shape_counts[o["shape"]] == 1:
            out.append({
                "image_id": sid, "question_id": f"{sid}-color-{k}", "category": "color",
                "question": f"What colour is the {o['shape']}?",
                "options": list(COLORS), "answer": o["color"],
            })
        if sum(p["color"] == o["color"] for p in objs) == 1:
            out.append({
                "image_id": sid, "question_id": f"{sid}-shape-{k}", "category": "shape",
                "question": f"What shape is the {o['color']} object?",
                "options": list(SHAPES), "answer": o["shape"],
            })
    if len(objs) >= 2:
        a, b = objs[0], objs[1]
        out.append({
            "image_id": sid, "question_id": f"{sid}-relation", "category": "relation",
            "question": f"Where is the {a['color']} {a['shape']} relative to the {b['color']} {b['shape']}?",
            "options": list(RELATION_OPTIONS), "answer": _relation(a, b),
        })
    return out


def write_shapes_questions(scenes_path: str | Path, out_path: str | Path) -> Path:
    """Write the JSONL question set (capeval's plain JSONL question format) for every scene of scenes.json."""
    scenes = json.loads(Path(scenes_path).read_text(encoding="utf-8"))["scenes"]
    rows = [q for scene in scenes for q in questions_for_scene(scene)]
    out = Path(out_path)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return out
