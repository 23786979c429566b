"""Meta-evaluation: loaders, statistics, protocols (with stand-in metrics), CLI, download checks, and the
Flickr8k-Expert run with the COCO metrics against the published PAC-S / CLIPScore numbers."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from capeval.aggregation import Rule, register_rule
from capeval.cli import main
from capeval.errors import CapevalError, InputError
from capeval.metaeval import canonical_dataset, correlate, download, loaders, meta_evaluate
from capeval.metrics.base import Batch, Metric, MetricStatistics
from capeval.registry import register_metric

# ---------------------------------------------------------------------------------------------------------
# Stand-in metrics (no Java, no model): they make every protocol checkable by hand.


class _SumRule(Rule):
    """Corpus value = the sum of the per-sample values (a third-party rule)."""

    name = "_mt_sum"

    def corpus(self, tables, output, weights=None):
        return {c: (np.ones((1, len(t))) if weights is None else weights) @ t[output].to_numpy(dtype=float)
                for c, t in tables.items()}

    def additive(self, table, output):
        return table[[output]].to_numpy(dtype=float), lambda totals: np.atleast_2d(totals)[:, 0]


register_rule(_SumRule())


@register_metric("_mt_words")
class WordCount(Metric):
    """Score = number of words, corpus = their sum; remembers every candidate it was asked to score."""

    outputs = ("_mt_words",)
    aggregation = "_mt_sum"
    seen: list[str] = []

    def statistics(self, batch: Batch, context, seed: int = 0) -> MetricStatistics:
        WordCount.seen.extend(batch.candidates)
        values = np.asarray([len(c.split()) for c in batch.candidates], dtype=float)
        return MetricStatistics.of_values(batch.sample_ids, {"_mt_words": values})


@register_metric("_mt_shortest")
class Shortest(Metric):
    """Lower is better: number of characters. A caption containing FAIL can't be scored (NaN, counted)."""

    outputs = ("_mt_shortest",)
    higher_is_better = False

    def statistics(self, batch: Batch, context, seed: int = 0) -> MetricStatistics:
        values = np.asarray([math.nan if "FAIL" in c else len(c) for c in batch.candidates], dtype=float)
        return MetricStatistics.of_values(batch.sample_ids, {"_mt_shortest": values},
                                          failures={"_mt_shortest": int(np.isnan(values).sum())})


@register_metric("_mt_seeded")
class Seeded(Metric):
    """Stochastic: words + seed, so the seed mean is words + (seeds - 1) / 2."""

    outputs = ("_mt_seeded",)
    stochastic = True

    def statistics(self, batch: Batch, context, seed: int = 0) -> MetricStatistics:
        values = np.asarray([len(c.split()) + seed for c in batch.candidates], dtype=float)
        return MetricStatistics.of_values(batch.sample_ids, {"_mt_seeded": values})


def _write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


@pytest.fixture
def flickr_file(tmp_path: Path) -> Path:
    """Two images; 'a b c' is rated by three experts (three rows); one NaN rating is dropped."""
    data = {
        "img1": {"ground_truth": ["a dog runs", "the dog"], "image_path": "Flickr8k_Dataset/img1.jpg",
                 "human_judgement": [
                     {"caption": "a b c", "rating": 3.0}, {"caption": "a b c", "rating": 4.0},
                     {"caption": "a b c", "rating": 3.0}, {"caption": "a", "rating": 1.0},
                     {"caption": "a b", "rating": float("nan")}]},
        "img2": {"ground_truth": ["a cat"], "human_judgement": [
            {"caption": "a b c d", "rating": 4.0}, {"caption": "a b", "rating": 2.0},
            {"caption": "a b c", "rating": 1.0}]},
    }
    return _write(tmp_path / "flickr.json", data)


# ---------------------------------------------------------------------------------------------------------
# Statistics


def test_kendall_matches_hand_count():
    x, y = [1, 2, 3, 4], [1, 3, 2, 4]  # 5 concordant, 1 discordant pair, no ties
    assert correlate.kendall(x, y, "b") == pytest.approx(100 * 4 / 6)
    # tau-c = 2 m (C - D) / (n^2 (m - 1)) with m = min(#distinct x, #distinct y) = 4
    assert correlate.kendall(x, y, "c") == pytest.approx(100 * 2 * 4 * 4 / (16 * 3))


