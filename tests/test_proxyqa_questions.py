"""Question-set loaders (VLMEvalKit TSV, CaptionQA JSON, JSONL), the shipped set, and scoring by hand."""

from __future__ import annotations

import base64
import io
import json
import math
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from capeval.errors import CapevalError, InputError
from capeval.proxyqa.questions import dump_images, load_questions
from capeval.proxyqa.scoring import (
    Graded,
    aggregate,
    breakdown,
    cannot_score,
    mean_std,
    per_image,
    score_choice,
    utility_ratio,
)


def _png_b64(color: str) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _tsv(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "bench.tsv"
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)  # how VLMEvalKit writes its TSVs
    return path


def _vlmeval_rows() -> list[dict]:
    red, blue = _png_b64("red"), _png_b64("blue")
    return [
        {"index": 0, "image": red, "question": "What color is the square?", "hint": "Look closely.",
         "A": "red", "B": "blue", "C": "green", "D": "black", "answer": "A", "category": "color",
         "l2-category": "perception", "split": "dev"},
        {"index": 1, "image": "0", "question": "What shape is it?", "hint": None, "A": "square",
         "B": "circle", "C": None, "D": None, "answer": "A", "category": "shape", "l2-category": "perception",
         "split": "dev"},
        {"index": 2, "image": blue, "question": "How many squares?", "hint": None, "A": None, "B": None,
         "C": None, "D": None, "answer": "['one', '1']", "category": "count", "l2-category": "",
         "split": "test"},
    ]


def test_vlmevalkit_tsv(tmp_path):
    qs = load_questions(_tsv(tmp_path, _vlmeval_rows()))
    assert qs.format == "vlmevalkit-tsv" and len(qs) == 3
    q0, q1, q2 = qs.questions
    assert (q0.qid, q0.image_id, q0.options, q0.answer_index, q0.hint) == \
        ("0", "0", ("red", "blue", "green", "black"), 0, "Look closely.")
    assert (q0.category, q0.subcategory, q0.split) == ("color", "perception", "dev")
    assert q1.image_id == "0" and q1.options == ("square", "circle") and q1.hint == ""  # row 0's image
    assert q1.images == q0.images and q0.images[0].startswith("data:image/png;base64,")
    assert not q2.is_mc and q2.answers == ("one", "1") and q2.image_id == "2"
    assert qs.by_image["0"] == [q0, q1]
    assert "vlmeval" not in sys.modules
    written = dump_images(qs, tmp_path / "imgs")
    assert sorted(p.name for p in written) == ["0.png", "2.png"]
    assert Image.open(written[0]).getpixel((0, 0)) == (255, 0, 0)


def test_vlmevalkit_tsv_image_path_and_errors(tmp_path):
    rows = [{"index": 7, "image_path": "pics/cat_01.jpg", "question": "Animal?", "A": "cat", "B": "dog",
             "answer": "B"}]
    q = load_questions(_tsv(tmp_path, rows)).questions[0]
    assert q.image_id == "cat_01" and q.images[0].endswith("pics/cat_01.jpg") and q.answer_index == 1
    bad = [dict(rows[0], answer="E")]
    with pytest.raises(InputError, match=r"bench\.tsv: id '7': answer 'E' is neither"):
        load_questions(_tsv(tmp_path, bad))
    dangling = [{"index": 1, "image": "99", "question": "q?", "A": "x", "B": "y", "answer": "A"}]
    with pytest.raises(InputError, match="names no row holding a base64 image"):
        load_questions(_tsv(tmp_path, dangling))
    no_answer = [{"index": 1, "image_path": "a.jpg", "question": "q?", "answer": ""}]
    with pytest.raises(InputError, match="open question without an answer"):
        load_questions(_tsv(tmp_path, no_answer))


def test_captionqa_json_layouts(tmp_path):
    by_image = {"nat_001": [
        {"question": "What is on the table?", "choices": ["a cup", "a book", "a phone"], "answer": "a book",
         "category": ["Object Existence", "Object presence"]},
        {"question": "Is the light on?", "choices": ["Yes", "No"], "answer": "No", "category": "Attribute"},
    ]}
    p = tmp_path / "captionqa.json"
    p.write_text(json.dumps(by_image))
    qs = load_questions(p)
    assert qs.format == "captionqa-json"
    assert [q.qid for q in qs.questions] == ["nat_001#0", "nat_001#1"]
    assert qs.questions[0].answer_index == 1 and qs.questions[0].category == "Object Existence"
    assert qs.questions[0].subcategory == "Object presence"
    hf = [{"id": "doc_042", "domain": "document", "questions": by_image["nat_001"]}]
    p2 = tmp_path / "hf.json"
    p2.write_text(json.dumps(hf))
    qs2 = load_questions(p2)
    assert [q.qid for q in qs2.questions] == ["doc_042#0", "doc_042#1"] and qs2.splits() == ["document"]
    by_image["nat_001"][0]["answer"] = "a lamp"
    p.write_text(json.dumps(by_image))
    with pytest.raises(InputError, match=r"captionqa\.json: id 'nat_001#0': answer 'a lamp'"):
        load_questions(p)


