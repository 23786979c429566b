"""Hostile captions never hang or misalign: every other caption scores exactly as without them."""

from __future__ import annotations

import numpy as np
import pytest

import capeval
import capeval.text
from capeval.tokenizers.ptb import tokenize_ptb

BAD = [
    "a dog\rruns on the grass",
    "a cat\u2028sits on a mat",
    "two birds\nfly over\nthe sea",
    "a man ||| holds ||| an umbrella",
    "a pizza 🍕 with cheese 😀 on a table",
    " ".join(["word"] * 20000),
    "",
    "   \t \u2029 ",
    "tabs\tand\x0bvertical\x0cfeeds\u00a0nbsp\u2029para",
]


@pytest.mark.java
@pytest.mark.timeout(600)
def test_bad_captions_do_not_change_other_scores(thumb):
    refs, systems = thumb
    ids = list(refs)[:120]
    refs = {i: refs[i] for i in ids}
    clean = {i: systems["VinVL-base"][i] for i in ids}
    bad_ids = ids[5:5 + len(BAD)]
    dirty = dict(clean)
    for i, text in zip(bad_ids, BAD, strict=True):
        dirty[i] = text
    metrics = ["bleu", "meteor", "rouge_l", "cider"]
    a = capeval.evaluate(refs, {"sys": clean}, metrics=metrics).samples
    b = capeval.evaluate(refs, {"sys": dirty}, metrics=metrics)
    assert b.summary_dict()["inputs"]["sys"]["empty_candidates"] == 2
    bs = b.samples
    others = [i for i in ids if i not in bad_ids]
    for key in ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider"]:
        va = a[a.metric == key].set_index("sample_id")["value"]
        vb = bs[bs.metric == key].set_index("sample_id")["value"]
        np.testing.assert_array_equal(va.loc[others].to_numpy(), vb.loc[others].to_numpy(), err_msg=key)
        assert np.isfinite(vb.loc[bad_ids].to_numpy()).all(), key
    # the empty captions score 0 (BLEU: pycocoevalcap's smoothing leaves < 1e-6)
    empty = [i for i, t in zip(bad_ids, BAD, strict=True) if not t.strip()]
    for key in ["meteor", "rouge_l", "cider"]:
        assert (bs[(bs.metric == key) & bs.sample_id.isin(empty)]["value"] == 0).all(), key
    assert (bs[(bs.metric == "bleu_1") & bs.sample_id.isin(empty)]["value"] < 1e-6).all()


@pytest.mark.java
def test_ptb_tokenizer_keeps_alignment_where_pycocoevalcap_shifts():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    captions = {"a": "a dog\rruns", "b": "a cat\u2028sits", "c": "a bird flies", "d": "last one"}
    direct = PTBTokenizer().tokenize({k: [{"caption": v}] for k, v in captions.items()})
    assert direct["c"] != ["a bird flies"]  # pycocoevalcap shifts later captions to the wrong image
    ours = tokenize_ptb(captions.values())
    assert [ours[capeval.text.normalize_whitespace(v)] for v in captions.values()] == [
        "a dog runs", "a cat sits", "a bird flies", "last one"]