def test_kendall_with_ties_equals_scipy_and_undefined_is_none():
    x, y = [1, 1, 2, 3, 3, 5], [1, 2, 2, 2, 4, 4]
    for variant in ("b", "c"):
        assert correlate.kendall(x, y, variant) == pytest.approx(100 * stats.kendalltau(x, y, variant=variant)[0])
    assert correlate.kendall([1, 1, 1], [1, 2, 3]) is None
    assert correlate.kendall([1], [2]) is None
    assert correlate.pearson([2, 2], [1, 3]) is None
    assert correlate.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(100.0)


def test_pairwise_accuracy_ties_and_direction():
    # pair 1 right, pair 2 right, pair 3 tied (half a point), pair 4 wrong
    acc, ties = correlate.pairwise_accuracy([5, 1, 2, 9], [1, 5, 2, 1], [0, 1, 0, 1])
    assert (acc, ties) == (pytest.approx(100 * 2.5 / 4), 1)
    acc, _ = correlate.pairwise_accuracy([5, 1], [1, 5], [1, 0], higher_is_better=False)
    assert acc == pytest.approx(100.0)
    assert correlate.pairwise_accuracy([], [], []) == (None, 0)


# ---------------------------------------------------------------------------------------------------------
# Loaders


def test_flickr_loader_drops_and_counts_nan(flickr_file):
    data = loaders.load_flickr8k(flickr_file)
    assert len(data.rows) == 7 and data.dropped_nan == 1
    assert data.references["img2"] == ["a cat"]
    assert data.images == {"img1": "Flickr8k_Dataset/img1.jpg"}


@pytest.mark.parametrize("entry, problem", [
    ({"ground_truth": ["r"]}, "no 'human_judgement'"),
    ({"ground_truth": [], "human_judgement": []}, "non-empty list"),
    ({"ground_truth": ["r"], "human_judgement": [{"caption": 3, "rating": 1}]}, "caption must be a string"),
    ({"ground_truth": ["r"], "human_judgement": [{"caption": "c", "rating": "good"}]}, "rating must be a number"),
])
def test_flickr_loader_errors_name_file_and_id(tmp_path, entry, problem):
    path = _write(tmp_path / "bad.json", {"imgX": entry})
    with pytest.raises(InputError) as err:
        loaders.load_flickr8k(path)
    assert problem in str(err.value) and "bad.json" in str(err.value) and "imgX" in str(err.value)


def test_pascal_loader_validates(tmp_path):
    good = {"HC": [{"captions": ["a", "b"], "label": 1, "references": ["r"], "image": "x.jpg"}]}
    data = loaders.load_pascal50s(_write(tmp_path / "p.json", good))
    assert data.pairs[0].captions == ("a", "b") and data.categories == ["HC"]
    for bad, problem in [
        ({"HC": [{"captions": ["a", "b"], "label": 2, "references": ["r"]}]}, "label must be 0 or 1"),
        ({"HC": [{"captions": ["a"], "label": 0, "references": ["r"]}]}, "two strings"),
        ({"XX": []}, "unknown categories"),
    ]:
        with pytest.raises(InputError, match=problem):
            loaders.load_pascal50s(_write(tmp_path / "p.json", bad))


def _thumb_files(tmp_path: Path, rows: list[dict], refs: dict[str, list[str]]) -> tuple[Path, Path]:
    scores = tmp_path / "toy_THumB-1.0.jsonl"
    scores.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    ref_path = tmp_path / "toy_references.jsonl"
    ref_path.write_text("\n".join(json.dumps({"seg_id": k, "refs": v}) for k, v in refs.items()) + "\n")
    return scores, ref_path


def test_thumb_loader_finds_references_and_rejects_bad_rows(tmp_path):
    rows = [{"SYS": "A", "seg_id": "1", "hyp": "x y", "human_score": 4.0}]
    scores, _ = _thumb_files(tmp_path, rows, {"1": ["r"]})
    data = loaders.load_thumb(scores)  # references found beside the scores file
    assert data.systems == ["A"] and data.references == {"1": ["r"]}
    scores, refs = _thumb_files(tmp_path, rows + rows, {"1": ["r"]})
    with pytest.raises(InputError, match="duplicate"):
        loaders.load_thumb(scores, refs)
    scores, refs = _thumb_files(tmp_path, [{**rows[0], "seg_id": "9"}], {"1": ["r"]})
    with pytest.raises(InputError, match="no references"):
        loaders.load_thumb(scores, refs)


