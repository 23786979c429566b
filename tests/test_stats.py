"""capeval.stats on small inputs: hand-computed values, scipy cross-checks, reproducibility, stats.json reuse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from capeval.aggregation import bleu_from_totals
from capeval.stats import compute_stats, load_or_compute_stats
from capeval.stats.bootstrap import percentile_interval, resample_counts, rng_for
from capeval.stats.corpus import MeanSource
from capeval.stats.paired import flip_masks, holm, mean_finish, mean_stats, permutation_null, permutation_pvalues
from capeval.stats.ranking import significance_ranks


def bleu_finish(order):
    return lambda totals: bleu_from_totals(totals, order)


def corpus_bleu_from_stats(stats: np.ndarray, n: int = 4) -> list[float]:
    """pycocoevalcap's BleuScorer.compute_score corpus arithmetic, scalar, as the reference."""
    import math

    small, tiny = 1e-9, 1e-15
    totals = [float(x) for x in stats.sum(axis=0)]
    bleus, bleu = [], 1.0
    for k in range(n):
        bleu *= float(totals[6 + k] + tiny) / (totals[2 + k] + small)
        bleus.append(bleu ** (1.0 / (k + 1)))
    ratio = (totals[0] + tiny) / (totals[1] + small)
    if ratio < 1:
        bleus = [b * math.exp(1 - 1 / ratio) for b in bleus]
    return bleus


# --- a synthetic run directory (no Java needed) ----------------------------------------------------------


def write_fake_run(path: Path, values: dict[str, np.ndarray], metric: str = "judge", *,
                   higher_is_better: bool = True) -> Path:
    """A run directory with one per-sample-mean metric; ``values[captioner]`` is ``(n_images, n_seeds)``."""
    path.mkdir(parents=True, exist_ok=True)
    captioners = list(values)
    n, seeds = next(iter(values.values())).shape
    ids = [f"img{i}" for i in range(n)]
    rows, corpus_rows, summary = [], [], {}
    for cap, v in values.items():
        for s in range(seeds):
            rows += [{"captioner": cap, "sample_id": ids[i], "metric": metric, "seed": s, "value": float(v[i, s])}
                     for i in range(n)]
            col = v[:, s]
            corpus_rows.append({"captioner": cap, "metric": metric, "seed": s,
                                "value": float(np.nanmean(col)) if np.isfinite(col).any() else float("nan")})
        per_seed = [r["value"] for r in corpus_rows if r["captioner"] == cap]
        summary[cap] = {metric: {"mean": float(np.mean(per_seed)),
                                 "std": float(np.std(per_seed, ddof=1)) if seeds > 1 else None,
                                 "n": n, "seeds": seeds}}
    pd.DataFrame(rows).to_parquet(path / "scores.parquet", index=False)
    pd.DataFrame(corpus_rows).to_parquet(path / "corpus.parquet", index=False)
    pd.DataFrame([(c, i, f"caption {c} {i}") for c in captioners for i in ids],
                 columns=["captioner", "sample_id", "caption"]).to_parquet(path / "captions.parquet", index=False)
    (path / "references.json").write_text(json.dumps({i: [f"reference {i}"] for i in ids}))
    signature = f"{metric}|judge:fake|capeval:0.1.0"
    (path / "summary.json").write_text(json.dumps({"captioners": summary, "signatures": {metric: signature}}))
    (path / "statistics").mkdir(exist_ok=True)
    stats = pd.DataFrame(rows).rename(columns={"value": metric}).drop(columns="metric")
    stats[["captioner", "seed", "sample_id", metric]].to_parquet(path / "statistics" / f"{metric}.parquet")
    manifest = {"capeval_version": "0.2.0", "format_version": 2, "captioners": captioners, "samples": n,
                "seeds": seeds, "signatures": {metric: signature},
                "metrics": {metric: {"outputs": [metric], "corpus_level": False, "stochastic": seeds > 1,
                                     "aggregation": "mean", "higher_is_better": higher_is_better, "version": "1",
                                     "needs": []}},
                "inputs": {"references": {"path": "refs.json", "sha256": "0" * 64}}}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


