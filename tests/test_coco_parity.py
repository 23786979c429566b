"""CI parity: capeval's COCO metrics equal pycocoevalcap called directly, per sample and corpus, to 1e-9."""

from __future__ import annotations

import numpy as np
import pytest
from pycocoevalcap.meteor.meteor import Meteor

import capeval
from capeval.reference import score_direct

KEYS = ["bleu_1", "bleu_2", "bleu_3", "bleu_4", "meteor", "rouge_l", "cider"]


@pytest.fixture(scope="module")
def capeval_thumb(thumb):
    refs, systems = thumb
    return capeval.evaluate(refs, systems, metrics=["bleu", "meteor", "rouge_l", "cider"])


@pytest.mark.java
@pytest.mark.parametrize("system", ["Up-Down", "Unified-VLP", "VinVL-base", "VinVL-large", "Human"])
def test_thumb_matches_pycocoevalcap(thumb, capeval_thumb, system):
    refs, systems = thumb
    direct = score_direct(refs, systems[system], meteor=_meteor())
    summary = capeval_thumb.summary_dict()["captioners"][system]
    samples = capeval_thumb.samples
    ids = list(refs)
    assert len(ids) == 500
    for key in KEYS:
        corpus, per_sample = direct[key]
        assert summary[key]["mean"] == pytest.approx(corpus, abs=1e-9), key
        assert summary[key]["n"] == 500
        ours = samples[(samples.captioner == system) & (samples.metric == key)].set_index("sample_id")["value"]
        np.testing.assert_allclose(ours.loc[ids].to_numpy(), np.asarray(per_sample, dtype=float), atol=1e-9,
                                   rtol=0, err_msg=key)


_METEOR: list[Meteor] = []


def _meteor() -> Meteor:
    if not _METEOR:
        _METEOR.append(Meteor())
    return _METEOR[0]