# ---------------------------------------------------------------------------------------------------------
# Protocols with stand-in metrics


def test_flickr_scores_each_unique_pair_once_and_expands_rows(flickr_file):
    WordCount.seen.clear()
    out = meta_evaluate("flickr8k-expert", flickr_file, ["_mt_words"])["_mt_words"]
    # unique (image, caption): img1 {a b c, a}, img2 {a b c d, a b, a b c}; the NaN-rated 'a b' is never scored
    assert sorted(WordCount.seen) == sorted(["a b c", "a", "a b c d", "a b", "a b c"])
    words = [3, 3, 3, 1, 4, 2, 3]
    ratings = [3, 4, 3, 1, 4, 2, 1]
    assert out["n"] == 7 and out["failed"] == 0
    assert out["tau_b"] == pytest.approx(100 * stats.kendalltau(words, ratings, variant="b")[0])
    assert out["tau_c"] == pytest.approx(100 * stats.kendalltau(words, ratings, variant="c")[0])


def test_flickr_failed_scores_are_counted_not_zero(tmp_path):
    data = {"i": {"ground_truth": ["r"], "human_judgement": [
        {"caption": "aa", "rating": 1}, {"caption": "aaaa", "rating": 2}, {"caption": "FAIL", "rating": 3},
        {"caption": "FAIL", "rating": 4}, {"caption": "a", "rating": 4}]}}
    out = meta_evaluate("flickr8k-cf", _write(tmp_path / "f.json", data), ["_mt_shortest"])["_mt_shortest"]
    assert out["n"] == 3 and out["failed"] == 2
    assert out["tau_b"] == pytest.approx(100 * stats.kendalltau([2, 4, 1], [1, 2, 4], variant="b")[0])


