"""METEOR on a caption its JVM can't align (a 1 MB caption): that sample is named and NaN, the rest is scored
exactly (issue 12). pycocoevalcap aborts the whole run on it."""

from __future__ import annotations

import logging
import math
import random

import pytest

from capeval.metrics.meteor_process import LONG_SEGMENT_WORDS, MeteorProcess

pytestmark = pytest.mark.java

REFS = [["a man rides a red bike down the street", "a cyclist on a city street"],
        ["two dogs play in the park", "dogs running on grass"],
        ["a plate of food on a table", "a meal with rice and vegetables"]]
HYPS = ["a man riding a bike on a street", "two dogs running in a park", "a plate with rice on a table"]


def repetitive(words: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    vocab = ("a", "man", "rides", "a", "red", "bike", "down", "the", "street", "near", "the", "park", "with",
             "dogs")
    return " ".join(rng.choice(vocab) for _ in range(words))


@pytest.mark.slow
def test_unscorable_segment_is_named_nan_and_the_rest_exact(caplog):
    big = repetitive(20_000)  # too many alignments for METEOR's 2 GB heap: OutOfMemoryError (measured)
    proc = MeteorProcess()
    try:
        alone, alone_corpus = proc.score([HYPS[0], HYPS[2]], [REFS[0], REFS[2]])
        # a long segment the JVM *can* align is scored alone and exactly
        long_ok = repetitive(LONG_SEGMENT_WORDS + 200, seed=1)
        (v_long,), _ = proc.score([long_ok], [REFS[1]])
        assert 0 < v_long < 1
        with caplog.at_level(logging.WARNING, logger="capeval"):
            result = proc.score_segments([HYPS[0], big, HYPS[2], long_ok], [REFS[0], REFS[1], REFS[2], REFS[1]],
                                         ids=["974", "975", "976", "977"])
    finally:
        proc.close()
    assert list(result.failed) == ["975"]
    assert "20000 words" in result.failed["975"]
    assert math.isnan(result.per_sample[1])
    assert result.per_sample[0] == alone[0] and result.per_sample[2] == alone[1]
    assert result.per_sample[3] == v_long
    assert 0 < result.corpus < 1 and result.corpus != alone_corpus  # Java's aggregate over the 3 scored
    assert any("'975'" in r.getMessage() and "NaN" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_one_megabyte_caption_in_a_run(monkeypatch):
    """Through capeval.evaluate with the default METEOR settings: the run finishes, the 1 MB sample is a
    counted failure named in its details, every other sample keeps the score it has without it. (The lone
    attempt ends in OutOfMemoryError; the deadline only bounds the test on a loaded machine.)"""
    import capeval
    from capeval.metrics import meteor_process

    monkeypatch.setattr(meteor_process, "LONE_SEGMENT_TIMEOUT", 60.0)

    refs = {str(i): r for i, r in enumerate(REFS)}
    cands = {str(i): h for i, h in enumerate(HYPS)}
    huge = repetitive(250_000)
    assert len(huge) > 1_000_000
    without = capeval.evaluate(refs, {"sys": cands}, metrics=["meteor"])
    refs["big"] = ["a man on a bike"]
    with_big = capeval.evaluate(refs, {"sys": {**cands, "big": huge}}, metrics=["meteor"])
    a = without.samples.set_index("sample_id")["value"]
    b = with_big.samples.set_index("sample_id")["value"]
    assert math.isnan(b["big"]) and (b.drop("big") == a).all()
    assert with_big.failures["sys"]["meteor"] == 1
    detail = with_big.details.set_index("sample_id")["detail"]
    assert "METEOR could not score this segment" in detail["big"]
    assert with_big.summary_dict()["captioners"]["sys"]["meteor"]["n"] == 3
