"""The synthetic shapes dataset: determinism, splits, references that describe the scene, the weak captioner."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from capeval.baselines.shapes import (
    COLORS,
    REFS_PER_IMAGE,
    Scene,
    ShapeObject,
    captions_for,
    generate_shapes,
    make_scene,
)
from capeval.errors import CapevalError
from capeval.io.readers import read_references


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tmp_path):
    generate_shapes(tmp_path / "a", 6, seed=3, split="train")
    generate_shapes(tmp_path / "b", 6, seed=3, split="train")
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert len(a) == 6 + 2 and a == b


def test_prefix_stable_and_seed_and_split_matter(tmp_path):
    generate_shapes(tmp_path / "small", 3, seed=0, split="test")
    generate_shapes(tmp_path / "big", 5, seed=0, split="test")
    generate_shapes(tmp_path / "other", 3, seed=1, split="test")
    generate_shapes(tmp_path / "train", 3, seed=0, split="train")
    small = _digest(tmp_path / "small" / "test" / "images")
    big = _digest(tmp_path / "big" / "test" / "images")
    assert all(big[k] == v for k, v in small.items())  # image i depends on (seed, split, i) only
    other = _digest(tmp_path / "other" / "test" / "images")
    assert not set(small.values()) & set(other.values())
    train = _digest(tmp_path / "train" / "train" / "images")
    assert not set(small.values()) & set(train.values())


def test_references_are_readable_coco_annotations(tmp_path):
    images_dir, refs_path = generate_shapes(tmp_path, 8, seed=0, split="test")
    refs = read_references(refs_path)
    assert refs.format == "coco-annotations" and refs.id_kind == "str"
    assert len(refs.captions) == 8
    for sid, caps in refs.captions.items():
        assert len(caps) == REFS_PER_IMAGE and len(set(caps)) == REFS_PER_IMAGE
        assert (images_dir / refs.images[sid]).is_file() and refs.images[sid] == f"{sid}.png"


def test_captions_name_what_the_scene_holds(tmp_path):
    _, refs_path = generate_shapes(tmp_path, 40, seed=2, split="val")
    refs = read_references(refs_path).captions
    scenes = json.loads((tmp_path / "val" / "scenes.json").read_text())["scenes"]
    counts = {1: 0, 2: 0, 3: 0}
    for scene in scenes:
        objs = scene["objects"]
        counts[len(objs)] += 1
        for caption in refs[scene["image_id"]]:
            for o in objs:  # every caption names every shape with its colour
                if len(objs) > 1 or "background" not in caption:
                    assert o["shape"] in caption and o["color"] in caption, (caption, objs)
            for word in caption.split():  # and never a colour or shape that is not there
                if word in COLORS:
                    assert word in {o["color"] for o in objs}, caption
    assert all(counts.values())  # one, two and three shapes all occur


def test_relations_and_positions_by_hand():
    left = ShapeObject("circle", "red", "small", x=10, y=30, r=5)
    right = ShapeObject("square", "blue", "large", x=50, y=34, r=10)
    scene = Scene("t", "t.png", 64, 64, [left, right])
    assert scene.relation(0, 1) == "to the left of" and scene.relation(1, 0) == "to the right of"
    top = ShapeObject("triangle", "green", "small", x=30, y=5, r=4)
    scene2 = Scene("t", "t.png", 64, 64, [top, right])
    assert scene2.relation(0, 1) == "above" and scene2.relation(1, 0) == "below"
    assert scene2.position(0) == "at the top"
    assert Scene("t", "t.png", 64, 64, [left]).position(0) == "on the left"
    corner = ShapeObject("circle", "red", "small", x=60, y=60, r=3)
    assert Scene("t", "t.png", 64, 64, [corner]).position(0) == "in the bottom right corner"
    caps = captions_for(Scene("t", "t.png", 64, 64, [left, right]), np.random.default_rng(0), k=7)
    assert "a small red circle to the left of a large blue square" in caps
    assert "a large blue square to the right of a small red circle" in caps


def test_shapes_do_not_overlap_and_stay_inside():
    for i in range(50):
        scene = make_scene(0, "train", i)
        for o in scene.objects:
            assert o.r < o.x < scene.width - o.r and o.r < o.y < scene.height - o.r
        for a in range(len(scene.objects)):
            for b in range(a + 1, len(scene.objects)):
                oa, ob = scene.objects[a], scene.objects[b]
                assert np.hypot(oa.x - ob.x, oa.y - ob.y) > oa.r + ob.r


def test_bad_arguments():
    with pytest.raises(CapevalError, match="n >= 1"):
        generate_shapes("/nonexistent-not-written", 0)
    with pytest.raises(CapevalError, match="split name"):
        make_scene(0, "../evil", 0)


def test_oneshape_captioner_names_the_largest_shape(tmp_path):
    from capeval.baselines.oneshape import caption_images_oneshape

    images_dir, _ = generate_shapes(tmp_path, 30, seed=4, split="test")
    scenes = json.loads((tmp_path / "test" / "scenes.json").read_text())["scenes"]
    caps = caption_images_oneshape(images_dir)
    assert set(caps) == {s["image_id"] for s in scenes}
    checked = 0
    for s in scenes:
        named = caps[s["image_id"]].split()
        assert len(named) == 3 and named[0] == "a"
        largest = max(s["objects"], key=lambda o: o["r"])
        sizes = sorted((o["r"] for o in s["objects"]), reverse=True)
        if len(sizes) > 1 and sizes[0] < 1.3 * sizes[1]:
            continue  # two shapes of about the same size: either may be taken
        assert (named[1], named[2]) == (largest["color"], largest["shape"]), (caps[s["image_id"]], s)
        checked += 1
    assert checked >= 10


def test_object_scores_by_hand(tmp_path):
    from capeval.baselines.shapes import mentioned_objects, object_scores

    assert mentioned_objects("a small red circle to the left of a blue square , and a large green triangle") == [
        ("small", "red", "circle"), (None, "blue", "square"), ("large", "green", "triangle")]
    scenes = {"scenes": [
        {"image_id": "a", "objects": [{"color": "red", "shape": "circle", "size": "small"},
                                      {"color": "blue", "shape": "square", "size": "large"}]},
        {"image_id": "b", "objects": [{"color": "green", "shape": "triangle", "size": "large"}]},
    ]}
    path = tmp_path / "scenes.json"
    path.write_text(json.dumps(scenes))
    caps = {"a": "a small red circle above a small blue square", "b": "a large green circle"}
    got = object_scores(caps, path)
    # Named pairs: red circle (right), blue square (right), green circle (not there) -> precision 2/3;
    # true shapes 3, named right 2 -> recall 2/3; image a exact, image b hallucinates; sizes: small red circle
    # right, small blue square wrong -> 1/2.
    assert got == {"precision": 2 / 3, "recall": 2 / 3, "exact": 0.5, "hallucination": 0.5,
                   "size_accuracy": 0.5, "images": 2}
    with pytest.raises(CapevalError, match="no scene"):
        object_scores({"zzz": "a red circle"}, path)