def test_jsonl_and_errors(tmp_path):
    p = tmp_path / "q.jsonl"
    p.write_text(
        json.dumps({"image_id": 5, "question": "Color?", "options": ["red", "blue"], "answer": "B"}) + "\n"
        + json.dumps({"image_id": "5", "question": "How many?", "answer": ["2", "two"], "category": "count"})
        + "\n")
    qs = load_questions(p)
    mc, op = qs.questions
    assert mc.answer_index == 1 and mc.image_id == "5" and mc.qid.startswith("5#") and len(mc.qid) == 10
    assert op.answers == ("2", "two") and not op.is_mc
    assert load_questions(p).questions[0].qid == mc.qid  # content-derived id: stable
    p.write_text(json.dumps({"image_id": 1, "question": "q", "options": ["a"], "answer": "a"}) + "\n")
    with pytest.raises(InputError, match="at least 2 options"):
        load_questions(p)
    p.write_text(json.dumps({"image_id": 1, "question": "q", "answer": "a", "question_id": "x"}) + "\n" +
                 json.dumps({"image_id": 2, "question": "r", "answer": "b", "question_id": "x"}) + "\n")
    with pytest.raises(InputError, match="duplicate question id"):
        load_questions(p)
    p.write_text('{"image_id": 1, "question": \n')
    with pytest.raises(InputError, match="line 1: invalid JSON"):
        load_questions(p)
    with pytest.raises(CapevalError, match="not found"):
        load_questions(tmp_path / "missing.jsonl")


def test_shipped_thumb_set(thumb):
    qs = load_questions("thumb")
    refs, _ = thumb
    assert 40 <= len(qs) <= 80 and len(qs.by_image) >= 20
    assert set(qs.by_image) <= set(refs)
    assert set(qs.categories()) == {"object", "count", "attribute", "action", "scene"}
    assert set(qs.splits()) == {"animals", "people", "food", "places"}
    assert sum(not q.is_mc for q in qs.questions) >= 10
    assert sum(q.options == ("Yes", "No") for q in qs.questions) >= 2


# ------------------------------------------------------------------------------------ scoring by hand


def test_cannot_score_is_captionqa_rule():
    assert cannot_score(4) == pytest.approx(0.30)
    assert cannot_score(2) == pytest.approx(0.55)
    assert cannot_score(3) == pytest.approx(1 / 3 + 0.05)
    assert score_choice(4, 2, 4) == (pytest.approx(0.30), False, True)  # index K = the appended option
    assert score_choice(2, 2, 4) == (1.0, True, False)
    assert score_choice(1, 2, 4) == (0.0, False, False)
    with pytest.raises(ValueError):
        score_choice(5, 2, 4)


def test_aggregate_by_hand():
    nan = float("nan")
    recs = [
        Graded("q1", "i1", 1.0, correct=True, category="object", split="A"),
        Graded("q2", "i1", 0.3, cannot=True, category="color", split="A"),
        Graded("q3", "i1", 0.0, category="count", split="A"),
        Graded("q4", "i2", 0.55, cannot=True, category="object", split="B"),
        Graded("q5", "i2", nan, category="scene", split="B"),
    ]
    g = aggregate(recs)
    assert g.score == pytest.approx((1 + 0.3 + 0 + 0.55) / 4)  # 0.4625, the unparsable q5 left out
    assert (g.accuracy, g.cannot, g.n, g.answered, g.unparsable) == (0.25, 0.5, 5, 4, 1)
    cats = breakdown(recs, "category")
    assert cats["object"].score == pytest.approx(0.775) and cats["color"].score == pytest.approx(0.3)
    assert math.isnan(cats["scene"].score) and cats["scene"].unparsable == 1
    splits = breakdown(recs, "split")
    assert splits["A"].score == pytest.approx(1.3 / 3) and splits["B"].score == pytest.approx(0.55)
    per = per_image(recs, ["i2", "i1", "i3"])
    assert per[0] == pytest.approx(0.55) and per[1] == pytest.approx(1.3 / 3) and math.isnan(per[2])
    assert math.isnan(aggregate([recs[-1]]).score)


def test_seed_mean_std_and_utility():
    mean, std = mean_std([0.5, 0.7, 0.6])
    assert mean == pytest.approx(0.6) and std == pytest.approx(0.1)  # sample std (ddof=1)
    assert mean_std([0.4]) == (0.4, None)
    assert mean_std([0.4, float("nan")]) == (0.4, None)
    assert utility_ratio(0.45, 0.9) == pytest.approx(0.5)
    assert math.isnan(utility_ratio(0.45, 0.0))


def test_shapes_questions_follow_the_scenes(tmp_path):
    from capeval.baselines.shapes import generate_shapes

    _, refs_path = generate_shapes(tmp_path, 40, seed=0, split="test")
    scenes_path = refs_path.with_name("scenes.json")
    qs = load_questions(scenes_path)
    assert qs.format == "shapes-scenes" and len(qs.by_image) == 40
    assert load_questions(scenes_path).questions == qs.questions  # deterministic
    scenes = {s["image_id"]: s for s in json.loads(scenes_path.read_text())["scenes"]}
    refs = json.loads(refs_path.read_text())["annotations"]
    for q in qs.questions:
        objects = scenes[q.image_id]["objects"]
        kind = q.qid.rsplit("-", 1)[1]
        if kind == "count":
            assert q.answers == (str(len(objects)),)
        elif kind == "color":
            shape = q.question.split()[-1].rstrip("?")
            assert [o["color"] for o in objects if o["shape"] == shape] == [q.answers[0]]
            assert any(q.answers[0] in r["caption"] for r in refs if r["image_id"] == q.image_id)
        elif kind == "exists":
            color, shape = q.question.split()[3:5]
            assert q.answers[0] == ("Yes" if any(o["color"] == color and o["shape"] == shape
                                                 for o in objects) else "No")
        if q.is_mc:
            assert q.answers[0] in q.options
    assert {"count", "color", "shape", "size", "existence", "relation"} == set(qs.categories())