# --- bootstrap --------------------------------------------------------------------------------------------


def test_resample_counts_are_reproducible_by_seed():
    a = resample_counts(50, 200, rng_for(7, "x"))
    b = resample_counts(50, 200, rng_for(7, "x"))
    c = resample_counts(50, 200, rng_for(8, "x"))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert (a.sum(axis=1) == 50).all() and a.min() >= 0
    # each image is drawn n_boot times on average: 200 resamples of 50 draws over 50 images
    assert a.sum(axis=0).mean() == pytest.approx(200.0)


def test_resample_counts_match_explicit_indices():
    rng = np.random.default_rng(3)
    w = resample_counts(6, 4, rng)
    idx = np.random.default_rng(3).integers(0, 6, size=(4, 6))
    assert np.array_equal(w, np.stack([np.bincount(r, minlength=6) for r in idx]))


def test_percentile_interval_hand_computed():
    lo, hi = percentile_interval(np.arange(101, dtype=float), alpha=0.1)
    assert (lo, hi) == (5.0, 95.0)
    assert np.isnan(percentile_interval(np.array([np.nan]))[0])


def test_mean_bootstrap_equals_explicit_resample_means():
    values = np.array([[1.0], [2.0], [np.nan], [4.0]])
    group = MeanSource(pd.DataFrame({"captioner": "a", "sample_id": list("wxyz"), "seed": 0,
                                     "value": values[:, 0]})).group(["a"], list("wxyz"))
    weights = np.array([[2, 1, 1, 0], [0, 0, 1, 3], [0, 0, 4, 0]], dtype=float)
    out = group.resample(weights)["a"]
    assert out[0] == pytest.approx((2 * 1 + 2) / 3)  # NaN image left out of numerator and denominator
    assert out[1] == pytest.approx(4.0)
    assert np.isnan(out[2])  # only the failed image drawn


def test_two_way_bootstrap_of_seeds_hand_computed():
    # 3 images x 2 seeds; seed means: seed0 = (1+2+3)/3 = 2, seed1 = (3+NaN+5)/2 = 4
    v = np.array([[1.0, 3.0], [2.0, np.nan], [3.0, 5.0]])
    frame = pd.DataFrame([{"captioner": "a", "sample_id": f"i{i}", "seed": s, "value": v[i, s]}
                          for i in range(3) for s in range(2)])
    group = MeanSource(frame).group(["a"], ["i0", "i1", "i2"])
    assert group.point()["a"] == pytest.approx(3.0)
    weights = np.array([[0, 3, 0], [1, 0, 2]], dtype=float)
    seed_counts = np.array([[2, 0], [1, 1]], dtype=float)
    out = group.resample(weights, seed_counts)["a"]
    # resample 0: only image i1, seed 0 twice -> 2; resample 1: images i0, i2, i2 -> seed0 7/3, seed1 13/3
    assert out[0] == pytest.approx(2.0)
    assert out[1] == pytest.approx((7 / 3 + 13 / 3) / 2)


# --- paired permutation test ------------------------------------------------------------------------------


def test_permutation_exact_hand_computed():
    a, b = np.array([1.0, 2.0, 3.0]), np.zeros(3)
    masks, exact = flip_masks(3, 1000, np.random.default_rng(0))
    assert exact and masks.shape == (8, 3)
    observed, null = permutation_null(mean_stats(a), mean_stats(b), mean_finish, masks)
    assert observed == pytest.approx(2.0)
    assert sorted(np.round(null * 3, 9)) == [-6, -4, -2, 0, 0, 2, 4, 6]
    p = permutation_pvalues(observed, null, exact)
    assert p["greater"] == pytest.approx(1 / 8)
    assert p["less"] == pytest.approx(1.0)
    assert p["two-sided"] == pytest.approx(2 / 8)