def test_a_metric_that_scores_nothing_is_undefined_and_warned(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(logging.getLogger("capeval"), "propagate", True)
    data = {"i": {"ground_truth": ["r"], "human_judgement": [{"caption": "FAIL", "rating": 1},
                                                              {"caption": "FAIL x", "rating": 2}]}}
    out = meta_evaluate("flickr8k-cf", _write(tmp_path / "f.json", data), ["_mt_shortest"])["_mt_shortest"]
    assert out["tau_b"] is None and out["tau_c"] is None and out["n"] == 0 and out["failed"] == 2
    assert "could not score any caption" in caplog.text


def test_stochastic_metric_is_averaged_over_seeds(flickr_file):
    out = meta_evaluate("flickr8k-expert", flickr_file, ["_mt_seeded", "_mt_words"], seeds=3)
    # words + mean(0, 1, 2) is a shift of words: same ranks, same tau
    assert out["_mt_seeded"]["tau_b"] == pytest.approx(out["_mt_words"]["tau_b"])


def test_pascal_accuracy_per_category_with_ties_and_direction(tmp_path):
    data = {
        "HC": [{"captions": ["one two three", "one"], "label": 0, "references": ["r"]},  # words: right
               {"captions": ["one", "one two"], "label": 0, "references": ["r"]}],        # words: wrong
        "MM": [{"captions": ["a b", "c d"], "label": 1, "references": ["r"]},               # tie: half
               {"captions": ["xx", "FAIL"], "label": 0, "references": ["r"]}],  # words: tie; shortest: failed
    }
    path = _write(tmp_path / "pascal.json", data)
    out = meta_evaluate("pascal-50s", path, ["_mt_words", "_mt_shortest"])
    words = out["_mt_words"]
    assert words["HC"] == pytest.approx(50.0) and words["MM"] == pytest.approx(50.0)
    assert words["accuracy"] == pytest.approx(50.0) and words["ties"] == 2 and words["n"] == 4
    short = out["_mt_shortest"]  # lower is better: prefers the shorter caption
    assert short["HC"] == pytest.approx(50.0)  # pair 1: prefers "one" (wrong); pair 2: prefers "one" (right)
    assert short["MM"] == pytest.approx(50.0) and short["failed"] == 1 and short["n"] == 3


def test_thumb_segment_and_system_level(tmp_path):
    rows, refs = [], {}
    captions = {"A": ["a", "a b", "a b c"], "B": ["a b", "a b c", "a b c d"], "Human": ["a b c d e", "a", "a b"]}
    human = {"A": [1.0, 2.0, 3.0], "B": [2.0, 3.5, 4.0], "Human": [5.0, 4.5, 4.0]}
    for system, caps in captions.items():
        for seg, (cap, score) in enumerate(zip(caps, human[system], strict=True)):
            rows.append({"SYS": system, "seg_id": str(seg), "hyp": cap, "human_score": score})
            refs[str(seg)] = ["ref"]
    scores, ref_path = _thumb_files(tmp_path, rows, refs)
    out = meta_evaluate("thumb", scores, ["_mt_words"], refs=ref_path)["_mt_words"]
    words = [len(r["hyp"].split()) for r in rows]
    hs = [r["human_score"] for r in rows]
    assert out["n"] == 9 and out["systems"] == 3
    assert out["pearson"] == pytest.approx(100 * stats.pearsonr(words, hs)[0])
    assert out["kendall"] == pytest.approx(100 * stats.kendalltau(words, hs)[0])
    assert out["pearson_machine"] == pytest.approx(100 * stats.pearsonr(words[:6], hs[:6])[0])
    # a system's score is its corpus score (here the word-count sum): A 6, B 9, Human 8
    assert out["system_scores"] == {"A": 6.0, "B": 9.0, "Human": 8.0}
    sys_human = [np.mean(human[s]) for s in ("A", "B", "Human")]
    assert out["system_pearson"] == pytest.approx(100 * stats.pearsonr([6, 9, 8], sys_human)[0])
    assert out["system_pearson_machine"] == pytest.approx(100.0)  # two systems: a perfect line


def test_unknown_dataset_metric_and_misplaced_refs(flickr_file):
    with pytest.raises(CapevalError, match="unknown meta-evaluation dataset"):
        meta_evaluate("coco", flickr_file, ["_mt_words"])
    with pytest.raises(CapevalError, match="unknown metric"):
        meta_evaluate("flickr8k-expert", flickr_file, ["_mt_nope"])
    with pytest.raises(CapevalError, match="--refs is for THumB"):
        meta_evaluate("flickr8k-expert", flickr_file, ["_mt_words"], refs=flickr_file)
    assert canonical_dataset("Pascal50S") == "pascal-50s" and canonical_dataset("flickr8k_cf") == "flickr8k-cf"


def test_images_are_found_under_the_images_folder(tmp_path, monkeypatch, caplog):
    from capeval.metaeval.scoring import resolve_images

    monkeypatch.setattr(logging.getLogger("capeval"), "propagate", True)
    (tmp_path / "Flickr8k_Dataset").mkdir()
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / "Flickr8k_Dataset" / name).write_bytes(b"")
    (tmp_path / "c.jpg").write_bytes(b"")
    found = resolve_images({"1": "Flickr8k_Dataset/a.jpg", "2": "Flicker8k_Dataset/b.jpg", "3": "VOC/c.jpg",
                            "4": "VOC/d.jpg"}, tmp_path)
    assert found["1"] == str(tmp_path / "Flickr8k_Dataset" / "a.jpg")
    assert found["2"] == str(tmp_path / "Flickr8k_Dataset" / "b.jpg")  # the CF file's misspelling
    assert found["3"] == str(tmp_path / "c.jpg")
    assert "1 of 4 images not found" in caplog.text
    assert resolve_images({"1": "a.jpg"}, None) == {}


