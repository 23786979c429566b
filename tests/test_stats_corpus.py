"""Corpus metrics recomputed on resamples equal pycocoevalcap / METEOR's Java run on the resampled data (THumB)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from capeval.java import java_problem

pytestmark = [pytest.mark.java, pytest.mark.skipif(java_problem() is not None, reason=str(java_problem()))]

SYSTEMS = ("Up-Down", "VinVL-large", "Human")


@pytest.fixture(scope="module")
def tokenised(thumb):
    """THumB ids, tokenised references and tokenised captions of three systems."""
    from capeval.text import normalize_whitespace
    from capeval.tokenizers.ptb import tokenize_ptb

    refs, systems = thumb
    ids = list(refs)
    texts = [r for rs in refs.values() for r in rs] + [systems[s][i] for s in SYSTEMS for i in ids]
    tok = tokenize_ptb(texts)
    t_refs = [[tok[normalize_whitespace(r)] for r in refs[i]] for i in ids]
    t_caps = {s: [tok[normalize_whitespace(systems[s][i])] for i in ids] for s in SYSTEMS}
    return ids, t_refs, t_caps


def _explicit_resample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.random.default_rng(seed).integers(0, n, n)
    counts = np.bincount(idx, minlength=n).astype(float)
    assert counts.max() >= 2  # duplicated images are part of the test
    return idx, counts


def test_cider_resampler_equals_pycocoevalcap(tokenised):
    from pycocoevalcap.cider.cider import Cider

    from capeval.stats.cider import CiderResampler

    ids, refs, caps = tokenised
    resampler = CiderResampler(refs, caps)
    per_image = resampler.per_image()
    for name in SYSTEMS:
        corpus, per = Cider().compute_score({k: refs[k] for k in range(len(ids))},
                                            {k: [caps[name][k]] for k in range(len(ids))})
        assert np.max(np.abs(per_image[name] - per)) < 1e-9
        assert float(resampler.corpus(np.ones((1, len(ids))))[name][0]) == pytest.approx(corpus, abs=1e-9)
    weights = []
    for seed in (1, 2):
        idx, counts = _explicit_resample(len(ids), seed)
        weights.append(counts)
        # pycocoevalcap on the materialised resample: document frequencies count duplicated images twice
        corpus, _ = Cider().compute_score({k: refs[i] for k, i in enumerate(idx)},
                                          {k: [caps["Human"][i]] for k, i in enumerate(idx)})
        assert float(resampler.corpus(counts[None, :])["Human"][0]) == pytest.approx(corpus, abs=1e-9)
    # the blocked, vectorised path gives the same as one resample at a time
    both = resampler.corpus(np.stack(weights), block=1)["Human"]
    assert both.tolist() == pytest.approx(resampler.corpus(np.stack(weights))["Human"].tolist(), abs=1e-12)


def test_bleu_resample_equals_bleuscorer_on_materialised_resample(tokenised):
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer

    from capeval.aggregation import BLEU_COLUMNS, bleu_from_totals
    from capeval.metrics.base import Batch
    from capeval.metrics.coco import Bleu

    class Tokens:  # a context whose "PTB tokens" are the already tokenised captions
        shared: dict = {}

        def tokenized(self, name):
            return {t: t for t in caps["Up-Down"] + [r for rs in refs for r in rs]}

    ids, refs, caps = tokenised
    batch = Batch("Up-Down", list(ids), caps["Up-Down"], refs)
    stats = Bleu().statistics(batch, Tokens()).table[list(BLEU_COLUMNS)].to_numpy()
    idx, counts = _explicit_resample(len(ids), 3)
    scorer = BleuScorer(n=4)
    for i in idx:
        scorer += (caps["Up-Down"][i], refs[i])
    expected, _ = scorer.compute_score(option="closest", verbose=0)
    totals = counts[None, :] @ stats
    for k in range(4):
        assert bleu_from_totals(totals, k + 1)[0] == pytest.approx(expected[k], abs=1e-12)


def test_meteor_aggregate_equals_java(tokenised):
    from capeval.aggregation import meteor_aggregable as aggregable
    from capeval.aggregation import meteor_from_totals
    from capeval.metrics.meteor_process import MeteorProcess

    ids, refs, caps = tokenised
    n = 150
    hyps, sub_refs = caps["VinVL-large"][:n], refs[:n]
    proc = MeteorProcess()
    try:
        per_sample, corpus = proc.score(hyps, sub_refs)  # Java's per-segment scores and aggregate
        result = proc.score_segments(hyps, sub_refs)
        stats, per_sample_2 = result.statistics(), result.per_sample
        idx = np.random.default_rng(4).integers(0, n, n)
        java_per, java_corpus = proc.java_aggregate(stats[idx])
    finally:
        proc.close()
    assert per_sample_2 == per_sample
    agg = aggregable(stats)
    assert meteor_from_totals(agg.sum(axis=0))[0] == corpus  # the rule gives the jar's bits
    assert meteor_from_totals(stats).tolist() == pytest.approx(per_sample, abs=1e-12)
    counts = np.bincount(idx, minlength=n).astype(float)
    assert meteor_from_totals(counts @ agg)[0] == pytest.approx(java_corpus, abs=1e-12)
    assert meteor_from_totals(stats[idx]).tolist() == pytest.approx(java_per, abs=1e-12)


@pytest.mark.slow
def test_compute_stats_on_thumb_run(thumb, tmp_path):
    import capeval
    from capeval.stats import compute_stats

    refs, systems = thumb
    ids = list(refs)[:200]
    results = capeval.evaluate({i: refs[i] for i in ids}, {s: {i: systems[s][i] for i in ids} for s in SYSTEMS},
                               metrics=["bleu", "meteor", "rouge_l", "cider"])
    run_dir = results.write(tmp_path / "run")
    doc = compute_stats(run_dir, n_boot=300, n_perm=1000)
    assert doc["warnings"] == []
    methods = {m: e["method"] for m, e in doc["metrics"].items()}
    assert methods == {"bleu_1": "bleu", "bleu_2": "bleu", "bleu_3": "bleu", "bleu_4": "bleu",
                       "meteor": "meteor", "rouge_l": "mean", "cider": "cider-d"}
    summary = json.loads((run_dir / "summary.json").read_text())
    for metric, entry in doc["metrics"].items():  # the statistics report the run's own values, exactly
        for name in SYSTEMS:
            assert entry["captioners"][name]["value"] == summary["captioners"][name][metric]["mean"]
    for metric, entry in doc["metrics"].items():
        assert len(entry["pairs"]) == 3
        for name in SYSTEMS:
            c = entry["captioners"][name]
            assert c["ci_low"] <= c["value"] <= c["ci_high"], (metric, name, c)
            assert c["n"] == 200 and c["rank"] >= 1
    # Human captions vs VinVL-large on CIDEr: the well-known gap on THumB is significant even on 200 images
    cider_pairs = {(p["a"], p["b"]): p for p in doc["metrics"]["cider"]["pairs"]}
    assert cider_pairs[("VinVL-large", "Human")]["diff"] > 0
