"""The registered ``capture`` metric: offline through capeval.evaluate and ``capeval score``, signature, options."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import capeval
from capeval.capture.scoring import OUTPUTS
from capeval.errors import CapevalError, MetricUnavailable
from capeval.metrics.capture import Capture
from capeval.registry import get_metric_class

OPTS = {"capture_parser": "spacy", "capture_encoder": "minilm"}


def test_registered_with_all_outputs():
    cls = get_metric_class("capture")
    assert cls is Capture
    assert cls.outputs == OUTPUTS == (
        "capture", "capture_obj_p", "capture_obj_r", "capture_obj_f1", "capture_attr_p", "capture_attr_r",
        "capture_attr_f1", "capture_rel_p", "capture_rel_r", "capture_rel_f1")
    assert cls.availability().ok, cls.availability().reason


def test_signature_names_parser_and_encoder():
    metric = Capture.from_options(OPTS)
    sig = metric.signatures([["a", "b", "c", "d"]])
    assert sig["capture"] == (
        "capture|nrefs:4|parser:spacy-en_core_web_sm-3.8.0|encoder:all-MiniLM-L6-v2|wordnet:3.0|"
        f"sents:spacy-rules|nouns:written|weights:0.5,0.5,0.2|v:2|capeval:{capeval.__version__}")
    assert sig["capture_rel_f1"].startswith("capture_rel_f1|nrefs:4|parser:spacy-")


def test_options_are_checked(monkeypatch):
    with pytest.raises(CapevalError, match="capture_parser must be one of"):
        Capture.from_options({"capture_parser": "stanford"})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-capeval-test")
    with pytest.raises(MetricUnavailable, match="capture_parser=spacy"):
        capeval.evaluate({"1": ["a dog"]}, {"s": {"1": "a dog"}}, metrics=["capture"],
                         options={"capture_parser": "factual"})
    with pytest.raises(MetricUnavailable, match="capture_encoder="):
        Capture.from_options({"capture_encoder": "/no/such/model"}).signatures([["a"]])


@pytest.fixture(scope="module")
def thumb_subset(thumb):
    refs, systems = thumb
    ids = sorted(refs)[:25]
    return {i: refs[i] for i in ids}, {name: {i: systems[name][i] for i in ids} for name in sorted(systems)[:2]}


@pytest.mark.slow
def test_evaluate_offline_on_thumb(thumb_subset, monkeypatch):
    import nltk

    def no_download(*args, **kwargs):
        raise AssertionError("nltk.download must never be called")

    monkeypatch.setattr(nltk, "download", no_download)
    refs, cands = thumb_subset
    ids = list(refs)
    # The same captions scored against the right images and against shuffled images: CAPTURE must tell them apart.
    rng = random.Random(0)
    shuffled_ids = ids[:]
    while any(a == b for a, b in zip(ids, shuffled_ids, strict=True)):
        rng.shuffle(shuffled_ids)
    first = next(iter(cands))
    cands = {**cands, "shuffled": {i: cands[first][j] for i, j in zip(ids, shuffled_ids, strict=True)}}
    r = capeval.evaluate(refs, cands, metrics=["capture"], options=OPTS)
    s = r.samples
    assert set(s.metric) == set(OUTPUTS) and len(s) == len(cands) * len(ids) * len(OUTPUTS)
    assert np.isfinite(s.value).all()
    assert ((s.value >= -1e-9) & (s.value <= 1 + 1e-9)).all()
    means = r.summary.set_index(["captioner", "metric"])["mean"]
    assert means[(first, "capture")] > means[("shuffled", "capture")] + 0.1
    # per-sample CAPTURE is the weighted mean of the per-sample F1s averaged over references
    wide = s.pivot_table(index=["captioner", "sample_id"], columns="metric", values="value")
    combo = (0.5 * wide.capture_obj_f1 + 0.5 * wide.capture_attr_f1 + 0.2 * wide.capture_rel_f1) / 1.2
    assert np.allclose(wide.capture, combo, atol=1e-12)
    # corpus value = mean over samples
    corpus = r.corpus.set_index(["captioner", "metric"])["value"]
    assert corpus[(first, "capture")] == pytest.approx(wide.loc[first].capture.mean(), abs=1e-12)
    assert r.signatures["capture"].startswith("capture|nrefs:4|parser:spacy-en_core_web_sm-3.8.0|encoder:all-MiniLM")
    # deterministic
    again = capeval.evaluate(refs, cands, metrics=["capture"], options=OPTS)
    pd.testing.assert_frame_equal(r.samples, again.samples)


@pytest.mark.slow
def test_score_cli_with_defaults(thumb_subset, tmp_path):
    """`capeval score --metrics capture` with no CAPTURE options: auto -> offline spaCy parser, mpnet encoder."""
    refs, cands = thumb_subset
    ids = list(refs)[:8]
    (tmp_path / "refs.json").write_text(json.dumps({i: refs[i] for i in ids}))
    name = next(iter(cands))
    (tmp_path / "cand.json").write_text(json.dumps({i: cands[name][i] for i in ids}))
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "capeval", "score", "--refs", str(tmp_path / "refs.json"),
         "--cand", f"sys={tmp_path / 'cand.json'}", "--metrics", "capture", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "offline spaCy parser" in proc.stderr  # the auto fallback is announced
    summary = json.loads((out / "summary.json").read_text())
    entry = summary["captioners"]["sys"]
    assert list(entry) == list(OUTPUTS)
    assert entry["capture"]["n"] == 8 and 0 < entry["capture"]["mean"] < 1
    sig = summary["signatures"]["capture"]
    assert "|parser:spacy-en_core_web_sm-3.8.0|encoder:all-mpnet-base-v2|" in sig
    scores = pd.read_parquet(out / "scores.parquet")
    assert len(scores) == 8 * len(OUTPUTS)


def test_no_hard_coded_cuda_or_multiprocessing():
    root = Path(capeval.__file__).parent
    files = [*sorted((root / "capture").glob("*.py")), root / "metrics" / "capture.py"]
    for path in files:
        text = path.read_text()
        assert "cuda:" not in text and "multiprocessing" not in text, path


def test_odd_captions_score_without_errors():
    """Emoji, separators, markup, digits only, a 2,000-word caption: finite scores, nothing lost."""
    long_caption = " ".join(["a red car parked near a tall tree"] * 250)
    cands = {"1": "🐶🐱 ||| <b>dog</b>", "2": "1234 5678", "3": long_caption, "4": "...", "5": "A dog."}
    refs = {k: ["A dog sits next to a cat.", "A red car is parked near a tree."] for k in cands}
    r = capeval.evaluate(refs, {"s": cands}, metrics=["capture"], options=OPTS)
    wide = r.samples.pivot_table(index="sample_id", columns="metric", values="value")
    assert len(wide) == 5 and np.isfinite(wide.to_numpy()).all()
    assert wide.loc["3", "capture_obj_f1"] > 0.3
    details = r.details.set_index("sample_id")["detail"]
    assert details["5"].startswith("objects: dog |") and details["3"].startswith("objects: car, tree |")
    assert r.usage["capture"]["capture_empty_candidate_graphs"] >= 2  # digits only, punctuation only