def test_judge_metric_meta_eval_resumes_from_the_judge_cache(flickr_file, tmp_path):
    """CLAIR through the judge client: a partial run's replies are reused, a rerun asks nothing new."""
    from capeval.judges.faultserver import FaultServer

    partial = json.loads(flickr_file.read_text())
    del partial["img2"]
    partial_file = _write(tmp_path / "partial.json", partial)
    with FaultServer(instant=True) as server:
        opts = {"judge_base_url": server.base_url, "judge_model": "fake", "judge_cache": str(tmp_path / "c.sqlite")}
        meta_evaluate("flickr8k-expert", partial_file, ["clair"], opts, seeds=2)
        assert server.state.requests == 2 * 2  # img1: 2 unique captions x 2 seeds
        first = meta_evaluate("flickr8k-expert", flickr_file, ["clair"], opts, seeds=2)
        assert server.state.requests == 5 * 2  # only img2's 3 captions were asked
        again = meta_evaluate("flickr8k-expert", flickr_file, ["clair"], opts, seeds=2)
        assert server.state.requests == 5 * 2  # nothing new
    cost_first, cost_again = first["clair"].pop("cost"), again["clair"].pop("cost")
    assert first == again and first["clair"]["n"] == 7 and first["clair"]["failed"] == 0
    assert "seeds:2" in first["clair"]["signature"]
    # the judge's cost: img2's 3 captions x 2 seeds were new calls in the second run, none in the third
    assert cost_first["judge_calls"] == 6 and cost_first["judge_cache_hits"] == 4
    assert cost_again["judge_calls"] == 0 and cost_again["judge_cache_hits"] == 10
    # a judge metric gets a bootstrap CI by default; the instant server scores every caption 50, so tau is
    # undefined and so is its CI (None, never a made-up 0)
    assert first["clair"]["tau_c"] is None and first["clair"]["tau_c_ci"] is None
    assert first["clair"]["ci_resamples"] == 1000


def test_limit_takes_whole_images_in_a_seeded_order_and_bootstrap_resamples_images(shared_data):
    path = shared_data / "human-judgments" / "flickr8k_expert.json"
    small = meta_evaluate("flickr8k-expert", path, ["_mt_words"], limit=60, sample_seed=3, bootstrap=300)
    again = meta_evaluate("flickr8k-expert", path, ["_mt_words"], limit=60, sample_seed=3, bootstrap=300)
    other = meta_evaluate("flickr8k-expert", path, ["_mt_words"], limit=60, sample_seed=4, bootstrap=300)
    r = small["_mt_words"]
    assert r == again["_mt_words"] and r != other["_mt_words"]
    assert 60 <= r["n"] < 60 + 40 and r["images"] < r["n"] / 3  # whole images of ~17 rows each
    # the CI is computed over the same rows, resampling images: it holds the point estimate
    assert r["tau_c_ci"][0] < r["tau_c"] < r["tau_c_ci"][1] and r["ci_resamples"] == 300
    # a hand-made resample with every image once reproduces the point estimate
    from capeval.metaeval import bootstrap, sampling

    data = sampling.sample_ratings(loaders.load_flickr8k(path), 60, 3)
    assert len(data.rows) == r["n"] and len(data.references) == r["images"]
    assert bootstrap.kendall_ci([1, 2], [1, 2], ["a", "a"], resamples=10) == {"b": None, "c": None}


def test_pascal_limit_is_stratified_and_accuracy_has_a_ci(shared_data):
    path = shared_data / "human-judgments" / "pascal_50s.json"
    res = meta_evaluate("pascal-50s", path, ["_mt_words"], limit=40, sample_seed=0, bootstrap=300)["_mt_words"]
    assert res["n"] == 40
    lo, hi = res["accuracy_ci"]
    assert lo <= res["accuracy"] <= hi
    from capeval.metaeval import sampling

    pairs = sampling.sample_pairs(loaders.load_pascal50s(path), 40, 0).pairs
    assert [p.category for p in pairs].count("HC") == 10
    with pytest.raises(CapevalError, match="--limit must be >= 1"):
        meta_evaluate("pascal-50s", path, ["_mt_words"], limit=0)


# ---------------------------------------------------------------------------------------------------------
# CLI


@pytest.fixture
def no_cli_logging(monkeypatch):
    """main() would attach a handler to capsys' temporary stderr, which later tests would log into."""
    monkeypatch.setattr("capeval.cli._configure_logging", lambda: None)


def test_cli_json_and_table(flickr_file, capsys, no_cli_logging):
    main(["meta-eval", "flickr8k-expert", "--path", str(flickr_file), "--metrics", "_mt_words", "--json", "-q"])
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"_mt_words"} and out["_mt_words"]["n"] == 7
    assert {"tau_b", "tau_c", "n"} <= set(out["_mt_words"])
    main(["meta-eval", "flickr8k-expert", "--path", str(flickr_file), "--metrics", "_mt_words", "-q"])
    table = capsys.readouterr().out
    assert "_mt_words" in table and "τ_c" in table