def _scipy_paired(a, b, alternative, n_resamples, seed=0):
    return sps.permutation_test((a, b), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                                permutation_type="samples", vectorized=True, alternative=alternative,
                                n_resamples=n_resamples, rng=np.random.default_rng(seed)).pvalue


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_permutation_pvalues_equal_scipy(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(0.5, 1.0, 10)
    b = a + rng.normal(-0.3, 0.5, 10)
    masks, exact = flip_masks(10, 5000, rng)
    assert exact
    observed, null = permutation_null(mean_stats(a), mean_stats(b), mean_finish, masks)
    ours = permutation_pvalues(observed, null, exact)
    for alternative in ("two-sided", "less", "greater"):
        assert ours[alternative] == pytest.approx(_scipy_paired(a, b, alternative, 5000), abs=1e-12)


def test_randomised_permutation_pvalues_agree_with_scipy():
    rng = np.random.default_rng(5)
    a = rng.normal(0.0, 1.0, 200)
    b = a + rng.normal(0.12, 1.0, 200)
    masks, exact = flip_masks(200, 20000, rng_for(0, "perm"))
    assert not exact
    observed, null = permutation_null(mean_stats(a), mean_stats(b), mean_finish, masks)
    ours = permutation_pvalues(observed, null, exact)
    theirs = _scipy_paired(a, b, "two-sided", 20000)
    assert 0.01 < theirs < 0.5  # a case where the p-value is neither 0 nor 1
    # two Monte Carlo estimates of the same p: their difference is within ~4 standard errors
    assert abs(ours["two-sided"] - theirs) < 4 * np.sqrt(2 * theirs * (1 - theirs) / 20000) * 2


def test_permutation_of_corpus_bleu_equals_recomputing_swapped_corpora():
    rng = np.random.default_rng(0)
    n = 6
    stats_a = rng.integers(1, 12, size=(n, 10)).astype(float)
    stats_b = rng.integers(1, 12, size=(n, 10)).astype(float)
    for s in (stats_a, stats_b):  # correct <= guess, guess_k decreasing like real n-gram counts
        s[:, 6:] = np.minimum(s[:, 6:], s[:, 2:6])
    masks, exact = flip_masks(n, 1000, rng)
    observed, null = permutation_null(stats_a, stats_b, bleu_finish(4), masks)
    assert observed == pytest.approx(corpus_bleu_from_stats(stats_a)[3] - corpus_bleu_from_stats(stats_b)[3])
    for mask, value in zip(masks, null, strict=True):
        swap = mask.astype(bool)
        new_a = np.where(swap[:, None], stats_b, stats_a)
        new_b = np.where(swap[:, None], stats_a, stats_b)
        assert value == pytest.approx(corpus_bleu_from_stats(new_a)[3] - corpus_bleu_from_stats(new_b)[3], abs=1e-12)


def test_bleu_finish_matches_corpus_bleu_from_stats():
    rng = np.random.default_rng(1)
    for _ in range(20):
        stats = rng.integers(0, 20, size=(7, 10)).astype(float)
        totals = stats.sum(axis=0)[None, :]
        expected = corpus_bleu_from_stats(stats)
        for k in range(1, 5):
            assert bleu_finish(k)(totals)[0] == expected[k - 1]  # bit for bit


def test_holm_hand_computed():
    # sorted p: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> monotone 0.06)
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted.tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    with_nan = holm([0.02, np.nan, 0.5])
    assert with_nan[0] == pytest.approx(0.04) and np.isnan(with_nan[1]) and with_nan[2] == pytest.approx(0.5)
    assert holm([0.9, 0.8]).tolist() == [1.0, 1.0]


# --- ranking ----------------------------------------------------------------------------------------------


def test_ranks_share_when_not_significant():
    values = {"A": 0.9, "B": 0.8, "C": 0.7, "D": 0.2}
    sig = {("A", "B"): False, ("A", "C"): True, ("B", "C"): False,
           ("A", "D"): True, ("B", "D"): True, ("C", "D"): True}
    ranks = significance_ranks(values, sig)
    assert {k: v["rank"] for k, v in ranks.items()} == {"A": 1, "B": 1, "C": 2, "D": 4}
    assert ranks["B"]["rank_range"] == [1, 3]
    assert ranks["D"]["rank_range"] == [4, 4]


def test_ranks_all_tied_and_lower_is_better():
    tied = significance_ranks({"a": 1.0, "b": 2.0, "c": 3.0}, {})
    assert {k: v["rank"] for k, v in tied.items()} == {"a": 1, "b": 1, "c": 1}
    lower = significance_ranks({"a": 1.0, "b": 2.0}, {("a", "b"): True}, higher_is_better=False)
    assert lower["a"]["rank"] == 1 and lower["b"]["rank"] == 2


# --- compute_stats end to end on synthetic runs -----------------------------------------------------------


def test_compute_stats_small_run_hand_checked(tmp_path):
    a = np.array([[0.9], [0.8], [0.7], [0.9], [0.6], [0.8], [0.9], [0.7]])
    b = a - 0.5  # uniformly worse: every permutation but the identity lowers the difference
    same = a.copy()
    run = write_fake_run(tmp_path / "run", {"A": a, "B": b, "A2": same})
    doc = compute_stats(run, n_boot=500, n_perm=1000, seed=0)
    entry = doc["metrics"]["judge"]
    assert entry["method"] == "mean"
    assert entry["captioners"]["A"]["value"] == pytest.approx(a.mean())
    lo, hi = entry["captioners"]["A"]["ci_low"], entry["captioners"]["A"]["ci_high"]
    assert 0.6 <= lo <= a.mean() <= hi <= 0.9
    pairs = {(p["a"], p["b"]): p for p in entry["pairs"]}
    ab = pairs[("A", "B")]
    assert ab["test"] == "permutation-exact"  # 2**8 = 256 <= 1000
    assert ab["diff"] == pytest.approx(0.5)
    assert ab["p_value"] == pytest.approx(2 / 256)  # only identity reaches the observed difference: 2 * 1/256
    assert ab["p_holm"] == pytest.approx(3 * 2 / 256)  # smallest of three p-values
    assert ab["significant"] and ab["better"] == "A"
    assert ab["ci_low"] == pytest.approx(0.5) and ab["ci_high"] == pytest.approx(0.5)
    same_pair = pairs[("A", "A2")]
    assert same_pair["diff"] == 0 and same_pair["p_value"] == 1.0 and not same_pair["significant"]
    assert entry["captioners"]["A"]["rank"] == 1 and entry["captioners"]["A2"]["rank"] == 1
    assert entry["captioners"]["B"]["rank"] == 3
    assert entry["ranking"][-1] == "B"
    json.dumps(doc, allow_nan=False)  # stats.json is strict JSON


def test_compute_stats_is_reproducible_by_seed(tmp_path):
    rng = np.random.default_rng(0)
    run = write_fake_run(tmp_path / "run", {"A": rng.random((40, 1)), "B": rng.random((40, 1))})
    one = compute_stats(run, n_boot=300, n_perm=500, seed=1)
    two = compute_stats(run, n_boot=300, n_perm=500, seed=1)
    other = compute_stats(run, n_boot=300, n_perm=500, seed=2)
    one.pop("elapsed_seconds"), two.pop("elapsed_seconds"), other.pop("elapsed_seconds")
    assert one == two
    ci_one = one["metrics"]["judge"]["captioners"]["A"]["ci_low"]
    assert ci_one != other["metrics"]["judge"]["captioners"]["A"]["ci_low"]


def test_multi_seed_interval_carries_seed_variance(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.random((60, 1))
    noisy = base + rng.normal(0, 0.05, (60, 3)) + np.array([[-0.2, 0.0, 0.2]])  # strong seed effects
    seeds_run = write_fake_run(tmp_path / "seeds", {"a": noisy})
    mean_run = write_fake_run(tmp_path / "mean", {"a": noisy.mean(axis=1, keepdims=True)})  # seeds averaged away
    s = compute_stats(seeds_run, n_boot=2000, n_perm=100)["metrics"]["judge"]
    m = compute_stats(mean_run, n_boot=2000, n_perm=100)["metrics"]["judge"]
    assert s["method"] == "mean-seeds" and m["method"] == "mean"
    sa, ma = s["captioners"]["a"], m["captioners"]["a"]
    assert sa["seeds"] == 3 and sa["seed_std"] == pytest.approx(np.std(noisy.mean(axis=0), ddof=1))
    assert sa["value"] == pytest.approx(ma["value"]) == pytest.approx(noisy.mean())
    assert sa["ci_low"] < sa["value"] < sa["ci_high"]
    # resampling seeds adds the between-seed variance (seed means -0.2, 0, +0.2 around the image mean)
    assert sa["ci_high"] - sa["ci_low"] > 2 * (ma["ci_high"] - ma["ci_low"])


def test_lower_is_better_metric_ranks(tmp_path):
    good = np.full((12, 1), 0.1) + np.linspace(0, 0.01, 12)[:, None]
    run = write_fake_run(tmp_path / "run", {"low": good, "high": good + 1.0}, higher_is_better=False)
    entry = compute_stats(run, n_boot=200, n_perm=5000)["metrics"]["judge"]
    assert entry["captioners"]["low"]["rank"] == 1 and entry["captioners"]["high"]["rank"] == 2
    assert entry["pairs"][0]["better"] == "low"


def test_load_or_compute_reuses_matching_stats_json(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    run = write_fake_run(tmp_path / "run", {"A": rng.random((20, 1)), "B": rng.random((20, 1))})
    first = load_or_compute_stats(run, n_boot=100, n_perm=200)
    assert (run / "stats.json").exists()
    import capeval.stats.compute as compute_mod

    def boom(*args, **kwargs):
        raise AssertionError("recomputed although stats.json was up to date")

    monkeypatch.setattr(compute_mod, "compute_stats", boom)
    assert load_or_compute_stats(run, n_boot=100, n_perm=200) == first
    with pytest.raises(AssertionError):  # other parameters: not reusable
        load_or_compute_stats(run, n_boot=101, n_perm=200)
    monkeypatch.undo()
    scores = pd.read_parquet(run / "scores.parquet")
    scores.loc[0, "value"] = 5.0
    scores.to_parquet(run / "scores.parquet", index=False)
    changed = load_or_compute_stats(run, n_boot=100, n_perm=200)
    assert changed["inputs_sha256"] != first["inputs_sha256"]


def test_unknown_metric_and_bad_params_are_errors(tmp_path):
    from capeval.errors import CapevalError

    run = write_fake_run(tmp_path / "run", {"A": np.ones((3, 1))})
    with pytest.raises(CapevalError, match="not in the run"):
        compute_stats(run, metrics=["cider"])
    with pytest.raises(CapevalError, match="alpha"):
        compute_stats(run, alpha=1.5)


def test_mask_blocks_equal_one_matrix():
    from capeval.stats.paired import iter_flip_masks

    whole, exact = flip_masks(300, 5000, np.random.default_rng(1))
    blocks = list(iter_flip_masks(300, 5000, np.random.default_rng(1), max_cells=300 * 1000))
    again = list(iter_flip_masks(300, 5000, np.random.default_rng(1), max_cells=300 * 1000))
    assert not exact and len(blocks) == 5 and all(b.shape == (1000, 300) for b in blocks)
    assert np.array_equal(whole, np.concatenate(blocks)) and np.array_equal(whole, np.concatenate(again))
    assert set(np.unique(whole)) == {0.0, 1.0} and abs(whole.mean() - 0.5) < 0.01


def test_cli_stats_writes_stats_json(tmp_path, capsys):
    from capeval.cli import main

    rng = np.random.default_rng(0)
    run = write_fake_run(tmp_path / "run", {"A": rng.random((15, 1)), "B": rng.random((15, 1)) + 0.5})
    main(["stats", str(run), "--n-boot", "200", "--n-perm", "500", "--seed", "3"])
    out = capsys.readouterr().out
    assert "judge · mean" in out and "wrote" in out
    doc = json.loads((run / "stats.json").read_text())
    assert doc["params"]["n_boot"] == 200 and doc["params"]["seed"] == 3
    assert doc["metrics"]["judge"]["ranking"] == ["B", "A"]
    assert doc["metrics"]["judge"]["pairs"][0]["significant"]