def test_cli_download_then_score(tmp_path, monkeypatch, capsys, no_cli_logging):
    upstream = _write(tmp_path / "upstream.json", {"HI": [{"captions": ["a b", "a"], "label": 0, "references": ["r"]}]})
    monkeypatch.setitem(download.SOURCES, "pascal-50s", [download.Source(upstream.as_uri(), "p.json", "0", "0")])
    main(["meta-eval", "pascal-50s", "--download", "--data-dir", str(tmp_path / "d"), "-m", "_mt_words", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["_mt_words"]["HI"] == pytest.approx(100.0) and (tmp_path / "d" / "p.json").exists()


def test_cli_errors_exit_2(flickr_file, capsys, no_cli_logging):
    for argv in (["meta-eval", "coco", "--path", str(flickr_file)],
                 ["meta-eval", "flickr8k-expert"],
                 ["meta-eval", "flickr8k-expert", "--path", str(flickr_file) + ".missing", "-m", "_mt_words"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert capsys.readouterr().err.startswith("capeval: error:")


# ---------------------------------------------------------------------------------------------------------
# Download: hashes of the known-good files, and the fetch path through a file:// URL (no network).


def test_shared_copies_pass_the_download_checks(shared_data):
    files = {"flickr8k-expert": [shared_data / "human-judgments" / "flickr8k_expert.json"],
             "flickr8k-cf": [shared_data / "human-judgments" / "flickr8k_cf.json"],
             "pascal-50s": [shared_data / "human-judgments" / "pascal_50s.json"],
             "thumb": [shared_data / "thumb" / "mscoco_THumB-1.0.jsonl",
                       shared_data / "thumb" / "mscoco_references.jsonl"]}
    for name, paths in files.items():
        for path, source in zip(paths, download.SOURCES[name], strict=True):
            assert download.check(path, source), path


def test_download_fetches_verifies_and_reuses(tmp_path, monkeypatch, shared_data, caplog):
    monkeypatch.setattr(logging.getLogger("capeval"), "propagate", True)  # let caplog see capeval's warnings
    original = shared_data / "human-judgments" / "pascal_50s.json"
    reformatted = tmp_path / "upstream.json"
    reformatted.write_text(json.dumps(json.loads(original.read_text()), indent="\t"))  # same content
    src = download.SOURCES["pascal-50s"][0]
    monkeypatch.setitem(download.SOURCES, "pascal-50s", [download.Source(
        reformatted.as_uri(), src.filename, src.sha256, src.content_sha256)])
    [path] = download.download("pascal-50s", tmp_path / "cache")
    assert path.read_text() == reformatted.read_text() and "differs" not in caplog.text
    reformatted.write_text("{}")  # upstream changes: the cached good copy is reused, not fetched again
    assert download.download("pascal-50s", tmp_path / "cache") == [path]
    path.unlink()
    download.download("pascal-50s", tmp_path / "cache")  # fetched again: differs -> warning
    assert "differs from the copy" in caplog.text
    monkeypatch.setitem(download.SOURCES, "pascal-50s", [download.Source(
        (tmp_path / "missing.json").as_uri(), "x.json", "0", "0")])
    with pytest.raises(CapevalError, match="download of"):
        download.download("pascal-50s", tmp_path / "cache")


# ---------------------------------------------------------------------------------------------------------
# The real thing (CI): Flickr8k-Expert with the COCO metrics.

# The output printed in the PAC-S repository README (aimagelab/pacscore, "Expected Output"), which runs
# pycocoevalcap on the same file; CLIPScore's Table 1 prints the same tau-c rounded (32.3 30.8 32.3 41.8 43.9).
PACS_EXPERT = {"bleu_1": (32.175, 32.324), "bleu_4": (30.599, 30.776), "meteor": (41.538, 41.822),
               "rouge_l": (32.139, 32.314), "cider": (43.602, 43.891)}


@pytest.mark.java
@pytest.mark.slow
def test_flickr8k_expert_coco_metrics_match_published(shared_data):
    path = shared_data / "human-judgments" / "flickr8k_expert.json"
    out = meta_evaluate("flickr8k-expert", path, ["bleu", "meteor", "rouge_l", "cider"])
    for key, (tau_b, tau_c) in PACS_EXPERT.items():
        assert out[key]["n"] == 16992 and out[key]["failed"] == 0, key
        assert out[key]["tau_b"] == pytest.approx(tau_b, abs=5e-4), key
        assert out[key]["tau_c"] == pytest.approx(tau_c, abs=5e-4), key
        assert out[key]["signature"].startswith(f"{key}|nrefs:5|")
